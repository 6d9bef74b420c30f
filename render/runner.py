"""Run a job end to end: validate, prepare (load + factorize once), plan, skip what is done,
render the rest on the worker pool, finalize datasets, write the manifest.

This is the coordinator's side of a run. It alone writes the journal, the
directions, the datasets' `metadata.jsonl` files (the shards' rows merged in
plan order once every shard is done) and `manifest.json`. A lock file keeps a
second run off the same job folder, and `.work/spec.json` a second spec file
with the same name (`render/ownership.py`). Every path in the folder is built
by `render/safe_fs.py`, which never follows a link.

Resume: a unit whose id is in the journal and whose files are intact (size
and sha256) is skipped; a changed spec changes the ids of exactly the
affected units; `force` renders everything again. Files the coordinator
cannot write (disk full) are failures like failed units: listed in the
summary, exit code 1, and the run goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterator

from tqdm import tqdm

from render import safe_fs
from render.devices import in_process_slot, plan_workers
from render.directions import save_direction_set
from render.errors import OutputError, WriteFailed
from render.execute import RenderContext
from render.forkserver import start_fork_server
from render.journal import Journal
from render.manifest import MANIFEST_NAME, write_manifest
from render.models import zoo
from render.ownership import claim_folder
from render.plan import WORK_DIR, DatasetShard, Unit, VideoUnit, plan
from render.sampled import SampledShard, manifest_entry
from render.pool import IN_PROCESS_CPU, Cluster, Failure, run_units
from render.prepare import Prepared, prepare
from render.prune import prune as prune_stale
from render.sinks.atomic import cannot_write, remove_partials
from render.sinks.dataset import merge_rows
from render.spec import Job, load_job

__all__ = ["RunSummary", "run_job", "DEFAULT_OUTPUT_ROOT", "DEFAULT_RETRIES", "prepare_output_dir", "locked_output_dir",
           "job_journal", "save_directions", "finish_outputs", "failure_entry"]

DEFAULT_OUTPUT_ROOT = Path("outputs")
DEFAULT_RETRIES = 2


@dataclass(frozen=True)
class RunSummary:
    job: str
    output_dir: Path
    manifest: Path | None          # None: it could not be written (the reason is among `failed`)
    rendered: int                  # units rendered in this run
    skipped: int                   # units already finished by an earlier run
    frames: int                    # video frames rendered in this run
    images: int                    # dataset images rendered in this run
    seconds: float
    failed: list[dict[str, Any]] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)  # files of units the job no longer names, removed (--prune)

    def describe(self) -> str:
        rate = (self.frames + self.images) / self.seconds if self.seconds else 0.0
        lines = [f"{self.job}: rendered {self.rendered} units ({self.frames} video frames, {self.images} dataset images) "
                 f"in {self.seconds:.1f} s ({rate:.1f} frames+images/s); skipped {self.skipped} finished; "
                 f"failed {len(self.failed)} → {self.manifest or 'no manifest'}"]
        for entry in self.failed:
            attempts = f" ({entry['attempts']} attempts)" if entry["attempts"] > 1 else ""
            lines.append(f"  failed {entry['what']}: {entry['error']}{attempts}")
        if self.pruned:
            lines.append(f"  pruned {len(self.pruned)} files of outputs the job no longer names")
        return "\n".join(lines)


def run_job(job_path: Path, output_root: Path = DEFAULT_OUTPUT_ROOT, *, device: str = "auto",
            workers: int | None = None, force: bool = False, retries: int = DEFAULT_RETRIES,
            progress: bool = True, prune: bool = False, cluster: Cluster | None = None) -> RunSummary:
    """Run the job at `job_path`; on local worker processes, or on a Ray `cluster`'s actors (`render/ray_backend.py`)."""
    started = time.perf_counter()
    job = load_job(job_path, known_zoo=zoo.ZOO)
    slots = plan_workers(device, workers) if cluster is None else []
    if slots:
        start_fork_server()  # workers' imports overlap with loading and factorizing here
    prepared, generators = prepare(job)  # every input error surfaces here, before anything is written
    if cluster is not None:
        slots = cluster.plan_workers(device, workers)  # starts or joins Ray: after every input error
    if slots:
        generators = {}  # workers load their own copies; do not hold one here for the whole run
    output_dir = prepare_output_dir(Path(output_root), job.name)
    with locked_output_dir(output_dir):
        claim_folder(output_dir, job, force)
        remove_partials(output_dir)  # left by a run that was killed
        failures: list[dict[str, Any]] = []  # failed units, and files of the coordinator's that could not be written
        directions = save_directions(prepared, output_dir, failures)
        units = plan(job, prepared.models, prepared.direction_sets)
        journal = job_journal(output_dir)
        journaled = journal.finished() if prune or not force else {}  # it hashes every output: not for nothing
        finished = {} if force else journaled
        pruned = prune_stale(output_dir, job, units, journaled) if prune else []
        todo = [unit for unit in units if unit.unit_id not in finished]
        context = RenderContext(job, output_dir, prepared.models, prepared.direction_sets)
        with _RunObserver(journal, output_dir, units, todo, progress) as observer:
            result = run_units(context, todo, slots, observer, retries=retries, preloaded=generators, cluster=cluster,
                               in_process=in_process_slot(device) if cluster is None else IN_PROCESS_CPU)
        finished.update(result.finished)
        failures += [_describe_failure(unit, result.failed[unit.unit_id]) for unit in todo if unit.unit_id in result.failed]
        failures += observer.unjournaled
        run = {"rendered_units": len(result.finished), "skipped_units": len(units) - len(todo),
               "failed_units": len(failures)}
        manifest = finish_outputs(prepared, units, output_dir, directions, finished, failures, run)
    rendered = [unit for unit in todo if unit.unit_id in result.finished]
    return RunSummary(job.name, output_dir, manifest, len(rendered), len(units) - len(todo),
                      frames=sum(u.work for u in rendered if isinstance(u, VideoUnit)),
                      images=sum(u.work for u in rendered if not isinstance(u, VideoUnit)),
                      seconds=time.perf_counter() - started, failed=failures, pruned=pruned)


