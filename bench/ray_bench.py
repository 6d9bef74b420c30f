"""The Ray backend against the local pool: the same job on this machine, side by side.

    .venv/bin/python bench/ray_bench.py [--job jobs/demo.yaml] [--workers 2] [--repeats 3]

Starts one local Ray instance (`ray.init`, timed: the start-up a run without
`--address` pays) and renders the job alternately through local worker
processes and through as many Ray actors on that instance, `--repeats` times
each, in fresh folders. Both timings are whole runs after that start-up:
validating, loading and factorizing (cached after a warm-up run), starting
the workers or actors, rendering, the manifest. Actors start as fresh
processes that import torch, where local workers fork from a server that
imported it once: in each Ray run the time from its start until every actor
had answered is recorded too, and taken off that run for the comparison
"once started" (the local runs keep their workers' start). Medians side by
side; the ratios come from numbers measured minutes apart on one machine.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

import ray  # noqa: E402

from render import ray_backend  # noqa: E402
from render.ray_backend import LOCAL_OBJECT_STORE_BYTES, ray_cluster  # noqa: E402
from render.runner import run_job  # noqa: E402


def timed(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


class ActorStart:
    """Records, in each Ray run, the seconds from the driver's start until its last actor answered."""

    def __init__(self) -> None:
        self.runs: list[float] = []
        run, check = ray_backend._Driver.run, ray_backend._check_actor

        def timed_run(driver) -> None:
            self.started = time.perf_counter()
            self.runs.append(0.0)
            run(driver)

        def timed_check(slot, where) -> None:
            check(slot, where)
            self.runs[-1] = time.perf_counter() - self.started

        ray_backend._Driver.run, ray_backend._check_actor = timed_run, timed_check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", type=Path, default=REPO / "jobs" / "demo.yaml", help="job spec (default jobs/demo.yaml)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, and as many actors (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternating (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sefa-render-ray-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        start_up = timed(ray.init, address="local", num_cpus=args.workers, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                         include_dashboard=False, logging_level=logging.WARNING)  # as RayCluster.connect does
        try:
            run_job(args.job, scratch / "warm-up", device="cpu", workers=args.workers, progress=False)  # caches
            times: dict[str, list[float]] = {"local": [], "ray": []}
            actor_start = ActorStart()
            for repeat in range(args.repeats):
                times["local"].append(timed(run_job, args.job, scratch / f"local{repeat}", device="cpu",
                                            workers=args.workers, progress=False))
                with ray_cluster() as cluster:  # the instance started above
                    times["ray"].append(timed(run_job, args.job, scratch / f"ray{repeat}", device="cpu",
                                              workers=args.workers, progress=False, cluster=cluster))
        finally:
            ray.shutdown()
    started = [run - start for run, start in zip(times["ray"], actor_start.runs)]
    local, on_ray, actors, once_started = (statistics.median(values) for values in
                                           (times["local"], times["ray"], actor_start.runs, started))
    print(f"{args.job.name}, {args.workers} CPU workers / actors, median of {args.repeats}:")
    print(f"  local pool:  {local:.2f} s per run   all: {[round(t, 2) for t in times['local']]}")
    print(f"  Ray actors:  {on_ray:.2f} s per run   all: {[round(t, 2) for t in times['ray']]}   "
          f"({on_ray / local - 1:+.1%})")
    print(f"  start-up: ray.init of a local instance {start_up:.2f} s (once per run without --address); "
          f"actors ready {actors:.2f} s into each Ray run   all: {[round(t, 2) for t in actor_start.runs]}")
    print(f"  once started: Ray runs less their actors' start-up {once_started:.2f} s "
          f"({once_started / local - 1:+.1%} against the whole local runs)")


if __name__ == "__main__":
    main()
