"""BigGAN-deep in the Hugging Face layout: loading, the network's parts, sampling, classes, SeFa."""

import copy
import json
import math
import shutil

import numpy as np
import pytest
import torch

from checkpoints_biggan import TINY_BIGGAN, biggan_state_dict, write_biggan
from render.errors import CheckpointError
from render.models.base import Sampling
from render.models.biggan import SpectralNormed, mix_rows, stats_mix, truncated_normal
from render.models.biggan_loader import read_config
from render.models.limits import MAX_SYNTHESIS_BYTES
from render.models.registry import checkpoint_sha256, describe_checkpoint, load_generator

SAMPLING = Sampling(truncation_psi=0.4, class_index=3)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_biggan(tmp_path_factory.mktemp("biggan") / "biggan-deep-tiny")


@pytest.fixture(scope="module")
def generator(folder):
    return load_generator(folder)


def images(generator, seeds=(0, 1), sampling=SAMPLING):
    with torch.no_grad():
        return generator.synthesize(generator.latents_from_seeds(list(seeds), sampling))


# ---------------------------------------------------------------------- files
@pytest.mark.parametrize("legacy_format", [True, False])
def test_a_folder_in_either_torch_format_loads_and_renders_in_range(tmp_path, legacy_format):
    generator = load_generator(write_biggan(tmp_path, legacy_format=legacy_format))
    out = images(generator)
    assert generator.family == "biggan" and generator.img_resolution == 32 and generator.c_dim == 10
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all() and out.abs().max() <= 1
    assert describe_checkpoint(tmp_path)["container"] == ("torch-legacy" if legacy_format else "torch-zip")


def test_the_weights_file_or_the_config_file_names_the_same_model_as_the_folder(tmp_path, folder, generator):
    expected = images(generator)
    assert torch.equal(images(load_generator(folder / "pytorch_model.bin")), expected)
    assert torch.equal(images(load_generator(folder / "config.json")), expected)
    # The port's download names: <model>-pytorch_model.bin beside <model>-config.json.
    shutil.copy(folder / "pytorch_model.bin", tmp_path / "biggan-deep-tiny-pytorch_model.bin")
    shutil.copy(folder / "config.json", tmp_path / "biggan-deep-tiny-config.json")
    assert torch.equal(images(load_generator(tmp_path / "biggan-deep-tiny-pytorch_model.bin")), expected)


def test_the_checkpoint_hash_covers_both_files(tmp_path):
    write_biggan(tmp_path)
    before = checkpoint_sha256(tmp_path)
    assert before == checkpoint_sha256(tmp_path / "pytorch_model.bin") == checkpoint_sha256(tmp_path / "config.json")
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config, indent=4))
    assert checkpoint_sha256(tmp_path) != before


def edited_state(change):
    state = biggan_state_dict()
    change(state)
    return state


@pytest.mark.parametrize("setup, message", [
    (lambda d: (d / "config.json").unlink(), r"must hold config.json and pytorch_model.bin \(missing: config.json\)"),
    (lambda d: torch.save(edited_state(lambda s: s.pop("generator.layers.2.gamma")), d / "pytorch_model.bin"),
     "missing tensor generator.layers.2.gamma"),
    (lambda d: torch.save(edited_state(lambda s: s.__setitem__("generator.extra", torch.zeros(1))), d / "pytorch_model.bin"),
     "unexpected tensors for a BigGAN-deep generator: generator.extra"),
    (lambda d: torch.save(edited_state(lambda s: s.__setitem__("embeddings.weight", torch.zeros(8, 11))), d / "pytorch_model.bin"),
     r"embeddings.weight has shape \(8, 11\), expected \(8, 10\)"),
    (lambda d: (d / "config.json").write_text(json.dumps({**TINY_BIGGAN, "extra": 1})), r"config.json: unknown keys \['extra'\]"),
    (lambda d: (d / "config.json").write_text(json.dumps({**TINY_BIGGAN, "channel_width": 10 ** 9})),
     r"channel_width is 1000000000, expected an integer in \[1, 2048\]"),
    (lambda d: (d / "config.json").write_text(json.dumps({**TINY_BIGGAN, "layers": [[False, 16, 16], [True, 16, 3]]})),
     "layers\\[1\\] goes from 16·ch to 3·ch channels; a block keeps or halves them"),
    (lambda d: (d / "config.json").write_text(json.dumps({**TINY_BIGGAN, "output_dim": 64})),
     "output_dim is 64, but the layers upsample 4 px to 32 px"),
    (lambda d: (d / "config.json").write_text("{"), "config.json: not a readable JSON file"),
])
def test_a_bad_checkpoint_is_a_one_line_error_naming_the_problem(tmp_path, setup, message):
    write_biggan(tmp_path)
    setup(tmp_path)
    with pytest.raises(CheckpointError, match=message) as error:
        load_generator(tmp_path)
    assert "\n" not in str(error.value)


