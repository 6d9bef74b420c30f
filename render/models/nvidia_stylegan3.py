"""StyleGAN3 generators in NVIDIA network pickles: the configuration, read from the stored attributes.

`nvidia.build` classifies a generator as StyleGAN3 by structure (its synthesis
network has `layer_names` and a `SynthesisInput` named `input`) and calls
`build` here, then loads the tensors strictly.

Every hyper-parameter comes from the pickle: channels and kernel sizes from
the weight shapes (the data itself), sizes, factors, tap counts, padding and
clamping from each layer's attributes (§2.6, §2.8 of
`shared/research/checkpoint-formats.md`), cross-checked against each other and
against the filter shapes; `StyleGAN3Config` then checks that the sizes chain
up. All of this happens before a single module is built, so a crafted pickle
cannot make us allocate what its data does not hold.
"""

from __future__ import annotations

from render.errors import CheckpointError
from render.models import limits
from render.models.nvidia_records import Reader, check_num_ws, mapping_fields
from render.models.safe_pickle import PersistentRecord
from render.untrusted import bounded_repr
from render.models.stylegan3 import LAYER_NAME, StyleGAN3Config, StyleGAN3Generator, StyleGAN3Layer

__all__ = ["build"]


def build(record: PersistentRecord, key: str, format: str) -> StyleGAN3Generator:
    """A skeleton `StyleGAN3Generator` (meta device, no memory) shaped like the pickled generator `record`
    (stored under `key`); `stylegan2.load_state` checks the weights against it and builds the real one."""
    config = _config(record, key)
    return limits.skeleton(lambda: StyleGAN3Generator(config, format=format), config.largest_activation)


def _config(record: PersistentRecord, key: str) -> StyleGAN3Config:
    g = Reader(record, key)
    mapping = g.child("mapping", "MappingNetwork")
    synthesis = g.child("synthesis", "SynthesisNetwork")
    mapping_sizes = mapping_fields(g, mapping)  # first: it checks the sizes the file declares
    source = synthesis.child("input", "SynthesisInput")
    channels = source.int("channels")
    if source.shape("weight") != (channels, channels):
        raise CheckpointError(f"{source.path}.weight has shape {source.shape('weight')}, but channels is {channels}")

    names = synthesis.attr("layer_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and LAYER_NAME.fullmatch(n) for n in names):
        raise CheckpointError(f"{synthesis.path}.layer_names is {bounded_repr(names)}, expected names like 'L0_36_512'")
    stored = [name for name in synthesis.record.children if name != "input"]
    if stored != names:
        raise CheckpointError(f"{synthesis.path} holds the layers {bounded_repr(stored)}, but its layer_names are {bounded_repr(names)}")
    if synthesis.int("num_layers") + 1 != len(names):
        raise CheckpointError(f"{synthesis.path}.num_layers is {synthesis.int('num_layers')}, but it has {len(names)} layers")

    config = StyleGAN3Config(
        **mapping_sizes,
        img_resolution=g.int("img_resolution"),
        img_channels=g.int("img_channels"),
        input_channels=channels,
        input_size=source.pair("size"),
        input_sampling_rate=source.float("sampling_rate"),
        input_bandwidth=source.float("bandwidth"),
        layers=tuple(_layer(synthesis.child(name, "SynthesisLayer"), name) for name in names),
        output_scale=synthesis.float("output_scale"),
    )
    for reader, name in ((g, "img_resolution"), (synthesis, "img_resolution"), (g, "img_channels"), (synthesis, "img_channels")):
        if reader.int(name) != getattr(config, name):
            raise CheckpointError(f"{reader.path}.{name} is {reader.int(name)}, but {g.path}.{name} is {getattr(config, name)}")
    check_num_ws((g, synthesis, mapping), config.num_ws, "its input and layers")
    return config


def _layer(layer: Reader, name: str) -> StyleGAN3Layer:
    weight = layer.shape("weight")
    if len(weight) != 4 or weight[2] != weight[3]:
        raise CheckpointError(f"{layer.path}.weight has shape {weight}, expected [out, in, k, k]")
    out_channels, in_channels, kernel = weight[0], weight[1], weight[2]
    in_size, out_size = layer.pair("in_size"), layer.pair("out_size")
    # Before any of these sizes is used: they come from the file.
    limits.check_sizes(channels=max(out_channels, in_channels), img_resolution=max(*in_size, *out_size))
    declared = (layer.int("out_channels"), layer.int("in_channels"), layer.int("conv_kernel"))
    if declared != (out_channels, in_channels, kernel):
        raise CheckpointError(f"{layer.path}: out_channels, in_channels, conv_kernel are {declared}, "
                              f"but its weight has shape {weight}")
    up_taps, down_taps, down_radial = layer.int("up_taps"), layer.int("down_taps"), layer.bool("down_radial")
    _check_filter(layer, "up_filter", up_taps, radial=False)
    _check_filter(layer, "down_filter", down_taps, radial=down_radial)
    return StyleGAN3Layer(
        name=name,
        in_channels=in_channels,
        out_channels=out_channels,
        in_size=in_size,
        out_size=out_size,
        conv_kernel=kernel,
        up_factor=layer.int("up_factor"),
        up_taps=up_taps,
        down_factor=layer.int("down_factor"),
        down_taps=down_taps,
        down_radial=down_radial,
        padding=layer.ints("padding", 4),  # type: ignore[arg-type]  # checked: four ints
        is_torgb=layer.bool("is_torgb"),
        conv_clamp=layer.optional_float("conv_clamp"),
    )


def _check_filter(layer: Reader, name: str, taps: int, radial: bool) -> None:
    """A filter of `taps` taps ([taps], or [taps, taps] when radial); none at all when taps is 1."""
    shape = layer.optional_shape(name)
    expected = None if taps == 1 else (taps, taps) if radial else (taps,)
    if shape != expected:
        what = "no filter" if expected is None else f"shape {expected}"
        found = "none" if shape is None else f"shape {shape}"
        raise CheckpointError(f"{layer.path}.{name}: {name.split('_')[0]}_taps {taps} means {what}, but it has {found}")
