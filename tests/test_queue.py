"""The job queue end to end: submit, workers in real processes sharing one queue, kills, signals, cancel, retry."""

import copy
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import render.faults
from jobs import TINY_JOB, write_job
from render.cli import main
from render.queue.store import open_store, queue_path
from render.queue.worker import run_worker
from render.runner import run_job
from test_pool import BIGGER_JOB, outputs

REPO = Path(__file__).resolve().parents[1]


def start_worker(*args: str, faults: dict | None = None) -> subprocess.Popen:
    """`sefa-render worker --workers 0 …` in its own process (its own lease owner)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    if faults:
        environment["SEFA_RENDER_FAULTS"] = json.dumps(faults)
    return subprocess.Popen([sys.executable, "-m", "render", "worker", "--workers", "0", "--device", "cpu", *args],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def work_until_empty(workers: int = 0) -> int:
    """A worker in this process (no torch import to wait for), until the queue has nothing left."""
    return run_worker(open_store(queue_path()), device="cpu", workers=workers, until_empty=True, lease_s=60, poll_s=0.05)


def wait_for(condition, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def unit_states(job_id: int = 1) -> Counter:
    return Counter(unit["state"] for unit in open_store(queue_path()).units(job_id))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """`sefa-render run` of the bigger job, in-process: what the queue must reproduce byte for byte."""
    folder = tmp_path_factory.mktemp("reference")
    return outputs(run_job(write_job(folder, BIGGER_JOB), folder / "outputs", workers=0, progress=False).output_dir)


def test_a_bad_spec_is_refused_at_submit_and_nothing_is_queued(tmp_path, capsys):
    good = write_job(tmp_path / "good")
    bad = write_job(tmp_path / "bad", dict(TINY_JOB, outputs=[{"video": dict(TINY_JOB["outputs"][0]["video"], fps="abc")}]))
    assert main(["submit", str(good), str(bad)]) == 2
    assert capsys.readouterr().err == (f"sefa-render: error: {bad}: outputs[0].video.fps: expected a positive integer, "
                                       f"got 'abc'\n")
    assert main(["queue"]) == 0
    assert capsys.readouterr().out == "the queue is empty\n"


def test_an_identical_spec_is_the_job_already_queued(tmp_path, capsys):
    job = write_job(tmp_path)
    assert main(["submit", str(job)]) == 0
    os.chdir(tmp_path.parent)
    assert main(["submit", str(job.relative_to(tmp_path.parent)), "--priority", "3",
                 "--output-root", str(tmp_path / "outputs")]) == 0
    assert main(["submit", str(job), "--name", "other"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["1", "1", "2"]
    assert lines[1].endswith("(already queued)")


def test_a_queued_job_is_byte_identical_to_run_and_ignores_later_edits_of_its_file(tmp_path, reference, capsys):
    job = write_job(tmp_path, BIGGER_JOB)
    assert main(["submit", str(job)]) == 0
    edited = copy.deepcopy(BIGGER_JOB)
    edited["schedules"]["loop"]["frames"] = 9
    write_job(tmp_path, edited)
    assert work_until_empty(workers=2) == 0  # the pool's worker processes, fed from the queue
    assert outputs(tmp_path / "outputs" / "tiny") == reference
    capsys.readouterr()
    assert main(["queue"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:4] == ["1", "tiny", "SUCCEEDED", "7/7"]
    assert main(["run", str(job), "--no-progress", "--workers", "0"]) == 0  # `run` of the same (edited) spec resumes what the queue did
    assert "skipped 3 finished" in capsys.readouterr().out  # the dataset shards; the videos changed


def slowed_down(monkeypatch, faults: dict) -> None:
    monkeypatch.setenv("SEFA_RENDER_FAULTS", json.dumps(faults))
    render.faults._faults.cache_clear()
    monkeypatch.setattr(render.faults, "_faults", lambda: faults)  # read once per process: keep it to this test


def test_two_workers_share_one_queue_and_render_every_unit_exactly_once(tmp_path, reference, monkeypatch):
    assert main(["submit", str(write_job(tmp_path, BIGGER_JOB))]) == 0
    other = start_worker("--until-empty", faults={"delay_s": 0.3})
    wait_for(lambda: unit_states()["RUNNING"] >= 1)  # it has started: share the rest with it from this process
    slowed_down(monkeypatch, {"delay_s": 0.3})
    assert work_until_empty() == 0
    _, stderr = other.communicate(timeout=120)
    assert other.returncode == 0, stderr
    store = open_store(queue_path())
    starts = [event["message"].split(": started by ") for event in store.events(1) if ": started by " in event["message"]]
    assert sorted(label for label, _ in starts) == sorted(unit["label"] for unit in store.units(1))  # each once
    assert len({by.split(" (")[0] for _, by in starts}) == 2  # both workers took part
    journal = (tmp_path / "outputs/tiny/.work/journal.jsonl").read_text().splitlines()
    assert len(journal) == len({json.loads(line)["unit_id"] for line in journal}) == 7
    assert store.job(1)["state"] == "SUCCEEDED"
    assert outputs(tmp_path / "outputs" / "tiny") == reference


def test_a_worker_killed_mid_unit_loses_its_lease_and_another_finishes_the_job(tmp_path, reference):
    assert main(["submit", str(write_job(tmp_path, BIGGER_JOB))]) == 0
    worker = start_worker("--lease", "2", faults={"delay_s": 0.5})
    wait_for(lambda: unit_states()["SUCCEEDED"] >= 1 and unit_states()["RUNNING"] == 1)
    worker.kill()
    worker.communicate(timeout=30)
    assert work_until_empty() == 0
    store = open_store(queue_path())
    assert store.job(1)["state"] == "SUCCEEDED"
    assert any("stopped responding (lease expired); handing it out again" in event["message"] for event in store.events(1))
    assert max(unit["attempts"] for unit in store.units(1)) == 2
    assert outputs(tmp_path / "outputs" / "tiny") == reference
    assert not list((tmp_path / "outputs").rglob("*.partial"))


def test_sigterm_hands_the_running_unit_back_and_exits_143_as_run_does(tmp_path, monkeypatch, capsys):
    assert main(["submit", str(write_job(tmp_path))]) == 0
    slowed_down(monkeypatch, {"delay_s": 30})

    def terminate_once_running() -> None:
        wait_for(lambda: unit_states()["RUNNING"] == 1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_running, daemon=True).start()
    assert main(["worker", "--workers", "0", "--device", "cpu"]) == 143
    assert capsys.readouterr().err.endswith("sefa-render: terminated; finished files are kept, "
                                            "unfinished ones were removed\n")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    units = open_store(queue_path()).units(1)
    assert [(unit["state"], unit["attempts"]) for unit in units] == [("PENDING", 0)] * 4


def test_a_failing_unit_fails_the_job_and_retry_finishes_it(tmp_path, reference, monkeypatch, capsys):
    assert main(["submit", str(write_job(tmp_path, BIGGER_JOB))]) == 0
    with monkeypatch.context() as patched:
        slowed_down(patched, {"raise": "top_001"})
        assert work_until_empty() == 0
    capsys.readouterr()
    assert main(["status", "1"]) == 1
    status = capsys.readouterr().out
    assert "job 1 'tiny': FAILED" in status
    assert "FAILED     attempts 3  videos/clips/top_001.mp4: InjectedFault: injected failure" in status
    manifest = json.loads((tmp_path / "outputs/tiny/manifest.json").read_text())
    assert [(failure["what"], failure["attempts"]) for failure in manifest["failed"]] == [("videos/clips/top_001.mp4", 3)]
    assert main(["logs", "1"]) == 0
    assert "(giving up after 3 attempts)\nTraceback" in capsys.readouterr().out

    assert main(["retry", "1"]) == 0
    assert work_until_empty() == 0
    assert open_store(queue_path()).job(1)["state"] == "SUCCEEDED"
    assert outputs(tmp_path / "outputs" / "tiny") == reference
    assert json.loads((tmp_path / "outputs/tiny/manifest.json").read_text())["failed"] == []


def test_direction_files_that_cannot_be_written_are_counted_as_failed_as_run_counts_them(tmp_path, monkeypatch):
    def no_room(direction_set, folder):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("render.runner.save_direction_set", no_room)
    counted = {}
    for how in ("run", "queue"):
        folder = tmp_path / how
        job = write_job(folder)
        if how == "run":
            run_job(job, folder / "outputs", workers=0, progress=False)
        else:
            assert main(["submit", str(job), "--output-root", str(folder / "outputs")]) == 0
            assert work_until_empty() == 0
        manifest = json.loads((folder / "outputs/tiny/manifest.json").read_text())
        counted[how] = [failure["what"] for failure in manifest["failed"]], manifest["run"]["failed_units"]
    assert counted["queue"] == counted["run"] == (["directions/top"], 1)


def test_a_unit_whose_journal_line_cannot_be_written_is_rendered_again_not_a_crash(tmp_path, monkeypatch, capsys):
    from render.journal import Journal

    append, full = Journal.append, [True]

    def full_once(self, *args):
        if full.pop() if full else False:
            raise OSError(errno.ENOSPC, "No space left on device")
        return append(self, *args)

    monkeypatch.setattr(Journal, "append", full_once)
    assert main(["submit", str(write_job(tmp_path))]) == 0
    assert work_until_empty() == 0
    assert open_store(queue_path()).job(1)["state"] == "SUCCEEDED"
    assert "journal.jsonl: cannot be written (No space left on device) (attempt 1)" in capsys.readouterr().out


def test_a_cancelled_job_does_not_run_until_it_is_retried(tmp_path, capsys):
    assert main(["submit", str(write_job(tmp_path))]) == 0
    assert main(["cancel", "1"]) == 0
    assert work_until_empty() == 0
    assert not (tmp_path / "outputs").exists()
    assert main(["cancel", "1"]) == 2
    assert "job 1 is already CANCELLED" in capsys.readouterr().err
    assert main(["retry", "1"]) == 0
    assert work_until_empty() == 0
    assert open_store(queue_path()).job(1)["state"] == "SUCCEEDED"
    capsys.readouterr()
    assert main(["logs", "1", "-f"]) == 0  # the job has ended: -f stops
    assert capsys.readouterr().out.splitlines()[-1].endswith("job SUCCEEDED: 4 unit(s) done, 0 failed → "
                                                             f"{tmp_path / 'outputs/tiny/manifest.json'}")


def test_cancel_force_aborts_the_unit_a_worker_is_rendering(tmp_path, monkeypatch):
    assert main(["submit", str(write_job(tmp_path))]) == 0
    slowed_down(monkeypatch, {"delay_s": 0.6})  # the abort comes at the unit's first progress report
    store = open_store(queue_path())

    def cancel_once_running() -> None:
        wait_for(lambda: unit_states()["RUNNING"] == 1)
        store.cancel(1, force=True)

    threading.Thread(target=cancel_once_running, daemon=True).start()
    assert run_worker(open_store(queue_path()), device="cpu", workers=0, until_empty=True, lease_s=0.3, poll_s=0.05) == 0
    assert unit_states() == Counter({"CANCELLED": 4})
    assert any("report from attempt 1 refused" in event["message"] for event in store.events(1))
    assert not list((tmp_path / "outputs").rglob("*.mp4"))


def test_a_missing_checkpoint_fails_its_job_but_not_the_worker(tmp_path):
    doomed = write_job(tmp_path / "doomed")
    fine = write_job(tmp_path / "fine", dict(TINY_JOB, name="fine"))
    assert main(["submit", str(doomed), str(fine)]) == 0
    (tmp_path / "doomed" / "gan.pt").unlink()
    assert work_until_empty() == 0
    store = open_store(queue_path())
    assert store.job(1)["state"] == "FAILED"
    assert store.job(1)["error"] == f"{doomed}: models.gan.checkpoint: file not found: {doomed.parent / 'gan.pt'}"
    assert store.job(2)["state"] == "SUCCEEDED"


def test_reading_the_queue_does_not_import_torch(tmp_path):
    store = open_store(queue_path())
    store.submit([{"name": "a", "spec_sha256": "a", "spec_yaml": "", "source": "/jobs/a.yaml", "output_dir": "/out/a",
                   "priority": 0}])
    script = ("import sys; from render.cli import main; "
              "codes = [main(['queue']), main(['status', '1']), main(['logs', '1'])]; "
              "print(codes, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[-1] == "[0, 0, 0] False", result.stderr
