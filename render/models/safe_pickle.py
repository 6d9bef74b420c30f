"""An allow-list unpickler for NVIDIA network pickles: data in, never code.

NVIDIA's stylegan2-ada-pytorch and stylegan3 repositories save networks with
`torch_utils.persistence`: every network object pickles as a call
`_reconstruct_persistent_obj(meta)`, where `meta` holds the source code of the
defining module (`module_src`), the class name and the object's `__dict__`.
Their loader `exec`s that source; a plain `pickle.load` would too, and so would
`torch.load(weights_only=False)`, which unpickles the whole file while looking
for its magic number. A pickle can name any importable callable, so all of
those run whatever the file says.

`load_pickle` reads such files with `pickle.Unpickler.find_class` restricted to
an exact allow-list of the globals that real snapshots contain (protocols 2–5,
numpy 1.x `numpy.core` and 2.x `numpy._core` spellings). Each allowed global is
replaced by a small function of ours that checks its arguments:

- `_reconstruct_persistent_obj` returns an inert `PersistentRecord`: class
  name, tensors, child records and plain attributes. `module_src` is hashed for
  diagnostics and otherwise ignored; `torch_utils` and `dnnlib` are never
  imported.
- Tensor storages are nested legacy `torch.save` blobs, read by torch's own
  `weights_only` unpickler on the CPU.
- numpy scalars and arrays must have a boolean, integer or float dtype.

After unpickling, the whole object tree is walked once more to check that it
holds nothing but plain data, so a value that slipped past a constructor check
(e.g. a dtype changed by a later BUILD opcode) is still refused.

Before any of that, `pickle_scan.scan` replays the file's opcodes without
building anything and refuses a pickle whose values would expand beyond a
bound proportional to the file's size (shared references counted each time),
nest too deep, or hash huge keys; the nested storage blobs are scanned the same
way. So loading takes time and memory linear in the file's size, and error
messages quote values from the file only through `bounded_repr`.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import hashlib
import io
import math
import pickle
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterator, Mapping

import numpy as np
import torch

from render.models.pickle_scan import BoundedReader, UnsafePickleError, scan, scan_torch_file
from render.untrusted import bounded_repr

__all__ = ["PersistentRecord", "EasyDict", "UnsafePickleError", "load_pickle"]

# The only persistence format version that ever existed in NVIDIA's repositories.
_PERSISTENCE_VERSION = 6
# Bounds on a record tree: a StyleGAN2 generator has about 100 records, 5 deep.
# A crafted pickle could share one child between many parents (the memo makes
# that free), so that walking the tree would take exponential time.
_MAX_TREE_SIZE = 100_000
_MAX_TREE_DEPTH = 64
# numpy dtype kinds a network pickle may hold: bool, signed, unsigned, float.
_ALLOWED_DTYPE_KINDS = frozenset("biuf")


class EasyDict(dict):
    """Stands in for `dnnlib.util.EasyDict` (a dict with attribute access) in `_init_kwargs`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state: Any) -> None:
        # Real EasyDicts pickle as NEWOBJ + SETITEMS; a BUILD opcode is not data we know.
        raise UnsafePickleError("a pickle tried to set attributes on an EasyDict")


