"""From a checkpoint file to a `Generator`, chosen by the file's content.

`FAMILIES` is the one list of supported families. Each family module exports
`recognize(content) -> bool` and `build(content) -> Generator`, where `content`
is what `checkpoint.read_checkpoint` returns (plain dicts, tensors and, for
NVIDIA pickles, inert records). The first family that recognizes the content
builds the model; the file name and extension are never consulted.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from render.errors import CheckpointError
from render.models import dcgan, genforce, nvidia, rosinality
from render.models.base import Generator
from render.models.checkpoint import read_checkpoint, sha256_file, sniff
from render.untrusted import bounded_repr

__all__ = ["FAMILIES", "load_generator", "build_generator", "describe_checkpoint"]

FAMILIES: tuple[ModuleType, ...] = (nvidia, rosinality, genforce, dcgan)


def build_generator(content: object, source: str) -> Generator:
    """The generator described by checkpoint `content`; `source` names it in errors."""
    for family in FAMILIES:
        if family.recognize(content):
            try:
                return family.build(content)
            except CheckpointError as error:
                raise CheckpointError(f"{source}: {error}") from None
    if isinstance(content, Mapping):
        keys = ", ".join(bounded_repr(key, 40) for key in itertools.islice(content, 12))
        found = f"a dict with keys {keys}{' …' if len(content) > 12 else ''}"
    else:
        found = type(content).__name__
    known = ", ".join(family.__name__.rsplit(".", 1)[-1] for family in FAMILIES)
    raise CheckpointError(f"{source}: no supported generator found in {found} (supported: {known})")


def load_generator(path: Path) -> Generator:
    """Read `path` safely and build its generator (on the CPU, in eval mode)."""
    return build_generator(read_checkpoint(Path(path)), str(path))


def describe_checkpoint(path: Path) -> dict[str, object]:
    """What `sefa-render inspect` prints: format, architecture, container, sizes, sha256.

    Reading the file runs no code from it (see `checkpoint.read_checkpoint`).
    """
    path = Path(path)
    generator = load_generator(path)
    return {"path": str(path), "container": sniff(path), "sha256": sha256_file(path), **generator.describe()}
