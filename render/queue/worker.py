"""`sefa-render worker`: today's worker pool, fed from the queue.

The loop asks the store what to do next (`QueueStore.next_task`) and does it:
- plan a job: load its frozen spec, prepare it (models, directions) and plan
  its units with the same `prepare` and `plan` as `run`; units that an
  earlier `run` already journaled are recorded as done;
- render a job: `run_units` with a feed that claims the job's units one at a
  time under a lease, until the job has no waiting unit or a job of higher
  priority has; each finished unit is journaled (as `run` does) and then
  reported with its lease token;
- conclude a job whose units all ended: merge its datasets and write its
  manifest, exactly as `run` does at its end.
A job that cannot be prepared (its checkpoint is gone) fails; the worker
goes on with the next one.

Worker state, owned by this process:
    owner:     str               lease owner id (host:pid:nonce)
    session:   _Session | None   the job prepared last (kept while it is the job at hand)
    claims:    {unit_id: Claim}  units handed to the pool and not yet reported
and by the heartbeat thread, which has its own connection:
    claimed:   {token}           tokens in flight (the main thread adds and removes them)
    revoked:   {token}           in flight, but no longer held: the unit was cancelled or handed to another worker

Ctrl-C or SIGTERM stops the pool (the sinks remove unfinished files), hands
every held unit back without counting the attempt, and exits with 130 (SIGTERM: 143).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.devices import WorkerSlot, in_process_slot, plan_workers
from render.errors import RenderError
from render.execute import RenderContext
from render.forkserver import start_fork_server
from render.models.base import Generator
from render.ownership import claim_folder
from render.plan import Unit, plan
from render.pool import IN_PROCESS_CPU, Cluster, Failure, run_units
from render.prepare import Prepared, prepare
from render.queue.store import Claim, QueueError, QueueStore, new_owner, open_store
from render.queue.submit import load_frozen
from render.runner import (failure_entry, finish_outputs, job_journal, locked_output_dir, prepare_output_dir,
                           save_directions)
from render.sinks.atomic import cannot_write

__all__ = ["run_worker", "IDLE_POLL_S"]

IDLE_POLL_S = 1.0  # how often an idle worker looks for work


class LeaseLost(RuntimeError):
    """The unit being rendered was cancelled or handed to another worker: stop rendering it."""


@dataclass
class _Session:
    job_id: int
    prepared: Prepared
    generators: dict[str, Generator]
    units: list[Unit]
    output_dir: Path


class _Heartbeat(threading.Thread):
    """Extends this worker's leases every third of the lease; notes the ones it lost."""

    def __init__(self, path: Path, owner: str, lease_s: float):
        super().__init__(name="sefa-render-heartbeat", daemon=True)
        self.path, self.owner, self.lease_s = path, owner, lease_s
        self.claimed: set[str] = set()
        self.revoked: set[str] = set()
        self.stopped = threading.Event()

    def run(self) -> None:
        store = open_store(self.path)
        try:
            while not self.stopped.wait(self.lease_s / 3):
                in_flight = set(self.claimed)  # before the query: a token claimed later is not judged by it
                self.revoked |= in_flight - store.heartbeat(self.owner, self.lease_s)
        finally:
            store.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join()


class _QueueObserver:
    """The pool's observer for queued units: journal, then report to the queue under the unit's lease."""

    def __init__(self, store: QueueStore, session: _Session, heartbeat: _Heartbeat, claims: dict[str, Claim]):
        self.store, self.session, self.heartbeat, self.claims = store, session, heartbeat, claims
        self.journal = job_journal(session.output_dir)

    def progress(self, unit: Unit, steps: int) -> None:
        if self.claims[unit.unit_id].token in self.heartbeat.revoked:
            raise LeaseLost(f"{unit.label}: the unit was cancelled or handed to another worker")

    def unit_finished(self, unit: Unit, result: dict[str, Any]) -> None:
        try:
            self.journal.append(unit.unit_id, result["files"], result)
        except OSError as error:  # its files are complete, but only a journaled unit counts as finished (as in run)
            unwritten = cannot_write(self.journal.path, error)
            self.unit_failed(unit, Failure(unit.unit_id, f"{type(unwritten).__name__}: {unwritten}", "", 1), True)
            return
        claim = self._report(unit)
        accepted = self.store.complete(claim, result)
        _say(f"job {claim.job_id}: {unit.label} done" + ("" if accepted else " (not counted: lease lost)"))

    def unit_failed(self, unit: Unit, failure: Failure, will_retry: bool) -> None:
        claim = self._report(unit)
        self.store.fail(claim, failure.error, failure.traceback)
        _say(f"job {claim.job_id}: {unit.label}: {failure.error} (attempt {claim.attempt})")

    def _report(self, unit: Unit) -> Claim:
        claim = self.claims.pop(unit.unit_id)
        self.heartbeat.claimed.discard(claim.token)
        return claim


def _say(message: str) -> None:
    print(f"sefa-render worker: {message}", flush=True)


