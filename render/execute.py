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

from render import safe_fs, sampled
from render.directions import DirectionSet
from render.errors import NonFiniteOutputError
from render.layout import default_cell_size, label_strip, to_pixels, video_layout
from render.models.base import Generator, Sampling
from render.plan import DatasetShard, Unit, VideoUnit
from render.prepare import ResolvedModel
from render.sinks import dataset as dataset_sink
from render.sinks.background import BackgroundWriter
from render.sinks.video import VideoWriter
from render.spec import DatasetSpec, InputTransformSpec, Job

__all__ = ["RenderContext", "execute_unit", "render_pixels"]

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
        if isinstance(unit, sampled.SampledShard):
            return sampled.render_shard(context, unit, generator, progress, render_pixels)
        return _render_dataset_shard(context, unit, generator, progress)


@contextlib.contextmanager
def _precision(generator: Generator, precision: str) -> Iterator[None]:
    if precision == "fp32":
        yield
    else:
        with torch.autocast(generator.device.type, dtype=_AUTOCAST_DTYPES[precision]):
            yield


def render_pixels(generator: Generator, latents: torch.Tensor, size: int | None, precision: str,
            describe: Callable[[int], str], moves: np.ndarray | None = None) -> np.ndarray:
    """Latents [N, num_layers, latent_dim] → uint8 images [N, size, size, 3] in host memory.

    Synthesizes `generator.batch_size` latents at a time, each moved by its
    row of `moves` [N, 3] when given (a StyleGAN3 camera move). From a GPU the
    pixels come back through pinned memory, which copies about twice as fast
    as pageable memory. Non-finite output raises (naming latent i as
    `describe(i)`) instead of turning into black pixels.
    """
    chunks = []
    for start in range(0, len(latents), generator.batch_size):
        chunk = latents[start:start + generator.batch_size]
        with _precision(generator, precision):
            if moves is None:
                images = generator.synthesize(chunk)
            else:
                images = generator.synthesize_moved(chunk, moves[start:start + generator.batch_size])
        _require_finite(images, lambda index: describe(start + index))
        chunks.append(to_pixels(images, size, generator.pixels))
    pixels = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
    if pixels.device.type == "cpu":
        return pixels.numpy()
    host = torch.empty(pixels.shape, dtype=pixels.dtype, pin_memory=True)
    host.copy_(pixels, non_blocking=True)
    torch.cuda.current_stream(pixels.device).synchronize()
    return host.numpy()


def _require_finite(images: torch.Tensor, describe: Callable[[int], str]) -> None:
    finite = torch.isfinite(images).flatten(1).all(dim=1)  # [N]
    if not finite.all():
        first = int(torch.argmin(finite.int()))
        raise NonFiniteOutputError(f"the generator's output is NaN or infinite for {describe(first)} "
                                   f"(α too large for this direction, or a broken checkpoint)")


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
    layout = video_layout(video, len(unit.seeds), cell)

    latents = _latents(generator, unit.seeds, model.sampling, unit.classes)  # [S·classes, num_layers, latent_dim]
    count = len(latents)
    direction = torch.from_numpy(direction_set.directions[unit.component]).to(latents)
    direction_text = f"direction {unit.component}" + (f" ({direction_set.names[unit.component]})"
                                                      if unit.component in direction_set.names else "")
    moves = _camera_moves(video.camera, len(alphas))  # [frames, 3] or None
    originals = (render_pixels(generator, latents, cell, model.precision, lambda i: f"seed {unit.seeds[i]}, unedited")
                 if video.side_by_side and moves is None else None)
    frames_per_batch = max(1, generator.batch_size // count)

    def write(frames: np.ndarray) -> None:
        for frame in frames:
            writer.write(frame)

    with VideoWriter(safe_fs.job_path(context.output_dir, unit.path), layout.width, layout.height, video.fps,
                     video.crf, video.preset) as writer, BackgroundWriter() as background:
        for start in range(0, len(alphas), frames_per_batch):
            batch_alphas = alphas[start:start + frames_per_batch]
            codes = latents.repeat(len(batch_alphas), 1, 1)  # [b·S, num_layers, latent_dim], frame-major
            per_code = torch.from_numpy(batch_alphas).to(latents).repeat_interleave(count)
            edited = generator.edit(codes, direction, per_code, direction_set.layers)
            frame_moves = None if moves is None else np.repeat(moves[start:start + len(batch_alphas)], count, axis=0)
            cells = render_pixels(generator, edited, cell, model.precision,  # frame-major: latent i is frame i // count
                            lambda i: f"seed {unit.seeds[i % count]}, {direction_text}, α {batch_alphas[i // count]:+g}",
                            frame_moves)
            cells = cells.reshape(len(batch_alphas), count, cell, cell, 3)
            if video.side_by_side:
                # The originals move with the camera too.
                pairs = (np.broadcast_to(originals, cells.shape) if originals is not None else
                         render_pixels(generator, codes, cell, model.precision,
                                 lambda i: f"seed {unit.seeds[i % count]}, unedited", frame_moves).reshape(cells.shape))
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


def _camera_moves(camera: InputTransformSpec | None, frames: int) -> np.ndarray | None:
    """(translate x, translate y, rotate) per frame: sin(2π·f/frames) times the camera's, a seamless loop."""
    if camera is None:
        return None
    amplitude = np.array([camera.translate[0], camera.translate[1], camera.rotate])
    return np.sin(2 * np.pi * np.arange(frames) / frames)[:, None] * amplitude


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
            final = safe_fs.job_path(context.output_dir, f"{split}/{path}")
            dataset_sink.write_image(final, image, extension, dataset.png_compression)

    batch = generator.batch_size
    with BackgroundWriter() as background:
        for start in range(0, len(all_codes), batch):
            pixels = render_pixels(generator, all_codes[start:start + batch], dataset.image_size, model.precision,
                             lambda i: f"{split}/{names[start + i]}")
            background.submit(write, pixels, names[start:start + batch])
            progress(len(pixels))

    rows = [_row(unit, model, direction_set, dataset, seed, class_index, component, alpha)
            for class_index, seed in samples for component in direction_set.components for alpha in dataset.alphas]
    rows_file = safe_fs.job_path(context.output_dir, unit.rows_path)
    dataset_sink.write_rows(rows_file, rows)  # last: the shard is complete once it exists
    return {"files": [*(f"{split}/{name}" for name in names), unit.rows_path], "rows": len(rows)}


def _row(unit: DatasetShard, model: ResolvedModel, direction_set: DirectionSet, dataset: DatasetSpec,
         seed: int, class_index: int | None, component: int, alpha: float) -> dict[str, Any]:
    """One metadata row; every row of every dataset has exactly these keys, in this order.

    `class_index`: the output's class for this row (in the file names), None for the model's."""
    row_class = model.sampling.class_index if class_index is None else class_index
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
        # Integers in every row whatever the model, so the columns keep one type: no cutoff truncates every
        # slot (as NVIDIA's None does), and -1 is "no class" (unconditional models).
        "truncation_cutoff": (model.description["num_layers"] if model.sampling.truncation_cutoff is None
                              else model.sampling.truncation_cutoff),
        "class_index": -1 if row_class is None else row_class,
        "precision": model.precision,
    }
