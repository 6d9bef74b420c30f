"""The GPU check: the CUDA tests and sefa-render's throughput on each card, side by side, in one run.

    bench/gpu_check.sh [--dry] [--out DIR]  # the usual way: installs carried wheels and the model cache first
    python bench/gpu_check.py [--dry] [--out DIR] [--models NAME,…] [--budget SECONDS]

On a CUDA machine it
1. runs the tests marked `cuda` (tests/test_cuda.py) and keeps their log;
2. measures each card's bare generator: batched `synthesize` images/s at the
   best batch, fp32, fp16 and bf16, for the DCGAN (zoo:dcgan-digiface, 64 px)
   and random StyleGAN2s (config-f widths, 512-d w) at 256 and 1024 px,
   written by the tests' own writer;
3. runs `sefa-render run` end to end on cuda:0 for a video job (3×3 grid,
   256 px cells) and a dataset job (native size, PNG) of each model: fp16 and
   fp32 with one worker, then the card split into 2 and 4 workers (fp16), and
   bf16 last while time is left; job sizes follow the measured generator rate,
   so each job has a few seconds of generator work;
4. writes gpu_check.md (one table) and gpu_check.json (every number) to the
   output folder.

Every step runs within `--budget` seconds (the device lease is short): what
would start after it is listed as skipped, never half-measured.

`--dry` runs the same steps on the CPU with tiny models and sizes (about a
minute; bf16 stands in for fp16), so CI keeps this script working without a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from checkpoints import TINY_DCGAN, write_dcgan  # noqa: E402  (test fixture writers)
from checkpoints_stylegan2 import TINY_SG2, write_nvidia_pickle  # noqa: E402
from render.devices import WorkerSlot, available_cores, enter_slot  # noqa: E402
from render.models import zoo  # noqa: E402
from render.models.registry import load_generator  # noqa: E402
from render.models.stylegan2 import StyleGAN2Config  # noqa: E402

PRECISIONS = ("fp32", "fp16", "bf16")
AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}
GRID = 9                  # seeds per video: a 3×3 grid
ALPHAS = [-3.0, 3.0]      # dataset: two edits per seed, plus the original
SUMMARY = "gpu_check.md"
RAW = "gpu_check.json"
TEST_LOG = "cuda_tests.log"
STOPPED = "stopped at the end of the time budget"


def stylegan2_config(resolution: int) -> StyleGAN2Config:
    """NVIDIA's config-f sizes: 512-d z and w, 8 mapping layers, min(32768 / r, 512) channels at r px."""
    channels = tuple(min(32768 // 2 ** k, 512) for k in range(2, int(math.log2(resolution)) + 1))
    return StyleGAN2Config(z_dim=512, w_dim=512, c_dim=0, img_resolution=resolution, img_channels=3, mapping_layers=8,
                           mapping_features=512, embed_features=0, mapping_lr_multiplier=0.01, channels=channels)


@dataclass(frozen=True)
class Setup:
    """What a run measures and how big: the GPU's, or the dry run's tiny stand-ins."""

    device: str                          # where the bare generator and `sefa-render run` render
    half: str                            # the half precision the worker split uses (fp16 on a GPU)
    batches: tuple[int, ...]             # batch sizes tried for the bare generator
    pixels_per_batch: int                # batches above this many output pixels are not tried (memory, time)
    measure_s: float                     # timed synthesis per batch size, after one warm-up call
    job_generator_s: float               # generator work an end-to-end job is sized to, at the half precision
    video_frames: tuple[int, int]        # (fewest, most) frames of a video job
    dataset_seeds: tuple[int, int]       # (fewest, most) seeds of a dataset job
    dataset_pixels: int                  # at most this many output pixels in a dataset job (PNG writing time)
    cell_size: int                       # video cells, px
    worker_splits: tuple[int, ...]       # workers on the one card, beyond 1
    least_run_s: float                   # an end-to-end run starts only with this much of the budget left
    budget_s: float                      # the whole check, tests included


GPU_SETUP = Setup(device="cuda:0", half="fp16", batches=(1, 4, 16, 32, 64, 128, 256, 512, 1024),
                  pixels_per_batch=64 * 1024 * 1024, measure_s=0.3, job_generator_s=2.0, video_frames=(30, 900),
                  dataset_seeds=(16, 2000), dataset_pixels=20 * 1024 * 1024, cell_size=256, worker_splits=(2, 4),
                  least_run_s=15.0, budget_s=450.0)
DRY_SETUP = Setup(device="cpu", half="bf16", batches=(1, 4), pixels_per_batch=4 * 32 * 32, measure_s=0.02,
                  job_generator_s=0.05, video_frames=(2, 4), dataset_seeds=(2, 4), dataset_pixels=8 * 32 * 32,
                  cell_size=16, worker_splits=(2,), least_run_s=0.0, budget_s=240.0)


@dataclass(frozen=True)
class Model:
    name: str
    label: str
    checkpoint: Path
    resolution: int


def models_for(dry: bool, scratch: Path, only: set[str] | None) -> list[Model]:
    """The DCGAN and the StyleGAN2s (those in `only`, when given); tiny ones in a dry run, all written by the
    tests' writers but the zoo's DCGAN."""
    if dry:
        small = dataclasses.replace(TINY_SG2, img_resolution=32, channels=(16, 8, 4, 4))
        makers = {"dcgan": ("tiny DCGAN, 32 px", 32, lambda: write_dcgan(scratch / "dcgan.pt", TINY_DCGAN)),
                  "stylegan2-32": ("tiny StyleGAN2, 32 px", 32, lambda: write_nvidia_pickle(scratch / "sg2.pkl", small))}
    else:
        makers = {"dcgan": ("DCGAN (zoo:dcgan-digiface), 64 px", 64, lambda: zoo.fetch("dcgan-digiface"))}
        for r in (256, 1024):
            makers[f"stylegan2-{r}"] = (f"StyleGAN2 config-f, random weights, {r} px", r,
                                        lambda r=r: write_nvidia_pickle(scratch / f"stylegan2-{r}.pkl", stylegan2_config(r)))
    unknown = sorted((only or set()) - set(makers))
    if unknown:
        raise ValueError(f"--models {','.join(unknown)}: expected some of {', '.join(makers)}")
    return [Model(name, label, make(), resolution) for name, (label, resolution, make) in makers.items()
            if only is None or name in only]


class Clock:
    """The check's time budget: whether a step of about `seconds` may still start."""

    def __init__(self, budget_s: float):
        self.deadline = time.monotonic() + budget_s

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def allows(self, seconds: float) -> bool:
        return self.left() > seconds


def python_path() -> str:
    """The repo first, then whatever the caller set (on a device: the carried wheels)."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


# --------------------------------------------------------------------------- 1. the CUDA tests
def run_cuda_tests(out: Path, clock: Clock) -> dict:
    started = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "cuda", "tests/test_cuda.py"]
    try:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=max(30.0, clock.left() / 2),
                                env={**os.environ, "PYTHONPATH": python_path()})
        log, code = result.stdout + result.stderr, result.returncode
    except subprocess.TimeoutExpired as error:
        log, code = f"{error.stdout or ''}{error.stderr or ''}\n(timed out)", None
    (out / TEST_LOG).write_text(log)
    counts = {word: int(number) for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", log)}
    return {"returncode": code, "seconds": round(time.perf_counter() - started, 1), **counts}


# --------------------------------------------------------------------------- 2. the bare generator
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def generator_rates(model: Model, device: str, setup: Setup) -> dict[str, dict[int, float]]:
    """{precision: {batch: images/s of synthesize}}; a batch that runs out of memory ends its precision's series.

    The device is set up as a worker's (`enter_slot`: deterministic cuDNN), so the ratio to it measures our
    pipeline, not a setting."""
    restore = enter_slot(WorkerSlot(device, available_cores()))
    generator = load_generator(model.checkpoint).to(device)
    latents = generator.latents_from_seeds(list(range(max(setup.batches))))
    rates: dict[str, dict[int, float]] = {}
    for precision in PRECISIONS:
        rates[precision] = {}
        for batch in setup.batches:
            if batch > 1 and batch * model.resolution ** 2 > setup.pixels_per_batch:
                break
            codes = latents[:batch]
            try:
                with torch.no_grad(), torch.autocast(generator.device.type, dtype=AUTOCAST.get(precision, torch.float32),
                                                     enabled=precision in AUTOCAST):
                    generator.synthesize(codes)  # warm-up: cuDNN picks its algorithms, the allocator grows
                    synchronize(generator.device)
                    count, started = 0, time.perf_counter()
                    while count == 0 or time.perf_counter() - started < setup.measure_s:
                        generator.synthesize(codes)
                        count += batch
                    synchronize(generator.device)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                break
            rates[precision][batch] = count / (time.perf_counter() - started)
    del generator, latents
    restore()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the end-to-end runs' workers need the card's memory
    return rates


def best(rates: dict[int, float]) -> tuple[float, int]:
    """(images/s, batch) at the best batch; (0, 0) when nothing was measured."""
    return max(((rate, batch) for batch, rate in rates.items()), default=(0.0, 0))


# --------------------------------------------------------------------------- 3. sefa-render run, end to end
@dataclass
class Run:
    model: str
    output: str            # 'video', 'dataset' or 'start-up' (a one-frame video)
    precision: str
    workers: int
    images: int            # images the generator makes in the job
    seconds: float | None = None
    error: str | None = None   # the last line of stderr of a failed run; `log` holds more
    log: str | None = None

    @property
    def rate(self) -> float | None:
        return self.images / self.seconds if self.seconds else None


def job_sizes(model: Model, rate: float, setup: Setup) -> dict[str, int]:
    """Video frames and dataset seeds for about `job_generator_s` of generator work at `rate` images/s."""
    work = rate * setup.job_generator_s
    most_seeds = min(setup.dataset_seeds[1], max(1, setup.dataset_pixels // model.resolution ** 2))
    return {"frames": int(min(max(work / GRID, setup.video_frames[0]), setup.video_frames[1])),
            "seeds": int(min(max(work / (1 + len(ALPHAS)), setup.dataset_seeds[0]), most_seeds))}


def job_spec(model: Model, output: str, precision: str, sizes: dict[str, int], setup: Setup) -> tuple[dict, int]:
    """A one-direction job and the number of images its generator makes."""
    if output == "dataset":
        entry = {"dataset": {"directions": "top", "seeds": f"1000-{999 + sizes['seeds']}", "alphas": ALPHAS,
                             "image_size": model.resolution}}
        images = sizes["seeds"] * (1 + len(ALPHAS))
    else:
        frames = 1 if output == "start-up" else sizes["frames"]
        entry = {"video": {"directions": "top", "seeds": f"0-{GRID - 1}", "cell_size": setup.cell_size,
                           "schedule": {"kind": "sine", "frames": frames, "amplitude": 3}}}
        images = frames * GRID
    spec = {"name": "check", "models": {"m": {"checkpoint": str(model.checkpoint), "precision": precision}},
            "directions": {"top": {"model": "m", "components": [0]}}, "outputs": [entry]}
    return spec, images


def run_end_to_end(run: Run, spec: dict, folder: Path, device: str, clock: Clock) -> Run:
    """Wall time of `sefa-render run` from a cold process to finished files; a failure is recorded, not raised."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.yaml").write_text(yaml.safe_dump(spec))
    command = [sys.executable, "-m", "render", "run", "job.yaml", "--no-progress", "--device", device,
               "--workers", str(run.workers)]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=max(10.0, clock.left()),
                                env={**os.environ, "PYTHONPATH": python_path()})
    except subprocess.TimeoutExpired:
        run.error = STOPPED
        return run
    if result.returncode:
        lines = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
        run.error, run.log = lines[-1], "\n".join(lines[-40:])
    else:
        run.seconds = time.perf_counter() - started
    return run


