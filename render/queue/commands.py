"""The queue's subcommands: submit, queue, status, worker, cancel, retry, logs.

`add_commands` registers them on the main parser. `queue`, `status` and
`logs` only read the store and import nothing heavy (no torch), so they
answer at once; `submit` validates specs and `worker` renders, so they
import what `run` does.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from render.backends import add_backend_options, open_cluster
from render.interrupts import sigterm_as_interrupt
from render.queue.report import event_line, queue_table, status_text
from render.queue.store import DEFAULT_LEASE_S, TERMINAL, QueueStore, open_store, queue_path

__all__ = ["add_commands"]

EXIT_JOB_FAILED = 1   # `status` of a failed job, as `ray job status` does
FOLLOW_POLL_S = 0.5


def add_commands(commands: Any) -> None:
    """Add the queue's subcommands to `commands` (the main parser's subparsers)."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--queue", type=Path, metavar="FILE",
                       help="the queue (default: $SEFA_RENDER_QUEUE, else ~/.local/state/sefa-render/queue.db)")

    submit = commands.add_parser("submit", parents=[where], help="validate job specs and queue them for workers")
    submit.add_argument("jobs", nargs="+", type=Path, metavar="JOB", help="job spec (YAML)")
    submit.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    submit.add_argument("--output-root", type=Path, help="outputs go to OUTPUT_ROOT/<job name> (default outputs)")
    submit.add_argument("--name", help="the job's name and output folder (default: the spec's name or file name)")
    submit.set_defaults(command=_submit)

    table = commands.add_parser("queue", parents=[where], help="list queued jobs: state, units done, time left")
    table.set_defaults(command=_queue)

    status = commands.add_parser("status", parents=[where], help="a queued job's units (exit code 1 if it failed)")
    status.add_argument("job", type=int, metavar="JOB", help="job id")
    status.set_defaults(command=_status)

    worker = commands.add_parser("worker", parents=[where], help="render queued jobs (until Ctrl-C)")
    worker.add_argument("--device", default="auto", help="auto (default), cpu, cuda, or cuda:0,2")
    worker.add_argument("--workers", type=int, help="worker processes (default: one per GPU, or per CPU core; "
                                                     "0 renders in this process)")
    add_backend_options(worker)
    worker.add_argument("--until-empty", action="store_true", help="exit once no queued work is left")
    worker.add_argument("--lease", type=float, default=DEFAULT_LEASE_S, metavar="SECONDS",
                        help=f"how long a unit stays ours without a heartbeat (default {DEFAULT_LEASE_S:g})")
    worker.set_defaults(command=_worker)

    cancel = commands.add_parser("cancel", parents=[where], help="cancel a job's waiting units (--force: running ones too)")
    cancel.add_argument("job", type=int, metavar="JOB")
    cancel.add_argument("--force", action="store_true", help="also stop its running units")
    cancel.set_defaults(command=_cancel)

    retry = commands.add_parser("retry", parents=[where], help="queue a job's failed and cancelled units again")
    retry.add_argument("job", type=int, metavar="JOB")
    retry.set_defaults(command=_retry)

    logs = commands.add_parser("logs", parents=[where], help="a job's log: units started, done, failed, retried")
    logs.add_argument("job", type=int, metavar="JOB")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    logs.set_defaults(command=_logs)


def _store(args: argparse.Namespace) -> QueueStore:
    return open_store(queue_path(args.queue))


def _submit(args: argparse.Namespace) -> int:
    from render.queue.submit import submit_jobs
    from render.runner import DEFAULT_OUTPUT_ROOT

    submitted = submit_jobs(_store(args), args.jobs, args.output_root or DEFAULT_OUTPUT_ROOT, priority=args.priority,
                            name=args.name)
    for job in submitted:
        note = " (already queued)" if job.already_queued else ""
        print(f"{job.job_id}\t{job.name}\t{job.source}{note}")
    return 0


def _queue(args: argparse.Namespace) -> int:
    jobs = _store(args).jobs()
    print(queue_table(jobs) if jobs else "the queue is empty")
    return 0


def _status(args: argparse.Namespace) -> int:
    store = _store(args)
    job = store.job(args.job)
    print(status_text(job, store.units(args.job)))
    return EXIT_JOB_FAILED if job["state"] == "FAILED" else 0


def _worker(args: argparse.Namespace) -> int:
    from render.queue.worker import run_worker

    store = _store(args)
    with sigterm_as_interrupt(), open_cluster(args) as cluster:  # SIGTERM stops a worker as it stops `run` (143)
        return run_worker(store, device=args.device, workers=args.workers, until_empty=args.until_empty,
                          lease_s=args.lease, cluster=cluster)


def _cancel(args: argparse.Namespace) -> int:
    cancelled, running = _store(args).cancel(args.job, args.force)
    tail = f"; {running} running unit(s) will finish" if running else ""
    print(f"job {args.job} cancelled: {cancelled} unit(s){tail}")
    return 0


def _retry(args: argparse.Namespace) -> int:
    again = _store(args).retry(args.job)
    print(f"job {args.job}: {again} unit(s) queued again")
    return 0


def _logs(args: argparse.Namespace) -> int:
    store = _store(args)
    store.job(args.job)  # an unknown job is an error, not an empty log
    last = 0
    while True:
        for event in store.events(args.job, after=last):
            print(event_line(event), flush=True)
            last = event["id"]
        if not args.follow or _ended(store, args.job):
            return 0
        time.sleep(FOLLOW_POLL_S)


def _ended(store: QueueStore, job_id: int) -> bool:
    """The job ended and none of its units still runs (a cancelled job's running units may still report)."""
    return store.job(job_id)["state"] in TERMINAL and not any(unit["state"] == "RUNNING" for unit in store.units(job_id))
