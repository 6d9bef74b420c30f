"""The worker pool in real processes: determinism across worker counts, retries, dead workers,
a killed coordinator, Ctrl-C, and factorizing once."""

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import render.directions
import render.pool
from jobs import TINY_JOB, write_job
from render.errors import OutputError, RenderError
from render.pool import Bookkeeping
from render.runner import run_job

REPO = Path(__file__).resolve().parents[1]

# Four videos and three dataset shards: enough units to interrupt a run half-way.
BIGGER_JOB = copy.deepcopy(TINY_JOB)
BIGGER_JOB["directions"]["top"]["components"] = "0-3"
BIGGER_JOB["seeds"]["pairs"] = "10-49"


def outputs(job_folder: Path) -> dict[str, bytes]:
    """Every artifact's bytes, keyed by path; the run's own bookkeeping and manifest excluded."""
    return {str(path.relative_to(job_folder)): path.read_bytes() for path in sorted(job_folder.rglob("*"))
            if path.is_file() and ".work" not in path.parts and path.name != "manifest.json"}


def manifest(summary) -> dict:
    return json.loads(summary.manifest.read_text())


def run_cli(job: Path, *args: str, faults: dict | None = None, **popen) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    if faults:
        environment["SEFA_RENDER_FAULTS"] = json.dumps(faults)
    return subprocess.Popen([sys.executable, "-m", "render", "run", str(job), "--no-progress", *args],
                            cwd=job.parent, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The bigger job rendered in-process, uninterrupted: what every other run must reproduce."""
    folder = tmp_path_factory.mktemp("reference")
    summary = run_job(write_job(folder, BIGGER_JOB), folder / "outputs", workers=0, progress=False)
    return outputs(summary.output_dir)


def test_outputs_are_byte_identical_whatever_the_number_of_workers(tmp_path, reference):
    for workers in (1, 2):
        folder = tmp_path / f"workers{workers}"
        summary = run_job(write_job(folder, BIGGER_JOB), folder / "outputs", workers=workers, progress=False)
        assert summary.rendered == 7 and not summary.failed
        assert outputs(summary.output_dir) == reference


def test_a_failing_unit_is_retried_then_reported_while_the_rest_complete(tmp_path):
    job = write_job(tmp_path, TINY_JOB)
    process = run_cli(job, "--workers", "2", faults={"raise": "top_001"})
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert stderr.count("InjectedFault: injected failure for videos/clips/top_001.mp4 (retrying)") == 2
    assert "(giving up after 3 attempts)" in stderr
    result = json.loads((tmp_path / "outputs" / "tiny" / "manifest.json").read_text())
    assert [(f["what"], f["attempts"]) for f in result["failed"]] == [("videos/clips/top_001.mp4", 3)]
    assert "InjectedFault" in result["failed"][0]["traceback"]
    assert [a["path"] for a in result["artifacts"] if a["kind"] == "video"] == ["videos/clips/top_000_first.mp4"]
    assert (tmp_path / "outputs/tiny/datasets/pairs/train/metadata.jsonl").is_file()
    assert not (tmp_path / "outputs/tiny/videos/clips/top_001.mp4").exists()


def test_a_dataset_with_a_failed_shard_does_not_look_finished(tmp_path, monkeypatch):
    monkeypatch.setenv("SEFA_RENDER_FAULTS", json.dumps({"raise": "(test shard 0)"}))
    render.faults._faults.cache_clear()
    try:
        summary = run_job(write_job(tmp_path), tmp_path / "outputs", workers=0, retries=0, progress=False)
    finally:
        render.faults._faults.cache_clear()
    assert [f["what"] for f in summary.failed] == ["datasets/pairs (test shard 0)"]
    assert not list((summary.output_dir / "datasets").rglob("metadata.jsonl"))
    assert "dataset" not in [a["kind"] for a in manifest(summary)["artifacts"]]


def test_a_killed_worker_is_replaced_and_the_job_completes(tmp_path, reference):
    job = write_job(tmp_path, BIGGER_JOB)
    faults = {"kill": "top_000", "marker_dir": str(tmp_path)}
    process = run_cli(job, "--workers", "2", faults=faults)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "videos/clips/top_000_first.mp4: RuntimeError" not in stderr
    assert "worker process died (exit code -9) (retrying)" in stderr
    assert list(tmp_path.glob("killed-*"))
    assert outputs(tmp_path / "outputs" / "tiny") == reference


def journal_lines(folder: Path) -> int:
    journal = folder / "outputs" / "tiny" / ".work" / "journal.jsonl"
    return len(journal.read_text().splitlines()) if journal.exists() else 0


def interrupt_midway(tmp_path: Path, sig: int) -> tuple[subprocess.Popen, str]:
    """Start a slowed-down run in its own process group, send `sig` once some units are journaled;
    return the process and its stderr."""
    job = write_job(tmp_path, BIGGER_JOB)
    process = run_cli(job, "--workers", "2", faults={"delay_s": 0.6}, start_new_session=True)
    deadline = time.monotonic() + 90
    while journal_lines(tmp_path) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    os.killpg(process.pid, sig)
    _, stderr = process.communicate(timeout=60)
    return process, stderr


def test_a_killed_coordinator_resumes_with_only_the_unfinished_units(tmp_path, reference):
    process, _ = interrupt_midway(tmp_path, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    finished = journal_lines(tmp_path)
    assert 2 <= finished < 7
    summary = run_job(tmp_path / "job.yaml", tmp_path / "outputs", workers=2, progress=False)
    assert (summary.skipped, summary.rendered) == (finished, 7 - finished)
    assert outputs(summary.output_dir) == reference
    assert not list(summary.output_dir.rglob("*.partial"))


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(tmp_path, reference):
    process, stderr = interrupt_midway(tmp_path, signal.SIGINT)
    assert process.returncode == 130
    assert stderr.endswith("sefa-render: interrupted; finished files are kept, unfinished ones were removed\n")
    job_folder = tmp_path / "outputs" / "tiny"
    assert not list(job_folder.rglob("*.partial"))
    for video in job_folder.glob("videos/*/*.mp4"):  # whatever is under a final name is complete
        assert subprocess.run([sys.executable, "-c", f"import imageio_ffmpeg as f; print(f.count_frames_and_secs({str(video)!r})[0])"],
                              capture_output=True, text=True).stdout.strip() == "6"
    summary = run_job(tmp_path / "job.yaml", tmp_path / "outputs", workers=2, progress=False)
    assert summary.skipped + summary.rendered == 7 and summary.skipped >= 2
    assert outputs(summary.output_dir) == reference


def test_a_second_run_renders_nothing_and_a_changed_spec_or_a_damaged_file_only_what_changed(tmp_path):
    job = write_job(tmp_path)
    first = run_job(job, tmp_path / "outputs", workers=0, progress=False)
    assert (first.rendered, first.skipped) == (4, 0)
    again = run_job(job, tmp_path / "outputs", workers=0, progress=False)
    assert (again.rendered, again.skipped) == (0, 4)
    assert [a["kind"] for a in manifest(again)["artifacts"]] == [a["kind"] for a in manifest(first)["artifacts"]]

    changed = copy.deepcopy(TINY_JOB)
    changed["outputs"][0]["video"]["fps"] = 24
    write_job(tmp_path, changed)
    after_change = run_job(job, tmp_path / "outputs", workers=0, progress=False)
    assert (after_change.rendered, after_change.skipped) == (2, 2)  # the two videos

    (tmp_path / "outputs/tiny/videos/clips/top_001.mp4").unlink()
    shard_image = next((tmp_path / "outputs/tiny/datasets/pairs/test/edited").iterdir())
    shard_image.write_bytes(shard_image.read_bytes()[:10])  # truncated behind our back
    repaired = run_job(job, tmp_path / "outputs", workers=0, progress=False)
    assert (repaired.rendered, repaired.skipped) == (2, 2)

    intact = outputs(repaired.output_dir)
    video = tmp_path / "outputs/tiny/videos/clips/top_000_first.mp4"
    damaged = bytearray(video.read_bytes())
    damaged[len(damaged) // 3:len(damaged) // 3 + 2000] = bytes(2000)  # same size, other bytes
    video.write_bytes(bytes(damaged))
    shard_image.write_bytes(bytes(shard_image.stat().st_size))
    verified = run_job(job, tmp_path / "outputs", workers=0, progress=False)
    assert (verified.rendered, verified.skipped) == (2, 2)
    assert outputs(verified.output_dir) == intact

    forced = run_job(job, tmp_path / "outputs", workers=0, force=True, progress=False)
    assert (forced.rendered, forced.skipped) == (4, 0)


def test_factorization_happens_once_per_job_and_is_cached_for_the_next(tmp_path, monkeypatch):
    calls = []
    original = render.directions.factorize_generator
    monkeypatch.setattr(render.directions, "factorize_generator", lambda *a: calls.append(1) or original(*a))
    job = copy.deepcopy(TINY_JOB)
    job["directions"]["again"] = dict(job["directions"]["top"], names={})  # same model and layers
    path = write_job(tmp_path, job)
    first = run_job(path, tmp_path / "outputs", workers=2, progress=False)
    assert len(calls) == 1
    assert [a["source"] for a in manifest(first)["artifacts"] if a["kind"] == "directions"] == ["computed", "computed"]
    second = run_job(path, tmp_path / "outputs", workers=2, progress=False)
    assert len(calls) == 1
    assert [a["source"] for a in manifest(second)["artifacts"] if a["kind"] == "directions"] == ["cache", "cache"]


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_holds_it(tmp_path):
    import fcntl
    job = write_job(tmp_path)
    lock_path = tmp_path / "outputs" / "tiny" / ".work" / "lock"
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(OutputError, match="another sefa-render run is writing to this folder"):
            run_job(job, tmp_path / "outputs", workers=0, progress=False)


def test_a_unit_that_ran_out_of_memory_is_not_retried(tmp_path, monkeypatch):
    def out_of_memory(context, unit, generator, progress):
        raise MemoryError("cannot allocate 1.5 PiB")
    monkeypatch.setattr(render.pool, "execute_unit", out_of_memory)
    summary = run_job(write_job(tmp_path), tmp_path / "outputs", workers=0, retries=2, progress=False)
    assert {f["attempts"] for f in summary.failed} == {1}
    assert summary.failed[0]["error"] == "MemoryError: cannot allocate 1.5 PiB"


class _Recorder:
    """An observer that notes what the pool told it."""

    def __init__(self):
        self.events = []

    def progress(self, unit, steps):
        self.events.append(("progress", unit.unit_id, steps))

    def unit_finished(self, unit, result):
        self.events.append(("finished", unit.unit_id))

    def unit_failed(self, unit, failure, will_retry):
        self.events.append(("failed", unit.unit_id, will_retry))


def test_bookkeeping_hands_units_to_idle_workers_settles_answers_and_gives_up_on_workers_that_never_start():
    units = [SimpleNamespace(unit_id=name) for name in "abc"]
    book, observer, idle = Bookkeeping(units, retries=1), _Recorder(), {2, 0}
    assert [(index, unit.unit_id) for index, unit in book.assign(idle)] == [(0, "a"), (2, "b")] and not idle
    book.settle(units[0], ("finished", "a", {"files": []}), observer)
    book.settle(units[1], ("failed", "b", "ValueError: no", "trace"), observer)
    assert observer.events == [("finished", "a"), ("failed", "b", True)]
    idle = {1}
    assert [(index, unit.unit_id) for index, unit in book.assign(idle)] == [(1, "c")]
    assert book.finished == {"a": {"files": []}} and [unit.unit_id for unit in book.queue] == ["b"]
    for _ in range(3 * 2):
        book.died_idle(2, "workers keep dying")
    with pytest.raises(RenderError, match="workers keep dying"):
        book.died_idle(2, "workers keep dying")
