"""DCGAN checkpoints as users save them, loaded through the public registry."""

import pickle

import numpy as np
import pytest
import torch

from checkpoints import TINY_DCGAN, dcgan_state_dict, mark_as_saved_on_cuda, write_dcgan
from render.errors import CheckpointError
from render.factorize import sefa
from render.models.dcgan import DCGANConfig, DCGANGenerator
from render.models.registry import load_generator


@pytest.mark.parametrize("variant", [
    {}, {"wrap_key": "netG_state_dict"}, {"prefix": "module."}, {"legacy_format": True},
    {"wrap_key": "generator", "prefix": "module."},
])
def test_dcgan_loads_with_hyperparameters_from_shapes_when_saved_in_common_ways(tmp_path, variant):
    generator = load_generator(write_dcgan(tmp_path / "g.pt", **variant))
    assert isinstance(generator, DCGANGenerator)
    assert generator.config == TINY_DCGAN
    assert (generator.z_dim, generator.img_resolution, generator.img_channels, generator.num_layers) == (6, 32, 3, 1)
    assert generator.config.depth == 4 and generator.config.ngf == 4
    assert not generator.training


def test_dcgan_loads_on_cpu_when_saved_on_cuda(tmp_path):
    path = mark_as_saved_on_cuda(write_dcgan(tmp_path / "weights.tar", wrap_key="netG_state_dict"))
    generator = load_generator(path)
    assert generator.device == torch.device("cpu")


def test_dcgan_output_matches_the_tutorial_network(tmp_path):
    state = dcgan_state_dict()
    generator = load_generator(write_dcgan(tmp_path / "g.pt"))
    # The tutorial's own layer stack, built independently from torch.nn.
    reference = torch.nn.Sequential(
        torch.nn.ConvTranspose2d(6, 16, 4, 1, 0, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(16, 8, 4, 2, 1, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(8, 4, 4, 2, 1, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(4, 3, 4, 2, 1, bias=False), torch.nn.Tanh())
    reference.load_state_dict({key.removeprefix("main."): value for key, value in state.items()})
    reference.eval()
    latents = generator.latents_from_seeds([0, 1, 2])
    with torch.no_grad():
        expected = reference(latents[:, 0, :, None, None])
        assert torch.equal(generator.synthesize(latents), expected)
    assert expected.shape == (3, 3, 32, 32)


def test_first_layer_is_the_linear_map_sefa_factorizes(tmp_path):
    """convT(z) on a 1×1 input equals A·z with A = W.reshape(nz, -1)ᵀ (no flip)."""
    generator = load_generator(write_dcgan(tmp_path / "g.pt"))
    z = torch.randn(5, 6, dtype=torch.float64)
    first = generator.main[0].double()
    with torch.no_grad():
        mapped = first(z[:, :, None, None]).flatten(1)
    np.testing.assert_allclose(mapped.numpy(), z.numpy() @ generator.sefa_weight(0).T, rtol=1e-12)


def test_sefa_ignores_the_batchnorm_after_the_first_layer(tmp_path):
    """BN scales each channel, i.e. blocks of rows of A; row normalisation cancels it."""
    generator = load_generator(write_dcgan(tmp_path / "g.pt"))
    weight = generator.sefa_weight(0)  # [C0·16, nz]
    norm = generator.main[1]
    scale = (norm.weight / torch.sqrt(norm.running_var + norm.eps)).detach().double().numpy()
    folded = weight * np.repeat(scale, 16)[:, None]
    np.testing.assert_allclose(sefa([folded]).directions, sefa([weight]).directions, atol=1e-10)


def test_seeds_follow_the_nvidia_convention(tmp_path):
    generator = load_generator(write_dcgan(tmp_path / "g.pt"))
    latents = generator.latents_from_seeds([42])
    expected = np.random.RandomState(42).randn(6).astype(np.float32)
    np.testing.assert_array_equal(latents[0, 0].numpy(), expected)


def test_dcgan_refuses_truncation_and_classes():
    generator = DCGANGenerator(TINY_DCGAN)
    from render.models.base import Sampling
    assert "no truncation" in generator.check_sampling(Sampling(truncation_psi=0.7))
    assert "not class-conditional" in generator.check_sampling(Sampling(class_index=3))
    assert generator.check_sampling(Sampling()) is None


def drop(name):
    return lambda state: state.pop(name)


def put(name, tensor):
    return lambda state: state.__setitem__(name, tensor)


@pytest.mark.parametrize("change, message", [
    (drop("main.4.running_var"), r"g.pt: .*missing \['main.4.running_var'\]"),
    (put("main.4.weight", torch.ones(9)), r"main.4.weight has shape \(9,\), expected \(8,\)"),
    (put("main.6.weight", torch.ones(5, 4, 4, 4)), "main.6.weight takes 5 channels but the previous layer gives 8"),
    (put("main.99.weight", torch.ones(1)), r"unexpected \['main.99.weight'\]"),
], ids=["missing tensor", "wrong shape", "channels do not chain", "unexpected tensor"])
def test_load_names_the_tensor_when_the_state_dict_does_not_fit(tmp_path, change, message):
    state = dcgan_state_dict()
    change(state)
    torch.save(state, tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match=message):
        load_generator(tmp_path / "g.pt")


def test_load_asks_for_a_state_dict_when_given_a_whole_pickled_module(tmp_path):
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp_path / "module.pt")
    with pytest.raises(CheckpointError, match="re-save it as a state dict|refused to load"):
        load_generator(tmp_path / "module.pt")


def test_load_lists_the_keys_when_the_content_is_foreign(tmp_path):
    torch.save({"encoder.weight": torch.ones(2), "epoch": 3}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"no supported generator found in a dict with keys 'encoder.weight', 'epoch'"):
        load_generator(tmp_path / "other.pt")


def test_load_refuses_files_that_are_not_checkpoints(tmp_path):
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a checkpoint sefa-render can read"):
        load_generator(tmp_path / "notes.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_generator(tmp_path / "missing.pt")


def test_load_refuses_a_truncated_torch_file(tmp_path):
    data = write_dcgan(tmp_path / "g.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_generator(tmp_path / "cut.pt")


def test_format_is_chosen_by_content_not_by_file_name(tmp_path):
    generator = load_generator(write_dcgan(tmp_path / "model.pkl", legacy_format=True))
    assert generator.family == "dcgan"


def test_a_torch_file_holding_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    torch.save({"main.0.weight": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused to load"):
        load_generator(tmp_path / "evil.pt")
    assert not marker.exists()


def test_dcgan_with_other_depths_and_widths_loads(tmp_path):
    config = DCGANConfig(z_dim=3, channels=(8, 4), img_channels=1)
    generator = load_generator(write_dcgan(tmp_path / "g.pt", config))
    assert generator.img_resolution == 16 and generator.img_channels == 1
    assert generator.synthesize(generator.latents_from_seeds([0])).shape == (1, 1, 16, 16)


def test_raw_pickles_never_go_through_torch_load(tmp_path, monkeypatch):
    path = tmp_path / "net.pkl"
    path.write_bytes(pickle.dumps({"G_ema": None}, protocol=4))

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load must not see a raw pickle")

    monkeypatch.setattr(torch, "load", forbidden)
    with pytest.raises(CheckpointError):
        load_generator(path)
