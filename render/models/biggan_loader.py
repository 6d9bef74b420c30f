"""Hugging Face BigGAN-deep checkpoints (huggingface/pytorch-pretrained-BigGAN): `config.json`
plus `pytorch_model.bin`.

A job may name
- the folder holding `config.json` and `pytorch_model.bin` (`from_pretrained`'s layout),
- the weights file, with its config beside it: `config.json`, or the port's download names
  `biggan-deep-256-pytorch_model.bin` next to `biggan-deep-256-config.json`,
- or the config file, with the weights beside it under the matching name.

What is accepted, and why nothing else:
- `config.json` is parsed with `json`, must hold exactly the port's keys, and every size is
  checked and bounded *before* anything is allocated (the config alone decides the shapes);
- the weights are read by `checkpoint.read_checkpoint` (`torch.load(weights_only=True)`,
  zip or legacy format) and loaded strictly: every tensor the config implies must be there with
  its shape, and nothing else. The port itself loads with `strict=False`, which would hide a
  mismatch.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from render.errors import CheckpointError
from render.models.biggan import BigGANConfig, BigGANGenerator
from render.models import limits
from render.models.checkpoint import read_checkpoint
from render.models.state import check_state

__all__ = ["BigGANCheckpoint", "checkpoint_files", "read", "read_config", "recognize", "build"]

WEIGHTS_NAME = "pytorch_model.bin"
CONFIG_NAME = "config.json"
FIRST_KEY = "generator.gen_z.weight_orig"
CONFIG_KEYS = ("output_dim", "z_dim", "class_embed_dim", "channel_width", "num_classes", "layers",
               "attention_layer_position", "eps", "n_stats")
# Bounds on declared sizes: far above the released models (ch 128, z 128, 1000 classes, 14 blocks)
# and far below what would exhaust memory before the shapes are compared; the network they imply
# is then held to `limits.MAX_SYNTHESIS_BYTES` by `limits.skeleton`.
MAX_WIDTH = 2048          # z_dim, channel_width
MAX_MULTIPLIER = 64       # per-layer channel multipliers
MAX_BLOCKS = 32
MAX_CLASSES = 100_000
MAX_STATS = 1001


@dataclass(frozen=True)
class BigGANCheckpoint:
    """What `read` returns: the parsed config.json, the weights' state dict, and where they came from."""

    config: Any
    state: Mapping[str, Any]
    config_path: Path
    weights_path: Path


def checkpoint_files(path: Path) -> tuple[Path, Path] | None:
    """(config.json, weights) for a BigGAN checkpoint named by `path`, or None when `path` is a
    single file with no config beside it (an ordinary checkpoint)."""
    path = Path(path)
    if path.is_dir():
        config, weights = path / CONFIG_NAME, path / WEIGHTS_NAME
        missing = [p.name for p in (config, weights) if not p.is_file()]
        if missing:
            raise CheckpointError(f"{path}: a checkpoint folder must hold {CONFIG_NAME} and {WEIGHTS_NAME} "
                                  f"(missing: {', '.join(missing)})")
        return config, weights
    if not path.is_file():
        return None
    if path.name.endswith(CONFIG_NAME):
        prefix = path.name[:-len(CONFIG_NAME)]
        weights = path.with_name(prefix + WEIGHTS_NAME)
        if not weights.is_file():
            raise CheckpointError(f"{path}: no weights {weights.name} beside this config")
        return path, weights
    prefix = path.name[:-len(WEIGHTS_NAME)] if path.name.endswith(WEIGHTS_NAME) else None
    for name in ([prefix + CONFIG_NAME] if prefix else []) + [CONFIG_NAME]:
        if path.with_name(name).is_file():
            return path.with_name(name), path
    return None


def read(path: Path) -> Any | None:
    """The checkpoint's content when `path` names a config + weights pair, else None.

    Weights beside a config.json that are not BigGAN's come back as plain content, so that
    another family can recognize them.
    """
    files = checkpoint_files(path)
    if files is None:
        return None
    config_path, weights_path = files
    state = read_checkpoint(weights_path)
    if not (isinstance(state, Mapping) and FIRST_KEY in state):
        return state
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config_path}: not a readable JSON file ({error})") from None
    return BigGANCheckpoint(config, state, config_path, weights_path)


def recognize(content: Any) -> bool:
    return isinstance(content, BigGANCheckpoint) or (isinstance(content, Mapping) and FIRST_KEY in content)


def build(content: Any) -> BigGANGenerator:
    if not isinstance(content, BigGANCheckpoint):
        raise CheckpointError(f"a BigGAN-deep state dict ({FIRST_KEY}) needs its {CONFIG_NAME}: name the folder holding "
                              f"both, or put {CONFIG_NAME} beside the weights")
    try:
        config = read_config(content.config)
    except CheckpointError as error:
        raise CheckpointError(f"{content.config_path}: {error}") from None
    _check_state(config, content.state)
    generator = BigGANGenerator(config)
    generator.format = "Hugging Face BigGAN-deep (config.json + pytorch_model.bin)"
    generator.load_state_dict({name: tensor.float() for name, tensor in content.state.items()}, strict=True)
    generator.refresh_weights()
    return generator


