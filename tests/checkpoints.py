"""Tiny checkpoints in the real file formats, written by the tests themselves.

Each builder returns the path it wrote. Weights are random but seeded, so a
test sees the same model on every run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from render.models.dcgan import DCGANConfig, DCGANGenerator

TINY_DCGAN = DCGANConfig(z_dim=6, channels=(16, 8, 4), img_channels=3)  # 32×32 images


def dcgan_state_dict(config: DCGANConfig = TINY_DCGAN, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tutorial-layout DCGAN state dict with random weights and BN statistics."""
    torch.manual_seed(seed)
    generator = DCGANGenerator(config)
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, torch.nn.ConvTranspose2d):
                torch.nn.init.normal_(module.weight, 0.0, 0.2)
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return generator.state_dict()


def write_dcgan(path: Path, config: DCGANConfig = TINY_DCGAN, *, wrap_key: str | None = None,
                prefix: str = "", legacy_format: bool = False, seed: int = 0) -> Path:
    """`torch.save` a DCGAN state dict the way users do.

    wrap_key: store it under this key of a dict (e.g. 'netG_state_dict', as gan-face-generate does);
    prefix: prepend to every key (e.g. 'module.' for a DataParallel save);
    legacy_format: use the pre-1.6 (non-zip) torch.save format.
    """
    state = {prefix + key: value for key, value in dcgan_state_dict(config, seed).items()}
    content = {wrap_key: state} if wrap_key else state
    torch.save(content, path, _use_new_zipfile_serialization=not legacy_format)
    return path


def mark_as_saved_on_cuda(path: Path) -> Path:
    """Rewrite a torch zip checkpoint so its storages say 'cuda:0', as a file saved on a GPU does.

    torch.save records each storage's device in data.pkl as the string 'cpu';
    loading such a file on a machine without CUDA works only with map_location.
    """
    import zipfile

    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as target:
        for info, data in entries:
            if info.filename.endswith("/data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            target.writestr(info, data)
    return path
