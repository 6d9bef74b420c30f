"""Sampled-edit datasets (WebDataset shards) at scale: throughput against the limit, memory flat in size.

    .venv/bin/python bench/augment_bench.py [--small 10000] [--large 100000] [--plan 1000000]

On the demo's 64 px DCGAN (zoo:dcgan-digiface), k = 2 directions per pair, in one run:

1. the bare generator: pairs/s (an input and an edited image each) at the model's batch size,
   with the torch threads of one CPU worker (1), as the `render run`s below use;
2. the bare writer: pairs/s of PNG encoding (zlib level 1) and tar writing of real images;
3. the limit: one thread generates and writes in turn, so a job cannot beat the sum of
   the bare times per pair. Both are measured before and after the runs, in wall and
   in CPU seconds: other work on a shared machine moves the wall-clock rates most;
4. `render run` of the augmentation job (jobs/augment.yaml) at `--small` and at
   `--large` pairs, in-process (--workers 0: one worker's thread): wall time (start-up
   included), pairs/s, CPU seconds, and the peak RSS of each run, measured by the
   kernel for that child process alone;
5. validation and planning alone (load_job, prepare, plan) of `--small` and `--plan`
   samples, each in a fresh child: units planned and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from render.devices import CPU_THREADS_PER_WORKER  # noqa: E402
from render.models import zoo  # noqa: E402
from render.models.base import Sampling  # noqa: E402
from render.models.registry import load_generator  # noqa: E402
from render.pool import keep_freed_memory  # noqa: E402
from render.layout import to_pixels  # noqa: E402
from render.sinks.dataset import encode_image  # noqa: E402
from render.sinks.webdataset import ShardWriter  # noqa: E402

PER_SEED = 10
BARE_PAIRS = 2000


class Clock:
    """Wall and CPU seconds since creation; CPU time is what other work on a shared machine moves least."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, pairs: int) -> tuple[float, float]:
        """(pairs per second, pairs per CPU second) since creation."""
        return pairs / (time.perf_counter() - self.wall), pairs / (time.process_time() - self.cpu)


def limit(*rates: float) -> float:
    """The rate of steps done one after the other at `rates` each."""
    return 1 / sum(1 / rate for rate in rates)


