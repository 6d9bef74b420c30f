"""genforce PGGAN, StyleGAN and StyleGAN2 checkpoints: loading, forward passes, sampling, SeFa."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from checkpoints_genforce import (
    TINY_PGGAN, TINY_STYLEGAN, genforce_stylegan2_weights, pggan_weights, stylegan_weights, write_genforce,
)
from checkpoints_stylegan2 import TINY_SG2, stylegan2_weights
from render.directions import factorize_generator
from render.errors import CheckpointError
from render.layout import to_pixels
from render.models.base import Sampling
from render.models.limits import MAX_SYNTHESIS_BYTES
from render.models.registry import build_generator, describe_checkpoint, load_generator
from render.models.stylegan2 import StyleGAN2Generator, load_state


def load(tmp_path, weights, **container):
    return load_generator(write_genforce(tmp_path / "model.pth", weights, **container))


# ---------------------------------------------------------------------- hand-written reference maths (numpy, float64)
def pn(x, axis=0):
    return x / np.sqrt((x**2).mean(axis=axis, keepdims=True) + 1e-8)


def lrelu(x):
    return np.where(x >= 0, x, 0.2 * x)


def conv(x, weight, pad):
    """Cross-correlation of x [C, H, W] with weight [O, C, k, k], zero padding `pad`."""
    out_channels, _, k, _ = weight.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    size = padded.shape[1] - k + 1
    out = np.zeros((out_channels, size, size))
    for y in range(size):
        for x_ in range(size):
            out[:, y, x_] = np.tensordot(weight, padded[:, y:y + k, x_:x_ + k], axes=3)
    return out


def up(x):
    return x.repeat(2, axis=1).repeat(2, axis=2)


def numpy_weights(weights):
    return {name: value.double().numpy() for name, value in weights.items()}


def pggan_by_hand(w, code):
    """genforce PGGAN forward (8 px) on sefa.py's code PN(z)."""
    x = pn(pn(code))[:, None, None]  # forward() and layer0 each normalise
    channels = [w["layer0.weight"].shape[0], w["layer2.weight"].shape[0]]
    x = lrelu(conv(pn(x), w["layer0.weight"] * math.sqrt(2) / math.sqrt(16 * len(code)), 3) + w["layer0.bias"][:, None, None])
    x = lrelu(conv(pn(x), w["layer1.weight"] * math.sqrt(2) / math.sqrt(9 * channels[0]), 1) + w["layer1.bias"][:, None, None])
    x = lrelu(conv(up(pn(x)), w["layer2.weight"] * math.sqrt(2) / math.sqrt(9 * channels[0]), 1) + w["layer2.bias"][:, None, None])
    x = lrelu(conv(pn(x), w["layer3.weight"] * math.sqrt(2) / math.sqrt(9 * channels[1]), 1) + w["layer3.bias"][:, None, None])
    return conv(pn(x), w["output1.weight"] / math.sqrt(channels[1]), 0) + w["output1.bias"][:, None, None]


def stylegan_by_hand(w, z, psi, cutoff):
    """genforce StyleGAN forward (8 px): mapping, truncation, four style layers, ToRGB."""
    x = pn(z)
    for i in range(2):
        weight = w[f"mapping.dense{i}.weight"]
        x = lrelu(weight @ x * math.sqrt(2) / math.sqrt(weight.shape[1]) * 0.01 + w[f"mapping.dense{i}.bias"] * 0.01)
    wp = np.stack([w["truncation.w_avg"] + (x - w["truncation.w_avg"]) * (psi if j < cutoff else 1) for j in range(4)])
    blur = np.outer([1, 2, 1], [1, 2, 1]) / 16
    h = None
    for j in range(4):
        layer = f"synthesis.layer{j}"
        if j == 0:
            h = w[f"{layer}.const"][0]
        else:
            weight = w[f"{layer}.weight"]
            h = conv(up(h) if j == 2 else h, weight * math.sqrt(2) / math.sqrt(9 * weight.shape[1]), 1)
            if j == 2:
                h = np.stack([conv(c[None], blur[None, None], 1)[0] for c in h])
        h = h + w[f"{layer}.apply_noise.noise"][0] * w[f"{layer}.apply_noise.weight"][:, None, None]
        h = lrelu(h + w[f"{layer}.bias"][:, None, None])
        h = h - h.mean(axis=(1, 2), keepdims=True)
        h = h / np.sqrt((h**2).mean(axis=(1, 2), keepdims=True) + 1e-8)
        style = w[f"{layer}.style.weight"] @ wp[j] / math.sqrt(len(wp[j])) + w[f"{layer}.style.bias"]
        channels = h.shape[0]
        h = h * (style[:channels, None, None] + 1) + style[channels:, None, None]
    return conv(h, w["synthesis.output1.weight"] / math.sqrt(h.shape[0]), 0) + w["synthesis.output1.bias"][:, None, None], wp


