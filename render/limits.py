"""How much a job may ask for, and what one work unit costs in memory.

`validate` refuses what cannot run, before anything is loaded; each limit
comes from what one item costs or from a format's own ceiling:

- Seeds per list: validation holds a list and a set of it, about 100 bytes
  a seed, so a million seeds cost about 100 MB; at 500 pairs/s a million
  seeds is already half an hour per α and direction.
- Frames per schedule: the α of every frame is kept (float64) and hashed
  into the unit's id as JSON (about 25 bytes a frame): a million frames,
  9 hours at 30 fps, cost about 35 MB.
- Video frames: H.264 level 6.2, the highest, allows 139,264 macroblocks a
  frame (35.6 million pixels, e.g. 8192×4352) and a side of at most
  √(8·139,264) = 1,055 macroblocks (16,880 px); players refuse larger
  streams.
- Dataset images: PIL, and so Hugging Face `datasets`, treats an image over
  89,478,485 pixels as a decompression bomb; `image_size` is at most the
  side of that square (9,459 px).
- Images per dataset split: every edited image of a split is one file in one
  folder; ext4 without `large_dir` holds about 10 million names a folder.
- Shard files (tar, parquet) per dataset: the plan holds one unit per shard (about 400
  bytes with its id, which takes about 0.1 ms to hash), so 100,000 shards
  cost 40 MB and 10 s to plan; a larger set takes a larger `shard_size`.
- α: directions have unit length and a latent about √dim (10–23 for our
  families); at |α| = 1,000 less than 3 % of the original code is left.
- Names: a video's file name holds two names (`<set>_<k>_<name>.mp4`) plus
  the temporary name's prefix and suffix, and a file name has at most 255
  bytes.

Once the models are loaded (`check_units_fit`, called by `prepare`), the
memory of the largest unit of each output is estimated and compared with the
memory available.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from render.errors import SpecError
from render.layout import default_cell_size, video_layout
from render.ranges import MAX_SEEDS

if TYPE_CHECKING:
    from render.directions import DirectionSet
    from render.layout import GridLayout
    from render.models.base import Generator
    from render.spec import Job

__all__ = ["MAX_SEEDS", "MAX_FRAMES", "MAX_FRAME_PIXELS", "MAX_FRAME_SIDE", "MAX_IMAGE_SIDE", "MAX_SPLIT_IMAGES",
           "MAX_ABS_ALPHA", "MAX_NAME_LENGTH", "MAX_YAML_NODES", "MAX_YAML_DEPTH", "frame_problem", "split_problem",
           "video_unit_bytes", "dataset_unit_bytes", "available_memory", "format_bytes", "check_units_fit"]

MAX_FRAMES = 1_000_000
H264_MAX_FRAME_MACROBLOCKS = 139_264                                    # level 6.2 MaxFS
MAX_FRAME_PIXELS = H264_MAX_FRAME_MACROBLOCKS * 16 * 16                 # 35,651,584
MAX_FRAME_SIDE = 16 * math.isqrt(8 * H264_MAX_FRAME_MACROBLOCKS)       # 16,880
MAX_IMAGE_SIDE = math.isqrt(89_478_485)                                 # PIL's Image.MAX_IMAGE_PIXELS: 9,459
MAX_SPLIT_IMAGES = 10_000_000
MAX_ABS_ALPHA = 1000.0
MAX_SAMPLES_PER_SEED = 10_000    # sampled edits of one seed
MAX_COMBINED_DIRECTIONS = 64    # directions summed in one sampled edit
MAX_SHARD_SAMPLES = 100_000     # samples in one shard file (a unit renders one shard)
MAX_SHARDS = 100_000            # shard files of one dataset (one unit each in the plan)
MAX_NAME_LENGTH = 100
MAX_YAML_NODES = MAX_SEEDS  # the longest seed list we accept, written out as a YAML list
MAX_YAML_DEPTH = 50         # a job nests 7 levels (outputs[i].video.schedule.keys[j].alpha); Python's stack ends near 300

WRITER_QUEUE = 2 + 1  # batches waiting for the writer thread (BackgroundWriter's max_pending) and the one it writes


def frame_problem(layout: GridLayout) -> str | None:
    """Why H.264 frames of this layout cannot be encoded and played, or None."""
    width, height = layout.width, layout.height
    if max(width, height) > MAX_FRAME_SIDE:
        problem = f"frames of {width}×{height} px exceed H.264's largest side ({MAX_FRAME_SIDE:,} px)"
    elif width * height > MAX_FRAME_PIXELS:
        problem = f"frames of {width}×{height} px exceed H.264's largest frame ({MAX_FRAME_PIXELS:,} px)"
    else:
        return None
    return f"{layout.columns}×{layout.rows} cells of {layout.cell_width} px: {problem}"


def split_problem(seeds: int, alphas: int, directions: int | None = None) -> str | None:
    """Why a dataset split is more images than one folder should hold, or None.

    `directions` None: the count with one direction, before the direction set's size is known.
    """
    images = seeds * (1 + (directions or 1) * alphas)
    if images <= MAX_SPLIT_IMAGES:
        return None
    edits = f"{alphas} α" if directions is None else f"{directions} directions × {alphas} α"
    return (f"{seeds:,} seeds × (1 + {edits}) are {images:,} images, more than one folder should hold "
            f"({MAX_SPLIT_IMAGES:,})")


def video_unit_bytes(batch_size: int, frames: int, images: int, cells: int, cell: int, resolution: int, width: int,
                     height: int) -> int:
    """Host memory of one video unit: a batch of frames in flight, each of `images` generated images.

    Per batch, `max(1, batch_size // images)` of the `frames`: their synthesized images
    (float32), the cells resized (float32, with the intermediate product) and
    converted (uint8), and the composed frames, of which the writer's queue
    holds up to WRITER_QUEUE batches.
    """
    frames = min(frames, max(1, batch_size // images))
    synthesized = frames * images * 3 * resolution ** 2 * 4
    resized = frames * cells * 3 * cell * (cell + resolution) * 4 + frames * cells * cell ** 2 * 3
    composed = frames * width * height * 3 * (1 + WRITER_QUEUE)
    return synthesized + resized + composed


def dataset_unit_bytes(batch_size: int, images: int, latent_bytes: int, resolution: int, size: int) -> int:
    """Host memory of one dataset shard: every latent of the shard, and a batch of images in flight."""
    codes = 2 * images * latent_bytes  # the edits and their concatenation with the originals
    batch = min(batch_size, images)
    pixels = batch * 3 * (resolution ** 2 * 4 + size * (size + resolution) * 4) + batch * size ** 2 * 3 * (1 + WRITER_QUEUE)
    return codes + pixels


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux `MemAvailable`), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(count: float) -> str:
    """Bytes in binary units, for messages.

    >>> format_bytes(3 * 2**30), format_bytes(1.5 * 2**50)
    ('3.0 GiB', '1.5 PiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024:
            break
        count /= 1024
    return f"{count:.1f} {unit}"


def check_units_fit(job: Job, generators: dict[str, Generator], direction_sets: dict[str, DirectionSet]) -> None:
    """Raise `SpecError` for an output whose units cannot run, now that each model's sizes are known.

    Checks the video frame at the real cell size, the images of a dataset
    split with the real number of directions, and the memory of one unit
    against what is available (each worker renders one unit at a time).
    """
    from render.plan import DATASET_SHARD_SEEDS  # plan depends on spec, which depends on this module

    available = available_memory()
    for index, output in enumerate(job.spec.outputs):
        entry = output.video or output.dataset
        assert entry is not None
        field = f"{job.path}: outputs[{index}].{'video' if output.video else 'dataset'}"
        generator = generators[job.spec.directions[entry.directions].model]
        batch = max(generator.batch_sizes.values())  # the largest, a GPU's: the worker's device is not known yet
        resolution, seeds = generator.img_resolution, len(job.seeds(entry.seeds))
        latent_bytes = generator.num_layers * generator.latent_dim * 4
        if output.video is not None:
            cell = entry.cell_size or default_cell_size(resolution)
            layout = video_layout(entry, seeds, cell)
            problem = frame_problem(layout)
            if problem:
                raise SpecError(f"{field}: {problem}")
            images = seeds * entry.class_rows  # a frame holds every seed once per class row
            cells = images * (2 if entry.side_by_side else 1)
            frames = job.schedule(entry.schedule).frames
            need = video_unit_bytes(batch, frames, images, cells, cell, resolution, layout.width, layout.height)
            rows = f" × {entry.class_rows} class rows" if entry.class_rows > 1 else ""
            what = f"{seeds} seeds{rows} in {cell} px cells, frames of {layout.width}×{layout.height} px"
        elif entry.samples is not None:  # sampled edits: a unit holds one batch of latents and images at a time
            need = dataset_unit_bytes(batch, batch, latent_bytes, resolution, entry.image_size or resolution)
            what = f"batches of {batch} sampled pairs"
        else:
            directions = len(direction_sets[entry.directions].components)
            problem = split_problem(seeds, len(entry.alphas), directions)
            if problem:
                raise SpecError(f"{field}.seeds: {problem}")
            per_seed = 1 + directions * len(entry.alphas)
            images = min(seeds, DATASET_SHARD_SEEDS) * per_seed
            need = dataset_unit_bytes(batch, images, latent_bytes, resolution, entry.image_size or resolution)
            what = f"{images:,} images a shard of {DATASET_SHARD_SEEDS} seeds"
        if available is not None and need > available:
            raise SpecError(f"{field}: one unit needs about {format_bytes(need)} of memory ({what}), more than the "
                            f"{format_bytes(available)} available")