def bare_generator(pairs: int) -> tuple[tuple[float, float], list]:
    generator = load_generator(zoo.fetch("dcgan-digiface"))
    direction = torch.randn(generator.latent_dim)
    with torch.no_grad():
        generator.synthesize(generator.latents_from_seeds(tuple(range(generator.batch_size)), Sampling()))  # warm-up
    images, clock = [], Clock()
    with torch.no_grad():
        for first in range(0, pairs, generator.batch_size // 2):
            seeds = tuple(range(first, min(first + generator.batch_size // 2, pairs)))
            latents = generator.latents_from_seeds(seeds, Sampling())
            edited = generator.edit(latents, direction, torch.ones(len(seeds)), [0])
            images.append(to_pixels(generator.synthesize(torch.cat([latents, edited])), None, generator.pixels).numpy())
    return clock.rates(pairs), images


def bare_writer(batches: list, folder: Path) -> tuple[float, float]:
    pairs, clock = 0, Clock()
    with tarfile.open(folder / "bare.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        writer = ShardWriter(tar)
        for batch in batches:
            half = len(batch) // 2
            for row in range(half):
                writer.add(f"{pairs:010d}", "png", encode_image(batch[row], "png"), encode_image(batch[half + row], "png"), {})
                pairs += 1
    return clock.rates(pairs)


def augment_job(pairs: int, folder: Path) -> Path:
    """jobs/augment.yaml resized to `pairs` pairs (PER_SEED per seed)."""
    job = yaml.safe_load((REPO / "jobs" / "augment.yaml").read_text())
    job["seeds"]["train"] = f"0-{pairs // PER_SEED - 1}"
    job["outputs"][0]["dataset"]["samples"]["per_seed"] = PER_SEED
    spec = folder / f"augment-{pairs}.yaml"
    spec.write_text(yaml.safe_dump(job))
    return spec


def child(arguments: list[str], what: str) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (bytes) of a Python child process."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *arguments], env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"{what} failed (status {status})")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def pipeline(pairs: int, folder: Path) -> tuple[float, float, int]:
    """`render run` rendering `pairs` pairs; checks that the manifest counts them all."""
    output_root = folder / str(pairs)
    measured = child(["-m", "render", "run", str(augment_job(pairs, folder)), "--output-root", str(output_root),
                      "--workers", "0", "--no-progress"], f"render run of {pairs} pairs")
    manifest = json.loads((output_root / "augment" / "manifest.json").read_text())
    assert [a["samples"] for a in manifest["artifacts"] if a["kind"] == "dataset"] == [pairs]
    shutil.rmtree(output_root)
    return measured


PLAN = """
import sys
from render.models import zoo
from render.plan import plan
from render.prepare import prepare
from render.spec import load_job
job = load_job(sys.argv[1], known_zoo=zoo.ZOO)
prepared, _ = prepare(job)
print(len(plan(job, prepared.models, prepared.direction_sets)))
"""


def planning(samples: int, folder: Path) -> int:
    """Peak RSS (bytes) of validating and planning a `samples`-sample job, without rendering it."""
    return child(["-c", PLAN, str(augment_job(samples, folder))], f"planning {samples} samples")[2]


def bare_limit(folder: Path) -> tuple[float, float]:
    """(pairs/s, pairs per CPU s) of the limit, measured now; prints the bare rates."""
    generated, images = bare_generator(BARE_PAIRS)
    written = bare_writer(images, folder)
    limits = limit(generated[0], written[0]), limit(generated[1], written[1])
    for what, (wall, cpu) in (("bare generator", generated), ("bare writer", written), ("limit", limits)):
        print(f"{what:<18} {wall:6.0f} pairs/s {cpu:6.0f} pairs/CPU s", flush=True)
    print(f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    return limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--plan", type=int, default=1_000_000, help="samples of the planning-only measurement")
    args = parser.parse_args()
    torch.set_num_threads(CPU_THREADS_PER_WORKER)  # as `render run --workers 0` renders on the CPU,
    keep_freed_memory()                            # with glibc's freed blocks kept alike (45 % faster here)
    with tempfile.TemporaryDirectory(prefix="augment-bench-") as scratch:
        folder = Path(scratch)
        first = bare_limit(folder)
        runs = {}
        for pairs in (args.small, args.large):
            runs[pairs] = seconds, cpu, rss = pipeline(pairs, folder)
            print(f"render run {pairs:>7,} pairs: {seconds:6.1f} s {pairs / seconds:6.0f} pairs/s ({pairs / seconds / first[0]:4.0%})"
                  f"  {cpu:6.1f} CPU s {pairs / cpu:6.0f} pairs/CPU s ({pairs / cpu / first[1]:4.0%} of the limit)"
                  f"  peak RSS {rss / 2**20:4.0f} MiB  (load average {os.getloadavg()[0]:.1f})", flush=True)
        last = bare_limit(folder)
        plans = {samples: planning(samples, folder) for samples in (args.small, args.plan)}
    (_, _, small_rss), (_, _, large_rss) = runs[args.small], runs[args.large]
    print(f"limit before / after the runs: {first[0]:.0f} / {last[0]:.0f} pairs/s, "
          f"{first[1]:.0f} / {last[1]:.0f} pairs/CPU s")
    print(f"peak RSS of render run, {args.large:,} / {args.small:,} pairs: {large_rss / small_rss:.2f}×")
    print(f"peak RSS of validating and planning, {args.small:,} / {args.plan:,} samples: "
          f"{plans[args.small] / 2**20:.0f} / {plans[args.plan] / 2**20:.0f} MiB "
          f"({plans[args.plan] / plans[args.small]:.2f}×)")


if __name__ == "__main__":
    main()
