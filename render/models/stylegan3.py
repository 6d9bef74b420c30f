"""StyleGAN3 (Karras et al. 2021, "Alias-Free Generative Adversarial Networks"), T and R configs, our own implementation.

The module tree, and so the `state_dict()` names, are NVIDIA's
(`synthesis.input.affine.weight`, `synthesis.L3_52_512.down_filter`, …;
`shared/research/checkpoint-formats.md` §2.8), so a pickle's tensors load 1:1.
Nothing is designed here: the low-pass filters, sampling grid sizes, paddings
and up/down factors are all read from the checkpoint (`StyleGAN3Config`), so
the same code runs the T config (3×3 convs, separable filters) and the R config
(1×1 convs, radially symmetric 2-D down filters).

The forward pass (§4) follows the op order of NVIDIA's CPU/fp32 reference so
that a seed renders the image `gen_images.py` renders:

- `SynthesisInput`: Fourier features sin(2π(x·f + φ)) on a fixed grid, the
  frequencies rotated and the phases shifted by a similarity transform that
  an affine of w[0] predicts, composed with the user transform
  (`input.transform`, what `gen_images.py --translate/--rotate` sets);
  out-of-band frequencies are faded out.
- `SynthesisLayer`: modulated convolution (weights and styles pre-normalised,
  demodulated, scaled by 1/√magnitude_ema), then `filtered_lrelu`: bias,
  upsample with the stored FIR filter, leaky ReLU with gain and clamp,
  downsample with the stored FIR filter.
- The last layer is the ToRGB (1×1, no demodulation, linear); the image is
  scaled by `output_scale`.

One deliberate difference: NVIDIA pre-normalises the styles by their mean
square over the *whole batch*, so an image's floats depend on the other
images in its batch (by rounding: demodulation cancels the scale). We
normalise per image, which equals NVIDIA's result for a batch of one, as
`gen_images.py` renders, bit for bit.

w+ has num_layers + 2 slots: slot 0 drives the input's geometric transform,
slot k ≥ 1 the layer `layer_names[k − 1]` (the last one is the ToRGB).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from render.errors import CheckpointError
from render.models import limits
from render.models.base import Sampling
from render.models.ops import bias_act, modulated_conv2d, upfirdn2d
from render.models.stylegan2 import FullyConnectedLayer, StyleGANGenerator

__all__ = ["StyleGAN3Layer", "StyleGAN3Config", "StyleGAN3Generator", "filtered_lrelu", "input_transform_matrix"]

LAYER_NAME = re.compile(r"L\d+_\d+_\d+")  # NVIDIA's f"L{index}_{out_size}_{out_channels}"
# Plausibility bounds on stored hyper-parameters, checked before anything is allocated.
_MAX_FACTOR, _MAX_TAPS, _MAX_KERNEL = 8, 128, 7


@dataclass(frozen=True)
class StyleGAN3Layer:
    """One synthesis layer's stored hyper-parameters (NVIDIA `SynthesisLayer` attributes)."""

    name: str                               # as stored in layer_names, e.g. 'L3_52_512'
    in_channels: int
    out_channels: int
    in_size: tuple[int, int]                # (width, height) of the input feature map
    out_size: tuple[int, int]
    conv_kernel: int                        # 3 (T), 1 (R and ToRGB)
    up_factor: int                          # zero-insertion factor before the leaky ReLU
    up_taps: int                            # length of the 1-D up filter; 1 = no filter
    down_factor: int
    down_taps: int                          # 1 = no filter
    down_radial: bool                       # the down filter is 2-D [taps, taps] (R config)
    padding: tuple[int, int, int, int]      # (x0, x1, y0, y1) around the upsampled map; negative crops
    is_torgb: bool                          # the last layer: 1×1, no demodulation, linear
    conv_clamp: float | None                # clamp after the activation; None = no clamp

    def problems(self) -> list[str]:
        found = []
        if not LAYER_NAME.fullmatch(self.name):
            found.append(f"layer name {self.name!r} is not of the form L<index>_<size>_<channels>")
        for label, factor, taps in (("up", self.up_factor, self.up_taps), ("down", self.down_factor, self.down_taps)):
            if not (1 <= factor <= _MAX_FACTOR and 1 <= taps <= _MAX_TAPS):
                found.append(f"{self.name}: {label} factor {factor} or {label} taps {taps} out of range")
        if not 1 <= self.conv_kernel <= _MAX_KERNEL:
            found.append(f"{self.name}: conv_kernel {self.conv_kernel} out of range")
        if min(self.in_size + self.out_size) < 1:
            found.append(f"{self.name}: sizes {self.in_size} → {self.out_size} are not positive")
        expected = self.output_size()
        if expected != self.out_size:
            found.append(f"{self.name}: in_size {self.in_size}, kernel, factors, taps and padding {self.padding} "
                         f"make {expected}, but out_size is {self.out_size}")
        return found

    def output_size(self) -> tuple[int, int]:
        """What the layer's ops make of `in_size`: conv (+k−1), upsample, pad, both filters, downsample."""
        x0, x1, y0, y1 = self.padding
        grown = (self.in_size[0] + self.conv_kernel - 1, self.in_size[1] + self.conv_kernel - 1)
        shrink = self.up_taps - 1 + self.down_taps - 1
        width = grown[0] * self.up_factor + x0 + x1 - shrink
        height = grown[1] * self.up_factor + y0 + y1 - shrink
        return ((width + self.down_factor - 1) // self.down_factor, (height + self.down_factor - 1) // self.down_factor)


@dataclass(frozen=True)
class StyleGAN3Config:
    """Everything needed to rebuild a StyleGAN3 generator, as read from its checkpoint."""

    # Latents and output.
    z_dim: int
    w_dim: int
    c_dim: int
    img_resolution: int
    img_channels: int
    # Mapping network (the fields StyleGAN2Config names the same way).
    mapping_layers: int
    mapping_features: int
    embed_features: int
    mapping_lr_multiplier: float
    # Fourier-feature input.
    input_channels: int
    input_size: tuple[int, int]             # (width, height), the first layer's sampling grid incl. margins
    input_sampling_rate: float
    input_bandwidth: float                  # cutoff of the features; higher ones fade out
    # Synthesis layers, in order; the last is the ToRGB.
    layers: tuple[StyleGAN3Layer, ...]
    output_scale: float = 0.25
    mapping_activation: str = "lrelu"

    def __post_init__(self) -> None:
        limits.check_sizes(img_resolution=self.img_resolution, z_dim=self.z_dim, w_dim=self.w_dim, c_dim=self.c_dim,
                           mapping_layers=self.mapping_layers,
                           channels=max((self.input_channels, self.mapping_features, self.embed_features,
                                         *(layer.out_channels for layer in self.layers))))
        problems = []
        r = self.img_resolution
        if r < 1 or self.img_channels < 1 or self.w_dim < 1 or self.mapping_layers < 1:
            problems.append(f"img_resolution {r}, img_channels {self.img_channels}, w_dim {self.w_dim} or "
                            f"mapping layers {self.mapping_layers} out of range")
        if not self.layers or not self.layers[-1].is_torgb or any(layer.is_torgb for layer in self.layers[:-1]):
            problems.append("the layers must end with exactly one ToRGB layer")
        if len({layer.name for layer in self.layers}) != len(self.layers):
            problems.append("layer names repeat")
        # Feature maps stay within a few times the image size (NVIDIA: margins of 10 px, ×2 for the activation).
        limit = 4 * r + 64
        previous = (self.input_channels, self.input_size, "the input")
        for layer in self.layers:
            problems += layer.problems()
            if max(layer.in_size + layer.out_size) > limit:
                problems.append(f"{layer.name}: sizes {layer.in_size} → {layer.out_size} exceed {limit} for resolution {r}")
            if (layer.in_channels, layer.in_size) != previous[:2]:
                problems.append(f"{layer.name} takes {layer.in_channels} channels of {layer.in_size}, "
                                f"but {previous[2]} makes {previous[0]} of {previous[1]}")
            previous = (layer.out_channels, layer.out_size, layer.name)
        if self.layers and (self.layers[-1].out_channels, self.layers[-1].out_size) != (self.img_channels, (r, r)):
            problems.append(f"the last layer makes {self.layers[-1].out_channels}×{self.layers[-1].out_size}, "
                            f"not the {self.img_channels}×{(r, r)} image")
        if max(self.input_size) > limit or min(self.input_size) < 1 or not self.input_sampling_rate > 0:
            problems.append(f"input size {self.input_size} or sampling rate {self.input_sampling_rate} out of range")
        if problems:
            raise CheckpointError("unsupported StyleGAN3 configuration: " + "; ".join(problems))

    @property
    def num_ws(self) -> int:
        """w+ slots: one for the input, one per layer (ToRGB included)."""
        return len(self.layers) + 1

    @property
    def largest_activation(self) -> int:
        """Elements of the largest feature map of one image: a layer's output channels on its upsampled grid."""
        return max(layer.out_channels * (layer.in_size[0] * layer.up_factor + layer.up_taps)
                   * (layer.in_size[1] * layer.up_factor + layer.up_taps) for layer in self.layers)

    @property
    def architecture(self) -> str:
        """'stylegan3-r' (1×1 convs, radial filters) or 'stylegan3-t' (3×3 convs)."""
        return "stylegan3-r" if all(layer.conv_kernel == 1 for layer in self.layers) else "stylegan3-t"


# ---------------------------------------------------------------------- ops
def filtered_lrelu(
    x: torch.Tensor,                        # [N, C, H, W]
    up_filter: torch.Tensor | None,         # [taps] (separable) or [h, w]; None = identity
    down_filter: torch.Tensor | None,
    bias: torch.Tensor,                     # [C]
    up: int,
    down: int,
    padding: Sequence[int],                 # (x0, x1, y0, y1) around the upsampled map
    activation: str = "lrelu",              # 'lrelu' (slope 0.2) or 'linear' (the ToRGB)
    gain: float = math.sqrt(2),
    clamp: float | None = None,
) -> torch.Tensor:
    """StyleGAN3's alias-suppressing nonlinearity, in its plain reference form.

    bias → upsample by `up` (zero insertion, pad, FIR `up_filter` with gain up²)
    → leaky ReLU × gain, clamp → FIR `down_filter`, keep every `down`-th sample.
    The nonlinearity runs at the higher rate, where the new frequencies it makes
    can be filtered out before the signal returns to the output rate.
    """
    identity = torch.ones([1, 1], device=x.device)
    x = bias_act(x, bias)
    x = upfirdn2d(x, identity if up_filter is None else up_filter, up=up, padding=padding, gain=up * up)
    x = bias_act(x, None, activation, gain=gain, clamp=clamp)
    return upfirdn2d(x, identity if down_filter is None else down_filter, down=down)


def input_transform_matrix(translate: Sequence[float], rotate: float) -> np.ndarray:
    """The matrix for `input.transform`: the inverse of rotating the image by `rotate` degrees and translating it.

    As `gen_images.py` builds it (`make_transform`, then its inverse): the
    generator expects the inverse of the transform to apply to the image.
    Translation is in image widths: the image spans about [-0.5, 0.5] of the
    input's coordinates.

    >>> input_transform_matrix((0, 0), 0).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    angle = rotate / 360.0 * np.pi * 2
    sin, cos = np.sin(angle), np.cos(angle)
    forward = np.array([[cos, sin, translate[0]], [-sin, cos, translate[1]], [0.0, 0.0, 1.0]])
    return np.linalg.inv(forward)


# ---------------------------------------------------------------------- layers
class SynthesisInput(nn.Module):
    """Fourier features on the first layer's grid, rotated and shifted by an affine of w[0] and the user transform."""

    def __init__(self, config: StyleGAN3Config):
        super().__init__()
        self.channels, self.size = config.input_channels, config.input_size
        self.sampling_rate, self.bandwidth = config.input_sampling_rate, config.input_bandwidth
        self.affine = FullyConnectedLayer(config.w_dim, 4)  # (cos θ, sin θ, t_x, t_y), unnormalised
        self.weight = nn.Parameter(torch.zeros([self.channels, self.channels]))
        self.register_buffer("transform", torch.eye(3))  # the user's inverse transform w.r.t. the image
        self.register_buffer("freqs", torch.zeros([self.channels, 2]))
        self.register_buffer("phases", torch.zeros([self.channels]))

    def forward(self, w: torch.Tensor, transforms: torch.Tensor | None = None) -> torch.Tensor:
        """w [N, w_dim] → features [N, channels, H, W]; `transforms` [N, 3, 3] replace the user transform per image."""
        batch = w.shape[0]
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)  # unit rotation (cos, sin), then translation
        # Inverse rotation and inverse translation of the image, then the user's transform.
        rotation = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])
        rotation[:, 0, 0], rotation[:, 0, 1] = t[:, 0], -t[:, 1]
        rotation[:, 1, 0], rotation[:, 1, 1] = t[:, 1], t[:, 0]
        translation = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])
        translation[:, 0, 2], translation[:, 1, 2] = -t[:, 2], -t[:, 3]
        user = self.transform.unsqueeze(0) if transforms is None else transforms
        transforms = rotation @ translation @ user  # [N, 3, 3]

        freqs = self.freqs.unsqueeze(0)  # [1, C, 2]
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = freqs @ transforms[:, :2, :2]  # [N, C, 2]
        # Fade out frequencies that the user transform pushed past the band (none without one).
        fade = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        # Pixel centres of a [size] map spanning size/sampling_rate units, centred on 0.
        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = 0.5 * self.size[0] / self.sampling_rate
        theta[1, 1] = 0.5 * self.size[1] / self.sampling_rate
        grid = F.affine_grid(theta.unsqueeze(0), [1, 1, self.size[1], self.size[0]], align_corners=False)  # [1, H, W, 2]
        x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [N, H, W, C]
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (2 * math.pi))
        x = x * fade.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / math.sqrt(self.channels)).t()  # a learned 1×1 mixing of the features
        return x.permute(0, 3, 1, 2)


