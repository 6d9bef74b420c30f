"""genforce StyleGAN2 checkpoints (`models/stylegan2_generator.py`), renamed onto our StyleGAN2.

genforce's StyleGAN2 is config F in NVIDIA's TF layout under other names
(`shared/research/checkpoint-formats.md` §7.4); `_name_table` is the whole
renaming. Differences that need a conversion:

- Style affines add a constant 1 after their bias (`additional_bias`); NVIDIA
  stores that 1 in the bias, so 1 is added to every `style.bias`.
- Upsampling conv weights are stored in TF orientation and flipped at run time
  by genforce; NVIDIA (and we) store them flipped, so they are flipped here.
- Resampling filters are stored with the ×4 upsampling gain, ours without.
- Constant noise [1, 1, r, r] and the constant [1, C, 4, 4] lose their
  leading singleton axes.

Sampling follows genforce, not NVIDIA: seeds seed torch, the mapping runs as
genforce's (pixel norm x/√(mean x² + ε), `linear` with the scaled weight), and
truncation is genforce's (see `genforce_common`); default ψ 0.7 on 8 slots.
Synthesis is our StyleGAN2's: the same maths in NVIDIA's op order, so its
floats differ from genforce's by rounding (measured in the README).

Not in the weights: `final_tanh`, `fused_modulate` and `demodulate` take
genforce's defaults (off, on, on); the mapping's lr multiplier is 0.01.
genforce's 'resnet' variant cannot run in genforce itself and is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from render.errors import CheckpointError
from render.models import genforce_common as gc, limits
from render.models.state import check_state
from render.models.base import Sampling
from render.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator, load_state

__all__ = ["GenforceStyleGAN2Generator", "config_from_state", "build"]

_MAPPING_LR_MUL = 0.01
_UPSAMPLE_GAIN = 4  # genforce's filters hold the ×2 upsampling gain, factor² = 4


class GenforceStyleGAN2Generator(gc.GenforceSampling, StyleGAN2Generator):
    """Our StyleGAN2 network, sampled the way genforce/sefa samples."""

    def __init__(self, config: StyleGAN2Config, format: str):
        super().__init__(config, format=format)
        self.default_sampling = gc.default_truncation(self.num_layers)

    def latents(self, z: torch.Tensor, sampling: Sampling) -> torch.Tensor:
        self.require_sampling(sampling)
        x = gc.pixel_norm(z)
        for index in range(self.mapping.num_layers):
            layer = getattr(self.mapping, f"fc{index}")
            scale = gc.wscale(1.0, layer.weight.shape[1], _MAPPING_LR_MUL)
            x = F.leaky_relu(gc.dense(x, layer.weight, layer.bias, scale, _MAPPING_LR_MUL), 0.2) * math.sqrt(2.0)
        wp = x.view(-1, 1, self.latent_dim).repeat(1, self.num_layers, 1)
        return gc.truncate(wp, self.mapping.w_avg, sampling)


def config_from_state(state: Mapping[str, torch.Tensor], prefix: str) -> StyleGAN2Config:
    """Sizes and architecture from tensor shapes and names, checked against the limits first."""
    shapes = gc.StateShapes(state, prefix, "StyleGAN2")
    shapes.refuse("synthesis.early_layer.weight", "a StyleGAN2 without a constant input is not supported")
    shapes.refuse("synthesis.skip_layer", "genforce's 'resnet' StyleGAN2 is not supported")
    mapping = shapes.mapping()
    count = shapes.count("synthesis.layer{}.weight", step=2)
    outputs = [k for k in range(count) if f"synthesis.output{k}.weight" in state]
    if outputs == list(range(count)):
        architecture = "skip"
    elif outputs == [count - 1]:
        architecture = "orig"
    else:
        raise CheckpointError(f"{prefix}synthesis.output*: ToRGB layers {outputs} fit neither the 'skip' nor the 'origin' architecture")
    return StyleGAN2Config(
        **mapping,
        c_dim=0,
        img_resolution=4 * 2 ** (count - 1),
        img_channels=shapes.size(f"synthesis.output{count - 1}.weight", 4, 0, limit=4),
        embed_features=0,
        mapping_lr_multiplier=_MAPPING_LR_MUL,
        channels=tuple(shapes.size(f"synthesis.layer{2 * k}.weight", 4, 0) for k in range(count)),
        architecture=architecture,
    )


def _name_table(config: StyleGAN2Config) -> dict[str, str]:
    """genforce name → canonical (NVIDIA) name, for every tensor but the resampling filters."""
    table = {f"mapping.dense{i}.{p}": f"mapping.fc{i}.{p}" for i in range(config.mapping_layers) for p in ("weight", "bias")}
    table["truncation.w_avg"] = "mapping.w_avg"
    table["synthesis.early_layer.const"] = "synthesis.b4.const"

    def modulated(source: str, target: str, noise: bool) -> None:
        for part, canonical in (("weight", "weight"), ("bias", "bias"), ("style.weight", "affine.weight"), ("style.bias", "affine.bias")):
            table[f"{source}.{part}"] = f"{target}.{canonical}"
        if noise:
            table[f"{source}.noise_strength"] = f"{target}.noise_strength"
            table[f"{source}.noise"] = f"{target}.noise_const"

    for k, r in enumerate(config.block_resolutions):
        if k:
            modulated(f"synthesis.layer{2 * k - 1}", f"synthesis.b{r}.conv0", True)
        modulated(f"synthesis.layer{2 * k}", f"synthesis.b{r}.conv1", True)
        if config.architecture == "skip" or r == config.img_resolution:
            modulated(f"synthesis.output{k}", f"synthesis.b{r}.torgb", False)
    return table


def _filter_names(config: StyleGAN2Config) -> list[str]:
    """genforce's resampling-filter buffers: one per upsampling conv, one for the image skip path."""
    names = [f"synthesis.layer{2 * k - 1}.filter.kernel" for k in range(1, len(config.block_resolutions))]
    return names + (["synthesis.upsample.kernel"] if config.architecture == "skip" else [])


