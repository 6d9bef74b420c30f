"""`sefa-render report`: the folder it writes, its sheets equal the generator's images, change numbers, --compare."""

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from browser import PAGE_MEDIA, Browser, find_chromium
from checkpoints import write_dcgan
from checkpoints_stylegan2 import write_nvidia_pickle
from jobs import write_job
from render.cli import main
from render.directions import factorize_generator
from render.execute import render_pixels
from render.models.registry import load_generator
from render.ranges import parse_selection
from render.report import change_of, compare, report_alphas, report_cell_size
from render.report.job_outputs import sample_pairs


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
    assert {"set0-spectrum.png", "set0-d0-sheet.jpg", "set0-d1-change.png"} <= set(sources)

    generator = load_generator(checkpoint)
    directions, _ = factorize_generator(generator, (0,))
    cell = report_cell_size(generator.img_resolution)
    sheet = np.asarray(Image.open(out / "set0-d1-sheet.jpg")).astype(np.float64)
    grid = sheet[sheet.shape[0] - 2 * cell:]  # below the title strip: 2 seeds × 3 α
    latents = generator.latents_from_seeds((3, 4), generator.default_sampling)
    for column, alpha in enumerate(report_alphas(3.0, 3)):
        edited = generator.edit(latents, torch.from_numpy(directions[1]), torch.full((2,), alpha), (0,))
        with torch.no_grad():
            expected = render_pixels(generator, edited, cell, "fp32", str)
        for row in range(2):  # JPEG: within a few levels of the generator's own pixels (random weights: noise)
            cell_pixels = grid[row * cell:(row + 1) * cell, column * cell:(column + 1) * cell]
            assert np.abs(cell_pixels - expected[row]).mean() < 4.0 < np.abs(cell_pixels - expected[1 - row]).mean()


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


