"""`sefa-render report`: the folder it writes, its sheets equal the generator's images, change numbers, --compare."""

from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from PIL import Image

from checkpoints import write_dcgan
from checkpoints_stylegan2 import write_nvidia_pickle
from jobs import write_job
from render.cli import main
from render.directions import factorize_generator
from render.execute import _pixels
from render.layout import default_cell_size
from render.models.registry import load_generator
from render.ranges import parse_selection
from render.report import change_of, compare, report_alphas


class _Sources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.sources += [value for name, value in attrs if name in ("src", "href") and value]


def _sources(index) -> list[str]:
    parser = _Sources()
    parser.feed(index.read_text())
    return parser.sources


def test_model_report_is_a_self_contained_folder_whose_sheets_are_the_generators_images(tmp_path, capsys):
    checkpoint = write_dcgan(tmp_path / "g.pt")
    out = tmp_path / "report"
    assert main(["report", str(checkpoint), "--top", "2", "--seeds", "3,4", "--alphas", "3", "--out", str(out)]) == 0
    sources = _sources(out / "index.html")
    assert sources and not [s for s in sources if s.startswith(("http:", "https:", "//"))]
    assert all((out / s).is_file() for s in sources)
    assert {"set0-spectrum.png", "set0-d0-sheet.png", "set0-d1-change.png"} <= set(sources)

    generator = load_generator(checkpoint)
    directions, _ = factorize_generator(generator, (0,))
    cell = default_cell_size(generator.img_resolution)
    sheet = np.asarray(Image.open(out / "set0-d1-sheet.png"))
    grid = sheet[sheet.shape[0] - 2 * cell:]  # below the title strip: 2 seeds × 3 α
    latents = generator.latents_from_seeds((3, 4), generator.default_sampling)
    for column, alpha in enumerate(report_alphas(3.0, 3)):
        edited = generator.edit(latents, torch.from_numpy(directions[1]), torch.full((2,), alpha), (0,))
        with torch.no_grad():
            expected = _pixels(generator, edited, cell, "fp32", str)
        for row in range(2):
            assert np.array_equal(grid[row * cell:(row + 1) * cell, column * cell:(column + 1) * cell], expected[row])


def test_change_number_is_the_mean_absolute_pixel_change_between_the_ends():
    pixels = np.zeros((3, 2, 4, 4, 3), np.uint8)  # [α, seeds, H, W, 3]
    pixels[-1, 0, :2] = 255      # seed 0: top half turns white at +a
    change_map, change = change_of(pixels)
    assert change_map[:2].tolist() == [[0.5] * 4] * 2 and change_map[2:].sum() == 0
    assert change == pytest.approx(0.25)


def test_compare_finds_a_direction_of_the_set():
    rng = np.random.default_rng(0)
    sefa = np.linalg.qr(rng.normal(size=(6, 6)))[0].T  # orthonormal rows
    matches = compare(-sefa[[4]] * 3, sefa)  # sign and length do not matter
    assert matches[0][0][0] == 4 and matches[0][0][1] == pytest.approx(1.0)


def test_compare_on_the_command_line_and_stylegan2_layer_groups(tmp_path):
    checkpoint = write_nvidia_pickle(tmp_path / "g.pkl")
    generator = load_generator(checkpoint)
    directions, _ = factorize_generator(generator, generator.select_layers(parse_selection("0-1")))
    np.save(tmp_path / "given.npy", directions[2])
    out = tmp_path / "report"
    assert main(["report", str(checkpoint), "--layers", "0-1", "--layers", "2-", "--top", "3", "--seeds", "0",
                 "--alphas", "2", "--compare", str(tmp_path / "given.npy"), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "layers 0-1" in page and "layers 2-" in page and "best SeFa matches |cos| #2 (1.000)" in page


def test_job_report_uses_the_jobs_direction_sets_and_names(tmp_path):
    write_dcgan(tmp_path / "g.pt")
    job = write_job(tmp_path)
    out = tmp_path / "report"
    assert main(["report", str(job), "--seeds", "0", "--alphas", "2", "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "direction set" in page and "No outputs yet" in page


@pytest.mark.parametrize("arguments, message", [
    (["--layers", "7-9"], "--layers 7-9"),
    (["--top", "0"], "--top 0"),
    (["--compare", "missing.npy"], "--compare missing.npy: file not found"),
    (["--compare", "WRONG"], "--compare"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, arguments, message):
    checkpoint = write_dcgan(tmp_path / "g.pt")
    if "WRONG" in arguments:
        np.save(tmp_path / "wrong.npy", np.ones(5))
        arguments = ["--compare", str(tmp_path / "wrong.npy")]
    assert main(["report", str(checkpoint), *arguments, "--out", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_job_report_links_the_videos_of_the_jobs_last_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = write_job(tmp_path)
    assert main(["run", str(job), "--workers", "0", "--no-progress"]) == 0
    out = tmp_path / "report"
    assert main(["report", str(job), "--seeds", "0", "--alphas", "2", "--out", str(out)]) == 0
    videos = [s for s in _sources(out / "index.html") if s.endswith(".mp4")]
    assert len(videos) == 2 and all((out / video).is_file() for video in videos)