class SynthesisLayer(nn.Module):
    """Modulated convolution, then `filtered_lrelu` with the stored filters."""

    def __init__(self, layer: StyleGAN3Layer, w_dim: int):
        super().__init__()
        self.spec = layer
        k = layer.conv_kernel
        self.affine = FullyConnectedLayer(w_dim, layer.in_channels)  # one style per *input* channel
        self.weight = nn.Parameter(torch.zeros([layer.out_channels, layer.in_channels, k, k]))
        self.bias = nn.Parameter(torch.zeros([layer.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))  # mean square of the input, tracked in training
        up_shape = [layer.up_taps] if layer.up_taps > 1 else None
        down_shape = ([layer.down_taps] * (2 if layer.down_radial else 1)) if layer.down_taps > 1 else None
        self.register_buffer("up_filter", torch.zeros(up_shape) if up_shape else None)
        self.register_buffer("down_filter", torch.zeros(down_shape) if down_shape else None)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        layer = self.spec
        styles = self.affine(w)  # [N, in_channels]
        weight = self.weight
        if layer.is_torgb:
            styles = styles * (1 / math.sqrt(layer.in_channels * layer.conv_kernel**2))
        else:
            # Pre-normalisation (for fp16 range in NVIDIA's code); demodulation cancels it up to rounding.
            weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
            styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()  # per image; see the module docstring
        x = modulated_conv2d(x, weight, styles, demodulate=not layer.is_torgb, padding=layer.conv_kernel - 1,
                             input_gain=self.magnitude_ema.rsqrt())
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, layer.up_factor, layer.down_factor,
                              layer.padding, activation="linear" if layer.is_torgb else "lrelu",
                              gain=1.0 if layer.is_torgb else math.sqrt(2), clamp=layer.conv_clamp)


