"""Quoting values that come from untrusted files in error messages.

`repr` of a value read from a checkpoint can cost anything: a shared tuple DAG
of a few hundred bytes has 2⁴⁰ leaves, a string may be megabytes long, and
`repr` of a 10⁶-digit int is quadratic. Every message that shows such a value
goes through `bounded_repr`, which looks at a bounded number of elements and
returns a bounded number of characters, whatever it is given.
"""

from __future__ import annotations

import reprlib
from typing import Any

import numpy as np

__all__ = ["bounded_repr", "bounded_text"]

MAX_CHARS = 80
_PLAIN_SCALARS = (type(None), bool, float, complex)


class _BoundedRepr(reprlib.Repr):
    """reprlib with small limits: at most 4 items per container and 3 levels, so at most 4³ elements are visited."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxtuple = self.maxlist = self.maxarray = self.maxdict = self.maxset = self.maxfrozenset = self.maxdeque = 4
        self.maxstring = self.maxother = 40
        self.maxlong = 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:
            return f"<{x.bit_length()}-bit int>"
        return super().repr_int(x, level)

    def repr_instance(self, x: Any, level: int) -> str:
        # Anything that is not a builtin container, string or number is named, never asked
        # for its repr: that could walk a whole tree (a record, a tensor's storage).
        if isinstance(x, _PLAIN_SCALARS):
            return repr(x)
        if isinstance(x, np.generic) and x.dtype.kind in "biuf":
            return self.repr1(x.item(), level)
        if isinstance(x, np.dtype):  # linear in its fields, and cut to maxother
            return reprlib.Repr.repr_instance(self, x, level)
        shape = getattr(x, "shape", None)
        if isinstance(shape, tuple) and len(shape) <= 8 and all(type(d) is int for d in shape):
            return f"<{type(x).__name__} of shape {tuple(shape)}>"
        return f"<{type(x).__name__}>"


_REPR = _BoundedRepr()


def bounded_repr(value: Any, max_chars: int = MAX_CHARS) -> str:
    """`repr(value)` shortened: visits a bounded number of elements, returns at most `max_chars` characters.

    >>> bounded_repr("x" * 1000)
    "'xxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxx'"
    >>> t = (1,)
    >>> for _ in range(60): t = (t, t)
    >>> bounded_repr(t)
    '((((...), (...)), ((...), (...))), (((...), (...)), ((...), (...))))'
    >>> bounded_repr(10**5000)
    '<16610-bit int>'
    """
    text = _REPR.repr(value)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def bounded_text(text: str, max_chars: int = 40) -> str:
    """A name from a file, unquoted, with control characters escaped and at most `max_chars` characters.

    >>> bounded_text("b4\\nconv" + "x" * 100, 12)
    'b4\\\\nconvxxx…'
    """
    escaped = text[: max_chars + 1].encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= max_chars else escaped[: max_chars - 1] + "…"