# ---------------------------------------------------------------------- PGGAN
def test_pggan_reads_sizes_from_the_weights_and_matches_a_hand_computation(tmp_path):
    weights = pggan_weights(**TINY_PGGAN)
    generator = load(tmp_path, weights)
    assert (generator.family, generator.img_resolution, generator.z_dim, generator.num_layers) == ("pggan", 8, 6, 1)
    assert generator.config.channels == (8, 4) and not generator.config.fused_scale
    assert "genforce PGGAN" in generator.format and "generator_smooth" in generator.format

    latents = generator.latents_from_seeds([4, 9])
    with torch.no_grad():
        images = generator.synthesize(latents)
    assert images.shape == (2, 3, 8, 8)
    for latent, image in zip(latents, images):
        expected = pggan_by_hand(numpy_weights(weights), latent[0].double().numpy())
        np.testing.assert_allclose(image.numpy(), expected, atol=2e-5)


def test_pggan_first_layer_as_a_linear_map_is_the_layer():
    """A·z (A = first_layer_matrix, [C·16, Z]) is the 4×4 first layer's output before bias and activation."""
    from render.models.genforce import build

    weights = pggan_weights(**TINY_PGGAN)
    generator = build({"generator": weights})
    z = torch.randn(3, 6, dtype=torch.float64)
    layer = F.conv2d(z[:, :, None, None], weights["layer0.weight"].double(), padding=3)  # [3, C, 4, 4]
    matrix = generator.first_layer_matrix().double()
    np.testing.assert_allclose((z @ matrix.T).reshape(3, 8, 4, 4).numpy(), layer.numpy(), atol=1e-10)
    assert generator.sefa_weight(0).shape == (8 * 16, 6)


