"""The command line: exit codes, one-line errors, and what each command prints and writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from checkpoints import write_dcgan
from jobs import TINY_JOB, write_job
from render.cli import main

REPO = Path(__file__).resolve().parents[1]


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m render …` in a fresh interpreter, importing this checkout."""
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "render", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_validate_accepts_a_good_job(tmp_path, capsys):
    assert main(["validate", str(write_job(tmp_path))]) == 0
    assert "ok — job 'tiny'" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_code_2_without_a_traceback(tmp_path):
    bad = dict(TINY_JOB, outputs=[{"video": dict(TINY_JOB["outputs"][0]["video"], fps="abc")}])
    job = write_job(tmp_path, bad)
    for command in ("validate", "run"):
        result = run_module(command, str(job), cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr == f"sefa-render: error: {job}: outputs[0].video.fps: expected a positive integer, got 'abc'\n"
    assert not (tmp_path / "outputs").exists()


def test_a_broken_checkpoint_is_reported_with_the_job_field(tmp_path, capsys):
    job = write_job(tmp_path)
    (tmp_path / "gan.pt").write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["run", str(job), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"sefa-render: error: {job}: models.gan.checkpoint: ") and error.count("\n") == 1


def test_layers_beyond_the_model_are_reported_with_the_job_field(tmp_path, capsys):
    bad = dict(TINY_JOB, directions={"top": dict(TINY_JOB["directions"]["top"], layers="0-3")})
    assert main(["run", str(write_job(tmp_path, bad)), "--no-progress"]) == 2
    assert "directions.top.layers: layer 1 is out of range: the model has 1 (0-0)" in capsys.readouterr().err


def test_run_writes_under_the_output_root(tmp_path, capsys):
    assert main(["run", str(write_job(tmp_path)), "--output-root", str(tmp_path / "elsewhere"), "--no-progress"]) == 0
    assert (tmp_path / "elsewhere" / "tiny" / "manifest.json").is_file()
    assert "tiny: rendered 4 units" in capsys.readouterr().out


def test_run_refuses_an_output_root_that_is_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("not a folder")
    assert main(["run", str(write_job(tmp_path)), "--output-root", str(tmp_path / "taken"), "--no-progress"]) == 2
    assert "cannot create the output folder" in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == "not a folder"


def test_schema_prints_json_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "sefa-render job"


def test_factorize_prints_the_spectrum_and_writes_the_directions(tmp_path, capsys):
    checkpoint = write_dcgan(tmp_path / "gan.pt")
    assert main(["factorize", str(checkpoint), "--out", str(tmp_path / "dirs"), "--top", "3"]) == 0
    output = capsys.readouterr().out
    directions, eigenvalues = np.load(tmp_path / "dirs" / "directions.npy"), np.load(tmp_path / "dirs" / "eigenvalues.npy")
    assert directions.shape == (6, 6) and eigenvalues.shape == (6,)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0)
    assert f"{eigenvalues[0]:.4f}" in output and output.count("%") == 6  # three rows, share and cumulative


def test_factorize_refuses_bad_layers(tmp_path, capsys):
    checkpoint = write_dcgan(tmp_path / "gan.pt")
    assert main(["factorize", str(checkpoint), "--layers", "2-5"]) == 2
    assert "--layers: layer 2 is out of range" in capsys.readouterr().err


def test_inspect_describes_a_checkpoint(tmp_path, capsys):
    assert main(["inspect", str(write_dcgan(tmp_path / "gan.pt"))]) == 0
    output = capsys.readouterr().out
    assert "family: dcgan" in output and "img_resolution: 32" in output and "sha256: " in output


def test_models_list_names_the_default_model(capsys):
    assert main(["models", "list"]) == 0
    assert "dcgan-digiface  (not cached)" in capsys.readouterr().out


def test_unknown_zoo_model_is_an_input_error(capsys):
    assert main(["models", "fetch", "nope"]) == 2
    assert "unknown zoo model 'nope'" in capsys.readouterr().err


def test_argument_mistakes_exit_2():
    with pytest.raises(SystemExit) as caught:
        main(["run"])
    assert caught.value.code == 2


def test_our_warnings_are_one_line_and_others_keep_their_location(tmp_path):
    import warnings

    from render.errors import RenderWarning
    main(["validate", str(write_job(tmp_path))])
    assert warnings.formatwarning(RenderWarning("cache entry recomputed"), RenderWarning, "x.py", 7) == \
        "sefa-render: warning: cache entry recomputed\n"
    assert warnings.formatwarning(UserWarning("other"), UserWarning, "x.py", 7, "").startswith("x.py:7: UserWarning")


@pytest.mark.parametrize("arguments, message", [
    (["factorize", "gan.pt", "--top", "0"], "--top 0: expected a positive number of eigenvalues to print"),
    (["factorize", "gan.pt", "--top", "-3"], "--top -3: expected a positive number of eigenvalues to print"),
    (["run", "job.yaml", "--retries", "-1"], "--retries -1: expected 0 or more extra attempts"),
    (["factorize", "gan.pt", "--out", "a_file"], "--out a_file: cannot create the folder (File exists)"),
])
def test_bad_command_line_values_are_one_line_errors(tmp_path, capsys, arguments, message):
    write_job(tmp_path)
    (tmp_path / "a_file").write_text("mine")
    assert main(arguments) == 2
    assert capsys.readouterr().err == f"sefa-render: error: {message}\n"
    assert (tmp_path / "a_file").read_text() == "mine" and not (tmp_path / "outputs").exists()


def test_factorize_says_where_it_wrote_when_no_out_is_given(tmp_path, capsys):
    write_dcgan(tmp_path / "gan.pt")
    assert main(["factorize", "gan.pt", "--top", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == ("wrote outputs/directions/gan/directions.npy, "
                                                        "outputs/directions/gan/eigenvalues.npy")


def test_inspect_takes_zoo_names_as_factorize_does(tmp_path, capsys, monkeypatch):
    checkpoint = write_dcgan(tmp_path / "gan.pt")
    monkeypatch.setattr("render.models.zoo.fetch", lambda name: checkpoint if name == "dcgan-digiface" else None)
    assert main(["inspect", "zoo:dcgan-digiface"]) == 0
    assert "family: dcgan" in capsys.readouterr().out
