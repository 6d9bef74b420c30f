"""Fault injection for the tests of the pool's recovery paths; inert unless SEFA_RENDER_FAULTS is set.

The pool's retries, worker replacement and resume can only be tested in real
worker processes, which a test cannot monkeypatch. So the test sets
SEFA_RENDER_FAULTS to a JSON object, read once per process:

    {"raise": "top_001"}        a unit whose label contains this always raises
    {"kill": "top_000", "marker_dir": "/tmp/x"}
                                the worker rendering such a unit kills itself after its first progress
                                report, once per unit (remembered by a marker file in marker_dir);
                                with --workers 0 that is the run itself, killed mid-unit
    {"delay_s": 0.5}            every unit first sleeps this long (to interrupt a run mid-way)

A unit is named by its `label`: the video's path, or
"datasets/<name> (<split> shard <n>)".
"""

from __future__ import annotations

import functools
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

__all__ = ["before_unit", "after_progress"]


class InjectedFault(RuntimeError):
    """Raised for a unit named by SEFA_RENDER_FAULTS['raise']."""


@functools.lru_cache(maxsize=1)
def _faults() -> dict[str, Any]:
    return json.loads(os.environ.get("SEFA_RENDER_FAULTS") or "{}")


def before_unit(unit: Any) -> None:
    faults = _faults()
    if faults.get("delay_s"):
        time.sleep(float(faults["delay_s"]))
    if faults.get("raise") and faults["raise"] in unit.label:
        raise InjectedFault(f"injected failure for {unit.label}")


def after_progress(unit: Any) -> None:
    faults = _faults()
    if faults.get("kill") and faults["kill"] in unit.label:
        marker = Path(faults["marker_dir"]) / f"killed-{unit.unit_id}"
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
