"""StyleGAN2's tensor ops against slow, obviously-correct numpy loops and hand arithmetic."""

import math

import numpy as np
import pytest
import torch

from render.models.ops import modulated_conv2d, upfirdn2d, upsample2d


def slow_upfirdn2d(x, f, up, down, pad, gain):
    """Zero-insert, pad (negative crops), convolve (flipped filter), decimate: one pixel at a time."""
    x0, x1, y0, y1 = pad
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 1:
        f = np.outer(f, f)  # separable: the two 1-D passes equal one pass of the outer product
        f = f * gain
    else:
        f = f * gain
    n, c, h, w = x.shape
    upsampled = np.zeros((n, c, h * up, w * up))
    upsampled[:, :, ::up, ::up] = x
    padded = np.zeros((n, c, h * up + max(y0, 0) + max(y1, 0), w * up + max(x0, 0) + max(x1, 0)))
    padded[:, :, max(y0, 0): max(y0, 0) + h * up, max(x0, 0): max(x0, 0) + w * up] = upsampled
    padded = padded[:, :, max(-y0, 0): padded.shape[2] - max(-y1, 0), max(-x0, 0): padded.shape[3] - max(-x1, 0)]
    fh, fw = f.shape
    out = np.zeros((n, c, padded.shape[2] - fh + 1, padded.shape[3] - fw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            window = padded[:, :, i: i + fh, j: j + fw]
            out[:, :, i, j] = (window * f[::-1, ::-1]).sum(axis=(2, 3))  # convolution flips the filter
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize(
    "up, down, pad, taps, separable",
    [
        (1, 1, (1, 2, 0, 1), [1, 3, 3, 1], False),
        (2, 1, (2, 1, 2, 1), [1, 3, 3, 1], False),
        (1, 2, (1, 1, 1, 1), [1, 2, 1], False),
        (2, 1, (-1, 2, 3, -2), [1, 2, 3, 4, 3, 2, 1, 5], True),
        (3, 2, (0, 1, 1, 0), [2, 1, 1], False),
    ],
)
def test_upfirdn2d_matches_slow_loop_when_resampling_with_any_padding(up, down, pad, taps, separable):
    rng = np.random.RandomState(0)
    x = rng.randn(2, 3, 5, 6)
    taps = np.asarray(taps, dtype=np.float64)
    f = taps / taps.sum() if separable else np.outer(taps, taps) / np.outer(taps, taps).sum()
    gain = float(up * up)
    ours = upfirdn2d(torch.from_numpy(x).float(), torch.from_numpy(f).float(), up=up, down=down, padding=pad, gain=gain)
    np.testing.assert_allclose(ours.numpy(), slow_upfirdn2d(x, f, up, down, pad, gain), atol=1e-5)


def test_modulated_conv_equals_hand_arithmetic_when_kernel_is_1x1():
    x = torch.tensor([[[[1.0]], [[2.0]]]])           # [N=1, I=2, 1, 1]
    weight = torch.tensor([[[[3.0]], [[4.0]]]])      # [O=1, I=2, 1, 1]
    styles = torch.tensor([[1.0, 0.5]])              # [N, I]
    # ŵ = (3·1, 4·0.5) = (3, 2); demodulated by 1/√(9 + 4); y = (3·1 + 2·2)/√13.
    y = modulated_conv2d(x, weight, styles)
    assert y.shape == (1, 1, 1, 1)
    assert y.item() == pytest.approx(7 / math.sqrt(13), rel=1e-6)
    # Without demodulation the styles simply scale the weights: 3·1·1 + 4·0.5·2.
    assert modulated_conv2d(x, weight, styles, demodulate=False).item() == pytest.approx(7.0)


def slow_modulated_conv(x, weight, styles, up, f):
    """Per sample: modulate, demodulate, then correlate (up=1) or scatter-add a stride-2 transposed conv and blur."""
    n, i_ch, h, w = x.shape
    o_ch, _, k, _ = weight.shape
    outputs = []
    for b in range(n):
        wb = weight * styles[b][None, :, None, None]
        wb = wb / np.sqrt((wb**2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
        if up == 1:
            padded = np.pad(x[b], ((0, 0), (1, 1), (1, 1)))
            out = np.zeros((o_ch, h, w))
            for o in range(o_ch):
                for p in range(h):
                    for q in range(w):
                        out[o, p, q] = (padded[:, p: p + k, q: q + k] * wb[o]).sum()
        else:
            out = np.zeros((o_ch, 2 * h + k - 2, 2 * w + k - 2))
            for o in range(o_ch):
                for p in range(h):
                    for q in range(w):
                        out[o, 2 * p: 2 * p + k, 2 * q: 2 * q + k] += (x[b, :, p, q][:, None, None] * wb[o]).sum(axis=0)
            out = slow_upfirdn2d(out[None], f, 1, 1, (1, 1, 1, 1), 4.0)[0]
        outputs.append(out)
    return np.stack(outputs)


@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_matches_per_sample_loop_when_batched(up):
    rng = np.random.RandomState(1)
    x, weight, styles = rng.randn(3, 4, 5, 5), rng.randn(2, 4, 3, 3), rng.randn(3, 4)
    f = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0
    ours = modulated_conv2d(torch.from_numpy(x).float(), torch.from_numpy(weight).float(), torch.from_numpy(styles).float(),
                            up=up, padding=1, resample_filter=torch.from_numpy(f).float())
    assert ours.shape == (3, 2, 5 * up, 5 * up)
    np.testing.assert_allclose(ours.numpy(), slow_modulated_conv(x, weight, styles, up, f), atol=1e-4)


@pytest.mark.parametrize("scale", [0.5, 3.0, 250.0])  # small enough scales would let the 1e-8 eps show
def test_demodulation_ignores_weight_scale_when_scaled_by_positive_factor(scale):
    gen = torch.Generator().manual_seed(2)
    x, weight, styles = torch.randn(2, 4, 6, 6, generator=gen), torch.randn(5, 4, 3, 3, generator=gen), torch.randn(2, 4, generator=gen)
    reference = modulated_conv2d(x, weight, styles, padding=1)
    torch.testing.assert_close(modulated_conv2d(x, weight * scale, styles, padding=1), reference, atol=1e-5, rtol=1e-5)


def test_upsample2d_keeps_a_constant_image_constant_when_away_from_borders():
    f = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64
    out = upsample2d(torch.full((1, 2, 6, 6), 0.5), f)
    assert out.shape == (1, 2, 12, 12)
    torch.testing.assert_close(out[:, :, 2:-2, 2:-2], torch.full((1, 2, 8, 8), 0.5))
