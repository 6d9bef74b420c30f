"""rosinality/stylegan2-pytorch checkpoints (`.pt`), renamed onto our StyleGAN2.

Two producers write them (`shared/research/checkpoint-formats.md` §6):
`convert_weight.py` (`{'g_ema', 'latent_avg', …}`) and `train.py`
(`{'g', 'd', 'g_ema', 'g_optim', 'd_optim', 'args', 'ada_aug_p'}`, no
`latent_avg`). Both hold the generator as the state dict `g_ema`, which is the
same network as NVIDIA's StyleGAN2 'skip' configuration under other names
(§6.2); `_name_table` is the whole renaming. The checkpoint stores no
configuration, so size, widths, style size and depth of the mapping network
are read off the tensor shapes; rosinality's fixed channel table is not assumed.

Differences that need a decision:

- rosinality scales conv weights by 1/√fan_in before modulating them; NVIDIA
  (and we) do not. Demodulation cancels the scale, so the same stored weights
  give the same image up to the 1e-8 eps term.
- The mapping network's learning-rate multiplier is not stored either; every
  rosinality script uses its default, 0.01.
- Truncation: rosinality pulls all slots towards a mean latent and has no
  cutoff; here the usual ψ/cutoff semantics apply, around `latent_avg`.
- Without `latent_avg` (training checkpoints), w_avg is estimated: the mean of
  w over `W_AVG_SAMPLES` latents z drawn from `np.random.RandomState(W_AVG_SEED)`.
  rosinality's own scripts draw a fresh unseeded estimate each run
  (`mean_latent(4096)`); a fixed seed makes renders reproducible.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from render.errors import CheckpointError
from render.models.state import check_names
from render.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator, load_state, skeleton

__all__ = ["recognize", "build", "W_AVG_SAMPLES", "W_AVG_SEED"]

W_AVG_SAMPLES = 4096
W_AVG_SEED = 0
# rosinality's `lr_mlp` default, used by every script of the repository (not stored in checkpoints).
_MAPPING_LR_MULTIPLIER = 0.01
# rosinality stores each resampling filter already multiplied by the upsampling gain, factor² = 4.
_UPSAMPLE_GAIN = 4


def recognize(content: Any) -> bool:
    """True for a dict with a rosinality generator state dict under `g_ema`."""
    if not isinstance(content, Mapping) or not isinstance(content.get("g_ema"), Mapping):
        return False
    return "style.1.weight" in content["g_ema"] and "conv1.conv.weight" in content["g_ema"]


def build(content: Any) -> StyleGAN2Generator:
    state: Mapping[str, Any] = content["g_ema"]
    if any(".iwt." in name or ".dwt." in name or name.startswith(("iwt.", "dwt.")) for name in state):
        raise CheckpointError("a rosinality SWAGAN checkpoint (wavelet generator); only StyleGAN2 checkpoints are supported")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"g_ema.{name} is a {type(value).__name__}, not a tensor")
    config = _config(state)
    is_training = "args" in content or "g_optim" in content
    generator = skeleton(config, format="rosinality StyleGAN2 .pt" + (" (training checkpoint)" if is_training else ""))
    canonical = _canonical_state(state, config, generator)

    latent_avg = content.get("latent_avg")
    if latent_avg is not None:
        if not isinstance(latent_avg, torch.Tensor) or latent_avg.numel() != config.w_dim:
            raise CheckpointError(f"latent_avg has shape {tuple(getattr(latent_avg, 'shape', ()))}, expected ({config.w_dim},)")
        canonical["mapping.w_avg"] = latent_avg.reshape(config.w_dim)
    else:
        canonical["mapping.w_avg"] = torch.zeros(config.w_dim)  # replaced by the estimate below
    generator = load_state(generator, canonical)
    if latent_avg is None:
        generator.mapping.w_avg.copy_(estimate_w_avg(generator))
        generator.w_avg_source = f"estimated: mean w of {W_AVG_SAMPLES} z from RandomState({W_AVG_SEED})"
    return generator


def estimate_w_avg(generator: StyleGAN2Generator) -> torch.Tensor:
    """Mean of w over `W_AVG_SAMPLES` seeded random z (deterministic on a given machine).

    The sum runs in float64, so the estimate does not depend on summation order
    to within float32 precision.
    """
    z = torch.from_numpy(np.random.RandomState(W_AVG_SEED).randn(W_AVG_SAMPLES, generator.z_dim)).float()
    with torch.no_grad():
        w = generator.mapping(z.to(generator.device), None)  # [W_AVG_SAMPLES, w_dim]
    return w.double().mean(dim=0).float()


def _count(state: Mapping[str, Any], pattern: str) -> int:
    """How many consecutive indices 0, 1, … (or 1, 2, …) match `pattern` (one group)."""
    indices = {int(match.group(1)) for name in state if (match := re.fullmatch(pattern, name))}
    return len(indices)


def _shape(state: Mapping[str, torch.Tensor], name: str) -> tuple[int, ...]:
    if name not in state:
        raise CheckpointError(f"missing tensor g_ema.{name}")
    return tuple(state[name].shape)


def _config(state: Mapping[str, torch.Tensor]) -> StyleGAN2Config:
    n_mlp = _count(state, r"style\.(\d+)\.weight")
    num_upsamplings = _count(state, r"to_rgbs\.(\d+)\.conv\.weight")
    style_shape = _shape(state, "style.1.weight")
    last_style = _shape(state, f"style.{n_mlp}.weight")
    widths = [_shape(state, "input.input")[1]]
    widths += [_shape(state, f"convs.{2 * k}.conv.weight")[1] for k in range(num_upsamplings)]
    return StyleGAN2Config(
        z_dim=style_shape[1],
        w_dim=last_style[0],
        c_dim=0,
        img_resolution=4 * 2**num_upsamplings,
        img_channels=_shape(state, "to_rgb1.conv.weight")[1],
        mapping_layers=n_mlp,
        mapping_features=style_shape[0],
        embed_features=0,
        mapping_lr_multiplier=_MAPPING_LR_MULTIPLIER,
        channels=tuple(widths),
        architecture="skip",
        kernel_size=_shape(state, "conv1.conv.weight")[-1],
        use_noise=True,
        conv_clamp=None,
        resample_filter_shape=_shape(state, "convs.0.conv.blur.kernel") if num_upsamplings else (4, 4),
    )


def _name_table(config: StyleGAN2Config) -> dict[str, str]:
    """rosinality name → canonical (NVIDIA) name, for every weight and noise tensor.

    Tensors differ only by leading singleton axes (e.g. conv weights [1, O, I, k, k]
    vs [O, I, k, k], noise strength [1] vs []), so a reshape converts them.
    """
    table = {}
    for index in range(1, config.mapping_layers + 1):  # style.0 is the parameter-free PixelNorm
        table[f"style.{index}.weight"] = f"mapping.fc{index - 1}.weight"
        table[f"style.{index}.bias"] = f"mapping.fc{index - 1}.bias"
    table["input.input"] = "synthesis.b4.const"

    def styled_conv(source: str, target: str, noise_index: int) -> None:
        table[f"{source}.conv.weight"] = f"{target}.weight"
        table[f"{source}.conv.modulation.weight"] = f"{target}.affine.weight"
        table[f"{source}.conv.modulation.bias"] = f"{target}.affine.bias"
        table[f"{source}.noise.weight"] = f"{target}.noise_strength"
        table[f"{source}.activate.bias"] = f"{target}.bias"
        table[f"noises.noise_{noise_index}"] = f"{target}.noise_const"

    def to_rgb(source: str, target: str) -> None:
        table[f"{source}.conv.weight"] = f"{target}.weight"
        table[f"{source}.conv.modulation.weight"] = f"{target}.affine.weight"
        table[f"{source}.conv.modulation.bias"] = f"{target}.affine.bias"
        table[f"{source}.bias"] = f"{target}.bias"

    styled_conv("conv1", "synthesis.b4.conv1", 0)
    to_rgb("to_rgb1", "synthesis.b4.torgb")
    for k, r in enumerate(config.block_resolutions[1:]):
        styled_conv(f"convs.{2 * k}", f"synthesis.b{r}.conv0", 2 * k + 1)
        styled_conv(f"convs.{2 * k + 1}", f"synthesis.b{r}.conv1", 2 * k + 2)
        to_rgb(f"to_rgbs.{k}", f"synthesis.b{r}.torgb")
    return table


def _filter_names(config: StyleGAN2Config) -> list[str]:
    """rosinality's resampling-filter buffers: one per upsampling conv and per upsampling ToRGB."""
    count = len(config.block_resolutions) - 1
    return [f"convs.{2 * k}.conv.blur.kernel" for k in range(count)] + [f"to_rgbs.{k}.upsample.kernel" for k in range(count)]


