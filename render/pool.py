"""The worker pool: a coordinator hands out work units to one worker process per device.

Scheduling policy
- Units are handed out one at a time, in plan order, to whichever worker is
  idle (a queue, not static slices), so a slow unit never holds up the rest.
- A unit that raises is put at the back of the queue and tried again, up to
  `retries` more times; then it is reported as failed with its error, and
  the other units still run. A unit that ran out of memory (MemoryError,
  torch's out-of-memory errors) is not tried again: it would fail the same way.
- A worker process that dies (killed, out of memory) is replaced; the unit it
  held counts one attempt and goes back in the queue.
- Workers never raise across the process boundary: they report
  `("failed", unit_id, error, traceback)` and carry on (dask `local.py` does
  the same). They load each model they need once and keep it.
- `workers=[]` runs the same policy in the coordinator's own process
  (`--workers 0`), which tests and debugging use.
- Stopping: when the coordinator stops early (Ctrl-C, SIGTERM, an error) it
  interrupts its workers (SIGINT), which abandon their units, their sinks
  removing unfinished files. A worker whose coordinator died interrupts
  itself (the lifeline, `render/interrupts.py`).
- With a `cluster` (`--backend ray`, `render/ray_backend.py`) the workers
  are Ray actors, handed units by the same bookkeeping; they run the same
  worker code (`start_worker`, `attempt_unit`).
- A `feed` (the job queue's worker) is asked for one more unit whenever the
  queue runs dry, so units can be claimed one at a time from outside; the
  run ends when the feed has none and no unit is in flight.

Coordinator state, owned and mutated only by the coordinator (`Bookkeeping`):
    queue:     deque[Unit]        units waiting to be handed out, in order
    attempts:  {unit_id: int}     how often each unit was started
    finished:  {unit_id: result}  committed units (the caller journals them)
    failed:    {unit_id: Failure} units that used up their attempts
    idle_deaths: int              workers that died before taking a unit
and, in `_run_in_processes`:
    workers:   {index: (process, connection)}
    in_flight: {index: Unit}      what each busy worker renders
    idle:      {index}            workers waiting for a unit

Message protocol over each worker's pipe: the coordinator sends a `Unit`, or
None to stop; the worker answers `("ready",)` once, then `("progress", n)`
while it renders and `("finished", unit_id, result)` or
`("failed", unit_id, error, traceback)` per unit.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import multiprocessing
import os
import signal
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Protocol

from render import faults
from render.devices import WorkerSlot, enter_slot
from render.errors import RenderError
from render.execute import RenderContext, execute_unit
from render.interrupts import stop_on_signals, watch_lifeline
from render.models.base import Generator
from render.plan import Unit

__all__ = ["Bookkeeping", "Cluster", "Failure", "Observer", "PoolResult", "run_units", "GeneratorCache", "start_worker",
           "attempt_unit"]

WORKER_STOP_TIMEOUT_S = 10.0
IN_PROCESS_CPU = WorkerSlot("cpu", 1)


@dataclass(frozen=True)
class Failure:
    unit_id: str
    error: str        # one line: "ExceptionType: message"
    traceback: str
    attempts: int


@dataclass(frozen=True)
class PoolResult:
    finished: dict[str, dict[str, Any]]
    failed: dict[str, Failure]


class Observer(Protocol):
    """What the pool tells its caller; the runner's progress bar and journal implement it."""

    def progress(self, unit: Unit, steps: int) -> None: ...
    def unit_finished(self, unit: Unit, result: dict[str, Any]) -> None: ...
    def unit_failed(self, unit: Unit, failure: Failure, will_retry: bool) -> None: ...


class Cluster(Protocol):
    """Workers elsewhere (`render/ray_backend.py`): they render what `book` hands out, with this pool's policy."""

    def plan_workers(self, device: str, workers: int | None) -> list[WorkerSlot]: ...
    def run(self, context: RenderContext, book: "Bookkeeping", observer: Observer, slots: list[WorkerSlot]) -> None: ...


class GeneratorCache:
    """A worker's generators: each model loaded once, on the worker's device, and kept."""

    def __init__(self, context: RenderContext, device: str, preloaded: dict[str, Generator] | None = None):
        self.context, self.device = context, device
        self.generators = dict(preloaded or {})

    def for_unit(self, unit: Unit) -> Generator:
        key = self.context.job.spec.directions[unit.direction_set].model
        if key not in self.generators:
            self.generators[key] = self.context.models[key].load()
        generator = self.generators[key]
        if str(generator.device) != self.device:
            self.generators[key] = generator = generator.to(self.device)
        return generator