def planned_runs(models: list[Model], sizes: dict[str, dict[str, int]], setup: Setup) -> list[tuple[Model, Run, dict]]:
    """Every end-to-end run, most wanted first: the budget cuts from the end."""
    half, order = setup.half, []
    for model in models:
        order.append((model, "start-up", half, 1))
    for precision in (half, "fp32"):
        order += [(model, output, precision, 1) for model in models for output in ("video", "dataset")]
    order += [(model, output, half, workers) for workers in setup.worker_splits for model in models
              for output in ("video", "dataset")]
    if half != "bf16":
        order += [(model, output, "bf16", 1) for model in models for output in ("video", "dataset")]
    runs = []
    for model, output, precision, workers in order:
        spec, images = job_spec(model, output, precision, sizes[model.name], setup)
        runs.append((model, Run(model.name, output, precision, workers, images), spec))
    return runs


# --------------------------------------------------------------------------- 4. the table
@dataclass
class Report:
    environment: dict
    tests: dict = field(default_factory=dict)
    generators: dict = field(default_factory=dict)   # {card: {model: {precision: {batch: rate}}}}
    sizes: dict = field(default_factory=dict)        # {model: {frames, seeds}}
    runs: list[Run] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def raw(self) -> dict:
        return {"environment": self.environment, "tests": self.tests, "generators": self.generators,
                "sizes": self.sizes, "runs": [{**asdict(run), "rate": run.rate} for run in self.runs],
                "skipped": self.skipped}


