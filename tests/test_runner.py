"""A whole job on a tiny random DCGAN, read back through the manifest with independent readers."""

import contextlib
import errno
import json
import os
import warnings
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from jobs import TINY_JOB, write_job
from render.errors import SpecError
from render.factorize import sefa
from render.journal import Journal
from render.models.registry import load_generator
from render.runner import run_job


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("job")
    summary = run_job(write_job(folder), folder / "outputs", workers=0, progress=False)
    return folder, summary


def manifest_of(summary) -> dict:
    return json.loads(summary.manifest.read_text())


def artifacts(summary, kind) -> list[dict]:
    return [artifact for artifact in manifest_of(summary)["artifacts"] if artifact["kind"] == kind]


def test_run_writes_every_artifact_the_job_asks_for(finished_job):
    _, summary = finished_job
    manifest = manifest_of(summary)
    assert summary.output_dir.name == "tiny" and manifest["job"] == "tiny"
    assert [a["kind"] for a in manifest["artifacts"]] == ["directions", "video", "video", "dataset"]
    assert manifest["models"]["gan"]["family"] == "dcgan" and len(manifest["models"]["gan"]["sha256"]) == 64
    assert {"sefa-render", "torch", "ffmpeg"} <= set(manifest["versions"])
    assert summary.frames == 12 and summary.images == 20 * 5
    assert summary.images == len(list((summary.output_dir / "datasets").rglob("*.png")))  # the images are files
    assert not list(summary.output_dir.rglob("*.partial"))


def test_videos_decode_as_h264_yuv420p_with_the_stated_frames(finished_job):
    _, summary = finished_job
    for video in artifacts(summary, "video"):
        path = summary.output_dir / video["path"]
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        frames = list(reader)
        assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
        assert len(frames) == video["frames"] == 6 and meta["fps"] == video["fps"] == 30
        assert meta["size"] == (video["width"], video["height"]) == (66, 66 + 24)  # 2×2 cells of 32 + gutter, label


def test_the_direction_visibly_changes_the_video_frames(finished_job):
    _, summary = finished_job
    video = artifacts(summary, "video")[0]
    reader = imageio_ffmpeg.read_frames(str(summary.output_dir / video["path"]))
    width, height = next(reader)["size"]
    frames = [np.frombuffer(data, np.uint8).reshape(height, width, 3).astype(int) for data in reader]
    grid = slice(0, height - 24)
    assert np.abs(frames[0][grid] - frames[3][grid]).mean() > 3  # α −2 against α +2; H.264 noise is about 1


def test_saved_directions_are_sefa_of_the_checkpoint(finished_job):
    folder, summary = finished_job
    entry = artifacts(summary, "directions")[0]
    directions = np.load(summary.output_dir / entry["path"] / "directions.npy")
    eigenvalues = np.load(summary.output_dir / entry["path"] / "eigenvalues.npy")
    expected = sefa([load_generator(folder / "gan.pt").sefa_weight(0)])
    np.testing.assert_array_equal(directions, expected.directions)
    np.testing.assert_array_equal(eigenvalues, expected.eigenvalues)
    assert directions.shape == (6, 6) and entry["components"] == [0, 1] and entry["layers"] == [0]