class Bookkeeping:
    """Which units wait, how often each was tried, what finished and what failed."""

    def __init__(self, units: list[Unit], retries: int, feed: Callable[[], Unit | None] | None = None):
        self.queue: collections.deque[Unit] = collections.deque(units)
        self.retries = retries
        self.feed = feed
        self.attempts: dict[str, int] = {}
        self.finished: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, Failure] = {}
        self.idle_deaths = 0  # workers that died before taking a unit

    def waiting(self) -> bool:
        """Whether a unit waits to be handed out (asking the feed for one when the queue is empty)."""
        if not self.queue and self.feed is not None and (unit := self.feed()) is not None:
            self.queue.append(unit)
        return bool(self.queue)

    def next_unit(self) -> Unit | None:
        if not self.waiting():
            return None
        unit = self.queue.popleft()
        self.attempts[unit.unit_id] = self.attempts.get(unit.unit_id, 0) + 1
        return unit

    def assign(self, idle: set[int]) -> Iterator[tuple[int, Unit]]:
        """Pair idle workers (lowest index first) with waiting units; mutates `idle`: a worker yielded is busy."""
        for index in sorted(idle):
            unit = self.next_unit()
            if unit is None:
                return
            idle.discard(index)
            yield index, unit

    def settle(self, unit: Unit, message: tuple, observer: Observer) -> None:
        """Record a worker's answer for `unit` (`attempt_unit`'s message): finished, or failed (maybe to retry)."""
        if message[0] == "finished":
            self.finish(unit, message[2], observer)
        else:
            self.fail(unit, message[2], message[3], observer)

    def died_idle(self, workers: int, error: str) -> None:
        """Count a worker that died before taking a unit (no unit lost); more than three per worker mean they cannot
        start: RenderError(`error`)."""
        self.idle_deaths += 1
        if self.idle_deaths > 3 * workers:
            raise RenderError(error) from None  # raised while handling the death: its own error is in `error`

    def finish(self, unit: Unit, result: dict[str, Any], observer: Observer) -> None:
        self.finished[unit.unit_id] = result
        observer.unit_finished(unit, result)

    def fail(self, unit: Unit, error: str, trace: str, observer: Observer) -> None:
        """Mutates: requeue `unit` if it has attempts left, else record it as failed."""
        attempts = self.attempts[unit.unit_id]
        failure = Failure(unit.unit_id, error, trace, attempts)
        will_retry = attempts <= self.retries and not _out_of_memory(error)
        if will_retry:
            self.queue.append(unit)
        else:
            self.failed[unit.unit_id] = failure
        observer.unit_failed(unit, failure, will_retry)

    def result(self) -> PoolResult:
        return PoolResult(self.finished, self.failed)


def run_units(context: RenderContext, units: list[Unit], slots: list[WorkerSlot], observer: Observer, *,
              retries: int, in_process: WorkerSlot = IN_PROCESS_CPU,
              preloaded: dict[str, Generator] | None = None, feed: Callable[[], Unit | None] | None = None,
              cluster: Cluster | None = None) -> PoolResult:
    """Render `units`, then what `feed` hands out, on the worker slots (none: in this process, as `in_process`),
    which are processes here or, given a `cluster`, its workers; return what finished and failed."""
    book = Bookkeeping(units, retries, feed)
    if not slots:
        keep_freed_memory()
        restore = enter_slot(in_process)
        try:
            _run_in_process(context, book, observer, GeneratorCache(context, in_process.device, preloaded))
        finally:
            restore()
    elif feed is not None or units:
        run = _run_in_processes if cluster is None else cluster.run
        run(context, book, observer, slots if feed is not None else slots[:len(units)])  # no idle workers for small jobs
    return book.result()


def _out_of_memory(error: str) -> bool:
    """Whether a failure (as `_describe` wrote it) was a lack of memory: the same unit at the same size would fail again."""
    return error.startswith(("MemoryError", "OutOfMemoryError")) or "can't allocate memory" in error


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]


def _run_in_process(context: RenderContext, book: Bookkeeping, observer: Observer, generators: GeneratorCache) -> None:
    while (unit := book.next_unit()) is not None:
        def progress(steps: int, unit: Unit = unit) -> None:
            observer.progress(unit, steps)
            faults.after_progress(unit)  # with no workers, a "kill" fault kills the run itself

        book.settle(unit, attempt_unit(context, unit, generators, progress), observer)