class SynthesisNetwork(nn.Module):
    """w+ [N, num_ws, w_dim] → image [N, img_channels, R, R]."""

    def __init__(self, config: StyleGAN3Config):
        super().__init__()
        self.output_scale = config.output_scale
        self.input = SynthesisInput(config)
        self.layer_names = [layer.name for layer in config.layers]
        for layer in config.layers:
            setattr(self, layer.name, SynthesisLayer(layer, config.w_dim))

    def forward(self, ws: torch.Tensor, transforms: torch.Tensor | None = None) -> torch.Tensor:
        x = self.input(ws[:, 0], transforms)
        for index, name in enumerate(self.layer_names):
            x = getattr(self, name)(x, ws[:, index + 1])
        return x * self.output_scale if self.output_scale != 1 else x


# ---------------------------------------------------------------------- the generator
class StyleGAN3Generator(StyleGANGenerator):
    """A StyleGAN3 generator (T or R): w+ slot 0 drives the input transform, slot k the layer `layer_names[k−1]`."""

    family = "stylegan3"
    # ψ 0.7 on every slot: what NVIDIA's gen_images.py --trunc=0.7 does (it passes no cutoff).
    default_sampling = Sampling(truncation_psi=0.7, truncation_cutoff=None)
    # Slot 0's affine predicts a rotation and translation of the input: SeFa uses it only when asked.
    geometric_slots = (0,)

    def __init__(self, config: StyleGAN3Config, format: str = "StyleGAN3"):
        super().__init__(config, format, SynthesisNetwork(config))

    @property
    def architecture(self) -> str:
        return self.config.architecture

    def slot_layer(self, layer: int) -> str:
        """Name of the module whose affine reads w+ slot `layer`: `synthesis.input` for 0, then the layers."""
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"w slot {layer} is outside 0…{self.num_layers - 1}")
        return "synthesis.input" if layer == 0 else f"synthesis.{self.config.layers[layer - 1].name}"

    def set_input_transform(self, translate: Sequence[float], rotate: float) -> None:
        """Translate and rotate what the generator draws, as `gen_images.py --translate X,Y --rotate DEG` does."""
        matrix = torch.from_numpy(input_transform_matrix(translate, rotate))
        self.synthesis.input.transform.copy_(matrix)

    def synthesize_moved(self, latents: torch.Tensor, moves: np.ndarray) -> torch.Tensor:
        """`synthesize`, with image i moved further by moves[i] = (translate x, translate y, rotate degrees).

        A move follows the input transform already set: the user transform
        (an inverse) becomes transform · move⁻¹, so a zero move renders
        exactly what `synthesize` does.
        """
        self.check_latents(latents)
        inverses = torch.from_numpy(np.stack([input_transform_matrix(move[:2], move[2]) for move in moves]))
        transforms = (self.synthesis.input.transform.double() @ inverses.to(latents.device)).float()
        return self.synthesis(latents, transforms)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "layer_names": [layer.name for layer in self.config.layers]}
