"""Whether the user cache can be used. The cache only saves time, so a run never depends on it.

`usable(root)` creates the cache folder and checks that it can hold files,
once per folder and process. When it cannot (`$SEFA_RENDER_CACHE` is a file
or lies under `/proc`, `HOME` is unusable, no permission) it warns once and
returns None: directions are then computed on every run and not stored. (The
zoo fetch needs a place for the weights and says so itself: `zoo.fetch`.)

Stale partial files of killed cache writes are removed by
`directions_cache.store`.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from pathlib import Path

from render import safe_fs
from render.errors import RenderWarning

__all__ = ["usable"]


@functools.lru_cache(maxsize=None)
def usable(root: Path) -> Path | None:
    """`root`, created and writable; None (after one warning) when it cannot be used."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as error:
        warnings.warn(f"the cache folder {root} cannot be used ({safe_fs.reason(error)}); carrying on without it "
                      f"(directions are computed again on every run)", RenderWarning, stacklevel=2)
        return None
    return root
