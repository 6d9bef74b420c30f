import numpy as np
import torch

import pytest
import torch.nn.functional as F

from render.layout import GridLayout, default_cell_size, grid_shape, label_height, label_strip, resize, to_pixels


def test_grid_shape_fits_every_count():
    for count in range(1, 40):
        columns, rows = grid_shape(count)
        assert columns * rows >= count and columns - rows in (0, 1)


def test_frame_sizes_are_even_whatever_the_cells():
    for cell, gutter, label in [(63, 3, 0), (64, 4, 24), (51, 1, 25)]:
        layout = GridLayout(3, 2, cell, cell, gutter, label)
        assert layout.width % 2 == 0 and layout.height % 2 == 0


def test_compose_places_cells_row_major_with_gutters_and_labels():
    layout = GridLayout(columns=2, rows=2, cell_width=4, cell_height=4, gutter=2, label_height=2)
    cells = np.stack([np.full((4, 4, 3), value, np.uint8) for value in (10, 20, 30)])[None]  # 3 cells, 1 frame
    strip = np.full((2, layout.width, 3), 99, np.uint8)
    frame = layout.compose(cells, [strip])[0]
    assert frame.shape == (12, 10, 3)
    assert (frame[0:4, 0:4] == 10).all() and (frame[0:4, 6:10] == 20).all() and (frame[6:10, 0:4] == 30).all()
    assert (frame[6:10, 6:10] == 0).all()  # the missing fourth cell stays black
    assert (frame[0:4, 4:6] == 0).all()    # gutter
    assert (frame[10:12] == 99).all()      # label strip at the bottom


def test_to_pixels_converts_like_nvidia_and_resizes():
    images = torch.tensor([-1.0, -0.5, 0.0, 1.0, 2.0]).reshape(1, 1, 1, 5).expand(1, 3, 5, 5)
    pixels = to_pixels(images.contiguous(), None)
    assert pixels.dtype == torch.uint8 and pixels.shape == (1, 5, 5, 3)
    assert pixels[0, 0, :, 0].tolist() == [0, 64, 128, 255, 255]
    assert to_pixels(torch.zeros(2, 3, 8, 8), 32).shape == (2, 32, 32, 3)


def test_to_pixels_repeats_grayscale_to_rgb():
    assert to_pixels(torch.zeros(1, 1, 4, 4), None).shape == (1, 4, 4, 3)


@pytest.mark.parametrize("size_in, size_out", [((64, 64), 256), ((64, 64), 100), ((64, 64), 17), ((48, 64), 80)])
def test_resize_equals_torch_bicubic_when_growing_and_shrinking(size_in, size_out):
    images = torch.rand(3, 3, *size_in, generator=torch.Generator().manual_seed(0)) * 2 - 1
    expected = F.interpolate(images, size=(size_out, size_out), mode="bicubic", align_corners=False,
                             antialias=size_out < min(size_in))
    assert torch.allclose(resize(images, size_out), expected, atol=1e-5)


def test_default_cell_size_is_an_integer_upscale_to_presentation_size():
    assert default_cell_size(64) == 256 and default_cell_size(32) == 256 and default_cell_size(512) == 512


def test_label_strip_draws_text():
    strip = label_strip("#0 pose   alpha +1.00", 300, label_height(256))
    assert strip.shape == (32, 300, 3) and strip.max() == 255 and strip[:, -40:].max() == 0


def test_label_text_shrinks_to_fit_a_narrow_strip():
    text = "#2 headwear   eigenvalue 455.2   alpha -3.00"
    narrow = label_strip(text, 200, 64)
    assert narrow[:, :4].max() == 0 and narrow[:, -4:].max() == 0  # margins stay empty: the text fits
    assert narrow.max() > 200  # and it is drawn (small glyphs are antialiased below full white)
