"""`--backend ray` (render/ray_backend.py) on a two-node Ray cluster on this host, the head node with two fake GPUs:
GPU actors each see their own GPU; a job rendered on both nodes, through `run` and through the queue, has the local
pool's bytes and journal; an actor killed mid-unit costs one attempt; SIGTERM stops a run as it does a local one, and
the next run resumes. Without Ray, one line says how to install it."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import render
from jobs import write_job
from render.cli import main
from render.devices import WorkerSlot
from render.errors import RenderError
from render.queue.store import open_store, queue_path
from render.queue.submit import submit_jobs
from render.queue.worker import run_worker
from render.runner import run_job
from test_pool import BIGGER_JOB, outputs

REPO = Path(__file__).resolve().parents[1]
OBJECT_STORE_BYTES = 80 * 2**20  # per node; Ray's minimum is 75 MiB
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray: pip install '.[ray]'")


def journal(job_folder: Path) -> dict[str, dict]:
    lines = (job_folder / ".work" / "journal.jsonl").read_text().splitlines()
    return {entry["unit_id"]: entry for entry in map(json.loads, lines)}


@pytest.fixture(scope="module")
def ray_nodes(tmp_path_factory):
    """A head node (2 CPUs, 2 fake GPUs) and a worker node (1 CPU), with this process connected as the driver.

    Ray writes under HOME (an auth token) and its nodes' processes inherit this environment: a temporary HOME, token
    authentication off, and this checkout first on PYTHONPATH so that actors import the `render` under test."""
    import ray
    from ray.cluster_utils import Cluster

    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init replaces it: the other tests' processes expect the default
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        patch.setenv("RAY_AUTH_MODE", "disabled")
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        patch.delenv("RAY_ADDRESS", raising=False)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 2, "include_dashboard": False,
                                                                 "object_store_memory": OBJECT_STORE_BYTES})
        try:
            cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, logging_level="warning")
            yield cluster
        finally:
            ray.shutdown()
            cluster.shutdown()
            signal.signal(signal.SIGTERM, sigterm)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The bigger job rendered in-process: the bytes and journal every Ray run must reproduce."""
    folder = tmp_path_factory.mktemp("reference")
    summary = run_job(write_job(folder, BIGGER_JOB), folder / "outputs", workers=0, progress=False)
    return outputs(summary.output_dir), journal(summary.output_dir)


@needs_ray
def test_each_gpu_actor_sees_its_own_gpu_and_imports_this_checkout(ray_nodes):
    import ray

    from render.ray_backend import _check_actor, ray_cluster

    with ray_cluster() as cluster:
        slots = cluster.plan_workers("auto", None)
        assert slots == [WorkerSlot("cuda:0", 1)] * 2  # one per GPU; 3 CPUs shared by 2 actors
        actors = [cluster.start_actor(slot, None, len(slots)) for slot in slots]
        try:
            where = ray.get([actor.ready.remote() for actor in actors])
        finally:
            for actor in actors:
                ray.kill(actor)
    assert sorted(w["cuda_visible_devices"] for w in where) == ["0", "1"]
    assert sorted(w["gpu_ids"][0] for w in where) == [0, 1]
    assert {w["render"] for w in where} == {render.__file__}
    assert {w["torch_threads"] for w in where} == {1}
    # The GPUs are fake: torch cannot use them, which a run reports once instead of failing every unit.
    with pytest.raises(RenderError, match=r"was given GPU \[[01]\] but torch there sees no CUDA device"):
        _check_actor(slots[0], where[0])


@needs_ray
def test_a_job_on_two_nodes_has_the_local_pools_bytes_and_journal(ray_nodes, tmp_path, reference):
    from render.ray_backend import ray_cluster

    with ray_cluster() as cluster:
        # Three one-CPU actors: the head node holds two, so the worker node renders too.
        summary = run_job(write_job(tmp_path, BIGGER_JOB), tmp_path / "outputs", device="cpu", workers=3,
                          progress=False, cluster=cluster)
    assert summary.rendered == 7 and not summary.failed
    assert outputs(summary.output_dir) == reference[0]
    assert journal(summary.output_dir) == reference[1]


