"""Our StyleGAN2 generator: sizes, truncation, w+ slots, SeFa weights and strict loading."""

import dataclasses

import numpy as np
import pytest
import torch

from render.errors import CheckpointError
from render.factorize import sefa
from render.models.base import Sampling
from render.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator, load_state
from tests.checkpoints_stylegan2 import TINY_SG2, stylegan2_weights


def generator(config: StyleGAN2Config = TINY_SG2, seed: int = 0) -> StyleGAN2Generator:
    return load_state(StyleGAN2Generator(config), stylegan2_weights(config, seed))


@pytest.mark.parametrize("resolution, expected", [(4, 2), (8, 4), (16, 6), (32, 8)])
def test_num_ws_is_two_log2_resolution_minus_two_when_resolution_varies(resolution, expected):
    widths = tuple(4 for _ in range(resolution.bit_length() - 2))
    config = dataclasses.replace(TINY_SG2, img_resolution=resolution, channels=widths)
    g = generator(config)
    assert g.num_layers == config.num_ws == expected
    images = g.synthesize(g.latents_from_seeds([0, 1], Sampling()))
    assert images.shape == (2, 3, resolution, resolution)


def test_psi_zero_makes_the_image_independent_of_the_seed_when_noise_is_constant():
    g = generator()
    images = g.synthesize(g.latents_from_seeds([0, 1, 2], Sampling(truncation_psi=0.0)))
    torch.testing.assert_close(images[1:], images[:1].expand(2, -1, -1, -1), atol=0, rtol=0)
    different = g.synthesize(g.latents_from_seeds([0, 1], Sampling()))
    assert not torch.equal(different[0], different[1])


def test_rendering_is_deterministic_and_batch_independent_when_seeds_repeat():
    g = generator()
    together = g.synthesize(g.latents_from_seeds([3, 4], Sampling(0.7, None)))
    alone = g.synthesize(g.latents_from_seeds([4], Sampling(0.7, None)))
    # Equal up to float rounding: convolution algorithms may sum in another order for another batch size.
    torch.testing.assert_close(together[1:], alone, atol=1e-5, rtol=1e-5)


def test_truncation_moves_only_the_slots_below_the_cutoff_when_cutoff_is_set():
    g = generator()
    plain = g.latents_from_seeds([5], Sampling())
    truncated = g.latents_from_seeds([5], Sampling(truncation_psi=0.5, truncation_cutoff=4))
    w_avg = g.mapping.w_avg
    torch.testing.assert_close(truncated[:, :4], w_avg + 0.5 * (plain[:, :4] - w_avg))
    torch.testing.assert_close(truncated[:, 4:], plain[:, 4:], atol=0, rtol=0)
    everything = g.latents_from_seeds([5], Sampling(truncation_psi=0.5, truncation_cutoff=None))
    torch.testing.assert_close(everything, w_avg + 0.5 * (plain - w_avg))


def test_edit_changes_only_the_selected_slots_when_applied_after_truncation():
    g = generator()
    latents = g.latents_from_seeds([1, 2], Sampling(0.7, None))
    direction = torch.zeros(g.latent_dim)
    direction[0] = 1.0
    edited = g.edit(latents, direction, torch.tensor([2.0, -1.0]), layers=[1, 3])
    changed = (edited != latents).any(dim=2)  # [N, num_ws]
    assert changed[:, [1, 3]].all() and not changed[:, [0, 2, 4, 5]].any()
    torch.testing.assert_close(edited[:, 1, 0] - latents[:, 1, 0], torch.tensor([2.0, -1.0]))
    assert not torch.equal(g.synthesize(edited), g.synthesize(latents))


