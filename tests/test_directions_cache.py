"""The SeFa cache: a bad entry (truncated, replaced, mis-shaped, from elsewhere) is computed again with a
warning and replaced; partials of killed writers do not stay forever; a cache that cannot be written is
only a warning."""

import errno
import os
import time
import warnings

import numpy as np
import pytest

from checkpoints import write_dcgan
from render import directions_cache
from render.directions import cached_factorization, factorize_generator
from render.errors import RenderWarning
from render.models.registry import load_generator

LAYERS = (0,)


@pytest.fixture
def generator(tmp_path):
    return load_generator(write_dcgan(tmp_path / "g.pt"))


def factorize(generator, tmp_path):
    return cached_factorization(generator, "ab" * 32, LAYERS, tmp_path / "cache")


def entry(tmp_path):
    (path,) = (tmp_path / "cache" / "directions").glob("*.npz")
    return path


def test_a_good_entry_is_used_without_a_warning(generator, tmp_path):
    computed = factorize(generator, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached = factorize(generator, tmp_path)
    assert (computed[2], cached[2]) == ("computed", "cache")
    np.testing.assert_array_equal(cached[0], computed[0])
    np.testing.assert_array_equal(cached[1], computed[1])


def damage_truncated(path):
    path.write_bytes(path.read_bytes()[:100])


def damage_replaced_vectors(path):
    with np.load(path) as old:
        arrays = dict(old)
    arrays["directions"] = np.eye(*arrays["directions"].shape)  # valid, orthonormal, and not SeFa's
    np.savez(path, **arrays)


def damage_wrong_shape(path):
    with np.load(path) as old:
        arrays = dict(old)
    arrays["directions"] = arrays["directions"][:, :3]
    np.savez(path, **arrays)


def damage_from_another_checkpoint(path):
    with np.load(path) as old:
        arrays = dict(old)
    arrays["record"] = np.array(str(arrays["record"]).replace("abab", "cdcd"))
    np.savez(path, **arrays)


@pytest.mark.parametrize("damage, reason", [
    (damage_truncated, "unreadable (BadZipFile"),
    (damage_replaced_vectors, "its vectors do not match their checksum"),
    (damage_wrong_shape, "wrong arrays (float64 [6, 3], float64 [6])"),
    (damage_from_another_checkpoint, "computed from something else"),
])
def test_a_bad_entry_is_computed_again_with_a_warning_and_replaced(generator, tmp_path, damage, reason):
    factorize(generator, tmp_path)
    damage(entry(tmp_path))
    with pytest.warns(RenderWarning, match="cached directions are ") as caught:
        directions, eigenvalues, source = factorize(generator, tmp_path)
    assert len(caught) == 1 and reason in str(caught[0].message)
    expected = factorize_generator(generator, LAYERS)
    assert source == "computed"
    np.testing.assert_array_equal(directions, expected[0])
    assert factorize(generator, tmp_path)[2] == "cache"  # the entry was replaced by a good one


def test_partials_left_by_killed_writers_are_removed_and_live_ones_kept(generator, tmp_path):
    folder = tmp_path / "cache" / "directions"
    folder.mkdir(parents=True)
    stale, live = folder / ".x.npz.0001.partial", folder / ".y.npz.0002.partial"
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    old = time.time() - directions_cache.STALE_PARTIAL_S - 60
    os.utime(stale, (old, old))
    factorize(generator, tmp_path)
    assert not stale.exists() and live.exists()


def test_a_cache_that_cannot_be_written_is_only_a_warning(generator, tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.warns(RenderWarning, match=r"cannot cache the directions \(No space left on device\)"):
        directions, _, source = factorize(generator, tmp_path)
    assert source == "computed" and directions.shape == (6, 6)
    assert list((tmp_path / "cache" / "directions").iterdir()) == []
