"""A job folder belongs to the spec file that rendered into it."""

import copy
import json

import pytest

from jobs import VIDEO_JOB, write_job
from render.errors import OutputError
from render.runner import run_job



def run(spec, root, **options):
    return run_job(spec, root, workers=0, progress=False, **options)


def test_another_spec_file_with_the_same_name_is_refused_unless_forced(tmp_path):
    first = write_job(tmp_path / "a", VIDEO_JOB)
    other_job = copy.deepcopy(VIDEO_JOB)
    other_job["outputs"][0]["video"]["name"] = "other"
    other = write_job(tmp_path / "b", other_job)
    run(first, tmp_path / "outputs")
    with pytest.raises(OutputError, match=f"holds the outputs of the job spec {first}, not {other}; .*--force"):
        run(other, tmp_path / "outputs")
    assert not (tmp_path / "outputs" / "tiny" / "videos" / "other").exists()
    forced = run(other, tmp_path / "outputs", force=True)
    assert forced.rendered == 1
    record = json.loads((tmp_path / "outputs" / "tiny" / ".work" / "spec.json").read_text())
    assert record["spec_file"] == str(other) and len(record["spec_sha256"]) == 64


def test_the_same_spec_file_edited_resumes(tmp_path):
    path = write_job(tmp_path, VIDEO_JOB)
    run(path, tmp_path / "outputs")
    edited = copy.deepcopy(VIDEO_JOB)
    edited["outputs"][0]["video"]["fps"] = 24
    write_job(tmp_path, edited)
    assert run(path, tmp_path / "outputs").rendered == 1