def read_rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_dataset_rows_pair_originals_with_edits(finished_job):
    folder, summary = finished_job
    dataset = artifacts(summary, "dataset")[0]
    root = summary.output_dir / dataset["path"]
    train, test = read_rows(root / "train" / "metadata.jsonl"), read_rows(root / "test" / "metadata.jsonl")
    assert (len(train), len(test)) == (15 * 4, 5 * 4) and dataset["rows"] == 80
    assert dataset["splits"] == {"train": 60, "test": 20}
    assert {row["seed"] for row in test} == set(range(25, 30))
    assert len({tuple(row) for row in train + test}) == 1  # every row has the same keys, in the same order
    row = train[0]
    assert row["input_image_file_name"] == "original/0000000010.png"
    assert row["edited_image_file_name"] == "edited/0000000010_000_m3.png" and "." not in row["pair_id"]
    assert row["edit_prompt"] == "first -3.00" and train[2]["edit_prompt"] == "direction 1 -3.00"
    assert (row["method"], row["layers"], row["direction_index"], row["alpha"]) == ("sefa", [0], 0, -3.0)
    assert row["checkpoint_sha256"] == manifest_of(summary)["models"]["gan"]["sha256"]

    generator = load_generator(folder / "gan.pt")
    with torch.no_grad():
        expected = generator.synthesize(generator.latents_from_seeds([10]))
    expected_pixels = (expected * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    original = iio.imread(root / "train" / row["input_image_file_name"])
    np.testing.assert_array_equal(original, expected_pixels)  # the seed means what it means in gen_images.py
    edited = iio.imread(root / "train" / row["edited_image_file_name"])
    assert original.shape == edited.shape == (32, 32, 3)
    assert np.abs(original.astype(int) - edited.astype(int)).mean() > 10


def test_dataset_loads_with_hugging_face_imagefolder(finished_job, monkeypatch):
    datasets = pytest.importorskip("datasets")
    _, summary = finished_job
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(summary.output_dir.parent / "hf-home"))
    root = summary.output_dir / artifacts(summary, "dataset")[0]["path"]
    loaded = datasets.load_dataset("imagefolder", data_dir=str(root))
    assert set(loaded) == {"train", "test"} and loaded["train"].num_rows == 60
    features = loaded["train"].features
    image_columns = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
    assert image_columns == ["input_image", "edited_image"]
    assert loaded["train"][0]["edited_image"].size == (32, 32) and "label" not in features
    # integer columns, not null-typed ones, for a model without truncation or classes
    assert features["truncation_cutoff"].dtype == features["class_index"].dtype == "int64"
    assert (loaded["train"][0]["truncation_cutoff"], loaded["train"][0]["class_index"]) == (1, -1)


def test_a_bad_job_writes_nothing(tmp_path):
    bad = dict(TINY_JOB, outputs=[{"video": dict(TINY_JOB["outputs"][0]["video"], fps=0)}])
    with pytest.raises(SpecError):
        run_job(write_job(tmp_path, bad), tmp_path / "outputs", progress=False)
    assert not (tmp_path / "outputs").exists()


def test_outputs_do_not_depend_on_the_batch_size(finished_job, tmp_path, monkeypatch):
    """A grid larger than a batch is synthesized in chunks, with the same bytes."""
    from render.models.dcgan import DCGANGenerator
    monkeypatch.setattr(DCGANGenerator, "batch_sizes", {"cpu": 3})
    folder, summary = finished_job
    small_batches = run_job(write_job(tmp_path), tmp_path / "outputs", workers=0, progress=False)
    for artifact in artifacts(summary, "video") + artifacts(summary, "dataset"):
        for path in sorted((summary.output_dir / artifact["path"]).parent.rglob("*.*")):
            relative = path.relative_to(summary.output_dir)
            assert (small_batches.output_dir / relative).read_bytes() == path.read_bytes(), relative


def test_bf16_renders_close_to_fp32(finished_job, tmp_path):
    _, summary = finished_job
    job = dict(TINY_JOB, models={"gan": {"checkpoint": "gan.pt", "precision": "bf16"}})
    bf16 = run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)
    row = read_rows(bf16.output_dir / "datasets/pairs/train/metadata.jsonl")[0]
    assert row["precision"] == "bf16"
    name = row["edited_image_file_name"]
    fp32_image = iio.imread(summary.output_dir / "datasets/pairs/train" / name).astype(int)
    bf16_image = iio.imread(bf16.output_dir / "datasets/pairs/train" / name).astype(int)
    assert 0 < np.abs(fp32_image - bf16_image).mean() < 4


def test_non_finite_generator_output_fails_the_unit_and_writes_no_black_images(tmp_path, monkeypatch):
    from render.models.dcgan import DCGANGenerator
    original_edit = DCGANGenerator.edit

    def overflowing_edit(self, latents, direction, alphas, layers):  # what an α far too large does
        edited = original_edit(self, latents, direction, alphas, layers)
        edited[alphas.abs() > 1.9] = float("inf")
        return edited

    monkeypatch.setattr(DCGANGenerator, "edit", overflowing_edit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no overflow warnings on the way
        summary = run_job(write_job(tmp_path), tmp_path / "outputs", workers=0, retries=0, progress=False)
    errors = {entry["what"]: entry["error"] for entry in summary.failed}
    assert errors["videos/clips/top_000_first.mp4"] == (
        "NonFiniteOutputError: the generator's output is NaN or infinite for seed 0, direction 0 (first), α -2 "
        "(α too large for this direction, or a broken checkpoint)")
    assert errors["datasets/pairs (train shard 0)"].startswith(
        "NonFiniteOutputError: the generator's output is NaN or infinite for datasets/pairs/train/edited/0000000010_000_m3.png")
    assert len(errors) == 4
    assert not list((tmp_path / "outputs/tiny/videos").rglob("*.mp4"))
    assert not list((tmp_path / "outputs/tiny/datasets").rglob("edited/*.png"))


@pytest.fixture
def full_disk(monkeypatch):
    """Files whose name ends with one of `full_disk` (a set to fill) fail to write with ENOSPC, as on a full disk."""
    from render.sinks import atomic
    blocked: set[str] = set()
    real_atomic_path = atomic.atomic_path

    @contextlib.contextmanager
    def atomic_path(final):
        with real_atomic_path(final) as temporary:
            yield temporary
            if any(str(final).endswith(name) for name in blocked):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "atomic_path", atomic_path)
    return blocked


