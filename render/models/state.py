"""Strict state-dict checks shared by the family loaders.

A checkpoint's tensors must be exactly the ones the network needs: every expected
name present with its exact shape and floating-point values, and no other name
(a loader that drops extras would hide a checkpoint of another architecture).
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Mapping

import torch

from render.errors import CheckpointError
from render.untrusted import bounded_text

__all__ = ["check_names", "check_state"]


def check_names(expected: Collection[str], state: Mapping[str, Any], generator_name: str,
                source_name: Callable[[str], str] = lambda name: name) -> None:
    """Raise CheckpointError naming the first missing tensor, or the unexpected ones.

    For loaders that check shapes their own way; `check_state` checks names and exact shapes.
    """
    missing = [name for name in expected if name not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"missing tensor {source_name(missing[0])}{more} for a {generator_name} generator")
    known = set(expected)
    unexpected = [name for name in state if name not in known]
    if unexpected:
        listed = ", ".join(bounded_text(source_name(name), 60) for name in unexpected[:8])
        raise CheckpointError(f"unexpected tensors for a {generator_name} generator: {listed}{' …' if len(unexpected) > 8 else ''}")


def check_state(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, Any], generator_name: str,
                source_name: Callable[[str], str] = lambda name: name) -> None:
    """Raise CheckpointError naming the first missing or mis-shaped tensor, or the unexpected ones.

    `expected`: shape by canonical name; `source_name` turns a canonical name into the
    checkpoint's own, for messages.
    """
    check_names(expected, state, generator_name, source_name)
    for name, shape in expected.items():
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{source_name(name)} is a {type(tensor).__name__}, expected a tensor")
        if tuple(tensor.shape) != tuple(shape):
            raise CheckpointError(f"{source_name(name)} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
        if not tensor.is_floating_point():
            raise CheckpointError(f"{source_name(name)} holds {tensor.dtype} values, expected floats")
