"""Sizes that only the loaded model reveals are refused when the job is prepared, with one line naming the output."""

import copy

import pytest

import render.limits
from jobs import TINY_JOB, write_job
from render.errors import SpecError
from render.prepare import prepare
from render.spec import load_job


def prepare_error(tmp_path, job) -> str:
    with pytest.raises(SpecError) as caught:
        prepare(load_job(write_job(tmp_path, job)))
    message = str(caught.value)
    assert "\n" not in message
    return message.split(": ", 1)[1]


def test_a_unit_that_needs_more_memory_than_is_available_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(render.limits, "available_memory", lambda: 2**20)
    message = prepare_error(tmp_path, TINY_JOB)
    assert message.startswith("outputs[0].video: one unit needs about ")
    assert message.endswith("of memory (4 seeds in 32 px cells, frames of 66×90 px), more than the 1.0 MiB available")


def test_a_unit_that_fits_is_prepared(tmp_path, monkeypatch):
    monkeypatch.setattr(render.limits, "available_memory", lambda: 64 * 2**20)  # the tiny job needs a few MiB
    prepare(load_job(write_job(tmp_path, TINY_JOB)))


def test_a_dataset_split_is_counted_with_every_direction_once_they_are_known(tmp_path):
    job = copy.deepcopy(TINY_JOB)
    job["directions"]["top"]["components"] = "all"  # the tiny DCGAN has 6
    job["outputs"][1]["dataset"].update(seeds="0-99999", alphas=list(range(1, 21)))  # validate counts 2.1 million
    assert prepare_error(tmp_path, job) == ("outputs[1].dataset.seeds: 100,000 seeds × (1 + 6 directions × 20 α) are "
                                            "12,100,000 images, more than one folder should hold (10,000,000)")


def test_a_default_cell_size_is_checked_against_the_frame_limit_once_the_resolution_is_known(tmp_path):
    job = copy.deepcopy(TINY_JOB)
    del job["outputs"][0]["video"]["cell_size"]  # 32 px model: 256 px cells
    job["outputs"][0]["video"]["grid"] = [66, 1]
    assert prepare_error(tmp_path, job) == ("outputs[0].video: 66×1 cells of 256 px: frames of 17026×288 px exceed "
                                            "H.264's largest side (16,880 px)")


def test_a_video_with_class_rows_is_estimated_with_every_image_of_its_frames(tmp_path, monkeypatch):
    from checkpoints_biggan import TINY_BIGGAN, write_biggan

    write_biggan(tmp_path / "biggan", {**TINY_BIGGAN, "num_classes": 4})
    job = copy.deepcopy(TINY_JOB)
    job["models"] = {"big": {"checkpoint": "biggan", "class_index": 0}}
    job["directions"]["top"]["model"] = "big"
    job["outputs"][0]["video"].update(classes=[0, 1, 3])  # one row per class: 4 seeds × 3 rows a frame
    estimated = []
    monkeypatch.setattr(render.limits, "video_unit_bytes", lambda *args: estimated.append(args) or 0)
    prepare(load_job(write_job(tmp_path, job)))
    _, _, images, cells, *_ = estimated[0]
    assert (images, cells) == (12, 12)
