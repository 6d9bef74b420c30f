"""NVIDIA network pickles (stylegan2-ada-pytorch, and StyleGAN2 from the stylegan3 repo).

`checkpoint.read_checkpoint` turns such a file into a plain dict of inert
`PersistentRecord`s (see `safe_pickle`); this module recognizes that dict and
builds our `StyleGAN2Generator` from it:

1. take `G_ema` (the EMA weights the official scripts render), else `G`, with a warning;
2. classify by structure, since StyleGAN2 and StyleGAN3 are both called
   `Generator`: StyleGAN2's synthesis network has `SynthesisBlock` children
   `b4, b8, …` and a `block_resolutions` attribute; StyleGAN3's has
   `layer_names` and a `SynthesisInput` (refused here: StyleGAN3 is a later
   issue); anything else (StyleGAN-XL, EG3D, … reuse the persistence format) is
   refused with the class names found;
3. read the configuration from the objects' stored attributes and tensor
   shapes. `_init_kwargs` is not used: it holds only the explicitly passed
   arguments, and the two repositories' defaults differ (conv_clamp None vs
   256, for one), so the effective values live only in the attributes;
4. flatten the record tree into a state dict (the names are exactly those of
   NVIDIA's `G.state_dict()`) and load it strictly.
"""

from __future__ import annotations

import itertools
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from render.errors import CheckpointError
from render.models.safe_pickle import PersistentRecord
from render.models.limits import check_sizes
from render.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator, load_state, skeleton
from render.untrusted import bounded_repr, bounded_text

__all__ = ["recognize", "build"]


def recognize(content: Any) -> bool:
    """True for the top-level dict of an NVIDIA network pickle."""
    return isinstance(content, Mapping) and any(
        isinstance(content.get(key), PersistentRecord) for key in ("G_ema", "G")
    )


def build(content: Any) -> StyleGAN2Generator:
    key = "G_ema" if isinstance(content.get("G_ema"), PersistentRecord) else "G"
    if key == "G":
        warnings.warn("the network pickle has no G_ema; using the training weights G, which render worse", UserWarning, stacklevel=2)
    record = content[key]
    if record.class_name != "Generator":
        raise CheckpointError(f"{key} is a {bounded_repr(record.class_name)}, not a Generator")
    repository = _classify(record, key)
    config = _config(record, key)
    generator = skeleton(config, format=f"NVIDIA StyleGAN2 pickle ({repository})" + ("" if key == "G_ema" else ", G only"))
    return load_state(generator, record.state_dict(), source_name=lambda name: f"{key}.{name}")


def _classify(generator: PersistentRecord, key: str) -> str:
    """The repository that wrote this StyleGAN2 generator; raises for StyleGAN3 and forks."""
    synthesis = generator.children.get("synthesis")
    mapping = generator.children.get("mapping")
    if synthesis is not None and ("layer_names" in synthesis.attrs or _child_classes(synthesis) & {"SynthesisInput"}):
        raise CheckpointError(
            f"{key} is a StyleGAN3 generator (synthesis has layer_names and a SynthesisInput); "
            "StyleGAN3 pickles are not supported yet, only StyleGAN2"
        )
    blocks = synthesis.children if synthesis is not None else {}
    is_stylegan2 = (
        synthesis is not None
        and synthesis.class_name == "SynthesisNetwork"
        and "block_resolutions" in synthesis.attrs
        and mapping is not None
        and mapping.class_name == "MappingNetwork"
        and bool(blocks)
        and all(name.startswith("b") and child.class_name == "SynthesisBlock" for name, child in blocks.items())
    )
    if not is_stylegan2:
        found = _describe_children(generator)
        if synthesis is not None:
            found += f"; {key}.synthesis holds {_describe_children(synthesis)}"
        raise CheckpointError(f"{key} is not a StyleGAN2 or StyleGAN3 generator (a fork?): {key} holds {found}")
    # The stylegan3 repo's StyleGAN2 blocks also store `fused_modconv_default`.
    first_block = next(iter(blocks.values()))
    return "stylegan3 repo" if "fused_modconv_default" in first_block.attrs else "stylegan2-ada-pytorch"


def _child_classes(record: PersistentRecord) -> set[str]:
    return {child.class_name for child in record.children.values()}


def _describe_children(record: PersistentRecord) -> str:
    if not record.children:
        return "no child modules"
    listed = [f"{bounded_text(name)} ({bounded_text(child.class_name)})" for name, child in itertools.islice(record.children.items(), 8)]
    return ", ".join(listed) + (" …" if len(record.children) > 8 else "")


