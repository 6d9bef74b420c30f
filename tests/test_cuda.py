"""The CUDA path, on a real GPU (skipped without one; `bench/gpu_check.sh` runs these on a GPU machine).

What a GPU changes and these tests check: worker slots per visible device
(and several on one), `--device cuda:0`, fp16 and bf16 autocast, 8-bit
conversion on the device and the copy back through pinned memory. A job
renders on the GPU like on the CPU: the same files, the same metadata and
manifest entries, and pixels within a stated tolerance (float arithmetic
differs between the devices; TOLERANCE below). On one GPU, the worker count
and in-process rendering do not change a single byte.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from checkpoints_stylegan2 import write_nvidia_pickle
from checkpoints_stylegan3 import write_stylegan3_pickle
from families import WRITERS, sampling_of
from jobs import TINY_JOB, write_job
from render import execute
from render.devices import WorkerSlot, available_cores, enter_slot, plan_workers
from render.layout import to_pixels
from render.models.registry import load_generator
from render.runner import run_job

pytestmark = pytest.mark.cuda

REPO = Path(__file__).resolve().parents[1]
GPU = "cuda:0"
# |GPU − CPU| in 8-bit levels, (mean over all pixels, largest): cuDNN's convolution algorithms (TF32
# for fp32 by default on Ampere and later) and autocast round differently from the CPU's. On the CPU,
# the tiny models differ from fp32 by at most 2 (fp16) and 7 (bf16) levels, means 0.06 and 0.43.
TOLERANCE = {"fp32": (0.5, 4), "fp16": (1.0, 8), "bf16": (2.0, 24)}
ENCODING_SLACK = 1.5  # H.264 encodes slightly different frames slightly differently: added to a video's mean

MIXED_SEEDS = {"grid": "0-3", "pairs": "10-29"}


def mixed_job(precision: str) -> dict:
    """A DCGAN video (resized, side by side) and dataset, a StyleGAN2 dataset and a StyleGAN3 camera move."""
    models = {"gan": "gan.pt", "sg2": "sg2.pkl", "sg3": "sg3.pkl"}
    return {
        "name": "mixed",
        "models": {key: {"checkpoint": path, "precision": precision} for key, path in models.items()},
        "directions": {"faces": {"model": "gan", "components": "0-1"},
                       "styles": {"model": "sg2", "layers": "0-3", "components": [0]},
                       "moves": {"model": "sg3", "layers": "1-3", "components": [0]}},
        "seeds": MIXED_SEEDS,
        "schedules": {"loop": {"kind": "pingpong", "frames": 6, "start": -2, "stop": 2}},
        "outputs": [
            {"video": {"name": "faces", "directions": "faces", "seeds": "grid", "schedule": "loop", "cell_size": 48,
                       "side_by_side": True}},
            {"video": {"name": "moves", "directions": "moves", "seeds": "grid", "schedule": "loop",
                       "camera": {"translate": [0.2, 0], "rotate": 10}}},
            {"dataset": {"name": "pairs", "directions": "faces", "seeds": "pairs", "alphas": [-3, 3]}},
            {"dataset": {"name": "styles", "directions": "styles", "seeds": "pairs", "alphas": [-2, 2],
                         "image_size": 24}},
        ],
    }


def write_mixed_job(folder: Path, precision: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_nvidia_pickle(folder / "sg2.pkl")
    write_stylegan3_pickle(folder / "sg3.pkl")
    return write_job(folder, mixed_job(precision))


def files(job_folder: Path) -> dict[str, Path]:
    """Every output file by its path in the job folder; the run's own bookkeeping excluded."""
    return {str(path.relative_to(job_folder)): path for path in sorted(job_folder.rglob("*"))
            if path.is_file() and ".work" not in path.parts}


def within(gpu: np.ndarray, cpu: np.ndarray, precision: str, video: bool = False) -> None:
    """GPU pixels against the CPU's within TOLERANCE; a video's decoded frames by their mean alone."""
    assert gpu.shape == cpu.shape
    difference = np.abs(gpu.astype(np.int16) - cpu.astype(np.int16))
    mean_limit, max_limit = TOLERANCE[precision]
    described = f"|GPU − CPU|: mean {difference.mean():.3f}, max {difference.max()} levels ({precision})"
    assert difference.mean() <= mean_limit + (ENCODING_SLACK if video else 0), described
    assert video or difference.max() <= max_limit, described


