import errno
import json

import pytest

from render.errors import RenderWarning
from render.journal import Journal


def make(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"12345")
    (tmp_path / "b.png").write_bytes(b"xy")
    return Journal(tmp_path / ".work" / "journal.jsonl", tmp_path)


def test_units_whose_files_are_intact_are_finished(tmp_path):
    journal = make(tmp_path)
    journal.append("u1", ["a.mp4"], {"artifact": 1})
    journal.append("u2", ["b.png"], {})
    assert journal.finished() == {"u1": {"artifact": 1}, "u2": {}}


def test_the_journal_records_size_and_sha256_of_each_file(tmp_path):
    journal = make(tmp_path)
    journal.append("u1", ["a.mp4"], {})
    record = json.loads(journal.path.read_text())
    assert record["files"] == {"a.mp4": {"size": 5, "sha256": "5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5"}}


def test_a_missing_or_resized_file_unfinishes_its_unit(tmp_path):
    journal = make(tmp_path)
    journal.append("u1", ["a.mp4"], {})
    journal.append("u2", ["b.png"], {})
    (tmp_path / "a.mp4").write_bytes(b"123")
    (tmp_path / "b.png").unlink()
    assert journal.finished() == {}


def test_a_file_damaged_in_place_with_the_same_size_unfinishes_its_unit(tmp_path):
    journal = make(tmp_path)
    journal.append("u1", ["a.mp4"], {})
    journal.append("u2", ["b.png"], {})
    (tmp_path / "a.mp4").write_bytes(b"\0" * 5)
    assert journal.finished() == {"u2": {}}
    assert journal.finished(verify_content=False) == {"u1": {}, "u2": {}}  # what sizes alone would have said


def test_a_file_written_again_by_a_later_unit_belongs_to_that_unit(tmp_path):
    journal = make(tmp_path)
    journal.append("old", ["a.mp4"], {})
    journal.append("new", ["a.mp4"], {})  # a changed spec gave the same path to another unit
    assert journal.finished() == {"new": {}}


def test_a_torn_last_line_is_ignored(tmp_path):
    journal = make(tmp_path)
    journal.append("u1", ["a.mp4"], {})
    with open(journal.path, "a") as torn:
        torn.write(json.dumps({"unit_id": "u2", "files": {"b.png": {"size": 2, "sha256": "x"}}, "result": {}})[:20])
    assert journal.finished() == {"u1": {}}


def test_lines_without_hashes_from_an_earlier_version_are_rendered_again_with_a_warning(tmp_path):
    journal = make(tmp_path)
    journal.path.parent.mkdir()
    journal.path.write_text(json.dumps({"unit_id": "old", "files": {"a.mp4": 5}, "result": {}}) + "\n")
    journal.append("new", ["b.png"], {})
    with pytest.warns(RenderWarning, match="1 units were journaled by an earlier sefa-render without content hashes"):
        assert journal.finished() == {"new": {}}


def test_an_append_that_fails_leaves_no_torn_line(tmp_path, monkeypatch):
    journal = make(tmp_path)
    journal.append("u1", ["a.mp4"], {})
    whole = journal.path.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(OSError):
        journal.append("u2", ["b.png"], {})
    assert journal.path.read_bytes() == whole


def test_no_journal_means_nothing_is_finished(tmp_path):
    assert Journal(tmp_path / "none.jsonl", tmp_path).finished() == {}
