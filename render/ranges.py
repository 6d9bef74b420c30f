"""The index syntax shared by seeds, layers and direction components.

NVIDIA-style lists and inclusive ranges: `"0-7,12"` is nine numbers. Layers and
components also accept `"all"` and open ranges such as `"6-"` (6 to the last),
which are resolved once the model's size is known. Values may also be given as
an int or a list of ints (and range strings).

Parsers raise `ValueError` with a message meant for the user; the spec layer
adds the file and field path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

__all__ = ["parse_seeds", "IndexSelection", "parse_selection", "format_indices", "MAX_SEED"]

MAX_SEED = 2**32 - 1  # np.random.RandomState accepts 0 … 2**32 − 1
MAX_SEEDS = 1_000_000  # per list; why: render/limits.py


def _items(value: object) -> list[str]:
    """Split an int, a comma-separated string or a list into item strings."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, a range like '0-7,12' or a list, got {value!r}")
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = []
        for element in value:
            items += _items(element)
        return items
    else:
        raise ValueError(f"expected a number, a range like '0-7,12' or a list, got {value!r}")
    if not value.strip() or any(not item for item in items):
        raise ValueError(f"expected a number, a range like '0-7,12' or a list, got {value!r}")
    return items


def _span(item: str, *, open_end: bool) -> tuple[int, int | None]:
    """'3' → (3, 3); '2-5' → (2, 5); '6-' → (6, None) when open ends are allowed."""
    start_text, dash, stop_text = item.partition("-")
    try:
        start = int(start_text)
        if not dash:
            return start, start
        if not stop_text and open_end:
            return start, None
        stop = int(stop_text)
    except ValueError:
        hint = ", 'a-b' or 'a-'" if open_end else " or 'a-b'"
        raise ValueError(f"bad item {item!r}: expected a non-negative number{hint}") from None
    if start < 0 or stop < start:
        raise ValueError(f"bad range {item!r}: expected 0 ≤ start ≤ stop")
    return start, stop


def parse_seeds(value: object, max_count: int = MAX_SEEDS) -> tuple[int, ...]:
    """Seeds from `7`, `"0-7,12"` or `[0, 1, "4-5"]`, in the order given; at most `max_count` of them.

    >>> parse_seeds("0-3,12")
    (0, 1, 2, 3, 12)
    >>> parse_seeds([5, "1-2"])
    (5, 1, 2)
    >>> parse_seeds("3,3")
    Traceback (most recent call last):
    ValueError: seed 3 is listed twice
    >>> parse_seeds("0-4294967295")
    Traceback (most recent call last):
    ValueError: 4,294,967,296 seeds or more; a seed list holds at most 1,000,000
    """
    spans = []
    count = 0
    for item in _items(value):
        start, stop = _span(item, open_end=False)
        assert stop is not None
        if stop > MAX_SEED:
            raise ValueError(f"seed {stop} is out of range (seeds are 0 … {MAX_SEED})")
        count += stop - start + 1
        if count > max_count:  # counted before any list is built: "0-4294967295" costs nothing
            raise ValueError(f"{count:,} seeds or more; a seed list holds at most {max_count:,}")
        spans.append(range(start, stop + 1))
    seeds = [seed for span in spans for seed in span]
    seen: set[int] = set()
    for seed in seeds:
        if seed in seen:
            raise ValueError(f"seed {seed} is listed twice")
        seen.add(seed)
    return tuple(seeds)


@dataclass(frozen=True)
class IndexSelection:
    """Indices picked by `all`, `2-5`, `6-`, `0,3` …, resolved against a size later."""

    spans: tuple[tuple[int, int | None], ...] | None  # None means all

    def resolve(self, size: int, what: str = "index", owner: str = "the model") -> tuple[int, ...]:
        """The chosen indices in ascending order, each below `size`.

        >>> parse_selection("6-").resolve(8)
        (6, 7)
        >>> parse_selection("0-1,4").resolve(3, "layer")
        Traceback (most recent call last):
        ValueError: layer 4 is out of range: the model has 3 (0-2)
        """
        if self.spans is None:
            return tuple(range(size))
        chosen: set[int] = set()
        for start, stop in self.spans:
            last = size - 1 if stop is None else stop
            if max(start, last) >= size:
                raise ValueError(f"{what} {max(start, size)} is out of range: {owner} has {size} (0-{size - 1})")
            chosen.update(range(start, last + 1))
        return tuple(sorted(chosen))

    def __str__(self) -> str:
        if self.spans is None:
            return "all"
        return ",".join(
            str(start) if stop == start else f"{start}-{'' if stop is None else stop}" for start, stop in self.spans
        )


def parse_selection(value: object) -> IndexSelection:
    """An `IndexSelection` from `"all"`, an int, a range string or a list.

    >>> str(parse_selection([0, "2-5", "6-"]))
    '0,2-5,6-'
    >>> parse_selection("all").resolve(3)
    (0, 1, 2)
    """
    if isinstance(value, IndexSelection):
        return value
    if isinstance(value, str) and value.strip() == "all":
        return IndexSelection(None)
    return IndexSelection(tuple(_span(item, open_end=True) for item in _items(value)))


def format_indices(indices: Iterable[int]) -> str:
    """Compact text for sorted indices, e.g. for file names and labels.

    >>> format_indices([0, 1, 2, 5, 7, 8])
    '0-2,5,7-8'
    """
    parts: list[tuple[int, int]] = []
    for index in sorted(indices):
        if parts and parts[-1][1] == index - 1:
            parts[-1] = (parts[-1][0], index)
        else:
            parts.append((index, index))
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)
