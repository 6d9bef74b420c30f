"""`--backend ray`: the pool's units rendered by Ray actors, on a cluster or a local Ray instance.

Only the workers change. The coordinator (`run` or the queue's worker) plans,
hands out units with the pool's `Bookkeeping` (retries, a feed), journals
and writes the manifest exactly as with local worker processes; an actor
runs the pool's own worker code (`start_worker`, `attempt_unit`), so the
bytes are those of the local pool.

- Actors: one per worker slot. On a cluster with GPUs, one per GPU
  (`num_gpus=1`; Ray sets each actor's CUDA_VISIBLE_DEVICES, so it renders
  on its "cuda:0"); otherwise one per CPU (`num_cpus=1`, one torch thread,
  like a local CPU worker). `--workers N` asks for N actors; more than the
  cluster has share its GPUs or CPUs, as local workers do. Each actor loads
  a model once and keeps it for the run.
- Units go one at a time to whichever actor is idle (a `ray.wait` loop). An
  actor writes into the job folder, which every node must see at the same
  path (a shared filesystem), and returns only the unit's small result
  (file names, the manifest entry): frames never enter the object store.
- An actor that dies (killed, out of memory, its node lost) costs its unit
  one attempt; the unit goes back in the queue (units are idempotent) and a
  fresh actor takes the slot. When the driver dies its actors die with it
  (Ray's ownership); running the job again resumes from the journal, and
  removes the files the killed actors left unfinished.
- Stopping early (Ctrl-C, SIGTERM, an error in the driver): busy actors
  abandon their units at their next progress report, their sinks removing
  unfinished files, as local workers do; then every actor is killed.
- Progress: the driver asks each busy actor how far it got (a second
  concurrency group, so the question is answered while the actor renders).

Where Ray runs: `--address ADDR` or RAY_ADDRESS joins a running cluster
(`auto`: the one `ray start` started on this machine); otherwise a new local
instance is started for the run (one CPU per worker, a
100 MB object store, no dashboard) and stopped after it. A process that has
already called `ray.init` (the tests) keeps its connection.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import logging
import os
import signal
import socket
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterator

import torch

from render import faults
from render.devices import CPU_THREADS_PER_WORKER, WorkerSlot, available_cores
from render.errors import RenderError, SpecError
from render.execute import RenderContext
from render.plan import Unit
from render.pool import Bookkeeping, GeneratorCache, Observer, attempt_unit, start_worker

__all__ = ["RayCluster", "ray_cluster", "import_ray", "INSTALL_HINT"]

INSTALL_HINT = "the Ray backend needs Ray: pip install 'sefa-render[ray]'"
LOCAL_OBJECT_STORE_BYTES = 100 * 2**20  # results are a few kB; Ray's default is 30 % of RAM
GPU_DEVICE = "cuda:0"  # an actor's one GPU, as torch numbers what CUDA_VISIBLE_DEVICES leaves visible
PROGRESS_GROUP = "progress"
POLL_S = 1.0           # how long the driver waits for a result before asking busy actors for progress
POLL_TIMEOUT_S = 5.0   # an actor that does not answer by then (a lost node) is asked again later
CONNECT_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0  # for busy actors to abandon their units when a run stops early; then they are killed


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise RenderError(INSTALL_HINT) from None
    return ray


@contextlib.contextmanager
def ray_cluster(address: str | None = None, workers: int | None = None) -> Iterator["RayCluster"]:
    """A cluster handle for one run or queue worker; Ray itself is started or joined at the first `plan_workers`."""
    cluster = RayCluster(import_ray(), address, workers)
    try:
        yield cluster
    finally:
        cluster.close()


class _UnitActor:
    """A Ray actor: one worker slot, which keeps its models and renders one unit at a time."""

    def __init__(self, slot: WorkerSlot, context: RenderContext):
        self.context = copy.deepcopy(context)  # arrays from the object store are read-only: torch.from_numpy warns
        self.generators: GeneratorCache = start_worker(slot, self.context)
        self.steps = 0  # progress not yet taken by the driver
        self.stopping = False
        self.lock = threading.Lock()

    def ready(self) -> dict[str, Any]:
        """Where this actor runs (node, GPUs, which `render` it imported): the driver checks it before handing out work."""
        import ray

        import render

        return {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid(),
                "gpu_ids": ray.get_gpu_ids(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "cuda": torch.cuda.is_available(), "torch_threads": torch.get_num_threads(), "render": render.__file__}

    def render(self, unit: Unit) -> tuple[tuple, int]:
        """The pool's message for `unit` ("finished" or "failed"), and the progress steps the driver has not taken."""
        def progress(steps: int) -> None:
            with self.lock:
                self.steps += steps
            faults.after_progress(unit)
            if self.stopping:
                raise Abandoned(f"{unit.label}: abandoned, the run is stopping")

        return attempt_unit(self.context, unit, self.generators, progress), self.take_progress()

    def take_progress(self) -> int:
        with self.lock:
            steps, self.steps = self.steps, 0
        return steps

    def stop(self) -> None:
        """Abandon the unit in hand at its next progress report; its sinks remove its unfinished files."""
        self.stopping = True


