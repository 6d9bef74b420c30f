"""What `sefa-render report` costs beside rendering the same frames bare, side by side in one run.

    .venv/bin/python bench/report_bench.py [--model zoo:dcgan-digiface] [--repeats 3]

The issue's size: 3 layer groups × 20 directions × 6 seeds × 7 α (2,520 images).
The default model (DCGAN) has one edit slot, so its three groups (`0`, `0-`,
`all`) all select slot 0: the same amount of rendering and writing as three
distinct groups, with a factorization that is cheap either way. Alternating,
repeated, it times

1. the report: `build_report` as the command calls it, from loading the
   checkpoint to the last PNG and index.html (directions from the cache);
2. bare: the same 2,520 images from an already loaded generator, at the same
   size and batches, kept in memory: no change maps, no PNG, no HTML.

The difference is what the report adds: loading, change maps and PNG encoding.
Each is timed as wall time and as this process's CPU time (all its threads),
which other work on a shared machine inflates much less; the summary gives
the fastest repeat of each and the median of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from render.models.registry import checkpoint_sha256, load_generator  # noqa: E402
from render.prepare import locate_checkpoint  # noqa: E402
from render.ranges import parse_seeds  # noqa: E402
from render.report import edited_pixels, report_alphas, report_cell_size  # noqa: E402
from render.report.command import build_report, model_sets  # noqa: E402

GROUPS = ["0", "0-", "all"]
TOP, SEEDS, ALPHAS, AMPLITUDE = 20, "0-5", 7, 3.0


def time_report(model: str, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of the whole report."""
    started, cpu = time.perf_counter(), time.process_time()
    build_report(model, out, GROUPS, TOP, SEEDS, AMPLITUDE, ALPHAS, None, out / "no-job")
    return time.perf_counter() - started, time.process_time() - cpu


def time_bare(model: str) -> tuple[float, float, int]:
    """(wall, CPU) seconds and image count for the report's frames, from a loaded generator, kept in memory."""
    path = locate_checkpoint(model)
    generator = load_generator(path)
    sets = model_sets(generator, checkpoint_sha256(path), GROUPS, TOP)
    latents = generator.latents_from_seeds(parse_seeds(SEEDS), generator.default_sampling)
    cell, alphas = report_cell_size(generator.img_resolution), report_alphas(AMPLITUDE, ALPHAS)
    started, cpu, images = time.perf_counter(), time.process_time(), 0
    with torch.no_grad():
        for report_set in sets:
            pixels = edited_pixels(generator, latents, report_set.direction_set, report_set.shown, alphas, cell, "fp32")
            images += pixels.shape[0] * pixels.shape[1] * pixels.shape[2]
    return time.perf_counter() - started, time.process_time() - cpu, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:dcgan-digiface")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.model}: {len(GROUPS)} groups × {TOP} directions × seeds {SEEDS} × {ALPHAS} α; "
          f"torch threads {torch.get_num_threads()}")
    reports, bares = [], []  # (wall, CPU) seconds per repeat
    with tempfile.TemporaryDirectory(prefix="report-bench-") as scratch:
        time_report(args.model, Path(scratch) / "warm-up")  # fills the directions cache once, as a first run would
        for repeat in range(args.repeats):
            reports.append(time_report(args.model, Path(scratch) / f"report{repeat}"))
            *bare, images = time_bare(args.model)
            bares.append(tuple(bare))
            print(f"  repeat {repeat}: report {reports[-1][0]:.2f} s wall, {reports[-1][1]:.2f} s CPU; "
                  f"bare {bare[0]:.2f} s wall, {bare[1]:.2f} s CPU ({images} images)")
    for which, name in enumerate(("wall", "CPU")):
        report, bare = min(r[which] for r in reports), min(b[which] for b in bares)
        ratio = statistics.median(r[which] / b[which] for r, b in zip(reports, bares))
        print(f"{name}: report {report:.2f} s ({images / report:.0f} images/s), bare frames {bare:.2f} s "
              f"({images / bare:.0f} images/s) (fastest repeats); report / bare {ratio:.2f} (median of repeats)")


if __name__ == "__main__":
    main()