class _Reader:
    """Typed access to one record's attributes and tensors, with errors that name them."""

    def __init__(self, record: PersistentRecord, path: str):
        self.record, self.path = record, path

    def child(self, name: str, class_name: str) -> "_Reader":
        child = self.record.children.get(name)
        if child is None:
            raise CheckpointError(f"{self.path}.{name} is missing")
        if child.class_name != class_name:
            raise CheckpointError(f"{self.path}.{name} is a {bounded_repr(child.class_name)}, expected a {class_name}")
        return _Reader(child, f"{self.path}.{name}")

    def has_child(self, name: str) -> bool:
        return name in self.record.children

    def attr(self, name: str) -> Any:
        if name not in self.record.attrs:
            raise CheckpointError(f"{self.path} lacks the attribute {name}")
        return self.record.attrs[name]

    def int(self, name: str) -> int:
        value = self.attr(name)
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise CheckpointError(f"{self.path}.{name} is {bounded_repr(value)}, expected an integer")
        return int(value)

    def float(self, name: str) -> float:
        value = self.attr(name)
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise CheckpointError(f"{self.path}.{name} is {bounded_repr(value)}, expected a number")
        return float(value)

    def optional_float(self, name: str) -> float | None:
        return None if self.attr(name) is None else self.float(name)

    def bool(self, name: str) -> bool:
        value = self.attr(name)
        if not isinstance(value, (bool, np.bool_)):
            raise CheckpointError(f"{self.path}.{name} is {bounded_repr(value)}, expected a boolean")
        return bool(value)

    def str(self, name: str) -> str:
        value = self.attr(name)
        if not isinstance(value, str):
            raise CheckpointError(f"{self.path}.{name} is {bounded_repr(value)}, expected a string")
        return value

    def shape(self, name: str) -> tuple[int, ...]:
        tensor = self.record.params.get(name, self.record.buffers.get(name))
        if tensor is None:
            raise CheckpointError(f"missing tensor {self.path}.{name}")
        return tuple(tensor.shape)


def _config(record: PersistentRecord, key: str) -> StyleGAN2Config:
    g = _Reader(record, key)
    mapping = g.child("mapping", "MappingNetwork")
    synthesis = g.child("synthesis", "SynthesisNetwork")
    z_dim, w_dim, c_dim = g.int("z_dim"), g.int("w_dim"), g.int("c_dim")
    resolution = g.int("img_resolution")
    mapping_layers = mapping.int("num_layers")
    # Before any of these sizes is used: they come from the file.
    check_sizes(z_dim=z_dim, w_dim=w_dim, c_dim=c_dim, img_resolution=resolution, mapping_layers=mapping_layers)

    if mapping_layers < 1:
        raise CheckpointError(f"{mapping.path}.num_layers is {mapping_layers}; a mapping network needs at least one layer")
    fc = [mapping.child(f"fc{index}", "FullyConnectedLayer") for index in range(mapping_layers)]
    activation = fc[0].str("activation")
    # bias_gain is the learning-rate multiplier itself; weight_gain = lr/√in adds nothing.
    lr_multiplier = fc[0].float("bias_gain")
    for layer in fc[1:]:
        if layer.str("activation") != activation or layer.float("bias_gain") != lr_multiplier:
            raise CheckpointError(f"{layer.path} differs from {fc[0].path} in activation or lr multiplier")
    embed_features = mapping.child("embed", "FullyConnectedLayer").shape("weight")[0] if c_dim > 0 else 0

    blocks = [synthesis.child(f"b{r}", "SynthesisBlock") for r in _block_resolutions(synthesis, resolution)]
    architecture = blocks[0].str("architecture")
    layers = [block.child(name, "SynthesisLayer") for block in blocks for name in ("conv0", "conv1") if block.has_child(name)]
    torgbs = [block.child("torgb", "ToRGBLayer") for block in blocks if block.has_child("torgb")]
    conv_clamp = layers[0].optional_float("conv_clamp")
    for block in blocks:
        if block.str("architecture") != architecture:
            raise CheckpointError(
                f"{block.path}.architecture is {bounded_repr(block.str('architecture'))}, but {blocks[0].path}'s is {bounded_repr(architecture)}"
            )
    for layer in layers + torgbs:
        if layer.optional_float("conv_clamp") != conv_clamp:
            raise CheckpointError(f"{layer.path}.conv_clamp differs from {layers[0].path}.conv_clamp ({conv_clamp})")
    for layer in layers:
        if layer.bool("use_noise") != layers[0].bool("use_noise") or layer.str("activation") != layers[0].str("activation"):
            raise CheckpointError(f"{layer.path} differs from {layers[0].path} in use_noise or activation")

    config = StyleGAN2Config(
        z_dim=z_dim,
        w_dim=w_dim,
        c_dim=c_dim,
        img_resolution=resolution,
        img_channels=g.int("img_channels"),
        mapping_layers=mapping_layers,
        mapping_features=fc[0].shape("weight")[0] if mapping_layers > 1 else w_dim,
        embed_features=embed_features,
        mapping_lr_multiplier=lr_multiplier,
        channels=tuple(block.child("conv1", "SynthesisLayer").shape("weight")[0] for block in blocks),
        architecture=architecture,
        kernel_size=layers[0].shape("weight")[-1],
        use_noise=layers[0].bool("use_noise"),
        conv_clamp=conv_clamp,
        resample_filter_shape=blocks[0].shape("resample_filter"),
        mapping_activation=activation,
        synthesis_activation=layers[0].str("activation"),
    )
    for reader in (g, synthesis, mapping):
        if reader.int("num_ws") != config.num_ws:
            raise CheckpointError(f"{reader.path}.num_ws is {reader.int('num_ws')}, but the blocks make {config.num_ws}")
    return config


def _block_resolutions(synthesis: _Reader, resolution: int) -> list[int]:
    stored = synthesis.attr("block_resolutions")
    expected = [2**i for i in range(2, resolution.bit_length())]
    if resolution < 4 or resolution & (resolution - 1) or not isinstance(stored, (list, tuple)) or list(stored) != expected:
        raise CheckpointError(f"{synthesis.path}.block_resolutions is {bounded_repr(stored)}; expected {expected} for resolution {resolution}")
    return expected
