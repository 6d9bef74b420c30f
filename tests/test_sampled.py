"""Sampled-edit datasets in WebDataset tar shards: read back, reproducible, resumable, bad input refused."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from jobs import TINY_JOB, write_job
from render.cli import main
from render.runner import run_job
from render.spec import JobSpec, load_job

SAMPLED_JOB = copy.deepcopy(TINY_JOB)
SAMPLED_JOB["directions"]["top"]["components"] = "0-2"
SAMPLED_JOB["seeds"]["pairs"] = "10-14"
SAMPLED_JOB["outputs"] = [{"dataset": {
    "name": "aug", "directions": "top", "seeds": "pairs", "layout": "webdataset", "shard_size": 4,
    "samples": {"per_seed": 2, "k": 2, "seed": 5, "alpha": {"uniform": [-3, 3]}}}}]


def _run(folder: Path, job: dict = SAMPLED_JOB, workers: int = 0):
    return run_job(write_job(folder, job), folder / "outputs", workers=workers, progress=False)


def _tars(folder: Path) -> list[Path]:
    return sorted((folder / "outputs" / "tiny" / "datasets" / "aug").glob("*.tar"))


def test_shards_read_back_with_webdataset_and_datasets(tmp_path: Path) -> None:
    wds = pytest.importorskip("webdataset")
    hf = pytest.importorskip("datasets")
    summary = _run(tmp_path)
    tars = _tars(tmp_path)
    assert [t.name for t in tars] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]  # 10 samples by 4
    [entry] = [a for a in json.loads(summary.manifest.read_text())["artifacts"] if a["kind"] == "dataset"]
    assert (entry["samples"], entry["shards"], entry["files"]) == (10, 3, "datasets/aug/train-{000000..000002}.tar")
    samples = list(wds.WebDataset(str(summary.output_dir / entry["files"]), shardshuffle=False).decode("rgb8"))
    assert [s["__key__"] for s in samples] == [f"{i:010d}" for i in range(10)]
    first = samples[0]
    assert first["input.png"].shape == first["edited.png"].shape == (32, 32, 3)
    assert (first["input.png"] != first["edited.png"]).any()
    meta = first["json"]
    assert meta["seed"] == 10 and len(meta["directions"]) == len(set(meta["directions"])) == 2
    assert all(-3 <= a <= 3 for a in meta["alphas"])
    loaded = hf.load_dataset("webdataset", data_files={"train": [str(t) for t in tars]}, split="train")
    assert len(loaded) == 10 and {"input.png", "edited.png", "json"} <= set(loaded.column_names)


def test_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    _run(tmp_path / "a", workers=0)
    _run(tmp_path / "b", workers=2)
    a, b = _tars(tmp_path / "a"), _tars(tmp_path / "b")
    assert [t.read_bytes() for t in a] == [t.read_bytes() for t in b]
    with tarfile.open(a[0]) as tar:
        assert {(m.mtime, m.uid, m.uname) for m in tar.getmembers()} == {(0, 0, "")}


def test_resume_renders_only_missing_shards(tmp_path: Path) -> None:
    _run(tmp_path)
    tars = _tars(tmp_path)
    before = [t.read_bytes() for t in tars]
    tars[1].unlink()
    summary = _run(tmp_path)
    assert summary.rendered == 1
    assert [t.read_bytes() for t in _tars(tmp_path)] == before


def test_a_run_killed_mid_shard_resumes_that_shard_to_the_same_bytes(tmp_path: Path) -> None:
    job = copy.deepcopy(SAMPLED_JOB)  # two shards of 40 samples; a shard renders in batches of 32 on the CPU
    job["outputs"][0]["dataset"].update(shard_size=40)
    job["outputs"][0]["dataset"]["samples"].update(per_seed=16)
    _run(tmp_path / "whole", job)
    killed = tmp_path / "killed"
    faults = {"kill": "train-000001", "marker_dir": str(tmp_path)}  # SIGKILL after the shard's first batch
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "SEFA_RENDER_FAULTS": json.dumps(faults)}
    process = subprocess.run([sys.executable, "-m", "render", "run", str(write_job(killed, job)), "--workers", "0",
                              "--no-progress"], cwd=killed, env=env, capture_output=True, text=True, timeout=120)
    assert process.returncode == -9, process.stderr
    folder = killed / "outputs" / "tiny" / "datasets" / "aug"
    assert [t.name for t in _tars(killed)] == ["train-000000.tar"]
    assert [p.name.split(".")[1] for p in folder.glob(".*.partial")] == ["train-000001"]  # killed while writing it
    first = _tars(killed)[0].stat().st_ino
    assert _run(killed, job).rendered == 1  # only the shard that was cut short
    assert _tars(killed)[0].stat().st_ino == first
    assert [t.read_bytes() for t in _tars(killed)] == [t.read_bytes() for t in _tars(tmp_path / "whole")]
    assert not list((killed / "outputs").rglob("*.partial"))


@pytest.mark.parametrize("change, message", [
    ({"samples": {"alpha": {"normal": -1}}}, "outputs[0].dataset.samples.alpha: normal: σ -1.0 must be in [0, 1000]"),
    ({"samples": {"k": 5}}, "outputs[0].dataset.samples.k: 5 is more than the 3 directions of set 'top'"),
    ({"layout": "zip"}, "outputs[0].dataset.layout: expected one of 'imagefolder', 'webdataset' or 'parquet', got 'zip'"),
    ({"test_fraction": 0.2}, "outputs[0].dataset: 'test_fraction' does not apply to layout 'webdataset'"),
    ({"alphas": [1]}, "outputs[0].dataset: 'alphas' does not apply to layout 'webdataset'"),
    ({"layout": "imagefolder", "alphas": [1], "samples": None},
     "outputs[0].dataset: 'shard_size' does not apply to layout 'imagefolder'"),
    ({"seeds": "0-19", "shard_size": 1, "samples": {"per_seed": 10000}},
     "outputs[0].dataset.shard_size: 20 seeds × 10000 samples in shards of 1 are 200,000 shards, more than 100,000"),
])
def test_bad_input_is_one_line_naming_the_field_and_exit_code_2(tmp_path: Path, capsys, change: dict,
                                                                 message: str) -> None:
    job = copy.deepcopy(SAMPLED_JOB)
    dataset = job["outputs"][0]["dataset"]
    for key, value in change.items():
        if value is None:
            del dataset[key]
        elif isinstance(value, dict):
            dataset[key].update(value)
        else:
            dataset[key] = value
    path = write_job(tmp_path, job)
    assert main(["run", str(path), "--no-progress"]) == 2
    assert capsys.readouterr().err == f"sefa-render: error: {path}: {message}\n"
    assert not (tmp_path / "outputs" / "tiny" / "datasets").exists()


def test_parquet_shards_hold_the_samples_of_the_tars_and_load_with_datasets(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    hf = pytest.importorskip("datasets")
    job = copy.deepcopy(SAMPLED_JOB)
    job["outputs"][0]["dataset"]["layout"] = "parquet"
    summary = _run(tmp_path / "parquet", job)
    [entry] = [a for a in json.loads(summary.manifest.read_text())["artifacts"] if a["kind"] == "dataset"]
    assert (entry["layout"], entry["files"]) == ("parquet", "datasets/aug/train-{000000..000002}.parquet")
    files = sorted((summary.output_dir / "datasets" / "aug").glob("*.parquet"))
    assert [f.name for f in files] == ["train-000000.parquet", "train-000001.parquet", "train-000002.parquet"]
    _run(tmp_path / "tar")
    rows = [row for f in files for row in pq.read_table(f).to_pylist()]
    members = {}
    for tar in _tars(tmp_path / "tar"):
        with tarfile.open(tar) as opened:
            members |= {m.name: opened.extractfile(m).read() for m in opened.getmembers()}
    for row in rows:  # the same images and metadata as the WebDataset layout's
        key = row.pop("key")
        assert row.pop("input_image")["bytes"] == members[f"{key}.input.png"]
        assert row.pop("edited_image")["bytes"] == members[f"{key}.edited.png"]
        assert row == json.loads(members[f"{key}.json"])
    assert len(rows) == 10
    again = _run(tmp_path / "again", job).output_dir / "datasets" / "aug"
    assert [f.read_bytes() for f in files] == [(again / f.name).read_bytes() for f in files]
    loaded = hf.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    assert loaded[0]["input_image"].size == (32, 32) and loaded[0]["seed"] == 10


def test_parquet_without_pyarrow_is_refused_in_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "pyarrow" else find_spec(name, *rest))
    job = copy.deepcopy(SAMPLED_JOB)
    job["outputs"][0]["dataset"]["layout"] = "parquet"
    path = write_job(tmp_path, job)
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == (f"sefa-render: error: {path}: outputs[0].dataset: layout 'parquet' needs "
                                       "pyarrow: pip install 'sefa-render[parquet]'\n")


def test_a_sampled_job_survives_a_round_trip_through_json(tmp_path: Path) -> None:
    spec = load_job(write_job(tmp_path, SAMPLED_JOB)).spec  # the queue stores specs dumped with every default
    assert JobSpec.model_validate(json.loads(json.dumps(spec.model_dump(mode="json")))) == spec


def test_jpeg_shards_when_the_dataset_asks_for_jpeg(tmp_path: Path) -> None:
    job = copy.deepcopy(SAMPLED_JOB)
    job["outputs"][0]["dataset"].update(image_format="jpg", shard_size=10)
    _run(tmp_path, job)
    with tarfile.open(_tars(tmp_path)[0]) as tar:
        assert tar.getnames()[:3] == ["0000000000.input.jpg", "0000000000.edited.jpg", "0000000000.json"]
        assert tar.extractfile("0000000000.input.jpg").read(3) == b"\xff\xd8\xff"


def test_draws_follow_each_distribution() -> None:
    from render.sampled import draw
    from render.spec import SampledEdits
    weighted = SampledEdits(k=1, alpha={"choices": [-2, 5], "weights": [0, 1]})
    assert {draw(weighted, 3, (), i).alphas for i in range(20)} == {(5.0,)}
    flat = SampledEdits(k=3, alpha={"normal": 0})
    assert all(draw(flat, 3, (), i).alphas == (0.0, 0.0, 0.0) for i in range(5))
    per_class = {mode: [draw(SampledEdits(per_seed=2, classes=mode, alpha={"uniform": [0, 1]}), 3, (7, 8, 9), i)
                        .class_index for i in range(6)] for mode in ("fixed", "list", "cycle")}
    assert per_class == {"fixed": [7] * 6, "list": [7, 7, 8, 8, 9, 9], "cycle": [7, 8, 9, 7, 8, 9]}
    drawn = {draw(SampledEdits(classes="uniform", alpha={"uniform": [0, 1]}), 3, (7, 8, 9), i).class_index
             for i in range(40)}
    assert drawn == {7, 8, 9}


def test_a_conditional_model_records_each_samples_class(tmp_path: Path) -> None:
    from checkpoints_biggan import TINY_BIGGAN, write_biggan
    write_biggan(tmp_path / "biggan", TINY_BIGGAN)
    job = copy.deepcopy(SAMPLED_JOB)
    job["models"] = {"big": {"checkpoint": "biggan", "truncation_psi": 0.5}}
    job["directions"]["top"]["model"] = "big"
    job["outputs"][0]["dataset"].update(classes=[1, 3], shard_size=10)
    job["outputs"][0]["dataset"]["samples"].update(classes="cycle", per_seed=1)
    _run(tmp_path, job)
    with tarfile.open(_tars(tmp_path)[0]) as tar:
        metas = [json.loads(tar.extractfile(m).read()) for m in tar.getmembers() if m.name.endswith(".json")]
    assert [m["class_index"] for m in metas] == [1, 3, 1, 3, 1]
