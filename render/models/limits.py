"""Sizes a checkpoint declares, checked against stated limits before anything is allocated.

A checkpoint's hyper-parameters are data: an NVIDIA pickle states
`img_resolution` and `w_dim` as plain integers, a state dict implies widths
and depth through its tensor shapes. Building a network from them allocates
what they say (noise buffers of R², weights of C², activations of C·R²), so a
3 KB file can ask for terabytes. Each family therefore

1. calls `check_sizes` with every size it read, as soon as it has read them;
2. builds its network with `skeleton` first: on the meta device, which gives
   every parameter's name and shape without memory, and refuses a network
   whose synthesis of one image would need more than `MAX_SYNTHESIS_BYTES`;
3. matches the checkpoint's tensor names and shapes against the skeleton,
   and only then builds the real network and loads the weights.

(`dcgan.build` is the short example; StyleGAN2-based loaders call
`stylegan2.skeleton(config)` and pass it to `stylegan2.load_state`, which
returns the real generator once the weights fit.)

Together with `checkpoint.read_checkpoint` (tensors backed by stored bytes)
this bounds memory by the file's size and the limits below, which are well
above every public model (README, "Limits").
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch
from torch import nn

from render.errors import CheckpointError
from render.untrusted import bounded_repr

__all__ = ["SIZE_LIMITS", "MAX_SYNTHESIS_BYTES", "ACTIVATION_COPIES", "check_sizes", "synthesis_bytes", "skeleton"]

# name → (largest accepted value, the largest public model, as the reason).
SIZE_LIMITS: dict[str, tuple[int, str]] = {
    "img_resolution": (4096, "public GANs render at most 1024 px"),
    "channels": (16_384, "the widest public generators have 2048 feature maps"),
    "z_dim": (4096, "public GANs use at most 512"),
    "w_dim": (4096, "public GANs use at most 512"),
    "c_dim": (100_000, "ImageNet models have 1000 classes"),
    "mapping_layers": (32, "StyleGAN uses 8"),
}
# One image's synthesis: parameters plus the largest feature map, held about this many
# times over (a layer's input, output, padded and upsampled temporaries, the image path).
ACTIVATION_COPIES = 8
MAX_SYNTHESIS_BYTES = 8 << 30
_FLOAT32_BYTES = 4

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def check_sizes(**sizes: int) -> None:
    """Refuse the first size that is negative or above its limit in `SIZE_LIMITS` (keys: the limits' names).

    Call it with every size read from a checkpoint before using any of them.

    >>> check_sizes(img_resolution=1024, w_dim=512)
    >>> check_sizes(w_dim=10**9)
    Traceback (most recent call last):
    ...
    render.errors.CheckpointError: w_dim 1000000000 is above sefa-render's limit of 4096 (public GANs use at most 512)

    Raises:
        CheckpointError: naming the size, its value and the limit.
    """
    for name, value in sizes.items():
        limit, reason = SIZE_LIMITS[name]
        if value < 0:
            raise CheckpointError(f"{name} {bounded_repr(value)} is negative")
        if value > limit:
            raise CheckpointError(f"{name} {bounded_repr(value)} is above sefa-render's limit of {limit} ({reason})")


def synthesis_bytes(parameters: int, largest_activation: int) -> int:
    """Estimated float32 memory to synthesise one image: parameters + `ACTIVATION_COPIES` × the largest feature map."""
    return _FLOAT32_BYTES * (parameters + ACTIVATION_COPIES * largest_activation)


def skeleton(build: Callable[[], ModuleT], largest_activation: int) -> ModuleT:
    """`build()` on the meta device: every parameter's name and shape, no memory.

    Use its `state_dict()` to check a checkpoint's tensor names and shapes
    before building the real network. `largest_activation` is the number of
    elements of the largest feature map one image passes through (e.g. C·R²).

    Raises:
        CheckpointError: when synthesising one image would need more than `MAX_SYNTHESIS_BYTES`.
    """
    with torch.device("meta"):
        module = build()
    parameters = sum(tensor.numel() for tensor in module.state_dict().values())
    needed = synthesis_bytes(parameters, largest_activation)
    if needed > MAX_SYNTHESIS_BYTES:
        raise CheckpointError(
            f"synthesising one image would need about {needed / 2**30:.1f} GiB ({parameters:,} parameters, "
            f"largest feature map {largest_activation:,} elements), more than sefa-render's limit of "
            f"{MAX_SYNTHESIS_BYTES / 2**30:.0f} GiB"
        )
    return module
