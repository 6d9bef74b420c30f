"""StyleGAN2 (configs E/F of Karras et al. 2020), our own implementation.

One network serves every StyleGAN2 checkpoint format. Its module tree, and so
its `state_dict()` names, are NVIDIA's (`mapping.fc0.weight`,
`synthesis.b8.conv0.affine.weight`, …; table in
`shared/research/checkpoint-formats.md` §2.7): NVIDIA pickles load 1:1 and
other formats (rosinality) are renamed onto it. `StyleGAN2Config` holds what
the format loaders read from a checkpoint and what rebuilding the network
needs; every size comes from the checkpoint, none from a repository's
defaults, because those changed between repositories (§2.5).

The forward pass follows the op order of NVIDIA's CPU/fp32 reference (§3), so
it reproduces `gen_images.py --noise-mode=const` on the CPU to the float.
Choices a reader might otherwise undo:

- **Constant noise, always.** Every layer adds its stored `noise_const`; a
  traversal video must change only where α changes, never flicker.
- **Truncation before edits.** `latents` truncates (ψ, cutoff) and the edit
  `α·n` is added afterwards, to the selected w+ slots only, as official SeFa
  does (genforce/sefa `sefa.py`).
- **w+ slots and ToRGB.** Block r reads a window of the w+ slots and advances
  by its number of convs only, so a block's ToRGB shares its slot with the
  next block's first conv, and only the final ToRGB has a slot of its own
  (the last). `sefa_weight(k)` therefore returns the affine of the *conv* that
  reads slot k, and the final ToRGB's for the last slot; intermediate ToRGBs
  are never factorized (anchors.md §1.1.8).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from render.errors import CheckpointError
from render.models import limits
from render.models.base import Generator, Sampling
from render.models.ops import ACTIVATIONS, bias_act, modulated_conv2d, normalize_2nd_moment, upfirdn2d, upsample2d
from render.models.state import check_state
from render.untrusted import bounded_repr

__all__ = ["StyleGAN2Config", "StyleGAN2Generator", "StyleGANGenerator", "MappingConfig", "ARCHITECTURES", "skeleton",
           "load_state"]

ARCHITECTURES = ("orig", "skip", "resnet")


@dataclass(frozen=True)
class StyleGAN2Config:
    """Everything needed to rebuild a StyleGAN2 generator, as read from its checkpoint."""

    # Latents and output.
    z_dim: int                              # length of z (0 = no z input)
    w_dim: int                              # length of w
    c_dim: int                              # number of classes, 0 = unconditional
    img_resolution: int                     # R: output images are [img_channels, R, R]; a power of 2 ≥ 4
    img_channels: int                       # 3 for RGB
    # Mapping network.
    mapping_layers: int                     # number of fully-connected layers fc0…
    mapping_features: int                   # width of the hidden mapping layers (NVIDIA's layer_features)
    embed_features: int                     # width of the class embedding; 0 when c_dim = 0
    mapping_lr_multiplier: float            # equalized-lr multiplier of the mapping layers (0.01)
    # Synthesis network.
    channels: tuple[int, ...]               # C(r): feature maps of block r = 4, 8, …, R
    architecture: str = "skip"              # 'skip' (ToRGB in every block), 'resnet' or 'orig'
    kernel_size: int = 3                    # of the modulated convs
    use_noise: bool = True                  # layers add per-pixel noise (noise_const, noise_strength)
    conv_clamp: float | None = None         # clamp conv outputs to ±conv_clamp; None = no clamp
    resample_filter_shape: tuple[int, ...] = (4, 4)  # FIR filter buffers; values come with the weights
    mapping_activation: str = "lrelu"
    synthesis_activation: str = "lrelu"

    def __post_init__(self) -> None:
        limits.check_sizes(img_resolution=self.img_resolution, z_dim=self.z_dim, w_dim=self.w_dim, c_dim=self.c_dim,
                           mapping_layers=self.mapping_layers,
                           channels=max((*self.channels, self.mapping_features, self.embed_features, self.img_channels)))
        r = self.img_resolution
        problems = []
        if r < 4 or r & (r - 1):
            problems.append(f"img_resolution {r} is not a power of 2 ≥ 4")
        elif len(self.channels) != len(self.block_resolutions):
            problems.append(f"{len(self.channels)} channel widths for {len(self.block_resolutions)} blocks")
        if self.architecture not in ARCHITECTURES:
            problems.append(f"architecture {bounded_repr(self.architecture)} is not one of {ARCHITECTURES}")
        for name in ("mapping_activation", "synthesis_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                problems.append(f"{name} {bounded_repr(getattr(self, name))} is not one of {tuple(ACTIVATIONS)}")
        if self.mapping_layers < 1 or self.w_dim < 1 or (self.z_dim < 1 and self.c_dim < 1):
            problems.append("the mapping network needs at least one layer, w_dim ≥ 1 and a z or class input")
        if self.kernel_size % 2 != 1:
            problems.append(f"kernel_size {self.kernel_size} is not odd")
        if problems:
            raise CheckpointError("unsupported StyleGAN2 configuration: " + "; ".join(problems))

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        """4, 8, …, img_resolution."""
        return tuple(2**i for i in range(2, int(math.log2(self.img_resolution)) + 1))

    @property
    def num_ws(self) -> int:
        """Number of w+ slots: one per conv plus one for the final ToRGB, 2·log2(R) − 2."""
        return 2 * len(self.block_resolutions)

    @property
    def largest_activation(self) -> int:
        """Elements of the largest feature map of one image: C(r)·(r + 2)², padding included."""
        return max(c * (r + 2) ** 2 for c, r in zip(self.channels, self.block_resolutions))


# ---------------------------------------------------------------------- layers
class FullyConnectedLayer(nn.Module):
    """y = act(x·(W·lr/√in)ᵀ + b·lr): equalized learning rate, as NVIDIA stores it.

    The stored weight is the *unscaled* parameter; the runtime gains are applied
    here, so stored weights load unchanged.
    """

    def __init__(self, in_features: int, out_features: int, activation: str = "linear", lr_multiplier: float = 1.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.zeros([out_features, in_features]))
        self.bias = nn.Parameter(torch.zeros([out_features]))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias_gain != 1 else self.bias
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.activation)


class MappingConfig(Protocol):
    """The fields of a StyleGAN2 or StyleGAN3 config that the mapping network reads (see StyleGAN2Config)."""

    z_dim: int
    w_dim: int
    c_dim: int
    mapping_layers: int
    mapping_features: int
    embed_features: int
    mapping_lr_multiplier: float
    mapping_activation: str


class MappingNetwork(nn.Module):
    """z (and class) → w, plus the tracked average `w_avg` used for truncation."""

    def __init__(self, config: MappingConfig):
        super().__init__()
        self.z_dim, self.c_dim = config.z_dim, config.c_dim
        self.num_layers = config.mapping_layers
        if config.c_dim > 0:
            self.embed = FullyConnectedLayer(config.c_dim, config.embed_features)
        features = [config.z_dim + config.embed_features] + [config.mapping_features] * (config.mapping_layers - 1) + [config.w_dim]
        for index in range(config.mapping_layers):
            layer = FullyConnectedLayer(features[index], features[index + 1], config.mapping_activation, config.mapping_lr_multiplier)
            setattr(self, f"fc{index}", layer)
        self.register_buffer("w_avg", torch.zeros([config.w_dim]))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] one-hot or None → w [N, w_dim]."""
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.float()))
        if self.c_dim > 0:
            assert c is not None, "a conditional mapping network needs c"
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for index in range(self.num_layers):
            x = getattr(self, f"fc{index}")(x)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3×3 conv (optionally 2× upsampling), constant noise, bias, activation, clamp."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, up: int, config: StyleGAN2Config):
        super().__init__()
        self.resolution, self.up = resolution, up
        self.use_noise = config.use_noise
        self.activation = config.synthesis_activation
        self.conv_clamp = config.conv_clamp
        self.padding = config.kernel_size // 2
        self.affine = FullyConnectedLayer(config.w_dim, in_channels)  # one style per *input* channel
        k = config.kernel_size
        self.weight = nn.Parameter(torch.zeros([out_channels, in_channels, k, k]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("resample_filter", torch.zeros(config.resample_filter_shape))
        if config.use_noise:
            self.noise_strength = nn.Parameter(torch.zeros([]))
            self.register_buffer("noise_const", torch.zeros([resolution, resolution]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        styles = self.affine(w)  # [N, in_channels]
        x = modulated_conv2d(x, self.weight, styles, up=self.up, padding=self.padding, resample_filter=self.resample_filter)
        if self.use_noise:
            x = x.add_(self.noise_const * self.noise_strength)  # [r, r], the same for every sample
        act_gain = ACTIVATIONS[self.activation][1] * gain
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, self.activation, gain=act_gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1×1 conv to image channels, without demodulation, plus bias."""

    def __init__(self, in_channels: int, config: StyleGAN2Config):
        super().__init__()
        self.conv_clamp = config.conv_clamp
        self.affine = FullyConnectedLayer(config.w_dim, in_channels)
        self.weight = nn.Parameter(torch.zeros([config.img_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([config.img_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)  # applied to the styles, where NVIDIA applies it

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class ResnetSkip(nn.Module):
    """The 'resnet' shortcut: 1×1 conv (no bias), 2× FIR upsampling (NVIDIA's `Conv2dLayer`)."""

    def __init__(self, in_channels: int, out_channels: int, config: StyleGAN2Config):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros([out_channels, in_channels, 1, 1]))
        self.register_buffer("resample_filter", torch.zeros(config.resample_filter_shape))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, gain: float) -> torch.Tensor:
        x = nn.functional.conv2d(x, self.weight * self.weight_gain)
        fw, fh = self.resample_filter.shape[-1], self.resample_filter.shape[0]
        x = upfirdn2d(x, self.resample_filter, up=2, padding=((fw + 1) // 2, (fw - 2) // 2, (fh + 1) // 2, (fh - 2) // 2), gain=4)
        return bias_act(x, None, gain=gain)


class SynthesisBlock(nn.Module):
    """One resolution r: (const | upsampling conv0) → conv1 → optional ToRGB; image skip path."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, is_last: bool, config: StyleGAN2Config):
        super().__init__()
        self.in_channels = in_channels  # 0 for the first block, which starts from a learned constant
        self.architecture = config.architecture
        self.register_buffer("resample_filter", torch.zeros(config.resample_filter_shape))
        if in_channels == 0:
            self.const = nn.Parameter(torch.zeros([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, resolution, up=2, config=config)
        self.conv1 = SynthesisLayer(out_channels, out_channels, resolution, up=1, config=config)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1 if is_last or config.architecture == "skip" else 0
        if self.num_torgb:
            self.torgb = ToRGBLayer(out_channels, config)
        if in_channels != 0 and config.architecture == "resnet":
            self.skip = ResnetSkip(in_channels, out_channels, config)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ws [N, num_conv + num_torgb, w_dim]; x [N, C_in, r/2, r/2]; img [N, I, r/2, r/2] or None."""
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])  # [N, C, 4, 4]
            x = self.conv1(x, ws[:, 0])
        elif self.architecture == "resnet":
            # Both branches are scaled by √½ so that their sum keeps unit variance.
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, ws[:, 0])
            x = self.conv1(x, ws[:, 1], gain=math.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv0(x, ws[:, 0])
            x = self.conv1(x, ws[:, 1])
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.num_torgb:
            y = self.torgb(x, ws[:, self.num_conv])
            img = img.add_(y) if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """w+ [N, num_ws, w_dim] → image [N, I, R, R], block by block."""

    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        self.block_resolutions = config.block_resolutions
        widths = dict(zip(config.block_resolutions, config.channels))
        for r in config.block_resolutions:
            in_channels = widths[r // 2] if r > 4 else 0
            block = SynthesisBlock(in_channels, widths[r], r, is_last=r == config.img_resolution, config=config)
            setattr(self, f"b{r}", block)

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        x = img = None
        w_idx = 0
        for r in self.block_resolutions:
            block = getattr(self, f"b{r}")
            # A block reads num_conv + num_torgb slots but advances by num_conv:
            # its ToRGB shares the next block's first slot.
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv
        assert img is not None
        return img


# ---------------------------------------------------------------------- the generator
class StyleGANGenerator(Generator):
    """What StyleGAN2 and StyleGAN3 share: the mapping network, truncation, w+ edits, SeFa on affines.

    Edit space: w+ [N, num_ws, w_dim]. Subclasses build the synthesis network
    and name the module whose `affine` reads each slot (`slot_layer`).
    """

    # Where mapping.w_avg (the truncation centre) came from; rosinality training checkpoints estimate it.
    w_avg_source = "stored in the checkpoint"
    # Official SeFa's defaults (genforce/sefa `sefa.py`): ψ 0.7 on the first 8 slots.
    default_sampling = Sampling(truncation_psi=0.7, truncation_cutoff=8)
    # The batch runs as one grouped convolution (groups = batch); on a CPU its per-image speed falls as groups grow.
    batch_sizes = {"cpu": 8, "cuda": 32}
    truncates = True

    def __init__(self, config: Any, format: str, synthesis: nn.Module):
        super().__init__()
        self.config = config
        self.format = format
        self.set_sizes(z_dim=config.z_dim, latent_dim=config.w_dim, num_layers=config.num_ws,
                       img_resolution=config.img_resolution, img_channels=config.img_channels, c_dim=config.c_dim)
        self.mapping = MappingNetwork(config)
        self.synthesis = synthesis
        self.requires_grad_(False)
        self.eval()

    # ------------------------------------------------------------------ sampling
    def latents(self, z: torch.Tensor, sampling: Sampling) -> torch.Tensor:
        """z [N, z_dim] → truncated w+ [N, num_ws, w_dim].

        Truncation pulls the first `truncation_cutoff` slots (all when None)
        towards w_avg: w ← w_avg + ψ·(w − w_avg).
        """
        self.require_sampling(sampling)
        c = None
        if self.c_dim > 0:
            c = torch.zeros([z.shape[0], self.c_dim], device=z.device)
            c[:, sampling.class_index] = 1
        w = self.mapping(z, c)  # [N, w_dim]
        ws = w.unsqueeze(1).repeat([1, self.num_layers, 1])  # [N, num_ws, w_dim]
        if sampling.truncation_psi != 1:
            cutoff = self.num_layers if sampling.truncation_cutoff is None else sampling.truncation_cutoff
            ws[:, :cutoff] = self.mapping.w_avg.lerp(ws[:, :cutoff], sampling.truncation_psi)
        return ws

    # ------------------------------------------------------------------ synthesis
    def synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        self.check_latents(latents)
        return self.synthesis(latents)


    # ------------------------------------------------------------------ SeFa
    @abc.abstractmethod
    def slot_layer(self, layer: int) -> str:
        """Name of the module whose affine reads w+ slot `layer`."""

    def sefa_weight(self, layer: int) -> np.ndarray:
        """The affine weight [C_in, w_dim] of the layer that reads slot `layer` (its gain 1/√w_dim left out)."""
        module = self.get_submodule(self.slot_layer(layer))
        return module.affine.weight.detach().cpu().double().numpy()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "w_dim": self.config.w_dim, "num_ws": self.num_layers, "w_avg_source": self.w_avg_source}


class StyleGAN2Generator(StyleGANGenerator):
    """A StyleGAN2 generator: w+ has one slot per conv plus the final ToRGB (`num_layers` = num_ws)."""

    family = "stylegan2"

    def __init__(self, config: StyleGAN2Config, format: str = "StyleGAN2"):
        super().__init__(config, format, SynthesisNetwork(config))
        if config.num_ws < 8:
            # Small models (≤ 16 px) have fewer than 8 slots; cutoff 8 meant "all" there in NVIDIA's code.
            self.default_sampling = Sampling(truncation_psi=0.7, truncation_cutoff=None)

    @property
    def architecture(self) -> str:
        return self.config.architecture

    def slot_layer(self, layer: int) -> str:
        """Name of the module whose affine reads w+ slot `layer`.

        >>> g = StyleGAN2Generator(StyleGAN2Config(z_dim=2, w_dim=2, c_dim=0, img_resolution=16, img_channels=3,
        ...     mapping_layers=1, mapping_features=2, embed_features=0, mapping_lr_multiplier=0.01, channels=(4, 4, 4)))
        >>> [g.slot_layer(k) for k in range(g.num_layers)]  # doctest: +NORMALIZE_WHITESPACE
        ['synthesis.b4.conv1', 'synthesis.b8.conv0', 'synthesis.b8.conv1',
         'synthesis.b16.conv0', 'synthesis.b16.conv1', 'synthesis.b16.torgb']
        """
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"w slot {layer} is outside 0…{self.num_layers - 1}")
        if layer == self.num_layers - 1:
            return f"synthesis.b{self.img_resolution}.torgb"
        if layer == 0:
            return "synthesis.b4.conv1"
        resolution = 4 * 2 ** ((layer + 1) // 2)
        return f"synthesis.b{resolution}.conv{0 if layer % 2 else 1}"


# ---------------------------------------------------------------------- loading
def skeleton(config: StyleGAN2Config, format: str = "StyleGAN2") -> StyleGAN2Generator:
    """The generator for `config` on the meta device (names and shapes, no memory), if one image fits.

    Pass it to `load_state`, which checks the weights against it before allocating the real network.

    Raises:
        CheckpointError: when synthesising one image would need too much memory (`limits.skeleton`).
    """
    return limits.skeleton(lambda: StyleGAN2Generator(config, format=format), config.largest_activation)


StyleGANG = TypeVar("StyleGANG", bound=StyleGANGenerator)


def load_state(
    generator: StyleGANG,
    state: Mapping[str, torch.Tensor],
    source_name: Callable[[str], str] = lambda name: name,
) -> StyleGANG:
    """Load `state` (canonical NVIDIA names) strictly into `generator`; returns the loaded generator.

    Every expected tensor must be present with its exact shape, and no other
    tensor may be there. `source_name` turns a canonical name into the name the
    checkpoint itself uses, for error messages. Loaders pass a `skeleton`: then
    everything is checked before the real network is allocated, which is built
    and returned only when the checks pass.

    Raises:
        CheckpointError: naming the first missing or mis-shaped tensor, or the unexpected ones.
    """
    kind = type(generator).__name__.removesuffix("Generator")
    check_state({name: tuple(t.shape) for name, t in generator.state_dict().items()}, state, kind, source_name)
    if generator.device.type == "meta":  # a skeleton: now that the weights fit, allocate the real network
        generator = type(generator)(generator.config, format=generator.format)
    generator.load_state_dict({name: tensor.float() for name, tensor in state.items()}, strict=True)
    return generator