class _RunObserver:
    """The pool's observer: one aggregated progress bar, the journal, and failure notes."""

    def __init__(self, journal: Journal, output_dir: Path, units: list[Unit], todo: list[Unit], progress: bool):
        self.journal, self.output_dir = journal, output_dir
        self.units_total, self.units_done = len(units), len(units) - len(todo)
        done_work = sum(unit.work for unit in units) - sum(unit.work for unit in todo)
        self.bar = tqdm(total=sum(unit.work for unit in units), initial=done_work, unit="img",
                        desc=output_dir.name, disable=not progress or sys.stderr is None)  # None: stderr closed
        self.steps: dict[str, int] = {}  # progress reported per unit, taken back if the unit fails
        self.unjournaled: list[dict[str, Any]] = []  # finished units the journal could not record (disk full)
        self._show_units()

    def __enter__(self) -> "_RunObserver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def progress(self, unit: Unit, steps: int) -> None:
        self.steps[unit.unit_id] = self.steps.get(unit.unit_id, 0) + steps
        self.bar.update(steps)

    def unit_finished(self, unit: Unit, result: dict[str, Any]) -> None:
        try:
            self.journal.append(unit.unit_id, result["files"], result)
        except OSError as error:  # the unit's files are complete, but only a journaled unit counts as finished
            self.unjournaled.append(_unwritten(unit.label, cannot_write(self.journal.path, error)))
            tqdm.write(f"{unit.label}: {self.unjournaled[-1]['error']}; it is rendered again next time",
                       file=sys.stderr)
        self.units_done += 1
        self._show_units()

    def unit_failed(self, unit: Unit, failure: Failure, will_retry: bool) -> None:
        self.bar.update(-self.steps.pop(unit.unit_id, 0))
        outcome = "retrying" if will_retry else f"giving up after {failure.attempts} attempts"
        tqdm.write(f"{unit.label}: {failure.error} ({outcome})", file=sys.stderr)

    def _show_units(self) -> None:
        self.bar.set_postfix_str(f"units {self.units_done}/{self.units_total}")


def failure_entry(unit_id: str | None, what: str, error: str, attempts: int = 1, traceback: str = "") -> dict[str, Any]:
    """One entry of the summary's and the manifest's `failed` list; `unit_id` None: a file of the coordinator's."""
    return {"unit_id": unit_id, "what": what, "error": error, "attempts": attempts, "traceback": traceback}


def _describe_failure(unit: Unit, failure: Failure) -> dict[str, Any]:
    return failure_entry(unit.unit_id, unit.label, failure.error, failure.attempts, failure.traceback)


def _unwritten(what: str, error: WriteFailed) -> dict[str, Any]:
    """A failure entry for a file the coordinator could not write (disk full, file size limit)."""
    return failure_entry(None, what, f"{type(error).__name__}: {error}")


def prepare_output_dir(output_root: Path, name: str) -> Path:
    """Create the job's output folder, or say clearly why it cannot be used (a file or a link in the way)."""
    output_dir = safe_fs.job_folder(output_root, name)
    safe_fs.job_path(output_dir, WORK_DIR, folder=True)
    return output_dir


