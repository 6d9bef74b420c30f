"""StyleGAN3 pickles named in a job render videos and datasets; include_input and input_transform reach the renders."""

import copy
import dataclasses
import json
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch
import yaml

from checkpoints_stylegan3 import TINY_R, TINY_T, write_stylegan3_pickle
from jobs import TINY_JOB, write_job
from render.errors import SpecError
from render.layout import to_pixels
from render.models.base import Sampling
from render.models.registry import load_generator
from render.prepare import prepare
from render.runner import run_job
from render.spec import load_job
from test_stylegan2_jobs import rows, stylegan_job


def test_a_stylegan3_t_pickle_renders_videos_and_datasets(tmp_path):
    write_stylegan3_pickle(tmp_path / "stylegan3-t.pkl", TINY_T)
    job = stylegan_job("stylegan3-t.pkl", truncation_psi=0.5)
    job["directions"]["top"]["layers"] = "1-2"
    summary = run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)
    manifest = json.loads(summary.manifest.read_text())
    model = manifest["models"]["sg"]
    assert (model["family"], model["architecture"], model["format"]) == ("stylegan3", "stylegan3-t", "NVIDIA StyleGAN3 pickle")
    assert model["sampling"] == {"truncation_psi": 0.5, "truncation_cutoff": None, "class_index": None}
    assert [a for a in manifest["artifacts"] if a["kind"] == "directions"][0]["layers"] == [1, 2]

    for video in [a for a in manifest["artifacts"] if a["kind"] == "video"]:
        reader = imageio_ffmpeg.read_frames(str(summary.output_dir / video["path"]))
        next(reader)
        assert sum(1 for _ in reader) == video["frames"] == 6
    train = summary.output_dir / "datasets/pairs/train"
    row = rows(train)[0]
    original = iio.imread(train / row["input_image_file_name"]).astype(int)
    edited = iio.imread(train / row["edited_image_file_name"]).astype(int)
    assert original.shape == (32, 32, 3) and np.abs(original - edited).mean() > 1


def test_include_input_and_input_transform_reach_the_rendered_images(tmp_path):
    write_stylegan3_pickle(tmp_path / "stylegan3-r.pkl", TINY_R)
    transform = {"translate": [0.25, -0.1], "rotate": 30.0}
    job = stylegan_job("stylegan3-r.pkl", class_index=2, input_transform=transform)
    job["directions"]["top"].update(layers="1-2", include_input=True)
    job["outputs"] = job["outputs"][1:]  # the dataset is enough here
    summary = run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)
    manifest = json.loads(summary.manifest.read_text())
    assert manifest["models"]["sg"]["input_transform"] == transform
    assert [a for a in manifest["artifacts"] if a["kind"] == "directions"][0]["layers"] == [0, 1, 2]

    generator = load_generator(tmp_path / "stylegan3-r.pkl")
    train = summary.output_dir / "datasets/pairs/train"
    row = rows(train)[0]
    with torch.no_grad():
        plain = to_pixels(generator.synthesize(generator.latents_from_seeds([row["seed"]], Sampling(0.7, None, 2))), None)
        generator.set_input_transform(transform["translate"], transform["rotate"])
        moved = to_pixels(generator.synthesize(generator.latents_from_seeds([row["seed"]], Sampling(0.7, None, 2))), None)
    original = iio.imread(train / row["input_image_file_name"])
    assert np.array_equal(original, moved[0].numpy()) and not np.array_equal(original, plain[0].numpy())

    # Another transform is another render; the same one is already done.
    assert run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False).rendered == 0
    job["models"]["sg"]["input_transform"] = {"rotate": 45.0}
    assert run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False).skipped == 0


def video_frames(summary) -> list[np.ndarray]:
    """The frames of the job's one video, above the label strip."""
    artifact = [a for a in json.loads(summary.manifest.read_text())["artifacts"] if a["kind"] == "video"][0]
    reader = imageio_ffmpeg.read_frames(str(summary.output_dir / artifact["path"]))
    width, height = next(reader)["size"]
    return [np.frombuffer(data, np.uint8).reshape(height, width, 3)[:height - 24].astype(int) for data in reader]


def test_a_camera_move_loops_through_a_stylegan3_video(tmp_path):
    write_stylegan3_pickle(tmp_path / "stylegan3-t.pkl", TINY_T)
    job = stylegan_job("stylegan3-t.pkl")
    job["directions"]["top"]["layers"] = "1-2"
    still = dict(job["outputs"][0]["video"], side_by_side=True, crf=0)  # lossless: equal frames decode equal
    job["outputs"] = [{"video": dict(still, camera={"translate": [0.5, 0], "rotate": 90})}]
    moving = video_frames(run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False))
    job["outputs"] = [{"video": still}]
    summary = run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)
    assert summary.skipped == 0  # the camera is part of what a video unit renders
    frames = video_frames(summary)
    # Frames 1 and 5 of the pingpong have the same α; the camera is at sin(±π/3): moved opposite ways.
    assert len(moving) == 6 and np.array_equal(frames[1], frames[5])
    assert np.abs(moving[1] - moving[5]).mean() > 0.5 and np.array_equal(moving[0], frames[0])  # sin(0) = 0: no move


@pytest.mark.parametrize("change, message", [
    (lambda job: job["models"]["gan"].update(input_transform={"rotate": 10}),
     r"models\.gan\.input_transform: dcgan models have no input transform"),
    (lambda job: job["outputs"][0]["video"].update(camera={"rotate": 10}),
     r"outputs\[0\]\.video\.camera: dcgan models have no input transform to move"),
    (lambda job: job["directions"]["top"].update(include_input=True),
     r"directions\.top\.layers: dcgan models have no input transform slot"),
    (lambda job: job["models"]["gan"].update(input_transform={"translate": [1]}), r"models\.gan\.input_transform\.translate"),
])
def test_stylegan3_options_on_another_model_are_one_line_spec_errors(tmp_path, change, message):
    job = copy.deepcopy(TINY_JOB)
    change(job)
    with pytest.raises(SpecError, match=message):
        run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)


def test_naming_the_input_slot_without_include_input_is_a_spec_error(tmp_path):
    write_stylegan3_pickle(tmp_path / "stylegan3-t.pkl", TINY_T)
    job = stylegan_job("stylegan3-t.pkl")  # layers 0-1: a StyleGAN2 habit
    with pytest.raises(SpecError, match=r"directions\.top\.layers: layer 0 drives the input's rotation and translation"):
        run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)


def test_the_example_job_prepares_on_a_stylegan3_with_the_official_slot_count(tmp_path):
    example = Path(__file__).parents[1] / "jobs/stylegan3/stylegan3.yaml"
    (tmp_path / example.name).write_text(example.read_text())
    checkpoint = yaml.safe_load(example.read_text())["models"]["sg3"]["checkpoint"]
    write_stylegan3_pickle(tmp_path / checkpoint, dataclasses.replace(TINY_R, c_dim=0, num_layers=14))  # 16 w slots
    prepared, _ = prepare(load_job(tmp_path / example.name))
    layers = {key: direction_set.layers for key, direction_set in prepared.direction_sets.items()}
    assert layers == {"coarse": (1, 2, 3, 4), "fine": tuple(range(10, 16)), "geometry": (0,), "coarse_turned": (1, 2, 3, 4)}
    assert prepared.models["sg3_turned"].input_transform == ((0.1, 0.0), 10.0)
