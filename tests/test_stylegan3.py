"""StyleGAN3 (T and R): NVIDIA pickles through the shared loader, the ops against slow loops, the input transform, SeFa slots."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from checkpoints_stylegan3 import TINY_R, TINY_T, layer_plan, stylegan3_weights, write_stylegan3_pickle
from render.errors import CheckpointError
from render.factorize import sefa
from render.models.base import Sampling
from render.models.registry import describe_checkpoint, load_generator
from render.models.stylegan3 import StyleGAN3Generator, filtered_lrelu
from render.ranges import parse_selection
from test_ops import slow_upfirdn2d

CONFIGS = {"T": TINY_T, "R": TINY_R}


@pytest.fixture(scope="module", params=list(CONFIGS))
def loaded(request, tmp_path_factory):
    """(config, path, generator) for each config, written and loaded once."""
    config = CONFIGS[request.param]
    path = write_stylegan3_pickle(tmp_path_factory.mktemp(request.param) / "stylegan3.pkl", config)
    return config, path, load_generator(path)


def sampling_for(config, psi=0.7, cutoff=None) -> Sampling:
    return Sampling(psi, cutoff, class_index=1 if config.c_dim else None)


def render(generator, sampling, seeds=(0, 1)) -> torch.Tensor:
    with torch.no_grad():
        return generator.synthesize(generator.latents_from_seeds(list(seeds), sampling))


# ---------------------------------------------------------------------- ops
def slow_filtered_lrelu(x, fu, fd, bias, up, down, pad, slope, gain, clamp):
    """bias → upsample and filter → leaky ReLU × gain, clamp → filter and decimate, in float64 loops."""
    x = x + bias[None, :, None, None]
    x = slow_upfirdn2d(x, np.ones((1, 1)) if fu is None else fu, up, 1, pad, up * up)
    x = np.where(x >= 0, x, x * slope) * gain
    if clamp is not None:
        x = np.clip(x, -clamp, clamp)
    return slow_upfirdn2d(x, np.ones((1, 1)) if fd is None else fd, 1, down, (0, 0, 0, 0), 1)


@pytest.mark.parametrize("up, down, pad, down_radial, clamp, torgb", [
    (2, 2, (9, 8, 9, 8), False, None, False),   # a T layer: separable filters both ways
    (4, 2, (-6, -9, -6, -9), False, 0.3, False),  # upsampling layer, negative padding crops, clamped
    (2, 2, (11, 10, 11, 10), True, 0.5, False),  # an R layer: radial 2-D down filter
    (1, 1, (0, 0, 0, 0), False, 0.2, True),      # ToRGB: no filters, linear, clamped
])
def test_filtered_lrelu_matches_slow_loops_when_resampling(up, down, pad, down_radial, clamp, torgb):
    rng = np.random.RandomState(0)
    x, bias = rng.randn(2, 3, 14, 14), rng.randn(3) * 0.1
    fu = None if torgb else rng.rand(6 * up) + 0.5
    fd = None if torgb else (np.outer(rng.rand(6 * down), rng.rand(6 * down)) if down_radial else rng.rand(6 * down))
    fu, fd = (None if f is None else f / f.sum() for f in (fu, fd))
    as_tensor = lambda a: None if a is None else torch.from_numpy(a).float()  # noqa: E731
    ours = filtered_lrelu(as_tensor(x), as_tensor(fu), as_tensor(fd), as_tensor(bias), up, down, pad,
                          activation="linear" if torgb else "lrelu", gain=1.0 if torgb else math.sqrt(2), clamp=clamp)
    expected = slow_filtered_lrelu(x, fu, fd, bias, up, down, pad, 1.0 if torgb else 0.2, 1.0 if torgb else math.sqrt(2), clamp)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours.numpy(), expected, atol=2e-5)


# ---------------------------------------------------------------------- loading and shapes
def test_loads_t_and_r_pickles_into_the_layer_plan_they_store(loaded):
    config, path, generator = loaded
    assert isinstance(generator, StyleGAN3Generator) and generator.format == "NVIDIA StyleGAN3 pickle"
    assert generator.architecture == ("stylegan3-r" if config.radial else "stylegan3-t")
    source, layers = layer_plan(config)
    assert [layer.name for layer in generator.config.layers] == [layer["name"] for layer in layers]
    assert [(layer.up_factor, layer.down_factor, layer.down_radial, list(layer.padding)) for layer in generator.config.layers] == [
        (layer["up_factor"], layer["down_factor"], layer["down_radial"], layer["padding"]) for layer in layers]
    assert generator.num_layers == config.num_layers + 2 and generator.c_dim == config.c_dim
    image = render(generator, sampling_for(config), seeds=(0, 1, 2))
    assert image.shape == (3, 3, config.img_resolution, config.img_resolution) and torch.isfinite(image).all()


def test_an_image_does_not_depend_on_its_batch(loaded):
    config, _, generator = loaded
    together = render(generator, sampling_for(config), seeds=(3, 4, 5))
    alone = torch.cat([render(generator, sampling_for(config), seeds=(seed,)) for seed in (3, 4, 5)])
    # Equal up to float rounding: convolution algorithms may sum in another order for another batch size.
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=1e-5)


def test_demodulation_cancels_a_layers_weight_scale_and_psi_zero_ignores_z(loaded):
    config, _, generator = loaded
    before = render(generator, sampling_for(config))
    layer = getattr(generator.synthesis, generator.config.layers[1].name)
    with torch.no_grad():
        layer.weight.mul_(3.0)
    try:
        torch.testing.assert_close(render(generator, sampling_for(config)), before, atol=1e-5, rtol=1e-4)
    finally:
        with torch.no_grad():
            layer.weight.div_(3.0)
    centre = render(generator, sampling_for(config, psi=0.0), seeds=(0, 1))
    torch.testing.assert_close(centre[0], centre[1], atol=0, rtol=0)


def test_describe_reports_the_family_architecture_and_slots_when_inspecting(loaded):
    config, path, _ = loaded
    description = describe_checkpoint(path)
    assert (description["family"], description["container"], description["num_ws"]) == ("stylegan3", "pickle", config.num_layers + 2)
    assert description["architecture"] == ("stylegan3-r" if config.radial else "stylegan3-t")
    assert description["layer_names"][-1].endswith(f"_{config.img_resolution}_3")
    assert description["conditional"] is bool(config.c_dim)


# ---------------------------------------------------------------------- the input transform
def input_features(generator, translate=(0.0, 0.0), rotate=0.0, matrix=None) -> torch.Tensor:
    """The Fourier features [C, H, W] before the learned mixing, with the w-driven transform held at identity."""
    source = generator.synthesis.input
    saved = source.affine.weight.clone(), source.affine.bias.clone(), source.weight.clone()
    with torch.no_grad():
        source.affine.weight.zero_()
        source.affine.bias.copy_(torch.tensor([1.0, 0, 0, 0]))
        source.weight.copy_(torch.eye(source.channels) * math.sqrt(source.channels))
        generator.set_input_transform(translate, rotate)
        if matrix is not None:
            source.transform.copy_(matrix)
        features = source(torch.zeros(1, generator.latent_dim))[0]
        generator.set_input_transform((0, 0), 0)
        source.affine.weight.copy_(saved[0]), source.affine.bias.copy_(saved[1]), source.weight.copy_(saved[2])
    return features


def test_the_input_transform_translates_and_rotates_the_features_like_gen_images(loaded):
    _, _, generator = loaded
    source = generator.synthesis.input
    plain = input_features(generator)
    # One pixel is 1/sampling_rate in the input's coordinates: translating by 2 pixels moves the content 2 pixels right.
    shifted = input_features(generator, translate=(2 / source.sampling_rate, 0))
    torch.testing.assert_close(shifted[:, :, 2:], plain[:, :, :-2], atol=1e-4, rtol=0)
    # A quarter turn maps the (square, centred) grid onto itself: the content turns counter-clockwise.
    turned = input_features(generator, rotate=90)
    torch.testing.assert_close(turned, torch.rot90(plain, 1, dims=(1, 2)), atol=1e-4, rtol=0)
    assert torch.equal(input_features(generator), plain)  # the helper restored everything


def test_features_fade_out_where_a_transform_pushes_them_past_the_band(loaded):
    _, _, generator = loaded
    source = generator.synthesis.input
    # Scaling every frequency by 8 pushes those above sampling_rate/16 past the Nyquist rate: amplitude 0.
    features = input_features(generator, matrix=torch.diag(torch.tensor([8.0, 8.0, 1.0])))
    beyond = source.freqs.norm(dim=1) * 8 >= source.sampling_rate / 2
    assert beyond.any() and (~beyond).any()
    assert features[beyond].abs().max() == 0 and features[~beyond].abs().amax(dim=(1, 2)).min() > 0


def test_a_move_per_image_renders_what_setting_that_transform_renders(loaded):
    config, _, generator = loaded
    latents = generator.latents_from_seeds([0, 1], sampling_for(config))
    with torch.no_grad():
        still = generator.synthesize(latents)
        torch.testing.assert_close(generator.synthesize_moved(latents, np.zeros((2, 3))), still, atol=0, rtol=0)
        moved = generator.synthesize_moved(latents, np.array([[0.0, 0.0, 0.0], [0.1, -0.2, 30.0]]))
        generator.set_input_transform((0.1, -0.2), 30.0)
        expected = generator.synthesize(latents[1:])
        generator.set_input_transform((0, 0), 0)
    torch.testing.assert_close(moved[:1], still[:1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(moved[1:], expected, atol=1e-6, rtol=1e-5)
    assert (moved[1] - still[1]).abs().max() > 1e-3


# ---------------------------------------------------------------------- SeFa slots
def test_sefa_reads_each_layers_affine_and_the_input_only_when_asked(loaded):
    config, _, generator = loaded
    names = [layer.name for layer in generator.config.layers]
    assert [generator.slot_layer(k) for k in range(generator.num_layers)] == ["synthesis.input"] + [f"synthesis.{n}" for n in names]
    assert generator.sefa_weight(0).shape == (4, config.w_dim)
    assert generator.sefa_weight(1).shape == (layer_plan(config)[0]["channels"], config.w_dim)
    last = generator.num_layers - 1
    assert generator.select_layers(parse_selection("all")) == tuple(range(1, generator.num_layers))
    assert generator.select_layers(parse_selection("all"), include_input=True) == tuple(range(generator.num_layers))
    assert generator.select_layers(parse_selection("1-2"), include_input=True) == (0, 1, 2)
    assert generator.select_layers(parse_selection(f"{last}-")) == (last,)
    with pytest.raises(ValueError, match="layer 0 drives the input's rotation and translation.*include_input: true"):
        generator.select_layers(parse_selection("0-3"))

    directions = sefa([generator.sefa_weight(k) for k in generator.select_layers(parse_selection("1-2"))]).directions
    latents = generator.latents_from_seeds([0], sampling_for(config))
    edited = generator.edit(latents, torch.from_numpy(directions[0]).float(), torch.tensor([3.0]), layers=[1, 2])
    assert torch.equal(edited[:, [0, 3]], latents[:, [0, 3]]) and not torch.equal(edited[:, 1], latents[:, 1])
    assert (generator.synthesize(edited) - generator.synthesize(latents)).abs().max() > 1e-3


# ---------------------------------------------------------------------- strict, hostile
def _first_layer(config) -> str:
    return layer_plan(config)[1][0]["name"]


STRICT_CASES = {
    "missing tensor": (lambda w, c: w.pop(f"synthesis.{_first_layer(c)}.affine.bias"), None,
                       r"missing tensor G_ema\.synthesis\.L0_\w+\.affine\.bias"),
    "misshaped tensor": (lambda w, c: w.__setitem__("synthesis.input.freqs", torch.zeros(3, 2)), None,
                         r"G_ema\.synthesis\.input\.freqs has shape \(3, 2\), expected \(8, 2\)"),
    "filter without its taps": (lambda w, c: w.__setitem__(f"synthesis.{_first_layer(c)}.up_filter", torch.ones(5) / 5), None,
                                r"\.up_filter: up_taps 12 means shape \(12,\), but it has shape \(5,\)"),
    "sizes that do not chain": (None, {"out_size": np.array([21, 21])}, r"L0_\w+: in_size .* make \(20, 20\), but out_size is \(21, 21\)"),
    "huge declared size": (None, {"in_size": np.array([10**6, 10**6])}, r"img_resolution 1000000 is above sefa-render.s limit"),
    "channels disagreeing with the weight": (None, {"in_channels": 10**6}, r"in_channels, conv_kernel are .* but its weight has shape"),
    "a layer name that is not a layer": (None, {"__rename__": "forward"}, r"layer_names is \[.*'forward'"),
}


@pytest.mark.parametrize("case", STRICT_CASES)
def test_refuses_a_malformed_stylegan3_with_a_one_line_error_naming_the_field(tmp_path, case):
    change_weights, attrs, message = STRICT_CASES[case]
    weights = stylegan3_weights(TINY_T)
    if change_weights:
        change_weights(weights, TINY_T)
    layer_attrs = None
    if attrs is not None and "__rename__" not in attrs:
        layer_attrs = {_first_layer(TINY_T): attrs}
    path = write_stylegan3_pickle(tmp_path / "bad.pkl", TINY_T, weights=weights, layer_attrs=layer_attrs)
    if attrs is not None and "__rename__" in attrs:
        # Rename a layer in place: the same byte length keeps the pickle valid.
        old = _first_layer(TINY_T).encode()
        path.write_bytes(path.read_bytes().replace(old, attrs["__rename__"].encode().ljust(len(old), b"_")[:len(old)]))
    with pytest.raises(CheckpointError, match=message) as error:
        load_generator(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


class _RunsAShellCommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_a_payload_inside_a_stylegan3_without_running_it(tmp_path):
    marker = tmp_path / "PWNED"
    path = write_stylegan3_pickle(tmp_path / "evil.pkl", TINY_T, extra_state=[1, _RunsAShellCommand(marker)])
    with pytest.raises(CheckpointError, match=r"refused to load: it references 'posix\.system'"):
        load_generator(path)
    assert not marker.exists()