def test_pggan_fused_scale_is_read_from_the_weight_layout_and_equals_upsample_then_flipped_conv(tmp_path):
    weights = pggan_weights(**TINY_PGGAN, fused_scale=True)
    fused = load(tmp_path, weights)
    assert fused.config.fused_scale
    # A transposed conv is a true convolution: the same weights, transposed and flipped, applied as
    # nearest ×2 then cross-correlation give the same image.
    unfused_weights = dict(weights, **{"layer2.weight": weights["layer2.weight"].transpose(0, 1).flip(2, 3).contiguous()})
    unfused = load(tmp_path, unfused_weights)
    assert not unfused.config.fused_scale
    latents = fused.latents_from_seeds([1, 2])
    with torch.no_grad():
        torch.testing.assert_close(fused.synthesize(latents), unfused.synthesize(latents), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- StyleGAN v1
@pytest.mark.parametrize("psi, cutoff", [(0.7, 2), (1.0, None)])
def test_stylegan_matches_a_hand_computation(tmp_path, psi, cutoff):
    weights = stylegan_weights(**TINY_STYLEGAN)
    generator = load(tmp_path, weights)
    assert (generator.family, generator.img_resolution, generator.num_layers, generator.latent_dim) == ("stylegan", 8, 4, 6)
    z = torch.randn(2, 6)
    with torch.no_grad():
        latents = generator.latents(z, Sampling(psi, cutoff))
        images = generator.synthesize(latents)
    for k in range(2):
        expected, wp = stylegan_by_hand(numpy_weights(weights), z[k].double().numpy(), psi, 4 if cutoff is None else cutoff)
        np.testing.assert_allclose(latents[k].numpy(), wp, atol=1e-5)
        np.testing.assert_allclose(images[k].numpy(), expected, atol=1e-4)


def test_stylegan_fused_layers_from_128_px_equal_upsample_then_conv(tmp_path):
    """genforce's fused_scale='auto': a transposed conv from 128 px on, the same maths as nearest ×2 + conv
    with the kernel flipped."""
    weights = stylegan_weights(z_dim=4, w_dim=4, mapping_layers=1, channels=(2, 2, 2, 2, 2, 2))
    generator = load(tmp_path, weights)
    assert generator.img_resolution == 128 and generator.synthesis.layer10.kind == "fused"
    assert generator.synthesis.layer8.kind == "up"
    layer = generator.synthesis.layer10
    x, w = torch.randn(2, 2, 64, 64), torch.randn(2, 4)
    with torch.no_grad():
        fused = layer(x, w)
        layer.kind = "up"
        layer.weight.copy_(layer.weight.flip(2, 3))  # a transposed conv is a true convolution
        unfused = layer(x, w)
    torch.testing.assert_close(fused, unfused, atol=1e-5, rtol=1e-5)


def test_stylegan_truncation_is_genforces():
    from render.models.genforce import build

    generator = build({"generator_smooth": stylegan_weights(**TINY_STYLEGAN)})
    assert generator.default_sampling == Sampling(0.7, 4)  # sefa.py's 8 slots, here all 4
    z = torch.randn(3, 6)
    with torch.no_grad():
        plain = generator.latents(z, Sampling())
        pulled = generator.latents(z, Sampling(0.0, 2))
    w_avg = generator.truncation.w_avg
    torch.testing.assert_close(pulled[:, :2], w_avg.expand(3, 2, 6))
    torch.testing.assert_close(pulled[:, 2:], plain[:, 2:])
    assert generator.check_sampling(Sampling(0.7, 5)) == "truncation_cutoff 5 is outside 0…4 (this model has 4 w slots)"


def test_seeds_are_sefa_py_seeds(tmp_path):
    """Seed s is what `sefa.py --seed s` draws first: torch.manual_seed(s); torch.randn(N, z_dim)[0].

    (For z_dim < 16 torch fills short tensors another way, so N must be 1 here; for z_dim 512 any N gives it.)
    """
    generator = load(tmp_path, stylegan_weights(**TINY_STYLEGAN))
    torch.manual_seed(11)
    z = torch.randn(1, 6)
    with torch.no_grad():
        torch.testing.assert_close(generator.latents_from_seeds([11], Sampling(0.7, 4)), generator.latents(z, Sampling(0.7, 4)),
                                   rtol=0, atol=0)
    pggan = load(tmp_path, pggan_weights(**TINY_PGGAN))
    torch.manual_seed(11)
    code = torch.randn(1, 6)
    code = code / torch.sqrt(torch.mean(code**2, dim=1, keepdim=True) + 1e-8)
    torch.testing.assert_close(pggan.latents_from_seeds([11])[:, 0], code, rtol=0, atol=0)


def test_pixels_follow_genforces_postprocess():
    images = torch.linspace(-1.2, 1.2, 2001).reshape(1, 1, 1, -1).float()
    expected = np.clip((images.numpy() - -1.0) * 255 / 2.0 + 0.5, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(to_pixels(images, None, "genforce")[0, 0, :, 0].numpy(), expected[0, 0, 0])


# ---------------------------------------------------------------------- StyleGAN2
@pytest.mark.parametrize("architecture", ["skip", "orig"])
def test_genforce_stylegan2_is_the_same_network_as_the_nvidia_weights_it_was_written_from(tmp_path, architecture):
    config = TINY_SG2.__class__(**{**TINY_SG2.__dict__, "architecture": architecture})
    canonical = stylegan2_weights(config)
    generator = load(tmp_path, genforce_stylegan2_weights(config, canonical=canonical))
    assert (generator.family, generator.architecture, generator.num_layers) == ("stylegan2", architecture, 6)
    assert "genforce StyleGAN2" in generator.format and generator.pixels == "genforce"
    reference = load_state(StyleGAN2Generator(config), canonical)
    ws = torch.randn(2, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(generator.synthesize(ws), reference.synthesize(ws), atol=1e-5, rtol=1e-5)


def test_genforce_stylegan2_upsampling_layer_matches_genforces_formula(tmp_path):
    """Layer 1 (8 px, upsampling) by genforce's recipe: modulate with style + 1, demodulate,
    flip the TF-oriented weight, stride-2 transposed conv, then the ×4 [1,3,3,1]² filter with padding 1."""
    weights = genforce_stylegan2_weights()
    generator = load(tmp_path, weights)
    x, w = torch.randn(2, 16, 4, 4), torch.randn(2, 8)
    with torch.no_grad():
        ours = generator.synthesis.b8.conv0(x, w)
    name = "synthesis.layer1"
    weight = weights[f"{name}.weight"] / math.sqrt(16 * 9)  # [8, 16, 3, 3], wscale 1/√fan_in
    style = F.linear(w, weights[f"{name}.style.weight"] / math.sqrt(8), weights[f"{name}.style.bias"]) + 1.0
    expected = []
    for n in range(2):
        modulated = weight * style[n].view(1, 16, 1, 1)
        modulated = modulated / torch.sqrt((modulated**2).sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        y = F.conv_transpose2d(x[n:n + 1], modulated.transpose(0, 1).flip(2, 3), stride=2)  # [1, 8, 9, 9]
        kernel = weights[f"{name}.filter.kernel"]  # [1, 1, 4, 4], with the gain
        y = F.conv2d(F.pad(y, (1, 1, 1, 1)).view(-1, 1, 11, 11), kernel).view(1, 8, 8, 8)
        y = y + weights[f"{name}.noise"] * weights[f"{name}.noise_strength"] + weights[f"{name}.bias"].view(1, -1, 1, 1)
        expected.append(F.leaky_relu(y, 0.2) * math.sqrt(2))
    torch.testing.assert_close(ours, torch.cat(expected), atol=1e-5, rtol=1e-5)


def test_genforce_stylegan2_samples_like_genforce(tmp_path):
    """Mapping: pixel norm, then linear(x, W·0.01/√in, b·0.01), lrelu·√2; genforce truncation around w_avg."""
    weights = genforce_stylegan2_weights()
    generator = load(tmp_path, weights)
    assert generator.default_sampling == Sampling(0.7, 6)
    torch.manual_seed(3)
    z = torch.randn(1, 8)
    x = z / torch.sqrt(torch.mean(z**2, dim=1, keepdim=True) + 1e-8)
    for i in range(2):
        x = F.leaky_relu(F.linear(x, weights[f"mapping.dense{i}.weight"] * (1 / math.sqrt(8) * 0.01),
                                  weights[f"mapping.dense{i}.bias"] * 0.01), 0.2) * math.sqrt(2)
    w_avg = weights["truncation.w_avg"]
    expected = torch.stack([w_avg + (x[0] - w_avg) * (0.5 if j < 3 else 1.0) for j in range(6)])
    torch.testing.assert_close(generator.latents_from_seeds([3], Sampling(0.5, 3))[0], expected, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------- containers and strict loading
def test_generator_smooth_is_preferred_and_training_checkpoints_with_module_prefixes_load(tmp_path):
    weights = pggan_weights(**TINY_PGGAN)
    smooth = load(tmp_path, weights)
    plain = load(tmp_path, weights, smooth=False)
    torch.testing.assert_close(smooth.layer0.weight, weights["layer0.weight"])
    torch.testing.assert_close(plain.layer0.weight, weights["layer0.weight"])
    nested = load_generator(write_genforce(tmp_path / "train.pth", weights, training=True, module_prefix=True))
    assert "(models.generator_smooth.module)" in nested.format
    torch.testing.assert_close(nested.layer0.weight, weights["layer0.weight"])


def test_inspect_describes_each_family(tmp_path):
    for name, weights, family in [("p.pth", pggan_weights(**TINY_PGGAN), "pggan"),
                                  ("s.pth", stylegan_weights(**TINY_STYLEGAN), "stylegan"),
                                  ("s2.pth", genforce_stylegan2_weights(), "stylegan2")]:
        description = describe_checkpoint(write_genforce(tmp_path / name, weights))
        assert description["family"] == family and description["format"].startswith("genforce")
        assert description["container"] == "torch-zip" and description["img_resolution"] in (8, 16)


def _without(weights, name):
    return {key: value for key, value in weights.items() if key != name}


PG, SG, SG2 = pggan_weights(**TINY_PGGAN), stylegan_weights(**TINY_STYLEGAN), genforce_stylegan2_weights()


@pytest.mark.parametrize("weights, message", [
    (_without(PG, "layer3.bias"), r"missing tensor generator_smooth\.layer3\.bias for a genforce PGGAN generator"),
    ({**PG, "layer9.weight": torch.zeros(1)}, r"unexpected tensors for a genforce PGGAN generator: generator_smooth\.layer9\.weight"),
    ({**PG, "layer1.bias": torch.zeros(5)}, r"generator_smooth\.layer1\.bias has shape \(5,\), expected \(8,\)"),
    ({**PG, "layer1.weight": torch.zeros(8, 8, 3)}, r"generator_smooth\.layer1\.weight has shape \(8, 8, 3\), expected 4 dimensions"),
    ({**PG, "lod": torch.tensor(1.0)}, r"generator_smooth\.lod is 1\.0: a PGGAN still growing"),
    ({**PG, "layer1.bias": torch.zeros(8, dtype=torch.int64)}, r"generator_smooth\.layer1\.bias holds torch\.int64 values"),
    (_without(SG, "synthesis.layer2.blur.kernel"), r"missing tensor generator_smooth\.synthesis\.layer2\.blur\.kernel"),
    ({**SG, "synthesis.layer3.style.weight": torch.zeros(9, 6)},
     r"generator_smooth\.synthesis\.layer3\.style\.weight has shape \(9, 6\), expected \(8, 6\)"),
    ({**SG, "mapping.label_weight": torch.zeros(2, 6)}, r"class-conditional genforce StyleGAN models are not supported"),
    ({**SG, "truncation.w_avg": torch.zeros(24)}, r"generator_smooth\.truncation\.w_avg has shape \(24,\), expected \(6,\)"),
    (_without(SG2, "synthesis.layer3.noise"), r"missing tensor generator_smooth\.synthesis\.layer3\.noise for a genforce StyleGAN2"),
    ({**SG2, "synthesis.layer2.style.bias": torch.zeros(3)},
     r"generator_smooth\.synthesis\.layer2\.style\.bias has shape \(3,\), expected \(8,\)"),
    ({**SG2, "synthesis.layer3.filter.kernel": torch.ones(1, 1, 4, 4)},
     r"generator_smooth\.synthesis\.layer3\.filter\.kernel differs from generator_smooth\.synthesis\.layer1\.filter\.kernel"),
    ({**SG2, "synthesis.skip_layer0.weight": torch.zeros(1)}, r"genforce's 'resnet' StyleGAN2 is not supported"),
])
def test_malformed_checkpoints_are_one_line_errors_naming_the_tensor(tmp_path, weights, message):
    path = write_genforce(tmp_path / "bad.pth", weights)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_generator(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_sizes_beyond_the_limits_are_refused_before_anything_is_built():
    huge = {**PG, "layer0.weight": torch.zeros(8, 6, 4, 4).expand(8, 6, 4, 4)}
    for k in range(2, 10):  # 11 resolution blocks: 4096 px
        huge[f"output{k}.weight"] = torch.zeros(3, 4, 1, 1)
    with pytest.raises(CheckpointError, match=r"output\*\.weight: 10 resolution blocks, expected 2…9 \(8…1024 px\)"):
        build_generator({"generator": huge}, "huge.pth")
    wide = {**SG, "mapping.dense0.weight": torch.zeros(6, 10**5)}
    with pytest.raises(CheckpointError, match=r"mapping\.dense0\.weight: size 100000 is outside 1…4096"):
        build_generator({"generator": wide}, "wide.pth")


@pytest.mark.parametrize("family", ["pggan", "stylegan", "stylegan2"])
def test_a_network_too_big_to_synthesise_is_refused_before_it_is_built(family):
    # Every size within its limit, but 1024 px at 512 channels needs ~17 GiB of activations per image.
    # Shapes only: expanded zeros, so the test allocates nothing.
    def shaped(*shape):
        return torch.zeros(()).expand(*shape)

    if family == "pggan":
        weights = {**PG, **{f"layer{2 * k + 1}.weight": shaped(512, 512, 3, 3) for k in range(9)},
                   **{f"output{k}.weight": shaped(3, 512, 1, 1) for k in range(9)}}
    else:
        weights = SG if family == "stylegan" else SG2
        step = 1 if family == "stylegan" else 2
        weights = {**weights, **{f"synthesis.layer{step * k}.weight": shaped(512, 512, 3, 3) for k in range(1, 9)},
                   **{f"synthesis.layer{2 * k + 1}.weight": shaped(512, 512, 3, 3) for k in range(9)},
                   **{f"synthesis.output{k}.weight": shaped(3, 512, 1, 1) for k in range(9)}}
    with pytest.raises(CheckpointError, match=rf"about \d+\.\d GiB .* limit of {MAX_SYNTHESIS_BYTES >> 30} GiB"):
        build_generator({"generator": weights}, "big.pth")


def test_other_containers_are_not_taken_for_genforce():
    with pytest.raises(CheckpointError, match=r"no supported generator found in a dict with keys 'generator'"):
        build_generator({"generator": {"fc.weight": torch.zeros(2, 2)}}, "x.pth")
    with pytest.raises(CheckpointError, match=r"generator_smooth\.layer0\.weight is a str, not a tensor"):
        build_generator({"generator_smooth": {**PG, "layer0.weight": "oops"}}, "x.pth")


# ---------------------------------------------------------------------- SeFa
def official_sefa(matrices):
    """genforce/sefa `factorize_weight`: concatenate [latent, out] matrices, normalise columns, eig(W·Wᵀ)."""
    weight = np.concatenate(matrices, axis=1).astype(np.float32)
    weight = weight / np.linalg.norm(weight, axis=0, keepdims=True)
    values, vectors = np.linalg.eig(weight.dot(weight.T))
    order = np.argsort(-values.real)
    return values.real[order], vectors.T.real[order]


def assert_same_directions(ours, eigenvalues, reference_values, reference, k):
    np.testing.assert_allclose(eigenvalues[:k], reference_values[:k], rtol=1e-4)
    for i in range(k):
        assert abs(float(np.dot(ours[i], reference[i]))) == pytest.approx(1.0, abs=1e-4)
        assert np.abs(ours[i]).argmax() == np.abs(reference[i]).argmax() and ours[i][np.abs(ours[i]).argmax()] > 0


def test_pggan_sefa_is_the_official_formula():
    from render.models.genforce import build

    weights = pggan_weights(**TINY_PGGAN)
    directions, eigenvalues = factorize_generator(build({"generator": weights}), (0,))
    official = weights["layer0.weight"].flip(2, 3).permute(1, 0, 2, 3).flatten(1).numpy()  # [Z, C·16]
    assert_same_directions(directions, eigenvalues, *official_sefa([official]), k=6)


@pytest.mark.parametrize("family, layers", [("stylegan", (0, 2, 3)), ("stylegan2", (0, 1, 5))])
def test_stylegan_sefa_is_the_official_formula(family, layers):
    from render.models.genforce import build

    weights = stylegan_weights(**TINY_STYLEGAN) if family == "stylegan" else genforce_stylegan2_weights()
    directions, eigenvalues = factorize_generator(build({"generator": weights}), layers)
    num_layers = 4 if family == "stylegan" else 6
    names = [f"synthesis.output{j // 2}" if family == "stylegan2" and j == num_layers - 1 else f"synthesis.layer{j}" for j in layers]
    official = [weights[f"{name}.style.weight"].numpy().T for name in names]
    assert_same_directions(directions, eigenvalues, *official_sefa(official), k=4)


def test_stylegan_sefa_uses_both_adain_halves():
    from render.models.genforce import build

    generator = build({"generator": stylegan_weights(**TINY_STYLEGAN)})
    assert generator.sefa_weight(2).shape == (2 * 4, 6) and generator.sefa_weight(0).shape == (2 * 8, 6)
