"""Submitting jobs: validate each spec as `validate` does, freeze it, and queue all or none.

A frozen spec is the text of the job file as it was at submit time (with
`--name` written in), plus the file's absolute path, against which its
relative paths (checkpoints, direction files) resolve. Editing or moving the
job file later changes no queued job. The paths are resolved, not rewritten,
on purpose: a checkpoint reference as written is part of each unit's id and
of every dataset row, so rewriting it would make queued outputs differ from
`sefa-render run`'s.

A job's identity is the sha256 of its validated spec, its file's folder and
its output folder: submitting an identical spec again finds the job already
queued.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from render.errors import SpecError
from render.models import zoo
from render.queue.store import QueueStore
from render.spec import NAME_PATTERN, Job, load_job

__all__ = ["Submitted", "freeze", "load_frozen", "submit_jobs"]


@dataclass(frozen=True)
class Submitted:
    job_id: int
    name: str
    source: Path
    already_queued: bool


def freeze(path: Path, name: str | None = None) -> tuple[Job, str]:
    """Read and validate a job file once (with `validate`'s messages); return the job, its path absolute, and its
    frozen text (`name`, if given, written in)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = None  # load_job reports it
    load_job(path, known_zoo=zoo.ZOO, text=text)
    assert text is not None
    if name is not None:
        data = yaml.safe_load(text)  # valid YAML: load_job just read it
        text = yaml.safe_dump({"name": name, **{key: value for key, value in data.items() if key != "name"}},
                              sort_keys=False, allow_unicode=True)
    return load_frozen(text, path.resolve()), text


def load_frozen(spec_yaml: str, source: Path) -> Job:
    """A queued job from its frozen text; relative paths resolve against the submitted file's folder."""
    return load_job(source, known_zoo=zoo.ZOO, text=spec_yaml)


def submit_jobs(store: QueueStore, paths: list[Path], output_root: Path, *, priority: int = 0,
                name: str | None = None) -> list[Submitted]:
    """Validate every spec (a `SpecError` on the first bad one queues nothing), then queue them in one transaction."""
    if name is not None and not re.fullmatch(NAME_PATTERN, name):
        raise SpecError(f"--name {name!r}: expected a name of letters, digits, '_' and '-' that starts with a letter")
    entries, jobs = [], []
    for path in paths:
        job, spec_yaml = freeze(path, name)
        output_dir = (output_root / job.name).resolve()
        canonical = json.dumps({"spec": job.spec.model_dump(mode="json"), "folder": str(job.path.parent),
                                "output_dir": str(output_dir)}, sort_keys=True, separators=(",", ":"))
        entries.append({"name": job.name, "spec_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
                        "spec_yaml": spec_yaml, "source": str(job.path), "output_dir": str(output_dir),
                        "priority": priority})
        jobs.append((job.name, path))
    results = store.submit(entries)
    return [Submitted(job_id, job_name, path, existed) for (job_id, existed), (job_name, path) in zip(results, jobs)]