def job_journal(output_dir: Path) -> Journal:
    return Journal(safe_fs.job_path(output_dir, f"{WORK_DIR}/journal.jsonl"), output_dir)


def finish_outputs(prepared: Prepared, units: list[Unit], output_dir: Path, directions: list[dict[str, Any]],
                   finished: dict[str, dict[str, Any]], failures: list[dict[str, Any]], run: dict[str, int]) -> Path | None:
    """After the last unit: merge complete datasets, remove partial files, write the manifest; return its path
    (None when it could not be written: then `failures` says so).

    `finished`: {unit_id: result} of every finished unit, earlier runs' included; `failures`: the failed units'
    entries (unit_id, what, error, attempts, traceback), appended to with files that cannot be written.
    """
    artifacts = directions + [finished[u.unit_id]["artifact"] for u in units
                              if isinstance(u, VideoUnit) and u.unit_id in finished]
    artifacts += finalize_datasets(prepared.job, units, output_dir, {failure["unit_id"] for failure in failures},
                                   failures)
    remove_partials(output_dir)
    artifacts = [a for a in artifacts if (output_dir / a["path"]).exists()]  # deleted during the run: not listed
    try:
        return write_manifest(output_dir, prepared, artifacts, failures, run)
    except WriteFailed as error:  # disk full: say so in the summary; an older manifest would describe other outputs
        (output_dir / MANIFEST_NAME).unlink(missing_ok=True)
        failures.append(_unwritten(MANIFEST_NAME, error))
        return None


@contextlib.contextmanager
def locked_output_dir(output_dir: Path, shared: bool = False) -> Iterator[None]:
    """Hold a lock on the job folder: exclusive for a whole `run`, shared among the queue's workers."""
    try:
        lock = open(safe_fs.job_path(output_dir, f"{WORK_DIR}/lock"), "a", opener=safe_fs.no_follow)  # never truncates
    except OSError as error:
        raise OutputError(f"{output_dir}: cannot write to the output folder ({error.strerror})") from None
    with lock:
        try:
            fcntl.flock(lock, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"{output_dir}: another sefa-render run is writing to this folder") from None
        yield


def save_directions(prepared: Prepared, output_dir: Path, failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write each direction set under directions/<key>/; return their manifest entries (failures: appended)."""
    artifacts = []
    for key, direction_set in prepared.direction_sets.items():
        folder = safe_fs.job_path(output_dir, f"directions/{key}", folder=True)
        try:
            files = save_direction_set(direction_set, folder)
        except OSError as error:
            failures.append(_unwritten(f"directions/{key}", cannot_write(folder, error)))
            continue
        artifacts.append({"kind": "directions", "path": f"directions/{key}", "files": files,
                          "model": prepared.job.spec.directions[key].model, **direction_set.describe()})
    return artifacts


def finalize_datasets(job: Job, units: list[Unit], output_dir: Path, failed: Collection[str],
                      failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge each complete dataset's shard rows into <split>/metadata.jsonl, in plan order.

    A dataset with a failed shard, or whose metadata cannot be written (appended
    to `failures`), gets no metadata.jsonl (an earlier one is removed), so it
    never looks finished.
    """
    artifacts = []
    for name, dataset in job.datasets():
        if dataset.samples is not None:
            files = [unit for unit in units if isinstance(unit, SampledShard) and unit.output == name]
            if not any(unit.unit_id in failed for unit in files):
                artifacts.append(manifest_entry(name, dataset, files))
            continue
        shards = [unit for unit in units if isinstance(unit, DatasetShard) and unit.output == name]
        splits = list(dict.fromkeys(shard.split for shard in shards))
        metadata = {split: safe_fs.job_path(output_dir, f"datasets/{name}/{split}/metadata.jsonl") for split in splits}
        if not any(shard.unit_id in failed for shard in shards):
            rows = {split: [safe_fs.job_path(output_dir, shard.rows_path) for shard in shards if shard.split == split]
                    for split in splits}
            try:
                rows_per_split = {split: merge_rows(files, metadata[split]) for split, files in rows.items()}
            except WriteFailed as error:
                failures.append(_unwritten(f"datasets/{name}", error))
            else:
                artifacts.append({"kind": "dataset", "path": f"datasets/{name}", "rows": sum(rows_per_split.values()),
                                  "splits": rows_per_split, "image_format": dataset.image_format,
                                  "direction_set": dataset.directions, "alphas": list(dataset.alphas)})
                continue
        for path in metadata.values():
            path.unlink(missing_ok=True)
    return artifacts
