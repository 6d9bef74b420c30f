"""WebDataset tar shards: `<key>.input.png`, `<key>.edited.png` (or .jpg), `<key>.json` per sample, in key order.

Members carry fixed metadata (mtime 0, uid/gid 0, mode 0644, no user or
group names, USTAR format), so the same samples give the same tar bytes on
any machine and with any worker count. A shard is streamed to a temporary
file and renamed into place when complete, so a tar that exists is whole.
"""

from __future__ import annotations

import io
import json
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from render.sinks.atomic import atomic_write

__all__ = ["ShardWriter", "open_shard", "shard_name", "shard_pattern"]


def shard_name(split: str, shard: int, extension: str = "tar") -> str:
    return f"{split}-{shard:06d}.{extension}"


def shard_pattern(split: str, shards: int, extension: str = "tar") -> str:
    """All `shards` names in the brace notation that `webdataset` expands: 'train-{000000..000099}.tar'."""
    return f"{split}-{{{0:06d}..{shards - 1:06d}}}.{extension}"


class ShardWriter:
    """Append samples to `tar` (an open TarFile)."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar

    def add(self, key: str, extension: str, input_image: bytes, edited_image: bytes, metadata: dict[str, Any]) -> None:
        if "." in key:
            raise ValueError(f"WebDataset key {key!r} contains a dot")
        text = json.dumps(metadata, ensure_ascii=False, sort_keys=True).encode("utf-8")
        for suffix, data in ((f"input.{extension}", input_image), (f"edited.{extension}", edited_image), ("json", text)):
            member = tarfile.TarInfo(f"{key}.{suffix}")
            member.size, member.mtime, member.mode = len(data), 0, 0o644
            self._tar.addfile(member, io.BytesIO(data))


@contextmanager
def open_shard(final: Path) -> Iterator[ShardWriter]:
    """`with open_shard(path) as writer:` writes the tar atomically; an exception leaves no file."""
    with atomic_write(final) as temporary, tarfile.open(temporary, "w", format=tarfile.USTAR_FORMAT) as tar:
        yield ShardWriter(tar)
