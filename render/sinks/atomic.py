"""Files that appear under their final name only when complete.

Every artifact is written to a hidden temporary file beside its target (same
folder, so the rename never crosses filesystems) and `os.replace`d into place
after it was written and closed without error. A crash, a kill or Ctrl-C
leaves at most a `.*.partial` file, never a truncated file that looks
finished; the next run ignores and replaces it. A write that fails (disk
full, file size limit) raises `OutputError` naming the file (`cannot_write`).
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from render.errors import OutputError

__all__ = ["atomic_path", "temporary_path", "cannot_write", "write_bytes", "write_text", "write_json", "PARTIAL_SUFFIX"]

PARTIAL_SUFFIX = ".partial"


def temporary_path(final: Path) -> Path:
    """A hidden, unique name beside `final`, for writers that rename themselves."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to `final` if the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary file is
    removed and `final` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(final)
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, final)


def cannot_write(final: Path, error: OSError) -> OutputError:
    """The one-line error for a file that could not be written: where, and why (disk full, file size limit, …)."""
    return OutputError(f"{final}: cannot be written ({error.strerror or error})")


def write_bytes(final: Path, data: bytes) -> None:
    try:
        with atomic_path(final) as temporary:
            temporary.write_bytes(data)
    except OSError as error:
        raise cannot_write(final, error) from None


def write_text(final: Path, text: str) -> None:
    write_bytes(final, text.encode("utf-8"))


def write_json(final: Path, value: Any) -> None:
    write_text(final, json.dumps(value, indent=2, sort_keys=False) + "\n")
