"""Bounding what a pickle builds before anything unpickles it.

A pickle is a program for a stack machine, and a short one can describe a huge
value: `DUP TUPLE2` repeated n times (or `BINGET i TUPLE2 BINPUT i+1`, which
torch's `weights_only` unpickler accepts) builds a tuple DAG of n objects whose
expansion has 2ⁿ leaves. Unpickling it is cheap; hashing it (as a dict key),
comparing, printing or walking it is not, and a 200-byte file hangs whatever
touches it. Allow-listing globals does not help: tuples, lists and dicts are
always allowed.

`scan` reads the opcodes of one pickle (`pickletools.genops`, no object is
built) and replays them on a model of the stack and memo in which every value
is a node of a graph: constructors add a node with edges to what they consume,
`APPEND`/`SETITEM(S)`/`ADDITEMS`/`BUILD` add edges to an existing node, `DUP`
and memo reads push an existing node again. At `STOP` it computes, for every
node, the *expanded size* (1 + the length of its string or bytes, plus the
expanded sizes of its children, counted once per reference: a node reached
twice counts twice) and the depth, and refuses the pickle when

- the model holds more than `MAX_OBJECTS` objects,
- the expanded size of everything built exceeds `EXPANSION_PER_BYTE` × the
  file's size + `EXPANSION_ALLOWANCE`,
- any value nests deeper than `MAX_DEPTH`, or contains itself (a cycle),
- a dict key or set element (which the unpickler hashes) expands to more than
  `MAX_KEY_SIZE`,
- a memo index is `MAX_OBJECTS` or more (the C unpickler allocates an
  array as long as the largest index), or
- it uses out-of-band buffers (protocol 5), which no checkpoint needs.

The scan takes time and memory linear in the file's size, and a pickle that
passes builds, hashes and prints in time and memory linear in it too. What the
globals it names do with their arguments is the allow-list's business
(`safe_pickle`, torch's `weights_only`); the scan bounds only the containers.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from typing import Any, BinaryIO

__all__ = ["UnsafePickleError", "BoundedReader", "scan", "scan_torch_file", "size_budget",
           "MAX_OBJECTS", "MAX_DEPTH", "MAX_KEY_SIZE", "EXPANSION_PER_BYTE", "EXPANSION_ALLOWANCE"]

# A StyleGAN2 1024² network pickle builds about 10⁵ objects; a torch state dict a few dozen per tensor.
MAX_OBJECTS = 2_000_000
# Real checkpoints nest about 30 deep (pickle → G_ema → … → tensor → storage); Python's own
# recursion in repr and comparison starts to fail near 1000.
MAX_DEPTH = 200
# Keys are names (strings) and small tuples of ints.
MAX_KEY_SIZE = 10_000
# Memoized strings referenced again (state-dict keys, 'storage', 'cpu') make real files expand
# by a small factor; tensor data, the bulk of any checkpoint, never expands.
EXPANSION_PER_BYTE = 8
EXPANSION_ALLOWANCE = 4_000_000


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for something outside the allow-list, is malformed, or would build too much."""


def size_budget(file_size: int) -> int:
    """The largest total expanded size `scan` accepts from a file of `file_size` bytes."""
    return EXPANSION_PER_BYTE * file_size + EXPANSION_ALLOWANCE


class BoundedReader:
    """A read-only file view that never reads past `end`.

    Pickle length fields are data: `BINBYTES8` may declare 2⁶⁰ bytes, and both
    `pickletools` and the C unpickler call `read(n)` with it, which allocates n
    bytes before noticing the file is shorter. Clamping `n` to what is left
    turns that into an ordinary "truncated" error.
    """

    def __init__(self, file: BinaryIO, end: int):
        self._file, self._end = file, end

    def _left(self) -> int:
        return max(0, self._end - self._file.tell())

    def read(self, size: int = -1) -> bytes:
        left = self._left()
        return self._file.read(left if size is None or size < 0 else min(size, left))

    def readline(self, size: int = -1) -> bytes:
        left = self._left()
        return self._file.readline(left if size is None or size < 0 else min(size, left))

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)


# Opcodes that add to the object below their arguments instead of making a new one.
_MUTATORS = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"})
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})


class _Graph:
    """The scan's model: node i has `weights[i]` and edges `children[i]` (None for leaves)."""

    def __init__(self) -> None:
        self.weights: list[int] = []
        self.children: list[list[int] | None] = []
        self.hashed: list[int] = []  # nodes the unpickler hashes (dict keys, set elements)

    def add(self, weight: int, children: list[int]) -> int:
        if len(self.weights) >= MAX_OBJECTS:
            raise UnsafePickleError(f"it builds more than {MAX_OBJECTS:,} objects")
        self.weights.append(weight)
        self.children.append(children or None)
        return len(self.weights) - 1

    def link(self, parent: int, children: list[int]) -> None:
        existing = self.children[parent]
        if existing is None:
            self.children[parent] = list(children)
        else:
            existing.extend(children)

    def measure(self, budget: int) -> tuple[list[int], list[int]]:
        """Expanded sizes (capped at budget + 1) and depths of every node, children first.

        Iterative depth-first search; a grey node met again is a cycle.
        """
        count = len(self.weights)
        sizes, depths = [0] * count, [0] * count
        state = bytearray(count)  # 0 new, 1 on the path, 2 done
        for start in range(count):
            if state[start]:
                continue
            stack = [(start, 0)]
            state[start] = 1
            while stack:
                node, next_child = stack[-1]
                children = self.children[node] or ()
                if next_child < len(children):
                    stack[-1] = (node, next_child + 1)
                    child = children[next_child]
                    if state[child] == 1:
                        raise UnsafePickleError("it holds a value that contains itself")
                    if state[child] == 0:
                        state[child] = 1
                        stack.append((child, 0))
                    continue
                stack.pop()
                state[node] = 2
                sizes[node] = min(budget + 1, self.weights[node] + sum(sizes[child] for child in children))
                depths[node] = 1 + max((depths[child] for child in children), default=0)
        return sizes, depths