@dataclass
class PersistentRecord:
    """What a `torch_utils.persistence` object holds, as plain data.

    The tree of records mirrors the original module tree: `children` are the
    `_modules`, in stored order, and `params`/`buffers` the tensors
    (`None` entries dropped). `attrs` are the public instance attributes
    (ints, floats, strings, numpy scalars and arrays); `init_kwargs` are the
    constructor arguments that were passed explicitly, which are not the
    effective hyper-parameters (defaults are missing) and serve diagnostics only.
    """

    class_name: str
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    children: dict[str, "PersistentRecord"] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    module_src_sha256: str = ""
    tree_size: int = field(default=1, repr=False)   # records in this tree, shared ones counted each time
    tree_depth: int = field(default=1, repr=False)

    def __setstate__(self, state: Any) -> None:
        # A BUILD opcode on a record could replace its children behind the size checks.
        raise UnsafePickleError("a pickle tried to modify a network record")

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Every tensor of the tree under its `nn.Module.state_dict()` name.

        Parameters before buffers before children, as torch orders them.
        """
        state = {prefix + name: tensor for name, tensor in self.params.items()}
        state.update({prefix + name: tensor for name, tensor in self.buffers.items()})
        for name, child in self.children.items():
            state.update(child.state_dict(f"{prefix}{name}."))
        return state


# ---------------------------------------------------------------------- allowed globals
def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, Mapping):
        raise UnsafePickleError(f"persistent object meta is a {type(meta).__name__}, not a dict")
    meta_type, version = meta.get("type"), meta.get("version")
    if type(meta_type) is not str or meta_type != "class":
        raise UnsafePickleError(f"persistent object type {bounded_repr(meta_type)} is not 'class'")
    if type(version) is not int or version != _PERSISTENCE_VERSION:
        raise UnsafePickleError(f"persistence format version {bounded_repr(version)} is not {_PERSISTENCE_VERSION}")
    class_name, state, module_src = meta.get("class_name"), meta.get("state"), meta.get("module_src")
    if not isinstance(class_name, str) or not isinstance(state, Mapping):
        raise UnsafePickleError("persistent object meta lacks a class_name string or a state dict")
    source_hash = hashlib.sha256(module_src.encode("utf-8", "replace")).hexdigest() if isinstance(module_src, str) else ""

    def entries(key: str, kind: type) -> dict[str, Any]:
        value = state.get(key)
        value = {} if value is None else value
        if not isinstance(value, Mapping):
            raise UnsafePickleError(f"{bounded_repr(class_name)}.{key} is a {type(value).__name__}, not a dict")
        for name, item in value.items():
            if not isinstance(name, str) or not (item is None or isinstance(item, kind)):
                raise UnsafePickleError(f"{bounded_repr(class_name)}.{key}[{bounded_repr(name)}] is a {type(item).__name__}, not a {kind.__name__}")
        return {name: item for name, item in value.items() if item is not None}

    children = entries("_modules", PersistentRecord)
    tree_size = 1 + sum(child.tree_size for child in children.values())
    tree_depth = 1 + max((child.tree_depth for child in children.values()), default=0)
    if tree_size > _MAX_TREE_SIZE or tree_depth > _MAX_TREE_DEPTH:
        raise UnsafePickleError(f"its network tree is implausibly large ({tree_size} modules, {tree_depth} deep)")
    init_kwargs = state.get("_init_kwargs")
    return PersistentRecord(
        class_name=class_name,
        params=entries("_parameters", torch.Tensor),
        buffers=entries("_buffers", torch.Tensor),
        children=children,
        # Private keys are nn.Module bookkeeping (hook dicts, which differ between
        # torch versions); `training` is always False in snapshots.
        attrs={k: v for k, v in state.items() if isinstance(k, str) and not k.startswith("_") and k != "training"},
        init_kwargs=dict(init_kwargs) if isinstance(init_kwargs, Mapping) else {},
        module_src_sha256=source_hash,
        tree_size=tree_size,
        tree_depth=tree_depth,
    )


@contextlib.contextmanager
def _quiet_typed_storage() -> Iterator[None]:
    """Silence torch's "TypedStorage is deprecated" warning: these files do store TypedStorages."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated")
        yield


def _load_from_bytes(blob: Any) -> torch.storage.TypedStorage:
    if not isinstance(blob, bytes):
        raise UnsafePickleError(f"a tensor storage is a {type(blob).__name__}, not bytes")
    try:
        scan_torch_file(io.BytesIO(blob), len(blob))
    except ValueError as error:
        raise UnsafePickleError(f"a tensor storage blob is corrupt ({error})") from None
    with _quiet_typed_storage():
        try:
            storage = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            first_line = (str(error).strip().splitlines() or ["unsupported content"])[0]
            raise UnsafePickleError(f"a tensor storage blob needs code to load: {first_line}") from None
        except (RuntimeError, EOFError, ValueError) as error:
            raise UnsafePickleError(f"a tensor storage blob is corrupt ({error})") from None
    if not isinstance(storage, torch.storage.TypedStorage):
        raise UnsafePickleError(f"a tensor storage blob holds a {type(storage).__name__}, not a storage")
    return storage


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    # Our own version of torch's rebuild: it refuses hooks and metadata, which a
    # snapshot never carries, instead of attaching them to the tensor.
    if not isinstance(storage, torch.storage.TypedStorage):
        raise UnsafePickleError(f"a tensor's storage is a {type(storage).__name__}")
    if not (_is_int_tuple((storage_offset,)) and _is_int_tuple(size) and _is_int_tuple(stride) and len(size) == len(stride)):
        raise UnsafePickleError("a tensor has a malformed offset, size or stride")
    if backward_hooks or metadata:
        raise UnsafePickleError("a tensor carries backward hooks or metadata")
    try:
        with _quiet_typed_storage():
            untyped, dtype = storage.untyped(), storage.dtype
        # set_ checks that size/stride/offset stay inside the storage.
        return torch.empty((0,), dtype=dtype).set_(untyped, storage_offset, size, stride)
    except RuntimeError as error:
        raise UnsafePickleError(f"a tensor does not fit its storage ({error})") from None


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None) -> torch.Tensor:
    # A Parameter becomes a plain tensor: requires_grad, hooks and Python state are dropped.
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"a parameter wraps a {type(data).__name__}, not a tensor")
    return data


