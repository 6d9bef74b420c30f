"""An unusable cache only costs time: a warning, and the run carries on without it."""

import warnings

import pytest
import torch

from jobs import write_job
from render import cache
from render.cli import main
from render.errors import RenderWarning, ZooError
from render.models import zoo
from render.runner import run_job


@pytest.fixture(autouse=True)
def fresh_probe():
    cache.usable.cache_clear()
    yield
    cache.usable.cache_clear()


@pytest.mark.parametrize("where", ["a file", "under /proc"])
def test_a_run_carries_on_without_an_unusable_cache(tmp_path, monkeypatch, where):
    if where == "a file":
        (tmp_path / "cache-file").write_text("")
        monkeypatch.setenv("SEFA_RENDER_CACHE", str(tmp_path / "cache-file"))
    else:
        monkeypatch.delenv("SEFA_RENDER_CACHE")
        monkeypatch.setenv("HOME", "/proc/nohome")
    with pytest.warns(RenderWarning, match="cannot be used .*; carrying on without it") as warned:
        summary = run_job(write_job(tmp_path), tmp_path / "outputs", workers=0, progress=False)
    assert len(warned) == 1 and summary.rendered == 4 and not summary.failed


def test_the_warning_is_one_line_on_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SEFA_RENDER_CACHE", "/proc/nocache")
    with pytest.warns(RenderWarning) as warned:
        assert main(["run", str(write_job(tmp_path)), "--workers", "0", "--no-progress"]) == 0
    shown = warnings.formatwarning(warned[0].message, warned[0].category, warned[0].filename, warned[0].lineno)
    assert shown == ("sefa-render: warning: the cache folder /proc/nocache cannot be used (No such file or directory); "
                     "carrying on without it (directions are computed again on every run)\n")


def test_a_zoo_fetch_without_a_usable_cache_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SEFA_RENDER_CACHE", "/proc/nocache")
    with pytest.raises(ZooError, match=r"^zoo:dcgan-digiface: the model cache /proc/nocache cannot be used .*"
                                       r"set SEFA_RENDER_CACHE to a writable folder"):
        zoo.fetch("dcgan-digiface", download=lambda *args: pytest.fail("nothing may be downloaded"))


def test_a_generator_whose_weights_are_all_zero_is_one_line(tmp_path, capsys):
    job = write_job(tmp_path)
    state = torch.load(tmp_path / "gan.pt")
    state["netG_state_dict"]["main.0.weight"].zero_()
    torch.save(state, tmp_path / "gan.pt")
    assert main(["validate", str(job)]) == 0
    assert main(["run", str(job), "--workers", "0", "--no-progress"]) == 2
    assert capsys.readouterr().err.endswith(
        "directions.top.layers: the weights SeFa reads are all zero: there is no direction to find\n")
    assert main(["factorize", str(tmp_path / "gan.pt"), "--out", str(tmp_path / "d")]) == 2
    assert "gan.pt: layers all: the weights SeFa reads are all zero" in capsys.readouterr().err