def _run_in_processes(context: RenderContext, book: Bookkeeping, observer: Observer, slots: list[WorkerSlot]) -> None:
    spawn = multiprocessing.get_context("forkserver")  # see render/forkserver.py
    workers: dict[int, tuple[multiprocessing.process.BaseProcess, Connection]] = {}
    in_flight: dict[int, Unit] = {}
    idle: set[int] = set()
    lifeline, lifeline_held = spawn.Pipe(duplex=False)  # we hold the write end until the workers are gone

    def start(index: int) -> None:
        ours, theirs = spawn.Pipe()
        process = spawn.Process(target=_worker_main, args=(slots[index], context, theirs, lifeline), daemon=True,
                                name=f"sefa-render-worker-{index}")
        process.start()
        theirs.close()
        workers[index] = (process, ours)

    def handle(index: int, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            idle.add(index)
        elif kind == "progress":
            observer.progress(in_flight[index], message[1])
        else:
            unit = in_flight.pop(index)
            assert unit.unit_id == message[1], "a worker reported on a unit it was not given"
            book.settle(unit, message, observer)
            idle.add(index)

    def replace_dead(index: int) -> None:
        process, connection = workers.pop(index)
        while connection.poll():  # what it sent before dying still counts
            try:
                handle(index, connection.recv())
            except EOFError:
                break
        connection.close()
        process.join()
        idle.discard(index)
        unit = in_flight.pop(index, None)
        if unit is not None:
            book.fail(unit, f"worker process died (exit code {process.exitcode})", "", observer)
        else:
            book.died_idle(len(slots),
                           f"worker processes keep dying before taking work (last exit code {process.exitcode})")
        start(index)

    try:
        for index in range(len(slots)):
            start(index)
        while in_flight or book.waiting():  # a feed is asked ahead only when nothing is in flight
            for index, unit in book.assign(idle):
                workers[index][1].send(unit)
                in_flight[index] = unit
            sources = {connection: index for index, (_, connection) in workers.items()}
            sentinels = {process.sentinel: index for index, (process, _) in workers.items()}
            for ready in wait([*sources, *sentinels]):
                if ready in sources and sources[ready] in workers:
                    try:
                        handle(sources[ready], ready.recv())
                    except EOFError:
                        pass  # its sentinel reports the death
                elif ready in sentinels and sentinels[ready] in workers:
                    replace_dead(sentinels[ready])
    except BaseException:
        _interrupt(workers)  # Ctrl-C, SIGTERM or an error here: workers abandon their units
        raise
    finally:
        _stop(workers)
        lifeline_held.close()
        lifeline.close()


def _interrupt(workers: dict[int, tuple[multiprocessing.process.BaseProcess, Connection]]) -> None:
    for process, _ in workers.values():
        with contextlib.suppress(ProcessLookupError, TypeError):  # TypeError: not started (pid None)
            os.kill(process.pid, signal.SIGINT)


def _stop(workers: dict[int, tuple[multiprocessing.process.BaseProcess, Connection]]) -> None:
    """Ask every worker to stop; kill those that do not within the timeout (an interrupted one ignores signals)."""
    for _, connection in workers.values():
        try:
            connection.send(None)
        except (BrokenPipeError, OSError):
            pass
    for process, connection in workers.values():
        process.join(WORKER_STOP_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            process.join()
        connection.close()


def keep_freed_memory() -> None:
    """Ask glibc to keep freed large blocks for reuse instead of returning them to the OS.

    StyleGAN2's modulated convolutions allocate per-sample weights of megabytes
    for every layer of every batch. With glibc's default thresholds each such
    block is mapped, zero-filled by the kernel and unmapped again; that cost a
    quarter of the render time of the benchmark's StyleGAN2 (README). The
    same blocks are reused batch after batch, so memory stays flat.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's ceiling for this setting
    libc.mallopt(m_trim_threshold, 1 << 30)


def start_worker(slot: WorkerSlot, context: RenderContext) -> GeneratorCache:
    """Set up this process as a worker for `slot`; return its (empty) generator cache."""
    keep_freed_memory()
    enter_slot(slot)
    return GeneratorCache(context, slot.device)


def attempt_unit(context: RenderContext, unit: Unit, generators: GeneratorCache,
                 progress: Callable[[int], None]) -> tuple:
    """Render one unit in a worker; never raises: ("finished", unit_id, result) or
    ("failed", unit_id, error, traceback), the messages the coordinator gets."""
    try:
        faults.before_unit(unit)
        result = execute_unit(context, unit, generators.for_unit(unit), progress)
    except Exception as error:
        return ("failed", unit.unit_id, _describe(error), traceback.format_exc())
    return ("finished", unit.unit_id, result)


def _worker_main(slot: WorkerSlot, context: RenderContext, connection: Connection, lifeline: Connection) -> None:
    """A worker process: render the units the coordinator sends until told to stop."""
    try:
        stop_on_signals()
        watch_lifeline(lifeline)
        generators = start_worker(slot, context)
        connection.send(("ready",))
        while True:
            try:
                unit = connection.recv()
            except EOFError:
                return  # the coordinator is gone
            if unit is None:
                return

            def progress(steps: int, unit: Unit = unit) -> None:
                connection.send(("progress", steps))
                faults.after_progress(unit)

            connection.send(attempt_unit(context, unit, generators, progress))
    except (KeyboardInterrupt, BrokenPipeError):
        return  # Ctrl-C or a vanished coordinator: the sinks already removed any unfinished file
