"""A job as an ordered list of work units with stable ids. Pure: no I/O.

- A `VideoUnit` renders one MP4: one direction, a grid of seeds, every frame
  of the schedule.
- A `DatasetShard` renders the pairs of a few seeds of one dataset split and
  the metadata rows that describe them.

A unit's id hashes a canonical JSON of everything that defines its output
bytes: checkpoint sha256 and sampling, the direction vector itself, seeds,
α values, render settings and the renderer version. Equal ids mean equal
outputs, so a re-run can tell what is already done, and the order or number
of workers never changes an id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Union

from render import __version__
from render.directions import DirectionSet
from render import sampled
from render.models import imagenet
from render.prepare import ResolvedModel
from render.spec import Job

__all__ = ["VideoUnit", "DatasetShard", "Unit", "plan", "DATASET_SHARD_SEEDS", "WORK_DIR"]

DATASET_SHARD_SEEDS = 16  # seeds per dataset unit: small enough to spread over workers, big enough to batch
WORK_DIR = ".work"        # in the job folder: the run's own bookkeeping (journal, lock, dataset shard rows)


@dataclass(frozen=True)
class VideoUnit:
    unit_id: str
    output: str              # name of the video output
    direction_set: str
    component: int
    seeds: tuple[int, ...]
    frames: int
    path: str                # MP4 path relative to the job's output folder
    classes: tuple[int, ...] = ()  # the output's classes (a grid row each); () = the model's class_index

    @property
    def work(self) -> int:
        """Progress steps: frames."""
        return self.frames

    @property
    def label(self) -> str:
        """What the unit makes, for messages."""
        return self.path


@dataclass(frozen=True)
class DatasetShard:
    unit_id: str
    output: str              # name of the dataset output
    direction_set: str
    split: str               # 'train' or 'test'
    shard: int               # index within the split
    seeds: tuple[int, ...]
    pairs_per_seed: int      # rendered components × alphas
    classes: tuple[int, ...] = ()  # every seed in each of these classes; () = the model's class_index

    @property
    def work(self) -> int:
        """Progress steps: images (one original and its edits per seed and class)."""
        return len(self.seeds) * max(1, len(self.classes)) * (1 + self.pairs_per_seed)

    @property
    def rows_path(self) -> str:
        """This shard's metadata rows, relative to the job's output folder (merged at the end)."""
        return f"{WORK_DIR}/datasets/{self.output}/{self.split}-{self.shard:05d}.jsonl"

    @property
    def label(self) -> str:
        """What the unit makes, for messages."""
        return f"datasets/{self.output} ({self.split} shard {self.shard})"


Unit = Union[VideoUnit, DatasetShard, "sampled.SampledShard"]


def unit_id(definition: dict[str, Any]) -> str:
    canonical = json.dumps({"renderer": __version__, **definition}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _direction_fingerprint(direction_set: DirectionSet, component: int) -> dict[str, Any]:
    return {"vector_sha256": hashlib.sha256(direction_set.directions[component].tobytes()).hexdigest(),
            "layers": list(direction_set.layers), "name": direction_set.name(component),
            "eigenvalue": direction_set.eigenvalue(component)}


def _model_fingerprint(model: ResolvedModel) -> dict[str, Any]:
    transform = {} if model.input_transform is None else {"input_transform": model.input_transform}
    return {"key": model.key, "checkpoint": model.checkpoint, "sha256": model.sha256, "sampling": asdict(model.sampling),
            "precision": model.precision, **transform}


def video_file_name(set_name: str, direction_set: DirectionSet, component: int, class_index: int | None = None) -> str:
    named = f"_{direction_set.names[component]}" if component in direction_set.names else ""
    of_class = "" if class_index is None else f"_class{class_index:04d}"
    return f"{set_name}_{component:03d}{named}{of_class}.mp4"


def class_numbers(references: list[int | str] | None) -> tuple[int, ...]:
    """An output's classes as indices. Names are ImageNet's, the only ones a model accepts
    (`prepare` has checked them against the model).

    >>> class_numbers([3, "golden retriever"]), class_numbers(None)
    ((3, 207), ())
    """
    return tuple(ref if isinstance(ref, int) else imagenet.class_index(ref) for ref in references or ())


def split_seeds(seeds: tuple[int, ...], test_fraction: float) -> dict[str, tuple[int, ...]]:
    """The last `test_fraction` of the seeds (rounded) form the test split.

    >>> split_seeds((1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.2)
    {'train': (1, 2, 3, 4, 5, 6, 7, 8), 'test': (9, 10)}
    """
    test_count = round(len(seeds) * test_fraction)
    splits = {"train": seeds[:len(seeds) - test_count]}
    if test_count:
        splits["test"] = seeds[len(seeds) - test_count:]
    return splits


def plan(job: Job, models: dict[str, ResolvedModel], direction_sets: dict[str, DirectionSet]) -> list[Unit]:
    """Every unit of the job, videos first, each output's units in order."""
    units: list[Unit] = []
    for name, video in job.videos():
        direction_set = direction_sets[video.directions]
        model = models[job.spec.directions[video.directions].model]
        seeds = job.seeds(video.seeds)
        alphas = job.schedule(video.schedule).alphas()
        settings = video.model_dump(mode="json", exclude={"name", "directions", "seeds", "schedule", "classes",
                                                          "class_layout"} | (set() if video.camera else {"camera"}))
        classes = class_numbers(video.classes)
        # One video per class, or one for all classes (a grid row each), or the model's class: ().
        videos = [(c, (c,)) for c in classes] if classes and video.class_layout == "videos" else [(None, classes)]
        for component in direction_set.components:
            for class_index, video_classes in videos:
                path = f"videos/{name}/{video_file_name(video.directions, direction_set, component, class_index)}"
                definition = {"kind": "video", "path": path, "model": _model_fingerprint(model),
                              "direction": _direction_fingerprint(direction_set, component), "seeds": list(seeds),
                              "alphas": alphas.tolist(), "settings": settings}
                if video_classes:
                    definition["classes"] = list(video_classes)
                units.append(VideoUnit(unit_id(definition), name, video.directions, component, seeds, len(alphas), path,
                                       video_classes))
    for name, dataset in job.datasets():
        direction_set = direction_sets[dataset.directions]
        model = models[job.spec.directions[dataset.directions].model]
        if dataset.samples is not None:
            units += sampled.plan_shards(name, dataset, job.seeds(dataset.seeds), _model_fingerprint(model),
                                         direction_set, [_direction_fingerprint(direction_set, c)
                                                         for c in direction_set.components],
                                         class_numbers(dataset.classes), unit_id)
            continue
        settings = dataset.model_dump(mode="json", exclude={"name", "directions", "seeds", "test_fraction", "classes",
                                                            "layout", "samples", "shard_size"})
        classes = class_numbers(dataset.classes)
        directions = [_direction_fingerprint(direction_set, c) for c in direction_set.components]
        pairs_per_seed = len(direction_set.components) * len(dataset.alphas)
        for split, seeds in split_seeds(job.seeds(dataset.seeds), dataset.test_fraction).items():
            for shard, start in enumerate(range(0, len(seeds), DATASET_SHARD_SEEDS)):
                shard_seeds = seeds[start:start + DATASET_SHARD_SEEDS]
                definition = {"kind": "dataset", "output": name, "direction_set": dataset.directions, "split": split,
                              "shard": shard, "model": _model_fingerprint(model), "directions": directions,
                              "components": list(direction_set.components), "seeds": list(shard_seeds),
                              "settings": settings}
                if classes:
                    definition["classes"] = list(classes)
                units.append(DatasetShard(unit_id(definition), name, dataset.directions, split, shard, shard_seeds,
                                          pairs_per_seed, classes))
    return units