# ---------------------------------------------------------------------- config.json
def read_config(data: Any) -> BigGANConfig:
    """A checked `BigGANConfig` from parsed config.json; CheckpointError names the first bad key."""
    if not isinstance(data, Mapping):
        raise CheckpointError(f"expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    missing = [key for key in CONFIG_KEYS if key not in data and key != "class_embed_dim"]
    if unknown or missing:
        raise CheckpointError(f"unknown keys {unknown}" if unknown else f"missing keys {missing}")

    def integer(key: str, value: Any, low: int, high: int) -> int:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not low <= value <= high:
            raise CheckpointError(f"{key} is {value!r}, expected an integer in [{low}, {high}]")
        return int(value)

    z_dim = integer("z_dim", data["z_dim"], 1, MAX_WIDTH)
    ch = integer("channel_width", data["channel_width"], 1, MAX_WIDTH)
    eps = data["eps"]
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not 0 < eps < 1:
        raise CheckpointError(f"eps is {eps!r}, expected a number in (0, 1)")
    raw_layers = data["layers"]
    if not isinstance(raw_layers, list) or not 1 <= len(raw_layers) <= MAX_BLOCKS:
        raise CheckpointError(f"layers must be a list of 1 to {MAX_BLOCKS} [upsample, in, out] entries")
    layers = []
    for index, layer in enumerate(raw_layers):
        if not (isinstance(layer, list) and len(layer) == 3 and isinstance(layer[0], bool)):
            raise CheckpointError(f"layers[{index}] is {layer!r}, expected [true|false, in multiplier, out multiplier]")
        layers.append((layer[0], integer(f"layers[{index}][1]", layer[1], 1, MAX_MULTIPLIER),
                       integer(f"layers[{index}][2]", layer[2], 1, MAX_MULTIPLIER)))
    config = BigGANConfig(
        output_dim=integer("output_dim", data["output_dim"], 4, 1 << 16),
        z_dim=z_dim,
        channel_width=ch,
        num_classes=integer("num_classes", data["num_classes"], 1, MAX_CLASSES),
        layers=tuple(layers),
        attention_layer_position=integer("attention_layer_position", data["attention_layer_position"], 0, 1 << 16),
        eps=float(eps),
        n_stats=integer("n_stats", data["n_stats"], 2, MAX_STATS),
        class_embed_dim=integer("class_embed_dim", data["class_embed_dim"], 1, MAX_WIDTH) if "class_embed_dim" in data else None,
    )
    _check_structure(config)
    return config


def _check_structure(config: BigGANConfig) -> None:
    """The shapes must chain the way the port's forward pass needs them to."""
    ch, layers = config.channel_width, config.layers
    if config.class_embed_dim not in (None, config.z_dim):
        raise CheckpointError(f"class_embed_dim {config.class_embed_dim} differs from z_dim {config.z_dim} "
                              "(the port's class embedding has z_dim numbers)")
    if layers[0][1] != 16:
        raise CheckpointError(f"layers[0] takes {layers[0][1]}·ch channels, but gen_z makes 16·ch")
    for index, (_, in_mult, out_mult) in enumerate(layers):
        if index and in_mult != layers[index - 1][2]:
            raise CheckpointError(f"layers[{index}] takes {in_mult}·ch channels, but layers[{index - 1}] makes {layers[index - 1][2]}·ch")
        if out_mult != in_mult and ch * out_mult != ch * in_mult // 2:
            raise CheckpointError(f"layers[{index}] goes from {in_mult}·ch to {out_mult}·ch channels; a block keeps or halves them")
        if ch * in_mult < 4:
            raise CheckpointError(f"layers[{index}] has {ch * in_mult} channels; a block needs at least 4")
    if layers[-1][2] != 1:
        raise CheckpointError(f"the last layer makes {layers[-1][2]}·ch channels, but the final batch norm takes ch")
    if ch < 3:
        raise CheckpointError(f"channel_width {ch} is below 3, the image's channels")
    if config.attention_layer_position < len(layers) and ch * layers[config.attention_layer_position][1] < 8:
        raise CheckpointError(f"self-attention at layer {config.attention_layer_position} needs at least 8 channels")
    if config.output_dim != config.resolution:
        raise CheckpointError(f"output_dim is {config.output_dim}, but the layers upsample 4 px to {config.resolution} px")


def _check_state(config: BigGANConfig, state: Mapping[str, Any]) -> None:
    """Every tensor the config implies, with its shape, and no other; checked on shapes alone
    (a skeleton, within the memory limit) before the real network is allocated."""
    skeleton = limits.skeleton(lambda: BigGANGenerator(config), config.largest_activation)
    check_state({name: tuple(t.shape) for name, t in skeleton.state_dict().items()}, state, "BigGAN-deep")
