"""genforce `.pth` checkpoints (the models genforce/sefa ships): PGGAN, StyleGAN, StyleGAN2.

The container (`shared/research/checkpoint-formats.md` §7.1) is a dict of state
dicts, `{'generator', 'discriminator', 'generator_smooth'}` from genforce's
converters, or the same under `models` in genforce training checkpoints,
possibly with DataParallel's `module.` prefix. As genforce/sefa's
`load_generator` does, `generator_smooth` (the moving average) is used when
present, else `generator`. The family is read from the key names:

- `synthesis.early_layer.*`: StyleGAN2 (`genforce_stylegan2`, onto our StyleGAN2);
- other `synthesis.*` / `mapping.*`: StyleGAN v1 (`stylegan1`);
- `layer0.*` / `output0.*` at the top level: PGGAN (`pggan`).

No hyper-parameter is stored; each family reads them from the tensor shapes
and checks them against limits before building anything, then loads strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from render.errors import CheckpointError
from render.models import genforce_stylegan2, pggan, stylegan1
from render.models.base import Generator

__all__ = ["recognize", "build"]

_CONTAINERS = ("generator_smooth", "generator")  # in order of preference, as genforce/sefa loads them
_MARKERS = ("synthesis.", "mapping.", "truncation.", "layer0.", "output0.")


def _find(content: Any) -> tuple[Mapping[str, Any], str] | None:
    """The preferred generator state dict and its key path ('generator_smooth.', 'models.generator.module.')."""
    if not isinstance(content, Mapping):
        return None
    for outer, holder in (("", content), ("models.", content.get("models"))):
        if not isinstance(holder, Mapping):
            continue
        for key in _CONTAINERS:
            state = holder.get(key)
            if isinstance(state, Mapping) and state:
                return state, f"{outer}{key}."
    return None


def _strip_module(state: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], str]:
    if all(isinstance(name, str) and name.startswith("module.") for name in state):
        return {name[len("module."):]: value for name, value in state.items()}, prefix + "module."
    return dict(state), prefix


def recognize(content: Any) -> bool:
    """True for a genforce container whose generator has genforce's key names."""
    found = _find(content)
    if found is None:
        return False
    state, _ = _strip_module(*found)
    return any(isinstance(name, str) and name.startswith(_MARKERS) for name in state)


def build(content: Any) -> Generator:
    found = _find(content)
    assert found is not None, "build() called on content recognize() refused"
    state, prefix = _strip_module(*found)
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
    container = prefix.rstrip(".")
    if any(name.startswith("synthesis.early_layer.") for name in state):
        return genforce_stylegan2.build(state, prefix, container)
    if any(name.startswith(("synthesis.", "mapping.", "truncation.")) for name in state):
        return stylegan1.build(state, prefix, container)
    return pggan.build(state, prefix, container)
