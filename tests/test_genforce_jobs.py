"""genforce PGGAN, StyleGAN and StyleGAN2 checkpoints named in a job render videos and datasets."""

import copy
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import yaml

from checkpoints_genforce import TINY_PGGAN, TINY_STYLEGAN, genforce_stylegan2_weights, pggan_weights, stylegan_weights, write_genforce
from jobs import TINY_JOB, write_job
from render.cli import main
from render.runner import run_job

FAMILIES = {
    # family: (weights, layers, default sampling recorded in the manifest, image size)
    "pggan": (lambda: pggan_weights(**TINY_PGGAN), "all", (1.0, None), 8),
    "stylegan": (lambda: stylegan_weights(**TINY_STYLEGAN), "0-1", (0.7, 4), 8),
    "stylegan2": (genforce_stylegan2_weights, "0-1", (0.7, 6), 16),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_genforce_checkpoints_render_videos_and_datasets(tmp_path, family):
    weights, layers, (psi, cutoff), size = FAMILIES[family]
    write_genforce(tmp_path / f"{family}.pth", weights())
    job = copy.deepcopy(TINY_JOB)
    job["models"] = {"g": {"checkpoint": f"{family}.pth"}}
    job["directions"]["top"].update(model="g", layers=layers)
    job["seeds"] = {"grid": "0-1", "pairs": "10-13"}
    summary = run_job(write_job(tmp_path, job), tmp_path / "outputs", workers=0, progress=False)

    manifest = json.loads(summary.manifest.read_text())
    model = manifest["models"]["g"]
    assert model["family"] == family and model["format"].startswith("genforce")
    assert (model["sampling"]["truncation_psi"], model["sampling"]["truncation_cutoff"]) == (psi, cutoff)
    for video in [a for a in manifest["artifacts"] if a["kind"] == "video"]:
        reader = imageio_ffmpeg.read_frames(str(summary.output_dir / video["path"]))
        next(reader)
        assert sum(1 for _ in reader) == video["frames"] == 6

    train = summary.output_dir / "datasets/pairs/train"
    row = json.loads((train / "metadata.jsonl").read_text().splitlines()[0])
    original = iio.imread(train / row["input_image_file_name"]).astype(int)
    edited = iio.imread(train / row["edited_image_file_name"]).astype(int)
    assert original.shape == (size, size, 3) and np.abs(original - edited).mean() > 1


def test_factorize_and_inspect_work_on_genforce_files(tmp_path, capsys):
    checkpoint = write_genforce(tmp_path / "stylegan.pth", stylegan_weights(**TINY_STYLEGAN))
    assert main(["factorize", str(checkpoint), "--layers", "2-3", "--out", str(tmp_path / "dirs"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "stylegan, layers 2-3 of 4, 6 directions of length 6" in out and "eigenvalue" in out
    assert np.load(tmp_path / "dirs/directions.npy").shape == (6, 6)
    assert main(["inspect", str(checkpoint)]) == 0
    assert "genforce StyleGAN .pth (generator_smooth)" in capsys.readouterr().out


def test_the_example_jobs_validate_once_their_checkpoints_are_in_place(tmp_path, capsys):
    """jobs/genforce/*.yaml name files the user supplies under checkpoints/; with stand-ins there they validate."""
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "jobs/genforce").mkdir(parents=True)
    for job in sorted((repo / "jobs/genforce").glob("*.yaml")):
        shutil.copy(job, tmp_path / "jobs/genforce" / job.name)
        assert main(["validate", str(tmp_path / "jobs/genforce" / job.name)]) == 2  # before: the file is missing
        spec = yaml.safe_load(job.read_text())
        for model in spec["models"].values():
            target = (tmp_path / "jobs/genforce" / model["checkpoint"]).resolve()
            target.parent.mkdir(exist_ok=True)
            write_genforce(target, pggan_weights(**TINY_PGGAN))
        assert main(["validate", str(tmp_path / "jobs/genforce" / job.name)]) == 0
    assert capsys.readouterr().out.count(": ok") == 3
