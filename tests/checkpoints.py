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


def dcgan_shapes(z_dim: int, channels: tuple[int, ...], img_channels: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a tutorial-layout DCGAN state dict, worked out without building one.

    For sizes the loader must refuse, where building the network is what the test guards against.
    """
    widths = (z_dim, *channels, img_channels)
    shapes: dict[str, tuple[int, ...]] = {}
    for index, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
        shapes[f"main.{3 * index}.weight"] = (c_in, c_out, 4, 4)
        if index < len(channels):
            norm = f"main.{3 * index + 1}"
            shapes.update({f"{norm}.weight": (c_out,), f"{norm}.bias": (c_out,), f"{norm}.running_mean": (c_out,),
                           f"{norm}.running_var": (c_out,), f"{norm}.num_batches_tracked": ()})
    return shapes


def write_dcgan_of_sizes(path: Path, z_dim: int, channels: tuple[int, ...], img_channels: int = 3, *,
                         stride_zero: bool = False) -> Path:
    """`torch.save` a DCGAN state dict of any declared size.

    stride_zero: store every tensor as a stride-0 view of a single element, as
    `torch.save(torch.ones(1).expand(shape))` does, so a 3 KB file declares
    tensors of any size. Otherwise the tensors are real (keep them small).
    """
    state = {}
    for name, shape in dcgan_shapes(z_dim, channels, img_channels).items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(0)
        elif stride_zero:
            state[name] = torch.ones(1).expand(shape)
        else:
            state[name] = torch.full(shape, 0.01)
    torch.save(state, path)
    return path
