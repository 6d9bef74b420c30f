"""What genforce's three generators (PGGAN, StyleGAN, StyleGAN2) share, as
genforce/sefa computes it (`shared/research/checkpoint-formats.md` §7).

- **Seeds.** `sefa.py` seeds torch, not numpy: `torch.manual_seed(seed)`,
  then `torch.randn(num_samples, z_dim)` on the CPU. Seed s here is the first
  sample of `sefa.py --seed s`, i.e. `torch.randn(z_dim)` from a generator
  seeded with s (float32, CPU). torch fills tensors of 16 or more values in
  blocks of 16, so for z_dim 512 (every released model) this is also the
  first row of `torch.randn(N, 512)` for any N; below 16 only for N = 1.
- **Pixels.** `utils.py::postprocess`: `(x + 1)·255/2 + 0.5`, clipped to
  [0, 255], truncated to uint8, in float32.
- **Truncation.** `TruncationModule`: when ψ ≠ 1 and the cutoff is positive,
  every slot becomes `w_avg + (w − w_avg)·c` with c = ψ for the first
  `cutoff` slots and 1 for the rest (written so, not as a lerp, because the
  floats differ). sefa.py's defaults: ψ 0.7 on the first 8 slots. genforce
  ignores ψ > 1; we extrapolate as asked.
- **Layers.** Dense and conv weights are stored unscaled and multiplied at run
  time by `wscale = gain/√fan_in · lr_mul`; the same product in the same
  order gives the same floats.
- **Limits.** Hyper-parameters are read from tensor shapes and checked against
  `MAX_RESOLUTION`, `MAX_WIDTH` and `MAX_MAPPING_LAYERS` before any module is
  built, so a hostile file cannot make us allocate a huge network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from render.errors import CheckpointError
from render.models.base import Sampling

__all__ = [
    "MAX_RESOLUTION", "MAX_WIDTH", "MAX_MAPPING_LAYERS", "GENFORCE_SAMPLING",
    "z_from_torch_seeds", "pixel_norm", "dense", "truncate", "check_truncation", "check_size",
    "check_state", "resolution_of",
]

MAX_RESOLUTION = 1024        # genforce's largest (`_RESOLUTIONS_ALLOWED`: 8 … 1024)
MAX_WIDTH = 4096             # channels, z and w sizes
MAX_MAPPING_LAYERS = 32
GENFORCE_SAMPLING = Sampling(truncation_psi=0.7, truncation_cutoff=8)  # sefa.py's --trunc_psi, --trunc_layers


def z_from_torch_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """[len(seeds), z_dim] float32: seed s → the first z that `sefa.py --seed s` draws.

    >>> _ = torch.manual_seed(3)
    >>> bool(torch.equal(torch.randn(2, 5)[0], z_from_torch_seeds([3], 5)[0]))
    True
    """
    rows = [torch.randn(z_dim, generator=torch.Generator().manual_seed(int(seed))) for seed in seeds]
    return torch.stack(rows) if rows else torch.zeros(0, z_dim)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """genforce's PixelNormLayer over axis 1: x / √(mean(x²) + eps)."""
    return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + eps)


def wscale(gain: float, fan_in: int, lr_mul: float = 1.0) -> float:
    """The run-time weight multiplier, as a double computed in genforce's order."""
    return gain / math.sqrt(fan_in) * lr_mul


def dense(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, scale: float, lr_mul: float) -> torch.Tensor:
    """A genforce DenseBlock before its activation: linear(x, W·scale, b·lr_mul)."""
    return F.linear(x, weight * scale, bias * lr_mul)


def truncate(wp: torch.Tensor, w_avg: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """genforce truncation of w+ [N, L, W] around w_avg [W] (see the module docstring)."""
    num_layers = wp.shape[1]
    cutoff = num_layers if sampling.truncation_cutoff is None else sampling.truncation_cutoff
    if sampling.truncation_psi == 1.0 or cutoff <= 0:
        return wp
    coefs = np.ones((1, num_layers, 1), dtype=np.float32)
    coefs[:, :cutoff] *= sampling.truncation_psi
    average = w_avg.view(1, 1, -1)
    return average + (wp - average) * torch.from_numpy(coefs).to(wp)


def check_truncation(sampling: Sampling, num_layers: int) -> str | None:
    """Why a ψ/cutoff pair does not apply to a model with `num_layers` w+ slots, or None."""
    psi, cutoff = sampling.truncation_psi, sampling.truncation_cutoff
    if not math.isfinite(psi):
        return f"truncation_psi {psi} is not a finite number"
    if cutoff is not None and not 0 <= cutoff <= num_layers:
        return f"truncation_cutoff {cutoff} is outside 0…{num_layers} (this model has {num_layers} w slots)"
    return None


def check_size(name: str, value: int, limit: int = MAX_WIDTH) -> int:
    """`value` if 1 ≤ value ≤ limit, else a CheckpointError naming the tensor it came from."""
    if not 1 <= value <= limit:
        raise CheckpointError(f"{name}: size {value} is outside 1…{limit}")
    return value


def resolution_of(count: int, what: str) -> int:
    """Output resolution 4·2^(count − 1) for `count` resolution blocks, within genforce's 8 … MAX_RESOLUTION."""
    if not 2 <= count <= int(math.log2(MAX_RESOLUTION)) - 1:
        raise CheckpointError(f"{what}: {count} resolution blocks, expected 2…{int(math.log2(MAX_RESOLUTION)) - 1} (8…{MAX_RESOLUTION} px)")
    return 4 * 2 ** (count - 1)


def check_state(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], prefix: str, family: str) -> None:
    """Strict comparison of a state dict with the names and shapes a network needs.

    Raises a one-line CheckpointError naming the first missing, unexpected,
    mis-shaped or non-float tensor as the file spells it (`prefix` + name).
    """
    missing = [name for name in expected if name not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"missing tensor {prefix}{missing[0]}{more} for a genforce {family} generator")
    unexpected = [name for name in state if name not in expected]
    if unexpected:
        listed = ", ".join(prefix + name for name in unexpected[:8])
        raise CheckpointError(f"unexpected tensors for a genforce {family} generator: {listed}{' …' if len(unexpected) > 8 else ''}")
    for name, shape in expected.items():
        tensor = state[name]
        if tuple(tensor.shape) != tuple(shape):
            raise CheckpointError(f"{prefix}{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
        if not tensor.is_floating_point():
            raise CheckpointError(f"{prefix}{name} holds {tensor.dtype} values, expected floats")
