"""Sampled-edit datasets (WebDataset shards) at scale: throughput against the limit, memory flat in size.

    .venv/bin/python bench/augment_bench.py [--small 10000] [--large 100000]

On the demo's 64 px DCGAN (zoo:dcgan-digiface), k = 2 directions per pair, in one run:

1. the bare generator: pairs/s (an input and an edited image each) at the model's batch size;
2. the bare writer: pairs/s of PNG encoding (zlib level 1) and tar writing of real images;
3. the limit: generation and writing share the same cores, so a job cannot beat the
   sum of the bare times per pair;
4. `render run` of the augmentation job (jobs/augment.yaml) at `--small` and at
   `--large` pairs, in-process (--workers 0): wall time, pairs/s, and the peak RSS of
   each run, measured by the kernel for that child process alone.
"""

from __future__ import annotations

import argparse
import os
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

from render.devices import available_cores  # noqa: E402
from render.models import zoo  # noqa: E402
from render.models.base import Sampling  # noqa: E402
from render.models.registry import load_generator  # noqa: E402
from render.layout import to_pixels  # noqa: E402
from render.sinks.dataset import encode_image  # noqa: E402
from render.sinks.webdataset import ShardWriter  # noqa: E402

PER_SEED = 10
BARE_PAIRS = 2000


def bare_generator(pairs: int) -> tuple[float, list]:
    generator = load_generator(zoo.fetch("dcgan-digiface"))
    direction = torch.randn(generator.latent_dim)
    with torch.no_grad():
        generator.synthesize(generator.latents_from_seeds(tuple(range(generator.batch_size)), Sampling()))  # warm-up
    images, start = [], time.perf_counter()
    with torch.no_grad():
        for first in range(0, pairs, generator.batch_size // 2):
            seeds = tuple(range(first, min(first + generator.batch_size // 2, pairs)))
            latents = generator.latents_from_seeds(seeds, Sampling())
            edited = generator.edit(latents, direction, torch.ones(len(seeds)), [0])
            images.append(to_pixels(generator.synthesize(torch.cat([latents, edited])), None, generator.pixels).numpy())
    return pairs / (time.perf_counter() - start), images


def bare_writer(batches: list, folder: Path) -> float:
    pairs, start = 0, time.perf_counter()
    with tarfile.open(folder / "bare.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        writer = ShardWriter(tar)
        for batch in batches:
            half = len(batch) // 2
            for row in range(half):
                writer.add(f"{pairs:010d}", encode_image(batch[row], "png"), encode_image(batch[half + row], "png"), {})
                pairs += 1
    return pairs / (time.perf_counter() - start)


def pipeline(pairs: int, folder: Path) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of `render run` rendering `pairs` pairs."""
    job = yaml.safe_load((REPO / "jobs" / "augment.yaml").read_text())
    job["seeds"]["train"] = f"0-{pairs // PER_SEED - 1}"
    job["outputs"][0]["dataset"]["samples"]["per_seed"] = PER_SEED
    spec = folder / f"augment-{pairs}.yaml"
    spec.write_text(yaml.safe_dump(job))
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "render", "run", str(spec), "--output-root", str(folder / str(pairs)),
                              "--workers", "0", "--no-progress"], env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if status:
        raise SystemExit(f"render run failed for {pairs} pairs (status {status})")
    return seconds, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(available_cores())
    with tempfile.TemporaryDirectory(prefix="augment-bench-") as scratch:
        folder = Path(scratch)
        generated, images = bare_generator(BARE_PAIRS)
        written = bare_writer(images, folder)
        limit = 1 / (1 / generated + 1 / written)
        print(f"bare generator {generated:8.0f} pairs/s   bare writer {written:8.0f} pairs/s   limit {limit:8.0f} pairs/s")
        runs = {pairs: pipeline(pairs, folder) for pairs in (args.small, args.large)}
    for pairs, (seconds, rss) in runs.items():
        print(f"render run {pairs:>7,} pairs: {seconds:7.1f} s  {pairs / seconds:6.0f} pairs/s "
              f"({pairs / seconds / limit:4.0%} of the limit)  peak RSS {rss / 2**20:6.0f} MiB")
    (_, small_rss), (_, large_rss) = runs[args.small], runs[args.large]
    print(f"peak RSS {args.large:,} / {args.small:,} pairs: {large_rss / small_rss:.2f}×")


if __name__ == "__main__":
    main()
