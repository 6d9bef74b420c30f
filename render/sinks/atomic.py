"""Files that appear under their final name only when complete.

Every artifact is written to a hidden temporary file beside its target (same
folder, so the rename never crosses filesystems) and `os.replace`d into place
after it was written and closed without error. A crash, a kill or Ctrl-C
leaves at most a `.*.partial` file, never a truncated file that looks
finished; the next run removes it (`remove_partials`). A write that fails (disk
full, file size limit) raises `WriteFailed` naming the file (`cannot_write`).

The temporary file is created new (`O_EXCL`, never through a link) and a
final name that is a link is refused rather than replaced: see
`render/safe_fs.py`.
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from render import safe_fs
from render.errors import WriteFailed

__all__ = ["atomic_path", "atomic_write", "temporary_path", "cannot_write", "write_bytes", "write_text",
           "write_json", "remove_partials", "PARTIAL_SUFFIX"]

PARTIAL_SUFFIX = ".partial"


def temporary_path(final: Path) -> Path:
    """A new, empty, hidden file with a unique name beside `final`, for writers that rename themselves."""
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
    safe_fs.create_new(temporary)
    return temporary


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
        safe_fs.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def cannot_write(final: Path, error: OSError) -> WriteFailed:
    """The one-line error for a file that could not be written: where, and why (disk full, file size limit, …)."""
    return WriteFailed(f"{final}: cannot be written ({error.strerror or error})")


@contextmanager
def atomic_write(final: Path) -> Iterator[Path]:
    """`atomic_path` for the writers of artifacts: an `OSError` in the block becomes `cannot_write`'s one line."""
    try:
        with atomic_path(final) as temporary:
            yield temporary
    except OSError as error:
        raise cannot_write(final, error) from None


def write_bytes(final: Path, data: bytes) -> None:
    with atomic_write(final) as temporary:
        temporary.write_bytes(data)


def write_text(final: Path, text: str) -> None:
    write_bytes(final, text.encode("utf-8"))


def write_json(final: Path, value: Any) -> None:
    write_text(final, json.dumps(value, indent=2, sort_keys=False) + "\n")


def remove_partials(root: Path) -> None:
    """Delete the `.*.partial` files that killed runs left under `root`, without following links."""
    safe_fs.check_directory(root, lost=True)
    for folder, _, files in os.walk(root):  # os.walk does not descend into linked folders
        for name in files:
            if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
                Path(folder, name).unlink(missing_ok=True)  # a link is removed itself, never its target