class Abandoned(Exception):
    """Raised in an actor whose run is stopping (Ctrl-C, SIGTERM, an error in the driver)."""


class RayCluster:
    """The Ray cluster a run renders on: it plans the actors (`plan_workers`) and runs units on them (`run`)."""

    def __init__(self, ray: ModuleType, address: str | None, workers: int | None):
        self.ray, self.workers = ray, workers
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.given_as = f"--address {address}" if address else f"RAY_ADDRESS={self.address}"
        self.connected = False  # by us: `close` disconnects (and stops a local instance)
        self.cpus = self.gpus = 0.0

    def connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        with _keeping_sigterm_handler():
            if self.address is None:  # "local": a new instance, even where `ray start` left one that ray.init would join
                ray.init(address="local", num_cpus=self.workers or available_cores(),
                         object_store_memory=LOCAL_OBJECT_STORE_BYTES, include_dashboard=False,
                         logging_level=logging.WARNING)
            else:
                _check_reachable(self.address, self.given_as)
                try:
                    ray.init(address=self.address, logging_level=logging.WARNING)
                except (ConnectionError, ValueError) as error:
                    raise RenderError(f"{self.given_as}: cannot join a Ray cluster there ({_first_line(error)})") from None
        self.connected = True

    def close(self) -> None:
        if self.connected:
            self.ray.shutdown()
            self.connected = False

    def plan_workers(self, device: str = "auto", workers: int | None = None) -> list[WorkerSlot]:
        """One slot per actor: per GPU of the cluster (`auto`, `cuda`) or per CPU (`cpu`, or no GPU); `workers` overrides the count."""
        if workers is not None and workers < 1:
            raise SpecError(f"--workers {workers}: the Ray backend needs 1 or more actors")
        if device not in ("auto", "cpu", "cuda"):
            raise SpecError(f"--device {device}: with --backend ray expected auto, cpu or cuda (Ray picks each actor's GPU)")
        self.connect()
        resources = self.ray.cluster_resources()
        self.cpus, self.gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        if device == "cuda" and not self.gpus:
            raise SpecError("--device cuda: the Ray cluster has no GPUs")
        if device == "cpu" or not self.gpus:
            if not self.cpus:
                raise SpecError("--backend ray: the Ray cluster has no CPUs for CPU actors")
            return [WorkerSlot("cpu", CPU_THREADS_PER_WORKER)] * (workers or int(self.cpus))
        count = workers or int(self.gpus)
        return [WorkerSlot(GPU_DEVICE, max(1, int(self.cpus) // count))] * count

    def start_actor(self, slot: WorkerSlot, context: Any, count: int) -> Any:
        """An actor for `slot`, one of `count` (which share the cluster's GPUs or CPUs when there are more actors)."""
        if slot.device == "cpu":
            resources = {"num_cpus": min(1.0, self.cpus / count)}
        else:
            resources = {"num_gpus": min(1.0, self.gpus / count), "num_cpus": 0}
        fault_injection = os.environ.get("SEFA_RENDER_FAULTS")  # the tests' (render/faults.py); local workers inherit it
        if fault_injection:
            resources["runtime_env"] = {"env_vars": {"SEFA_RENDER_FAULTS": fault_injection}}
        return self._actor_class.options(**resources).remote(slot, context)

    @functools.cached_property
    def _actor_class(self) -> Any:
        """`_UnitActor` as a Ray actor class: made (and exported to the cluster) once, not per actor started."""
        return self.ray.remote(concurrency_groups={PROGRESS_GROUP: 1})(_UnitActor)

    def run(self, context: RenderContext, book: Bookkeeping, observer: Observer, slots: list[WorkerSlot]) -> None:
        """Render what `book` hands out on one actor per slot, with the pool's policy; mutates `book`."""
        _Driver(self, dataclasses.replace(context, output_dir=context.output_dir.absolute()), book, observer, slots).run()


class _Driver:
    """One run's actors and the units they hold.

    State, owned by the driver:
        actors:    {index: actor}           one per slot
        starting:  {ready ref: index}       actors not ready yet
        in_flight: {render ref: (index, unit)}
        idle:      {index}                  ready actors without a unit
    """

    def __init__(self, cluster: RayCluster, context: RenderContext, book: Bookkeeping, observer: Observer,
                 slots: list[WorkerSlot]):
        self.cluster, self.ray, self.book, self.observer, self.slots = cluster, cluster.ray, book, observer, slots
        self.context = self.ray.put(context)  # once, not once per actor
        self.actors: dict[int, Any] = {}
        self.starting: dict[Any, int] = {}
        self.in_flight: dict[Any, tuple[int, Unit]] = {}
        self.idle: set[int] = set()

    def run(self) -> None:
        ray = self.ray
        try:
            for index in range(len(self.slots)):
                self._start(index)
            with _sigterm_deferred() as check_sigterm:
                self._loop(check_sigterm)
        except BaseException:
            self._stop_busy()
            raise
        finally:
            for actor in self.actors.values():
                ray.kill(actor)
            self.actors.clear()

    def _loop(self, check_sigterm: Callable[[], None]) -> None:
        ray = self.ray
        asked = time.monotonic()
        while self.in_flight or self.book.waiting():  # a feed is asked ahead only when nothing is in flight
            for index, unit in self.book.assign(self.idle):
                self.in_flight[self.actors[index].render.remote(unit)] = (index, unit)
            done, waiting = ray.wait([*self.starting, *self.in_flight], num_returns=1, timeout=POLL_S)
            check_sigterm()
            if done and waiting:
                done += ray.wait(waiting, num_returns=len(waiting), timeout=0)[0]
            for ref in done:
                self._handle(ref)
            if time.monotonic() - asked >= POLL_S:
                self._take_progress()
                asked = time.monotonic()

    def _stop_busy(self) -> None:
        """Have the busy actors abandon their units cleanly, as the local pool's workers do, before they are killed."""
        for index, _ in self.in_flight.values():
            self.actors[index].stop.options(concurrency_group=PROGRESS_GROUP).remote()
        if self.in_flight:
            self.ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=STOP_TIMEOUT_S)

    def _start(self, index: int) -> None:
        self.actors[index] = actor = self.cluster.start_actor(self.slots[index], self.context, len(self.slots))
        self.starting[actor.ready.remote()] = index

    def _replace(self, index: int) -> None:
        self.ray.kill(self.actors.pop(index))
        self.idle.discard(index)
        self._start(index)

    def _handle(self, ref: Any) -> None:
        errors = self.ray.exceptions.RayError
        if ref in self.starting:
            index = self.starting.pop(ref)
            try:
                where = self.ray.get(ref)
            except errors as error:  # it died starting: no unit lost, but a cluster that cannot start actors is an error
                self.book.died_idle(len(self.slots),
                                    f"Ray actors keep dying before taking work (last: {_first_line(error)})")
                self._replace(index)
                return
            _check_actor(self.slots[index], where)
            self.idle.add(index)
            return
        index, unit = self.in_flight.pop(ref)
        try:
            message, steps = self.ray.get(ref)
        except errors as error:
            self.book.fail(unit, f"Ray actor lost ({_first_line(error)})", "", self.observer)
            self._replace(index)
            return
        if steps:
            self.observer.progress(unit, steps)
        self.book.settle(unit, message, self.observer)
        self.idle.add(index)

    def _take_progress(self) -> None:
        if not self.in_flight:
            return
        asked = {self.actors[index].take_progress.options(concurrency_group=PROGRESS_GROUP).remote(): unit
                 for index, unit in self.in_flight.values()}
        answered, _ = self.ray.wait(list(asked), num_returns=len(asked), timeout=POLL_TIMEOUT_S)
        for ref in answered:
            try:
                steps = self.ray.get(ref)
            except self.ray.exceptions.RayError:
                continue  # its render call reports the loss
            if steps:
                self.observer.progress(asked[ref], steps)


@contextlib.contextmanager
def _keeping_sigterm_handler() -> Iterator[None]:
    """`ray.init` makes SIGTERM exit at once (sys.exit); ours stops the run as Ctrl-C does (exit code 143,
    unfinished files removed, then `close` stops Ray), so it is put back."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def _sigterm_deferred() -> Iterator[Callable[[], None]]:
    """Run SIGTERM's handler where the driver calls the returned check, not inside Ray's blocking calls: an exception
    raised there (`Terminated`) comes out of Ray as a plain KeyboardInterrupt, and `run` would exit 130, not 143."""
    handler = signal.getsignal(signal.SIGTERM)
    if not callable(handler) or threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[tuple[int, Any]] = []

    def check() -> None:
        if received:
            signal.signal(signal.SIGTERM, handler)
            handler(*received[0])

    signal.signal(signal.SIGTERM, lambda signum, frame: received.append((signum, frame)))
    try:
        yield check
    finally:
        if not received:  # else the handler ran, and set what it wants for later signals
            signal.signal(signal.SIGTERM, handler)


def _check_reachable(address: str, given_as: str) -> None:
    """Fail at once on a HOST:PORT nothing listens on: Ray itself would retry it for minutes."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # 'auto', a ray:// client address: Ray finds these itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise RenderError(f"{given_as}: no Ray cluster answers there ({error.strerror or error})") from None


def _check_actor(slot: WorkerSlot, where: dict[str, Any]) -> None:
    """A GPU actor whose torch cannot see its GPU would fail every unit: say why once, instead."""
    if slot.device != "cpu" and not where["cuda"]:
        raise RenderError(f"Ray actor on {where['host']} was given GPU {where['gpu_ids']} but torch there sees no CUDA "
                          f"device (a CPU-only torch?); use --device cpu")


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