def test_a_config_too_big_to_synthesise_is_refused_before_anything_is_built(tmp_path):
    # Every declared size is within its bound and the weights are tiny (ch 4), but one 8192 px image
    # needs ~17 GiB of feature maps.
    write_biggan(tmp_path)
    layers = [[False, 16, 16]] + [[True, 16, 16]] * 7 + [[True, 16, 8], [True, 8, 4], [True, 4, 2], [True, 2, 1]]
    (tmp_path / "config.json").write_text(json.dumps({**TINY_BIGGAN, "output_dim": 8192, "layers": layers}))
    with pytest.raises(CheckpointError, match=rf"about \d+\.\d GiB .* limit of {MAX_SYNTHESIS_BYTES >> 30} GiB"):
        load_generator(tmp_path)


def test_the_memory_estimate_counts_the_self_attention_map():
    # Attention before layers[4] sees 32² positions: a [1024, 256] map outweighs every feature map of this model.
    assert read_config({**TINY_BIGGAN, "attention_layer_position": 4}).largest_activation == 1024 * 256


def test_weights_without_their_config_are_refused_with_the_reason(tmp_path):
    torch.save(biggan_state_dict(), tmp_path / "weights.bin")
    with pytest.raises(CheckpointError, match="needs its config.json"):
        load_generator(tmp_path / "weights.bin")


# ---------------------------------------------------------------------- the network's parts
def test_spectral_normalisation_uses_the_stored_u_and_v(generator):
    state = biggan_state_dict()
    layers = {name: m for name, m in generator.named_modules() if isinstance(m, SpectralNormed)}
    assert len(layers) == 1 + 5 * 4 * 2 + 5 * 4 + 4 + 1  # gen_z, BN scale/offset, block convs, attention, to_rgb
    for name, layer in layers.items():
        weight = state[f"{name}.weight_orig"].double()
        matrix = weight.reshape(len(weight), -1)
        sigma = state[f"{name}.weight_u"].double() @ matrix @ state[f"{name}.weight_v"].double()
        torch.testing.assert_close(layer.weight.double(), weight / sigma, rtol=1e-6, atol=0)
        # The fixture's u and v are the top singular vectors, so σ is the spectral norm.
        assert math.isclose(float(sigma), float(torch.linalg.matrix_norm(matrix, 2)), rel_tol=1e-5)


@pytest.mark.parametrize("truncation, row, weight_of_row", [
    (0.5, 25, 1.0),      # on the grid: that row alone
    (1.0, 50, 1.0),
    (0.505, 25, 0.25),   # a quarter of the way to row 26: the port weighs row 25 by 0.25 (not 0.75)
    (0.51, 25, 0.5),
    (0.58, 28, 1.0),     # 0.58/0.02 is 28.999… in floating point: the port uses row 28 (0.56's), not 29
    (0.14, 7, 0.0),      # 0.14/0.02 is 7.000…1: the port weighs row 7 by ~0, so it uses row 8 (0.16's)
])
def test_truncation_statistics_mix_the_stored_rows_as_the_port_does(generator, truncation, row, weight_of_row):
    bn = generator.generator.bn
    mix = stats_mix(truncation, 51)
    assert mix[0] == row and math.isclose(mix[1], weight_of_row, abs_tol=1e-6)
    coef, whole = math.modf(truncation / 0.02)
    if coef == 0:
        expected_mean = bn.running_means[int(whole)]
    else:
        expected_mean = bn.running_means[int(whole)] * coef + bn.running_means[int(whole) + 1] * (1 - coef)
    x = torch.randn(2, bn.weight.numel(), 3, 3)
    by_hand = (x - expected_mean[None, :, None, None]) / torch.sqrt(
        mix_rows(bn.running_vars, mix)[None, :, None, None] + bn.eps)
    by_hand = by_hand * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
    torch.testing.assert_close(bn(x, mix), by_hand, rtol=1e-5, atol=1e-5)
    if coef == 0:
        assert torch.equal(mix_rows(bn.running_means, mix), bn.running_means[row])


