"""Tiny StyleGAN2 checkpoints in NVIDIA's and rosinality's real file formats.

No NVIDIA or rosinality code is imported. The NVIDIA writer mimics
`torch_utils.persistence`: every network object pickles as a call of
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with the same meta
dict, the same `nn.Module` state layout and the same per-class attributes as
the official classes (`shared/research/checkpoint-formats.md` §2.2, §2.6, §11.1).
To make pickle write those globals, `fake_nvidia_modules` registers stand-in
modules `torch_utils.persistence` and `dnnlib.util` while writing only.

Tensor names and shapes are written from the format tables (§2.7 for NVIDIA,
§6.2 for rosinality), not from our generator's module tree, so a naming
mistake in `render.models` cannot hide in the fixtures.

The stored `module_src` would create `MODULE_SRC_MARKER` if it ever ran.
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from render.models.stylegan2 import StyleGAN2Config

MODULE_SRC_MARKER = "PWNED_module_src"
MODULE_SRC = f"import pathlib\npathlib.Path({MODULE_SRC_MARKER!r}).touch()\nraise RuntimeError('module_src executed')\n"

# R = 16, W = Z = 8, channel_base 64 and channel_max 16 → C(4, 8, 16) = (16, 8, 4), 2 mapping layers (§11.1).
TINY_SG2 = StyleGAN2Config(
    z_dim=8, w_dim=8, c_dim=0, img_resolution=16, img_channels=3,
    mapping_layers=2, mapping_features=8, embed_features=0, mapping_lr_multiplier=0.01,
    channels=(16, 8, 4),
)

_HOOK_DICTS = (
    "_backward_pre_hooks", "_backward_hooks", "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
    "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks", "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)


# ---------------------------------------------------------------------- canonical weights
def fir_filter() -> torch.Tensor:
    """outer([1, 3, 3, 1]) / 64, NVIDIA's `setup_filter([1, 3, 3, 1])`."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    return torch.outer(taps, taps) / 64


def stylegan2_weights(config: StyleGAN2Config = TINY_SG2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under NVIDIA's `G.state_dict()` names (§2.7), seeded.

    Stored like NVIDIA stores them: mapping weights ×1/lr (the runtime gain
    multiplies by lr again), affine biases near 1, non-zero noise strengths.
    """
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * scale

    lr = config.mapping_lr_multiplier
    weights: dict[str, torch.Tensor] = {}
    if config.c_dim > 0:
        weights["mapping.embed.weight"] = randn(config.embed_features, config.c_dim)
        weights["mapping.embed.bias"] = randn(config.embed_features, scale=0.1)
    features = [config.z_dim + config.embed_features] + [config.mapping_features] * (config.mapping_layers - 1) + [config.w_dim]
    for index in range(config.mapping_layers):
        weights[f"mapping.fc{index}.weight"] = randn(features[index + 1], features[index], scale=1 / lr)
        weights[f"mapping.fc{index}.bias"] = randn(features[index + 1], scale=0.1 / lr)
    weights["mapping.w_avg"] = randn(config.w_dim, scale=0.3)

    def layer(prefix: str, c_in: int, c_out: int, resolution: int) -> None:
        weights[f"{prefix}.weight"] = randn(c_out, c_in, config.kernel_size, config.kernel_size)
        weights[f"{prefix}.bias"] = randn(c_out, scale=0.1)
        weights[f"{prefix}.resample_filter"] = fir_filter()
        if config.use_noise:
            weights[f"{prefix}.noise_strength"] = randn(scale=0.2).reshape([])
            weights[f"{prefix}.noise_const"] = randn(resolution, resolution)
        weights[f"{prefix}.affine.weight"] = randn(c_in, config.w_dim)
        weights[f"{prefix}.affine.bias"] = 1 + randn(c_in, scale=0.1)

    widths = dict(zip(config.block_resolutions, config.channels))
    for r in config.block_resolutions:
        block, c = f"synthesis.b{r}", widths[r]
        weights[f"{block}.resample_filter"] = fir_filter()
        if r == 4:
            weights[f"{block}.const"] = randn(c, 4, 4)
        else:
            layer(f"{block}.conv0", widths[r // 2], c, r)
        layer(f"{block}.conv1", c, c, r)
        if config.architecture == "skip" or r == config.img_resolution:
            weights[f"{block}.torgb.weight"] = randn(config.img_channels, c, 1, 1)
            weights[f"{block}.torgb.bias"] = randn(config.img_channels, scale=0.1)
            weights[f"{block}.torgb.affine.weight"] = randn(c, config.w_dim)
            weights[f"{block}.torgb.affine.bias"] = 1 + randn(c, scale=0.1)
        if config.architecture == "resnet" and r > 4:
            weights[f"{block}.skip.weight"] = randn(c, widths[r // 2], 1, 1)
            weights[f"{block}.skip.resample_filter"] = fir_filter()
    return weights


# ---------------------------------------------------------------------- NVIDIA persistence pickles
def _must_not_run(meta: Any) -> Any:
    raise AssertionError("the fake _reconstruct_persistent_obj must never be called")


class _EasyDict(dict):
    pass


@contextlib.contextmanager
def fake_nvidia_modules() -> Iterator[None]:
    """Register stand-in `torch_utils.persistence` and `dnnlib.util` so pickle can name their globals."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")
    _must_not_run.__module__, _must_not_run.__qualname__ = "torch_utils.persistence", "_reconstruct_persistent_obj"
    _EasyDict.__module__, _EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    persistence._reconstruct_persistent_obj = _must_not_run
    util.EasyDict = _EasyDict
    modules = {
        "torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
        "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util,
    }
    assert not set(modules) & set(sys.modules), "real torch_utils/dnnlib must not be loaded in tests"
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name in modules:
            del sys.modules[name]


