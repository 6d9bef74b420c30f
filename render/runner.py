"""Run a job end to end: validate, prepare (load + factorize once), plan, render, finalize.

This is the coordinator. It renders units one after another in this process;
the directions and the manifest are written here, and so are the datasets'
`metadata.jsonl` files, which merge the shards' rows in plan order once all
shards are done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from render.directions import save_direction_set
from render.errors import OutputError
from render.execute import RenderContext, execute_unit
from render.manifest import write_manifest
from render.models import zoo
from render.plan import DatasetShard, Unit, VideoUnit, plan
from render.prepare import Prepared, prepare
from render.sinks.dataset import merge_rows
from render.spec import Job, load_job

__all__ = ["RunSummary", "run_job", "DEFAULT_OUTPUT_ROOT"]

DEFAULT_OUTPUT_ROOT = Path("outputs")


@dataclass(frozen=True)
class RunSummary:
    job: str
    output_dir: Path
    manifest: Path
    units: int
    frames: int
    images: int
    seconds: float

    def describe(self) -> str:
        return (f"{self.job}: {self.units} units, {self.frames} video frames and {self.images} dataset images "
                f"in {self.seconds:.1f} s → {self.manifest}")


def run_job(job_path: Path, output_root: Path = DEFAULT_OUTPUT_ROOT, progress: bool = True) -> RunSummary:
    started = time.perf_counter()
    job = load_job(job_path, known_zoo=zoo.ZOO)
    prepared = prepare(job)  # every input error surfaces here, before anything is written
    output_dir = prepare_output_dir(Path(output_root) / job.name)
    artifacts = save_directions(prepared, output_dir)
    units = plan(job, prepared.models, prepared.direction_sets)
    context = RenderContext(job, output_dir, prepared.models, prepared.direction_sets)
    with tqdm(total=sum(unit.work for unit in units), desc=job.name, unit="img", disable=not progress) as bar:
        for unit in units:
            generator = prepared.generators[job.spec.directions[unit.direction_set].model]
            result = execute_unit(context, unit, generator, bar.update)
            if isinstance(unit, VideoUnit):
                artifacts.append(result)
    artifacts += finalize_datasets(job, units, output_dir)
    manifest = write_manifest(output_dir, prepared, artifacts)
    return RunSummary(job.name, output_dir, manifest, len(units),
                      frames=sum(u.work for u in units if isinstance(u, VideoUnit)),
                      images=sum(u.work for u in units if isinstance(u, DatasetShard)),
                      seconds=time.perf_counter() - started)


def prepare_output_dir(output_dir: Path) -> Path:
    """Create the job's output folder, or say clearly why it cannot be used."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{output_dir}: exists and is not a directory") from None
    except OSError as error:
        raise OutputError(f"{output_dir}: cannot create the output folder ({error.strerror})") from None
    probe = output_dir / ".write-test"
    try:
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise OutputError(f"{output_dir}: cannot write to the output folder ({error.strerror})") from None
    return output_dir


def save_directions(prepared: Prepared, output_dir: Path) -> list[dict[str, Any]]:
    """Write each direction set under directions/<key>/; return their manifest entries."""
    artifacts = []
    for key, direction_set in prepared.direction_sets.items():
        folder = output_dir / "directions" / key
        files = save_direction_set(direction_set, folder)
        artifacts.append({"kind": "directions", "path": f"directions/{key}", "files": files,
                          "model": prepared.job.spec.directions[key].model, **direction_set.describe()})
    return artifacts


def finalize_datasets(job: Job, units: list[Unit], output_dir: Path) -> list[dict[str, Any]]:
    """Merge each dataset's shard rows into <split>/metadata.jsonl, in plan order."""
    artifacts = []
    for name, dataset in job.datasets():
        shards = [unit for unit in units if isinstance(unit, DatasetShard) and unit.output == name]
        rows_per_split = {}
        for split in dict.fromkeys(shard.split for shard in shards):
            files = [output_dir / shard.rows_path for shard in shards if shard.split == split]
            rows_per_split[split] = merge_rows(files, output_dir / "datasets" / name / split / "metadata.jsonl")
        artifacts.append({"kind": "dataset", "path": f"datasets/{name}", "rows": sum(rows_per_split.values()),
                          "splits": rows_per_split, "image_format": dataset.image_format,
                          "direction_set": dataset.directions, "alphas": list(dataset.alphas)})
    return artifacts
