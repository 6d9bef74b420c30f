"""The queue's SQLite store: jobs, their work units, leases and a log, in one local file.

Everything that changes the queue is one `BEGIN IMMEDIATE` transaction here,
so any number of worker and client processes on one machine can share the
file. (A deferred transaction that later writes can fail with SQLITE_BUSY
instead of waiting; IMMEDIATE takes the write lock up front and waits for it
up to the busy timeout.) The file runs in WAL mode so readers never wait for
a writer. Nothing here imports torch: `queue`, `status` and `logs` stay fast.

Leases
- A worker claims one unit at a time: the unit becomes RUNNING under the
  worker's `owner` id with a fresh `lease_token` and `lease_expires`; a
  heartbeat moves the expiry on while the worker lives.
- A lease that expired (a worker killed with SIGKILL, a rebooted machine), or
  whose owner is a process on this host that no longer exists, is swept before
  every claim: the unit goes back to PENDING, or to FAILED once it has used up
  `MAX_ATTEMPTS`.
- Completing or failing a unit needs its current token and an unexpired
  lease (fencing): a late report from a worker that lost its lease is refused,
  and the unit is rendered by whoever holds it now.
- Planning a job (its units) and concluding it (datasets' metadata, manifest)
  happen once, under a lease on the job row that works the same way.

States, as in Ray Jobs (Slurm and Celery use the same ideas):
    jobs:  PENDING → RUNNING → SUCCEEDED | FAILED;  CANCELLED by `cancel`
    units: PENDING → RUNNING → SUCCEEDED | FAILED;  CANCELLED by `cancel`
A job becomes SUCCEEDED or FAILED when it is concluded, after all its units ended.

Tables (schema version `SCHEMA_VERSION`, in `PRAGMA user_version`):
    jobs(id, name, spec_sha256 UNIQUE, spec_yaml, source, output_dir, priority, state, planned, error,
         submitted_at, started_at, finished_at, lease_owner, lease_expires)
    units(job_id, unit_id, seq, label, work, state, attempts, lease_owner, lease_token, lease_expires,
          error, traceback, result (JSON), seconds, started_at, finished_at)
    events(id, job_id, at, message)       what `logs` prints
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from render.errors import RenderError

__all__ = ["QueueError", "QueueStore", "Claim", "queue_path", "open_store", "new_owner", "MAX_ATTEMPTS", "DEFAULT_LEASE_S",
           "TERMINAL"]

SCHEMA_VERSION = 1
APPLICATION_ID = 0x53454641  # 'SEFA': tells our file from any other SQLite database
BUSY_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 3             # like `run`: one try and two retries
DEFAULT_LEASE_S = 60.0
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
# SQLite's locks and WAL's shared memory do not work across machines on these (SQLite FAQ, "file locking and NFS").
NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs", "lustre",
                       "gpfs", "beegfs", "fuse.sshfs", "fuse.glusterfs", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse"}

_SCHEMA = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    spec_sha256 TEXT NOT NULL UNIQUE,   -- of the frozen spec and its output folder: equal specs, one job
    spec_yaml TEXT NOT NULL,            -- the frozen spec, paths absolute
    source TEXT NOT NULL,               -- the submitted file (absolute): relative paths in the spec start there
    output_dir TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    planned INTEGER NOT NULL DEFAULT 0,
    error TEXT,                         -- why the job failed as a whole (e.g. its checkpoint is gone)
    submitted_at REAL NOT NULL, started_at REAL, finished_at REAL,
    lease_owner TEXT, lease_expires REAL
);
CREATE TABLE units (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    unit_id TEXT NOT NULL,
    seq INTEGER NOT NULL,               -- plan order
    label TEXT NOT NULL,
    work INTEGER NOT NULL,              -- frames or images
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT, lease_token TEXT, lease_expires REAL,
    error TEXT, traceback TEXT, result TEXT, seconds REAL, started_at REAL, finished_at REAL,
    PRIMARY KEY (job_id, unit_id)
);
CREATE INDEX units_by_state ON units (state, job_id, seq);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    at REAL NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX events_by_job ON events (job_id, id);
"""


class QueueError(RenderError):
    """The queue cannot be used (unsafe location, not our file) or a command names a job it cannot act on."""


