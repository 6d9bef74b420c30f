"""The baseline users have today, written faithfully: one image per forward call.

- `reference_video`: what NVIDIA's `gen_video.py` does per frame: for every
  grid cell one `synthesis` call with batch 1, the 8-bit conversion
  `(x·127.5 + 128).clamp(0, 255)`, the cells laid out into a grid, and the
  frame appended to `imageio.get_writer(…, codec='libx264', bitrate='12M')`.
  For presentation sizes each cell is upscaled with PIL's bicubic resize,
  the cheapest thing a user would add.
- `reference_dataset`: what the official SeFa script and `gen_images.py` do
  per image: one forward call with batch 1, the same conversion, and
  `PIL.Image.save(….png)` with default settings, one file at a time; plus a
  metadata line per pair.

Both run fp32 in this process and use our generator classes only for the
forward pass, so the comparison measures the loop, not the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio
import numpy as np
import torch
from PIL import Image

from render.models.base import Generator


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def _cell(image: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or size == image.shape[0]:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def reference_video(generator: Generator, latents: torch.Tensor, direction: torch.Tensor, layers: list[int],
                    alphas: np.ndarray, grid: tuple[int, int], cell_size: int | None, path: Path) -> int:
    """Write one traversal video the gen_video.py way; return the number of frames."""
    columns, rows = grid
    writer = imageio.get_writer(str(path), mode="I", fps=30, codec="libx264", bitrate="12M")
    with torch.no_grad():
        for alpha in alphas:
            cells = []
            for latent in latents:
                edited = generator.edit(latent[None], direction, torch.tensor([float(alpha)]), layers)
                cells.append(_cell(_to_uint8(generator.synthesize(edited)), cell_size))
            height, width = cells[0].shape[:2]
            frame = np.stack(cells).reshape(rows, columns, height, width, 3).transpose(0, 2, 1, 3, 4)
            writer.append_data(frame.reshape(rows * height, columns * width, 3))
    writer.close()
    return len(alphas)


def reference_dataset(generator: Generator, latents: torch.Tensor, seeds: list[int], directions: np.ndarray,
                      layers: list[int], alphas: list[float], image_size: int | None, folder: Path) -> int:
    """Write (original, edited) pairs one image at a time; return the number of pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = 0
    with torch.no_grad(), open(folder / "metadata.jsonl", "w") as metadata:
        for seed, latent in zip(seeds, latents):
            original = f"{seed:06d}.png"
            Image.fromarray(_cell(_to_uint8(generator.synthesize(latent[None])), image_size)).save(folder / original)
            for index, direction in enumerate(directions):
                for alpha in alphas:
                    edited = generator.edit(latent[None], torch.from_numpy(direction), torch.tensor([alpha]), layers)
                    name = f"{seed:06d}_{index}_{alpha}.png"
                    Image.fromarray(_cell(_to_uint8(generator.synthesize(edited)), image_size)).save(folder / name)
                    metadata.write(json.dumps({"original": original, "edited": name, "seed": seed, "alpha": alpha}) + "\n")
                    pairs += 1
    return pairs
