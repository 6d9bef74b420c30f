"""Tiny StyleGAN3 (T and R) network pickles in NVIDIA's real persistence format.

Built with the persistence writer of `checkpoints_stylegan2` (stand-in
`torch_utils.persistence`/`dnnlib.util` modules while writing only; `module_src`
that would leave a marker file if it ever ran). The layer plan follows the
paper's design (Karras et al. 2021, appendix; `shared/research/checkpoint-formats.md`
§2.5, §2.8): cutoffs and stopbands on a geometric progression, sampling rates
rounded up to powers of two, a margin around every feature map, the last
`num_critical` layers critically sampled, ToRGB last; the padding of each layer
makes its sizes chain. Filters are random normalised taps (the loader reads
them, it never designs them), 2-D for the R config's non-critical down filters.
Names, attributes and shapes are written from those tables, not from
`render.models`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from checkpoints_stylegan2 import FakePersistent, _EasyDict, dump_nvidia, fake_nvidia_modules


@dataclass(frozen=True)
class TinySG3:
    """The Generator kwargs NVIDIA's train.py would pass, scaled down."""

    radial: bool = False            # the R config: 1×1 convs and radially symmetric down filters
    z_dim: int = 8
    w_dim: int = 8
    c_dim: int = 0
    img_resolution: int = 16
    img_channels: int = 3
    mapping_layers: int = 2
    channel_base: int = 128
    channel_max: int = 8
    num_layers: int = 4
    num_critical: int = 2
    margin_size: int = 2
    conv_clamp: float | None = 256

    @property
    def conv_kernel(self) -> int:
        return 1 if self.radial else 3


TINY_T = TinySG3(img_resolution=32)  # its second layer upsamples 4× (sampling rate 16 → 32)
TINY_R = TinySG3(radial=True, c_dim=3)


def layer_plan(config: TinySG3) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The input's attributes and each layer's (name and attributes), as NVIDIA's SynthesisNetwork computes them."""
    r, n = config.img_resolution, config.num_layers
    exponents = np.minimum(np.arange(n + 1) / (n - config.num_critical), 1)
    cutoffs = 2 * (r / 2 / 2) ** exponents
    stopbands = 2**2.1 * (r / 2 * 2**0.3 / 2**2.1) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, r))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + 2 * config.margin_size
    sizes[-2:] = r
    channels = np.rint(np.minimum(config.channel_base / 2 / cutoffs, config.channel_max))
    channels[-1] = config.img_channels
    source = {"w_dim": config.w_dim, "channels": int(channels[0]), "size": np.array([int(sizes[0])] * 2),
              "sampling_rate": np.float64(rates[0]), "bandwidth": np.float64(cutoffs[0])}
    layers = []
    for index in range(n + 1):
        prev, is_torgb = max(index - 1, 0), index == n
        critical = index >= n - config.num_critical
        tmp_rate = max(rates[prev], rates[index]) * (1 if is_torgb else 2)
        up, down = int(np.rint(tmp_rate / rates[prev])), int(np.rint(tmp_rate / rates[index]))
        up_taps = 6 * up if up > 1 and not is_torgb else 1
        down_taps = 6 * down if down > 1 and not is_torgb else 1
        kernel = 1 if is_torgb else config.conv_kernel
        total = (sizes[index] - 1) * down + 1 - (sizes[prev] + kernel - 1) * up + up_taps + down_taps - 2
        low = (total + up) // 2
        attrs = {
            "w_dim": config.w_dim, "is_torgb": is_torgb, "is_critically_sampled": critical,
            "use_fp16": np.bool_(rates[index] * 2**4 > r), "in_channels": int(channels[prev]),
            "out_channels": int(channels[index]), "in_size": np.array([int(sizes[prev])] * 2),
            "out_size": np.array([int(sizes[index])] * 2), "in_sampling_rate": int(rates[prev]),
            "out_sampling_rate": int(rates[index]), "tmp_sampling_rate": int(tmp_rate), "in_cutoff": np.float64(cutoffs[prev]),
            "out_cutoff": np.float64(cutoffs[index]), "in_half_width": np.float64(half_widths[prev]),
            "out_half_width": np.float64(half_widths[index]), "conv_kernel": kernel, "conv_clamp": config.conv_clamp,
            "magnitude_ema_beta": 0.999, "up_factor": up, "up_taps": up_taps, "down_factor": down, "down_taps": down_taps,
            "down_radial": config.radial and not critical, "padding": [int(low), int(total - low), int(low), int(total - low)],
        }
        layers.append({"name": f"L{index}_{int(sizes[index])}_{int(channels[index])}", **attrs})
    return source, layers


