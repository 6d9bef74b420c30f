"""Reading a job spec's text: a regular file of bounded size, or standard input.

- At most `MAX_SPEC_BYTES` (1 MiB) are read. A real spec is a few kilobytes
  (`jobs/demo.yaml` is under 2 KB); without a bound, `validate /dev/zero`
  would read until memory runs out.
- `-` (and `/dev/stdin`, the same thing by another name) reads standard
  input. Such a job's path is `<stdin>`: relative paths in it resolve against
  the current folder (not `/dev`), and it has no file name to take a job name
  from, so it needs `name:`.
- Anything else must be a regular file. A FIFO, a device or a folder is
  refused with one line; the file is opened with `O_NONBLOCK`, so opening a
  FIFO never waits for a writer.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from render.errors import SpecError

__all__ = ["MAX_SPEC_BYTES", "STDIN_PATH", "spec_path", "read_spec_text"]

MAX_SPEC_BYTES = 1 << 20
STDIN_NAMES = ("-", "/dev/stdin")
STDIN_PATH = Path("<stdin>")  # its folder is '.': relative paths resolve against the current folder


def spec_path(argument: Path | str) -> Path:
    """The job's path as the rest of the code sees it: `STDIN_PATH` for `-` and `/dev/stdin`."""
    return STDIN_PATH if str(argument) in STDIN_NAMES else Path(argument)


def read_spec_text(path: Path) -> str:
    """The spec's text, from `path` (see `spec_path`); `SpecError` when it cannot or should not be read."""
    data = _read_stdin() if path == STDIN_PATH else _read_file(path)
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: a job spec is at most {MAX_SPEC_BYTES} bytes (1 MiB); this one is larger")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: cannot read job file (not UTF-8: {error.reason} at byte {error.start})") from None


def _read_stdin() -> bytes:
    if sys.stdin is None:
        raise SpecError(f"{STDIN_PATH}: cannot read the job from standard input: it is closed")
    return sys.stdin.buffer.read(MAX_SPEC_BYTES + 1)


def _read_file(path: Path) -> bytes:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SpecError(f"{path}: job file not found") from None
    except OSError as error:
        raise SpecError(f"{path}: cannot read job file ({error.strerror})") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise SpecError(f"{path}: not a regular file ({kind}); to read a job from standard input, pass -")
    with open(descriptor, "rb") as file:
        return file.read(MAX_SPEC_BYTES + 1)
