"""Links planted in a job folder: nothing outside it is ever written, truncated, deleted or read back."""

import copy
import json
import os
import shutil

import pytest

from jobs import TINY_JOB, VIDEO_JOB, write_job
from render import safe_fs
from render.cli import main
from render.errors import OutputError, OutputLost
from render.journal import Journal
from render.runner import run_job
from render.sinks.atomic import atomic_path, write_text



@pytest.fixture
def precious(tmp_path):
    """A user's file outside the job folder that links will point at."""
    path = tmp_path / "precious.txt"
    path.write_text("precious\n")
    return path


def run(tmp_path, job=VIDEO_JOB, **options):
    return run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False, **options)


@pytest.mark.parametrize("entry", [".work/lock", ".work/journal.jsonl", ".work/spec.json", "manifest.json"])
def test_a_linked_bookkeeping_file_is_refused_and_its_target_kept(tmp_path, precious, entry):
    link = tmp_path / "outputs" / "tiny" / entry
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(precious)
    with pytest.raises(OutputError, match=f"{entry}: is a symbolic link"):
        run(tmp_path)
    assert precious.read_text() == "precious\n"


def test_a_job_folder_that_is_a_link_is_refused_and_nothing_in_its_target_is_touched(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".notes.partial").write_text("mine")
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "tiny").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="tiny: is a symbolic link"):
        run(tmp_path)
    assert [p.name for p in elsewhere.iterdir()] == [".notes.partial"]


def test_a_linked_video_folder_fails_its_units_and_writes_nothing_there(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "outputs" / "tiny" / "videos").mkdir(parents=True)
    (tmp_path / "outputs" / "tiny" / "videos" / "clips").symlink_to(elsewhere)
    summary = run(tmp_path, retries=0)
    assert [f["error"] for f in summary.failed] == [
        f"OutputError: {summary.output_dir}/videos/clips: is a symbolic link; sefa-render never writes or reads "
        f"through links inside a job folder (remove the link)"]
    assert not list(elsewhere.iterdir())
    assert [a["kind"] for a in json.loads(summary.manifest.read_text())["artifacts"]] == ["directions"]


def test_a_linked_shard_rows_file_is_not_finished_and_its_target_never_reaches_the_metadata(tmp_path):
    job = copy.deepcopy(TINY_JOB)
    job["outputs"] = job["outputs"][1:]  # the dataset only
    first = run(tmp_path, job)
    rows = first.output_dir / ".work" / "datasets" / "pairs" / "test-00000.jsonl"
    impostor = tmp_path / "impostor.jsonl"
    impostor_text = "x" * rows.stat().st_size  # the same size as the rows it replaces
    impostor.write_text(impostor_text)
    rows.unlink()
    rows.symlink_to(impostor)
    second = run(tmp_path, job, retries=0)
    assert [f["what"] for f in second.failed] == ["datasets/pairs (test shard 0)"]
    assert "test-00000.jsonl: is a symbolic link" in second.failed[0]["error"]
    assert impostor.read_text() == impostor_text
    assert not list(second.output_dir.glob("datasets/pairs/*/metadata.jsonl"))  # the dataset is not finished


def test_leftover_partials_are_removed_without_following_links(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".keep.partial").write_text("mine")
    job_folder = tmp_path / "outputs" / "tiny"
    (job_folder / "videos").mkdir(parents=True)
    (job_folder / "videos" / ".old.mp4.1234abcd.partial").write_text("left by a killed run")
    (job_folder / "linked").symlink_to(elsewhere)
    run(tmp_path)
    assert not (job_folder / "videos" / ".old.mp4.1234abcd.partial").exists()
    assert (elsewhere / ".keep.partial").read_text() == "mine"


@pytest.mark.parametrize("relative", ["../escape.txt", "/etc/passwd", "a/../../b", ""])
def test_a_path_that_would_leave_the_job_folder_is_refused(tmp_path, relative):
    with pytest.raises(OutputError, match="would leave the job folder"):
        safe_fs.job_path(tmp_path, relative)


def test_existing_file_is_only_a_regular_file_reached_through_real_folders(tmp_path, precious):
    job = tmp_path / "job"
    (job / "videos").mkdir(parents=True)
    (job / "videos" / "a.mp4").write_text("ours")
    (job / "linked").symlink_to(tmp_path)
    (job / "videos" / "link.mp4").symlink_to(precious)
    assert safe_fs.existing_file(job, "videos/a.mp4") == job / "videos" / "a.mp4"
    for relative in ["linked/precious.txt", "videos/link.mp4", "../precious.txt", "/etc/passwd", "videos/missing.mp4",
                     "videos/a.mp4/x", "videos", ""]:
        assert safe_fs.existing_file(job, relative) is None, relative
    assert not (job / "missing").exists()
    assert safe_fs.existing_file(job, "missing/a.mp4") is None and not (job / "missing").exists()  # creates nothing


def test_a_deleted_job_folder_is_reported_as_lost(tmp_path):
    with pytest.raises(OutputLost, match="deleted during the run"):
        safe_fs.job_path(tmp_path / "gone", "manifest.json")


def test_an_atomic_write_never_replaces_a_link_and_leaves_no_temporary(tmp_path, precious):
    (tmp_path / "out.txt").symlink_to(precious)
    with pytest.raises(OutputError, match="is a symbolic link"):
        write_text(tmp_path / "out.txt", "new")
    assert precious.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "precious.txt"]


def test_a_temporary_file_is_created_new(tmp_path):
    with atomic_path(tmp_path / "a.txt") as temporary:
        assert temporary.is_file() and not temporary.is_symlink() and temporary.stat().st_size == 0
        with pytest.raises(FileExistsError):
            safe_fs.create_new(temporary)
        temporary.write_text("done")
    assert (tmp_path / "a.txt").read_text() == "done"


def test_regular_size_ignores_links(tmp_path, precious):
    (tmp_path / "link").symlink_to(precious)
    assert safe_fs.regular_size(precious) == 9
    assert safe_fs.regular_size(tmp_path / "link") is None
    assert safe_fs.regular_size(tmp_path / "missing") is None
    os.mkfifo(tmp_path / "fifo")
    assert safe_fs.regular_size(tmp_path / "fifo") is None


def test_a_job_folder_deleted_during_the_run_fails_the_run_with_one_line(tmp_path, monkeypatch, capsys):
    journal_append = Journal.append

    def append_then_delete_the_folder(self, *args):
        journal_append(self, *args)
        shutil.rmtree(self.root)

    monkeypatch.setattr(Journal, "append", append_then_delete_the_folder)
    assert main(["run", str(write_job(tmp_path)), "--workers", "0", "--no-progress", "--retries", "0"]) == 1
    job_folder = tmp_path / "outputs" / "tiny"
    assert capsys.readouterr().err.splitlines()[-1] == (
        "sefa-render: error: outputs/tiny: the job folder was deleted during the run; rerun the job to render it again")
    assert not job_folder.exists()  # not recreated by the units after the deletion


def test_the_manifest_lists_only_files_that_exist(tmp_path, monkeypatch):
    journal_append = Journal.append

    def append_then_delete_videos(self, unit_id, files, result):
        journal_append(self, unit_id, files, result)
        for file in files:
            if file.endswith(".mp4"):
                (self.root / file).unlink()

    monkeypatch.setattr(Journal, "append", append_then_delete_videos)
    summary = run(tmp_path)
    assert summary.rendered == 1
    assert [a["kind"] for a in json.loads(summary.manifest.read_text())["artifacts"]] == ["directions"]
