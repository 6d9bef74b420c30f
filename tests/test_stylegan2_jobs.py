"""StyleGAN2 checkpoints (NVIDIA .pkl, rosinality .pt) named in a job render like the DCGAN does."""

import copy
import dataclasses
import json

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from checkpoints_stylegan2 import TINY_SG2, write_nvidia_pickle, write_rosinality
from jobs import TINY_JOB, write_job
from render.errors import SpecError
from render.runner import run_job


def stylegan_job(checkpoint: str, **model) -> dict:
    job = copy.deepcopy(TINY_JOB)
    job["models"] = {"sg": {"checkpoint": checkpoint, **model}}
    job["directions"]["top"].update(model="sg", layers="0-1")  # the coarse slots
    job["seeds"] = {"grid": "0-1", "pairs": "10-13"}
    return job


def rows(root):
    return [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("write, file_name, family_format", [
    (write_nvidia_pickle, "network-snapshot.pkl", "NVIDIA"),
    (write_rosinality, "550000.pt", "rosinality"),
])
def test_stylegan2_checkpoints_render_videos_and_datasets(tmp_path, write, file_name, family_format):
    write(tmp_path / file_name)
    job = write_job(tmp_path, stylegan_job(file_name, truncation_psi=0.5, truncation_cutoff=4))
    summary = run_job(job, tmp_path / "outputs", workers=0, progress=False)
    manifest = json.loads(summary.manifest.read_text())
    model = manifest["models"]["sg"]
    assert model["family"] == "stylegan2" and family_format in model["format"]
    assert model["sampling"] == {"truncation_psi": 0.5, "truncation_cutoff": 4, "class_index": None}
    directions = [a for a in manifest["artifacts"] if a["kind"] == "directions"][0]
    assert directions["layers"] == [0, 1] and directions["count"] == TINY_SG2.w_dim

    for video in [a for a in manifest["artifacts"] if a["kind"] == "video"]:
        reader = imageio_ffmpeg.read_frames(str(summary.output_dir / video["path"]))
        meta = next(reader)
        assert sum(1 for _ in reader) == video["frames"] == 6 and meta["pix_fmt"].startswith("yuv420p")

    train = summary.output_dir / "datasets/pairs/train"
    row = rows(train)[0]
    assert (row["truncation_psi"], row["truncation_cutoff"], row["layers"]) == (0.5, 4, [0, 1])
    original = iio.imread(train / row["input_image_file_name"]).astype(int)
    edited = iio.imread(train / row["edited_image_file_name"]).astype(int)
    assert original.shape == (16, 16, 3) and np.abs(original - edited).mean() > 3


def test_a_conditional_stylegan2_renders_the_class_the_job_names(tmp_path):
    config = dataclasses.replace(TINY_SG2, c_dim=3, embed_features=8)
    write_nvidia_pickle(tmp_path / "cond.pkl", config)
    originals = {}
    for class_index in (0, 2):
        folder = tmp_path / f"class{class_index}"
        folder.mkdir()
        (folder / "cond.pkl").symlink_to(tmp_path / "cond.pkl")
        summary = run_job(write_job(folder, stylegan_job("cond.pkl", class_index=class_index)), folder / "outputs",
                          workers=0, progress=False)
        train = summary.output_dir / "datasets/pairs/train"
        assert rows(train)[0]["class_index"] == class_index
        originals[class_index] = iio.imread(train / rows(train)[0]["input_image_file_name"]).astype(int)
    assert np.abs(originals[0] - originals[2]).mean() > 3

    with pytest.raises(SpecError, match=r"models.sg: .*class-conditional \(3 classes\): name a class_index"):
        run_job(write_job(tmp_path / "none", stylegan_job(str(tmp_path / "cond.pkl"))), tmp_path / "outputs",
                workers=0, progress=False)
    with pytest.raises(SpecError, match="models.sg: class_index 5 is out of range for 3 classes"):
        run_job(write_job(tmp_path / "five", stylegan_job(str(tmp_path / "cond.pkl"), class_index=5)),
                tmp_path / "outputs", workers=0, progress=False)


def test_truncation_on_a_dcgan_is_refused_with_the_model_field(tmp_path):
    job = copy.deepcopy(TINY_JOB)
    job["models"]["gan"]["truncation_psi"] = 0.7
    with pytest.raises(SpecError, match="models.gan: dcgan models have no truncation"):
        run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)
