"""bench/gpu_check.sh's dry run: the GPU check's own script keeps working without a GPU (one model, ~30 s)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def test_the_dry_run_tests_measures_and_reports(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(["bash", str(REPO / "bench/gpu_check.sh"), "--dry", "--models", "dcgan", "--out", str(out)],
                            env={**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    raw = json.loads((out / "gpu_check.json").read_text())
    assert raw["tests"]["returncode"] == 0
    assert raw["tests"].get("passed" if torch.cuda.is_available() else "skipped", 0) > 0
    rates = raw["generators"]["cpu"]["dcgan"]
    assert set(rates) == {"fp32", "fp16", "bf16"} and all(rate > 0 for series in rates.values() for rate in series.values())
    assert [(run["output"], run["precision"], run["workers"]) for run in raw["runs"]] == [
        ("start-up", "bf16", 1), ("video", "bf16", 1), ("dataset", "bf16", 1), ("video", "fp32", 1),
        ("dataset", "fp32", 1), ("video", "bf16", 2), ("dataset", "bf16", 2)]
    assert all(run["error"] is None and run["seconds"] > 0 for run in raw["runs"]) and not raw["skipped"]
    table = (out / "gpu_check.md").read_text()
    assert "| tiny DCGAN, 32 px | generator alone on cpu, best batch (img/s @ batch) |" in table
    assert "2 workers: end to end" in table and (out / "cuda_tests.log").read_text().strip()
