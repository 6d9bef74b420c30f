"""Tiny job specs for tests, written next to a tiny DCGAN checkpoint."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from checkpoints import write_dcgan

TINY_JOB: dict[str, Any] = {
    "name": "tiny",
    "models": {"gan": {"checkpoint": "gan.pt"}},
    "directions": {"top": {"model": "gan", "method": "sefa", "layers": "all", "components": "0-1",
                           "names": {0: "first"}}},
    "seeds": {"grid": "0-3", "pairs": "10-29"},
    "schedules": {"loop": {"kind": "pingpong", "frames": 6, "start": -2, "stop": 2}},
    "outputs": [
        {"video": {"name": "clips", "directions": "top", "seeds": "grid", "schedule": "loop", "cell_size": 32,
                   "gutter": 2}},
        {"dataset": {"name": "pairs", "directions": "top", "seeds": "pairs", "alphas": [-3, 3],
                     "test_fraction": 0.25}},
    ],
}


def write_job(folder: Path, job: dict[str, Any] | None = None, name: str = "job.yaml") -> Path:
    """Write `job` (default TINY_JOB) and, unless present, the tiny DCGAN it names as gan.pt."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "gan.pt").exists():
        write_dcgan(folder / "gan.pt", wrap_key="netG_state_dict")
    path = folder / name
    path.write_text(yaml.safe_dump(copy.deepcopy(job if job is not None else TINY_JOB), sort_keys=False))
    return path


# One video of one direction, no dataset: the quickest job that still runs every stage of a run.
VIDEO_JOB: dict[str, Any] = copy.deepcopy(TINY_JOB)
VIDEO_JOB["directions"]["top"]["components"] = [0]
VIDEO_JOB["outputs"] = VIDEO_JOB["outputs"][:1]
