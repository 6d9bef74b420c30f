"""SeFa: closed-form factorization of latent semantics (Shen & Zhou, CVPR 2021).

Pure maths on weight matrices; it imports nothing from `render.models`.

For an affine map y = A z + b that feeds the synthesis network, moving z by α·n
moves y by α·A n, so the unit directions that move y the most are the top
eigenvectors of AᵀA. Over several layers the matrices are stacked row-wise.

What we do, and why it differs from the official code (genforce/sefa `utils.py`
`factorize_weight`) where it does:

- **Row normalisation** (as official): every row of the stacked A, i.e. one
  output unit's weight vector over the latent, is scaled to unit length. This
  cancels per-layer scale constants (equalized-lr gains, spectral σ, a
  following BatchNorm) and gives wide layers proportionally more say.
- **SVD in float64** instead of `np.linalg.eig` of AᵀA in float32: the right
  singular vectors of the normalised A are the eigenvectors of AᵀA and the
  squared singular values its eigenvalues, with better numerics.
- **Sorted by eigenvalue, descending.** The official `eig` returns LAPACK order,
  which is only roughly descending, so our index k can differ from the
  official "semantic k" where eigenvalues are close.
- **Sign rule**: each direction's largest-magnitude component is positive
  (the first such component on an exact tie). Official SeFa leaves signs
  arbitrary; with the rule, +α means the same thing on every run and machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Factorization", "NothingToFactorize", "sefa", "fix_signs"]


class NothingToFactorize(ValueError):
    """The weights hold no direction: all zero, or not finite."""


@dataclass(frozen=True)
class Factorization:
    directions: np.ndarray   # [k, latent_dim], unit rows, sorted by eigenvalue
    eigenvalues: np.ndarray  # [k], descending


def fix_signs(directions: np.ndarray) -> np.ndarray:
    """Flip rows so that each row's largest-magnitude entry is positive.

    >>> fix_signs(np.array([[0.6, -0.8], [-0.6, 0.8]]))
    array([[-0.6,  0.8],
           [-0.6,  0.8]])
    """
    largest = np.argmax(np.abs(directions), axis=1)
    signs = np.sign(directions[np.arange(len(directions)), largest])
    signs[signs == 0] = 1
    return directions * signs[:, None]


def sefa(weights: Sequence[np.ndarray]) -> Factorization:
    """Factorize the stacked affine weights `weights`, each [out_units, latent_dim].

    Returns min(total rows, latent_dim) directions.
    """
    if not weights:
        raise ValueError("sefa() needs at least one weight matrix")
    stacked = np.concatenate([np.asarray(w, dtype=np.float64) for w in weights], axis=0)  # [Σ out, latent_dim]
    if not np.isfinite(stacked).all():
        raise NothingToFactorize("the weights SeFa reads contain NaN or infinite values")
    norms = np.linalg.norm(stacked, axis=1, keepdims=True)
    # An all-zero row (e.g. a dead unit) has no direction to normalise; it adds nothing to AᵀA.
    stacked = stacked[norms[:, 0] > 0] / norms[norms[:, 0] > 0]
    if len(stacked) == 0:
        raise NothingToFactorize("the weights SeFa reads are all zero: there is no direction to find")
    _, singular_values, right_vectors = np.linalg.svd(stacked, full_matrices=False)
    return Factorization(directions=fix_signs(right_vectors), eigenvalues=singular_values**2)
