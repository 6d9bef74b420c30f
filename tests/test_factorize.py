"""SeFa against its definition: the top eigenvectors of AᵀA for the row-normalised stacked A."""

import numpy as np
import pytest

from render.factorize import fix_signs, sefa


def _random_layers(seed: int, latent_dim: int = 12, sizes=(20, 7, 33)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(rows, latent_dim)) * rng.uniform(0.1, 10) for rows in sizes]


def _reference(layers: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Plain eigen-decomposition of AᵀA, the way the paper states it."""
    stacked = np.concatenate(layers)
    stacked = stacked / np.linalg.norm(stacked, axis=1, keepdims=True)
    eigenvalues, eigenvectors = np.linalg.eigh(stacked.T @ stacked)
    order = np.argsort(eigenvalues)[::-1]
    return eigenvalues[order], eigenvectors[:, order].T


@pytest.mark.parametrize("seed", range(5))
def test_sefa_matches_the_eigendecomposition_of_ata_when_weights_are_random(seed):
    layers = _random_layers(seed)
    result = sefa(layers)
    eigenvalues, eigenvectors = _reference(layers)
    np.testing.assert_allclose(result.eigenvalues, eigenvalues, rtol=1e-10)
    # Same vectors up to sign (eigenvalues of random matrices are distinct).
    np.testing.assert_allclose(np.abs(np.sum(result.directions * eigenvectors, axis=1)), 1.0, atol=1e-9)


def test_sefa_directions_are_orthonormal_and_sorted_when_factorized():
    result = sefa(_random_layers(7))
    np.testing.assert_allclose(result.directions @ result.directions.T, np.eye(12), atol=1e-12)
    assert np.all(np.diff(result.eigenvalues) <= 0)


def test_sefa_is_unchanged_when_a_layer_is_scaled():
    layers = _random_layers(1)
    scaled = [layers[0] * 1000.0, layers[1] * 1e-3, -layers[2]]  # per-layer gains, even negative ones
    original, rescaled = sefa(layers), sefa(scaled)
    np.testing.assert_allclose(rescaled.directions, original.directions, atol=1e-10)
    np.testing.assert_allclose(rescaled.eigenvalues, original.eigenvalues, rtol=1e-10)


def test_sefa_is_unchanged_when_rows_are_reordered_or_scaled_one_by_one():
    layers = _random_layers(2)
    stacked = np.concatenate(layers)
    rng = np.random.default_rng(0)
    shuffled = stacked[rng.permutation(len(stacked))] * rng.uniform(0.5, 2.0, size=(len(stacked), 1))
    np.testing.assert_allclose(sefa([shuffled]).directions, sefa(layers).directions, atol=1e-10)


def test_sefa_gives_the_same_signs_when_the_input_signs_flip():
    layers = _random_layers(3)
    np.testing.assert_array_equal(sefa(layers).directions, sefa([-layer for layer in layers]).directions)


def test_sign_rule_makes_the_largest_component_positive():
    directions = fix_signs(sefa(_random_layers(4)).directions)
    largest = directions[np.arange(len(directions)), np.argmax(np.abs(directions), axis=1)]
    assert np.all(largest > 0)


def test_sefa_ignores_all_zero_rows():
    layers = _random_layers(5)
    padded = layers + [np.zeros((4, 12))]
    np.testing.assert_allclose(sefa(padded).directions, sefa(layers).directions, atol=1e-12)


def test_sefa_returns_as_many_directions_as_rows_when_rows_are_fewer_than_latent_dims():
    result = sefa([np.random.default_rng(0).normal(size=(3, 12))])
    assert result.directions.shape == (3, 12) and result.eigenvalues.shape == (3,)


def test_sefa_refuses_empty_input():
    with pytest.raises(ValueError):
        sefa([])
    with pytest.raises(ValueError):
        sefa([np.zeros((3, 4))])
