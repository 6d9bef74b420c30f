"""NVIDIA network pickles, loaded through the public registry."""

import builtins
import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from render.errors import CheckpointError
from render.factorize import sefa
from render.models.base import Sampling
from render.models.registry import describe_checkpoint, load_generator
from render.models.stylegan2 import StyleGAN2Generator, load_state
from tests.checkpoints_stylegan2 import (
    MODULE_SRC_MARKER, TINY_SG2, stylegan2_weights, write_fork_pickle, write_nvidia_pickle,
)
from tests.checkpoints_stylegan3 import write_stylegan3_pickle

CONFIGS = {
    "skip": TINY_SG2,
    "resnet with conv_clamp": dataclasses.replace(TINY_SG2, architecture="resnet", conv_clamp=0.5),
    "orig, conditional": dataclasses.replace(TINY_SG2, architecture="orig", c_dim=3, embed_features=8),
}
CONTAINERS = {
    "protocol 4, numpy 2 names": dict(protocol=4),
    "protocol 3, numpy 1 names": dict(protocol=3, numpy1_names=True),  # stylegan2-ada-pytorch era (Python 3.7)
    "protocol 2": dict(protocol=2),
    "stylegan3 repo": dict(repo="sg3"),
}


def render(generator, sampling: Sampling, seeds=(0, 1)) -> torch.Tensor:
    with torch.no_grad():
        return generator.synthesize(generator.latents_from_seeds(list(seeds), sampling))


def sampling_for(config) -> Sampling:
    return Sampling(0.7, 4, class_index=1 if config.c_dim else None)


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("variant", CONFIGS)
def test_renders_the_g_ema_weights_when_loaded_from_a_snapshot(tmp_path, variant, container):
    config = CONFIGS[variant]
    weights = stylegan2_weights(config, seed=3)
    path = write_nvidia_pickle(tmp_path / "network-snapshot.pkl", config, weights=weights, **CONTAINERS[container])
    generator = load_generator(path)
    assert isinstance(generator, StyleGAN2Generator) and generator.config == config
    repository = "stylegan3 repo" if container == "stylegan3 repo" else "stylegan2-ada-pytorch"
    assert generator.format == f"NVIDIA StyleGAN2 pickle ({repository})"
    expected = render(load_state(StyleGAN2Generator(config), weights), sampling_for(config))
    torch.testing.assert_close(render(generator, sampling_for(config)), expected, atol=0, rtol=0)


@pytest.mark.parametrize("write", [write_nvidia_pickle, write_stylegan3_pickle], ids=["stylegan2", "stylegan3"])
def test_never_runs_module_src_when_loading(tmp_path, monkeypatch, write):
    path = write(tmp_path / "snapshot.pkl")
    load_generator(path)  # warm up torch's lazy imports, which legitimately use exec

    def refuse(*args, **kwargs):
        raise AssertionError("exec called")

    monkeypatch.setattr(builtins, "exec", refuse)
    load_generator(path)
    assert not Path(MODULE_SRC_MARKER).exists()


def test_falls_back_to_g_with_a_warning_when_g_ema_is_missing(tmp_path):
    path = write_nvidia_pickle(tmp_path / "no-ema.pkl", seed=3, with_g_ema=False)
    with pytest.warns(UserWarning, match="no G_ema"):
        generator = load_generator(path)
    assert generator.format.endswith("G only")
    g_weights = stylegan2_weights(TINY_SG2, seed=1003)  # the writer's G
    expected = render(load_state(StyleGAN2Generator(TINY_SG2), g_weights), Sampling())
    torch.testing.assert_close(render(generator, Sampling()), expected, atol=0, rtol=0)


def test_reads_attributes_not_init_kwargs_when_they_disagree(tmp_path):
    # stylegan3-repo defaults would say conv_clamp 256; these kwargs even name another architecture and depth.
    misleading = {"z_dim": 8, "mapping_kwargs": {"num_layers": 8}, "synthesis_kwargs": {"architecture": "orig", "conv_clamp": 256}}
    path = write_nvidia_pickle(tmp_path / "kwargs.pkl", init_kwargs=misleading)
    assert load_generator(path).config == TINY_SG2


def test_rejects_a_fork_naming_its_classes_when_the_structure_is_unknown(tmp_path):
    path = write_fork_pickle(tmp_path / "eg3d.pkl")
    with pytest.raises(CheckpointError, match=r"backbone \(TriPlaneGenerator\), superresolution \(SuperresolutionHybrid8X\)"):
        load_generator(path)


def test_names_the_tensor_when_one_is_missing(tmp_path):
    weights = stylegan2_weights()
    del weights["synthesis.b8.conv0.affine.bias"]
    path = write_nvidia_pickle(tmp_path / "missing.pkl", weights=weights)
    with pytest.raises(CheckpointError, match=r"missing tensor G_ema\.synthesis\.b8\.conv0\.affine\.bias"):
        load_generator(path)


def test_names_the_tensor_and_shapes_when_one_is_misshaped(tmp_path):
    weights = stylegan2_weights()
    weights["synthesis.b16.conv1.noise_const"] = torch.zeros(8, 8)
    path = write_nvidia_pickle(tmp_path / "misshaped.pkl", weights=weights)
    with pytest.raises(CheckpointError, match=r"G_ema\.synthesis\.b16\.conv1\.noise_const has shape \(8, 8\), expected \(16, 16\)"):
        load_generator(path)


def test_describe_reports_format_architecture_and_sizes_when_inspecting(tmp_path):
    path = write_nvidia_pickle(tmp_path / "resnet.pkl", CONFIGS["resnet with conv_clamp"])
    description = describe_checkpoint(path)
    assert description["format"] == "NVIDIA StyleGAN2 pickle (stylegan2-ada-pytorch)"
    assert description["architecture"] == "resnet" and description["container"] == "pickle"
    assert description["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (description["img_resolution"], description["z_dim"], description["w_dim"], description["num_ws"]) == (16, 8, 8, 6)
    assert description["conditional"] is False and description["config"]["conv_clamp"] == 0.5


def test_sefa_factorizes_the_loaded_affines_when_all_slots_are_selected(tmp_path):
    generator = load_generator(write_nvidia_pickle(tmp_path / "snapshot.pkl"))
    result = sefa([generator.sefa_weight(k) for k in range(generator.num_layers)])
    assert result.directions.shape == (8, 8)
    latents = generator.latents_from_seeds([0], Sampling(0.7, None))
    edited = generator.edit(latents, torch.from_numpy(result.directions[0]).float(), torch.tensor([3.0]), layers=[0, 1])
    assert not torch.equal(generator.synthesize(edited), generator.synthesize(latents))