@dataclass(frozen=True)
class Claim:
    """A unit a worker holds: render it, then report with the token."""

    job_id: int
    unit_id: str
    token: str
    attempt: int


def queue_path(option: Path | None = None) -> Path:
    """--queue, else $SEFA_RENDER_QUEUE, else the user's state directory (XDG)."""
    if option is not None:
        return Path(option).expanduser()
    if os.environ.get("SEFA_RENDER_QUEUE"):
        return Path(os.environ["SEFA_RENDER_QUEUE"]).expanduser()
    state_home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state_home / "sefa-render" / "queue.db"


def new_owner() -> str:
    """A worker's lease owner id: host and pid (to notice dead local owners) plus a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _owner_is_dead(owner: str) -> bool:
    """True only for an owner on this host whose process no longer exists."""
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(rest.split(":")[0]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError):
        return False
    return False


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem that holds `path` (Linux /proc/self/mounts), or None if unknown."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    target = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def open_store(path: Path) -> "QueueStore":
    """Open (creating if needed) the queue at `path`, or raise `QueueError` saying why it cannot be used safely."""
    path = Path(path)
    where = f"queue {path}"
    if path.is_dir():
        raise QueueError(f"{where}: is a folder, not a queue file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise QueueError(f"{where}: cannot create its folder ({error.strerror})") from None
    kind = filesystem_type(path.parent)
    if kind in NETWORK_FILESYSTEMS:
        raise QueueError(f"{where}: is on a network filesystem ({kind}), where SQLite cannot lock safely; "
                         f"put the queue on a local disk (--queue or SEFA_RENDER_QUEUE)")
    try:
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise QueueError(f"{where}: SQLite cannot use write-ahead logging here (journal mode {mode!r}); "
                             f"put the queue on a local disk")
        connection.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: consistent after a crash, fsync per checkpoint
        _ensure_schema(connection, where)
    except sqlite3.DatabaseError as error:
        raise QueueError(f"{where}: cannot be used ({error})") from None
    return QueueStore(path, connection)


def _ensure_schema(connection: sqlite3.Connection, where: str) -> None:
    with _immediate(connection):
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables == 0:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        if connection.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            raise QueueError(f"{where}: is an SQLite database, but not a sefa-render queue")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise QueueError(f"{where}: was made by a newer sefa-render (schema {version}; this one reads {SCHEMA_VERSION})")


def _after_attempt(unit: sqlite3.Row) -> str:
    """Where a RUNNING unit (with its `job_state`) goes when its attempt ends unfinished (an error, a lost lease):
    CANCELLED with its job, FAILED once it used up `MAX_ATTEMPTS`, else back to PENDING."""
    if unit["job_state"] == "CANCELLED":
        return "CANCELLED"
    return "FAILED" if unit["attempts"] >= MAX_ATTEMPTS else "PENDING"


@contextlib.contextmanager
def _immediate(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


class QueueStore:
    """The queue file and every query and state change on it (see the module docstring)."""

    def __init__(self, path: Path, connection: sqlite3.Connection):
        self.path, self.db = path, connection

    def close(self) -> None:
        self.db.close()

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return _immediate(self.db)

    @staticmethod
    def _log(db: sqlite3.Connection, job_id: int, message: str) -> None:
        db.execute("INSERT INTO events (job_id, at, message) VALUES (?, ?, ?)", (job_id, time.time(), message))

    # ------------------------------------------------------------------ reading (`queue`, `status`, `logs`)
    def job(self, job_id: int) -> sqlite3.Row:
        row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise QueueError(f"queue {self.path}: no job {job_id}")
        return row

    def jobs(self) -> list[sqlite3.Row]:
        """Every job with its unit counts and the work (frames, images) done and left."""
        return self.db.execute("""
            SELECT j.*, count(u.unit_id) AS total,
                   coalesce(sum(u.state = 'SUCCEEDED'), 0) AS done, coalesce(sum(u.state = 'FAILED'), 0) AS failed,
                   coalesce(sum(u.state = 'RUNNING'), 0) AS running,
                   sum(CASE WHEN u.state = 'SUCCEEDED' AND u.seconds IS NOT NULL THEN u.work END) AS timed_work,
                   sum(CASE WHEN u.state = 'SUCCEEDED' THEN u.seconds END) AS timed_seconds,
                   coalesce(sum(CASE WHEN u.state IN ('PENDING', 'RUNNING') THEN u.work END), 0) AS work_left
            FROM jobs j LEFT JOIN units u ON u.job_id = j.id GROUP BY j.id ORDER BY j.id""").fetchall()

    def units(self, job_id: int) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM units WHERE job_id = ? ORDER BY seq", (job_id,)).fetchall()

    def events(self, job_id: int, after: int = 0) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM events WHERE job_id = ? AND id > ? ORDER BY id", (job_id, after)).fetchall()

    # ------------------------------------------------------------------ clients (`submit`, `cancel`, `retry`)
    def submit(self, entries: Iterable[dict[str, Any]]) -> list[tuple[int, bool]]:
        """Add jobs (keys: name, spec_sha256, spec_yaml, source, output_dir, priority) all or none.

        Returns (job id, already queued) per entry: an identical spec is the job it already is.
        """
        results = []
        now = time.time()
        with self._write() as db:
            for entry in entries:
                existing = db.execute("SELECT id FROM jobs WHERE spec_sha256 = ?", (entry["spec_sha256"],)).fetchone()
                if existing is not None:
                    results.append((existing["id"], True))
                    continue
                busy = db.execute("SELECT id, state FROM jobs WHERE output_dir = ? AND state IN ('PENDING', 'RUNNING')",
                                  (entry["output_dir"],)).fetchone()
                if busy is not None:
                    raise QueueError(f"{entry['source']}: job {busy['id']} ({busy['state']}) already writes to "
                                     f"{entry['output_dir']}; choose another --name or --output-root, or cancel it")
                job_id = db.execute(
                    "INSERT INTO jobs (name, spec_sha256, spec_yaml, source, output_dir, priority, state, submitted_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'PENDING', ?)",
                    (entry["name"], entry["spec_sha256"], entry["spec_yaml"], entry["source"], entry["output_dir"],
                     entry["priority"], now)).lastrowid
                self._log(db, job_id, f"submitted {entry['source']} as job {job_id} '{entry['name']}' "
                                      f"(priority {entry['priority']}) → {entry['output_dir']}")
                results.append((job_id, False))
        return results

    def cancel(self, job_id: int, force: bool) -> tuple[int, int]:
        """Cancel a job's waiting units (and, with `force`, revoke its running ones); returns (cancelled, still running)."""
        now = time.time()
        with self._write() as db:
            job = self.job(job_id)
            if job["state"] in TERMINAL:
                raise QueueError(f"job {job_id} is already {job['state']}")
            states = "('PENDING', 'RUNNING')" if force else "('PENDING')"
            cancelled = db.execute(f"UPDATE units SET state = 'CANCELLED', finished_at = ?, lease_owner = NULL, "
                                   f"lease_token = NULL, lease_expires = NULL WHERE job_id = ? AND state IN {states}",
                                   (now, job_id)).rowcount
            running = db.execute("SELECT count(*) FROM units WHERE job_id = ? AND state = 'RUNNING'", (job_id,)).fetchone()[0]
            db.execute("UPDATE jobs SET state = 'CANCELLED', finished_at = ?, lease_owner = NULL, lease_expires = NULL "
                       "WHERE id = ?", (now, job_id))
            tail = f"; {running} running unit(s) finish first" if running else ""
            self._log(db, job_id, f"cancelled{' (force)' if force else ''}: {cancelled} unit(s){tail}")
        return cancelled, running

    def retry(self, job_id: int) -> int:
        """Put a job's failed and cancelled units back in the queue with fresh attempts; returns how many."""
        with self._write() as db:
            job = self.job(job_id)
            again = db.execute("UPDATE units SET state = 'PENDING', attempts = 0, finished_at = NULL "
                               "WHERE job_id = ? AND state IN ('FAILED', 'CANCELLED')", (job_id,)).rowcount
            if not again and job["state"] not in ("FAILED", "CANCELLED"):
                raise QueueError(f"job {job_id} is {job['state']}: it has no failed or cancelled units to retry")
            started = db.execute("SELECT count(*) FROM units WHERE job_id = ? AND state IN ('SUCCEEDED', 'RUNNING')",
                                 (job_id,)).fetchone()[0]
            db.execute("UPDATE jobs SET state = ?, error = NULL, finished_at = NULL WHERE id = ?",
                       ("RUNNING" if started else "PENDING", job_id))
            self._log(db, job_id, f"retry: {again} unit(s) back in the queue")
        return again

    # ------------------------------------------------------------------ workers
    def _sweep(self, db: sqlite3.Connection, now: float) -> None:
        """Expire the leases of dead local owners; hand expired units out again (or fail them: attempts used up)."""
        owners = {row[0] for row in db.execute("SELECT DISTINCT lease_owner FROM units WHERE state = 'RUNNING' "
                                                "UNION SELECT lease_owner FROM jobs WHERE lease_owner IS NOT NULL")}
        for owner in filter(None, owners):
            if _owner_is_dead(owner):
                db.execute("UPDATE units SET lease_expires = 0 WHERE lease_owner = ? AND state = 'RUNNING'", (owner,))
                db.execute("UPDATE jobs SET lease_expires = 0 WHERE lease_owner = ?", (owner,))
        expired = db.execute("SELECT u.*, j.state AS job_state FROM units u JOIN jobs j ON j.id = u.job_id "
                             "WHERE u.state = 'RUNNING' AND u.lease_expires < ?", (now,)).fetchall()
        for unit in expired:
            lost = f"{unit['label']}: worker {unit['lease_owner']} stopped responding (lease expired)"
            state = _after_attempt(unit)
            message = {"CANCELLED": f"{lost}; the job is cancelled", "PENDING": f"{lost}; handing it out again",
                       "FAILED": f"{lost}; failed after {unit['attempts']} attempts"}[state]
            db.execute("UPDATE units SET state = ?, error = coalesce(?, error), lease_owner = NULL, lease_token = NULL, "
                       "lease_expires = NULL, finished_at = ? WHERE job_id = ? AND unit_id = ?",
                       (state, "worker lost (lease expired)" if state == "FAILED" else None,
                        now if state != "PENDING" else None, unit["job_id"], unit["unit_id"]))
            self._log(db, unit["job_id"], message)

    _CLAIMABLE_JOBS = """
        SELECT * FROM jobs j WHERE state IN ('PENDING', 'RUNNING') AND (
            (planned = 0 AND (lease_owner IS NULL OR lease_expires < :now))
            OR EXISTS (SELECT 1 FROM units u WHERE u.job_id = j.id AND u.state = 'PENDING'))"""

    def next_task(self, owner: str, lease_s: float) -> tuple[str, sqlite3.Row] | None:
        """What this worker should do next: ('conclude' | 'plan' | 'render', job row), or None for nothing.

        'conclude' and 'plan' come with a lease on the job row; 'render' units are claimed one by one.
        """
        now = time.time()
        with self._write() as db:
            self._sweep(db, now)
            due = db.execute("""
                SELECT * FROM jobs j WHERE state IN ('PENDING', 'RUNNING') AND planned = 1
                AND (lease_owner IS NULL OR lease_expires < ?)
                AND NOT EXISTS (SELECT 1 FROM units u WHERE u.job_id = j.id AND u.state IN ('PENDING', 'RUNNING'))
                ORDER BY priority DESC, id LIMIT 1""", (now,)).fetchone()
            job = due or db.execute(self._CLAIMABLE_JOBS + " ORDER BY priority DESC, id LIMIT 1", {"now": now}).fetchone()
            if job is None:
                return None
            kind = "conclude" if due is not None else "render" if job["planned"] else "plan"
            if kind != "render":
                db.execute("UPDATE jobs SET lease_owner = ?, lease_expires = ? WHERE id = ?", (owner, now + lease_s, job["id"]))
        return kind, job

    def busy(self) -> bool:
        """Whether any unit or job is held by a live lease, or anything waits (a worker may still hand work back)."""
        now = time.time()
        held = self.db.execute("SELECT EXISTS (SELECT 1 FROM units WHERE state = 'RUNNING') "
                               "OR EXISTS (SELECT 1 FROM jobs WHERE lease_owner IS NOT NULL AND lease_expires >= ? "
                               "AND state IN ('PENDING', 'RUNNING'))", (now,)).fetchone()[0]
        return bool(held) or self.db.execute(f"SELECT EXISTS ({self._CLAIMABLE_JOBS})", {"now": now}).fetchone()[0] == 1

    def add_units(self, job_id: int, owner: str, units: list[tuple[str, str, int]],
                  finished: dict[str, dict[str, Any]]) -> bool:
        """Record a job's plan: (unit_id, label, work) in order; `finished` ones (journaled by an earlier run) as done.

        Returns False (and records nothing) if this worker no longer holds the job's lease.
        """
        now = time.time()
        with self._write() as db:
            job = db.execute("SELECT state FROM jobs WHERE id = ? AND planned = 0 AND lease_owner = ?",
                             (job_id, owner)).fetchone()
            if job is None:
                return False
            for seq, (unit_id, label, work) in enumerate(units):
                done = unit_id in finished
                db.execute("INSERT INTO units (job_id, unit_id, seq, label, work, state, result, finished_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (job_id, unit_id, seq, label, work, "SUCCEEDED" if done else "PENDING",
                            json.dumps(finished[unit_id]) if done else None, now if done else None))
            db.execute("UPDATE jobs SET planned = 1, lease_owner = NULL, lease_expires = NULL WHERE id = ?", (job_id,))
            skipped = sum(unit_id in finished for unit_id, _, _ in units)
            self._log(db, job_id, f"planned {len(units)} unit(s); {skipped} already done by an earlier run")
        return True

    def claim_unit(self, job_id: int, owner: str, lease_s: float) -> Claim | None:
        """Lease the job's next waiting unit, unless the job ended or a job of higher priority has work."""
        now = time.time()
        with self._write() as db:
            self._sweep(db, now)
            job = db.execute("SELECT state, priority FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if job["state"] not in ("PENDING", "RUNNING"):
                return None
            if db.execute(f"SELECT EXISTS ({self._CLAIMABLE_JOBS} AND priority > :priority)",
                          {"now": now, "priority": job["priority"]}).fetchone()[0]:
                return None
            unit = db.execute("SELECT unit_id, label, attempts FROM units WHERE job_id = ? AND state = 'PENDING' "
                              "ORDER BY seq LIMIT 1", (job_id,)).fetchone()
            if unit is None:
                return None
            token = uuid.uuid4().hex
            db.execute("UPDATE units SET state = 'RUNNING', attempts = attempts + 1, lease_owner = ?, lease_token = ?, "
                       "lease_expires = ?, started_at = ? WHERE job_id = ? AND unit_id = ?",
                       (owner, token, now + lease_s, now, job_id, unit["unit_id"]))
            if job["state"] == "PENDING":
                db.execute("UPDATE jobs SET state = 'RUNNING', started_at = ? WHERE id = ?", (now, job_id))
            self._log(db, job_id, f"{unit['label']}: started by {owner} (attempt {unit['attempts'] + 1})")
        return Claim(job_id, unit["unit_id"], token, unit["attempts"] + 1)

    def heartbeat(self, owner: str, lease_s: float) -> set[str]:
        """Extend this owner's live leases (never revive an expired one); return the tokens it still holds."""
        now = time.time()
        with self._write() as db:
            db.execute("UPDATE units SET lease_expires = ? WHERE lease_owner = ? AND state = 'RUNNING' "
                       "AND lease_expires >= ?", (now + lease_s, owner, now))
            db.execute("UPDATE jobs SET lease_expires = ? WHERE lease_owner = ? AND lease_expires >= ?",
                       (now + lease_s, owner, now))
            return {row[0] for row in db.execute("SELECT lease_token FROM units WHERE lease_owner = ? AND state = 'RUNNING' "
                                                 "AND lease_expires >= ?", (owner, now))}

    def _held(self, db: sqlite3.Connection, claim: Claim, now: float) -> sqlite3.Row | None:
        """The unit row if `claim` still holds an unexpired lease on it (fencing), else None (and a log line)."""
        row = db.execute("SELECT u.*, j.state AS job_state FROM units u JOIN jobs j ON j.id = u.job_id "
                         "WHERE u.job_id = ? AND u.unit_id = ? AND u.lease_token = ? AND u.state = 'RUNNING' "
                         "AND u.lease_expires >= ?", (claim.job_id, claim.unit_id, claim.token, now)).fetchone()
        if row is None:
            label = db.execute("SELECT label FROM units WHERE job_id = ? AND unit_id = ?",
                               (claim.job_id, claim.unit_id)).fetchone()[0]
            self._log(db, claim.job_id, f"{label}: report from attempt {claim.attempt} refused: its lease expired "
                                        f"or was revoked")
        return row

    def complete(self, claim: Claim, result: dict[str, Any]) -> bool:
        """Record a rendered unit; False if the claim lost its lease (the report is refused)."""
        now = time.time()
        with self._write() as db:
            unit = self._held(db, claim, now)
            if unit is None:
                return False
            db.execute("UPDATE units SET state = 'SUCCEEDED', result = ?, finished_at = ?, seconds = ?, lease_owner = NULL, "
                       "lease_token = NULL, lease_expires = NULL WHERE job_id = ? AND unit_id = ?",
                       (json.dumps(result), now, now - unit["started_at"], claim.job_id, claim.unit_id))
            self._log(db, claim.job_id, f"{unit['label']}: done in {now - unit['started_at']:.1f} s")
        return True

    def fail(self, claim: Claim, error: str, trace: str) -> bool:
        """Record a failed attempt: the unit waits again, or FAILED after `MAX_ATTEMPTS`; False if refused."""
        now = time.time()
        with self._write() as db:
            unit = self._held(db, claim, now)
            if unit is None:
                return False
            state = _after_attempt(unit)
            outcome = {"CANCELLED": "the job is cancelled", "PENDING": "retrying",
                       "FAILED": f"giving up after {unit['attempts']} attempts"}[state]
            db.execute("UPDATE units SET state = ?, error = ?, traceback = ?, finished_at = ?, lease_owner = NULL, "
                       "lease_token = NULL, lease_expires = NULL WHERE job_id = ? AND unit_id = ?",
                       (state, error, trace, None if state == "PENDING" else now, claim.job_id, claim.unit_id))
            detail = "\n" + trace.rstrip() if trace and state == "FAILED" else ""
            self._log(db, claim.job_id, f"{unit['label']}: {error} ({outcome}){detail}")
        return True

    def release(self, owner: str) -> int:
        """A worker stops: its units wait again (the interrupted attempt does not count), its job leases end."""
        with self._write() as db:
            units = db.execute("SELECT u.job_id, u.unit_id, u.label, j.state AS job_state FROM units u "
                               "JOIN jobs j ON j.id = u.job_id WHERE u.lease_owner = ? AND u.state = 'RUNNING'",
                               (owner,)).fetchall()
            for unit in units:
                state = "CANCELLED" if unit["job_state"] == "CANCELLED" else "PENDING"
                db.execute("UPDATE units SET state = ?, attempts = max(attempts - 1, 0), lease_owner = NULL, "
                           "lease_token = NULL, lease_expires = NULL WHERE job_id = ? AND unit_id = ?",
                           (state, unit["job_id"], unit["unit_id"]))
                self._log(db, unit["job_id"], f"{unit['label']}: released by {owner} (worker stopped)")
            db.execute("UPDATE jobs SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ?", (owner,))
        return len(units)

    def fail_job(self, job_id: int, error: str) -> None:
        """The job cannot run at all (its checkpoint is gone, its folder is taken): FAILED with `error`."""
        with self._write() as db:
            db.execute("UPDATE jobs SET state = 'FAILED', error = ?, finished_at = ?, lease_owner = NULL, "
                       "lease_expires = NULL WHERE id = ? AND state IN ('PENDING', 'RUNNING')", (error, time.time(), job_id))
            self._log(db, job_id, f"job failed: {error}")

    def conclude(self, job_id: int, owner: str, manifest: str) -> str | None:
        """Mark a job whose units all ended SUCCEEDED or FAILED (its manifest written); None if the lease was lost."""
        now = time.time()
        with self._write() as db:
            counts = db.execute("SELECT coalesce(sum(state = 'SUCCEEDED'), 0), coalesce(sum(state = 'FAILED'), 0) "
                                "FROM units WHERE job_id = ?", (job_id,)).fetchone()
            state = "FAILED" if counts[1] else "SUCCEEDED"
            if not db.execute("UPDATE jobs SET state = ?, finished_at = ?, lease_owner = NULL, lease_expires = NULL "
                              "WHERE id = ? AND lease_owner = ? AND state IN ('PENDING', 'RUNNING')",
                              (state, now, job_id, owner)).rowcount:
                return None
            self._log(db, job_id, f"job {state}: {counts[0]} unit(s) done, {counts[1]} failed → {manifest}")
        return state
