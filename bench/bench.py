"""sefa-render throughput and memory, measured side by side in one run on one machine.

    make bench                       # or: .venv/bin/python bench/bench.py [--quick]

For each configuration (model × cell size) it measures, in this order:

1. the bare generator: batched forward images/s at its best batch, fp32 and bf16;
2. the bare writers at their best settings: H.264 encoding of real frames of
   the job's size (our encoder settings), and PNG writing of real images on
   every core;
3. the limit: on a CPU, generation and encoding share the same cores, so a
   job cannot beat the sum of the bare times per frame (per pair);
4. the reference loop (bench/reference.py), fp32;
5. our pipeline end to end: `sefa-render run` of a video job and of a
   dataset job, wall time from process start to finished files;
and once, the peak RSS of a video job at N and 10·N frames.

Ratios are computed from numbers measured minutes apart on the same
machine, never across runs: these machines are noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from checkpoints_stylegan2 import write_nvidia_pickle  # noqa: E402  (test fixture writer: a random StyleGAN2)
from reference import reference_dataset, reference_video  # noqa: E402
from render.devices import available_cores  # noqa: E402
from render.directions import factorize_generator  # noqa: E402
from render.layout import GridLayout, label_height, to_pixels  # noqa: E402
from render.models import zoo  # noqa: E402
from render.models.registry import load_generator  # noqa: E402
from render.models.stylegan2 import StyleGAN2Config  # noqa: E402
from render.pool import keep_freed_memory  # noqa: E402
from render.sinks.dataset import write_image  # noqa: E402
from render.sinks.video import VideoWriter  # noqa: E402

GRID_SEEDS = 9          # a 3×3 grid per video, as in the demo
ALPHAS = [-3.0, 3.0]    # dataset: two edits per direction and seed
BATCHES = (1, 8, 16, 32, 64, 128)
SMALL_STYLEGAN2 = StyleGAN2Config(z_dim=128, w_dim=128, c_dim=0, img_resolution=64, img_channels=3, mapping_layers=4,
                                  mapping_features=128, embed_features=0, mapping_lr_multiplier=0.01,
                                  channels=(128, 128, 128, 64, 32))


@dataclass(frozen=True)
class Config:
    name: str
    checkpoint: Path
    cell_size: int             # cell side (videos) and image side (datasets), pixels
    directions: int            # videos per job, and directions per dataset
    frames: int                # frames per video
    dataset_seeds: int


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


# --------------------------------------------------------------------------- the bare parts
def _best_rate(generator, precision: str, threads: int) -> tuple[float, int]:
    """Best images/s of `synthesize` over batch sizes, and that batch size, with `threads` torch threads."""
    keep_freed_memory()  # the same allocator settings as our workers, so that the limit is not understated
    torch.set_num_threads(threads)
    latents = generator.latents_from_seeds(list(range(max(BATCHES))))
    best = (0.0, 0)
    for batch in BATCHES:
        codes = latents[:batch]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            generator.synthesize(codes)
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < 1.0:
                generator.synthesize(codes)
                count += batch
        best = max(best, (count / (time.perf_counter() - started), batch))
    return best


def generator_rate(checkpoint: Path, precision: str) -> tuple[float, str]:
    """The bare generator's best throughput on all cores, and how it was reached.

    Two ways to use the cores, both measured: one process with a thread per
    core, and one single-threaded process per core running side by side (what
    our CPU workers do). The better one is the limit.
    """
    cores = available_cores()
    threaded, batch = _best_rate(load_generator(checkpoint), precision, cores)
    probes = [subprocess.Popen([sys.executable, __file__, "--probe", str(checkpoint), precision], stdout=subprocess.PIPE,
                               text=True) for _ in range(cores)]
    parallel = sum(float(probe.communicate()[0].split()[0]) for probe in probes)
    if parallel > threaded:
        return parallel, f"{cores} processes × 1 thread"
    return threaded, f"1 process × {cores} threads, batch {batch}"


def sample_pixels(generator, count: int, size: int | None) -> np.ndarray:
    """Real images of the model along its top direction, uint8 [count, size, size, 3]."""
    latents = generator.latents_from_seeds(list(range(GRID_SEEDS)))
    direction = torch.from_numpy(factorize_generator(generator, tuple(range(generator.num_layers)))[0][0]).float()
    alphas = torch.from_numpy(3 * np.sin(np.linspace(0, 2 * np.pi, count // GRID_SEEDS + 1))).float()
    codes = generator.edit(latents.repeat(len(alphas), 1, 1), direction, alphas.repeat_interleave(GRID_SEEDS),
                           range(generator.num_layers))[:count]
    with torch.no_grad():
        return np.concatenate([to_pixels(generator.synthesize(codes[i:i + 64]), size).numpy()
                               for i in range(0, count, 64)])


def encoder_rate(cells: np.ndarray, frames: int, folder: Path) -> tuple[float, tuple[int, int]]:
    """Frames/s of our H.264 encoder settings on real frames of the job's size (the frames pre-composed)."""
    cell = cells.shape[1]
    layout = GridLayout(3, 3, cell, cell, 4, label_height(cell))
    composed = layout.compose(cells[:frames * GRID_SEEDS].reshape(frames, GRID_SEEDS, cell, cell, 3))
    with VideoWriter(folder / "encoder.mp4", layout.width, layout.height, 30, 18, "veryfast") as writer:
        seconds, _ = timed(lambda: [writer.write(frame) for frame in composed])
    return frames / seconds, (layout.width, layout.height)