class FakePersistent:
    """Pickles exactly like a `@persistence.persistent_class` nn.Module instance."""

    def __init__(self, class_name: str, attrs: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                 buffers: dict[str, Any] | None = None, modules: dict[str, Any] | None = None,
                 init_kwargs: dict[str, Any] | None = None, *, version: int = 6, meta_type: str = "class",
                 ordered_dicts: bool = False):
        self.class_name, self.attrs = class_name, attrs or {}
        self.params, self.buffers, self.modules = params or {}, buffers or {}, modules or {}
        self.init_kwargs, self.version, self.meta_type, self.ordered_dicts = init_kwargs or {}, version, meta_type, ordered_dicts

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        table = OrderedDict if self.ordered_dicts else dict  # torch 1.x kept _parameters etc. in OrderedDicts
        state: dict[str, Any] = {
            "training": False,
            "_parameters": table((k, None if v is None else torch.nn.Parameter(v, requires_grad=False)) for k, v in self.params.items()),
            "_buffers": table(self.buffers),
            "_non_persistent_buffers_set": set(),
            **{name: OrderedDict() for name in _HOOK_DICTS},
            "_modules": table(self.modules),
            **self.attrs,
            "_init_args": (),
            "_init_kwargs": _EasyDict(self.init_kwargs),
        }
        meta = dict(type=self.meta_type, version=self.version, module_src=MODULE_SRC, class_name=self.class_name, state=state)
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,))


