"""BigGAN-deep (Brock et al. 2019), our own implementation of the Hugging Face port.

The module tree, and so the `state_dict()` names, are those of
huggingface/pytorch-pretrained-BigGAN `model.py` (`embeddings.weight`,
`generator.gen_z.weight_orig`, `generator.layers.3.bn_0.scale.weight_u`, …;
table in `shared/research/checkpoint-formats.md` §8.2), so its
`pytorch_model.bin` loads 1:1. The forward pass repeats the port's operations
in eval mode, in the same order, so fp32 CPU output equals it to the bit
(checked against the port's own code on random weights; see the README).

What the network computes (the port is BigGAN-*deep*: no hierarchical z):

- cond = [z, embeddings·one_hot(class)], [N, 2·z_dim], feeds the first linear
  layer `gen_z` *and* every conditional batch norm of every block;
- spectral normalisation in eval mode: W = weight_orig / σ with
  σ = u·(W_mat v) from the stored `weight_u`/`weight_v`; no power iteration
  (the port in train mode would run one per call and change u and v). W is
  computed once, when the weights are loaded;
- batch norms use statistics stored for 51 truncation values; a truncation
  between two stored rows mixes them the port's way, which weighs row i by
  the *fractional part* f and row i+1 by 1 − f (the reverse of linear
  interpolation, `BigGANBatchNorm.forward`). We repeat it to match the port.

Latents. BigGAN is edited in z (one slot), but its image also depends on the
class and on the truncation value. So a latent row holds everything:
`[z | class embedding | stats row, weight of that row, weight of the next]`
([N, 1, 2·z_dim + 3]); `synthesize` is a pure function of it, and `edit`
moves only the z part. The last three numbers are exactly the float32 values
the port multiplies the stored statistics by.

Sampling (HF `utils.truncated_noise_sample`): seed s gives
z = truncation · float32(truncnorm(−2, 2) drawn by inverse CDF from
`np.random.RandomState(s).uniform(size=z_dim)`), which is
`truncated_noise_sample(batch_size=1, truncation=t, seed=s)`, computed without
scipy (`truncated_normal`).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from render.models import imagenet
from render.models.base import Generator, Sampling

__all__ = ["BigGANConfig", "BigGANGenerator", "truncated_normal", "stats_mix", "mix_rows"]

TRUNCATION_BOUND = 2.0        # the port's noise is truncnorm(−2, 2)


@dataclass(frozen=True)
class BigGANConfig:
    """The port's `config.json`, checked (see `biggan_loader.read_config`)."""

    output_dim: int                          # R: images are [3, R, R]
    z_dim: int                               # length of z; the class embedding has the same length
    channel_width: int                       # ch: every width is ch × a multiplier
    num_classes: int                         # 1000 for the ImageNet models
    layers: tuple[tuple[bool, int, int], ...]  # per GenBlock: (upsample ×2?, in multiplier, out multiplier)
    attention_layer_position: int            # self-attention sits before this GenBlock (none if ≥ len(layers))
    eps: float = 1e-4                        # of the batch norms
    n_stats: int = 51                        # stored statistics rows, for truncation 0, 1/(n−1), …, 1
    class_embed_dim: int | None = None       # as written in config.json; the port ignores it (embedding = z_dim)

    @property
    def resolution(self) -> int:
        return 4 * 2 ** sum(1 for up, _, _ in self.layers if up)

    @property
    def largest_activation(self) -> int:
        """Elements of the largest tensor one image passes through (for `limits.skeleton`).

        A block's input width at its output size, padding included (its shortcut is upsampled before
        the sum), or the self-attention map [HW, HW/4] at the attention layer's input size.
        """
        largest, r = 0, 4
        for index, (up, in_mult, _) in enumerate(self.layers):
            if index == self.attention_layer_position:
                largest = max(largest, (r * r) ** 2 // 4)
            r *= 2 if up else 1
            largest = max(largest, self.channel_width * in_mult * (r + 2) ** 2)
        return max(largest, self.channel_width * (r + 2) ** 2)


def truncated_normal(seed: int, size: int) -> np.ndarray:
    """float32 samples of the standard normal truncated to [−2, 2], as scipy's `truncnorm.rvs(-2, 2)`
    draws them from `np.random.RandomState(seed)`: one uniform u per value, then the inverse CDF
    x = Φ⁻¹(Φ(−2) + u·(Φ(2) − Φ(−2))).

    We evaluate Φ with `math.erfc` and Φ⁻¹ with `statistics.NormalDist` (Wichura's AS241, ~1e-16),
    so the float32 values do not depend on a scipy version.

    >>> x = truncated_normal(0, 1000); bool(np.abs(x).max() <= 2), x.dtype
    (True, dtype('float32'))
    """
    uniform = np.random.RandomState(seed).uniform(0.0, 1.0, size=size)
    low = 0.5 * math.erfc(TRUNCATION_BOUND / math.sqrt(2))  # Φ(−2)
    mass = 1.0 - 2.0 * low                                   # Φ(2) − Φ(−2)
    normal = statistics.NormalDist()
    return np.array([normal.inv_cdf(low + u * mass) for u in uniform], dtype=np.float32)


def stats_mix(truncation: float, n_stats: int) -> tuple[int, float, float]:
    """(row, weight of that row, weight of the next row) of the stored BN statistics for `truncation`,
    as the port computes them, in float32.

    The port takes coef, row = modf(truncation / step) with step = 1/(n_stats − 1) and uses
    stats[row]·coef + stats[row+1]·(1 − coef), or stats[row] alone when coef is 0.

    >>> stats_mix(0.5, 51), stats_mix(1.0, 51)
    ((25, 1.0, 0.0), (50, 1.0, 0.0))
    >>> row, w_row, w_next = stats_mix(0.51, 51); row, round(w_row, 4), round(w_next, 4)
    (25, 0.5, 0.5)
    """
    coef, row = math.modf(truncation / (1.0 / (n_stats - 1)))
    if coef == 0.0:
        return int(row), 1.0, 0.0
    return int(row), float(np.float32(coef)), float(np.float32(1 - coef))


# ---------------------------------------------------------------------- layers
class SpectralNormed(nn.Module):
    """A linear or conv layer stored as `weight_orig`, `weight_u`, `weight_v` (+ `bias`), as
    `torch.nn.utils.spectral_norm` saves it; `weight` = weight_orig/σ is derived by `refresh()`."""

    def __init__(self, weight_shape: Sequence[int], bias: bool):
        super().__init__()
        self.weight_orig = nn.Parameter(torch.zeros(weight_shape))
        self.bias = nn.Parameter(torch.zeros(weight_shape[0])) if bias else None
        self.register_buffer("weight_u", torch.zeros(weight_shape[0]))
        self.register_buffer("weight_v", torch.zeros(math.prod(weight_shape[1:])))
        self.register_buffer("weight", torch.zeros(weight_shape), persistent=False)

    def sigma(self) -> torch.Tensor:
        """σ = u·(W_mat v), exactly as torch's spectral norm evaluates it without power iteration."""
        return torch.dot(self.weight_u, torch.mv(self.weight_orig.reshape(self.weight_orig.shape[0], -1), self.weight_v))

    def refresh(self) -> None:
        with torch.no_grad():
            self.weight.copy_(self.weight_orig / self.sigma())


class SNLinear(SpectralNormed):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__((out_features, in_features), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class SNConv2d(SpectralNormed):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        super().__init__((out_channels, in_channels, kernel_size, kernel_size), bias)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class ConditionalBatchNorm(nn.Module):
    """(x − μ_t)/√(σ²_t + eps)·(1 + scale(cond)) + offset(cond), with μ_t, σ²_t from the stored rows."""

    def __init__(self, channels: int, cond_dim: int, config: BigGANConfig):
        super().__init__()
        self.eps = config.eps
        self.register_buffer("running_means", torch.zeros(config.n_stats, channels))
        self.register_buffer("running_vars", torch.ones(config.n_stats, channels))
        self.scale = SNLinear(cond_dim, channels, bias=False)
        self.offset = SNLinear(cond_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mix: tuple[int, float, float]) -> torch.Tensor:
        mean = mix_rows(self.running_means, mix)[None, :, None, None]
        var = mix_rows(self.running_vars, mix)[None, :, None, None]
        weight = 1 + self.scale(cond)[:, :, None, None]
        bias = self.offset(cond)[:, :, None, None]
        return (x - mean) / torch.sqrt(var + self.eps) * weight + bias


class BatchNorm(nn.Module):
    """The unconditional batch norm before `conv_to_rgb`, with the same stored rows."""

    def __init__(self, channels: int, config: BigGANConfig):
        super().__init__()
        self.eps = config.eps
        self.register_buffer("running_means", torch.zeros(config.n_stats, channels))
        self.register_buffer("running_vars", torch.ones(config.n_stats, channels))
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, mix: tuple[int, float, float]) -> torch.Tensor:
        mean, var = mix_rows(self.running_means, mix), mix_rows(self.running_vars, mix)
        return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, momentum=0.0, eps=self.eps)


