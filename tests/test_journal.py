import json

from render.journal import Journal


def make(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"12345")
    (tmp_path / "b.png").write_bytes(b"xy")
    return Journal(tmp_path / ".work" / "journal.jsonl", tmp_path)


def test_units_whose_files_are_intact_are_finished(tmp_path):
    journal = make(tmp_path)
    journal.append("u1", {"a.mp4": 5}, {"artifact": 1})
    journal.append("u2", {"b.png": 2}, {})
    assert journal.finished() == {"u1": {"artifact": 1}, "u2": {}}


def test_a_missing_or_resized_file_unfinishes_its_unit(tmp_path):
    journal = make(tmp_path)
    journal.append("u1", {"a.mp4": 5}, {})
    journal.append("u2", {"b.png": 2}, {})
    (tmp_path / "a.mp4").write_bytes(b"123")
    (tmp_path / "b.png").unlink()
    assert journal.finished() == {}


def test_a_file_written_again_by_a_later_unit_belongs_to_that_unit(tmp_path):
    journal = make(tmp_path)
    journal.append("old", {"a.mp4": 5}, {})
    journal.append("new", {"a.mp4": 5}, {})  # a changed spec gave the same path to another unit
    assert journal.finished() == {"new": {}}


def test_a_torn_last_line_is_ignored(tmp_path):
    journal = make(tmp_path)
    journal.append("u1", {"a.mp4": 5}, {})
    with open(journal.path, "a") as torn:
        torn.write(json.dumps({"unit_id": "u2", "files": {"b.png": 2}, "result": {}})[:20])
    assert journal.finished() == {"u1": {}}


def test_no_journal_means_nothing_is_finished(tmp_path):
    assert Journal(tmp_path / "none.jsonl", tmp_path).finished() == {}
