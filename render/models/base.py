"""The small interface every generator family implements.

The rest of sefa-render never asks "which GAN is this". It only

1. turns seeds into edit-space latents (`latents_from_seeds`),
2. adds `alpha * direction` to chosen layers of those latents (`edit`),
3. synthesises images from latents (`synthesize`), and
4. asks for the weight matrices that SeFa factorizes (`sefa_weight`).

Edit-space latents always have the shape `[batch, num_layers, latent_dim]`: one
slot per editable layer (StyleGAN's w+ slots), or a single slot for models that
are edited in z (DCGAN, PGGAN, BigGAN). A "layer index" in a job spec is an
index into that slot axis.

Seeds mean what they mean in NVIDIA's scripts:
`z = np.random.RandomState(seed).randn(z_dim)`, so seed 42 here is seed 42 in
`gen_images.py`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from render.ranges import IndexSelection

__all__ = ["Generator", "Sampling", "z_from_seeds"]


@dataclass(frozen=True)
class Sampling:
    """How seeds become latents, beyond the seed itself."""

    truncation_psi: float = 1.0          # ψ: w ← w_avg + ψ·(w − w_avg); 1 = no truncation
    truncation_cutoff: int | None = None  # truncate the first `cutoff` w+ slots; None = all
    class_index: int | None = None        # label for class-conditional models (c_dim > 0)


def z_from_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """NVIDIA's seed convention, one independent generator per seed.

    Returns a float32 tensor of shape [len(seeds), z_dim] on the CPU.

    >>> z_from_seeds([0, 1], 3).shape
    torch.Size([2, 3])
    >>> float(z_from_seeds([0], 3)[0, 0]) == float(np.float32(np.random.RandomState(0).randn(3)[0]))
    True
    """
    z = np.stack([np.random.RandomState(seed).randn(z_dim) for seed in seeds]) if seeds else np.zeros((0, z_dim))
    return torch.from_numpy(z).to(torch.float32)


class Generator(torch.nn.Module, abc.ABC):
    """A pretrained generator seen through the operations sefa-render needs.

    Subclasses set `family` and `config` (a frozen dataclass that is enough to
    rebuild the network; it is recorded in the manifest) and implement the
    abstract methods. The module is always in eval mode.
    """

    family: ClassVar[str]
    config: Any
    # The checkpoint format in words ("NVIDIA StyleGAN2 pickle (stylegan2-ada-pytorch)"), set by the family's build.
    format: str = ""
    # What a job gets when its model entry leaves truncation unset (StyleGAN: ψ 0.7 on the first 8 slots).
    default_sampling: ClassVar[Sampling] = Sampling()
    # How [-1, 1] floats become pixels (`layout.to_pixels`): "nvidia" (gen_images.py) or "genforce" (genforce's postprocess).
    pixels: ClassVar[str] = "nvidia"
    # Images per synthesize() call by device type, where throughput levels off (CPU: one thread; bench/bench.py).
    batch_sizes: ClassVar[dict[str, int]] = {"cpu": 64, "cuda": 256}

    # Sizes, set by each subclass's constructor from its config.
    z_dim: int
    latent_dim: int          # length of an edit-space vector (z_dim, or w_dim for StyleGAN)
    num_layers: int          # number of edit-space slots (1 for z-space models)
    img_resolution: int
    img_channels: int
    c_dim: int = 0           # number of classes for conditional models, 0 otherwise
    # Slots whose affine drives a geometric transform, not content (StyleGAN3's input): used only when asked for.
    geometric_slots: ClassVar[tuple[int, ...]] = ()
    # Whether ψ/cutoff truncation applies (w+ models pulled towards a w_avg); other models refuse it.
    truncates: ClassVar[bool] = False

    def set_sizes(self, *, z_dim: int, latent_dim: int, num_layers: int, img_resolution: int, img_channels: int,
                  c_dim: int = 0) -> None:
        """Set the sizes above; each subclass's constructor calls it with what its config implies."""
        self.z_dim, self.latent_dim, self.num_layers = z_dim, latent_dim, num_layers
        self.img_resolution, self.img_channels, self.c_dim = img_resolution, img_channels, c_dim

    # ------------------------------------------------------------------ sampling
    def check_sampling(self, sampling: Sampling) -> str | None:
        """Why `sampling` does not apply to this model, or None when it does."""
        psi, cutoff = sampling.truncation_psi, sampling.truncation_cutoff
        if not self.truncates:
            if psi != 1.0 or cutoff is not None:
                return f"{self.family} models have no truncation"
        elif not math.isfinite(psi):
            return f"truncation_psi {psi} is not a finite number"
        elif cutoff is not None and not 0 <= cutoff <= self.num_layers:
            return f"truncation_cutoff {cutoff} is outside 0…{self.num_layers} (this model has {self.num_layers} w slots)"
        if sampling.class_index is not None and self.c_dim == 0:
            return f"this {self.family} model is not class-conditional"
        if self.c_dim > 0 and sampling.class_index is None:
            return f"this {self.family} model is class-conditional ({self.c_dim} classes): name a class_index"
        if sampling.class_index is not None and not 0 <= sampling.class_index < self.c_dim:
            return f"class_index {sampling.class_index} is out of range for {self.c_dim} classes"
        return None

    def require_sampling(self, sampling: Sampling) -> None:
        """ValueError with `check_sampling`'s reason when `sampling` does not apply to this model."""
        problem = self.check_sampling(sampling)
        if problem:
            raise ValueError(problem)

    def class_index(self, name: str) -> int:
        """The index of the class called `name`; ValueError when the model has no such name."""
        raise ValueError(f"{self.family} models have no class names; give the class's index")

    @abc.abstractmethod
    def latents(self, z: torch.Tensor, sampling: Sampling) -> torch.Tensor:
        """[N, z_dim] → edit-space latents [N, num_layers, latent_dim]."""

    def latents_from_seeds(self, seeds: Sequence[int], sampling: Sampling = Sampling()) -> torch.Tensor:
        """Edit-space latents for seeds, on this module's device."""
        z = z_from_seeds(seeds, self.z_dim).to(self.device)
        with torch.no_grad():
            return self.latents(z, sampling)

    def set_input_transform(self, translate: Sequence[float], rotate: float) -> None:
        """Translate (image widths) and rotate (degrees) what the generator draws; StyleGAN3 only."""
        raise ValueError(f"{self.family} models have no input transform (only StyleGAN3 has one)")

    # ------------------------------------------------------------------ editing
    def select_layers(self, selection: IndexSelection, include_input: bool = False) -> tuple[int, ...]:
        """The slots a direction set factorizes and edits.

        `all` leaves the geometric slots out; naming one needs `include_input`,
        which adds them to any selection.
        """
        layers = set(selection.resolve(self.num_layers, "layer"))
        geometric = set(self.geometric_slots)
        if include_input and not geometric:
            raise ValueError(f"{self.family} models have no input transform slot to include (only StyleGAN3 has one)")
        if selection.spans is None:
            layers -= geometric
        elif layers & geometric and not include_input:
            raise ValueError(f"layer {min(layers & geometric)} drives the input's rotation and translation, not content; "
                             "ask for it with include_input: true (--include-input on the command line)")
        return tuple(sorted(layers | geometric if include_input else layers))

    def edit(
        self,
        latents: torch.Tensor,      # [N, num_layers, latent_dim]
        direction: torch.Tensor,    # [latent_dim], or [N, latent_dim]: one direction per latent
        alphas: torch.Tensor,       # [N]
        layers: Sequence[int],
    ) -> torch.Tensor:
        """latents with `alpha * direction` added to the selected slots only.

        Official SeFa adds the edit after truncation and only to the factorized
        layers (genforce/sefa `sefa.py`); so do we, which is why this works on
        the already-truncated latents.
        """
        edited = latents.clone()
        offset = alphas.to(latents)[:, None] * direction.to(latents)  # [N, latent_dim]
        edited[:, list(layers), :] += offset[:, None, :]
        return edited

    # ------------------------------------------------------------------ synthesis
    @abc.abstractmethod
    def synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        """Edit-space latents [N, num_layers, latent_dim] → images [N, C, H, W] in about [-1, 1]."""

    def check_latents(self, latents: torch.Tensor) -> None:
        """ValueError unless `latents` is [N, num_layers, latent_dim]."""
        expected = (self.num_layers, self.latent_dim)
        if latents.ndim != 3 or tuple(latents.shape[1:]) != expected:
            raise ValueError(f"latents have shape {tuple(latents.shape)}, expected [N, {expected[0]}, {expected[1]}]")

    def synthesize_moved(self, latents: torch.Tensor, moves: np.ndarray) -> torch.Tensor:
        """`synthesize`, each image moved by moves[i] = (translate x, translate y, rotate degrees); StyleGAN3 only."""
        raise ValueError(f"{self.family} models have no input transform to move (only StyleGAN3 has one)")

    # ------------------------------------------------------------------ SeFa
    @abc.abstractmethod
    def sefa_weight(self, layer: int) -> np.ndarray:
        """The affine map from slot `layer`'s latent into the network, [out_units, latent_dim].

        Each row is one output unit's weight vector over the latent. Scalar gains
        may be left out: SeFa normalises every row, which cancels them.
        """

    def sefa_matrices(self, layers: Sequence[int], weights: str = "default") -> list[np.ndarray]:
        """What SeFa stacks for `layers`. `weights` picks a family's variant: 'default' everywhere,
        'all' where a family has more weights reading the same latent (BigGAN)."""
        if weights != "default":
            raise ValueError(f"{self.family} models have no sefa_weights other than 'default'")
        return [self.sefa_weight(layer) for layer in layers]

    # ------------------------------------------------------------------ helpers
    @property
    def architecture(self) -> str:
        """The variant within the family (StyleGAN2: 'skip', 'resnet' or 'orig'); the family by default."""
        return self.family

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def batch_size(self) -> int:
        return self.batch_sizes.get(self.device.type, self.batch_sizes["cpu"])

    def describe(self) -> dict[str, Any]:
        """Plain data for the manifest and `sefa-render inspect`."""
        return {
            "family": self.family,
            "format": self.format,
            "architecture": self.architecture,
            "config": dataclasses.asdict(self.config),
            "z_dim": self.z_dim,
            "latent_dim": self.latent_dim,
            "num_layers": self.num_layers,
            "img_resolution": self.img_resolution,
            "img_channels": self.img_channels,
            "c_dim": self.c_dim,
            "conditional": self.c_dim > 0,
        }
