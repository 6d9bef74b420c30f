"""Reading checkpoint files as data, never as code.

A checkpoint is sniffed by its first bytes, not its file name:

- `PK\\x03\\x04`: a torch zip archive (`torch.save` since torch 1.6);
- pickle protocol 2 followed by torch's magic number: the legacy `torch.save` format;
- any other pickle: an NVIDIA network pickle or something hostile.

Torch files are read with `torch.load(weights_only=True)`, torch's own
allow-list unpickler, plus `argparse.Namespace`, which rosinality's training
checkpoints hold (`args`) and which only ever restores attribute values. Raw
pickles are never given to `torch.load` or `pickle.load` (torch's legacy path
unpickles the whole file before it notices the missing magic number, running
any code inside); they go to our restricted unpickler (`safe_pickle`), which
returns NVIDIA network objects as inert `PersistentRecord`s.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from render.errors import CheckpointError
from render.models.safe_pickle import UnsafePickleError, load_pickle

__all__ = ["sha256_file", "sniff", "read_checkpoint"]

_ZIP_MAGIC = b"PK\x03\x04"
# Pickle protocol 2 (0x80 0x02), then LONG1 of 10 bytes holding 0x1950a86a20f9469cfc6c.
_LEGACY_TORCH_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")


def sha256_file(path: Path) -> str:
    """The file's sha256, computed once per process for an unchanged file.

    A run hashes each checkpoint more than once (the zoo verifies it, the job
    records it); a StyleGAN pickle takes about a second to hash.
    """
    stat = os.stat(path)
    return _sha256(os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sniff(path: Path) -> str:
    """'torch-zip', 'torch-legacy', 'pickle' or 'unknown', from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_TORCH_MAGIC))
    if head.startswith(_ZIP_MAGIC):
        return "torch-zip"
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return "torch-legacy"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    return "unknown"


def read_checkpoint(path: Path) -> Any:
    """The checkpoint's content as plain data: dicts, tensors and records."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    kind = sniff(path)
    if kind in ("torch-zip", "torch-legacy"):
        return _read_torch(path)
    if kind == "pickle":
        return _read_pickle(path)
    raise CheckpointError(f"{path}: not a checkpoint sefa-render can read (neither a torch file nor a pickle)")


def _read_torch(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message is long; its first line names the offending global.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unsupported content"
        if "__main__" in str(error):
            raise CheckpointError(
                f"{path}: holds a pickled Python object (e.g. torch.save(netG)), which would run code to load; "
                "re-save it as a state dict: torch.save(netG.state_dict(), path)"
            ) from None
        raise CheckpointError(f"{path}: refused to load (it needs code to run): {first_line}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path}: corrupt or truncated torch file ({error})") from None


def _read_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return load_pickle(f)
    except UnsafePickleError as error:
        if "dnnlib.tflib" in str(error):
            raise CheckpointError(
                f"{path}: a TensorFlow StyleGAN pickle (dnnlib.tflib.network.Network); only PyTorch network pickles are supported"
            ) from None
        raise CheckpointError(f"{path}: refused to load: {error}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError) as error:
        # Whatever the C unpickler or torch raise on a truncated or garbled stream.
        raise CheckpointError(f"{path}: corrupt or truncated pickle ({type(error).__name__}: {error})".splitlines()[0]) from None
