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
- **Limits.** Hyper-parameters are read from tensor shapes and checked before
  any module is built: the resolution against genforce's own range (8 …
  `MAX_RESOLUTION`), every width and depth against sefa-render's shared
  `limits.SIZE_LIMITS`, so a hostile file cannot make us allocate a huge network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from render.errors import CheckpointError
from render.models import limits
from render.models.base import Generator, Sampling
from render.models.state import check_state

__all__ = [
    "MAX_RESOLUTION", "GENFORCE_SAMPLING",
    "z_from_torch_seeds", "pixel_norm", "dense", "truncate", "check_size",
    "resolution_of", "largest_activation", "load_checked", "StateShapes", "GenforceSampling", "default_truncation",
]

MAX_RESOLUTION = 1024        # genforce's largest (`_RESOLUTIONS_ALLOWED`: 8 … 1024)
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


def check_size(name: str, value: int, limit: int) -> int:
    """`value` if 1 ≤ value ≤ limit, else a CheckpointError naming the tensor it came from."""
    if not 1 <= value <= limit:
        raise CheckpointError(f"{name}: size {value} is outside 1…{limit}")
    return value


def resolution_of(count: int, what: str) -> int:
    """Output resolution 4·2^(count − 1) for `count` resolution blocks, within genforce's 8 … MAX_RESOLUTION."""
    if not 2 <= count <= int(math.log2(MAX_RESOLUTION)) - 1:
        raise CheckpointError(f"{what}: {count} resolution blocks, expected 2…{int(math.log2(MAX_RESOLUTION)) - 1} (8…{MAX_RESOLUTION} px)")
    return 4 * 2 ** (count - 1)


def largest_activation(channels: Sequence[int]) -> int:
    """Elements of the largest feature map of one image, for `limits.skeleton`.

    At r = 4·2^k a layer reads the upsampled input of width C(r/2) and writes C(r): max of both · (r + 2)², padding included.
    """
    return max(max(width, channels[k - 1] if k else 0) * (4 * 2**k + 2) ** 2 for k, width in enumerate(channels))


GeneratorT = TypeVar("GeneratorT", bound=Generator)


def load_checked(make: Callable[[], GeneratorT], channels: Sequence[int], state: Mapping[str, torch.Tensor], prefix: str,
                 family: str, lod: str, container: str) -> GeneratorT:
    """The generator `make()` builds, loaded from `state` in genforce's own layout (PGGAN, StyleGAN).

    A skeleton first (`limits.skeleton`: shapes only, within the memory limit), the state checked
    strictly against it, the progressive-growing buffer `lod` required to be 0; then the real network.
    """
    skeleton = limits.skeleton(make, largest_activation(channels))
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    check_state(expected, state, f"genforce {family}", lambda name: prefix + name)
    if float(state[lod]) != 0:
        raise CheckpointError(f"{prefix}{lod} is {float(state[lod])}: a {family} still growing (lod ≠ 0) is not supported")
    generator = make()
    generator.format = f"genforce {family} .pth ({container})"
    generator.load_state_dict({name: tensor.float() for name, tensor in state.items()})
    return generator


def default_truncation(num_layers: int) -> Sampling:
    """sefa.py's ψ 0.7 on the first 8 slots, on all of them for models with fewer."""
    return Sampling(GENFORCE_SAMPLING.truncation_psi, min(GENFORCE_SAMPLING.truncation_cutoff, num_layers))


class GenforceSampling:
    """Mixin for a `Generator`: seeds and pixels the way genforce/sefa's `sefa.py` makes them."""

    pixels = "genforce"

    def latents_from_seeds(self, seeds: Sequence[int], sampling: Sampling = Sampling()) -> torch.Tensor:
        z = z_from_torch_seeds(seeds, self.z_dim).to(self.device)  # type: ignore[attr-defined]
        with torch.no_grad():
            return self.latents(z, sampling)  # type: ignore[attr-defined]


class StateShapes:
    """Sizes read off a genforce state dict, with errors naming tensors as the file does (`prefix` + name)."""

    def __init__(self, state: Mapping[str, torch.Tensor], prefix: str, family: str):
        self.state, self.prefix, self.family = state, prefix, family

    def shape(self, name: str, ndim: int) -> tuple[int, ...]:
        tensor = self.state.get(name)
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"missing tensor {self.prefix}{name} for a genforce {self.family} generator")
        if tensor.ndim != ndim:
            raise CheckpointError(f"{self.prefix}{name} has shape {tuple(tensor.shape)}, expected {ndim} dimensions")
        return tuple(tensor.shape)

    def size(self, name: str, ndim: int, axis: int, limit: str | int = "channels") -> int:
        """One axis of a tensor's shape, within 1…limit: a number, or the name of a limit in `limits.SIZE_LIMITS`."""
        bound = limits.SIZE_LIMITS[limit][0] if isinstance(limit, str) else limit
        return check_size(f"{self.prefix}{name}", self.shape(name, ndim)[axis], bound)

    def count(self, template: str, step: int = 1) -> int:
        """How many resolution blocks: how many of template.format(0), template.format(step), … the state holds."""
        count = sum(1 for k in range(64) if template.format(step * k) in self.state)
        resolution_of(count, f"{self.prefix}{template.format('*')}")
        return count

    def refuse(self, name: str, why: str) -> None:
        """A CheckpointError naming `name` when the state holds a tensor whose name starts with it."""
        if any(key.startswith(name) for key in self.state):
            raise CheckpointError(f"{self.prefix}{name}: {why}")

    def mapping(self) -> dict[str, int]:
        """z_dim, w_dim, mapping_layers and mapping_features of a StyleGAN-style mapping network."""
        self.refuse("mapping.label_weight", f"class-conditional genforce {self.family} models are not supported")
        most = limits.SIZE_LIMITS["mapping_layers"][0]
        layers = sum(1 for i in range(most + 1) if f"mapping.dense{i}.weight" in self.state)
        if not 1 <= layers <= most:
            raise CheckpointError(f"{self.prefix}mapping.dense*.weight: {layers} mapping layers, expected 1…{most}")
        w_dim = self.size("synthesis.layer0.style.weight", 2, 1, limit="w_dim")
        last = f"mapping.dense{layers - 1}.weight"
        if self.shape(last, 2)[0] != w_dim:
            raise CheckpointError(f"{self.prefix}{last} gives {self.shape(last, 2)[0]} values but the styles read "
                                  f"w of size {w_dim} (per-layer w, repeat_w=False, is not supported)")
        return {
            "z_dim": self.size("mapping.dense0.weight", 2, 1, limit="z_dim"),
            "w_dim": w_dim,
            "mapping_layers": layers,
            "mapping_features": self.size("mapping.dense0.weight", 2, 0) if layers > 1 else w_dim,
        }