@needs_ray
def test_the_queue_worker_renders_on_ray_actors(ray_nodes, tmp_path, reference):
    from render.ray_backend import ray_cluster

    store = open_store(queue_path())
    submit_jobs(store, [write_job(tmp_path, BIGGER_JOB)], tmp_path / "outputs")
    with ray_cluster() as cluster:
        assert run_worker(store, device="cpu", workers=2, until_empty=True, lease_s=60, poll_s=0.05,
                          cluster=cluster) == 0
    assert store.job(1)["state"] == "SUCCEEDED"
    assert outputs(tmp_path / "outputs" / "tiny") == reference[0]


def run_cli(job: Path, address: str | None, faults: dict) -> subprocess.Popen:
    """`sefa-render run JOB --backend ray [--address ADDRESS]` on two CPU actors, with faults injected."""
    joining = ["--address", address] if address else []
    return subprocess.Popen([sys.executable, "-m", "render", "run", str(job), "--no-progress", "--backend", "ray",
                             *joining, "--device", "cpu", "--workers", "2"], cwd=job.parent,
                            env={**os.environ, "SEFA_RENDER_FAULTS": json.dumps(faults)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@needs_ray
def test_an_actor_killed_mid_unit_costs_one_attempt_and_the_job_completes(ray_nodes, tmp_path, reference):
    """Through the command line, joining the cluster by --address; the actor rendering top_000 kills itself once."""
    process = run_cli(write_job(tmp_path, BIGGER_JOB), ray_nodes.address,
                      {"kill": "top_000", "marker_dir": str(tmp_path)})
    process.stderr = process.communicate(timeout=180)[1]
    assert process.returncode == 0, process.stderr
    assert list(tmp_path.glob("killed-*"))
    assert "videos/clips/top_000_first.mp4: Ray actor lost (" in process.stderr
    assert "(retrying)" in process.stderr
    assert outputs(tmp_path / "outputs" / "tiny") == reference[0]
    assert journal(tmp_path / "outputs" / "tiny") == reference[1]


@needs_ray
def test_sigterm_stops_a_ray_run_like_ctrl_c_and_the_next_run_resumes(ray_nodes, tmp_path, reference):
    """The first run starts a local Ray instance of its own (no address), whose SIGTERM handler Ray would install."""
    from render.ray_backend import ray_cluster

    job = write_job(tmp_path, BIGGER_JOB)
    process = run_cli(job, None, {"delay_s": 0.5})
    journal_file = tmp_path / "outputs" / "tiny" / ".work" / "journal.jsonl"
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline and (
            not journal_file.exists() or len(journal_file.read_text().splitlines()) < 2):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 143, stderr  # not Ray's own SIGTERM handler (sys.exit)
    assert stderr.endswith("sefa-render: terminated; finished files are kept, unfinished ones were removed\n")
    assert not list((tmp_path / "outputs").rglob("*.partial"))
    done = len(journal(tmp_path / "outputs" / "tiny"))
    with ray_cluster() as cluster:
        summary = run_job(job, tmp_path / "outputs", device="cpu", workers=2, progress=False, cluster=cluster)
    assert (summary.skipped, summary.rendered) == (done, 7 - done) and 2 <= done < 7
    assert outputs(summary.output_dir) == reference[0]


@pytest.mark.parametrize("command", ["run", "worker"])
def test_without_ray_one_line_says_how_to_install_it(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    argv = [command, str(write_job(tmp_path)), "--backend", "ray"] if command == "run" else [command, "--backend", "ray"]
    assert main(argv) == 2
    assert capsys.readouterr().err == "sefa-render: error: the Ray backend needs Ray: pip install 'sefa-render[ray]'\n"
    assert not (tmp_path / "outputs").exists()


def test_an_address_needs_the_ray_backend(tmp_path, capsys):
    assert main(["run", str(write_job(tmp_path)), "--address", "head:6379"]) == 2
    assert capsys.readouterr().err == "sefa-render: error: --address head:6379: only used with --backend ray\n"