def mix_rows(rows: torch.Tensor, mix: tuple[int, float, float]) -> torch.Tensor:
    """The statistics for one truncation from the stored rows [n_stats, C], given its `stats_mix`."""
    row, w_row, w_next = mix
    if w_next == 0.0:
        return rows[row]
    return rows[row] * w_row + rows[row + 1] * w_next


class GenBlock(nn.Module):
    """BN-ReLU-1×1 → BN-ReLU-(up)-3×3 → BN-ReLU-3×3 → BN-ReLU-1×1, plus a shortcut that keeps the
    first half of the channels when the block halves them and upsamples when the block does."""

    def __init__(self, in_channels: int, out_channels: int, up: bool, cond_dim: int, config: BigGANConfig):
        super().__init__()
        middle = in_channels // 4
        self.up = up
        self.drop_channels = in_channels != out_channels
        self.bn_0 = ConditionalBatchNorm(in_channels, cond_dim, config)
        self.conv_0 = SNConv2d(in_channels, middle, 1)
        self.bn_1 = ConditionalBatchNorm(middle, cond_dim, config)
        self.conv_1 = SNConv2d(middle, middle, 3)
        self.bn_2 = ConditionalBatchNorm(middle, cond_dim, config)
        self.conv_2 = SNConv2d(middle, middle, 3)
        self.bn_3 = ConditionalBatchNorm(middle, cond_dim, config)
        self.conv_3 = SNConv2d(middle, out_channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mix: tuple[int, float, float]) -> torch.Tensor:
        shortcut = x
        x = self.conv_0(F.relu(self.bn_0(x, cond, mix)))
        x = F.relu(self.bn_1(x, cond, mix))
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv_1(x)
        x = self.conv_2(F.relu(self.bn_2(x, cond, mix)))
        x = self.conv_3(F.relu(self.bn_3(x, cond, mix)))
        if self.drop_channels:
            shortcut = shortcut[:, :shortcut.shape[1] // 2]
        if self.up:
            shortcut = F.interpolate(shortcut, scale_factor=2, mode="nearest")
        return x + shortcut


class SelfAttn(nn.Module):
    """SAGAN self-attention: x + γ·o(g·softmax(θᵀφ)ᵀ), with φ and g max-pooled 2×."""

    def __init__(self, channels: int):
        super().__init__()
        self.snconv1x1_theta = SNConv2d(channels, channels // 8, 1, bias=False)
        self.snconv1x1_phi = SNConv2d(channels, channels // 8, 1, bias=False)
        self.snconv1x1_g = SNConv2d(channels, channels // 2, 1, bias=False)
        self.snconv1x1_o_conv = SNConv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        theta = self.snconv1x1_theta(x).view(n, c // 8, h * w)                     # [N, C/8, HW]
        phi = F.max_pool2d(self.snconv1x1_phi(x), 2).view(n, c // 8, h * w // 4)    # [N, C/8, HW/4]
        attention = torch.softmax(torch.bmm(theta.permute(0, 2, 1), phi), dim=-1)  # [N, HW, HW/4]
        g = F.max_pool2d(self.snconv1x1_g(x), 2).view(n, c // 2, h * w // 4)        # [N, C/2, HW/4]
        attended = torch.bmm(g, attention.permute(0, 2, 1)).view(n, c // 2, h, w)
        return x + self.gamma * self.snconv1x1_o_conv(attended)


class Synthesis(nn.Module):
    """The port's `Generator`: cond [N, 2·z_dim] → image [N, 3, R, R]."""

    def __init__(self, config: BigGANConfig):
        super().__init__()
        ch, cond_dim = config.channel_width, 2 * config.z_dim
        self.first_channels = 16 * ch
        self.gen_z = SNLinear(cond_dim, 4 * 4 * 16 * ch)
        layers: list[nn.Module] = []
        for index, (up, in_mult, out_mult) in enumerate(config.layers):
            if index == config.attention_layer_position:
                layers.append(SelfAttn(ch * in_mult))
            layers.append(GenBlock(ch * in_mult, ch * out_mult, up, cond_dim, config))
        self.layers = nn.ModuleList(layers)
        self.bn = BatchNorm(ch, config)
        self.conv_to_rgb = SNConv2d(ch, ch, 3)  # ch outputs stored; only the first 3 are the image

    def forward(self, cond: torch.Tensor, mix: tuple[int, float, float]) -> torch.Tensor:
        # gen_z's outputs are in TensorFlow's NHWC order.
        x = self.gen_z(cond).view(-1, 4, 4, self.first_channels).permute(0, 3, 1, 2).contiguous()
        for layer in self.layers:
            x = layer(x, cond, mix) if isinstance(layer, GenBlock) else layer(x)
        x = self.conv_to_rgb(F.relu(self.bn(x, mix)))
        return torch.tanh(x[:, :3])


# ---------------------------------------------------------------------- the generator
class BigGANGenerator(Generator):
    family = "biggan"
    # HF's README renders at truncation 0.4; any value in (0, 1] can be set per model (`truncation_psi`).
    default_sampling = Sampling(truncation_psi=0.4)
    batch_sizes = {"cpu": 8, "cuda": 64}

    def __init__(self, config: BigGANConfig):
        super().__init__()
        self.config = config
        self.set_sizes(z_dim=config.z_dim, latent_dim=config.z_dim, num_layers=1, img_resolution=config.resolution,
                       img_channels=3, c_dim=config.num_classes)
        self.embeddings = nn.Linear(config.num_classes, config.z_dim, bias=False)
        self.generator = Synthesis(config)
        self.eval()

    def refresh_weights(self) -> None:
        """Derive every spectrally normalised weight from the stored weight_orig, u and v."""
        for module in self.modules():
            if isinstance(module, SpectralNormed):
                module.refresh()

    # ------------------------------------------------------------------ sampling
    def check_sampling(self, sampling: Sampling) -> str | None:
        if not 0 < sampling.truncation_psi <= 1:
            return f"BigGAN truncation must be in (0, 1], got {sampling.truncation_psi}"
        if sampling.truncation_cutoff is not None:
            return "BigGAN has no truncation_cutoff (its truncation applies to z and the batch-norm statistics)"
        return super().check_sampling(dataclasses.replace(sampling, truncation_psi=1.0))

    def class_index(self, name: str) -> int:
        if self.c_dim != imagenet.NUM_CLASSES:
            raise ValueError(f"class names are ImageNet's; this model has {self.c_dim} classes, give a class index")
        return imagenet.class_index(name)

    def latents_from_seeds(self, seeds: Sequence[int], sampling: Sampling = default_sampling) -> torch.Tensor:
        """HF's `truncated_noise_sample(batch_size=1, truncation=t, seed=s)` for each seed s."""
        noise = np.stack([truncated_normal(seed, self.z_dim) for seed in seeds]) if seeds else np.zeros((0, self.z_dim), np.float32)
        z = torch.from_numpy(np.float32(sampling.truncation_psi) * noise).to(self.device)
        with torch.no_grad():
            return self.latents(z, sampling)

    def latents(self, z: torch.Tensor, sampling: Sampling) -> torch.Tensor:
        """z as the network takes it (already scaled by the truncation) → [N, 1, 2·z_dim + 3] rows
        [z | class embedding | stats mix]."""
        self.require_sampling(sampling)
        assert sampling.class_index is not None
        # embeddings·one_hot is exactly the class's column of the embedding matrix.
        embedding = self.embeddings.weight[:, sampling.class_index].to(z)  # [z_dim]
        mix = torch.tensor(stats_mix(sampling.truncation_psi, self.config.n_stats)).to(z)
        rows = torch.cat([z, embedding.expand(len(z), -1), mix.expand(len(z), -1)], dim=1)
        return rows[:, None, :]

    # ------------------------------------------------------------------ editing and synthesis
    def edit(self, latents: torch.Tensor, direction: torch.Tensor, alphas: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
        """Adds α·n to the z part only: the class and the truncation stay."""
        edited = latents.clone()
        offset = alphas.to(latents)[:, None] * direction.to(latents)  # [N, z_dim]
        edited[:, 0, :self.z_dim] += offset
        return edited

    def synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        width = 2 * self.z_dim + 3
        if latents.ndim != 3 or tuple(latents.shape[1:]) != (1, width):
            raise ValueError(f"latents have shape {tuple(latents.shape)}, expected [N, 1, {width}]")
        cond, mixes = latents[:, 0, :2 * self.z_dim], latents[:, 0, 2 * self.z_dim:]
        images = torch.empty(len(latents), 3, self.img_resolution, self.img_resolution, device=latents.device)
        # The statistics are one row per call in the port, so rows sharing a truncation go together.
        for mix in torch.unique(mixes, dim=0):
            rows = (mixes == mix).all(dim=1)
            row, w_row, w_next = mix.tolist()
            images[rows] = self.generator(cond[rows], (int(row), w_row, w_next)).to(images.dtype)
        return images

    # ------------------------------------------------------------------ SeFa
    def sefa_weight(self, layer: int) -> np.ndarray:
        """The z columns of the first linear layer's spectrally normalised weight, [16·ch·16, z_dim]."""
        assert layer == 0, "BigGAN has a single edit slot"
        return self.sefa_matrices([0])[0]

    def sefa_matrices(self, layers: Sequence[int], weights: str = "default") -> list[np.ndarray]:
        """'default': the z columns of `gen_z`; 'all': those plus the z columns of every conditional
        batch norm's `scale` and `offset` projection ([C, z_dim] each). The class columns are left
        out either way, so directions do not depend on the class. README says why gen_z is the default."""
        assert list(layers) == [0], "BigGAN has a single edit slot"
        if weights not in ("default", "all"):
            raise ValueError(f"sefa_weights {weights!r} is not 'default' or 'all'")
        modules = [self.generator.gen_z]
        if weights == "all":
            modules += [p for bn in self.modules() if isinstance(bn, ConditionalBatchNorm) for p in (bn.scale, bn.offset)]
        return [module.weight[:, :self.z_dim].detach().cpu().double().numpy() for module in modules]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "truncation_rows": self.config.n_stats}
