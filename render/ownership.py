"""Which job spec a job folder belongs to: `<job folder>/.work/spec.json`.

Two spec files can carry the same `name:`. Run one after the other, they
would render into one folder and mix their outputs without a word. So a
folder records the spec file that rendered into it (its absolute path, or
`<stdin>`) and the sha256 of the validated spec, and the rule is:

- the same name from the same spec file is the same job: editing the file
  and running it again resumes (only the units whose definition changed are
  rendered) and records the new hash;
- a spec from another file (or from stdin) is refused with one line, unless
  `--force`, which renders everything again and makes the folder that spec's.
  Files the earlier spec made and the new one does not are left in place.

A folder without a record (new, or written by an earlier version) is claimed
by the first run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from render import safe_fs
from render.errors import OutputError
from render.plan import WORK_DIR
from render.sinks.atomic import write_json
from render.spec import Job
from render.spec_input import STDIN_PATH

__all__ = ["claim_folder"]

OWNER_FILE = f"{WORK_DIR}/spec.json"


def _spec_source(job: Job) -> str:
    """What identifies the spec file: its absolute path, or '<stdin>'."""
    return str(job.path) if job.path == STDIN_PATH else str(job.path.resolve())


def claim_folder(output_dir: Path, job: Job, force: bool) -> None:
    """Record `job` as the owner of `output_dir`; refuse a folder another spec file wrote, unless `force`."""
    record = safe_fs.job_path(output_dir, OWNER_FILE)
    source = _spec_source(job)
    try:
        owner = json.loads(safe_fs.read_text(record)).get("spec_file")
    except (FileNotFoundError, ValueError, AttributeError):
        owner = None  # no record yet, or a damaged one: the folder is claimed
    if owner is not None and owner != source and not force:
        raise OutputError(f"{output_dir}: this folder holds the outputs of the job spec {owner}, not {source}; give "
                          f"this job another `name:` or --output-root, or pass --force to render it here anyway")
    spec_sha256 = hashlib.sha256(job.spec.model_dump_json().encode("utf-8")).hexdigest()
    write_json(record, {"spec_file": source, "spec_sha256": spec_sha256})
