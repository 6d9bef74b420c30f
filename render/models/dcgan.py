"""DCGAN generators in the PyTorch-tutorial layout (pytorch/tutorials,
`beginner_source/dcgan_faces_tutorial.py`): a `main` Sequential of

    ConvTranspose2d(nz, C0, 4, 1, 0) BN ReLU  →  [ConvTranspose2d(Ci, Ci+1, 4, 2, 1) BN ReLU]…
    →  ConvTranspose2d(C_last, nc, 4, 2, 1) Tanh

without biases. Every hyper-parameter (nz, the channel widths, nc, depth,
resolution) is read off the state dict's shapes; a `module.` prefix from
DataParallel is accepted, and a checkpoint dict may hold the generator's state
dict under any key (e.g. `netG_state_dict`).

SeFa edits z. On a 1×1 input, a stride-1 padding-0 transposed conv puts
`z_c · W[c, o, y, x]` at output (o, y, x) without a flip, so the first layer is the
linear map `y = A z` with `A = W.reshape(nz, -1).T` ([C0·16, nz]). The BatchNorm
after it scales each row of A by a constant, which SeFa's row normalisation
cancels, so it is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from render.errors import CheckpointError
from render.models.base import Generator, Sampling
from render.models.limits import check_sizes, skeleton
from render.untrusted import bounded_repr

__all__ = ["DCGANConfig", "DCGANGenerator", "recognize", "build"]

_FIRST_WEIGHT = "main.0.weight"
_KERNEL = 4
_MODULES_PER_BLOCK = 3  # ConvTranspose2d, BatchNorm2d, ReLU


@dataclass(frozen=True)
class DCGANConfig:
    z_dim: int                  # nz: length of z
    channels: tuple[int, ...]   # widths after each hidden transposed conv, e.g. (512, 256, 128, 64)
    img_channels: int           # nc

    def __post_init__(self) -> None:
        check_sizes(z_dim=self.z_dim, channels=max((*self.channels, self.img_channels)), img_resolution=self.img_resolution)

    @property
    def largest_activation(self) -> int:
        """Elements of the largest feature map of one image (C·R² after each transposed conv)."""
        widths = (*self.channels, self.img_channels)
        return max(c * (4 * 2**index) ** 2 for index, c in enumerate(widths))

    @property
    def depth(self) -> int:
        """Number of transposed convs."""
        return len(self.channels) + 1

    @property
    def img_resolution(self) -> int:
        return 4 * 2 ** (self.depth - 1)

    @property
    def ngf(self) -> int:
        """The tutorial's ngf: the width of the last hidden layer."""
        return self.channels[-1]


class DCGANGenerator(Generator):
    family = "dcgan"

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        self.set_sizes(z_dim=config.z_dim, latent_dim=config.z_dim, num_layers=1,
                       img_resolution=config.img_resolution, img_channels=config.img_channels)

        widths = (config.z_dim, *config.channels)
        modules: list[nn.Module] = []
        for index, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
            stride, padding = (1, 0) if index == 0 else (2, 1)
            modules += [nn.ConvTranspose2d(c_in, c_out, _KERNEL, stride, padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        modules += [nn.ConvTranspose2d(widths[-1], config.img_channels, _KERNEL, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*modules)
        self.eval()

    def latents(self, z: torch.Tensor, sampling: Sampling) -> torch.Tensor:
        return z[:, None, :]  # [N, 1, z_dim]: DCGAN is edited in z

    def synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents[:, 0, :, None, None]  # [N, z_dim, 1, 1]
        return self.main(z)

    def sefa_weight(self, layer: int) -> np.ndarray:
        assert layer == 0, "DCGAN has a single edit slot"
        weight = self.main[0].weight.detach().cpu().double().numpy()  # [nz, C0, 4, 4]
        return weight.reshape(self.z_dim, -1).T  # [C0·16, nz]


def _find_state_dict(content: Any) -> Mapping[str, torch.Tensor] | None:
    """The DCGAN state dict inside `content`, with any `module.` prefix removed."""
    candidates = [content]
    if isinstance(content, Mapping):
        candidates += [value for value in content.values() if isinstance(value, Mapping)]
    for candidate in candidates:
        if not isinstance(candidate, Mapping):
            continue
        for prefix in ("", "module."):
            if isinstance(candidate.get(prefix + _FIRST_WEIGHT), torch.Tensor):
                return {key[len(prefix):]: value for key, value in candidate.items() if key.startswith(prefix)}
    return None


def recognize(content: Any) -> bool:
    state = _find_state_dict(content)
    return state is not None and state[_FIRST_WEIGHT].ndim == 4


def _config_from_state(state: Mapping[str, torch.Tensor]) -> DCGANConfig:
    conv_weights = []
    index = 0
    while f"main.{index}.weight" in state:
        conv_weights.append(state[f"main.{index}.weight"])
        index += _MODULES_PER_BLOCK
    for position, weight in enumerate(conv_weights):
        name = f"main.{position * _MODULES_PER_BLOCK}.weight"
        if weight.ndim != 4 or tuple(weight.shape[2:]) != (_KERNEL, _KERNEL):
            raise CheckpointError(f"{name} has shape {tuple(weight.shape)}; expected a {_KERNEL}×{_KERNEL} transposed-conv weight")
        if position and weight.shape[0] != conv_weights[position - 1].shape[1]:
            raise CheckpointError(
                f"{name} takes {weight.shape[0]} channels but the previous layer gives {conv_weights[position - 1].shape[1]}"
            )
    if len(conv_weights) < 2:
        raise CheckpointError("a DCGAN needs at least two transposed convs (main.0 and main.3)")
    return DCGANConfig(
        z_dim=int(conv_weights[0].shape[0]),
        channels=tuple(int(w.shape[1]) for w in conv_weights[:-1]),
        img_channels=int(conv_weights[-1].shape[1]),
    )


def build(content: Any) -> DCGANGenerator:
    state = _find_state_dict(content)
    assert state is not None, "build() called on content recognize() refused"
    config = _config_from_state(state)
    # Names and shapes are checked on a meta-device skeleton, before any weight is allocated.
    expected = skeleton(lambda: DCGANGenerator(config), config.largest_activation).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        names = missing or unexpected
        listed = "[" + ", ".join(bounded_repr(name, 60) for name in names[:8]) + (", …]" if len(names) > 8 else "]")
        detail = f"missing {listed}" if missing else f"unexpected {listed}"
        raise CheckpointError(f"not a tutorial-style DCGAN generator: {detail}")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{name} has shape {tuple(state[name].shape)}, expected {tuple(tensor.shape)}")
    generator = DCGANGenerator(config)
    generator.format = "DCGAN state dict"
    generator.load_state_dict({name: value.float() if value.is_floating_point() else value for name, value in state.items()})
    return generator.eval()
