"""Sampled edit datasets: per seed `per_seed` edits, each Σ αᵢ·nᵢ over k directions drawn from the set.

Sample i (global, in plan order) edits seed `seeds[i // per_seed]`. Its draws
(directions, α values, class) come from a Philox generator keyed by
(dataset seed, i) alone, so a shard's samples never depend on the other
shards, on the worker count or on the order shards run in. Shards of
`shard_size` samples are the units: one file each (a WebDataset tar or a
parquet file), written atomically, so a resumed run renders exactly the
shards whose file is missing. Memory is flat in the dataset's size: the plan
holds one small unit per shard and a unit holds one batch of images at a time
(plus the file it streams to disk; a parquet row group at most).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from render import safe_fs
from render.directions import DirectionSet
from render.sinks.dataset import encode_image
from render.sinks.parquet import open_parquet_shard
from render.sinks.webdataset import open_shard, shard_name, shard_pattern
from render.spec import AlphaDistribution, DatasetSpec, SampledEdits

__all__ = ["SampledShard", "Draw", "draw", "plan_shards", "render_shard", "manifest_entry"]

# layout → (file extension of its shards, context manager that writes one shard atomically)
SHARD_FILES = {"webdataset": ("tar", open_shard), "parquet": ("parquet", open_parquet_shard)}


@dataclass(frozen=True)
class SampledShard:
    unit_id: str
    output: str
    direction_set: str
    layout: str              # a key of SHARD_FILES
    shard: int
    start: int               # first sample index
    count: int               # samples in this shard
    seeds: tuple[int, ...]   # the seeds this shard edits, from the dataset's seed number `first_seed` on
    first_seed: int
    classes: tuple[int, ...] = ()

    @property
    def work(self) -> int:
        """Progress steps: images (an input and an edited one per sample)."""
        return 2 * self.count

    @property
    def path(self) -> str:
        return f"datasets/{self.output}/{shard_name('train', self.shard, SHARD_FILES[self.layout][0])}"

    @property
    def label(self) -> str:
        return self.path


@dataclass(frozen=True)
class Draw:
    components: tuple[int, ...]  # indices into the set's components
    alphas: tuple[float, ...]
    class_index: int | None


def _alpha(rng: np.random.Generator, distribution: AlphaDistribution) -> float:
    if distribution.uniform is not None:
        return float(rng.uniform(*distribution.uniform))
    if distribution.normal is not None:
        return float(rng.normal(0.0, distribution.normal))
    choices = distribution.choices or []
    weights = None if distribution.weights is None else np.asarray(distribution.weights) / sum(distribution.weights)
    return float(choices[int(rng.choice(len(choices), p=weights))])


def draw(samples: SampledEdits, components: int, classes: tuple[int, ...], index: int) -> Draw:
    """The draws of sample `index`: a pure function of the spec and the index.

    >>> from render.spec import SampledEdits
    >>> spec = SampledEdits(k=2, alpha={"choices": [1, -1]}, seed=7)
    >>> draw(spec, 5, (), 3) == draw(spec, 5, (), 3), len(set(draw(spec, 5, (), 3).components))
    (True, 2)
    """
    rng = np.random.Generator(np.random.Philox(np.random.SeedSequence([samples.seed, index])))
    picked = tuple(int(c) for c in rng.choice(components, size=samples.k, replace=False))
    alphas = tuple(_alpha(rng, samples.alpha) for _ in picked)
    class_index = None
    if classes:
        class_index = {"fixed": classes[0], "list": classes[(index // samples.per_seed) % len(classes)],
                       "cycle": classes[index % len(classes)],
                       "uniform": classes[int(rng.integers(len(classes)))]}[samples.classes]
    return Draw(picked, alphas, class_index)


def _class_column(drawn: int | None, model_class: int | None) -> int:
    """The sample's class, else the model's; -1 for an unconditional model (one type for the column)."""
    chosen = model_class if drawn is None else drawn
    return -1 if chosen is None else chosen


def plan_shards(name: str, dataset: DatasetSpec, seeds: tuple[int, ...], model: dict[str, Any],
                direction_set: DirectionSet, directions: list[dict[str, Any]], classes: tuple[int, ...],
                unit_id: Callable[[dict[str, Any]], str]) -> list[SampledShard]:
    samples = dataset.samples
    assert samples is not None and samples.k <= len(direction_set.components)  # checked by prepare()
    total = len(seeds) * samples.per_seed
    settings = dataset.model_dump(mode="json", exclude={"name", "directions", "seeds", "classes", "alphas",
                                                        "test_fraction"})
    units = []
    for shard, start in enumerate(range(0, total, dataset.shard_size)):
        count = min(dataset.shard_size, total - start)
        first, last = start // samples.per_seed, (start + count - 1) // samples.per_seed
        definition = {"kind": "sampled", "output": name, "shard": shard, "start": start, "count": count,
                      "model": model, "directions": directions, "components": list(direction_set.components),
                      "seeds": list(seeds[first:last + 1]), "classes": list(classes), "settings": settings}
        units.append(SampledShard(unit_id(definition), name, dataset.directions, dataset.layout, shard, start,
                                  count, seeds[first:last + 1], first, classes))
    return units


def render_shard(context: Any, unit: SampledShard, generator: Any, progress: Callable[[int], None],
                 pixels_of: Callable[..., np.ndarray]) -> dict[str, Any]:
    """Render `unit`'s samples in batches and stream them into its shard file."""
    dataset = dict(context.job.datasets())[unit.output]
    samples = dataset.samples
    direction_set = context.direction_sets[unit.direction_set]
    model = context.model_for(unit.direction_set)
    components = direction_set.components
    vectors = torch.from_numpy(np.stack([direction_set.directions[c] for c in components]))  # [C, latent_dim]
    batch = max(1, generator.batch_size // 2)
    with SHARD_FILES[unit.layout][1](safe_fs.job_path(context.output_dir, unit.path)) as writer:
        for start in range(unit.start, unit.start + unit.count, batch):
            indices = range(start, min(start + batch, unit.start + unit.count))
            draws = [draw(samples, len(components), unit.classes, i) for i in indices]
            seeds = [unit.seeds[i // samples.per_seed - unit.first_seed] for i in indices]
            latents = torch.cat([generator.latents_from_seeds(
                (seed,), dataclasses.replace(model.sampling, class_index=d.class_index)
                if d.class_index is not None else model.sampling) for seed, d in zip(seeds, draws)])
            moves = torch.stack([(torch.tensor(d.alphas, dtype=vectors.dtype)[:, None]
                                  * vectors[list(d.components)]).sum(0) for d in draws]).to(latents)
            edited = generator.edit(latents, moves, torch.ones(len(draws)).to(latents), direction_set.layers)
            images = pixels_of(generator, torch.cat([latents, edited]), dataset.image_size, model.precision,
                               lambda i: f"{unit.path}: sample {indices[i % len(draws)]}")
            for row, (index, seed, sample) in enumerate(zip(indices, seeds, draws)):
                metadata = {
                    "sample": index, "seed": seed, "model": model.key, "checkpoint_sha256": model.sha256,
                    "direction_set": unit.direction_set, "layers": list(direction_set.layers),
                    "directions": [components[c] for c in sample.components],
                    "direction_names": [direction_set.name(components[c]) for c in sample.components],
                    "alphas": list(sample.alphas),
                    "class_index": _class_column(sample.class_index, model.sampling.class_index),
                    "truncation_psi": model.sampling.truncation_psi, "precision": model.precision}
                writer.add(f"{index:010d}", dataset.image_format,
                           encode_image(images[row], dataset.image_format, dataset.png_compression),
                           encode_image(images[len(draws) + row], dataset.image_format, dataset.png_compression),
                           metadata)
            progress(2 * len(draws))
    return {"files": [unit.path], "samples": unit.count}


def manifest_entry(name: str, dataset: DatasetSpec, shards: list[SampledShard]) -> dict[str, Any]:
    """The manifest's entry for a finished dataset: its shards as one pattern, never one entry per shard."""
    pattern = shard_pattern("train", len(shards), SHARD_FILES[dataset.layout][0])
    return {"kind": "dataset", "path": f"datasets/{name}", "layout": dataset.layout, "direction_set": dataset.directions,
            "samples": sum(shard.count for shard in shards), "shards": len(shards), "files": f"datasets/{name}/{pattern}"}
