"""The on-disk cache of SeFa results, verified before it is trusted.

    <cache>/directions/<checkpoint sha256>-sefa<version>-layers<layers>.npz
      directions   [k, latent_dim] float64
      eigenvalues  [k] float64
      record       JSON text: what the arrays were computed from (checkpoint_sha256,
                   method, layers, version) and `content_sha256`, the sha256 of
                   the two arrays' bytes

An entry is used only when it loads, its record equals what the caller asks
for, the arrays have the shapes the generator implies, every value is finite
and the checksum matches. Anything else (a truncated file, `BadZipFile`,
vectors replaced by others, an entry from another code version) makes
`load` raise `BadEntry` with the reason; the caller computes the directions
again and replaces the entry, so one bad file never poisons later runs.

Entries are written atomically (`sinks/atomic.py`). A writer killed in the
middle leaves a hidden `.partial`; `store` removes partials older than
`STALE_PARTIAL_S` (a live writer holds one for milliseconds).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from render.sinks.atomic import PARTIAL_SUFFIX, atomic_path

__all__ = ["BadEntry", "load", "store", "STALE_PARTIAL_S"]

STALE_PARTIAL_S = 3600.0


class BadEntry(Exception):
    """A cache entry that must not be used; the message says why."""


def content_sha256(directions: np.ndarray, eigenvalues: np.ndarray) -> str:
    return hashlib.sha256(directions.tobytes() + eigenvalues.tobytes()).hexdigest()


def load(path: Path, record: dict[str, Any], latent_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(directions, eigenvalues) from the entry at `path`, computed from `record`; BadEntry if it is not usable."""
    try:
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as entry:  # np.load leaks a file it opened
            directions, eigenvalues = entry["directions"], entry["eigenvalues"]
            stored = json.loads(entry["record"].item())
    except Exception as error:  # anything a damaged zip can raise: BadZipFile, EOFError, ValueError, KeyError, …
        raise BadEntry(f"unreadable ({type(error).__name__}: {error})") from None
    if not isinstance(stored, dict) or {key: stored.get(key) for key in record} != record:
        raise BadEntry("computed from something else (its record does not match)")
    if directions.dtype != np.float64 or eigenvalues.dtype != np.float64 or directions.ndim != 2 \
            or directions.shape[1] != latent_dim or eigenvalues.shape != directions.shape[:1]:
        raise BadEntry(f"wrong arrays ({directions.dtype} {list(directions.shape)}, "
                       f"{eigenvalues.dtype} {list(eigenvalues.shape)})")
    if stored.get("content_sha256") != content_sha256(directions, eigenvalues):
        raise BadEntry("its vectors do not match their checksum")
    if not (np.isfinite(directions).all() and np.isfinite(eigenvalues).all()):
        raise BadEntry("non-finite values")
    return directions, eigenvalues


def store(path: Path, record: dict[str, Any], directions: np.ndarray, eigenvalues: np.ndarray) -> None:
    """Write an entry atomically (OSError if it cannot be written); first remove partials of killed writers."""
    remove_stale_partials(path.parent)
    text = json.dumps({**record, "content_sha256": content_sha256(directions, eigenvalues)})
    with atomic_path(path) as temporary, open(temporary, "wb") as out:
        np.savez(out, directions=directions, eigenvalues=eigenvalues, record=np.array(text))


def remove_stale_partials(folder: Path) -> None:
    now = time.time()
    for partial in folder.glob(f".*{PARTIAL_SUFFIX}"):
        try:
            if now - partial.stat().st_mtime > STALE_PARTIAL_S:
                partial.unlink()
        except OSError:
            pass  # removed by another process in the meantime
