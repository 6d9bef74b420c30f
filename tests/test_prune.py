"""`run --prune` removes what the job no longer names, and nothing the tool did not write."""

import copy

from jobs import TINY_JOB, write_job
from render.runner import run_job


def files_under(folder) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def test_prune_removes_stale_outputs_and_keeps_everything_else(tmp_path):
    first = run_job(write_job(tmp_path), tmp_path / "outputs", workers=0, progress=False)
    job_folder = first.output_dir
    (job_folder / "videos/clips/my_notes.txt").write_text("mine")
    (job_folder / "datasets/pairs/train/README.md").write_text("mine too")
    changed = copy.deepcopy(TINY_JOB)
    changed["directions"]["top"]["components"] = "0"      # top_001.mp4 is no longer named
    changed["outputs"][1]["dataset"]["name"] = "renamed"  # neither is datasets/pairs
    changed_job = write_job(tmp_path, changed)  # the same file, edited

    kept = run_job(changed_job, tmp_path / "outputs", workers=0, progress=False)  # no --prune: nothing removed
    assert not kept.pruned and (job_folder / "videos/clips/top_001.mp4").is_file()
    before = files_under(job_folder)

    second = run_job(changed_job, tmp_path / "outputs", workers=0, progress=False, prune=True)
    after = files_under(job_folder)
    assert second.rendered == 0 and set(second.pruned) == before - after
    assert "videos/clips/top_001.mp4" in second.pruned and "videos/clips/top_000_first.mp4" in after
    assert not any(path.startswith("datasets/pairs/") for path in after - {"datasets/pairs/train/README.md"})
    assert {"videos/clips/my_notes.txt", "datasets/pairs/train/README.md"} <= after  # not ours: kept
    assert any(path.startswith("datasets/renamed/train/edited/") for path in after)
    assert "pruned" in second.describe()


def test_prune_removes_a_renamed_direction_set_and_its_outputs(tmp_path):
    first = run_job(write_job(tmp_path), tmp_path / "outputs", workers=0, progress=False)
    renamed = copy.deepcopy(TINY_JOB)
    renamed["directions"] = {"other": renamed["directions"].pop("top")}
    for output in renamed["outputs"]:
        next(iter(output.values()))["directions"] = "other"
    second = run_job(write_job(tmp_path, renamed), tmp_path / "outputs", workers=0,
                     progress=False, prune=True)
    assert not (first.output_dir / "directions/top").exists() and (first.output_dir / "directions/other").is_dir()
    assert not (first.output_dir / "videos/clips/top_000_first.mp4").exists()
    assert "videos/clips/other_000_first.mp4" in files_under(first.output_dir)
    assert "directions/top/directions.npy" in second.pruned