def cell(run: Run, generator_rate: float) -> str:
    """A run's table entry: seconds for the start-up, else images/s and its ratio to the bare generator."""
    if run.error:
        return f"failed: {run.error}"
    if run.output == "start-up":
        return f"{run.seconds:.1f}"
    return f"{run.rate:.0f} (×{run.rate / generator_rate:.2f})" if generator_rate else f"{run.rate:.0f}"


def markdown(report: Report, models: list[Model], setup: Setup) -> str:
    env, tests = report.environment, report.tests
    lines = [f"GPU check — {env['cards']}; torch {env['torch']}, CUDA {env['cuda']}, Python {env['python']}, "
             f"{env['cores']} cores; {env['date']}{' (DRY RUN on the CPU: tiny models)' if env['dry'] else ''}", "",
             f"CUDA tests: {', '.join(f'{tests[k]} {k}' for k in ('passed', 'failed', 'skipped', 'error', 'errors') if k in tests)}"
             f" in {tests.get('seconds')} s (exit code {tests.get('returncode')}; {TEST_LOG})", "",
             "| model | measurement | fp32 | fp16 | bf16 |", "|---|---|---:|---:|---:|"]

    def row(model: str, measurement: str, values: dict[str, str]) -> None:
        lines.append(f"| {model} | {measurement} | " + " | ".join(values.get(p, "") for p in PRECISIONS) + " |")

    for model in models:
        label = model.label
        for card, per_model in report.generators.items():
            rates = per_model.get(model.name, {})
            row(label, f"generator alone on {card}, best batch (img/s @ batch)",
                {p: f"{best(r)[0]:.0f} @{best(r)[1]}" for p, r in rates.items() if r})
            label = ""
        runs = [run for run in report.runs if run.model == model.name]
        startup = {run.precision: cell(run, 0.0) for run in runs if run.output == "start-up"}
        if startup:
            row("", "start-up: a 1-frame video job, end to end (s)", startup)
        for output in ("video", "dataset"):
            for workers in (1, *setup.worker_splits):
                group = [run for run in runs if run.output == output and run.workers == workers]
                if not group:
                    continue
                what = (f"video, {group[0].images // GRID} frames × {GRID} cells of {setup.cell_size} px" if output == "video"
                        else f"dataset, {group[0].images} PNGs of {model.resolution} px")
                generator = report.generators.get(setup.device, {}).get(model.name, {})
                row("", f"{what}, {workers} worker{'s' if workers > 1 else ''}: end to end (img/s; × generator alone)",
                    {run.precision: cell(run, best(generator.get(run.precision, {}))[0]) for run in group})
    if report.skipped:
        lines += ["", f"Skipped at the end of the {setup.budget_s:.0f} s budget: {'; '.join(report.skipped)}"]
    return "\n".join(lines) + "\n"


