"""What `queue`, `status` and `logs` print: plain text from store rows. Imports nothing heavy."""

from __future__ import annotations

import sqlite3
import time

__all__ = ["queue_table", "status_text", "event_line", "duration"]


def duration(seconds: float) -> str:
    """A short human duration.

    >>> [duration(s) for s in (4.2, 75, 3 * 3600 + 300, 50 * 3600)]
    ['4s', '1m15s', '3h05m', '2d02h']
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _time_left(job: sqlite3.Row) -> str:
    """Work left × seconds per frame or image of this job's units so far, shared by its running units."""
    if job["state"] not in ("PENDING", "RUNNING") or not job["total"]:
        return "-"
    if not job["timed_work"]:
        return "?"
    return "~" + duration(job["work_left"] * job["timed_seconds"] / job["timed_work"] / max(1, job["running"]))


def queue_table(jobs: list[sqlite3.Row], now: float | None = None) -> str:
    now = time.time() if now is None else now
    header = ("ID", "NAME", "STATE", "UNITS", "FAILED", "AGE", "LEFT", "PRIORITY")
    rows = [(str(job["id"]), job["name"], job["state"], f"{job['done']}/{job['total']}" if job["planned"] else "-",
             str(job["failed"]), duration(now - job["submitted_at"]), _time_left(job), str(job["priority"]))
            for job in jobs]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows])


def status_text(job: sqlite3.Row, units: list[sqlite3.Row]) -> str:
    lines = [f"job {job['id']} '{job['name']}': {job['state']} (priority {job['priority']}) → {job['output_dir']}",
             f"submitted from {job['source']}"]
    if job["error"]:
        lines.append(f"error: {job['error']}")
    if not job["planned"]:
        lines.append("units: not planned yet")
    for unit in units:
        took = f" {duration(unit['seconds'])}" if unit["seconds"] is not None else ""
        worker = f" on {unit['lease_owner']}" if unit["state"] == "RUNNING" else ""
        error = f": {unit['error']}" if unit["error"] and unit["state"] != "SUCCEEDED" else ""
        lines.append(f"  {unit['unit_id']}  {unit['state']:<9}  attempts {unit['attempts']}{took}{worker}  "
                     f"{unit['label']}{error}")
    return "\n".join(lines)


def event_line(event: sqlite3.Row) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["at"]))
    return f"{stamp}  {event['message']}"
