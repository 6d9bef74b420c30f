"""The queue's SQLite store on its own (no rendering): leases, fencing, priorities, cancel, retry, unsafe locations."""

import sqlite3
import time

import pytest

from render.cli import main
from render.queue import store as store_module
from render.queue.store import MAX_ATTEMPTS, QueueError, open_store


def add_job(store, name: str, priority: int = 0, units: int = 2) -> int:
    [(job_id, _)] = store.submit([{"name": name, "spec_sha256": name, "spec_yaml": "", "source": f"/jobs/{name}.yaml",
                                   "output_dir": f"/out/{name}", "priority": priority}])
    assert store.next_task("planner", 60)[0] == "plan"
    assert store.add_units(job_id, "planner", [(f"{name}{i}", f"{name} unit {i}", 10) for i in range(units)], {})
    return job_id


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "queue.db")


def test_a_late_completion_from_an_expired_lease_is_refused_and_the_unit_is_handed_out_again(store):
    job = add_job(store, "a", units=1)
    first = store.claim_unit(job, "worker-1", lease_s=0.05)
    time.sleep(0.1)
    second = store.claim_unit(job, "worker-2", lease_s=60)
    assert (second.unit_id, second.attempt) == (first.unit_id, 2)
    assert not store.complete(first, {"files": []})
    assert store.complete(second, {"files": []})
    messages = [event["message"] for event in store.events(job)]
    assert "a unit 0: worker worker-1 stopped responding (lease expired); handing it out again" in messages
    assert "a unit 0: report from attempt 1 refused: its lease expired or was revoked" in messages


def test_a_heartbeat_keeps_a_lease_but_never_revives_an_expired_one(store):
    job = add_job(store, "a", units=2)
    kept = store.claim_unit(job, "worker-1", lease_s=0.2)
    lost = store.claim_unit(job, "worker-2", lease_s=0.05)
    time.sleep(0.1)
    assert store.heartbeat("worker-1", 60) == {kept.token}
    assert store.heartbeat("worker-2", 60) == set()
    assert store.claim_unit(job, "worker-3", lease_s=60).unit_id == lost.unit_id


def test_a_unit_that_keeps_failing_fails_after_max_attempts_and_the_job_goes_on(store):
    job = add_job(store, "a", units=2)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        claim = store.claim_unit(job, "w", 60)
        assert (claim.unit_id, claim.attempt) == ("a0", attempt)
        store.fail(claim, "ValueError: boom", "Traceback …")
    assert store.claim_unit(job, "w", 60).unit_id == "a1"
    assert [unit["state"] for unit in store.units(job)] == ["FAILED", "RUNNING"]


def test_higher_priority_jobs_run_first_and_take_over_a_running_lower_one(store):
    low = add_job(store, "low", priority=0)
    assert store.next_task("w", 60)[1]["id"] == low
    assert store.claim_unit(low, "w", 60) is not None
    high = add_job(store, "high", priority=5)
    assert store.claim_unit(low, "w", 60) is None  # the low job's worker lets go …
    kind, job = store.next_task("w", 60)
    assert (kind, job["id"]) == ("render", high)  # … and turns to the high one
    assert store.claim_unit(high, "w", 60).unit_id == "high0"


def test_cancel_stops_waiting_units_and_retry_queues_them_again(store):
    job = add_job(store, "a", units=3)
    running = store.claim_unit(job, "w", 60)
    assert store.cancel(job, force=False) == (2, 1)
    assert store.job(job)["state"] == "CANCELLED"
    assert store.next_task("other", 60) is None
    assert store.complete(running, {"files": []})  # a running unit may finish
    with pytest.raises(QueueError, match="job 1 is already CANCELLED"):
        store.cancel(job, force=True)
    assert store.retry(job) == 2
    assert store.job(job)["state"] == "RUNNING"
    assert [unit["state"] for unit in store.units(job)] == ["SUCCEEDED", "PENDING", "PENDING"]


def test_cancel_force_revokes_running_units(store):
    job = add_job(store, "a", units=1)
    claim = store.claim_unit(job, "w", 60)
    assert store.cancel(job, force=True) == (1, 0)
    assert store.heartbeat("w", 60) == set()
    assert not store.complete(claim, {"files": []})


def test_a_released_unit_waits_again_without_losing_an_attempt(store):
    job = add_job(store, "a", units=1)
    store.claim_unit(job, "w", 60)
    assert store.release("w") == 1
    assert store.claim_unit(job, "w2", 60).attempt == 1


def test_identical_submissions_are_one_job_and_a_job_is_concluded_once(store):
    job = add_job(store, "a", units=1)
    assert store.submit([{"name": "a", "spec_sha256": "a", "spec_yaml": "", "source": "/elsewhere/a.yaml",
                          "output_dir": "/out/a", "priority": 9}]) == [(job, True)]
    store.complete(store.claim_unit(job, "w", 60), {"files": []})
    assert store.next_task("w", 60)[0] == "conclude"
    assert store.next_task("w2", 60) is None  # the conclusion is leased to w
    assert store.conclude(job, "w", "manifest.json") == "SUCCEEDED"


@pytest.mark.parametrize("problem", ["folder", "not-sqlite", "other-sqlite", "network"])
def test_an_unsafe_queue_location_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys, problem):
    path = tmp_path / "queue.db"
    if problem == "folder":
        path.mkdir()
    elif problem == "not-sqlite":
        path.write_text("hello")
    elif problem == "other-sqlite":
        sqlite3.connect(path).execute("CREATE TABLE t (x)")
    else:
        monkeypatch.setattr(store_module, "filesystem_type", lambda folder: "nfs4")
    assert main(["queue", "--queue", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"sefa-render: error: queue {path}: ") and error.count("\n") == 1
    expected = {"folder": "is a folder", "not-sqlite": "file is not a database",
                "other-sqlite": "not a sefa-render queue", "network": "network filesystem (nfs4)"}[problem]
    assert expected in error