def environment(dry: bool) -> dict:
    cuda = torch.cuda.is_available()
    cards = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())] if cuda else []
    return {"dry": dry, "cards": ", ".join(cards) or f"no GPU ({platform.processor() or platform.machine()})",
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "cores": available_cores(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


# --------------------------------------------------------------------------- the check
def check(out: Path, setup: Setup, models: list[Model], scratch: Path) -> Report:
    """Run every step within `setup.budget_s`, saving the table and the raw numbers after each."""
    clock = Clock(setup.budget_s)
    dry = setup.device == "cpu"
    report = Report(environment(dry))

    def save() -> None:  # after every step: whatever ends the run, what was measured comes back
        (out / RAW).write_text(json.dumps(report.raw(), indent=1))
        (out / SUMMARY).write_text(markdown(report, models, setup))

    report.tests = run_cuda_tests(out, clock)
    print(f"  CUDA tests: {report.tests}", flush=True)
    save()
    cards = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if not dry else ["cpu"]
    for card in cards:
        report.generators[card] = {}
        for model in models:
            if not clock.allows(setup.least_run_s):
                report.skipped.append(f"{card} {model.name} generator alone")
                continue
            report.generators[card][model.name] = generator_rates(model, card, setup)
            print(f"  {card} {model.name}: " + ", ".join(f"{p} {best(r)[0]:.0f} img/s @{best(r)[1]}"
                                                        for p, r in report.generators[card][model.name].items()), flush=True)
            save()
    for model in models:
        rate = best(report.generators[setup.device].get(model.name, {}).get(setup.half, {}))[0]
        report.sizes[model.name] = job_sizes(model, rate, setup)
    for model, run, spec in planned_runs(models, report.sizes, setup):
        name = f"{run.model} {run.output} {run.precision} ×{run.workers}"
        if not clock.allows(setup.least_run_s):
            report.skipped.append(name)
            continue
        run_end_to_end(run, spec, scratch / name.replace(" ", "-"), setup.device, clock)
        print(f"  {name}: " + (f"{run.seconds:.1f} s" if run.seconds else f"failed: {run.error}"), flush=True)
        if run.error == STOPPED:
            report.skipped.append(f"{name} ({STOPPED})")
        else:
            report.runs.append(run)
        save()
    save()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="on the CPU, tiny models and sizes: checks the script itself")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or REPO / "outputs/gpu-check"),
                        help="folder for gpu_check.md, gpu_check.json and the test log (default: $OUT, else outputs/gpu-check)")
    parser.add_argument("--models", help="only these, comma-separated (dcgan, stylegan2-256, stylegan2-1024; "
                                         "dry: dcgan, stylegan2-32)")
    parser.add_argument("--budget", type=float, help="seconds for the whole check (default: 450 on a GPU, 240 dry)")
    args = parser.parse_args()
    if not args.dry and not torch.cuda.is_available():
        parser.error("torch sees no CUDA device (--dry checks the script on the CPU)")
    setup = DRY_SETUP if args.dry else GPU_SETUP
    if args.budget is not None:
        setup = dataclasses.replace(setup, budget_s=args.budget)
    scratch = Path(tempfile.mkdtemp(prefix="sefa-render-gpu-check-"))
    try:
        models = models_for(args.dry, scratch, set(args.models.split(",")) if args.models else None)
    except ValueError as error:
        parser.error(str(error))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"gpu_check: {setup.device}; budget {setup.budget_s:.0f} s; scratch {scratch}", flush=True)
    report = check(args.out, setup, models, scratch)
    print((args.out / SUMMARY).read_text())
    failed = [run for run in report.runs if run.error]
    sys.exit(1 if failed or report.tests.get("returncode") != 0 else 0)


if __name__ == "__main__":
    main()
