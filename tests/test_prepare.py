"""Preparing a job: direction files, components and names are checked against the loaded model."""

import copy
import warnings

import numpy as np
import pytest

from jobs import TINY_JOB, write_job
from render.errors import SpecError
from render.prepare import prepare
from render.spec import load_job


def prepared_with(tmp_path, change):
    job = copy.deepcopy(TINY_JOB)
    change(job["directions"]["top"])
    return prepare(load_job(write_job(tmp_path, job)))


def error_of(tmp_path, change) -> str:
    with pytest.raises(SpecError) as caught:
        prepared_with(tmp_path, change)
    return str(caught.value).split(": ", 1)[1]


def use_file(name, names=None):
    def change(entry):
        entry.update(method="file", file=name, names=names or {})
        entry.pop("components")
    return change


def test_a_direction_file_gives_all_its_rows_normalised_to_unit_length(tmp_path):
    directions = np.random.default_rng(0).normal(size=(3, 6)) * [[2], [10], [0.1]]
    np.save(tmp_path / "mine.npy", directions)
    prepared, _ = prepared_with(tmp_path, use_file("mine.npy", {1: "smile"}))
    direction_set = prepared.direction_sets["top"]
    np.testing.assert_allclose(direction_set.directions, directions / np.linalg.norm(directions, axis=1)[:, None],
                               rtol=1e-15)
    assert (direction_set.components, direction_set.eigenvalues, direction_set.source) == ((0, 1, 2), None, "file")


def test_unit_rows_are_kept_bit_for_bit_and_huge_rows_normalise_without_overflow(tmp_path):
    unit = np.random.default_rng(1).normal(size=(2, 6))
    unit /= np.linalg.norm(unit, axis=1)[:, None]
    np.save(tmp_path / "mine.npy", np.concatenate([unit, np.full((1, 6), 1e308)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings
        prepared, _ = prepared_with(tmp_path, use_file("mine.npy"))
    directions = prepared.direction_sets["top"].directions
    np.testing.assert_array_equal(directions[:2], unit)
    np.testing.assert_allclose(directions[2], np.full(6, 6 ** -0.5), rtol=1e-15)


def test_a_single_direction_file_is_one_row(tmp_path):
    np.save(tmp_path / "one.npy", np.ones(6))
    prepared, _ = prepared_with(tmp_path, use_file("one.npy"))
    assert prepared.direction_sets["top"].directions.shape == (1, 6)


@pytest.mark.parametrize("array, message", [
    (np.ones((2, 5)), "expected a numeric array of shape [6] or [k, 6], got float64 [2, 5]"),
    (np.stack([np.ones(6), np.zeros(6)]), "contains an all-zero direction (row 1)"),
    (np.full(6, np.nan), "contains NaN or infinite values (row 0)"),
    (np.stack([np.ones(6), np.ones(6), [1, 1, np.inf, 1, 1, 1]]), "contains NaN or infinite values (row 2)"),
    (np.array(["a"] * 6), "expected a numeric array of shape [6] or [k, 6], got <U1 [1, 6]"),
])
def test_a_bad_direction_file_is_refused_with_what_is_wrong(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    assert error_of(tmp_path, use_file("bad.npy")) == f"directions.top.file: {(tmp_path / 'bad.npy').resolve()}: {message}"


def test_a_pickled_npy_is_refused_without_unpickling(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "not a readable .npy array" in error_of(tmp_path, use_file("objects.npy"))


@pytest.mark.parametrize("content, kind", [
    (b"0.1 0.2 0.3 0.4 0.5 0.6\n", "text"),
    (b"\x80\x04\x95\x00", "pickled data"),
    (b"PK\x03\x04rest", "a .npz archive"),
])
def test_a_direction_file_that_is_not_npy_is_named_for_what_it_is(tmp_path, content, kind):
    (tmp_path / "d.npy").write_bytes(content)
    assert error_of(tmp_path, use_file("d.npy")) == (f"directions.top.file: {(tmp_path / 'd.npy').resolve()}: "
                                                     f"not a .npy file (it holds {kind}; write one array with numpy.save)")


def test_a_direction_file_is_refused_before_loading_when_its_header_declares_more_than_it_holds(tmp_path):
    # np.load would first try to allocate the 75 GiB the header declares (a MemoryError traceback).
    with open(tmp_path / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**5, 10**5)})
        f.write(bytes(64))
    assert "declares shape (100000, 100000) (80,000,000,000 bytes) but only 64 bytes follow" in error_of(tmp_path, use_file("huge.npy"))


def test_components_beyond_the_directions_are_refused(tmp_path):
    message = error_of(tmp_path, lambda entry: entry.update(components="4-9"))
    assert message == "directions.top.components: direction 6 is out of range: the direction set has 6 (0-5)"


def test_a_name_for_a_direction_that_is_not_rendered_is_refused(tmp_path):
    message = error_of(tmp_path, lambda entry: entry.update(names={3: "hat"}))
    assert message == "directions.top.names: direction 3 is named but not among the rendered components"