def stylegan3_weights(config: TinySG3 = TINY_T, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under NVIDIA's `G.state_dict()` names (§2.8), seeded; None for absent filters."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * scale

    def taps(count: int) -> torch.Tensor:
        values = torch.rand(count, generator=gen) + 0.5
        return values / values.sum()

    lr, w = 0.01, config.w_dim
    weights: dict[str, torch.Tensor | None] = {}
    if config.c_dim:
        weights["mapping.embed.weight"], weights["mapping.embed.bias"] = randn(w, config.c_dim), randn(w, scale=0.1)
    for index in range(config.mapping_layers):
        fan_in = config.z_dim + (w if config.c_dim else 0) if index == 0 else w
        weights[f"mapping.fc{index}.weight"] = randn(w, fan_in, scale=1 / lr)
        weights[f"mapping.fc{index}.bias"] = randn(w, scale=0.1 / lr)
    weights["mapping.w_avg"] = randn(w, scale=0.3)

    source, layers = layer_plan(config)
    c0 = source["channels"]
    weights["synthesis.input.weight"] = randn(c0, c0)
    weights["synthesis.input.affine.weight"] = randn(4, w, scale=0.3)
    weights["synthesis.input.affine.bias"] = torch.tensor([1.0, 0, 0, 0]) + randn(4, scale=0.1)
    weights["synthesis.input.transform"] = torch.eye(3)
    angles, radii = randn(c0) * 3, torch.rand(c0, generator=gen) * float(source["bandwidth"])
    weights["synthesis.input.freqs"] = torch.stack([radii * angles.cos(), radii * angles.sin()], dim=1)
    weights["synthesis.input.phases"] = torch.rand(c0, generator=gen) - 0.5
    for layer in layers:
        prefix, k = f"synthesis.{layer['name']}", layer["conv_kernel"]
        weights[f"{prefix}.weight"] = randn(layer["out_channels"], layer["in_channels"], k, k)
        weights[f"{prefix}.bias"] = randn(layer["out_channels"], scale=0.1)
        weights[f"{prefix}.magnitude_ema"] = (torch.rand([], generator=gen) + 0.5).reshape([])
        weights[f"{prefix}.up_filter"] = taps(layer["up_taps"]) if layer["up_taps"] > 1 else None
        down = layer["down_taps"]
        if down == 1:
            weights[f"{prefix}.down_filter"] = None
        else:
            weights[f"{prefix}.down_filter"] = torch.outer(taps(down), taps(down)) if layer["down_radial"] else taps(down)
        weights[f"{prefix}.affine.weight"] = randn(layer["in_channels"], w)
        weights[f"{prefix}.affine.bias"] = 1 + randn(layer["in_channels"], scale=0.1)
    return weights  # type: ignore[return-value]


def nvidia_stylegan3(config: TinySG3 = TINY_T, weights: dict[str, Any] | None = None,
                     layer_attrs: dict[str, dict[str, Any]] | None = None) -> FakePersistent:
    """The persistent-object tree of an SG3 `Generator`; `layer_attrs` overrides attributes by layer name."""
    weights = stylegan3_weights(config) if weights is None else weights
    source_attrs, layers = layer_plan(config)

    def tensors(prefix: str, names: tuple[str, ...]) -> dict[str, Any]:
        return {name: weights.get(f"{prefix}.{name}") for name in names if f"{prefix}.{name}" in weights}

    def fc(prefix: str, activation: str, lr: float) -> FakePersistent:
        out_features, in_features = weights[f"{prefix}.weight"].shape
        return FakePersistent("FullyConnectedLayer", {"in_features": in_features, "out_features": out_features,
                                                      "activation": activation, "weight_gain": np.float64(lr / np.sqrt(in_features)),
                                                      "bias_gain": lr}, tensors(prefix, ("weight", "bias")))

    children = {"input": FakePersistent("SynthesisInput", source_attrs, tensors("synthesis.input", ("weight",)),
                                        tensors("synthesis.input", ("transform", "freqs", "phases")),
                                        {"affine": fc("synthesis.input.affine", "linear", 1)})}
    for layer in layers:
        name, prefix = layer["name"], f"synthesis.{layer['name']}"
        attrs = {key: value for key, value in layer.items() if key != "name"} | (layer_attrs or {}).get(name, {})
        children[name] = FakePersistent("SynthesisLayer", attrs, tensors(prefix, ("weight", "bias")),
                                        tensors(prefix, ("magnitude_ema", "up_filter", "down_filter")),
                                        {"affine": fc(f"{prefix}.affine", "linear", 1)})
    num_ws = config.num_layers + 2
    synthesis = FakePersistent("SynthesisNetwork", {
        "w_dim": config.w_dim, "num_ws": num_ws, "img_resolution": config.img_resolution, "img_channels": config.img_channels,
        "num_layers": config.num_layers, "num_critical": config.num_critical, "margin_size": config.margin_size,
        "output_scale": 0.25, "num_fp16_res": 4, "layer_names": [layer["name"] for layer in layers]}, modules=children)
    mapping_children: dict[str, Any] = {"embed": fc("mapping.embed", "linear", 1) if config.c_dim else None}
    for index in range(config.mapping_layers):
        mapping_children[f"fc{index}"] = fc(f"mapping.fc{index}", "lrelu", 0.01)
    mapping = FakePersistent("MappingNetwork", {"z_dim": config.z_dim, "c_dim": config.c_dim, "w_dim": config.w_dim,
                                                "num_ws": num_ws, "num_layers": config.mapping_layers, "w_avg_beta": 0.998},
                             buffers={"w_avg": weights["mapping.w_avg"]}, modules=mapping_children)
    init_kwargs = {"z_dim": config.z_dim, "c_dim": config.c_dim, "w_dim": config.w_dim,
                   "img_resolution": config.img_resolution, "img_channels": config.img_channels,
                   "mapping_kwargs": _EasyDict(num_layers=config.mapping_layers), "channel_base": config.channel_base,
                   "channel_max": config.channel_max, "magnitude_ema_beta": 0.99}
    if config.radial:
        init_kwargs.update(conv_kernel=1, use_radial_filters=True)
    return FakePersistent("Generator", {"z_dim": config.z_dim, "c_dim": config.c_dim, "w_dim": config.w_dim,
                                        "img_resolution": config.img_resolution, "img_channels": config.img_channels,
                                        "num_ws": num_ws},
                          modules={"synthesis": synthesis, "mapping": mapping}, init_kwargs=init_kwargs)


def write_stylegan3_pickle(path: Path, config: TinySG3 = TINY_T, *, seed: int = 0, weights: dict[str, Any] | None = None,
                           layer_attrs: dict[str, dict[str, Any]] | None = None, extra_state: Any = None) -> Path:
    """A stylegan3 training snapshot {G, D, G_ema, augment_pipe, training_set_kwargs} (protocol 4, as Python 3.8 writes).

    extra_state: stored as one more attribute of G_ema's synthesis network (for hostile payloads).
    """
    weights = stylegan3_weights(config, seed) if weights is None else weights
    with fake_nvidia_modules():
        g_ema = nvidia_stylegan3(config, weights, layer_attrs)
        if extra_state is not None:
            g_ema.modules["synthesis"].attrs["extra"] = extra_state
        content = {"G": nvidia_stylegan3(config, stylegan3_weights(config, seed + 1000)),
                   "D": FakePersistent("Discriminator", {"c_dim": config.c_dim}, {"weight": torch.zeros(2, 2)}),
                   "G_ema": g_ema, "augment_pipe": None,
                   "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset",
                                           "resolution": config.img_resolution, "use_labels": config.c_dim > 0}}
        return dump_nvidia(path, content)
