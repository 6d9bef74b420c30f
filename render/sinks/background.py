"""A writer thread, so the generator keeps working while frames and images are written.

Encoding (PNG compression, piping frames to ffmpeg) releases the GIL, so
on one thread it overlaps with the next batch's synthesis: on a GPU the
device stays busy, on a CPU the gaps between the two are filled. Jobs run in
submission order. At most `max_pending` jobs wait; `submit` blocks beyond
that, which keeps memory flat however long the video.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Callable

__all__ = ["BackgroundWriter"]


class BackgroundWriter:
    """Context manager: `submit(fn, *args)` runs fn on the writer thread; errors surface in the caller."""

    def __init__(self, max_pending: int = 2):
        self._slots = threading.BoundedSemaphore(max_pending)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sefa-render-writer")
        self._futures: list[Future] = []
        self._cancelled = False

    def __enter__(self) -> "BackgroundWriter":
        return self

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._raise_failures()
        self._slots.acquire()
        future = self._executor.submit(self._run, fn, *args)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _run(self, fn: Callable[..., Any], *args: Any) -> None:
        if not self._cancelled:
            fn(*args)

    def _raise_failures(self) -> None:
        pending = []
        for future in self._futures:
            if future.done():
                future.result()  # re-raises the writer thread's exception here
            else:
                pending.append(future)
        self._futures = pending

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._cancelled = True  # waiting jobs are skipped; the one running finishes
        self._executor.shutdown(wait=True)
        if exc_type is None:
            self._raise_failures()
