"""Every test runs with caches, the job queue and outputs in its own temp dir and no progress bars."""

import pytest


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEFA_RENDER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEFA_RENDER_QUEUE", str(tmp_path / "queue.db"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.chdir(tmp_path)