def test_sefa_weight_is_the_affine_of_the_layer_reading_each_slot_when_architecture_is_skip():
    g = generator()
    expected = ["b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1", "b16.torgb"]
    weights = stylegan2_weights(TINY_SG2)
    for slot, layer in enumerate(expected):
        a = g.sefa_weight(slot)
        np.testing.assert_array_equal(a, weights[f"synthesis.{layer}.affine.weight"].double().numpy())
        assert a.shape[1] == g.latent_dim
    # Slot 1 is also read by b4.torgb; SeFa takes the conv that reads it (b8.conv0), never an intermediate ToRGB.
    assert not np.array_equal(g.sefa_weight(1), weights["synthesis.b4.torgb.affine.weight"].double().numpy())
    assert [g.sefa_weight(k).shape[0] for k in range(6)] == [16, 16, 8, 8, 4, 4]  # C_in of each reading layer
    result = sefa([g.sefa_weight(k) for k in range(g.num_layers)])
    np.testing.assert_allclose(result.directions @ result.directions.T, np.eye(g.latent_dim), atol=1e-10)


def test_sefa_weight_raises_when_slot_is_out_of_range():
    with pytest.raises(IndexError):
        generator().sefa_weight(6)


def test_check_sampling_rejects_a_cutoff_when_it_exceeds_num_ws():
    g = generator()
    assert g.check_sampling(Sampling(0.7, 6)) is None
    assert g.check_sampling(Sampling(0.7, None)) is None
    message = g.check_sampling(Sampling(0.7, 7))
    assert message and "6" in message and "\n" not in message
    with pytest.raises(ValueError):
        g.latents_from_seeds([0], Sampling(0.7, 7))


def test_default_sampling_is_official_sefa_truncation_when_the_model_has_enough_slots():
    assert StyleGAN2Generator.default_sampling == Sampling(truncation_psi=0.7, truncation_cutoff=8)
    small = generator()  # 6 slots: cutoff 8 would mean all of them, as in NVIDIA's code
    assert small.check_sampling(small.default_sampling) is None
    large = generator(dataclasses.replace(TINY_SG2, img_resolution=32, channels=(4, 4, 4, 4)))
    assert large.default_sampling.truncation_cutoff == 8 and large.check_sampling(large.default_sampling) is None


def test_check_sampling_asks_for_a_class_when_the_model_is_conditional():
    g = generator(dataclasses.replace(TINY_SG2, c_dim=3, embed_features=8))
    assert "class_index" in g.check_sampling(Sampling())
    assert "out of range" in g.check_sampling(Sampling(class_index=3))
    assert g.check_sampling(Sampling(class_index=2)) is None
    first, second = (g.synthesize(g.latents_from_seeds([0], Sampling(class_index=k))) for k in (0, 1))
    assert not torch.equal(first, second)


def test_load_state_names_the_tensor_when_one_is_missing_misshaped_or_extra():
    weights = stylegan2_weights()
    for change, fragment in [
        (lambda w: w.pop("synthesis.b8.conv0.affine.bias"), "missing tensor synthesis.b8.conv0.affine.bias"),
        (lambda w: w.__setitem__("synthesis.b16.torgb.weight", torch.zeros(3, 5, 1, 1)), "synthesis.b16.torgb.weight has shape (3, 5, 1, 1)"),
        (lambda w: w.__setitem__("synthesis.b4.extra", torch.zeros(1)), "unexpected tensors for a StyleGAN2 generator: synthesis.b4.extra"),
    ]:
        broken = dict(weights)
        change(broken)
        with pytest.raises(CheckpointError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            load_state(StyleGAN2Generator(TINY_SG2), broken)


def test_config_raises_a_checkpoint_error_when_the_architecture_is_unknown():
    with pytest.raises(CheckpointError, match="architecture 'wide'"):
        dataclasses.replace(TINY_SG2, architecture="wide")


def test_forward_runs_when_autocast_to_bfloat16():
    g = generator()
    latents = g.latents_from_seeds([0], Sampling(0.7, None))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        images = g.synthesize(latents)
    reference = g.synthesize(latents)
    assert images.shape == reference.shape and torch.isfinite(images).all()
    assert (images.float() - reference).abs().max() < 0.1 * reference.abs().max()
