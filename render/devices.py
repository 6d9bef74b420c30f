"""Which workers a run gets: `--device` and `--workers` → a list of worker slots.

- `auto` (default): one worker per visible CUDA device, or CPU workers when
  there is none.
- `cpu`, `cuda` (every visible GPU), `cuda:0,2` (those GPUs).
- `--workers N` overrides the count; GPU workers go round-robin over the
  devices. `--workers 0` renders in the coordinator's own process (for
  debugging), on the first device.

A CPU worker renders with one torch thread, and by default there is one per
core: for batch rendering that scales better than threads inside one
process, and it keeps outputs byte-identical whatever the number of workers
(StyleGAN2's convolutions round differently with different thread counts).
Each worker also runs its own ffmpeg. GPU workers share the cores for their
CPU-side work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch

from render.errors import SpecError

__all__ = ["WorkerSlot", "plan_workers", "in_process_slot", "enter_slot", "available_cores", "CPU_THREADS_PER_WORKER"]

CPU_THREADS_PER_WORKER = 1


@dataclass(frozen=True)
class WorkerSlot:
    device: str     # 'cpu' or 'cuda:N'
    threads: int    # torch CPU threads for this worker


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _devices(device: str) -> list[str]:
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto":
        return [f"cuda:{i}" for i in range(visible)] or ["cpu"]
    if device == "cpu":
        return ["cpu"]
    if device == "cuda":
        if not visible:
            raise SpecError("--device cuda: no CUDA device is visible")
        return [f"cuda:{i}" for i in range(visible)]
    if device.startswith("cuda:"):
        try:
            indices = [int(part) for part in device[len("cuda:"):].split(",")]
        except ValueError:
            raise SpecError(f"--device {device}: expected cuda:N or cuda:N,M,…") from None
        for index in indices:
            if not 0 <= index < visible:
                raise SpecError(f"--device {device}: cuda:{index} is not visible ({visible} CUDA device(s))")
        return [f"cuda:{i}" for i in dict.fromkeys(indices)]
    raise SpecError(f"--device {device}: expected auto, cpu, cuda or cuda:N[,M…]")


def plan_workers(device: str = "auto", workers: int | None = None) -> list[WorkerSlot]:
    """The worker slots for a run; an empty list means render in-process (on the first device)."""
    devices = _devices(device)
    cores = available_cores()
    if workers is not None and workers < 0:
        raise SpecError(f"--workers {workers}: expected 0 (in-process) or more")
    if workers == 0:
        return []
    if devices == ["cpu"]:
        count = workers or cores
        return [WorkerSlot("cpu", CPU_THREADS_PER_WORKER)] * count
    count = workers or len(devices)
    return [WorkerSlot(devices[index % len(devices)], max(1, cores // count)) for index in range(count)]


def in_process_slot(device: str = "auto") -> WorkerSlot:
    """Where `--workers 0` renders: the first device, with the same thread count as a worker there."""
    first = _devices(device)[0]
    return WorkerSlot(first, CPU_THREADS_PER_WORKER if first == "cpu" else available_cores())


def enter_slot(slot: WorkerSlot) -> Callable[[], None]:
    """Make this process render as `slot`: its torch thread count and, on a GPU, its current CUDA device
    and deterministic cuDNN. Returns what restores all three.

    The current device is where torch puts what a call does not place itself
    (streams, cuDNN and cuBLAS handles, allocator statistics); left at cuda:0,
    a worker of cuda:1 would also open a context, and take memory, on cuda:0.
    Deterministic cuDNN keeps "same spec, same bytes" on a GPU: otherwise cuDNN
    may pick algorithms that sum with atomics in a varying order (transposed
    convolutions, as in DCGAN, run on such backward-data algorithms).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(slot.threads)
    previous = None
    # A slot can name a GPU this torch cannot see (a Ray actor given a GPU on a node whose torch has no
    # CUDA): entering it must not fail, so that the actor can say so once (render/ray_backend.py).
    if slot.device.startswith("cuda") and torch.cuda.is_available():
        previous = torch.cuda.current_device(), torch.backends.cudnn.deterministic
        torch.cuda.set_device(slot.device)
        torch.backends.cudnn.deterministic = True

    def restore() -> None:
        torch.set_num_threads(threads)
        if previous is not None:
            torch.cuda.set_device(previous[0])
            torch.backends.cudnn.deterministic = previous[1]
    return restore