def png_rate(images: np.ndarray, folder: Path) -> float:
    """Images/s of our PNG writing (level 1, atomic files) on every core."""
    paths = [folder / f"png/{index:05d}.png" for index in range(len(images))]
    (folder / "png").mkdir(exist_ok=True)
    with ThreadPoolExecutor(available_cores()) as pool:
        seconds, _ = timed(lambda: list(pool.map(lambda item: write_image(item[0], item[1], "png", 1), zip(paths, images))))
    return len(images) / seconds


# --------------------------------------------------------------------------- our pipeline, end to end
def job_spec(config: Config, *, video: bool, precision: str, frames: int | None = None, directions: int | None = None) -> dict:
    directions = directions or config.directions
    output = ({"video": {"directions": "top", "seeds": f"0-{GRID_SEEDS - 1}", "cell_size": config.cell_size,
                         "schedule": {"kind": "sine", "frames": frames or config.frames, "amplitude": 3}}}
              if video else
              {"dataset": {"directions": "top", "seeds": f"1000-{999 + config.dataset_seeds}", "alphas": ALPHAS,
                           "image_size": config.cell_size}})
    return {"name": "bench", "models": {"m": {"checkpoint": str(config.checkpoint), "precision": precision}},
            "directions": {"top": {"model": "m", "components": f"0-{directions - 1}"}}, "outputs": [output]}


