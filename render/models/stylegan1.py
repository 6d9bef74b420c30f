"""StyleGAN (v1, Karras et al. 2019) generators in genforce's layout, our own implementation.

The module tree, and so the state-dict names, are genforce's
(`models/stylegan_generator.py`; `shared/research/checkpoint-formats.md` §7.3):
`mapping.dense{i}`, `truncation.w_avg`, and `synthesis.layer{j}` (two per
resolution, the first at 4×4 a learned constant), `synthesis.output{k}` (ToRGB
per resolution; the image is the last one) and the buffer `synthesis.lod`.

Mapping: z → pixel norm → dense layers (equalized lr ×0.01, gain √2 folded into
the weight scale), LeakyReLU(0.2) after each. Synthesis layer j, reading w+
slot j:

    (const | nearest ×2 then 3×3 conv | from 128 px a stride-2 transposed conv)
    → depthwise [1,2,1]² blur (upsampling layers) → + noise·strength_c → + bias
    → LeakyReLU(0.2) → instance norm → x·(1 + s_scale) + s_shift,
    s = w_j·(style.weight/√W)ᵀ + style.bias  (AdaIN: scale half, then shift half)

Edit space: w+ after genforce's truncation; SeFa for slot j factorizes the
style weight of layer j, both halves [2·C, W] (genforce's `factorize_weight`).

Not in the weights, so genforce's defaults are assumed: `fused_scale='auto'`
(transposed conv from 128 px on), `final_tanh` off, a constant input, one w
repeated over the slots, no class label (the last three are checked: their
tensors would differ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from render.models import genforce_common as gc
from render.models.base import Generator, Sampling

__all__ = ["StyleGANConfig", "StyleGANGenerator", "config_from_state", "build"]

_LRELU_SLOPE = 0.2
_FUSED_FROM = 128          # genforce's fused_scale='auto': transposed conv from this resolution on
_MAPPING_LR_MUL = 0.01


@dataclass(frozen=True)
class StyleGANConfig:
    z_dim: int
    w_dim: int
    mapping_layers: int
    mapping_features: int       # width of the hidden mapping layers
    channels: tuple[int, ...]   # feature maps at 4, 8, …, R
    img_channels: int

    @property
    def img_resolution(self) -> int:
        return 4 * 2 ** (len(self.channels) - 1)

    @property
    def num_layers(self) -> int:
        return 2 * len(self.channels)


class _Dense(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))


class _Mapping(nn.Module):
    def __init__(self, config: StyleGANConfig):
        super().__init__()
        widths = [config.z_dim] + [config.mapping_features] * (config.mapping_layers - 1) + [config.w_dim]
        for i in range(config.mapping_layers):
            setattr(self, f"dense{i}", _Dense(widths[i], widths[i + 1]))
        self.scales = [gc.wscale(math.sqrt(2.0), widths[i], _MAPPING_LR_MUL) for i in range(config.mapping_layers)]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = gc.pixel_norm(z)
        for i, scale in enumerate(self.scales):
            layer = getattr(self, f"dense{i}")
            x = F.leaky_relu(gc.dense(x, layer.weight, layer.bias, scale, _MAPPING_LR_MUL), _LRELU_SLOPE)
        return x


class _Truncation(nn.Module):
    def __init__(self, w_dim: int):
        super().__init__()
        self.register_buffer("w_avg", torch.zeros(w_dim))


class _Noise(nn.Module):
    def __init__(self, resolution: int, channels: int):
        super().__init__()
        self.register_buffer("noise", torch.zeros(1, 1, resolution, resolution))
        self.weight = nn.Parameter(torch.zeros(channels))  # per-channel strength


class _Blur(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("kernel", torch.zeros(channels, 1, 3, 3))


class _StyleLayer(nn.Module):
    """One synthesis layer j: (const | conv) → blur → noise → bias → lrelu → instance norm → AdaIN."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, w_dim: int, kind: str):
        super().__init__()
        self.kind = kind  # 'const', 'conv', 'up' or 'fused'
        if kind == "const":
            self.const = nn.Parameter(torch.zeros(1, out_channels, resolution, resolution))
        else:
            self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, 3, 3))
            self.scale = gc.wscale(math.sqrt(2.0), 9 * in_channels)
        if kind in ("up", "fused"):
            self.blur = _Blur(out_channels)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.apply_noise = _Noise(resolution, out_channels)
        self.style = _Dense(w_dim, 2 * out_channels)
        self.style_scale = gc.wscale(1.0, w_dim)

    def forward(self, x: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor:
        if self.kind == "const":
            x = self.const.repeat(w.shape[0], 1, 1, 1)
        else:
            assert x is not None
            weight = self.weight * self.scale
            if self.kind == "fused":  # as in PGGAN: a transposed conv with the 4 shifted copies summed
                weight = F.pad(weight, (1, 1, 1, 1))
                weight = weight[:, :, 1:, 1:] + weight[:, :, :-1, 1:] + weight[:, :, 1:, :-1] + weight[:, :, :-1, :-1]
                x = F.conv_transpose2d(x, weight.permute(1, 0, 2, 3), stride=2, padding=1)
            else:
                if self.kind == "up":
                    x = F.interpolate(x, scale_factor=2, mode="nearest")
                x = F.conv2d(x, weight, padding=1)
            if self.kind != "conv":
                x = F.conv2d(x, self.blur.kernel, padding=1, groups=x.shape[1])
        x = x + self.apply_noise.noise * self.apply_noise.weight.view(1, -1, 1, 1)
        x = F.leaky_relu(x + self.bias.view(1, -1, 1, 1), _LRELU_SLOPE)
        x = x - torch.mean(x, dim=[2, 3], keepdim=True)
        x = x / torch.sqrt(torch.mean(x**2, dim=[2, 3], keepdim=True) + 1e-8)
        style = F.linear(w, self.style.weight * self.style_scale, self.style.bias)
        style = style.view(-1, 2, x.shape[1], 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]


class _ToRGB(nn.Module):
    def __init__(self, in_channels: int, img_channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.scale = gc.wscale(1.0, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale) + self.bias.view(1, -1, 1, 1)


class _Synthesis(nn.Module):
    def __init__(self, config: StyleGANConfig):
        super().__init__()
        self.register_buffer("lod", torch.zeros(()))
        self.count = len(config.channels)
        for k, width in enumerate(config.channels):
            resolution = 4 * 2**k
            if k == 0:
                first = _StyleLayer(width, width, resolution, config.w_dim, "const")
            else:
                kind = "fused" if resolution >= _FUSED_FROM else "up"
                first = _StyleLayer(config.channels[k - 1], width, resolution, config.w_dim, kind)
            setattr(self, f"layer{2 * k}", first)
            setattr(self, f"layer{2 * k + 1}", _StyleLayer(width, width, resolution, config.w_dim, "conv"))
            setattr(self, f"output{k}", _ToRGB(width, config.img_channels))

    def forward(self, wp: torch.Tensor) -> torch.Tensor:
        x = None
        for j in range(2 * self.count):
            x = getattr(self, f"layer{j}")(x, wp[:, j])
        return getattr(self, f"output{self.count - 1}")(x)


class StyleGANGenerator(gc.GenforceSampling, Generator):
    family = "stylegan"
    batch_sizes = {"cpu": 8, "cuda": 32}  # bounds activation memory at 1024 px; not tuned by a benchmark
    truncates = True

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        self.config = config
        self.set_sizes(z_dim=config.z_dim, latent_dim=config.w_dim, num_layers=config.num_layers,
                       img_resolution=config.img_resolution, img_channels=config.img_channels)
        self.default_sampling = gc.default_truncation(self.num_layers)
        self.mapping = _Mapping(config)
        self.truncation = _Truncation(config.w_dim)
        self.synthesis = _Synthesis(config)
        self.requires_grad_(False)
        self.eval()

    def latents(self, z: torch.Tensor, sampling: Sampling) -> torch.Tensor:
        self.require_sampling(sampling)
        w = self.mapping(z)
        wp = w.view(-1, 1, self.latent_dim).repeat(1, self.num_layers, 1)
        return gc.truncate(wp, self.truncation.w_avg, sampling)

    def synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        self.check_latents(latents)
        return self.synthesis(latents)

    def sefa_weight(self, layer: int) -> np.ndarray:
        """Style weight [2·C, W] of synthesis layer `layer`: AdaIN scale rows, then shift rows."""
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"w slot {layer} is outside 0…{self.num_layers - 1}")
        return getattr(self.synthesis, f"layer{layer}").style.weight.detach().cpu().double().numpy()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "w_dim": self.config.w_dim, "num_ws": self.num_layers}


def config_from_state(state: Mapping[str, torch.Tensor], prefix: str) -> StyleGANConfig:
    """Sizes from tensor shapes, checked against the limits before anything is built."""
    shapes = gc.StateShapes(state, prefix, "StyleGAN")
    shapes.refuse("synthesis.layer0.weight", "a StyleGAN without a constant input is not supported")
    mapping = shapes.mapping()
    count = shapes.count("synthesis.output{}.weight")
    return StyleGANConfig(
        **mapping,
        channels=tuple(shapes.size(f"synthesis.layer{2 * k + 1}.weight", 4, 0) for k in range(count)),
        img_channels=shapes.size("synthesis.output0.weight", 4, 0, limit=4),
    )


def build(state: Mapping[str, torch.Tensor], prefix: str, container: str) -> StyleGANGenerator:
    config = config_from_state(state, prefix)
    return gc.load_checked(lambda: StyleGANGenerator(config), config.channels, state, prefix, "StyleGAN", "synthesis.lod", container)
