"""PGGAN (Karras et al. 2018) generators in genforce's layout, our own implementation.

The module tree, and so the state-dict names, are genforce's
(`models/pggan_generator.py`; `shared/research/checkpoint-formats.md` §7.2):
per resolution r = 4·2^k a first conv `layer{2k}` (at 4×4 the "dense" layer,
a 4×4 conv applied with padding 3 to z viewed as 1×1), a second conv
`layer{2k+1}` and a ToRGB `output{k}`; plus the progressive-growing buffer
`lod`. Every conv first pixel-normalises its input; weights are scaled at run
time (equalized learning rate, gain √2, ToRGB gain 1), then bias and
LeakyReLU(0.2); the image is the last ToRGB, not squashed.

Edit space: the pixel-normalised z, one slot, as genforce/sefa does it: the
code is PN(z), an edit adds α·n to it, and synthesis normalises again.

SeFa: the first layer is linear in the normalised z before its bias: on a 1×1
input with padding 3, output (o, y, x) = Σ_c W[o, c, 3−y, 3−x]·z_c. So the
weight flipped on both spatial axes and flattened to [C0·16, Z] is that
linear map (`first_layer_matrix`), the matrix genforce's `factorize_weight`
builds (transposed).

Not in the weights, so genforce's defaults are assumed: no class label (the
first layer's input width is z_dim), `final_tanh` off, equalized learning rate.
`fused_scale` (a transposed-conv upsampling) is read from the weight layout
where a layer changes width, else genforce's default (off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from render.models import genforce_common as gc
from render.models.base import Generator, Sampling

__all__ = ["PGGANConfig", "PGGANGenerator", "config_from_state", "build"]

_LRELU_SLOPE = 0.2


@dataclass(frozen=True)
class PGGANConfig:
    z_dim: int
    channels: tuple[int, ...]   # feature maps at 4, 8, …, R
    img_channels: int
    fused_scale: bool = False   # upsampling as one transposed conv instead of nearest ×2 + conv

    @property
    def img_resolution(self) -> int:
        return 4 * 2 ** (len(self.channels) - 1)


class _Conv(nn.Module):
    """One genforce PGGAN ConvBlock: PN → (upsample) → conv(W·wscale) + b → activation."""

    def __init__(self, weight_shape: tuple[int, ...], fan_in: int, padding: int, kind: str, gain: float, activate: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(weight_shape))
        self.bias = nn.Parameter(torch.zeros(weight_shape[1] if kind == "fused" else weight_shape[0]))
        self.scale = gc.wscale(gain, fan_in)
        self.padding, self.kind, self.activate = padding, kind, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = gc.pixel_norm(x)
        weight = self.weight * self.scale
        if self.kind == "fused":
            # genforce's fused_scale: a stride-2 transposed conv whose 4×4 kernel is the sum of the four
            # shifted copies of the 3×3 one (nearest ×2 then a 3×3 conv with the kernel flipped).
            weight = F.pad(weight, (1, 1, 1, 1))
            weight = weight[:, :, 1:, 1:] + weight[:, :, :-1, 1:] + weight[:, :, 1:, :-1] + weight[:, :, :-1, :-1]
            x = F.conv_transpose2d(x, weight, self.bias, stride=2, padding=1)
        else:
            if self.kind == "up":
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = F.conv2d(x, weight, self.bias, padding=self.padding)
        return F.leaky_relu(x, _LRELU_SLOPE) if self.activate else x


class PGGANGenerator(gc.GenforceSampling, Generator):
    family = "pggan"
    batch_sizes = {"cpu": 16, "cuda": 64}  # bounds activation memory at 1024 px; not tuned by a benchmark

    def __init__(self, config: PGGANConfig):
        super().__init__()
        self.config = config
        self.set_sizes(z_dim=config.z_dim, latent_dim=config.z_dim, num_layers=1,
                       img_resolution=config.img_resolution, img_channels=config.img_channels)
        self.register_buffer("lod", torch.zeros(()))
        root2 = math.sqrt(2.0)
        for k, width in enumerate(config.channels):
            if k == 0:
                first = _Conv((width, config.z_dim, 4, 4), 16 * config.z_dim, 3, "dense", root2, True)
            else:
                previous = config.channels[k - 1]
                shape = (previous, width, 3, 3) if config.fused_scale else (width, previous, 3, 3)
                first = _Conv(shape, 9 * previous, 1, "fused" if config.fused_scale else "up", root2, True)
            setattr(self, f"layer{2 * k}", first)
            setattr(self, f"layer{2 * k + 1}", _Conv((width, width, 3, 3), 9 * width, 1, "conv", root2, True))
            setattr(self, f"output{k}", _Conv((config.img_channels, width, 1, 1), width, 0, "conv", 1.0, False))
        self.requires_grad_(False)
        self.eval()

    def latents(self, z: torch.Tensor, sampling: Sampling) -> torch.Tensor:
        self.require_sampling(sampling)
        return gc.pixel_norm(z)[:, None, :]  # sefa.py's code: PN(z)

    def synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        x = gc.pixel_norm(latents[:, 0, :])  # genforce's forward normalises its input again
        x = x.view(x.shape[0], self.z_dim, 1, 1)
        for k in range(len(self.config.channels)):
            x = getattr(self, f"layer{2 * k + 1}")(getattr(self, f"layer{2 * k}")(x))
        return getattr(self, f"output{len(self.config.channels) - 1}")(x)

    def first_layer_matrix(self) -> torch.Tensor:
        """layer0 as a linear map of the normalised z, [C0·16, Z]: rows in (channel, y, x) order."""
        weight = self.layer0.weight.detach()  # [C0, Z, 4, 4]
        return weight.flip(2, 3).permute(0, 2, 3, 1).reshape(-1, self.z_dim)

    def sefa_weight(self, layer: int) -> np.ndarray:
        assert layer == 0, "PGGAN has a single edit slot"
        return self.first_layer_matrix().cpu().double().numpy()


def config_from_state(state: Mapping[str, torch.Tensor], prefix: str) -> PGGANConfig:
    """Sizes from tensor shapes, checked against the limits before anything is built."""
    shapes = gc.StateShapes(state, prefix, "PGGAN")
    count = shapes.count("output{}.weight")
    widths = tuple(shapes.size(f"layer{2 * k + 1}.weight", 4, 0) for k in range(count))
    fused = False
    for k in range(1, count):  # the first layer that changes width tells the weight layout
        if widths[k] != widths[k - 1]:
            fused = shapes.shape(f"layer{2 * k}.weight", 4)[:2] == (widths[k - 1], widths[k])
            break
    return PGGANConfig(z_dim=shapes.size("layer0.weight", 4, 1, limit="z_dim"), channels=widths,
                       img_channels=shapes.size("output0.weight", 4, 0, limit=4), fused_scale=fused)


def build(state: Mapping[str, torch.Tensor], prefix: str, container: str) -> PGGANGenerator:
    config = config_from_state(state, prefix)
    return gc.load_checked(lambda: PGGANGenerator(config), config.channels, state, prefix, "PGGAN", "lod", container)
