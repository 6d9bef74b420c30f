"""rosinality/stylegan2-pytorch checkpoints, loaded through the public registry."""

import numpy as np
import pytest
import torch

from render.errors import CheckpointError
from render.models import rosinality
from render.models.base import Sampling
from render.models.registry import describe_checkpoint, load_generator
from tests.checkpoints_stylegan2 import TINY_SG2, rosinality_state_dict, stylegan2_weights, write_nvidia_pickle, write_rosinality


def render(generator, sampling=Sampling(0.7, None), seeds=(0, 1, 2)) -> torch.Tensor:
    with torch.no_grad():
        return generator.synthesize(generator.latents_from_seeds(list(seeds), sampling))


@pytest.mark.parametrize(
    "style, legacy_format, expected_format",
    [
        ("converted", False, "rosinality StyleGAN2 .pt"),
        ("converted", True, "rosinality StyleGAN2 .pt"),
        ("training", False, "rosinality StyleGAN2 .pt (training checkpoint)"),
    ],
    ids=["zip", "legacy torch.save", "training checkpoint with argparse.Namespace"],
)
def test_loads_and_renders_when_saved_by_either_rosinality_script(tmp_path, style, legacy_format, expected_format):
    path = write_rosinality(tmp_path / "checkpoint.pt", style=style, legacy_format=legacy_format)
    generator = load_generator(path)
    assert generator.format == expected_format and generator.architecture == "skip"
    assert generator.config.channels == TINY_SG2.channels and generator.img_resolution == 16 and generator.num_layers == 6
    images = render(generator)
    assert images.shape == (3, 3, 16, 16) and torch.isfinite(images).all()


def test_agrees_with_the_nvidia_pickle_when_both_hold_the_same_weights(tmp_path):
    weights = stylegan2_weights(TINY_SG2, seed=9)
    from_rosinality = load_generator(write_rosinality(tmp_path / "rosinality.pt", weights=weights))
    from_nvidia = load_generator(write_nvidia_pickle(tmp_path / "nvidia.pkl", weights=weights))
    for sampling in (Sampling(), Sampling(0.7, None), Sampling(0.5, 3)):
        torch.testing.assert_close(render(from_rosinality, sampling), render(from_nvidia, sampling), atol=1e-5, rtol=0)
    for slot in range(from_nvidia.num_layers):
        np.testing.assert_array_equal(from_rosinality.sefa_weight(slot), from_nvidia.sefa_weight(slot))


def test_uses_latent_avg_as_truncation_centre_when_present(tmp_path):
    weights = stylegan2_weights(TINY_SG2)
    generator = load_generator(write_rosinality(tmp_path / "converted.pt", weights=weights))
    torch.testing.assert_close(generator.mapping.w_avg, weights["mapping.w_avg"], atol=0, rtol=0)
    assert generator.w_avg_source == "stored in the checkpoint"


def test_estimates_w_avg_deterministically_when_latent_avg_is_absent(tmp_path):
    path = write_rosinality(tmp_path / "000100.pt", style="training")
    first, second = load_generator(path), load_generator(path)
    torch.testing.assert_close(first.mapping.w_avg, second.mapping.w_avg, atol=0, rtol=0)
    assert first.w_avg_source.startswith("estimated")
    z = torch.from_numpy(np.random.RandomState(rosinality.W_AVG_SEED).randn(rosinality.W_AVG_SAMPLES, 8)).float()
    with torch.no_grad():
        expected = first.mapping(z, None).mean(dim=0)
    torch.testing.assert_close(first.mapping.w_avg, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(render(first, Sampling(0.0)), render(second, Sampling(0.0)), atol=0, rtol=0)


@pytest.mark.parametrize("change, message", [
    (lambda state: state.pop("convs.1.noise.weight"), r"missing tensor g_ema\.convs\.1\.noise\.weight"),
    (lambda state: state.update({"convs.0.conv.extra": torch.zeros(2)}),
     r"unexpected tensors .*g_ema\.convs\.0\.conv\.extra"),
    (lambda state: state.update({"to_rgbs.1.conv.modulation.weight": torch.zeros(5, 8)}),
     r"g_ema\.to_rgbs\.1\.conv\.modulation\.weight has shape \(5, 8\)"),
    (lambda state: state.update({"to_rgbs.0.iwt.ll": torch.ones(1, 1, 2, 2)}), "SWAGAN"),
], ids=["missing tensor", "unexpected tensor", "wrong shape", "SWAGAN wavelets"])
def test_names_the_rosinality_tensor_when_the_state_dict_does_not_fit(tmp_path, change, message):
    state = rosinality_state_dict()
    change(state)
    path = tmp_path / "bad.pt"
    torch.save({"g_ema": state, "latent_avg": torch.zeros(8)}, path)
    with pytest.raises(CheckpointError, match=message):
        load_generator(path)


def test_describe_reports_the_rosinality_format_when_inspecting(tmp_path):
    description = describe_checkpoint(write_rosinality(tmp_path / "converted.pt", legacy_format=True))
    assert description["format"] == "rosinality StyleGAN2 .pt" and description["container"] == "torch-legacy"
    assert description["architecture"] == "skip" and description["num_ws"] == 6 and description["conditional"] is False
