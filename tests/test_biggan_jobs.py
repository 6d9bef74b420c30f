"""A BigGAN-deep folder named in a job renders class-conditional videos and datasets."""

import copy
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from checkpoints_biggan import TINY_BIGGAN, write_biggan
from jobs import TINY_JOB, write_job
from render.errors import SpecError
from render.plan import VideoUnit, plan
from render.prepare import prepare
from render.runner import run_job
from render.spec import load_job


def biggan_job(**model) -> dict:
    job = copy.deepcopy(TINY_JOB)
    job["models"] = {"big": {"checkpoint": "biggan", "truncation_psi": 0.5, **model}}
    job["directions"]["top"]["model"] = "big"
    job["seeds"] = {"grid": "0-1", "pairs": "10-13"}
    job["schedules"]["loop"]["frames"] = 4
    return job


@pytest.fixture()
def imagenet_folder(tmp_path):
    # The tiny network with ImageNet's 1000 classes, so that classes can be named.
    return write_biggan(tmp_path / "biggan", {**TINY_BIGGAN, "num_classes": 1000})


def read_rows(root):
    return [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]


def test_a_biggan_folder_renders_class_rows_per_class_videos_and_a_class_dataset(tmp_path, imagenet_folder):
    job = biggan_job(class_index="golden retriever")
    job["outputs"][0]["video"].update(classes=[0, "goldfish"])  # one video per direction, a row per class
    job["outputs"].insert(1, {"video": {"name": "per_class", "directions": "top", "seeds": "grid", "schedule": "loop",
                                        "cell_size": 32, "classes": [1, 207], "class_layout": "videos"}})
    job["outputs"][2]["dataset"].update(classes=[1, "tench"], test_fraction=0)
    summary = run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)
    manifest = json.loads(summary.manifest.read_text())
    model = manifest["models"]["big"]
    assert model["family"] == "biggan" and model["sampling"]["class_index"] == 207 and model["sampling"]["truncation_psi"] == 0.5

    videos = {a["path"]: a for a in manifest["artifacts"] if a["kind"] == "video"}
    assert sorted(videos) == ["videos/clips/top_000_first.mp4", "videos/clips/top_001.mp4",
                              "videos/per_class/top_000_first_class0001.mp4", "videos/per_class/top_000_first_class0207.mp4",
                              "videos/per_class/top_001_class0001.mp4", "videos/per_class/top_001_class0207.mp4"]
    rows_video = videos["videos/clips/top_000_first.mp4"]
    assert rows_video["classes"] == [0, 1]
    frames = list(imageio_ffmpeg.read_frames(str(summary.output_dir / rows_video["path"])))
    meta = frames.pop(0)
    assert len(frames) == 4 and meta["size"][1] > 2 * 32  # two rows of cells, plus the label
    assert videos["videos/per_class/top_001_class0207.mp4"]["classes"] == [207]

    train = summary.output_dir / "datasets/pairs/train"
    rows = read_rows(train)
    assert {row["class_index"] for row in rows} == {0, 1} and len(rows) == 4 * 2 * 2 * 2
    row = [r for r in rows if r["class_index"] == 0][0]
    assert "_class0000" in row["input_image_file_name"]
    original = iio.imread(train / row["input_image_file_name"]).astype(int)
    edited = iio.imread(train / row["edited_image_file_name"]).astype(int)
    other_class = iio.imread(train / row["input_image_file_name"].replace("_class0000", "_class0001")).astype(int)
    assert original.shape == (32, 32, 3) and np.abs(original - edited).mean() > 1 and np.abs(original - other_class).mean() > 1


def test_sefa_weights_all_factorizes_the_batch_norms_too(tmp_path, imagenet_folder):
    job = biggan_job(class_index=3)
    job["directions"]["top"]["sefa_weights"] = "all"
    job["outputs"] = job["outputs"][1:]
    summary = run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)
    directions = np.load(summary.output_dir / "directions/top/directions.npy")
    assert directions.shape == (8, 8)
    np.testing.assert_allclose(directions @ directions.T, np.eye(8), atol=1e-9)


@pytest.mark.parametrize("change, message", [
    (lambda job: job["models"]["big"].update(class_index="crane"), r"models.big.class_index: 'crane' names several"),
    (lambda job: job["outputs"][1]["dataset"].update(classes=[5, 1000]),
     r"outputs\[1\].dataset.classes\[1\]: class_index 1000 is out of range for 1000 classes"),
    (lambda job: job["models"]["big"].update(truncation_psi=0), r"models.big: BigGAN truncation must be in \(0, 1\]"),
    (lambda job: job["models"]["big"].pop("class_index"), r"class-conditional \(1000 classes\): name a class_index"),
    (lambda job: job["outputs"][0]["video"].update(classes=[1, "goldfish"]),
     r"outputs\[0\].video.classes\[1\]: class 1 is listed twice"),
])
def test_bad_classes_and_truncations_are_refused_with_the_field(tmp_path, imagenet_folder, change, message):
    job = biggan_job(class_index=3)
    change(job)
    with pytest.raises(SpecError, match=message):
        run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)


def test_sefa_weights_all_on_a_model_without_them_is_refused(tmp_path):
    job = copy.deepcopy(TINY_JOB)
    job["directions"]["top"]["sefa_weights"] = "all"
    with pytest.raises(SpecError, match="directions.top.sefa_weights: dcgan models have no sefa_weights other than 'default'"):
        run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)


def test_the_example_job_plans_on_a_model_where_it_expects_one(tmp_path):
    example = Path(__file__).parent.parent / "jobs/biggan/imagenet.yaml"
    shutil.copy(example, tmp_path / "imagenet.yaml")
    write_biggan(tmp_path / "biggan-deep-256", {**TINY_BIGGAN, "num_classes": 1000})
    job = load_job(tmp_path / "imagenet.yaml")
    prepared, _ = prepare(job)
    units = plan(job, prepared.models, prepared.direction_sets)
    assert prepared.models["imagenet"].sampling.class_index == 207
    assert len([u for u in units if isinstance(u, VideoUnit)]) == 5 + 3 * 2
    assert {u.classes for u in units if u.output == "classes"} == {(207, 281, 11, 980)}


def test_a_model_needs_no_class_of_its_own_when_every_output_lists_classes(tmp_path, imagenet_folder):
    job = biggan_job()
    job["outputs"] = [job["outputs"][1]]
    job["outputs"][0]["dataset"].update(classes=["goldfinch"], test_fraction=0)
    summary = run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)
    assert {row["class_index"] for row in read_rows(summary.output_dir / "datasets/pairs/train")} == {11}
