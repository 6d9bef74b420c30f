"""One tiny checkpoint of every generator family, written by the tests' own writers, for tests that
run the same checks over all of them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from checkpoints import write_dcgan
from checkpoints_biggan import write_biggan
from checkpoints_genforce import genforce_stylegan2_weights, pggan_weights, stylegan_weights, write_genforce
from checkpoints_stylegan2 import write_nvidia_pickle, write_rosinality
from checkpoints_stylegan3 import TINY_R, write_stylegan3_pickle
from render.models.base import Generator, Sampling

# family → writer of a tiny checkpoint into a folder; returns what load_generator reads.
WRITERS: dict[str, Callable[[Path], Path]] = {
    "dcgan": lambda folder: write_dcgan(folder / "g.pt"),
    "stylegan2-nvidia": lambda folder: write_nvidia_pickle(folder / "g.pkl"),
    "stylegan2-rosinality": lambda folder: write_rosinality(folder / "g.pt"),
    "stylegan3-t": lambda folder: write_stylegan3_pickle(folder / "g.pkl"),
    "stylegan3-r-conditional": lambda folder: write_stylegan3_pickle(folder / "g.pkl", TINY_R),
    "pggan": lambda folder: write_genforce(folder / "g.pth", pggan_weights()),
    "stylegan": lambda folder: write_genforce(folder / "g.pth", stylegan_weights()),
    "stylegan2-genforce": lambda folder: write_genforce(folder / "g.pth", genforce_stylegan2_weights()),
    "biggan": lambda folder: write_biggan(folder / "biggan"),
}


def sampling_of(generator: Generator) -> Sampling:
    """The family's default sampling, with class 1 for class-conditional models."""
    sampling = generator.default_sampling
    return Sampling(sampling.truncation_psi, sampling.truncation_cutoff, 1) if generator.c_dim else sampling
