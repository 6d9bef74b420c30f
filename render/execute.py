"""Render one work unit: a plain function of (context, unit, generator).

The context is picklable data (the job, resolved models, direction vectors,
the output folder), so the same function runs in-process, in a worker
process, or later on a cluster. Every artifact is written atomically by the
sinks.

Throughput: latents for many (seed, α) pairs go through the generator in
batches of the model's `batch_size` for its device; resizing and uint8 conversion happen on the
generator's device; a writer thread encodes and writes batch k while the
generator works on batch k+1. Synthesis runs in the model's precision
(`torch.autocast` for bf16/fp16); mapping, truncation and edits stay fp32.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from render.directions import DirectionSet
from render.layout import GridLayout, default_cell_size, grid_shape, label_height, label_strip, to_pixels
from render.models.base import Generator, Sampling
from render.plan import DatasetShard, Unit, VideoUnit
from render.prepare import ResolvedModel
from render.sinks import dataset as dataset_sink
from render.sinks.background import BackgroundWriter
from render.sinks.video import VideoWriter
from render.spec import DatasetSpec, Job

__all__ = ["RenderContext", "execute_unit"]

Progress = Callable[[int], None]
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class RenderContext:
    job: Job
    output_dir: Path
    models: dict[str, ResolvedModel]
    direction_sets: dict[str, DirectionSet]

    def model_for(self, direction_set: str) -> ResolvedModel:
        return self.models[self.job.spec.directions[direction_set].model]


def execute_unit(context: RenderContext, unit: Unit, generator: Generator, progress: Progress = lambda n: None) -> dict[str, Any]:
    """Render `unit` with `generator` (already on its device).

    Returns plain data: `files`, every file written (relative to the job
    folder), and for videos `artifact`, the manifest entry.
    """
    with torch.no_grad():
        if isinstance(unit, VideoUnit):
            return _render_video(context, unit, generator, progress)
        return _render_dataset_shard(context, unit, generator, progress)


@contextlib.contextmanager
def _precision(generator: Generator, precision: str) -> Iterator[None]:
    if precision == "fp32":
        yield
    else:
        with torch.autocast(generator.device.type, dtype=_AUTOCAST_DTYPES[precision]):
            yield


def _pixels(generator: Generator, latents: torch.Tensor, size: int | None, precision: str) -> np.ndarray:
    """Latents [N, num_layers, latent_dim] → uint8 images [N, size, size, 3] in host memory.

    Synthesizes `generator.batch_size` latents at a time. From a GPU the
    pixels come back through pinned memory, which copies about twice as fast
    as pageable memory.
    """
    chunks = []
    for start in range(0, len(latents), generator.batch_size):
        with _precision(generator, precision):
            images = generator.synthesize(latents[start:start + generator.batch_size])
        chunks.append(to_pixels(images, size))
    pixels = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
    if pixels.device.type == "cpu":
        return pixels.numpy()
    host = torch.empty(pixels.shape, dtype=pixels.dtype, pin_memory=True)
    host.copy_(pixels, non_blocking=True)
    torch.cuda.current_stream(pixels.device).synchronize()
    return host.numpy()


def _latents(generator: Generator, seeds: tuple[int, ...], sampling: Sampling, classes: tuple[int, ...]) -> torch.Tensor:
    """Latents of the seeds in the model's class, or of every seed in each class (class-major)."""
    if not classes:
        return generator.latents_from_seeds(seeds, sampling)
    return torch.cat([generator.latents_from_seeds(seeds, dataclasses.replace(sampling, class_index=c)) for c in classes])


def _label_text(direction_set: DirectionSet, component: int, alpha: float) -> str:
    name = f"#{component} {direction_set.names[component]}" if component in direction_set.names else direction_set.name(component)
    eigenvalue = direction_set.eigenvalue(component)
    strength = f"   eigenvalue {eigenvalue:.1f}" if eigenvalue is not None else ""
    return f"{name}{strength}   alpha {alpha:+.2f}"