def test_compare_a_folder_best_matches_first_and_the_stylegan2_layer_groups(tmp_path):
    checkpoint = write_nvidia_pickle(tmp_path / "g.pkl")
    generator = load_generator(checkpoint)
    directions, _ = factorize_generator(generator, generator.select_layers(parse_selection("0-1")))
    given = tmp_path / "given"
    given.mkdir()
    np.save(given / "tilted.npy", directions[2] + 0.5 * directions[3])       # |cos| to #2: 1/√1.25 ≈ 0.894
    np.save(given / "two.npy", np.stack([np.ones_like(directions[0]), -directions[0]]))
    (given / "notes.txt").write_text("not a direction")                       # ignored: not .npy
    out = tmp_path / "report"
    assert main(["report", str(checkpoint), "--layers", "0-1", "--layers", "2-", "--top", "3", "--seeds", "0",
                 "--alphas", "2", "--compare", str(given), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "layers 0-1" in page and "layers 2-" in page
    section = page[page.index("layers 0-1</h2>"):page.index("layers 2-</h2>")]
    rows = [section.index(f"<td>{name}</td><td>#{best} (") for name, best in [("two[1]", 0), ("tilted", 2)]]
    assert rows == sorted(rows) and "<td>two[1]</td><td>#0 (1.000)" in section
    assert "<td>tilted</td><td>#2 (0.894)" in section and "<td>two[0]</td>" in section


def test_threshold_is_stated_and_counts(tmp_path):
    checkpoint = write_dcgan(tmp_path / "g.pt")
    pages = {}
    for threshold in ("0.001", "99"):
        out = tmp_path / threshold
        assert main(["report", str(checkpoint), "--top", "3", "--seeds", "0", "--alphas", "2", "--threshold",
                     threshold, "--out", str(out)]) == 0
        pages[threshold] = (out / "index.html").read_text()
    assert "exceeds <b>0.001 %</b>" in pages["0.001"] and "<b>3 of 3</b>" in pages["0.001"]
    assert "exceeds <b>99 %</b>" in pages["99"] and "<b>0 of 3</b>" in pages["99"]


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
    (["--compare", "."], "the folder holds no .npy files"),
    (["--threshold", "100"], "--threshold 100"),
    (["--seeds", "0-999999"], "--seeds 0-999999: 1000000 seeds; a contact sheet shows at most 64 rows"),
    (["--alphas", "1000"], "--alphas 1000 / --amplitude 3: expected 2 to 33"),
    (["--amplitude", "1e9"], "--alphas 7 / --amplitude 1e+09"),
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


@pytest.fixture(scope="module")
def job_report(tmp_path_factory) -> Path:
    """The tiny job run once, then its report: videos, dataset pairs and the set's sheets in one page."""
    folder = tmp_path_factory.mktemp("job")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEFA_RENDER_CACHE", str(folder / "cache"))
        patch.chdir(folder)
        job = write_job(folder)
        assert main(["run", str(job), "--workers", "0", "--no-progress"]) == 0
        assert main(["report", str(job), "--seeds", "0,1", "--alphas", "3", "--out", str(folder / "report")]) == 0
    return folder / "report"


def test_job_report_links_the_videos_and_sample_pairs_of_the_jobs_last_run(job_report):
    sources = _sources(job_report / "index.html")
    assert all((job_report / source).exists() for source in sources)
    videos = [s for s in sources if s.endswith(".mp4")]
    assert sorted(videos) == [f"../outputs/tiny/videos/clips/{name}.mp4" for name in ("top_000_first", "top_001")]
    originals = [s for s in sources if "/original/" in s]
    edited = [s for s in sources if "/edited/" in s]
    assert len(originals) == len(edited) == 4  # 2 directions × 2 α, one sample each
    assert {Path(s).name.split("_", 1)[1] for s in edited} == {"000_m3.png", "000_p3.png", "001_m3.png", "001_p3.png"}


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium; `make test` installs it as root)")
    with Browser(executable) as running:
        yield running


def test_a_job_report_finds_the_outputs_of_a_run_with_another_output_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SEFA_RENDER_CACHE", str(tmp_path / "cache"))
    write_dcgan(tmp_path / "g.pt")
    job = write_job(tmp_path)
    assert main(["run", str(job), "--workers", "0", "--no-progress", "--output-root", str(tmp_path / "elsewhere")]) == 0
    out = tmp_path / "report"
    assert main(["report", str(job), "--seeds", "0", "--alphas", "2", "--output-root", str(tmp_path / "elsewhere"),
                 "--out", str(out)]) == 0
    videos = [s for s in _sources(out / "index.html") if s.endswith(".mp4")]
    assert videos and all(s.startswith("../elsewhere/tiny/videos/") for s in videos)


def test_the_page_loads_in_a_real_browser_every_image_and_video_and_no_console_error(job_report, browser):
    browser.open(job_report / "index.html")
    media = browser.evaluate(PAGE_MEDIA)
    assert len(media["images"]) == 1 + 2 * 2 + 2 * 4  # spectrum, 2 sheets + 2 change maps, 4 pairs
    assert [src for src, width in media["images"] if width == 0] == []
    assert len(media["videos"]) == 2
    assert [(src, error) for src, width, error in media["videos"] if width == 0 or error] == []  # H.264 decodes
    assert browser.console_errors() == []
    shot = job_report / "screenshot.png"
    shot.write_bytes(browser.screenshot())
    with Image.open(shot) as image:
        assert image.width == 1200 and image.height > 900 and np.asarray(image.convert("L")).std() > 10  # not blank


def test_the_browser_check_sees_a_missing_image_and_a_console_error(job_report, browser):
    broken = job_report / "broken.html"
    broken.write_text('<!doctype html><img src="missing.png"><script>console.error("boom")</script>')
    browser.open(broken)
    assert browser.evaluate(PAGE_MEDIA)["images"] == [["missing.png", 0]]
    assert len(browser.console_errors()) == 2  # the failed load and console.error


def test_sample_pairs_take_one_row_per_direction_and_alpha_and_skip_images_outside_the_split(tmp_path):
    split = tmp_path / "train"
    for name in ("original/1.png", "edited/1_a.png", "edited/1_b.png"):
        (split / name).parent.mkdir(parents=True, exist_ok=True)
        (split / name).write_bytes(b"png")
    (tmp_path / "outside.png").write_bytes(b"png")
    rows = [{"input_image_file_name": "original/1.png", "edited_image_file_name": edited, "direction_index": index,
             "alpha": alpha} for edited, index, alpha in [("../outside.png", 0, -1), ("edited/1_a.png", 0, -1),
                                                          ("edited/1_b.png", 0, -1), ("edited/1_b.png", 0, 1)]]
    (split / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert [(row["edited_image_file_name"], row["alpha"]) for row in sample_pairs(split)] == [
        ("edited/1_a.png", -1), ("edited/1_b.png", 1)]
