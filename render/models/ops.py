"""The tensor operations of StyleGAN2's synthesis network, in plain PyTorch.

Written from the equations in Karras et al. 2020 ("Analyzing and Improving the
Image Quality of StyleGAN", §2.2 and appendix B) and the description of
NVIDIA's reference ops (`upfirdn2d`, `bias_act`, `modulated_conv2d`) in
`shared/research/checkpoint-formats.md` §3. The order of operations follows the
official CPU/fp32 path on purpose: the same ops in the same order give the
same floats, so a seed renders the same image as NVIDIA's `gen_images.py`.

Every op is batched: the per-sample modulated convolution runs as one grouped
convolution over the whole batch, never as a Python loop over samples. No op
fixes a dtype, so the forward pass can run under `torch.autocast`.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "ACTIVATIONS",
    "normalize_2nd_moment",
    "bias_act",
    "upfirdn2d",
    "upsample2d",
    "modulated_conv2d",
]

# name → (function, default gain). The gain √2 keeps the variance of a
# (leaky) ReLU's output near that of its input (He initialisation).
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], float]] = {
    "linear": (lambda x: x, 1.0),
    "relu": (F.relu, math.sqrt(2)),
    "lrelu": (lambda x: F.leaky_relu(x, 0.2), math.sqrt(2)),
}


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row of `x` [N, C] to unit root-mean-square (StyleGAN's "pixel norm" of z).

    >>> normalize_2nd_moment(torch.tensor([[3.0, 4.0]])).square().mean().item()
    1.0
    """
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Add a per-channel bias (channel axis 1), activate, scale by `gain`, clamp to ±clamp.

    `gain` defaults to the activation's own gain (√2 for lrelu and relu).

    >>> bias_act(torch.tensor([[-1.0, 2.0]]), torch.tensor([0.0, 1.0]), "lrelu", gain=1.0, clamp=2.5)
    tensor([[-0.2000,  2.5000]])
    """
    function, default_gain = ACTIVATIONS[activation]
    gain = default_gain if gain is None else float(gain)
    if bias is not None:
        x = x + bias.reshape([1, -1] + [1] * (x.ndim - 2))
    x = function(x)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def upfirdn2d(
    x: torch.Tensor,                  # [N, C, H, W]
    f: torch.Tensor,                  # [fh, fw], or [taps] for a separable filter
    up: int = 1,
    down: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0),  # (x0, x1, y0, y1); negative values crop
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with the FIR filter `f`, downsample.

    The filter is scaled by `gain` over its two spatial axes (so a 2× upsample
    takes gain 4 to keep the signal's level) and applied as a true convolution,
    i.e. flipped, to each channel separately.

    >>> upfirdn2d(torch.ones(1, 1, 2, 2), torch.ones(2, 2) / 4, up=2, padding=(1, 0, 1, 0), gain=4)
    tensor([[[[1., 1., 1., 1.],
              [1., 1., 1., 1.],
              [1., 1., 1., 1.],
              [1., 1., 1., 1.]]]])
    """
    batch, channels, height, width = x.shape
    x0, x1, y0, y1 = padding
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]

    f = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip(list(range(f.ndim)))
    f = f[None, None].repeat([channels, 1] + [1] * f.ndim)  # depthwise: one copy per channel
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=channels)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=channels)  # horizontal pass
        x = F.conv2d(x, f.unsqueeze(3), groups=channels)  # vertical pass
    return x[:, :, ::down, ::down]


def _filter_size(f: torch.Tensor) -> tuple[int, int]:
    """(width, height) of a 2-D or separable filter."""
    return (f.shape[-1], f.shape[0])


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """[N, C, H, W] → [N, C, H·up, W·up], interpolating with `f` (StyleGAN2's image upsampling).

    >>> upsample2d(torch.ones(1, 1, 3, 3), torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)[0, 0, 2:4, 2:4]
    tensor([[1., 1.],
            [1., 1.]])
    """
    fw, fh = _filter_size(f)
    padding = ((fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=padding, gain=up * up)


def modulated_conv2d(
    x: torch.Tensor,                 # [N, I, H, W]
    weight: torch.Tensor,            # [O, I, k, k]
    styles: torch.Tensor,            # [N, I]
    demodulate: bool = True,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    input_gain: torch.Tensor | None = None,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution for a whole batch (Karras et al. 2020, eq. 1–3).

    Each sample n gets its own weights ŵ = weight·s_n (scaled per input
    channel); with `demodulate`, each output channel of ŵ is then scaled to unit
    L2 norm: ŵ ← ŵ / sqrt(Σ ŵ² + 1e-8). The batch runs as one convolution with
    `groups=N` over [1, N·I, H, W], which keeps samples apart.

    The weight is not pre-scaled by 1/√fan_in as equalized learning rate would
    suggest: demodulation cancels any scale, and NVIDIA's reference leaves it
    out, so leaving it out keeps the eps term, and the floats, identical.

    With `up=2`, the convolution is a stride-2 transposed convolution followed
    by the FIR `resample_filter`, and the output is [N, O, 2H, 2W]. NVIDIA
    stores these weights pre-flipped for that transposed convolution, so no
    flip happens here.

    `input_gain` (StyleGAN3's 1/√magnitude_ema, a 0-d tensor) scales ŵ after
    demodulation, where demodulation cannot cancel it.

    Returns [N, O, H', W'].
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    if input_gain is not None:
        w = w * input_gain
    x = x.reshape(1, -1, *x.shape[2:])  # [1, N·I, H, W]
    w = w.reshape(-1, in_channels, kh, kw)  # [N·O, I, k, k]

    if up == 1:
        x = F.conv2d(x, w, padding=padding, groups=batch)
    else:
        assert resample_filter is not None, "upsampling needs a resample filter"
        fw, fh = _filter_size(resample_filter)
        # Padding of the whole op (conv + filter) with respect to the upsampled
        # image, minus what the transposed convolution itself adds.
        px0 = padding + (fw + up - 1) // 2 - (kw - 1)
        px1 = padding + (fw - up) // 2 - (kw - up)
        py0 = padding + (fh + up - 1) // 2 - (kh - 1)
        py1 = padding + (fh - up) // 2 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        # conv_transpose2d wants [in, out/groups, k, k]: swap O and I inside each sample's group.
        w = w.reshape(batch, out_channels, in_channels, kh, kw).transpose(1, 2)
        w = w.reshape(batch * in_channels, out_channels, kh, kw)
        x = F.conv_transpose2d(x, w, stride=up, padding=[pyt, pxt], groups=batch)
        x = upfirdn2d(x, resample_filter, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), gain=up * up)
    return x.reshape(batch, -1, *x.shape[2:])  # [N, O, H', W']
