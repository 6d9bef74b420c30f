"""The journal: an append-only record of the units whose outputs are committed.

`<job folder>/.work/journal.jsonl` holds one JSON line per finished unit:

    {"unit_id": "…", "files": {"videos/a/x.mp4": {"size": 123456, "sha256": "…"}, …}, "result": {…}}

`files` maps every file the unit wrote (relative to the job folder) to its
size in bytes and the sha256 of its content. Only the coordinator appends,
after the unit's files were renamed into place, so a line never describes a
file that is not complete.

On a re-run a unit counts as finished when its id is journaled and each of
its files still exists with the recorded size and content (sha256, read in
full: a file damaged in place keeps its size) and was not written again by
a later unit (a changed spec can give the same path to another unit). sha256
is the hash because it is the fastest strong one here: with the CPU's SHA
instructions it reads about 1.7 GB/s, blake2b 1.0 GB/s (README, Benchmarks).

A line is written with a single `write` and flushed; a torn last line after
a crash is ignored, and the unit it described is simply rendered again. A
write that fails (disk full) is cut off again, so the journal stays whole.
Lines written by earlier versions, with sizes but no hashes, cannot be
verified: their units are rendered again, with a warning (a size says
nothing about a file damaged in place, and rendering again gives the same
bytes).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

from render import safe_fs
from render.errors import RenderWarning

__all__ = ["Journal", "sha256_of"]


def sha256_of(path: Path) -> str:
    """The sha256 of a file's content, read in full every time (never cached: it is what checks the file)."""
    return _size_and_sha256(path)["sha256"]


def _size_and_sha256(path: Path) -> dict[str, Any]:
    """A file's journal record, {"size", "sha256"}, from one open of it (a link is refused)."""
    with open(path, "rb", opener=safe_fs.no_follow) as file:
        return {"size": os.fstat(file.fileno()).st_size, "sha256": hashlib.file_digest(file, "sha256").hexdigest()}


class Journal:
    def __init__(self, path: Path, root: Path):
        self.path = Path(path)
        self.root = Path(root)  # the job folder that journaled paths are relative to

    def append(self, unit_id: str, files: list[str], result: dict[str, Any]) -> None:
        """Record `unit_id` as finished with the size and sha256 of each of its files (paths relative to root)."""
        records = {file: _size_and_sha256(self.root / file) for file in files}
        line = json.dumps({"unit_id": unit_id, "files": records, "result": result}, separators=(",", ":")) + "\n"
        path = safe_fs.job_path(self.root, self.path.relative_to(self.root))  # raises OutputLost if the folder went
        data = line.encode("utf-8")
        # unbuffered: a failed write is not retried at close; a planted link is refused
        with open(path, "ab", buffering=0, opener=safe_fs.no_follow) as journal:
            whole = journal.seek(0, os.SEEK_END)
            try:
                if journal.write(data) != len(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                os.fsync(journal.fileno())
            except OSError:
                journal.truncate(whole)  # no torn line left behind for the next append to run into
                raise

    def finished(self, verify_content: bool = True) -> dict[str, dict[str, Any]]:
        """{unit_id: result} of the journaled units whose files are all still theirs and intact.

        `verify_content=False` checks sizes only (the benchmark's baseline; a run always verifies).
        """
        records: dict[str, dict[str, Any]] = {}
        owner: dict[str, str] = {}  # file → the unit that wrote it last
        for record in self._records():
            records[record["unit_id"]] = record
            for file in record["files"]:
                owner[file] = record["unit_id"]
        finished, unverifiable = {}, 0
        for unit_id, record in records.items():
            files = record["files"]
            if not all(isinstance(entry, dict) for entry in files.values()):
                unverifiable += 1  # a line from before content hashes: {file: size}
                continue
            if all(owner[file] == unit_id and self._intact(file, entry, verify_content)
                   for file, entry in files.items()):
                finished[unit_id] = record["result"]
        if unverifiable:
            warnings.warn(f"{self.path}: {unverifiable} units were journaled by an earlier sefa-render without content "
                          f"hashes and cannot be verified; they are rendered again", RenderWarning, stacklevel=2)
        return finished

    def _records(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8", errors="replace", opener=safe_fs.no_follow) as journal:
                text = journal.read()
        except FileNotFoundError:
            return []
        records = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash: its unit is rendered again
            if isinstance(record, dict) and {"unit_id", "files", "result"} <= set(record) \
                    and isinstance(record["files"], dict):
                records.append(record)
        return records

    def _intact(self, file: str, entry: dict[str, Any], verify_content: bool) -> bool:
        path = self.root / file
        try:
            if safe_fs.regular_size(path) != entry.get("size"):  # a link is not a file the run wrote
                return False
            return not verify_content or sha256_of(path) == entry.get("sha256")
        except OSError:
            return False
