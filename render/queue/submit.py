"""Submitting jobs: validate each spec as `validate` does, freeze it, and queue all or none.

A frozen spec is the user's YAML with every path made absolute (checkpoints
that are files, direction files) and the job's name written in, so the
queued job no longer depends on the file or the folder it came from. Its
identity is the sha256 of the validated frozen spec and its output folder:
submitting an identical spec again finds the job already queued.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from render.models import zoo
from render.errors import SpecError
from render.queue.store import QueueStore
from render.sinks.atomic import write_text
from render.spec import NAME_PATTERN, ZOO_PREFIX, Job, load_job

__all__ = ["Submitted", "freeze", "load_frozen", "submit_jobs"]


@dataclass(frozen=True)
class Submitted:
    job_id: int
    name: str
    source: Path
    already_queued: bool


def freeze(job: Job, name: str | None = None) -> str:
    """The job's YAML with absolute paths and an explicit name (`name` overrides the spec's)."""
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(job.path.read_text(encoding="utf-8")))
    for model in data["models"].values():
        if not model["checkpoint"].startswith(ZOO_PREFIX):
            model["checkpoint"] = str(job.resolve_path(model["checkpoint"]))
    for direction_set in data["directions"].values():
        if direction_set.get("file") is not None:
            direction_set["file"] = str(job.resolve_path(direction_set["file"]))
    data = {"name": name or job.name, **{key: value for key, value in data.items() if key != "name"}}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def load_frozen(spec_yaml: str, path: Path) -> Job:
    """Write a frozen spec to `path` (atomically: other workers may be reading it) and load it as a job."""
    write_text(path, spec_yaml)
    return load_job(path, known_zoo=zoo.ZOO)


def submit_jobs(store: QueueStore, paths: list[Path], output_root: Path, *, priority: int = 0,
                name: str | None = None) -> list[Submitted]:
    """Validate every spec (a `SpecError` on the first bad one queues nothing), then queue them in one transaction."""
    if name is not None and not re.fullmatch(NAME_PATTERN, name):
        raise SpecError(f"--name {name!r}: expected a name of letters, digits, '_' and '-' that starts with a letter")
    entries, jobs = [], []
    with tempfile.TemporaryDirectory(prefix="sefa-render-submit-") as scratch:
        for index, path in enumerate(paths):
            job = load_job(path, known_zoo=zoo.ZOO)
            spec_yaml = freeze(job, name)
            frozen = load_frozen(spec_yaml, Path(scratch) / f"{index}" / path.name)  # still valid once frozen
            output_dir = (output_root / frozen.name).resolve()
            canonical = json.dumps({"spec": frozen.spec.model_dump(mode="json"), "output_dir": str(output_dir)},
                                   sort_keys=True, separators=(",", ":"))
            entries.append({"name": frozen.name, "spec_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
                            "spec_yaml": spec_yaml, "source": str(path), "output_dir": str(output_dir),
                            "priority": priority})
            jobs.append((frozen.name, path))
    results = store.submit(entries)
    return [Submitted(job_id, job_name, path, existed) for (job_id, existed), (job_name, path) in zip(results, jobs)]
