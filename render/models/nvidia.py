"""NVIDIA network pickles (stylegan2-ada-pytorch; StyleGAN2 and StyleGAN3 from the stylegan3 repo).

`checkpoint.read_checkpoint` turns such a file into a plain dict of inert
`PersistentRecord`s (see `safe_pickle`); this module recognizes that dict and
builds our `StyleGAN2Generator` or `StyleGAN3Generator` from it:

1. take `G_ema` (the EMA weights the official scripts render), else `G`, with a warning;
2. classify by structure, since StyleGAN2 and StyleGAN3 are both called
   `Generator`: StyleGAN2's synthesis network has `SynthesisBlock` children
   `b4, b8, …` and a `block_resolutions` attribute; StyleGAN3's has
   `layer_names` and a `SynthesisInput` child (read by `nvidia_stylegan3`);
   anything else (StyleGAN-XL, EG3D, … reuse the persistence format) is
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
import warnings
from collections.abc import Mapping
from typing import Any

from render.errors import CheckpointError
from render.models import nvidia_stylegan3
from render.models.nvidia_records import Reader, check_num_ws, mapping_fields
from render.models.safe_pickle import PersistentRecord
from render.models.stylegan2 import StyleGAN2Config, StyleGANGenerator, load_state, skeleton
from render.untrusted import bounded_repr, bounded_text

__all__ = ["recognize", "build"]


def recognize(content: Any) -> bool:
    """True for the top-level dict of an NVIDIA network pickle."""
    return isinstance(content, Mapping) and any(
        isinstance(content.get(key), PersistentRecord) for key in ("G_ema", "G")
    )


def build(content: Any) -> StyleGANGenerator:
    key = "G_ema" if isinstance(content.get("G_ema"), PersistentRecord) else "G"
    if key == "G":
        warnings.warn("the network pickle has no G_ema; using the training weights G, which render worse", UserWarning, stacklevel=2)
    record = content[key]
    if record.class_name != "Generator":
        raise CheckpointError(f"{key} is a {bounded_repr(record.class_name)}, not a Generator")
    only = "" if key == "G_ema" else ", G only"
    if _is_stylegan3(record):
        generator: StyleGANGenerator = nvidia_stylegan3.build(record, key, format=f"NVIDIA StyleGAN3 pickle{only}")
    else:
        repository = _classify(record, key)
        generator = skeleton(_config(record, key), format=f"NVIDIA StyleGAN2 pickle ({repository}){only}")
    return load_state(generator, record.state_dict(), source_name=lambda name: f"{key}.{name}")


def _is_stylegan3(generator: PersistentRecord) -> bool:
    """StyleGAN3's synthesis network has `layer_names` and a `SynthesisInput` child named `input`."""
    synthesis = generator.children.get("synthesis")
    return (synthesis is not None and synthesis.class_name == "SynthesisNetwork" and "layer_names" in synthesis.attrs
            and getattr(synthesis.children.get("input"), "class_name", None) == "SynthesisInput")


def _classify(generator: PersistentRecord, key: str) -> str:
    """The repository that wrote this StyleGAN2 generator; raises for forks."""
    synthesis = generator.children.get("synthesis")
    mapping = generator.children.get("mapping")
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


def _describe_children(record: PersistentRecord) -> str:
    if not record.children:
        return "no child modules"
    listed = [f"{bounded_text(name)} ({bounded_text(child.class_name)})"
              for name, child in itertools.islice(record.children.items(), 8)]
    return ", ".join(listed) + (" …" if len(record.children) > 8 else "")


def _config(record: PersistentRecord, key: str) -> StyleGAN2Config:
    g = Reader(record, key)
    mapping = g.child("mapping", "MappingNetwork")
    synthesis = g.child("synthesis", "SynthesisNetwork")
    mapping_sizes = mapping_fields(g, mapping)  # first: it checks the sizes the file declares
    resolution = g.int("img_resolution")

    blocks = [synthesis.child(f"b{r}", "SynthesisBlock") for r in _block_resolutions(synthesis, resolution)]
    architecture = blocks[0].str("architecture")
    layers = [block.child(name, "SynthesisLayer") for block in blocks for name in ("conv0", "conv1") if block.has_child(name)]
    torgbs = [block.child("torgb", "ToRGBLayer") for block in blocks if block.has_child("torgb")]
    conv_clamp = layers[0].optional_float("conv_clamp")
    for block in blocks:
        if block.str("architecture") != architecture:
            raise CheckpointError(f"{block.path}.architecture is {bounded_repr(block.str('architecture'))}, "
                                  f"but {blocks[0].path}'s is {bounded_repr(architecture)}")
    for layer in layers + torgbs:
        if layer.optional_float("conv_clamp") != conv_clamp:
            raise CheckpointError(f"{layer.path}.conv_clamp differs from {layers[0].path}.conv_clamp ({conv_clamp})")
    for layer in layers:
        if layer.bool("use_noise") != layers[0].bool("use_noise") or layer.str("activation") != layers[0].str("activation"):
            raise CheckpointError(f"{layer.path} differs from {layers[0].path} in use_noise or activation")

    config = StyleGAN2Config(
        **mapping_sizes,
        img_resolution=resolution,
        img_channels=g.int("img_channels"),
        channels=tuple(block.child("conv1", "SynthesisLayer").shape("weight")[0] for block in blocks),
        architecture=architecture,
        kernel_size=layers[0].shape("weight")[-1],
        use_noise=layers[0].bool("use_noise"),
        conv_clamp=conv_clamp,
        resample_filter_shape=blocks[0].shape("resample_filter"),
        synthesis_activation=layers[0].str("activation"),
    )
    check_num_ws((g, synthesis, mapping), config.num_ws, "the blocks")
    return config


def _block_resolutions(synthesis: Reader, resolution: int) -> list[int]:
    stored = synthesis.attr("block_resolutions")
    expected = [2**i for i in range(2, resolution.bit_length())]
    if resolution < 4 or resolution & (resolution - 1) or not isinstance(stored, (list, tuple)) or list(stored) != expected:
        raise CheckpointError(f"{synthesis.path}.block_resolutions is {bounded_repr(stored)}; expected {expected} for resolution {resolution}")
    return expected
