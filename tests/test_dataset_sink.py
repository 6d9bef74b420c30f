import io

import numpy as np
from PIL import Image

from render.sinks import dataset as sink
from render.sinks.atomic import atomic_path


def test_alpha_tags_have_no_dots_and_stay_distinct():
    alphas = [-3, -1.5, -0.25, 0, 0.25, 1.5, 3, 10]
    tags = [sink.alpha_tag(a) for a in alphas]
    assert len(set(tags)) == len(tags) and not any("." in tag or "-" in tag for tag in tags)


def test_alpha_tags_are_exact_so_close_alphas_get_distinct_names():
    rng = np.random.default_rng(0)
    alphas = [1.23456789, 1.23456788, 1e-7, 1.0000001e-7, 0.1 + 0.2, 0.3, *rng.uniform(-1000, 1000, 500)]
    alphas += [-a for a in alphas]
    tags = [sink.alpha_tag(a) for a in alphas]
    assert len(set(tags)) == len(set(alphas)) == len(alphas)
    assert all(tag.isalnum() for tag in tags)  # no dots, minus signs or exponent signs
    assert sink.alpha_tag(-0.0) == sink.alpha_tag(0.0)  # equal values, one name (the spec refuses both in one list)


def test_file_names_are_zero_padded_so_they_sort_by_seed():
    names = [sink.edited_name(seed, 2, 1.0, "png") for seed in (9, 10, 100)]
    assert names == sorted(names) and names[0] == "edited/0000000009_002_p1.png"
    assert sink.original_name(4294967295, "jpg") == "original/4294967295.jpg"


def test_images_encode_losslessly_as_png_and_deterministically():
    pixels = np.random.default_rng(0).integers(0, 256, size=(16, 12, 3), dtype=np.uint8)
    data = sink.encode_image(pixels, "png")
    assert data == sink.encode_image(pixels, "png")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    assert Image.open(io.BytesIO(sink.encode_image(pixels, "jpg"))).format == "JPEG"


def test_rows_merge_in_the_order_given(tmp_path):
    sink.write_rows(tmp_path / "b.jsonl", [{"i": 2}, {"i": 3}])
    sink.write_rows(tmp_path / "a.jsonl", [{"i": 1}])
    count = sink.merge_rows([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], tmp_path / "out" / "metadata.jsonl")
    assert count == 3 and (tmp_path / "out" / "metadata.jsonl").read_text() == '{"i": 1}\n{"i": 2}\n{"i": 3}\n'


def test_an_atomic_write_leaves_nothing_when_it_fails(tmp_path):
    (tmp_path / "kept.txt").write_text("old")
    try:
        with atomic_path(tmp_path / "kept.txt") as temporary:
            temporary.write_text("half")
            raise OSError("disk full")
    except OSError:
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"] and (tmp_path / "kept.txt").read_text() == "old"
