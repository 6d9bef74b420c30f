"""Tiny genforce `.pth` checkpoints (PGGAN, StyleGAN, StyleGAN2), written by the tests themselves.

Tensor names and shapes come from the format tables
(`shared/research/checkpoint-formats.md` §7.2–7.4), not from our modules, so a
naming mistake in `render.models` cannot hide in the fixtures. Values are
random but seeded and stored as genforce stores them: mapping weights ×1/lr_mul,
StyleGAN2 style biases without the constant 1, upsampling conv weights in TF
orientation, resampling filters with the ×4 gain, `lod` 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from checkpoints_stylegan2 import TINY_SG2, fir_filter, stylegan2_weights
from render.models.stylegan2 import StyleGAN2Config

# 8 px models: z (and w) of 6, widths 8 at 4 px and 4 at 8 px.
TINY_PGGAN = {"z_dim": 6, "channels": (8, 4), "img_channels": 3}
TINY_STYLEGAN = {"z_dim": 6, "w_dim": 6, "mapping_layers": 2, "channels": (8, 4), "img_channels": 3}
MAPPING_LR_MUL = 0.01


def _randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(shape, generator=gen) * scale


def pggan_weights(z_dim: int = 6, channels: tuple[int, ...] = (8, 4), img_channels: int = 3, *,
                  fused_scale: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """A genforce PGGAN generator state dict (§7.2)."""
    gen = torch.Generator().manual_seed(seed)
    weights = {"lod": torch.zeros(())}
    for k, width in enumerate(channels):
        if k == 0:
            weights["layer0.weight"] = _randn(gen, width, z_dim, 4, 4)
        else:
            previous = channels[k - 1]
            shape = (previous, width) if fused_scale else (width, previous)
            weights[f"layer{2 * k}.weight"] = _randn(gen, *shape, 3, 3)
        weights[f"layer{2 * k}.bias"] = _randn(gen, width, scale=0.2)
        weights[f"layer{2 * k + 1}.weight"] = _randn(gen, width, width, 3, 3)
        weights[f"layer{2 * k + 1}.bias"] = _randn(gen, width, scale=0.2)
        weights[f"output{k}.weight"] = _randn(gen, img_channels, width, 1, 1)
        weights[f"output{k}.bias"] = _randn(gen, img_channels, scale=0.2)
    return weights


def blur_kernel(channels: int) -> torch.Tensor:
    """outer([1, 2, 1]) / 16 for each channel, [C, 1, 3, 3]."""
    taps = torch.tensor([1.0, 2.0, 1.0])
    return (torch.outer(taps, taps) / 16).expand(channels, 1, 3, 3).clone()


def _mapping(gen: torch.Generator, weights: dict[str, torch.Tensor], z_dim: int, w_dim: int, mapping_layers: int) -> None:
    features = [z_dim] + [w_dim] * mapping_layers
    for i in range(mapping_layers):
        weights[f"mapping.dense{i}.weight"] = _randn(gen, features[i + 1], features[i], scale=1 / MAPPING_LR_MUL)
        weights[f"mapping.dense{i}.bias"] = _randn(gen, features[i + 1], scale=0.1 / MAPPING_LR_MUL)
    weights["truncation.w_avg"] = _randn(gen, w_dim, scale=0.3)


def stylegan_weights(z_dim: int = 6, w_dim: int = 6, mapping_layers: int = 2, channels: tuple[int, ...] = (8, 4),
                     img_channels: int = 3, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """A genforce StyleGAN (v1) generator state dict (§7.3)."""
    gen = torch.Generator().manual_seed(seed)
    weights: dict[str, torch.Tensor] = {}
    _mapping(gen, weights, z_dim, w_dim, mapping_layers)
    weights["synthesis.lod"] = torch.zeros(())
    for k, width in enumerate(channels):
        resolution = 4 * 2**k
        for j in (2 * k, 2 * k + 1):
            layer = f"synthesis.layer{j}"
            if j == 0:
                weights[f"{layer}.const"] = _randn(gen, 1, width, 4, 4)
            else:
                weights[f"{layer}.weight"] = _randn(gen, width, channels[k - 1] if j == 2 * k else width, 3, 3)
            if j == 2 * k and k > 0:
                weights[f"{layer}.blur.kernel"] = blur_kernel(width)
            weights[f"{layer}.bias"] = _randn(gen, width, scale=0.2)
            weights[f"{layer}.apply_noise.noise"] = _randn(gen, 1, 1, resolution, resolution)
            weights[f"{layer}.apply_noise.weight"] = _randn(gen, width, scale=0.3)
            weights[f"{layer}.style.weight"] = _randn(gen, 2 * width, w_dim)
            weights[f"{layer}.style.bias"] = _randn(gen, 2 * width, scale=0.2)
        weights[f"synthesis.output{k}.weight"] = _randn(gen, img_channels, width, 1, 1)
        weights[f"synthesis.output{k}.bias"] = _randn(gen, img_channels, scale=0.2)
    return weights


def genforce_stylegan2_weights(config: StyleGAN2Config = TINY_SG2, seed: int = 0,
                               canonical: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """A genforce StyleGAN2 state dict (§7.4) holding the same network as NVIDIA weights `canonical`.

    The NVIDIA weights (random, from `stylegan2_weights`) are written the way
    genforce stores them; a loader that converts correctly gets them back.
    """
    nv = canonical if canonical is not None else stylegan2_weights(config, seed)
    weights: dict[str, torch.Tensor] = {}
    for i in range(config.mapping_layers):
        for part in ("weight", "bias"):
            weights[f"mapping.dense{i}.{part}"] = nv[f"mapping.fc{i}.{part}"]
    weights["truncation.w_avg"] = nv["mapping.w_avg"]
    weights["synthesis.early_layer.const"] = nv["synthesis.b4.const"][None]

    def modulated(target: str, source: str, noise: bool, tf_orientation: bool = False) -> None:
        weight = nv[f"{source}.weight"]
        weights[f"{target}.weight"] = weight.flip(2, 3) if tf_orientation else weight
        weights[f"{target}.bias"] = nv[f"{source}.bias"]
        weights[f"{target}.style.weight"] = nv[f"{source}.affine.weight"]
        weights[f"{target}.style.bias"] = nv[f"{source}.affine.bias"] - 1  # genforce adds the 1 at run time
        if noise:
            weights[f"{target}.noise_strength"] = nv[f"{source}.noise_strength"]
            weights[f"{target}.noise"] = nv[f"{source}.noise_const"][None, None]

    for k, r in enumerate(config.block_resolutions):
        if k:
            modulated(f"synthesis.layer{2 * k - 1}", f"synthesis.b{r}.conv0", True, tf_orientation=True)
            weights[f"synthesis.layer{2 * k - 1}.filter.kernel"] = (fir_filter() * 4)[None, None]
        modulated(f"synthesis.layer{2 * k}", f"synthesis.b{r}.conv1", True)
        if config.architecture == "skip" or r == config.img_resolution:
            modulated(f"synthesis.output{k}", f"synthesis.b{r}.torgb", False)
    if config.architecture == "skip":
        weights["synthesis.upsample.kernel"] = (fir_filter() * 4)[None, None]
    return weights


def write_genforce(path: Path, weights: dict[str, torch.Tensor], *, smooth: bool = True, training: bool = False,
                   module_prefix: bool = False) -> Path:
    """`torch.save` a genforce container holding `weights`.

    smooth: store them as `generator_smooth`, with different weights (all +1) as `generator`,
    as genforce's converters do; otherwise as `generator` only.
    training: nest the state dicts under `models`, as genforce training checkpoints do;
    module_prefix: prefix every name with DataParallel's `module.`.
    """
    prefix = "module." if module_prefix else ""
    state = {prefix + name: value for name, value in weights.items()}
    models: dict[str, Any] = {"discriminator": {}}
    if smooth:
        models["generator"] = {name: value + 1 for name, value in state.items()}
        models["generator_smooth"] = state
    else:
        models["generator"] = state
    content = {"models": models, "running_metadata": {"iter": 10}} if training else models
    torch.save(content, path)
    return path