def build(state: Mapping[str, torch.Tensor], prefix: str, container: str) -> GenforceStyleGAN2Generator:
    config = config_from_state(state, prefix)
    table, filters = _name_table(config), _filter_names(config)
    format_name = f"genforce StyleGAN2 .pth ({container})"
    skeleton = limits.skeleton(lambda: GenforceStyleGAN2Generator(config, format=format_name), config.largest_activation)
    canonical_shapes = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    expected = {source: canonical_shapes[target] for source, target in table.items()}
    expected["synthesis.early_layer.const"] = (1, *canonical_shapes["synthesis.b4.const"])
    for source, target in table.items():
        if target.endswith("noise_const"):
            expected[source] = (1, 1, *canonical_shapes[target])
    expected.update({name: (1, 1, 4, 4) for name in filters})
    check_state(expected, state, "genforce StyleGAN2", lambda name: prefix + name)
    for name in filters:
        if not torch.equal(state[name], state[filters[0]]):
            raise CheckpointError(f"{prefix}{name} differs from {prefix}{filters[0]}; mixed resampling filters are not supported")

    canonical = {target: state[source].float().reshape(canonical_shapes[target]) for source, target in table.items()}
    for source, target in table.items():
        if target.endswith("affine.bias"):
            canonical[target] = canonical[target] + 1  # genforce's additional_bias
        elif target.endswith("conv0.weight"):
            canonical[target] = canonical[target].flip(2, 3)  # TF orientation → NVIDIA's
    resample_filter = state[filters[0]].float()[0, 0] / _UPSAMPLE_GAIN
    for name in canonical_shapes:
        if name.endswith("resample_filter"):
            canonical[name] = resample_filter
    reverse = {target: source for source, target in table.items()}
    return load_state(skeleton, canonical, lambda name: prefix + reverse.get(name, name))