def run_worker(store: QueueStore, *, device: str = "auto", workers: int | None = None, until_empty: bool = False,
               lease_s: float, poll_s: float = IDLE_POLL_S, cluster: Cluster | None = None) -> int:
    """Work through the queue until interrupted (or, with `until_empty`, until nothing is left to do);
    on local worker processes, or on a Ray `cluster`'s actors."""
    if cluster is None:
        slots = plan_workers(device, workers)
        if slots:
            start_fork_server()
        in_process = in_process_slot(device)
    else:
        slots, in_process = cluster.plan_workers(device, workers), IN_PROCESS_CPU
    owner = new_owner()
    heartbeat = _Heartbeat(store.path, owner, lease_s)
    heartbeat.start()
    session: _Session | None = None
    _say(f"{owner} on {store.path}: {len(slots) or 'no'} {'worker process(es)' if cluster is None else 'Ray actor(s)'}, "
         f"lease {lease_s:g} s")
    try:
        while True:
            task = store.next_task(owner, lease_s)
            if task is None:
                if until_empty and not store.busy():
                    return 0
                time.sleep(poll_s)
                continue
            kind, job = task
            try:
                if session is None or session.job_id != job["id"]:
                    session = None
                    session = _open_session(job, keep_generators=not slots)
                with locked_output_dir(session.output_dir, shared=True):
                    if kind == "plan":
                        _plan(store, session, owner)
                    else:
                        _check_plan(store, session)
                        if kind == "conclude":
                            _conclude(store, session, owner)
                        else:
                            _render(store, session, owner, lease_s, heartbeat, slots, in_process, cluster)
            except RenderError as error:
                session = None
                store.fail_job(job["id"], str(error))
                _say(f"job {job['id']} failed: {error}")
    finally:
        heartbeat.stop()
        released = store.release(owner)
        if released:
            _say(f"handed {released} unit(s) back to the queue")


def _open_session(job: Any, keep_generators: bool) -> _Session:
    output_dir = Path(job["output_dir"])
    output_dir = prepare_output_dir(output_dir.parent, output_dir.name)
    frozen = load_frozen(job["spec_yaml"], Path(job["source"]))
    prepared, generators = prepare(frozen)
    units = plan(frozen, prepared.models, prepared.direction_sets)
    return _Session(job["id"], prepared, generators if keep_generators else {}, units, output_dir)


def _plan(store: QueueStore, session: _Session, owner: str) -> None:
    claim_folder(session.output_dir, session.prepared.job, force=False)
    save_directions(session.prepared, session.output_dir, [])
    journaled = job_journal(session.output_dir).finished()
    if store.add_units(session.job_id, owner, [(u.unit_id, u.label, u.work) for u in session.units],
                       {u.unit_id: journaled[u.unit_id] for u in session.units if u.unit_id in journaled}):
        _say(f"job {session.job_id}: planned {len(session.units)} unit(s)")


def _check_plan(store: QueueStore, session: _Session) -> None:
    """The units planned now must be the ones queued: a changed checkpoint or direction file changes their ids."""
    if {row["unit_id"] for row in store.units(session.job_id)} != {unit.unit_id for unit in session.units}:
        raise QueueError(f"job {session.job_id}: its checkpoints or direction files changed after it was planned; "
                         f"submit it again under another --name")


def _render(store: QueueStore, session: _Session, owner: str, lease_s: float, heartbeat: _Heartbeat,
            slots: list[WorkerSlot], in_process: WorkerSlot, cluster: Cluster | None) -> None:
    claims: dict[str, Claim] = {}
    by_id = {unit.unit_id: unit for unit in session.units}

    def feed() -> Unit | None:
        claim = store.claim_unit(session.job_id, owner, lease_s)
        if claim is None:
            return None
        claims[claim.unit_id] = claim
        heartbeat.claimed.add(claim.token)
        return by_id[claim.unit_id]

    waiting = sum(row["state"] == "PENDING" for row in store.units(session.job_id))
    context = RenderContext(session.prepared.job, session.output_dir, session.prepared.models,
                            session.prepared.direction_sets)
    observer = _QueueObserver(store, session, heartbeat, claims)
    try:
        run_units(context, [], slots[:max(1, waiting)], observer, retries=0, in_process=in_process,
                  preloaded=session.generators, feed=feed, cluster=cluster)
    except LeaseLost as error:  # raised through the pool's loop: its workers are stopped, the rest handed back
        _say(f"job {session.job_id}: {error}; stopping this job's units here")
        store.release(owner)


def _conclude(store: QueueStore, session: _Session, owner: str) -> None:
    rows = store.units(session.job_id)
    finished = {row["unit_id"]: json.loads(row["result"]) for row in rows if row["state"] == "SUCCEEDED"}
    failures = [failure_entry(row["unit_id"], row["label"], row["error"], row["attempts"], row["traceback"] or "")
                for row in rows if row["state"] == "FAILED"]
    directions = save_directions(session.prepared, session.output_dir, failures)  # counted with failures, as `run` does
    run = {"rendered_units": sum(row["state"] == "SUCCEEDED" and row["seconds"] is not None for row in rows),
           "skipped_units": sum(row["state"] == "SUCCEEDED" and row["seconds"] is None for row in rows),
           "failed_units": len(failures)}
    manifest = finish_outputs(session.prepared, session.units, session.output_dir, directions, finished, failures, run)
    state = store.conclude(session.job_id, owner, str(manifest))
    if state is not None:
        _say(f"job {session.job_id} {state}: {manifest}")
