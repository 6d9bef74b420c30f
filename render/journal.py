"""The journal: an append-only record of the units whose outputs are committed.

`<job folder>/.work/journal.jsonl` holds one JSON line per finished unit:

    {"unit_id": "…", "files": {"videos/a/x.mp4": 123456, …}, "result": {…}}

`files` maps every file the unit wrote (relative to the job folder) to its
size in bytes. Only the coordinator appends, after the unit's files were
renamed into place, so a line never describes a file that is not complete.

On a re-run a unit counts as finished when its id is journaled and each of
its files still exists with the recorded size and was not written again by
a later unit (a changed spec can give the same path to another unit). The
line is written with a single `write` and flushed; a torn last line after a
crash is ignored, and the unit it described is simply rendered again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from render import safe_fs

__all__ = ["Journal", "file_sizes"]


def file_sizes(root: Path, paths: list[str]) -> dict[str, int]:
    """{relative path: size} for files under `root`, as recorded in the journal."""
    return {path: (root / path).stat().st_size for path in paths}


class Journal:
    def __init__(self, path: Path, root: Path):
        self.path = Path(path)
        self.root = Path(root)  # the job folder that journaled paths are relative to

    def append(self, unit_id: str, files: dict[str, int], result: dict[str, Any]) -> None:
        line = json.dumps({"unit_id": unit_id, "files": files, "result": result}, separators=(",", ":")) + "\n"
        path = safe_fs.job_path(self.root, self.path.relative_to(self.root))  # raises OutputLost if the folder went
        with open(path, "a", encoding="utf-8", opener=safe_fs.no_follow) as journal:  # a planted link is refused
            journal.write(line)
            journal.flush()
            os.fsync(journal.fileno())

    def finished(self) -> dict[str, dict[str, Any]]:
        """{unit_id: result} of the journaled units whose files are all still theirs and intact."""
        records: dict[str, dict[str, Any]] = {}
        owner: dict[str, str] = {}  # file → the unit that wrote it last
        for record in self._records():
            records[record["unit_id"]] = record
            for file in record["files"]:
                owner[file] = record["unit_id"]
        finished = {}
        for unit_id, record in records.items():
            if all(owner[file] == unit_id and self._has_size(file, size) for file, size in record["files"].items()):
                finished[unit_id] = record["result"]
        return finished

    def _records(self) -> list[dict[str, Any]]:
        try:
            text = safe_fs.read_text(self.path)
        except FileNotFoundError:
            return []
        records = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash: its unit is rendered again
            if isinstance(record, dict) and {"unit_id", "files", "result"} <= set(record):
                records.append(record)
        return records

    def _has_size(self, file: str, size: int) -> bool:
        return safe_fs.regular_size(self.root / file) == size  # a link is not a file the run wrote
