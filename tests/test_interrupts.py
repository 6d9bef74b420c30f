"""Stopping a run: SIGTERM like Ctrl-C, workers that never outlive the coordinator, closed streams.

Each run is a small job in a fresh interpreter, slowed down by fault injection so that it can be
stopped half-way; every wait is bounded.
"""

import copy
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from jobs import TINY_JOB, VIDEO_JOB, write_job

REPO = Path(__file__).resolve().parents[1]

BIGGER_JOB = copy.deepcopy(TINY_JOB)  # six units: enough to stop half-way
BIGGER_JOB["directions"]["top"]["components"] = "0-3"


def environment(token: str, **extra: str) -> dict[str, str]:
    """This checkout on the path, progress bars as the test says, and a token that marks our processes."""
    env = {key: value for key, value in os.environ.items() if key != "TQDM_DISABLE"}
    return {**env, "PYTHONPATH": str(REPO), "SEFA_RENDER_TEST_TOKEN": token, **extra}


def processes_with(token: str) -> list[int]:
    """Pids of the processes (coordinator, fork server, workers, ffmpeg) that carry `token` in their environment."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"SEFA_RENDER_TEST_TOKEN={token}".encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def start_slow_run(tmp_path: Path, token: str) -> subprocess.Popen:
    job = write_job(tmp_path, BIGGER_JOB)
    env = environment(token, SEFA_RENDER_FAULTS=json.dumps({"delay_s": 0.5}))
    return subprocess.Popen([sys.executable, "-m", "render", "run", str(job), "--no-progress", "--workers", "2"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def stop_once_a_unit_is_journaled(tmp_path: Path, process: subprocess.Popen, sig: int) -> None:
    journal = tmp_path / "outputs" / "tiny" / ".work" / "journal.jsonl"
    assert wait_until(lambda: journal.exists() and journal.read_text().count("\n") >= 1 or process.poll() is not None, 90)
    assert process.poll() is None, "the run ended before it could be stopped"
    os.kill(process.pid, sig)  # the coordinator only, not its process group


def snapshot(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def token():
    token = uuid.uuid4().hex
    yield token
    for pid in processes_with(token):  # never leave a process behind, even when the test failed
        os.kill(pid, signal.SIGKILL)


def test_sigterm_stops_like_ctrl_c_and_takes_the_workers_with_it(tmp_path, token):
    process = start_slow_run(tmp_path, token)
    stop_once_a_unit_is_journaled(tmp_path, process, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr.endswith("sefa-render: terminated; finished files are kept, unfinished ones were removed\n")
    assert wait_until(lambda: not processes_with(token), 15)
    job_folder = tmp_path / "outputs" / "tiny"
    assert not list(job_folder.rglob("*.partial"))
    with open(job_folder / ".work" / "lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released


def test_workers_of_a_killed_coordinator_stop_by_themselves(tmp_path, token):
    process = start_slow_run(tmp_path, token)
    stop_once_a_unit_is_journaled(tmp_path, process, signal.SIGKILL)
    process.communicate(timeout=60)
    assert wait_until(lambda: not processes_with(token), 15), "workers outlived their coordinator"
    job_folder = tmp_path / "outputs" / "tiny"
    assert not list(job_folder.rglob("*.partial"))  # they cleaned up as for Ctrl-C
    files = snapshot(job_folder)
    time.sleep(1.0)
    assert snapshot(job_folder) == files


def test_a_closed_stderr_with_the_progress_bar_on_still_renders_the_job(tmp_path, token):
    job = write_job(tmp_path, VIDEO_JOB)
    result = subprocess.run(["sh", "-c", 'exec "$0" -m render run "$1" --workers 0 2>&-', sys.executable, str(job)],
                            cwd=tmp_path, env=environment(token), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "rendered 1 units" in result.stdout
    assert json.loads((tmp_path / "outputs" / "tiny" / "manifest.json").read_text())["run"]["rendered_units"] == 1


def test_a_reader_that_closes_stdout_early_gets_no_traceback(tmp_path, token):
    job = write_job(tmp_path, VIDEO_JOB)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is printed (`| true`)
    result = subprocess.run([sys.executable, "-m", "render", "run", str(job), "--no-progress", "--workers", "0"],
                            cwd=tmp_path, env=environment(token), stdout=write_end, stderr=subprocess.PIPE, text=True,
                            timeout=120)
    os.close(write_end)
    assert (result.returncode, result.stderr) == (0, "")
    assert (tmp_path / "outputs" / "tiny" / "manifest.json").is_file()