def run_ours(spec: dict, folder: Path, *extra: str) -> float:
    """Wall seconds of `sefa-render run` from a cold process to finished files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.yaml").write_text(yaml.safe_dump(spec))
    command = [sys.executable, "-m", "render", "run", "job.yaml", "--no-progress", *extra]
    seconds, result = timed(subprocess.run, command, cwd=folder, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    if result.returncode:
        raise SystemExit(f"sefa-render run failed in {folder}:\n{result.stderr}")
    return seconds


def peak_rss_mib(spec: dict, folder: Path) -> float:
    """Peak RSS of the largest process of a run (main process, worker, ffmpeg), in a fresh parent."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.yaml").write_text(yaml.safe_dump(spec))
    probe = ("import resource, subprocess, sys; subprocess.run([sys.executable, '-m', 'render', 'run', 'job.yaml', "
             "'--no-progress', '--workers', '1'], check=True, capture_output=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=folder, capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    return int(result.stdout.strip()) / 1024


# --------------------------------------------------------------------------- one configuration
def bench_config(config: Config, scratch: Path) -> list[tuple[str, str, str]]:
    generator = load_generator(config.checkpoint)
    size = config.cell_size
    rows: list[tuple[str, str, str]] = []
    gen = {p: generator_rate(config.checkpoint, p) for p in ("fp32", "bf16")}
    rows.append(("generator alone, best batch and threads (img/s)", *(f"{gen[p][0]:.0f} ({gen[p][1]})" for p in gen)))

    pixels = sample_pixels(generator, min(config.frames, 90) * GRID_SEEDS, config.cell_size)
    encode_fps, (width, height) = encoder_rate(pixels, min(config.frames, 90), scratch)
    png_per_s = png_rate(pixels[:256], scratch)
    rows.append((f"H.264 encoder alone, {width}×{height} (frames/s)", f"{encode_fps:.1f}", ""))
    rows.append((f"PNG writer alone, {size} px, {available_cores()} threads (img/s)", f"{png_per_s:.0f}", ""))

    directions = factorize_generator(generator, tuple(range(generator.num_layers)))[0][:config.directions]
    layers = list(range(generator.num_layers))
    latents = generator.latents_from_seeds(list(range(GRID_SEEDS)))
    torch.set_num_threads(available_cores())
    reference_frames = max(6, config.frames // 6)
    seconds, frames = timed(reference_video, generator, latents, torch.from_numpy(directions[0]).float(), layers,
                            3 * np.sin(np.linspace(0, 2 * np.pi, reference_frames)), (3, 3), config.cell_size,
                            scratch / "reference.mp4")
    reference_fps = frames / seconds
    seeds = list(range(1000, 1000 + max(4, config.dataset_seeds // 10)))
    seconds, pairs = timed(reference_dataset, generator, generator.latents_from_seeds(seeds), seeds, directions,
                           layers, ALPHAS, config.cell_size, scratch / "reference-dataset")
    reference_pairs = pairs / seconds

    startup = run_ours(job_spec(dataclasses.replace(config, frames=1), video=True, precision="fp32", directions=1),
                       scratch / "startup")
    images_per_pair = 1 + 1 / (config.directions * len(ALPHAS))  # each seed's original is shared by its pairs
    paths = [  # (output, work in the job, unit, limit for a generator rate, reference rate)
        ("video", config.directions * config.frames, "frames", "1/(9 cells/generator + 1/encoder)",
         lambda rate: 1 / (GRID_SEEDS / rate + 1 / encode_fps), reference_fps),
        ("dataset", config.dataset_seeds * config.directions * len(ALPHAS), "pairs", "1/(generator + PNG writer)",
         lambda rate: 1 / (images_per_pair / rate + images_per_pair / png_per_s), reference_pairs),
    ]
    precisions = ("fp32", "bf16")

    def both(values: dict, digits: int) -> tuple[str, str]:
        return tuple(f"{values[p]:.{digits}f}" for p in precisions)

    rows.append(("start-up: a 1-frame job, end to end (s)", f"{startup:.1f}", ""))
    for output, work, unit, formula, limit_of, reference in paths:
        limit = {p: limit_of(gen[p][0]) for p in precisions}
        wall = {p: run_ours(job_spec(config, video=output == "video", precision=p), scratch / f"{output}-{p}")
                for p in precisions}
        ours = {p: work / wall[p] for p in precisions}
        rows.append((f"limit: {output} = {formula} ({unit}/s)", *both(limit, 1)))
        rows.append((f"**ours: {output}, {work} {unit}, end to end ({unit}/s)**", *both(ours, 1)))
        rows.append(("ours / limit", *both({p: ours[p] / limit[p] for p in precisions}, 2)))
        rows.append(("ours / limit, start-up excluded",
                     *both({p: work / (wall[p] - startup) / limit[p] for p in precisions}, 2)))
        rows.append((f"reference loop: {output}, fp32 ({unit}/s)", f"{reference:.1f}", ""))
        rows.append(("**ours / reference**", *both({p: ours[p] / reference for p in precisions}, 1)))
    return rows


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    print(f"\n{title}\n")
    print("| measurement | fp32 | bf16 |\n|---|---:|---:|")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller jobs: a smoke test of the benchmark itself")
    parser.add_argument("--probe", nargs=2, metavar=("CHECKPOINT", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:  # one single-threaded process of generator_rate's side-by-side measurement
        print(_best_rate(load_generator(Path(args.probe[0])), args.probe[1], 1)[0])
        return
    scale = 4 if args.quick else 1
    scratch_root = Path(tempfile.mkdtemp(prefix="sefa-render-bench-"))
    stylegan2 = write_nvidia_pickle(scratch_root / "stylegan2-64.pkl", SMALL_STYLEGAN2)
    dcgan = zoo.fetch("dcgan-digiface")
    configs = [
        Config("dcgan-digiface, 64 px cells (native)", dcgan, 64, 4, 300 // scale, 800 // scale),
        Config("dcgan-digiface, 256 px cells (presentation)", dcgan, 256, 4, 150 // scale, 400 // scale),
        Config("random StyleGAN2 (64 px, w 128, NVIDIA pickle), 64 px cells", stylegan2, 64, 2, 120 // scale, 200 // scale),
    ]
    print(f"sefa-render benchmark — {platform.processor() or platform.machine()}, {available_cores()} cores, "
          f"torch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    for index, config in enumerate(configs):
        scratch = scratch_root / f"config{index}"
        scratch.mkdir()
        print_table(config.name, bench_config(config, scratch))

    frames = 60 // scale
    base = Config("memory", dcgan, 256, 1, frames, 1)
    small = peak_rss_mib(job_spec(base, video=True, precision="fp32"), scratch_root / "rss-short")
    large = peak_rss_mib(job_spec(base, video=True, precision="fp32", frames=10 * frames), scratch_root / "rss-long")
    print(f"\nmemory: peak RSS of a video job (3×3 grid of 256 px cells, --workers 1): {frames} frames {small:.0f} MiB, "
          f"{10 * frames} frames {large:.0f} MiB, ratio {large / small:.3f}")
    print(f"\n(scratch files in {scratch_root})")


if __name__ == "__main__":
    main()