def _render_video(context: RenderContext, unit: VideoUnit, generator: Generator, progress: Progress) -> dict[str, Any]:
    video = dict(context.job.videos())[unit.output]
    direction_set = context.direction_sets[unit.direction_set]
    model = context.model_for(unit.direction_set)
    alphas = context.job.schedule(video.schedule).alphas()  # [frames]
    cell = video.cell_size or default_cell_size(generator.img_resolution)
    # Several classes: a row of seeds per class.
    columns, rows = video.grid or (grid_shape(len(unit.seeds)) if len(unit.classes) <= 1 else (len(unit.seeds), len(unit.classes)))
    if video.side_by_side:
        columns *= 2  # each seed takes two cells: original | edited
    layout = GridLayout(columns, rows, cell, cell, video.gutter, label_height(cell) if video.label else 0)

    latents = _latents(generator, unit.seeds, model.sampling, unit.classes)  # [S·classes, num_layers, latent_dim]
    count = len(latents)
    direction = torch.from_numpy(direction_set.directions[unit.component]).to(latents)
    originals = _pixels(generator, latents, cell, model.precision) if video.side_by_side else None
    frames_per_batch = max(1, generator.batch_size // count)

    def write(frames: np.ndarray) -> None:
        for frame in frames:
            writer.write(frame)

    with VideoWriter(context.output_dir / unit.path, layout.width, layout.height, video.fps, video.crf,
                     video.preset) as writer, BackgroundWriter() as background:
        for start in range(0, len(alphas), frames_per_batch):
            batch_alphas = alphas[start:start + frames_per_batch]
            codes = latents.repeat(len(batch_alphas), 1, 1)  # [b·S, num_layers, latent_dim], frame-major
            per_code = torch.from_numpy(batch_alphas).to(latents).repeat_interleave(count)
            edited = generator.edit(codes, direction, per_code, direction_set.layers)
            cells = _pixels(generator, edited, cell, model.precision).reshape(len(batch_alphas), count, cell, cell, 3)
            if originals is not None:
                pairs = np.broadcast_to(originals, cells.shape)
                cells = np.stack([pairs, cells], axis=2).reshape(len(batch_alphas), 2 * count, cell, cell, 3)
            labels = ([label_strip(_label_text(direction_set, unit.component, float(a)), layout.width, layout.label_height)
                       for a in batch_alphas] if video.label else None)
            background.submit(write, layout.compose(cells, labels))
            progress(len(batch_alphas))
    artifact = {"kind": "video", "path": unit.path, "frames": writer.frames, "fps": video.fps, "width": layout.width,
                "height": layout.height, "model": model.key, "direction_set": unit.direction_set,
                "component": unit.component, "direction_name": direction_set.names.get(unit.component),
                "eigenvalue": direction_set.eigenvalue(unit.component), "seeds": list(unit.seeds),
                "classes": list(unit.classes) or [model.sampling.class_index],
                "alpha_min": float(alphas.min()), "alpha_max": float(alphas.max())}
    return {"files": [unit.path], "artifact": artifact}


def _render_dataset_shard(context: RenderContext, unit: DatasetShard, generator: Generator,
                          progress: Progress) -> dict[str, Any]:
    dataset = dict(context.job.datasets())[unit.output]
    direction_set = context.direction_sets[unit.direction_set]
    model = context.model_for(unit.direction_set)
    split = f"datasets/{unit.output}/{unit.split}"
    extension = dataset.image_format

    # Every image of the shard: the originals, then per direction, per α, per (class,) seed the edits.
    # File names carry the class when the output lists classes.
    samples = [(c, seed) for c in unit.classes or (None,) for seed in unit.seeds]
    latents = _latents(generator, unit.seeds, model.sampling, unit.classes)  # [classes·S, num_layers, latent_dim]
    names = [dataset_sink.original_name(seed, extension, c) for c, seed in samples]
    codes, directions, alphas = [latents], [], []
    for component in direction_set.components:
        for alpha in dataset.alphas:
            codes.append(latents)
            directions.append(np.repeat(direction_set.directions[component][None], len(samples), axis=0))
            alphas += [alpha] * len(samples)
            names += [dataset_sink.edited_name(seed, component, alpha, extension, c) for c, seed in samples]
    edits = generator.edit(torch.cat(codes[1:]), torch.from_numpy(np.concatenate(directions)), torch.tensor(alphas),
                           direction_set.layers)
    all_codes = torch.cat([latents, edits])  # [samples·(1 + pairs per seed), num_layers, latent_dim]

    def write(pixels: np.ndarray, paths: list[str]) -> None:
        for image, path in zip(pixels, paths):
            dataset_sink.write_image(context.output_dir / split / path, image, extension, dataset.png_compression)

    batch = generator.batch_size
    with BackgroundWriter() as background:
        for start in range(0, len(all_codes), batch):
            pixels = _pixels(generator, all_codes[start:start + batch], dataset.image_size, model.precision)
            background.submit(write, pixels, names[start:start + batch])
            progress(len(pixels))

    rows = [_row(unit, model, direction_set, dataset, seed, class_index, component, alpha)
            for class_index, seed in samples for component in direction_set.components for alpha in dataset.alphas]
    dataset_sink.write_rows(context.output_dir / unit.rows_path, rows)  # last: the shard is complete once it exists
    return {"files": [*(f"{split}/{name}" for name in names), unit.rows_path], "rows": len(rows)}


def _row(unit: DatasetShard, model: ResolvedModel, direction_set: DirectionSet, dataset: DatasetSpec,
         seed: int, class_index: int | None, component: int, alpha: float) -> dict[str, Any]:
    """One metadata row; every row of every dataset has exactly these keys, in this order.

    `class_index`: the output's class for this row, None for the model's."""
    extension = dataset.image_format
    edited = dataset_sink.edited_name(seed, component, alpha, extension, class_index)
    return {
        "input_image_file_name": dataset_sink.original_name(seed, extension, class_index),
        "edited_image_file_name": edited,
        "edit_prompt": dataset.edit_prompt.format(direction=direction_set.name(component), index=component, alpha=alpha),
        "pair_id": Path(edited).stem,
        "seed": seed,
        "model": model.key,
        "checkpoint": model.checkpoint,
        "checkpoint_sha256": model.sha256,
        "method": direction_set.method,
        "layers": list(direction_set.layers),
        "direction_set": unit.direction_set,
        "direction_index": component,
        "direction_name": direction_set.names.get(component),
        "eigenvalue": direction_set.eigenvalue(component),
        "alpha": float(alpha),
        "truncation_psi": model.sampling.truncation_psi,
        "truncation_cutoff": model.sampling.truncation_cutoff,
        "class_index": model.sampling.class_index if class_index is None else class_index,
        "precision": model.precision,
    }