def scan(file: BinaryIO, file_size: int) -> None:
    """Replay one pickle's opcodes, from the file's position to its STOP, and refuse it when
    what it would build is out of bounds (see the module docstring).

    `file_size` sets the budget (`size_budget`): pass the size of the whole file the
    pickle came from. The file is left just after the STOP opcode.

    Raises:
        UnsafePickleError: the pickle is out of bounds.
        ValueError: the opcode stream is truncated or malformed (pickletools' message).
    """
    budget = size_budget(file_size)
    graph = _Graph()
    stack: list[int] = []
    marks: list[int] = []  # stack lengths at each MARK, as the C unpickler keeps them
    memo: dict[Any, int] = {}

    def pop(count: int) -> list[int]:
        floor = marks[-1] if marks else 0
        if len(stack) - count < floor:
            raise ValueError("pickle stack underflow")
        items = stack[len(stack) - count:]
        del stack[len(stack) - count:]
        return items

    for opcode, arg, position in pickletools.genops(file):
        name = opcode.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            if len(stack) != 1 or marks:
                raise ValueError("pickle stops with a malformed stack")
            break
        if name == "MARK":
            marks.append(len(stack))
            continue
        if name in ("NEXT_BUFFER", "READONLY_BUFFER"):
            raise UnsafePickleError("it uses out-of-band buffers, which a checkpoint never does")
        if name in _MEMO_PUTS or name == "MEMOIZE":
            if not stack:
                raise ValueError("memoizing from an empty stack")
            index = len(memo) if name == "MEMOIZE" else arg
            if not 0 <= index < MAX_OBJECTS:
                # The C unpickler sizes its memo array by the largest index: PUT 2²⁸ alone fills 2 GiB.
                raise UnsafePickleError(f"it memoizes at index {index:,} (writers number from 0; at most {MAX_OBJECTS:,})")
            memo[index] = stack[-1]
            continue
        if name in _MEMO_GETS:
            if arg not in memo:
                raise ValueError(f"memo key {arg!r} is missing")
            stack.append(memo[arg])
            continue
        if name == "DUP":
            stack.append(pop(1)[0])
            stack.append(stack[-1])
            continue
        if name == "POP" and marks and len(stack) == marks[-1]:
            marks.pop()  # the C unpickler pops the mark itself when nothing lies above it
            continue

        before = opcode.stack_before
        if pickletools.markobject in before:
            below = before.index(pickletools.markobject)
            if not marks:
                raise ValueError(f"{name} without a MARK")
            fence = marks.pop()
            if fence < below:
                raise ValueError("pickle stack underflow")
            items = stack[fence - below:]
            del stack[fence - below:]
        else:
            items = pop(len(before))

        if name in _MUTATORS:
            target, added = items[0], items[1:]
            graph.link(target, added)
            if name in ("SETITEM", "SETITEMS"):
                graph.hashed.extend(added[0::2])
            elif name == "ADDITEMS":
                graph.hashed.extend(added)
            stack.append(target)
        elif opcode.stack_after:
            weight = 1 + (len(arg) if isinstance(arg, (str, bytes, bytearray)) else 0)
            node = graph.add(weight, items)
            if name == "FROZENSET":
                graph.hashed.extend(items)
            stack.append(node)

    sizes, depths = graph.measure(budget)
    roots = [True] * len(sizes)
    for children in graph.children:
        for child in children or ():
            roots[child] = False
    total = sum(size for size, is_root in zip(sizes, roots) if is_root)
    if total > budget:
        raise UnsafePickleError(
            f"it would build values of more than {budget:,} elements from {file_size:,} bytes (shared references expand)"
        )
    deepest = max(depths, default=0)
    if deepest > MAX_DEPTH:
        raise UnsafePickleError(f"it nests values {deepest} deep (at most {MAX_DEPTH})")
    largest_key = max((sizes[key] for key in graph.hashed), default=0)
    if largest_key > MAX_KEY_SIZE:
        raise UnsafePickleError(f"it uses a dict key or set element of more than {MAX_KEY_SIZE:,} elements")


# torch.save's legacy format is five pickles (magic number, protocol version, system info, the
# object, the storage keys) followed by the raw storages.
_LEGACY_TORCH_PICKLES = 5


def scan_torch_file(file: BinaryIO, file_size: int) -> None:
    """`scan` every pickle of a `torch.save` file, zip or legacy, before `torch.load` sees it.

    torch's `weights_only` unpickler allows only plain containers and tensors, but
    builds whatever DAG of them a file describes (memo reads make sharing free). In a
    zip archive, members must be stored uncompressed, as `torch.save` writes them, so
    nothing inflates beyond the file's size.

    Raises:
        UnsafePickleError: a pickle out of bounds, or a compressed member.
        ValueError: a malformed pickle.
        zipfile.BadZipFile: a corrupt archive.
    """
    start = file.tell()
    if file.read(4) == b"PK\x03\x04":
        file.seek(start)
        with zipfile.ZipFile(file) as archive:
            pickles = []
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED or info.file_size > file_size:
                    raise UnsafePickleError(f"its archive member {info.filename[:80]!r} is compressed, which torch.save never does")
                if info.filename.endswith(".pkl"):
                    pickles.append(info)
            for info in pickles:
                with archive.open(info) as member:
                    scan(member, file_size)
        return
    file.seek(start)
    reader = BoundedReader(file, start + file_size)
    for _ in range(_LEGACY_TORCH_PICKLES):
        scan(reader, file_size)
