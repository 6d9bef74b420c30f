"""Paths inside a job folder, reached without ever following a symbolic link.

A job folder can be shared, or prepared by someone else before a run: a link
planted as `.work/lock`, `.work/journal.jsonl`, `videos/<name>` or a shard's
rows file would otherwise make the run truncate, append to, write into or
read back a file outside the folder. Every file the tool writes, renames
over, deletes or reads back inside a job folder is reached through here:

- `job_folder` makes `<output root>/<job name>` and refuses it when it is a
  link (it is never resolved: a planted link would aim the run, and the
  clean-up of leftover `.*.partial` files, at any folder). The output root
  itself is the user's choice and may be a link.
- `job_path` is the one place output paths are built: the relative path may
  not leave the folder (no absolute paths, no `..`), every folder on the way
  must be a real directory (missing ones are created) and the entry itself
  must not be a link. A job folder that vanished raises `OutputLost`.
  `existing_file` is its counterpart for removing files (`run --prune`): it
  creates nothing and answers None for anything but a regular file reached
  through real folders.
- Files are opened with `O_NOFOLLOW` (`no_follow`, for `open(opener=…)`),
  temporary files are created with `O_EXCL` as well (`create_new`), a final
  name is replaced only when it is not a link (`replace`), and sizes come
  from `lstat` (`regular_size`).

Not covered: a process that swaps a checked folder for a link *while* the run
writes into it. Closing that window needs every operation relative to
directory file descriptors, which ffmpeg (it opens its output by name) cannot
join; and such a process has write access to the folder during the run, so it
can change any output anyway.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from render.errors import OutputError, OutputLost

__all__ = ["job_folder", "job_path", "existing_file", "check_directory", "no_follow", "create_new", "replace",
           "read_text", "regular_size", "reason"]


def reason(error: OSError) -> str:
    """Why a folder cannot be made or used, in words ('File exists' would say little)."""
    return "a file is in the way" if isinstance(error, (FileExistsError, NotADirectoryError)) else str(error.strerror)


def _refuse_link(path: Path | str) -> OutputError:
    return OutputError(f"{path}: is a symbolic link; sefa-render never writes or reads through links inside a "
                       f"job folder (remove the link)")


def check_directory(path: Path, *, lost: bool = False) -> None:
    """`path` must be a real directory; `lost`: its absence means the job folder vanished during the run."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if lost:
            raise OutputLost(f"{path}: the job folder was deleted during the run; "
                             f"rerun the job to render it again") from None
        raise OutputError(f"{path}: folder not found") from None
    if stat.S_ISLNK(mode):
        raise _refuse_link(path)
    if not stat.S_ISDIR(mode):
        raise OutputError(f"{path}: not a folder (a file is in the way)")


def job_folder(output_root: Path, name: str) -> Path:
    """`output_root/name`, created if missing; refused if it is a link or a file, or if `name` is not one plain name."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise OutputError(f"{name!r} cannot name a job folder under {output_root}")
    folder = Path(output_root) / name
    try:
        Path(output_root).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{folder}: cannot create the output folder ({reason(error)})") from None
    try:
        folder.mkdir()
    except FileExistsError:
        pass  # the folder, or a file or a link in its way: check_directory says which
    except OSError as error:
        raise OutputError(f"{folder}: cannot create the output folder ({reason(error)})") from None
    check_directory(folder)
    return folder


def job_path(root: Path, relative: str | PurePosixPath, *, folder: bool = False) -> Path:
    """`root/relative` after checking that it stays inside the job folder `root` and reaches it through no link.

    Missing folders on the way are created (with `folder=True` the entry itself
    is a folder, created too). Raises `OutputError` naming the offending path.
    """
    parts = _parts_inside(relative)
    if parts is None:
        raise OutputError(f"{root}: {str(relative)!r} would leave the job folder")
    check_directory(root, lost=True)
    current = Path(root)
    for part in parts if folder else parts[:-1]:
        current = current / part
        try:
            os.mkdir(current)
        except FileExistsError:
            pass
        except FileNotFoundError:
            check_directory(root, lost=True)
            raise OutputError(f"{current}: its folder vanished during the run") from None
        except OSError as error:
            raise OutputError(f"{current}: cannot create the folder ({reason(error)})") from None
        check_directory(current)
    if folder:
        return current
    final = current / parts[-1]
    if os.path.islink(final):
        raise _refuse_link(final)
    return final


def existing_file(root: Path, relative: str | PurePosixPath) -> Path | None:
    """`root/relative` if it is a regular file inside the job folder `root`, reached through no link; else None.

    For clean-up: unlike `job_path` it creates nothing and refuses nothing, it only tells what is plainly ours.
    """
    parts = _parts_inside(relative)
    if parts is None:
        return None
    path = Path(root)
    for part in parts[:-1]:
        path = path / part
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):  # a link or a file on the way
                return None
        except OSError:
            return None
    path = path / parts[-1]
    return path if regular_size(path) is not None else None


def _parts_inside(relative: str | PurePosixPath) -> tuple[str, ...] | None:
    """The parts of a job-relative path, or None if it is empty or would leave the folder (absolute, `..`)."""
    parts = PurePosixPath(relative).parts
    return None if not parts or PurePosixPath(relative).is_absolute() or ".." in parts else parts


def no_follow(path: str | os.PathLike, flags: int, mode: int = 0o666) -> int:
    """An `opener` for `open()` that refuses a link as the file itself (`O_NOFOLLOW`)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _refuse_link(path) from None
        raise


def create_new(path: Path) -> None:
    """Create `path` as a new empty file of ours: never through a link, never over an existing entry."""
    os.close(no_follow(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))


def replace(temporary: Path, final: Path) -> None:
    """Rename `temporary` over `final`, unless `final` is a link (which the rename would silently replace)."""
    if os.path.islink(final):
        raise _refuse_link(final)
    os.replace(temporary, final)


def read_text(path: Path) -> str:
    """A file's UTF-8 text; a link is refused."""
    with open(path, encoding="utf-8", opener=no_follow) as file:
        return file.read()


def regular_size(path: Path) -> int | None:
    """Size of `path` if it is a regular file (not a link), else None."""
    try:
        status = os.lstat(path)
    except OSError:
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None
