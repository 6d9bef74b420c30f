"""What the job queue costs: per-unit bookkeeping, and a job of many small units through the queue vs `run`.

    .venv/bin/python bench/queue_bench.py [--units 20] [--workers 0] [--repeats 3]

1. Per-unit queue overhead: claim + heartbeat + complete of synthetic units
   in a fresh queue file (one process), in milliseconds per unit.
2. One job of many small units (dataset shards of the zoo DCGAN) rendered
   by `sefa-render run` and by `submit` + `worker --until-empty`, with the same
   worker count, alternately, `--repeats` times each, in fresh folders: the
   medians side by side. Both include loading and factorizing (cached).
   With `--workers 0` everything runs in this process, so its CPU time is
   measured too: unlike wall time, it hardly depends on what else the
   machine is doing.

Ratios come from numbers measured minutes apart on the same machine, never
across runs: these machines are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from render.plan import DATASET_SHARD_SEEDS  # noqa: E402
from render.queue.store import open_store  # noqa: E402
from render.queue.submit import submit_jobs  # noqa: E402
from render.queue.worker import run_worker  # noqa: E402
from render.runner import run_job  # noqa: E402


def bookkeeping_ms(units: int, scratch: Path) -> float:
    store = open_store(scratch / "overhead.db")
    [(job_id, _)] = store.submit([{"name": "b", "spec_sha256": "b", "spec_yaml": "", "source": "/b.yaml",
                                   "output_dir": "/b", "priority": 0}])
    store.next_task("bench", 60)
    store.add_units(job_id, "bench", [(f"u{i}", f"unit {i}", 1) for i in range(units)], {})
    started = time.perf_counter()
    while (claim := store.claim_unit(job_id, "bench", 60)) is not None:
        store.heartbeat("bench", 60)
        store.complete(claim, {"files": []})
    return (time.perf_counter() - started) / units * 1000


def many_units_job(folder: Path, units: int) -> Path:
    """A dataset job of `units` shards on the zoo DCGAN: small units, as many as asked."""
    spec = {"name": "many", "models": {"faces": {"checkpoint": "zoo:dcgan-digiface"}},
            "directions": {"sefa": {"model": "faces", "components": "0-1"}},
            "outputs": [{"dataset": {"name": "pairs", "directions": "sefa", "seeds": f"0-{units * DATASET_SHARD_SEEDS - 1}",
                                     "alphas": [-3, 3]}}]}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "many.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def through_run(job: Path, folder: Path, workers: int) -> None:
    run_job(job, folder, workers=workers, progress=False)


def through_queue(job: Path, folder: Path, workers: int) -> None:
    store = open_store(folder / "queue.db")
    submit_jobs(store, [job], folder)
    run_worker(store, device="cpu", workers=workers, until_empty=True, lease_s=60, poll_s=0.05)


def timed(function, *args) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=20, help="dataset shards in the job (default 20)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes for both (default 0: in this process)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternating (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sefa-render-queue-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        print(f"queue bookkeeping (claim + heartbeat + complete): {bookkeeping_ms(1000, scratch):.2f} ms per unit")
        job = many_units_job(scratch / "job", args.units)
        through_run(job, scratch / "warm-up", args.workers)  # fetch, factorize and cache once, outside the timings
        times: dict[str, list[tuple[float, float]]] = {"run": [], "queue": []}
        for repeat in range(args.repeats):
            times["run"].append(timed(through_run, job, scratch / f"run{repeat}", args.workers))
            times["queue"].append(timed(through_queue, job, scratch / f"queue{repeat}", args.workers))
        print(f"{args.units} units × {DATASET_SHARD_SEEDS * 5} images, {args.workers} workers, median of {args.repeats}:")
        for index, what in enumerate(["wall", "CPU"] if args.workers == 0 else ["wall"]):
            run, queued = (statistics.median(t[index] for t in times[name]) for name in ("run", "queue"))
            print(f"  {what:>4}: run {run:.2f} s, queue {queued:.2f} s ({queued / run - 1:+.1%}); all: "
                  f"{ {name: [round(t[index], 2) for t in values] for name, values in times.items()} }")


if __name__ == "__main__":
    main()
