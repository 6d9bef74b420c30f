"""Whether the user cache can be used. The cache only saves time, so a run never depends on it.

`usable(root)` creates the cache folder and checks that it can hold files,
once per folder and process. When it cannot (`$SEFA_RENDER_CACHE` is a file
or lies under `/proc`, `HOME` is unusable, no permission) it warns once and
returns None: directions are then computed on every run and not stored. (The
zoo fetch needs a place for the weights and says so itself: `zoo.fetch`.)

A directions-cache write that was killed leaves a `.*.partial` file beside
its target. Those older than `STALE_PARTIAL_S` are removed when the folder is
first used: no write of ours takes that long, and a concurrent run's
temporary file is younger.
"""

from __future__ import annotations

import functools
import tempfile
import time
import warnings
from pathlib import Path

from render import safe_fs
from render.errors import RenderWarning
from render.sinks.atomic import PARTIAL_SUFFIX

__all__ = ["usable", "STALE_PARTIAL_S"]

STALE_PARTIAL_S = 3600.0


@functools.lru_cache(maxsize=None)
def usable(root: Path) -> Path | None:
    """`root`, created, writable and rid of stale partial files; None (after one warning) when it cannot be used."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as error:
        warnings.warn(f"the cache folder {root} cannot be used ({safe_fs.reason(error)}); carrying on without it "
                      f"(directions are computed again on every run)", RenderWarning, stacklevel=2)
        return None
    _remove_stale_partials(root / "directions")
    return root


def _remove_stale_partials(folder: Path) -> None:
    now = time.time()
    for partial in folder.glob(f".*{PARTIAL_SUFFIX}"):
        try:
            if now - partial.lstat().st_mtime > STALE_PARTIAL_S:
                partial.unlink()
        except OSError:
            continue  # gone already, or not ours to remove
