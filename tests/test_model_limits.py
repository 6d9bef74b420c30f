"""Declared sizes against the stated limits, refused before anything is allocated (issue 17 §3)."""

import pytest
import torch

from render.cli import main
from render.errors import CheckpointError
from render.models import stylegan2
from render.models.limits import MAX_SYNTHESIS_BYTES, SIZE_LIMITS
from render.models.registry import load_generator
from render.models.stylegan2 import StyleGAN2Config
from tests.checkpoints import write_dcgan_of_sizes
from tests.checkpoints_stylegan2 import TINY_SG2, dump_nvidia, fake_nvidia_modules, nvidia_generator, stylegan2_weights
from tests.jobs import write_job


def one_line_refusal(path, fragment: str) -> str:
    with pytest.raises(CheckpointError) as error:
        load_generator(path)
    message = str(error.value)
    assert "\n" not in message and fragment in message, message
    return message


@pytest.fixture
def no_real_generator(monkeypatch):
    """Fail the test if a StyleGAN2 generator is built anywhere but on the meta device."""
    original = stylegan2.StyleGAN2Generator.__init__

    def only_on_meta(self, *args, **kwargs):
        assert torch.empty(0).device.type == "meta", "a real generator was allocated before the checkpoint was checked"
        original(self, *args, **kwargs)

    monkeypatch.setattr(stylegan2.StyleGAN2Generator, "__init__", only_on_meta)


@pytest.mark.parametrize("where, attribute, value, fragment", [
    ("G_ema", "img_resolution", 2**20, "img_resolution 1048576 is above sefa-render's limit of 4096"),
    ("G_ema", "img_resolution", 2**14, "img_resolution 16384 is above"),
    ("G_ema", "w_dim", 10**9, "w_dim 1000000000 is above"),
    ("G_ema", "img_resolution", 2**1_000_000, "img_resolution <1000001-bit int> is above"),  # never printed in full
    ("mapping", "num_layers", 10**6, "mapping_layers 1000000 is above"),
], ids=["resolution 2^20", "resolution 2^14", "w_dim 10^9", "resolution 2^(10^6)", "mapping layers"])
def test_refuses_an_nvidia_pickle_when_it_declares_sizes_above_the_limits(tmp_path, no_real_generator, where, attribute, value, fragment):
    with fake_nvidia_modules():
        generator = nvidia_generator()
        record = generator if where == "G_ema" else generator.modules["mapping"]
        record.attrs[attribute] = value
        path = dump_nvidia(tmp_path / "declared.pkl", {"G_ema": generator})
    message = one_line_refusal(path, fragment[:30])
    assert len(message) < len(str(path)) + 150


def test_names_a_missing_tensor_before_allocating_the_generator(tmp_path, no_real_generator):
    weights = stylegan2_weights()
    del weights["synthesis.b16.conv1.noise_const"]
    with fake_nvidia_modules():
        path = dump_nvidia(tmp_path / "missing.pkl", {"G_ema": nvidia_generator(TINY_SG2, weights)})
    one_line_refusal(path, "missing tensor G_ema.synthesis.b16.conv1.noise_const")


def test_refuses_a_generator_whose_one_image_would_not_fit_in_memory():
    # Every size within its own limit, but 512 channels at 4096² take ~270 GiB of activations.
    config = StyleGAN2Config(z_dim=512, w_dim=512, c_dim=0, img_resolution=4096, img_channels=3, mapping_layers=8,
                             mapping_features=512, embed_features=0, mapping_lr_multiplier=0.01, channels=(512,) * 11)
    with pytest.raises(CheckpointError, match=rf"about \d+\.\d GiB .* limit of {MAX_SYNTHESIS_BYTES >> 30} GiB"):
        stylegan2.skeleton(config)


@pytest.mark.parametrize("z_dim, channels, fragment", [
    (4, (4,) * 13, "img_resolution 32768 is above"),    # 14 transposed convs: 32768² images
    (SIZE_LIMITS["z_dim"][0] + 1, (2,), "z_dim 4097 is above"),
], ids=["14 layers deep", "z_dim"])
def test_refuses_a_dcgan_when_its_real_weights_imply_sizes_above_the_limits(tmp_path, z_dim, channels, fragment):
    one_line_refusal(write_dcgan_of_sizes(tmp_path / "g.pt", z_dim, channels), fragment)


@pytest.mark.parametrize("command", ["inspect", "run"])
def test_cli_exits_2_with_one_line_when_a_dcgan_declares_a_million_channels(tmp_path, capsys, command):
    write_dcgan_of_sizes(tmp_path / "gan.pt", 100, (10**6, 512, 256), stride_zero=True)
    target = tmp_path / "gan.pt" if command == "inspect" else write_job(tmp_path)
    arguments = [command, str(target)] + (["--output-root", str(tmp_path / "out"), "--no-progress"] if command == "run" else [])
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "overlap in storage" in error