def test_a_full_disk_fails_the_units_that_cannot_write_and_a_rerun_with_space_resumes(tmp_path, full_disk):
    full_disk.add(".png")
    job = write_job(tmp_path)
    summary = run_job(job, tmp_path / "outputs", workers=0, retries=0, progress=False)
    folder = tmp_path / "outputs" / "tiny"
    assert {entry["what"]: entry["error"] for entry in summary.failed} == {
        "datasets/pairs (train shard 0)":
            f"WriteFailed: {folder}/datasets/pairs/train/original/0000000010.png: cannot be written (No space left on device)",
        "datasets/pairs (test shard 0)":
            f"WriteFailed: {folder}/datasets/pairs/test/original/0000000025.png: cannot be written (No space left on device)",
    }
    assert [entry["what"] for entry in manifest_of(summary)["failed"]] == [entry["what"] for entry in summary.failed]
    assert not list(folder.rglob("*.png")) and not list(folder.rglob("metadata.jsonl"))

    full_disk.clear()
    resumed = run_job(job, tmp_path / "outputs", workers=0, progress=False)
    assert (resumed.rendered, resumed.skipped, resumed.failed) == (2, 2, [])


def test_what_the_coordinator_cannot_write_is_reported_in_one_line_each_and_exit_code_1(tmp_path, full_disk,
                                                                                          monkeypatch, capsys):
    from render.cli import main
    from render.journal import Journal
    job = write_job(tmp_path)
    folder = Path("outputs/tiny")  # the default output root, relative to the working folder
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")  # a previous run's
    full_disk.update({"metadata.jsonl", "manifest.json"})
    real_append = Journal.append

    def append(self, unit_id, files, result):
        if "top_001" in files[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_append(self, unit_id, files, result)

    monkeypatch.setattr(Journal, "append", append)
    assert main(["run", str(job), "--workers", "0", "--no-progress"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("failed 3 → no manifest")
    assert out[1:] == [
        f"  failed videos/clips/top_001.mp4: WriteFailed: {folder}/.work/journal.jsonl: cannot be written "
        "(No space left on device)",
        f"  failed datasets/pairs: WriteFailed: {folder}/datasets/pairs/train/metadata.jsonl: cannot be written "
        "(No space left on device)",
        f"  failed manifest.json: WriteFailed: {folder}/manifest.json: cannot be written (No space left on device)",
    ]
    assert not (folder / "manifest.json").exists()  # the previous run's would describe other outputs

    full_disk.clear()
    monkeypatch.setattr(Journal, "append", real_append)
    assert main(["run", str(job), "--workers", "0", "--no-progress"]) == 0
    assert "rendered 1 units" in capsys.readouterr().out  # the unit whose journal line was lost
    assert (folder / "manifest.json").is_file() and (folder / "datasets/pairs/train/metadata.jsonl").is_file()


def test_force_does_not_verify_the_journal_unless_it_prunes(tmp_path, monkeypatch):
    job = write_job(tmp_path)
    run_job(job, tmp_path / "outputs", workers=0, progress=False)
    verified = []
    original = Journal.finished
    monkeypatch.setattr(Journal, "finished", lambda self, *a: verified.append(1) or original(self, *a))
    forced = run_job(job, tmp_path / "outputs", workers=0, force=True, progress=False)
    assert (forced.rendered, forced.skipped, verified) == (4, 0, [])  # every file would be hashed for nothing
    pruned = run_job(job, tmp_path / "outputs", workers=0, force=True, prune=True, progress=False)
    assert (pruned.rendered, pruned.skipped, pruned.pruned, verified) == (4, 0, [], [1])
