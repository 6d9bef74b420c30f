"""`manifest.json`: what a job made, from what, with which software.

Tools and tests read results from it rather than from the folder layout:
`artifacts` lists every output with its `kind` (`video`, `dataset` or
`directions`) and `path` relative to the job's output folder; videos add
`frames`, `fps`, `width`, `height`; datasets add `rows`.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import torch

from render import __version__, safe_fs
from render.prepare import Prepared, describe_model
from render.sinks.atomic import write_json

__all__ = ["MANIFEST_NAME", "versions", "write_manifest"]

MANIFEST_NAME = "manifest.json"


def versions() -> dict[str, str]:
    return {"sefa-render": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "imageio-ffmpeg": imageio_ffmpeg.__version__,
            "ffmpeg": imageio_ffmpeg.get_ffmpeg_version()}


def write_manifest(output_dir: Path, prepared: Prepared, artifacts: list[dict[str, Any]],
                   failed: list[dict[str, Any]], run: dict[str, int]) -> Path:
    manifest = {
        "job": prepared.job.name,
        "spec_file": str(prepared.job.path),
        "spec": prepared.job.spec.model_dump(mode="json"),
        "versions": versions(),
        "models": {key: describe_model(model) for key, model in prepared.models.items()},
        "artifacts": artifacts,
        "failed": failed,  # units that used up their retries: what, error, attempts, traceback
        "run": run,        # rendered / skipped / failed unit counts of the run that wrote this manifest
    }
    path = safe_fs.job_path(output_dir, MANIFEST_NAME)
    write_json(path, manifest)
    return path
