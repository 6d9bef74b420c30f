"""Stopping: SIGTERM stops a run like Ctrl-C, and workers never outlive their coordinator.

- The coordinator (`sigterm_as_interrupt`, around `run`) turns SIGTERM into
  `Terminated`, a `KeyboardInterrupt`, so the clean-up of Ctrl-C runs: the
  pool interrupts its workers, unfinished files are removed, the lock is
  released, and the CLI exits 143 (128 + SIGTERM).
- A worker (`stop_on_signals`) turns its first SIGINT or SIGTERM into a
  `KeyboardInterrupt` and ignores later ones, so that a second signal (Ctrl-C
  reaches the whole process group, and the coordinator forwards one too)
  cannot cut its clean-up short.
- A lifeline (`watch_lifeline`): the coordinator holds the write end of a
  pipe it never writes to, each worker the read end and a thread blocked on
  it. When the coordinator is gone, however it died (SIGKILL included), the
  read ends at EOF and the worker interrupts itself; one that is still alive
  `LIFELINE_GRACE_S` later exits at once. (`PR_SET_PDEATHSIG` would not do:
  a worker's parent is the fork server, which lives as long as any worker.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Iterator

__all__ = ["Terminated", "sigterm_as_interrupt", "stop_on_signals", "watch_lifeline", "LIFELINE_GRACE_S"]

LIFELINE_GRACE_S = 10.0  # time for an orphaned worker to remove its unfinished files before it exits hard
EXIT_ORPHANED = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as for Ctrl-C."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, the first SIGTERM raises `Terminated` (later ones are ignored while it unwinds)."""

    def terminate(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_on_signals() -> None:
    """In a worker: the first SIGINT or SIGTERM raises KeyboardInterrupt; any later one is ignored."""

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt()

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def watch_lifeline(lifeline: Connection) -> None:
    """In a worker: interrupt this process when the coordinator, which holds the other end of `lifeline`, is gone."""

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv_bytes()  # the coordinator never writes: this returns only at EOF
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(LIFELINE_GRACE_S)
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="sefa-render-lifeline", daemon=True).start()
