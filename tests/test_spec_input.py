"""Reading a job spec: bounded, regular files only, or standard input ('-')."""

import copy
import io
import os
import sys
import threading

import pytest
import yaml

from jobs import TINY_JOB, write_job
from render.errors import SpecError
from render.spec import load_job
from render.spec_input import MAX_SPEC_BYTES, STDIN_PATH


class _Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


def test_a_device_is_refused_without_being_read():
    with pytest.raises(SpecError, match=r"^/dev/zero: not a regular file \(a device or socket\); .* pass -$"):
        load_job("/dev/zero")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "job.yaml")
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(pytest.raises(SpecError, load_job, tmp_path / "job.yaml")),
                              daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert outcome and "not a regular file (a FIFO)" in str(outcome[0].value)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(SpecError, match=r"not a regular file \(a folder\)"):
        load_job(tmp_path)


def test_a_spec_over_one_mebibyte_is_refused(tmp_path):
    path = write_job(tmp_path)
    path.write_text(path.read_text() + "#" * MAX_SPEC_BYTES)
    with pytest.raises(SpecError, match="a job spec is at most 1048576 bytes"):
        load_job(path)


@pytest.mark.parametrize("argument", ["-", "/dev/stdin"])
def test_a_spec_from_stdin_resolves_relative_paths_against_the_current_folder(tmp_path, monkeypatch, argument):
    write_job(tmp_path)  # gan.pt in tmp_path, the current folder
    monkeypatch.setattr(sys, "stdin", _Stdin(yaml.safe_dump(TINY_JOB).encode()))
    job = load_job(argument)
    assert job.path == STDIN_PATH and job.name == "tiny"
    assert job.resolve_path("gan.pt") == tmp_path / "gan.pt"


def test_a_spec_from_stdin_needs_a_name(monkeypatch, tmp_path):
    write_job(tmp_path)
    job = copy.deepcopy(TINY_JOB)
    del job["name"]
    monkeypatch.setattr(sys, "stdin", _Stdin(yaml.safe_dump(job).encode()))
    with pytest.raises(SpecError, match=r"^<stdin>: a job read from standard input needs `name:`"):
        load_job("-")


def test_a_spec_from_stdin_is_bounded_too(monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Stdin(b"#" * (MAX_SPEC_BYTES + 10)))
    with pytest.raises(SpecError, match="at most 1048576 bytes"):
        load_job("-")