def _is_int_tuple(value: Any) -> bool:
    """A tuple of sizes, strides or offsets: non-negative ints that fit in int64 (torch and numpy overflow otherwise)."""
    return isinstance(value, tuple) and len(value) <= 64 and all(type(item) is int and 0 <= item < 2**63 for item in value)


def _dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    if not isinstance(spec, str):
        raise UnsafePickleError(f"numpy dtype {bounded_repr(spec)} is not allowed")
    try:
        dtype = np.dtype(spec)
    except TypeError:
        raise UnsafePickleError(f"numpy dtype {bounded_repr(spec)} is not allowed") from None
    _check_dtype(dtype)
    return dtype


def _check_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _ALLOWED_DTYPE_KINDS or dtype.fields or dtype.subdtype:
        raise UnsafePickleError(f"numpy dtype {bounded_repr(dtype)} is not allowed (only bool, int, uint and float)")
    return dtype


def _scalar(dtype: Any, data: Any) -> np.generic:
    _check_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise UnsafePickleError(f"a numpy {dtype} scalar has malformed data")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


class _NdarrayMarker:
    """What `numpy.ndarray` resolves to: only `_reconstruct` accepts it, calling it fails."""


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
    if cls is not _NdarrayMarker or shape != (0,):
        raise UnsafePickleError("numpy array reconstruction with unexpected arguments")
    # An empty placeholder; the BUILD opcode that follows sets dtype, shape and data.
    # Those are checked after loading (`_check_inert`).
    return np.ndarray((0,), dtype=np.uint8)


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    _check_dtype(dtype)
    if not isinstance(buffer, (bytes, bytearray)) or not _is_int_tuple(shape) or order not in ("C", "F"):
        raise UnsafePickleError("numpy array data with unexpected arguments")
    count = math.prod(shape)
    if len(buffer) != count * dtype.itemsize:
        raise UnsafePickleError("numpy array data does not match its shape")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # Protocol 2 writes bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode with unexpected arguments")
    return codecs.encode(text, "latin1")


_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("_codecs", "encode"): _codecs_encode,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("numpy", "dtype"): _dtype,
    ("numpy", "ndarray"): _NdarrayMarker,
}
for _numpy_core in ("numpy.core", "numpy._core"):  # numpy 1.x and 2.x writers
    _ALLOWED[(f"{_numpy_core}.multiarray", "scalar")] = _scalar
    _ALLOWED[(f"{_numpy_core}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_numpy_core}.numeric", "_frombuffer")] = _frombuffer


class _RestrictedUnpickler(pickle.Unpickler):
    # CPython resolves every global (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT) through
    # find_class, so this one override guards them all.
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"it references {bounded_repr(f'{module}.{name}')}, which a network pickle never needs") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("it uses persistent ids, which a network pickle never does")


# ---------------------------------------------------------------------- after loading
_PLAIN_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.Tensor)


def _check_inert(root: Any) -> None:
    """Raise unless `root` is a tree of plain containers, scalars, tensors, allowed arrays and records."""
    stack, seen = [root], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, _PLAIN_LEAVES):
            continue
        if isinstance(item, (np.ndarray, np.generic)):
            _check_dtype(item.dtype)
        elif isinstance(item, np.dtype):
            _check_dtype(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif type(item) is PersistentRecord:
            stack.extend((item.params, item.buffers, item.children, item.attrs, item.init_kwargs))
        else:
            raise UnsafePickleError(f"it holds a {type(item).__name__} object")


def load_pickle(file: BinaryIO) -> Any:
    """Unpickle `file` using only the allow-listed globals; never runs code from it.

    Its opcodes are scanned first (`pickle_scan.scan`), so what it builds is
    bounded by the file's size before anything is built.

    Raises:
        UnsafePickleError: a global outside the allow-list, malformed persistence
            data, a value that is not plain data, or values out of bounds.
        pickle.UnpicklingError, EOFError, ValueError, …: a truncated or corrupt file.
    """
    start, end = file.tell(), file.seek(0, io.SEEK_END)
    file.seek(start)
    scan(BoundedReader(file, end), end - start)
    file.seek(start)
    content = _RestrictedUnpickler(BoundedReader(file, end)).load()
    _check_inert(content)
    return content