def frames(path: Path) -> np.ndarray:
    reader = imageio_ffmpeg.read_frames(str(path))
    size = next(reader)["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(size[1], size[0], 3) for frame in reader])


def comparable(manifest: dict) -> list[dict]:
    """The manifest's artifacts less what legitimately differs between two runs (computed or cached directions)."""
    return [{key: value for key, value in artifact.items() if key != "source"} for artifact in manifest["artifacts"]]


# --------------------------------------------------------------------------- devices and workers
def test_auto_plans_one_worker_per_visible_device_and_a_gpu_can_hold_several():
    visible = torch.cuda.device_count()
    assert [slot.device for slot in plan_workers("auto")] == [f"cuda:{i}" for i in range(visible)]
    assert plan_workers("cuda") == plan_workers("auto")
    slots = plan_workers(GPU, 4)
    assert [slot.device for slot in slots] == [GPU] * 4
    assert all(slot.threads == max(1, available_cores() // 4) for slot in slots)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_a_job_renders_on_the_gpu_like_on_the_cpu(tmp_path, precision):
    job = write_mixed_job(tmp_path, precision)
    cpu = run_job(job, tmp_path / "cpu", device="cpu", workers=0, progress=False)
    gpu = run_job(job, tmp_path / "gpu", device=GPU, workers=1, progress=False)
    assert not cpu.failed and not gpu.failed
    cpu_files, gpu_files = files(cpu.output_dir), files(gpu.output_dir)
    assert list(gpu_files) == list(cpu_files)  # the same layout
    assert comparable(json.loads(gpu.manifest.read_text())) == comparable(json.loads(cpu.manifest.read_text()))
    for name, path in gpu_files.items():
        if name.endswith(("metadata.jsonl", ".npy", ".json")) and name != "manifest.json":
            assert path.read_bytes() == cpu_files[name].read_bytes(), name  # metadata and directions: the same bytes
        elif name.endswith(".png"):
            within(np.asarray(Image.open(path)), np.asarray(Image.open(cpu_files[name])), precision)
        elif name.endswith(".mp4"):
            within(frames(path), frames(cpu_files[name]), precision, video=True)


def test_the_worker_count_on_one_gpu_and_in_process_rendering_change_no_byte(tmp_path):
    job = copy.deepcopy(TINY_JOB)
    job["models"]["gan"]["precision"] = "fp16"
    job["seeds"]["pairs"] = "10-49"  # three dataset shards
    outputs = {}
    for workers in (0, 1, 3):
        summary = run_job(write_job(tmp_path / f"w{workers}", job), tmp_path / f"w{workers}/outputs", device=GPU,
                          workers=workers, progress=False)
        assert not summary.failed
        outputs[workers] = {name: path.read_bytes() for name, path in files(summary.output_dir).items()
                            if name != "manifest.json"}
    # `--device cuda` from the command line: one worker per visible GPU.
    folder = tmp_path / "cli"
    command = [sys.executable, "-m", "render", "run", str(write_job(folder, job)), "--no-progress", "--device", "cuda"]
    subprocess.run(command, cwd=folder, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    outputs["cli"] = {name: path.read_bytes() for name, path in files(folder / "outputs/tiny").items()
                      if name != "manifest.json"}
    assert outputs[1] == outputs[0] == outputs[3] == outputs["cli"]


# --------------------------------------------------------------------------- synthesis, conversion, copies
@pytest.mark.parametrize("family", WRITERS)
def test_every_family_synthesizes_on_the_gpu_like_on_the_cpu(tmp_path, family):
    generator = load_generator(WRITERS[family](tmp_path))
    latents = generator.latents_from_seeds(list(range(6)), sampling_of(generator))
    moves = np.array([[0.1 * i, 0.0, 5.0 * i] for i in range(6)])

    def pixels(device: str, precision: str) -> np.ndarray:
        moved = generator.to(device)
        codes = latents.to(device)
        return execute.render_pixels(moved, codes, None, precision, str, moves if generator.geometric_slots else None)

    cpu = pixels("cpu", "fp32")
    for precision in TOLERANCE:
        within(pixels(GPU, precision), cpu, precision)


def test_pixels_come_back_from_the_gpu_through_pinned_memory(tmp_path):
    restore = enter_slot(WorkerSlot(GPU, torch.get_num_threads()))  # as a worker: deterministic cuDNN
    generator = load_generator(WRITERS["dcgan"](tmp_path)).to(GPU)
    latents = generator.latents_from_seeds(list(range(5)))
    pixels = execute.render_pixels(generator, latents, 24, "fp16", str)
    assert torch.from_numpy(pixels).is_pinned()
    with torch.autocast("cuda", dtype=torch.float16):
        images = generator.synthesize(latents)
    expected = to_pixels(images, 24)
    restore()
    assert expected.device.type == "cuda"  # the 8-bit conversion runs on the GPU
    assert np.array_equal(pixels, expected.cpu().numpy())
