"""`run --prune`: remove the outputs of units the job no longer names.

Only files the tool itself recorded are candidates, so nothing a user put in
the job folder is ever touched:

- files of journaled units (`Journal.finished`) whose ids the current plan
  does not have; a file that a current unit wrote last is never among them,
  because the journal gives each file to the unit that wrote it last;
- the `metadata.jsonl` of each split of a dataset the job no longer names,
  when the journal has images of that split;
- the files of direction sets the job no longer names, as the previous
  `manifest.json` lists them (a run without `--prune` forgets them).

Folders left empty by the removal are removed too, up to the job folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from render import safe_fs
from render.manifest import MANIFEST_NAME
from render.plan import Unit
from render.spec import Job

__all__ = ["prune"]


def prune(output_dir: Path, job: Job, units: list[Unit], finished: dict[str, dict[str, Any]]) -> list[str]:
    """Remove what stale units and outputs left; return the removed paths (relative to `output_dir`), sorted."""
    current = {unit.unit_id for unit in units}
    stale = {file for unit_id, result in finished.items() if unit_id not in current for file in result["files"]}
    stale |= _dropped_metadata(stale, job) | set(_dropped_direction_sets(output_dir, job))
    removed = []
    for relative in sorted(stale):
        path = safe_fs.existing_file(output_dir, relative)
        if path is not None:
            path.unlink()
            removed.append(relative)
            _remove_empty_parents(path.parent, output_dir)
    return removed


def _dropped_metadata(stale: set[str], job: Job) -> set[str]:
    """`datasets/<name>/<split>/metadata.jsonl` for the splits of stale images of datasets the job no longer names."""
    current = {name for name, _ in job.datasets()}
    splits = {tuple(file.split("/")[1:3]) for file in stale if file.startswith("datasets/") and file.count("/") >= 4}
    return {f"datasets/{name}/{split}/metadata.jsonl" for name, split in splits if name not in current}


def _dropped_direction_sets(output_dir: Path, job: Job) -> Iterable[str]:
    """Files the previous manifest lists for direction sets the job no longer names."""
    try:
        manifest = json.loads(safe_fs.read_text(output_dir / MANIFEST_NAME))
        artifacts = list(manifest["artifacts"])
    except (OSError, ValueError, KeyError, TypeError):
        return  # no readable manifest: nothing is known to be ours
    direction_sets = {f"directions/{key}" for key in job.spec.directions}
    for artifact in artifacts:
        if isinstance(artifact, dict) and artifact.get("kind") == "directions":
            path = str(artifact.get("path", ""))
            if path.startswith("directions/") and path not in direction_sets:
                yield from (f"{path}/{name}" for name in artifact.get("files", []))


def _remove_empty_parents(folder: Path, output_dir: Path) -> None:
    """`folder` and the folders above it up to `output_dir`, while empty (reached through no link: `existing_file`)."""
    while folder != output_dir and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
