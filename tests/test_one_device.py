"""Every family's sampling, editing, synthesis and 8-bit conversion keep to the generator's device.

Without a GPU: the generator goes to the `meta` device (shapes, no data) and
a torch function mode refuses any call whose tensors sit on two devices, as
CUDA does, except the explicit moves (`.to`, `.copy_`). A tensor made on the
CPU and mixed into a GPU computation fails here as it would on a GPU.
"""

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from families import WRITERS, sampling_of
from render.layout import to_pixels
from render.models.base import Sampling
from render.models.registry import load_generator

MOVES = {torch.Tensor.to, torch.Tensor.copy_, torch.Tensor.cpu}


class OneDevice(TorchFunctionMode):
    """Raise on any torch call that mixes devices; CPU scalars (0-dim) may mix, as CUDA allows."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in MOVES:
            tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            devices = {t.device.type for t in tensors if not (t.device.type == "cpu" and t.dim() == 0)}
            if len(devices) > 1:
                raise AssertionError(f"{getattr(func, '__name__', func)} mixes tensors on {sorted(devices)}")
        return func(*args, **kwargs)


@pytest.mark.parametrize("family", [family for family in WRITERS if family != "biggan"])
def test_rendering_keeps_to_the_generators_device(tmp_path, family):
    generator = load_generator(WRITERS[family](tmp_path)).to("meta")
    with torch.no_grad(), OneDevice():
        latents = generator.latents_from_seeds([0, 1], sampling_of(generator))
        edited = generator.edit(latents, torch.ones(generator.latent_dim), torch.tensor([1.0, -1.0]), [0])
        images = generator.synthesize(edited)
        if generator.geometric_slots:  # a StyleGAN3 camera move
            images = generator.synthesize_moved(edited, np.array([[0.1, 0.0, 5.0], [0.0, 0.1, 0.0]]))
        pixels = to_pixels(images, 24)
    assert pixels.device.type == "meta" and pixels.shape == (2, 24, 24, 3)


def test_biggans_network_keeps_to_its_device(tmp_path):
    """BigGAN's `synthesize` groups rows by their values (torch.unique), which meta tensors cannot do:
    its network is checked directly, with latents made on the CPU."""
    generator = load_generator(WRITERS["biggan"](tmp_path))
    latents = generator.latents_from_seeds([0, 1], Sampling(0.5, None, 1))
    generator = generator.to("meta")
    with torch.no_grad(), OneDevice():
        images = generator.generator(latents[:, 0, :2 * generator.z_dim].to("meta"), (0, 0.5, 0.5))
    assert images.device.type == "meta" and images.shape[0] == 2