def test_a_batch_mixing_truncations_renders_each_as_alone(generator):
    low = generator.latents_from_seeds([0, 1], SAMPLING)
    high = generator.latents_from_seeds([2], Sampling(truncation_psi=0.9, class_index=3))
    with torch.no_grad():
        together = generator.synthesize(torch.cat([low, high]))
        assert torch.equal(together[:2], generator.synthesize(low)) and torch.equal(together[2:], generator.synthesize(high))


# ---------------------------------------------------------------------- sampling, classes, edits
def test_a_seed_gives_truncation_times_truncated_normal_noise(generator):
    noise = truncated_normal(7, 20_000)
    assert np.abs(noise).max() <= 2 and abs(noise.mean()) < 0.02
    assert abs(noise.std() - 0.8796) < 0.01  # the standard deviation of N(0, 1) truncated to ±2
    latents = generator.latents_from_seeds([7], Sampling(truncation_psi=0.3, class_index=0))
    assert torch.equal(latents[0, 0, :8], torch.from_numpy(np.float32(0.3) * truncated_normal(7, 8)))


def test_classes_change_the_image_and_edits_move_only_z(generator):
    latents = generator.latents_from_seeds([0], SAMPLING)
    other = generator.latents_from_seeds([0], Sampling(truncation_psi=0.4, class_index=4))
    assert torch.equal(latents[..., :8], other[..., :8]) and not torch.equal(latents, other)
    with torch.no_grad():
        assert (generator.synthesize(latents) - generator.synthesize(other)).abs().mean() > 0.01
    direction = torch.ones(8) / math.sqrt(8)
    edited = generator.edit(latents, direction, torch.tensor([2.0]), [0])
    torch.testing.assert_close(edited[0, 0, :8], latents[0, 0, :8] + 2 * direction)
    assert torch.equal(edited[0, 0, 8:], latents[0, 0, 8:])


def test_class_names_are_imagenet_names_and_need_an_imagenet_model(tmp_path, generator):
    with pytest.raises(ValueError, match="this model has 10 classes"):
        generator.class_index("golden retriever")
    imagenet_sized = load_generator(write_biggan(tmp_path, {**TINY_BIGGAN, "num_classes": 1000}))
    assert imagenet_sized.class_index("Golden Retriever") == 207
    with pytest.raises(ValueError, match="did you mean 'golden retriever'"):
        imagenet_sized.class_index("golden retreiver")


def test_sampling_outside_the_port_s_range_is_refused(generator):
    assert "(0, 1]" in generator.check_sampling(Sampling(truncation_psi=1.5, class_index=0))
    assert "no truncation_cutoff" in generator.check_sampling(Sampling(truncation_psi=0.5, truncation_cutoff=2, class_index=0))
    assert "class_index 10 is out of range" in generator.check_sampling(Sampling(truncation_psi=0.5, class_index=10))


def test_sefa_takes_the_first_layer_by_default_and_every_conditional_batch_norm_on_request(generator):
    default = generator.sefa_matrices([0])
    stacked = generator.sefa_matrices([0], "all")
    assert [m.shape for m in default] == [(4 * 4 * 16 * 4, 8)]
    assert len(stacked) == 1 + 5 * 4 * 2 and all(m.shape[1] == 8 for m in stacked)
    np.testing.assert_array_equal(default[0], generator.sefa_weight(0))
    with pytest.raises(ValueError, match="not 'default' or 'all'"):
        generator.sefa_matrices([0], "some")


def test_config_values_are_checked_before_anything_is_allocated(tmp_path):
    config = copy.deepcopy(TINY_BIGGAN)
    config["layers"] = [[False, 16, 16]] * 32 + [[False, 16, 1]]
    write_biggan(tmp_path, TINY_BIGGAN)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="layers must be a list of 1 to 32"):
        load_generator(tmp_path)
