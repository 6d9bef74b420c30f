"""Direction sets: the vectors a job edits along, from SeFa or from a user's `.npy` file.

A `DirectionSet` holds every direction the method produced (SeFa: all of
them, sorted by eigenvalue) plus which of them the job renders and their
human names. Direction `k` always means row `k` of `directions.npy`.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from render import cache, directions_cache
from render.errors import RenderWarning
from render.factorize import sefa
from render.models import zoo
from render.models.base import Generator
from render.ranges import IndexSelection, format_indices
from render.sinks.atomic import atomic_path

__all__ = ["DirectionSet", "factorize_generator", "cached_factorization", "sefa_directions", "read_direction_file", "resolve_components",
           "save_direction_set"]

DEFAULT_SEFA_COMPONENTS = 5  # render the top five SeFa directions unless told otherwise
SEFA_CACHE_VERSION = 3       # bump when what `sefa` returns (normalisation, order, sign rule) or an entry holds changes


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
    and the layers; an entry is verified before use (`directions_cache`). A
    bad entry is computed again and replaced, with a one-line warning; an
    entry that cannot be written (disk full) is only a warning too.
    """
    variant = "" if weights == "default" else f"-{weights}"
    path = cache_root / "directions" / f"{checkpoint_sha256}-sefa{SEFA_CACHE_VERSION}-layers{format_indices(layers)}{variant}.npz"
    record = {"checkpoint_sha256": checkpoint_sha256, "method": "sefa", "layers": list(layers), "weights": weights,
              "version": SEFA_CACHE_VERSION}
    if path.is_file():
        try:
            return *directions_cache.load(path, record, generator.latent_dim), "cache"
        except directions_cache.BadEntry as bad:
            warnings.warn(f"{path}: cached directions are {bad}; computing them again", RenderWarning, stacklevel=2)
    directions, eigenvalues = factorize_generator(generator, layers, weights)
    try:
        directions_cache.store(path, record, directions, eigenvalues)
    except OSError as error:
        warnings.warn(f"{path}: cannot cache the directions ({error.strerror or error})", RenderWarning, stacklevel=2)
    return directions, eigenvalues, "computed"


def sefa_directions(generator: Generator, checkpoint_sha256: str, layers: tuple[int, ...],
                    weights: str = "default") -> tuple[np.ndarray, np.ndarray, str]:
    """SeFa of `generator`'s layers through the user's directions cache, or computed where the cache cannot be used:
    (directions, eigenvalues, source). Raises `NothingToFactorize` and, for a variant the family lacks, ValueError."""
    cache_root = cache.usable(zoo.cache_dir())
    if cache_root is None:
        return *factorize_generator(generator, layers, weights), "computed"
    return cached_factorization(generator, checkpoint_sha256, layers, cache_root, weights)


_NPY_MAGIC = b"\x93NUMPY"


def read_direction_file(path: Path, latent_dim: int) -> np.ndarray:
    """A user's directions as unit rows, [k, latent_dim] float64; ValueError says what is wrong with the file.

    Accepts [latent_dim] (one direction, e.g. an InterFaceGAN boundary after
    squeezing) and [k, latent_dim]. Rows are normalised to unit length, as
    SeFa's are: α is a distance along a unit vector, whatever the file's
    scale (a row of length 10 would otherwise edit ten times as far). Rows
    that already have unit length (`sefa-render factorize` output) are kept
    bit for bit. A zero row has no direction and is an error.
    """
    try:
        with open(path, "rb") as file:
            array = _load_npy(file)
    except OSError as error:  # opening, or reading the magic; `_load_npy` words the errors of what follows
        raise ValueError(f"cannot read the file ({error.strerror})") from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != latent_dim or array.shape[0] == 0 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"expected a numeric array of shape [{latent_dim}] or [k, {latent_dim}], "
                         f"got {array.dtype} {list(array.shape)}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"contains NaN or infinite values (row {int(np.argwhere(~np.isfinite(array))[0, 0])})")
    largest = np.abs(array).max(axis=1, keepdims=True)  # [k, 1]; dividing by it first keeps norms of 1e308s finite
    if (largest == 0).any():
        raise ValueError(f"contains an all-zero direction (row {int(np.argmax(largest[:, 0] == 0))})")
    unit = array / largest
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    already_unit = (np.abs(unit - array) <= 1e-12).all(axis=1, keepdims=True)
    return np.where(already_unit, array, unit)


def _load_npy(file: BinaryIO) -> np.ndarray:
    """The one array of an open .npy file; ValueError says what else the file holds or what is wrong with it."""
    magic = file.read(len(_NPY_MAGIC))
    if magic != _NPY_MAGIC:  # np.load would call anything else "pickled data"
        kind = ("a .npz archive" if magic.startswith(b"PK\x03\x04") else "pickled data" if magic.startswith(b"\x80")
                else "text" if magic and all(32 <= byte < 127 or byte in b"\t\r\n" for byte in magic) else "another format")
        raise ValueError(f"not a .npy file (it holds {kind}; write one array with numpy.save)")
    try:
        file.seek(0)
        _check_declared_size(file)
        file.seek(0)
        return np.load(file, allow_pickle=False)  # never unpickle: a .npy can carry objects
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"not a readable .npy array ({error})") from None


_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _check_declared_size(file: BinaryIO) -> None:
    """Raise ValueError unless the .npy header's shape fits in the bytes after it (`file` is read from its start).

    np.load allocates what the header declares before reading: a 100-byte file
    declaring shape (10⁵, 10⁵) asks for 75 GiB.
    """
    version = np.lib.format.read_magic(file)
    if version not in _NPY_HEADER_READERS:  # 3.0 exists only for structured dtypes with non-latin-1 names
        raise ValueError(f".npy format version {version} is not supported")
    shape, _, dtype = _NPY_HEADER_READERS[version](file)
    stored = os.fstat(file.fileno()).st_size - file.tell()
    declared = math.prod(shape) * dtype.itemsize
    if declared > stored:
        raise ValueError(f"its header declares shape {shape} ({declared:,} bytes) but only {stored:,} bytes follow")


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

