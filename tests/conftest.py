"""Every test runs with caches, the job queue and outputs in its own temp dir and no progress bars.
Tests marked `cuda` are skipped where torch sees no CUDA device."""

import pytest
import torch


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEFA_RENDER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEFA_RENDER_QUEUE", str(tmp_path / "queue.db"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.chdir(tmp_path)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
