"""Render one work unit: a plain function of (context, unit, generator).

The context is picklable data (the job, resolved models, direction vectors,
the output folder), so the same function runs in-process, in a worker
process, or later on a cluster. Generation is batched across seeds and α;
every artifact is written atomically by the sinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from render.directions import DirectionSet
from render.layout import GridLayout, default_cell_size, grid_shape, label_height, label_strip, prepare_cells
from render.models.base import Generator
from render.plan import DatasetShard, Unit, VideoUnit
from render.prepare import ResolvedModel
from render.sinks import dataset as dataset_sink
from render.sinks.video import VideoWriter
from render.spec import Job

__all__ = ["RenderContext", "execute_unit", "BATCH_IMAGES"]

BATCH_IMAGES = 64  # images per generator call; the DCGAN demo model peaks around here on CPU

Progress = Callable[[int], None]


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


def _synthesize_cells(generator: Generator, latents: torch.Tensor, size: int | None) -> np.ndarray:
    """Latents [N, num_layers, latent_dim] → uint8 cells [N, size, size, 3], in batches."""
    return np.concatenate([prepare_cells(generator.synthesize(latents[start:start + BATCH_IMAGES]), size)
                           for start in range(0, len(latents), BATCH_IMAGES)])


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
    columns, rows = video.grid or grid_shape(len(unit.seeds))
    if video.side_by_side:
        columns *= 2  # each seed takes two cells: original | edited
    layout = GridLayout(columns, rows, cell, cell, video.gutter, label_height(cell) if video.label else 0)

    latents = generator.latents_from_seeds(unit.seeds, model.sampling)  # [S, num_layers, latent_dim]
    direction = torch.from_numpy(direction_set.directions[unit.component]).to(latents)
    originals = _synthesize_cells(generator, latents, cell) if video.side_by_side else None
    frames_per_batch = max(1, BATCH_IMAGES // len(unit.seeds))
    count = len(unit.seeds)
    with VideoWriter(context.output_dir / unit.path, layout.width, layout.height, video.fps, video.crf) as writer:
        for start in range(0, len(alphas), frames_per_batch):
            batch_alphas = alphas[start:start + frames_per_batch]
            codes = latents.repeat(len(batch_alphas), 1, 1)  # [b·S, num_layers, latent_dim], frame-major
            per_code = torch.from_numpy(batch_alphas).to(latents).repeat_interleave(count)
            edited = generator.edit(codes, direction, per_code, direction_set.layers)
            cells = prepare_cells(generator.synthesize(edited), cell).reshape(len(batch_alphas), count, cell, cell, 3)
            if originals is not None:
                pairs = np.broadcast_to(originals, cells.shape)
                cells = np.stack([pairs, cells], axis=2).reshape(len(batch_alphas), 2 * count, cell, cell, 3)
            labels = ([label_strip(_label_text(direction_set, unit.component, float(a)), layout.width, layout.label_height)
                       for a in batch_alphas] if video.label else None)
            for frame in layout.compose(cells, labels):
                writer.write(frame)
            progress(len(batch_alphas))
    artifact = {"kind": "video", "path": unit.path, "frames": writer.frames, "fps": video.fps, "width": layout.width,
                "height": layout.height, "model": model.key, "direction_set": unit.direction_set,
                "component": unit.component, "direction_name": direction_set.names.get(unit.component),
                "eigenvalue": direction_set.eigenvalue(unit.component), "seeds": list(unit.seeds),
                "alpha_min": float(alphas.min()), "alpha_max": float(alphas.max())}
    return {"files": [unit.path], "artifact": artifact}


def _render_dataset_shard(context: RenderContext, unit: DatasetShard, generator: Generator,
                          progress: Progress) -> dict[str, Any]:
    dataset = dict(context.job.datasets())[unit.output]
    direction_set = context.direction_sets[unit.direction_set]
    model = context.model_for(unit.direction_set)
    split = f"datasets/{unit.output}/{unit.split}"
    extension = dataset.image_format
    written = []

    latents = generator.latents_from_seeds(unit.seeds, model.sampling)  # [S, num_layers, latent_dim]
    originals = _synthesize_cells(generator, latents, dataset.image_size)
    for seed, pixels in zip(unit.seeds, originals):
        written.append(f"{split}/{dataset_sink.original_name(seed, extension)}")
        dataset_sink.write_image(context.output_dir / written[-1], pixels, extension)
    progress(len(unit.seeds))

    alphas = torch.tensor(dataset.alphas, dtype=latents.dtype, device=latents.device)
    count = len(unit.seeds)
    for component in direction_set.components:
        direction = torch.from_numpy(direction_set.directions[component]).to(latents)
        codes = latents.repeat(len(alphas), 1, 1)  # [A·S, …], alpha-major
        edited = generator.edit(codes, direction, alphas.repeat_interleave(count), direction_set.layers)
        images = _synthesize_cells(generator, edited, dataset.image_size).reshape(len(alphas), count, *originals.shape[1:])
        for alpha_index, alpha in enumerate(dataset.alphas):
            for seed_index, seed in enumerate(unit.seeds):
                written.append(f"{split}/{dataset_sink.edited_name(seed, component, alpha, extension)}")
                dataset_sink.write_image(context.output_dir / written[-1], images[alpha_index, seed_index], extension)
        progress(len(alphas) * count)

    rows = [_row(context, unit, model, direction_set, dataset, seed, component, alpha)
            for seed in unit.seeds for component in direction_set.components for alpha in dataset.alphas]
    dataset_sink.write_rows(context.output_dir / unit.rows_path, rows)  # last: the shard is complete once it exists
    return {"files": [*written, unit.rows_path], "rows": len(rows)}


def _row(context: RenderContext, unit: DatasetShard, model: ResolvedModel, direction_set: DirectionSet,
         dataset: Any, seed: int, component: int, alpha: float) -> dict[str, Any]:
    """One metadata row; every row of every dataset has exactly these keys, in this order."""
    extension = dataset.image_format
    edited = dataset_sink.edited_name(seed, component, alpha, extension)
    return {
        "input_image_file_name": dataset_sink.original_name(seed, extension),
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
        "class_index": model.sampling.class_index,
    }
