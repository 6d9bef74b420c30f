"""Paired image datasets in the Hugging Face `imagefolder` layout.

    datasets/<name>/
      train/metadata.jsonl            one row per (original, edited) pair
      train/original/<seed>.png       one original per seed, shared by its pairs
      train/edited/<seed>_<direction>_<alpha>.png
      test/…                          when the job asks for a test split

`datasets.load_dataset("imagefolder", data_dir="datasets/<name>")` reads it
unchanged (datasets ≥ 3.4): the `*_file_name` keys become image columns
`input_image` and `edited_image`, which with `edit_prompt` are the column
names diffusers' InstructPix2Pix trainer expects. Every row has the same
keys, with explicit nulls, so all splits have the same features.

Ids are zero-padded and contain no dots (WebDataset and many tools cut a
key at its first dot). Each image is written atomically; a shard's rows are
written after its images, and the split's `metadata.jsonl` only once every
shard is done, so a dataset never looks finished before it is.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image

from render import safe_fs
from render.sinks.atomic import write_bytes, write_text

__all__ = ["alpha_tag", "original_name", "edited_name", "encode_image", "write_image", "write_rows", "merge_rows"]


def alpha_tag(alpha: float) -> str:
    """α for a file name, exact and without dots: 'm' for minus, 'p' for plus and for the decimal point.

    The digits are Python's shortest text that reads back as the same float,
    so distinct α get distinct names (the spec refuses duplicates, and -0.0
    equals 0.0); tiny values keep their exponent ('e', with 'm' for minus).

    >>> alpha_tag(-4.0), alpha_tag(1.5), alpha_tag(0.125), alpha_tag(0), alpha_tag(-0.0)
    ('m4', 'p1p5', 'p0p125', 'p0', 'p0')
    >>> alpha_tag(1.23456789), alpha_tag(1.23456788), alpha_tag(-2.5e-07)
    ('p1p23456789', 'p1p23456788', 'm2p5em07')
    """
    text = repr(abs(float(alpha))).removesuffix(".0")
    mantissa, _, exponent = text.partition("e")
    tag = ("m" if alpha < 0 else "p") + mantissa.replace(".", "p")
    return tag + ("e" + exponent.replace("-", "m").replace("+", "p") if exponent else "")


def _sample_stem(seed: int, class_index: int | None) -> str:
    return f"{seed:010d}" if class_index is None else f"{seed:010d}_class{class_index:04d}"


def original_name(seed: int, extension: str, class_index: int | None = None) -> str:
    """`class_index`: set when the output lists classes, so that each class has its own file."""
    return f"original/{_sample_stem(seed, class_index)}.{extension}"


def edited_name(seed: int, component: int, alpha: float, extension: str, class_index: int | None = None) -> str:
    return f"edited/{_sample_stem(seed, class_index)}_{component:03d}_{alpha_tag(alpha)}.{extension}"


def encode_image(pixels: np.ndarray, image_format: str, png_compression: int = 1, jpeg_quality: int = 95,
                 jpeg_subsampling: int = -1) -> bytes:
    """[H, W, 3] uint8 → PNG (lossless, zlib level `png_compression`) or JPEG bytes; deterministic.

    `jpeg_subsampling` is PIL's: -1 its default (4:2:0), 0 none (sharper text, larger files).
    """
    buffer = io.BytesIO()
    if image_format == "png":
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=png_compression)
    else:
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=jpeg_quality, subsampling=jpeg_subsampling)
    return buffer.getvalue()


def write_image(path: Path, pixels: np.ndarray, image_format: str, png_compression: int = 1) -> None:
    write_bytes(path, encode_image(pixels, image_format, png_compression))


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write JSON lines atomically; return how many."""
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def merge_rows(shard_files: Iterable[Path], destination: Path) -> int:
    """Concatenate shard row files, in the order given, into `destination` atomically; a linked shard file is refused."""
    text = "".join(safe_fs.read_text(Path(shard)) for shard in shard_files)
    write_text(destination, text)
    return text.count("\n")
