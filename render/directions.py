"""Direction sets: the vectors a job edits along, from SeFa or from a user's `.npy` file.

A `DirectionSet` holds every direction the method produced (SeFa: all of
them, sorted by eigenvalue) plus which of them the job renders and their
human names. Direction `k` always means row `k` of `directions.npy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from render.factorize import sefa
from render.models.base import Generator
from render.ranges import IndexSelection, format_indices
from render.sinks.atomic import atomic_path

__all__ = ["DirectionSet", "factorize_generator", "cached_factorization", "read_direction_file", "resolve_components",
           "save_direction_set"]

DEFAULT_SEFA_COMPONENTS = 5  # render the top five SeFa directions unless told otherwise
SEFA_CACHE_VERSION = 1       # bump when what `sefa` returns changes (normalisation, order, sign rule)


@dataclass(frozen=True)
class DirectionSet:
    method: str                       # 'sefa' or 'file'
    layers: tuple[int, ...]           # latent slots the directions were computed from and are applied to
    directions: np.ndarray            # [k, latent_dim] float64
    eigenvalues: np.ndarray | None    # [k] descending (SeFa), None for user files
    components: tuple[int, ...] = ()  # the rows this job renders
    names: dict[int, str] = field(default_factory=dict)
    source: str = "computed"          # 'computed' this run, taken from the 'cache', or read from a 'file'

    def name(self, component: int) -> str:
        """The human name of a direction, or 'direction k' (for labels and prompts)."""
        return self.names.get(component, f"direction {component}")

    def eigenvalue(self, component: int) -> float | None:
        return None if self.eigenvalues is None else float(self.eigenvalues[component])

    def describe(self) -> dict[str, object]:
        return {"method": self.method, "source": self.source, "layers": list(self.layers), "count": len(self.directions),
                "components": list(self.components), "names": {str(k): v for k, v in self.names.items()}}


def factorize_generator(generator: Generator, layers: tuple[int, ...], weights: str = "default") -> tuple[np.ndarray, np.ndarray]:
    """SeFa on the affine weights that read the given latent slots: (directions, eigenvalues).

    `weights`: the family's variant of what to stack (`Generator.sefa_matrices`).
    """
    result = sefa(generator.sefa_matrices(layers, weights))
    return result.directions, result.eigenvalues


def cached_factorization(generator: Generator, checkpoint_sha256: str, layers: tuple[int, ...],
                         cache_root: Path, weights: str = "default") -> tuple[np.ndarray, np.ndarray, str]:
    """SeFa of `generator`'s layers, from the on-disk cache when it holds them: (directions, eigenvalues, source).

    The cache key is the checkpoint's content hash, the method and version,
    and the layers; the file is written atomically, so a reader never sees
    half of it. A corrupt entry is computed again.
    """
    variant = "" if weights == "default" else f"-{weights}"
    path = cache_root / "directions" / f"{checkpoint_sha256}-sefa{SEFA_CACHE_VERSION}-layers{format_indices(layers)}{variant}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as cached:
                return cached["directions"], cached["eigenvalues"], "cache"
        except (ValueError, OSError, KeyError):
            pass
    directions, eigenvalues = factorize_generator(generator, layers, weights)
    with atomic_path(path) as temporary, open(temporary, "wb") as out:
        np.savez(out, directions=directions, eigenvalues=eigenvalues)
    return directions, eigenvalues, "computed"


def read_direction_file(path: Path, latent_dim: int) -> np.ndarray:
    """A user's directions, [k, latent_dim] float64; ValueError says what is wrong with the file.

    Accepts [latent_dim] (one direction, e.g. an InterFaceGAN boundary after
    squeezing) and [k, latent_dim]. Vectors are used as given, not normalised:
    their length is part of what α means for them.
    """
    try:
        array = np.load(path, allow_pickle=False)  # never unpickle: a .npy can carry objects
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"not a readable .npy array ({error})") from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != latent_dim or array.shape[0] == 0 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"expected a numeric array of shape [{latent_dim}] or [k, {latent_dim}], "
                         f"got {array.dtype} {list(array.shape)}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError("contains NaN or infinite values")
    if (np.linalg.norm(array, axis=1) == 0).any():
        raise ValueError("contains an all-zero direction")
    return array


def resolve_components(selection: IndexSelection | None, method: str, count: int) -> tuple[int, ...]:
    """The rows to render: as selected, else the top five (SeFa) or all (file)."""
    if selection is None:
        return tuple(range(min(count, DEFAULT_SEFA_COMPONENTS) if method == "sefa" else count))
    return selection.resolve(count, "direction", "the direction set")


def save_direction_set(direction_set: DirectionSet, folder: Path) -> list[str]:
    """Write `directions.npy` (and `eigenvalues.npy` for SeFa) atomically; return the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"directions.npy": direction_set.directions}
    if direction_set.eigenvalues is not None:
        arrays["eigenvalues.npy"] = direction_set.eigenvalues
    for file_name, array in arrays.items():
        with atomic_path(folder / file_name) as temporary, open(temporary, "wb") as out:
            np.save(out, array)
    return list(arrays)