def nvidia_generator(config: StyleGAN2Config = TINY_SG2, weights: dict[str, torch.Tensor] | None = None, *,
                     repo: str = "ada", init_kwargs: dict[str, Any] | None = None, ordered_dicts: bool = False) -> FakePersistent:
    """The persistent-object tree of an SG2 `Generator` with the attributes of §2.6.

    repo: 'ada' (stylegan2-ada-pytorch) or 'sg3' (the stylegan3 repo's StyleGAN2,
    which stores a few more attributes).
    """
    weights = stylegan2_weights(config) if weights is None else weights
    sg3 = repo == "sg3"

    def node(class_name: str, prefix: str, attrs: dict[str, Any], modules: dict[str, Any] | None = None,
             param_names: tuple[str, ...] = (), buffer_names: tuple[str, ...] = ()) -> FakePersistent:
        params = {n: weights[f"{prefix}.{n}"] for n in param_names if f"{prefix}.{n}" in weights}
        if class_name == "Conv2dLayer":
            params["bias"] = None  # the resnet skip conv has no bias; torch stores None
        buffers = {n: weights[f"{prefix}.{n}"] for n in buffer_names if f"{prefix}.{n}" in weights}
        return FakePersistent(class_name, attrs, params, buffers, modules, ordered_dicts=ordered_dicts)

    def fc(prefix: str, activation: str, lr: float) -> FakePersistent:
        out_features, in_features = weights[f"{prefix}.weight"].shape
        attrs = {"activation": activation, "weight_gain": np.float64(lr / np.sqrt(in_features)), "bias_gain": lr}
        if sg3:
            attrs = {"in_features": in_features, "out_features": out_features, **attrs}
        return node("FullyConnectedLayer", prefix, attrs, param_names=("weight", "bias"))

    def synthesis_layer(prefix: str, resolution: int, up: int) -> FakePersistent:
        out_channels, in_channels = weights[f"{prefix}.weight"].shape[:2]
        attrs = {"resolution": resolution, "up": up, "use_noise": config.use_noise, "activation": "lrelu",
                 "conv_clamp": config.conv_clamp, "padding": config.kernel_size // 2, "act_gain": np.float64(np.sqrt(2))}
        if sg3:
            attrs = {"in_channels": in_channels, "out_channels": out_channels, "w_dim": config.w_dim, **attrs}
        return node("SynthesisLayer", prefix, attrs, {"affine": fc(f"{prefix}.affine", "linear", 1)},
                    ("weight", "noise_strength", "bias"), ("resample_filter", "noise_const"))

    def torgb(prefix: str) -> FakePersistent:
        in_channels = weights[f"{prefix}.weight"].shape[1]
        attrs = {"conv_clamp": config.conv_clamp, "weight_gain": np.float64(1 / np.sqrt(in_channels))}
        if sg3:
            attrs = {"in_channels": in_channels, "out_channels": config.img_channels, "w_dim": config.w_dim, **attrs}
        return node("ToRGBLayer", prefix, attrs, {"affine": fc(f"{prefix}.affine", "linear", 1)}, ("weight", "bias"))

    widths = dict(zip(config.block_resolutions, config.channels))
    blocks = {}
    for r in config.block_resolutions:
        prefix = f"synthesis.b{r}"
        in_channels = widths[r // 2] if r > 4 else 0
        children = {}
        if r > 4:
            children["conv0"] = synthesis_layer(f"{prefix}.conv0", r, 2)
        children["conv1"] = synthesis_layer(f"{prefix}.conv1", r, 1)
        has_torgb = config.architecture == "skip" or r == config.img_resolution
        if has_torgb:
            children["torgb"] = torgb(f"{prefix}.torgb")
        if config.architecture == "resnet" and r > 4:
            skip_attrs = {"activation": "linear", "up": 2, "down": 1, "conv_clamp": None,
                          "weight_gain": np.float64(1 / np.sqrt(in_channels)), "act_gain": 1, "padding": 0}
            if sg3:
                skip_attrs = {"in_channels": in_channels, "out_channels": widths[r], **skip_attrs}
            children["skip"] = node("Conv2dLayer", f"{prefix}.skip", skip_attrs, param_names=("weight",), buffer_names=("resample_filter",))
        attrs = {"in_channels": in_channels, "w_dim": config.w_dim, "resolution": r, "img_channels": config.img_channels,
                 "is_last": r == config.img_resolution, "architecture": config.architecture, "use_fp16": False,
                 "channels_last": False, "num_conv": 1 if r == 4 else 2, "num_torgb": int(has_torgb)}
        if sg3:
            attrs["fused_modconv_default"] = "inference_only"
        blocks[f"b{r}"] = node("SynthesisBlock", prefix, attrs, children, ("const",), ("resample_filter",))

    synthesis_attrs = {"w_dim": config.w_dim, "img_resolution": config.img_resolution,
                       "img_resolution_log2": int(np.log2(config.img_resolution)), "img_channels": config.img_channels,
                       "block_resolutions": list(config.block_resolutions), "num_ws": config.num_ws}
    if sg3:
        synthesis_attrs["num_fp16_res"] = 0
    synthesis = FakePersistent("SynthesisNetwork", synthesis_attrs, modules=blocks, ordered_dicts=ordered_dicts)

    mapping_children = {}
    if config.c_dim > 0:
        mapping_children["embed"] = fc("mapping.embed", "linear", 1)
    for index in range(config.mapping_layers):
        mapping_children[f"fc{index}"] = fc(f"mapping.fc{index}", "lrelu", config.mapping_lr_multiplier)
    mapping = node("MappingNetwork", "mapping",
                   {"z_dim": config.z_dim, "c_dim": config.c_dim, "w_dim": config.w_dim, "num_ws": config.num_ws,
                    "num_layers": config.mapping_layers, "w_avg_beta": 0.995},
                   mapping_children, buffer_names=("w_avg",))
    if init_kwargs is None:
        init_kwargs = {"z_dim": config.z_dim, "c_dim": config.c_dim, "w_dim": config.w_dim,
                       "img_resolution": config.img_resolution, "img_channels": config.img_channels,
                       "mapping_kwargs": _EasyDict(num_layers=config.mapping_layers),
                       "synthesis_kwargs": _EasyDict(channel_base=64, channel_max=16, architecture=config.architecture)}
    return FakePersistent(
        "Generator",
        {"z_dim": config.z_dim, "c_dim": config.c_dim, "w_dim": config.w_dim, "img_resolution": config.img_resolution,
         "img_channels": config.img_channels, "num_ws": config.num_ws},
        modules={"synthesis": synthesis, "mapping": mapping}, init_kwargs=init_kwargs, ordered_dicts=ordered_dicts,
    )


def dump_nvidia(path: Path, content: Any, protocol: int = 4, numpy1_names: bool = False) -> Path:
    """Pickle `content` (built inside `fake_nvidia_modules`) like a snapshot.

    numpy1_names: rename `numpy._core` globals to numpy 1.x's `numpy.core` (GLOBAL
    opcodes are newline-terminated text, so only protocols ≤ 3 can be edited so).
    """
    data = pickle.dumps(content, protocol=protocol)
    if numpy1_names:
        assert protocol <= 3, "only GLOBAL opcodes (protocol ≤ 3) can be renamed in place"
        data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.write_bytes(data)
    return path


def write_nvidia_pickle(path: Path, config: StyleGAN2Config = TINY_SG2, *, seed: int = 0, protocol: int = 4,
                        numpy1_names: bool = False, repo: str = "ada", with_g_ema: bool = True,
                        init_kwargs: dict[str, Any] | None = None,
                        weights: dict[str, torch.Tensor] | None = None) -> Path:
    """An SG2 network snapshot: {training_set_kwargs, G, D, G_ema, augment_pipe} (§2.1).

    G_ema gets `weights` (default: `stylegan2_weights(config, seed)`), G other
    random weights, so a loader that picks the wrong one is caught.
    numpy1_names with protocol 3 is the most realistic stylegan2-ada-pytorch file (Python 3.7, numpy 1.x).
    """
    weights = stylegan2_weights(config, seed) if weights is None else weights
    with fake_nvidia_modules():
        content: dict[str, Any] = {
            "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "resolution": config.img_resolution,
                                    "use_labels": config.c_dim > 0, "xflip": False},
            "G": nvidia_generator(config, stylegan2_weights(config, seed + 1000), repo=repo, ordered_dicts=protocol < 4),
            "D": FakePersistent("Discriminator", {"c_dim": config.c_dim}, {"weight": torch.zeros(2, 2)}),
        }
        if with_g_ema:
            content["G_ema"] = nvidia_generator(config, weights, repo=repo, init_kwargs=init_kwargs, ordered_dicts=protocol < 4)
        content["augment_pipe"] = None
        return dump_nvidia(path, content, protocol, numpy1_names)


def write_fork_pickle(path: Path) -> Path:
    """A snapshot whose G_ema is some other network in the persistence format (an EG3D-like tri-plane generator)."""
    with fake_nvidia_modules():
        generator = FakePersistent("Generator", {"z_dim": 8}, modules={
            "backbone": FakePersistent("TriPlaneGenerator"),
            "superresolution": FakePersistent("SuperresolutionHybrid8X"),
        })
        return dump_nvidia(path, {"G_ema": generator})


# ---------------------------------------------------------------------- rosinality .pt
def rosinality_state_dict(config: StyleGAN2Config = TINY_SG2, weights: dict[str, torch.Tensor] | None = None,
                          seed: int = 0) -> dict[str, torch.Tensor]:
    """A rosinality `g_ema` state dict (§6.2) holding `weights` (NVIDIA names) renamed and reshaped."""
    assert config.architecture == "skip" and config.c_dim == 0 and config.conv_clamp is None
    nv = stylegan2_weights(config, seed) if weights is None else weights
    sd: dict[str, torch.Tensor] = {}
    for index in range(config.mapping_layers):
        sd[f"style.{index + 1}.weight"] = nv[f"mapping.fc{index}.weight"]
        sd[f"style.{index + 1}.bias"] = nv[f"mapping.fc{index}.bias"]
    sd["input.input"] = nv["synthesis.b4.const"].unsqueeze(0)

    def styled_conv(target: str, source: str) -> None:
        sd[f"{target}.conv.weight"] = nv[f"{source}.weight"].unsqueeze(0)
        if source.endswith("conv0"):
            sd[f"{target}.conv.blur.kernel"] = nv[f"{source}.resample_filter"] * 4
        sd[f"{target}.conv.modulation.weight"] = nv[f"{source}.affine.weight"]
        sd[f"{target}.conv.modulation.bias"] = nv[f"{source}.affine.bias"]
        sd[f"{target}.noise.weight"] = nv[f"{source}.noise_strength"].reshape(1)
        sd[f"{target}.activate.bias"] = nv[f"{source}.bias"]

    def to_rgb(target: str, source: str, upsample: bool) -> None:
        sd[f"{target}.bias"] = nv[f"{source}.bias"].reshape(1, -1, 1, 1)
        if upsample:
            sd[f"{target}.upsample.kernel"] = nv[f"{source.rsplit('.', 1)[0]}.resample_filter"] * 4
        sd[f"{target}.conv.weight"] = nv[f"{source}.weight"].unsqueeze(0)
        sd[f"{target}.conv.modulation.weight"] = nv[f"{source}.affine.weight"]
        sd[f"{target}.conv.modulation.bias"] = nv[f"{source}.affine.bias"]

    styled_conv("conv1", "synthesis.b4.conv1")
    to_rgb("to_rgb1", "synthesis.b4.torgb", upsample=False)
    noises = {"noises.noise_0": nv["synthesis.b4.conv1.noise_const"]}
    for k, r in enumerate(config.block_resolutions[1:]):
        styled_conv(f"convs.{2 * k}", f"synthesis.b{r}.conv0")
        styled_conv(f"convs.{2 * k + 1}", f"synthesis.b{r}.conv1")
        to_rgb(f"to_rgbs.{k}", f"synthesis.b{r}.torgb", upsample=True)
        noises[f"noises.noise_{2 * k + 1}"] = nv[f"synthesis.b{r}.conv0.noise_const"]
        noises[f"noises.noise_{2 * k + 2}"] = nv[f"synthesis.b{r}.conv1.noise_const"]
    sd.update({name: noise.reshape(1, 1, *noise.shape) for name, noise in noises.items()})
    return sd


def write_rosinality(path: Path, config: StyleGAN2Config = TINY_SG2, *, seed: int = 0, style: str = "converted",
                     legacy_format: bool = False, weights: dict[str, torch.Tensor] | None = None) -> Path:
    """`torch.save` a rosinality checkpoint.

    style: 'converted' ({'g_ema', 'latent_avg'}, as convert_weight.py writes) or
    'training' ({'g', 'd', 'g_ema', 'g_optim', 'd_optim', 'args', 'ada_aug_p'},
    as train.py writes: an argparse.Namespace and no latent_avg).
    """
    weights = stylegan2_weights(config, seed) if weights is None else weights
    g_ema = rosinality_state_dict(config, weights)
    if style == "converted":
        content: dict[str, Any] = {"g_ema": g_ema, "latent_avg": weights["mapping.w_avg"]}
    else:
        content = {
            "g": rosinality_state_dict(config, stylegan2_weights(config, seed + 1000)),
            "d": {"convs.0.0.weight": torch.zeros(4, 3, 1, 1)},
            "g_ema": g_ema,
            "g_optim": {"state": {}, "param_groups": [{"lr": 0.002, "betas": (0.0, 0.99), "params": [0, 1]}]},
            "d_optim": {"state": {}, "param_groups": []},
            "args": argparse.Namespace(size=config.img_resolution, channel_multiplier=2, latent=config.w_dim,
                                       n_mlp=config.mapping_layers, r1=10.0, augment=False),
            "ada_aug_p": 0.0,
        }
    torch.save(content, path, _use_new_zipfile_serialization=not legacy_format)
    return path

