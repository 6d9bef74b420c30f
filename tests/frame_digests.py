"""Render every unit of a job in this process and digest each frame and image before it is encoded.

A test renders the same job in several processes at once and compares what
the renderer produced, independently of the video encoder.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from render import execute
from render.devices import CPU_THREADS_PER_WORKER
from render.execute import RenderContext, execute_unit
from render.models import zoo
from render.plan import plan
from render.pool import GeneratorCache, keep_freed_memory
from render.prepare import prepare
from render.spec import load_job


WRITE_DELAY_S = 0.002


class _FrameDigests:
    """Stands in for the video and image writers: records a digest of every array it is handed."""

    def __init__(self) -> None:
        self.digests: list[str] = []
        self.frames = 0

    def add(self, pixels: np.ndarray) -> None:
        self.digests.append(hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()[:16])

    def video(self, *args: Any) -> "_FrameDigests":
        return self

    def __enter__(self) -> "_FrameDigests":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def write(self, frame: np.ndarray) -> None:
        time.sleep(WRITE_DELAY_S)  # a writer slower than the renderer, as ffmpeg can be: hand-off races show
        self.add(frame)
        self.frames += 1


def frame_digests(job_path: Path, output_dir: Path) -> dict[str, list[str]]:
    """{unit label: digests of its frames (videos) or images (datasets), in order}, rendered as a worker does."""
    keep_freed_memory()
    output_dir.mkdir(parents=True, exist_ok=True)  # shard rows are still written, inside the job folder
    job = load_job(job_path, known_zoo=zoo.ZOO)
    prepared, generators = prepare(job)
    context = RenderContext(job, output_dir, prepared.models, prepared.direction_sets)
    cache = GeneratorCache(context, "cpu", generators)
    result = {}
    threads, writers = torch.get_num_threads(), (execute.VideoWriter, execute.dataset_sink.write_image)
    torch.set_num_threads(CPU_THREADS_PER_WORKER)
    try:
        for unit in plan(job, prepared.models, prepared.direction_sets):
            recorder = _FrameDigests()
            execute.VideoWriter = recorder.video
            execute.dataset_sink.write_image = lambda path, image, *options: recorder.add(image)
            execute_unit(context, unit, cache.for_unit(unit))
            result[unit.label] = recorder.digests
    finally:
        torch.set_num_threads(threads)
        execute.VideoWriter, execute.dataset_sink.write_image = writers
    return result

