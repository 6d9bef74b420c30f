"""Tiny BigGAN-deep checkpoints in the Hugging Face layout (config.json + pytorch_model.bin).

The config is the smallest one the port's own classes accept with every part in use (research
§11.5): 32 px, ch 4, z 8, 10 classes, attention before block 2. Weights are random but seeded;
u and v are the top singular vectors of each weight, as a trained model's power iteration leaves
them (random unit vectors would make σ tiny and the activations overflow), and the variances are
positive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from render.models.biggan import BigGANGenerator
from render.models.biggan_loader import read_config

TINY_BIGGAN: dict[str, Any] = {
    "output_dim": 32, "z_dim": 8, "class_embed_dim": 8, "channel_width": 4, "num_classes": 10,
    "layers": [[False, 16, 16], [True, 16, 8], [True, 8, 4], [True, 4, 2], [False, 2, 1]],
    "attention_layer_position": 2, "eps": 1e-4, "n_stats": 51,
}


def biggan_state_dict(config: dict[str, Any] = TINY_BIGGAN, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = BigGANGenerator(read_config(config)).state_dict()
    for name, tensor in state.items():
        if name.endswith(("_u", "_v")):
            continue  # set from weight_orig below
        if name.endswith("running_vars"):
            value = torch.rand(tensor.shape, generator=generator) + 0.5
        elif name.endswith("gamma"):
            value = torch.full(tensor.shape, 0.7)
        elif name == "generator.bn.weight":
            value = 1 + 0.2 * torch.randn(tensor.shape, generator=generator)
        else:
            value = 0.3 * torch.randn(tensor.shape, generator=generator)
        state[name] = value
    for name in [key for key in state if key.endswith("weight_orig")]:
        left, _, right = torch.linalg.svd(state[name].reshape(len(state[name]), -1), full_matrices=False)
        prefix = name[:-len("orig")]
        state[prefix + "u"], state[prefix + "v"] = left[:, 0].contiguous(), right[0].contiguous()
    return state


def write_biggan(folder: Path, config: dict[str, Any] = TINY_BIGGAN, *, legacy_format: bool = True, seed: int = 0,
                 prefix: str = "") -> Path:
    """Write `<prefix>config.json` and `<prefix>pytorch_model.bin` into `folder` (the port's files were
    saved by torch 1.0, in the legacy format); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}config.json").write_text(json.dumps(config, indent=2))
    torch.save(biggan_state_dict(config, seed), folder / f"{prefix}pytorch_model.bin",
               _use_new_zipfile_serialization=not legacy_format)
    return folder