def _canonical_state(state: Mapping[str, torch.Tensor], config: StyleGAN2Config, generator: StyleGAN2Generator) -> dict[str, torch.Tensor]:
    """`state` under canonical names and shapes, checked strictly (names as the file has them)."""
    table = _name_table(config)
    filters = _filter_names(config)
    # Names strictly; shapes below, where leading singleton axes may differ.
    check_names([*table, *filters], state, "rosinality StyleGAN2", lambda name: f"g_ema.{name}")

    expected = generator.state_dict()
    canonical = {}
    for source, target in table.items():
        tensor, shape = state[source], tuple(expected[target].shape)
        if tensor.numel() != int(np.prod(shape)) or tuple(d for d in tensor.shape if d != 1) != tuple(d for d in shape if d != 1):
            raise CheckpointError(f"g_ema.{source} has shape {tuple(tensor.shape)}, which does not fit {target} {shape}")
        canonical[target] = tensor.reshape(shape)

    # Every resampling filter must be the same; ours are stored without the gain.
    resample_filter = state[filters[0]] / _UPSAMPLE_GAIN if filters else _default_filter()
    for name in filters:
        if not torch.equal(state[name], state[filters[0]]):
            raise CheckpointError(f"g_ema.{name} differs from g_ema.{filters[0]}; mixed resampling filters are not supported")
    for name in expected:
        if name.endswith("resample_filter"):
            canonical[name] = resample_filter
    return canonical


def _default_filter() -> torch.Tensor:
    """outer([1, 3, 3, 1]) normalised to sum 1: the filter of every StyleGAN2 (for 4×4 models, which never resample)."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()
