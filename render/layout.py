"""Turning generator output into frames: resize, 8-bit conversion, seed grids, label strips.

`to_pixels` runs on the generator's device (resize and uint8 conversion
there, so only 8-bit pixels cross to the CPU); `GridLayout.compose` places
cells on a canvas with numpy. Frame sizes are always even, because H.264 in
yuv420p needs them so.

Resizing is bicubic (`align_corners=False`, antialiased when shrinking), the
same maths as `F.interpolate`, done as two matrix products with
interpolation matrices computed once per size: separable resampling is
linear, so `out = R_h · image · R_wᵀ`. On the CPU that is about 3× faster
than `F.interpolate`, which recomputes its weights for every pixel.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from render.spec import VideoSpec

__all__ = ["default_cell_size", "grid_shape", "resize", "to_pixels", "GridLayout", "video_layout", "label_height",
           "label_strip"]

PRESENTATION_SIZE = 256  # default: upscale small models to at least this many pixels a cell


def default_cell_size(resolution: int, at_least: int = PRESENTATION_SIZE) -> int:
    """The smallest multiple of `resolution` that is at least `at_least` px (an integer upscale).

    >>> default_cell_size(64), default_cell_size(100), default_cell_size(1024), default_cell_size(100, 128)
    (256, 300, 1024, 200)
    """
    return resolution * math.ceil(at_least / resolution)


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) as square as `count` cells allow.

    >>> grid_shape(9), grid_shape(5), grid_shape(1)
    ((3, 3), (3, 2), (1, 1))
    """
    columns = math.ceil(math.sqrt(count))
    return columns, math.ceil(count / columns)


@functools.lru_cache(maxsize=16)
def _resize_matrix(size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
    """[size_out, size_in]: row i holds the bicubic weights of output pixel i.

    Obtained by resizing one-hot rows with F.interpolate itself, so the
    weights (and border handling) are exactly PyTorch's.
    """
    one_hot = torch.eye(size_in, dtype=torch.float64)[:, None, None, :].expand(size_in, 1, 1, size_in)
    rows = F.interpolate(one_hot.contiguous(), size=(1, size_out), mode="bicubic", align_corners=False,
                         antialias=size_out < size_in)[:, 0, 0, :]  # [size_in, size_out]
    return rows.T.to(device=device, dtype=torch.float32).contiguous()


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """[N, C, H, W] float → [N, C, size, size] float, bicubic."""
    rows = _resize_matrix(images.shape[-2], size, images.device)
    columns = _resize_matrix(images.shape[-1], size, images.device)
    return rows @ images.float() @ columns.T


def to_pixels(images: torch.Tensor, size: int | None, convention: str = "nvidia") -> torch.Tensor:
    """[N, C, H, W] float images in [-1, 1] → contiguous [N, size, size, 3] uint8, on the images' device.

    round((x + 1)·127.5) with clamping, written as NVIDIA's scripts write it
    (`x·127.5 + 128`, clamped, truncated), so an unedited image is
    byte-identical to what `gen_images.py` saves. The arithmetic runs in place
    on the (fresh) synthesized or resized images, and one copy converts to
    uint8 and reorders to NHWC at once. Grayscale models are repeated to RGB.
    `convention="genforce"` computes genforce's `postprocess` instead,
    `(x + 1)·255/2 + 0.5`, clamped and truncated: the same pixels but for
    float rounding at the half-way points.
    """
    if size is not None and size != images.shape[-1]:
        images = resize(images, size)
    else:
        images = images.float().clone()  # the generator's output may be a view of something it keeps
    if convention == "genforce":
        images.add_(1).mul_(255).div_(2).add_(0.5).clamp_(0, 255)
    else:
        images.mul_(127.5).add_(128).clamp_(0, 255)
    batch, channels, height, width = images.shape
    pixels = torch.empty((batch, height, width, 3), dtype=torch.uint8, device=images.device)
    pixels.copy_(images.permute(0, 2, 3, 1).expand(batch, height, width, 3))  # float → uint8 truncates, as .to() does
    return pixels


@dataclass(frozen=True)
class GridLayout:
    """Cells in row-major order with gutters between them, and an optional label strip below."""

    columns: int
    rows: int
    cell_width: int
    cell_height: int
    gutter: int = 0
    label_height: int = 0

    @property
    def width(self) -> int:
        return _even(self.columns * self.cell_width + (self.columns - 1) * self.gutter)

    @property
    def height(self) -> int:
        return _even(self.rows * self.cell_height + (self.rows - 1) * self.gutter + self.label_height)

    def compose(self, cells: np.ndarray, labels: list[np.ndarray] | None = None) -> np.ndarray:
        """[B, cells, h, w, 3] uint8 (any strides) → [B, height, width, 3] frames; missing cells stay black."""
        batch, count = cells.shape[:2]
        assert count <= self.columns * self.rows and cells.shape[2:] == (self.cell_height, self.cell_width, 3)
        frames = np.zeros((batch, self.height, self.width, 3), dtype=np.uint8)
        for index in range(count):
            row, column = divmod(index, self.columns)
            top, left = row * (self.cell_height + self.gutter), column * (self.cell_width + self.gutter)
            frames[:, top:top + self.cell_height, left:left + self.cell_width] = cells[:, index]
        if labels is not None:
            assert len(labels) == batch
            for frame, strip in zip(frames, labels):
                frame[self.height - self.label_height:] = strip
        return frames


def video_layout(video: VideoSpec, seeds: int, cell: int) -> GridLayout:
    """The frame layout of a video output with `seeds` seeds in cells of `cell` pixels (a row of seeds per
    class when one video shows several classes)."""
    class_rows = video.class_rows
    columns, rows = video.grid or (grid_shape(seeds) if class_rows == 1 else (seeds, class_rows))
    if video.side_by_side:
        columns *= 2  # each seed takes two cells: original | edited
    return GridLayout(columns, rows, cell, cell, video.gutter, label_height(cell) if video.label else 0)


def label_height(cell_height: int) -> int:
    """Strip height that keeps text legible next to cells of this size (even)."""
    return _even(max(24, cell_height // 8))


def label_strip(text: str, width: int, height: int) -> np.ndarray:
    """White text on black, [height, width, 3] uint8; the font shrinks until the text fits the width."""
    image = Image.new("RGB", (width, height))
    margin = height // 3
    size = max(8, int(height * 0.55))
    font = _font(size)
    if font.getlength(text) > width - 2 * margin:
        font = _font(max(8, int(size * (width - 2 * margin) / font.getlength(text))))
    ImageDraw.Draw(image).text((margin, height // 2), text, font=font, fill=(255, 255, 255), anchor="lm")
    return np.asarray(image)


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _even(value: int) -> int:
    return value + value % 2
