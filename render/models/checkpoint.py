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

Loading is bounded by the file's size. Every pickle in the file is scanned
(`pickle_scan`) before anything is unpickled, so a few hundred bytes cannot
describe values of 2⁴⁰ elements. After loading, `check_stored_tensors`
refuses tensors that claim more elements than their storage holds bytes for
(stride-0 or overlapping views: a 3 KB file must not become a 6 GB weight
once copied). Every loader gets both by reading through `read_checkpoint`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from render.errors import CheckpointError
from render.models.pickle_scan import UnsafePickleError, scan_torch_file
from render.models.safe_pickle import PersistentRecord, load_pickle
from render.untrusted import bounded_repr, bounded_text

__all__ = ["sha256_file", "sniff", "read_checkpoint", "check_stored_tensors", "STORED_BYTES_ALLOWANCE"]

# Tensors may add up to the file's size plus this much: slack for the few small tensors a
# legitimate file may hold twice over one storage (a tensor saved next to a view of it).
STORED_BYTES_ALLOWANCE = 1 << 20

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
    """The checkpoint's content as plain data: dicts, tensors and records.

    Every loader reads files through this function: it runs no code from the
    file, takes time and memory bounded by the file's size, and checks that
    every tensor is backed by stored bytes (`check_stored_tensors`).

    Raises:
        CheckpointError: one line naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    kind = sniff(path)
    if kind in ("torch-zip", "torch-legacy"):
        content = _read_torch(path)
    elif kind == "pickle":
        content = _read_pickle(path)
    else:
        raise CheckpointError(f"{path}: not a checkpoint sefa-render can read (neither a torch file nor a pickle)")
    try:
        check_stored_tensors(content, path.stat().st_size)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return content


def check_stored_tensors(content: Any, file_size: int) -> None:
    """Refuse tensors that are not backed by stored bytes.

    A tensor is rebuilt from a storage plus a declared size, stride and offset.
    A stride of 0 (or strides that make elements overlap) lets a few stored
    bytes pose as a huge tensor, which becomes real memory as soon as it is
    copied (`.float()`, `load_state_dict`). So every tensor in `content` must
    be a non-overlapping view, and all distinct tensors together may hold at
    most `file_size + STORED_BYTES_ALLOWANCE` bytes.

    Raises:
        CheckpointError: naming the first offending tensor by its path in `content`.
    """
    total = 0
    for where, tensor in _tensors(content):
        if _overlaps(tensor):
            raise CheckpointError(
                f"tensor {where} of shape {tuple(tensor.shape)} has strides {tuple(tensor.stride())}, so its elements "
                "overlap in storage (a saved weight never does)"
            )
        total += tensor.numel() * tensor.element_size()
        if total > file_size + STORED_BYTES_ALLOWANCE:
            raise CheckpointError(f"its tensors claim at least {total:,} bytes, more than the file's {file_size:,} bytes can hold")


def _overlaps(tensor: torch.Tensor) -> bool:
    """True when two indices of `tensor` address the same storage element."""
    if tensor.numel() <= 1:
        return False
    span = 1  # elements covered by the dimensions with smaller strides
    for stride, size in sorted((stride, size) for stride, size in zip(tensor.stride(), tensor.shape) if size > 1):
        if stride < span:
            return True
        span += stride * (size - 1)
    return False


def _tensors(content: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """Each distinct tensor in `content` with a readable path (`G_ema.synthesis.b4.const`, `g_ema.conv1.weight`, `x[3]`)."""
    stack: list[tuple[str, Any]] = [("", content)]
    seen: set[int] = set()
    while stack:
        where, item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            yield where or "(top level)", item
        elif isinstance(item, PersistentRecord):
            stack.extend((f"{where}.{name}".lstrip("."), tensor) for name, tensor in (*item.params.items(), *item.buffers.items()))
            stack.extend((f"{where}.{name}".lstrip("."), child) for name, child in item.children.items())
        elif isinstance(item, Mapping):
            stack.extend((_join(where, key), value) for key, value in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{where}[{index}]", value) for index, value in enumerate(item))
        elif isinstance(item, argparse.Namespace):
            stack.extend((f"{where}.{name}", value) for name, value in vars(item).items())


def _join(where: str, key: Any) -> str:
    """`g_ema.conv1.weight` for string keys, `x[3]` for others."""
    if isinstance(key, str):
        return f"{where}.{bounded_text(key, 60)}" if where else bounded_text(key, 60)
    return f"{where}[{bounded_repr(key, 40)}]"


def _read_torch(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            scan_torch_file(f, os.fstat(f.fileno()).st_size)
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except UnsafePickleError as error:
        raise CheckpointError(f"{path}: refused to load: {error}") from None
    except pickle.UnpicklingError as error:
        # torch's message is long; its first line names the offending global.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unsupported content"
        if "__main__" in str(error):
            raise CheckpointError(
                f"{path}: holds a pickled Python object (e.g. torch.save(netG)), which would run code to load; "
                "re-save it as a state dict: torch.save(netG.state_dict(), path)"
            ) from None
        raise CheckpointError(f"{path}: refused to load (it needs code to run): {first_line}") from None
    except (RuntimeError, EOFError, ValueError, OverflowError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path}: corrupt or truncated torch file ({error})".splitlines()[0]) from None


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
            RuntimeError, OverflowError) as error:
        # Whatever the C unpickler or torch raise on a truncated or garbled stream.
        raise CheckpointError(f"{path}: corrupt or truncated pickle ({type(error).__name__}: {error})".splitlines()[0]) from None
