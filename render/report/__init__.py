"""`sefa-render report`: look at directions before rendering them.

For each direction set (layer groups of a model, or a job's own sets) the
report writes the eigenvalue spectrum with its cumulative share, per
direction a contact sheet (rows = seeds, columns = α from −a to +a) and a
change map (mean absolute pixel change over the seeds between −a and +a, and
its mean as one number), and a table of the top directions with how many
pass a stated change threshold; the page opens with the SeFa paper's table
(per set: directions examined, how many change the image).
Everything is PNG plus one `index.html` with relative links only, so the
folder opens from disk with no network. Plots are drawn with PIL (already a
dependency): a bar chart needs no plotting library.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from render.directions import DirectionSet
from render.execute import render_pixels
from render.layout import default_cell_size, label_strip
from render.models.base import Generator, Sampling
from render.sinks.atomic import write_bytes, write_text
from render.sinks.dataset import encode_image, write_image

__all__ = ["ReportSet", "report_alphas", "report_cell_size", "edited_pixels", "change_of", "contact_sheet", "compare",
           "write_report", "CHANGE_THRESHOLD"]

CHANGE_THRESHOLD = 0.02  # default: a direction "changes the image" when its mean |Δpixel| over ±a exceeds 2 %
REPORT_CELL = 128        # px per image in the sheets: enough to see an edit (7 α × 6 seeds of 1024² is 7168×6144)
# Contact sheets are JPEG: it encodes them 15-30× faster than PNG at level 1 (PNG encoding was half of a report's
# time) and 3-6× smaller; no chroma subsampling keeps the labels sharp. Plots and change maps are PNG (level 1).
SHEET_JPEG_QUALITY = 92  # mean error about 1 level of 255 on the demo's faces (2.5 on a random generator's noise)
IMAGES_PER_PASS = 1024   # images rendered together (several directions, full batches): 50 MB of 128 px pixels


@dataclass(frozen=True)
class ReportSet:
    title: str                 # e.g. "layers 0-1" or a job's direction-set key
    direction_set: DirectionSet
    shown: tuple[int, ...]     # the rows drawn (top-K, or the job's components)


def report_alphas(amplitude: float, count: int) -> np.ndarray:
    """`count` α values evenly from −amplitude to +amplitude."""
    return np.linspace(-amplitude, amplitude, count)


def report_cell_size(resolution: int) -> int:
    """Images in the sheets: an integer upscale of small models to at least REPORT_CELL px, larger ones shrunk to it.

    >>> report_cell_size(32), report_cell_size(64), report_cell_size(100), report_cell_size(1024)
    (128, 128, 200, 128)
    """
    return default_cell_size(resolution, REPORT_CELL) if resolution < REPORT_CELL else REPORT_CELL


def edited_pixels(generator: Generator, latents: torch.Tensor, direction_set: DirectionSet,
                  components: tuple[int, ...], alphas: np.ndarray, cell: int, precision: str) -> np.ndarray:
    """uint8 [components, α, seeds, cell, cell, 3]: every seed at every α along each direction.

    All directions go through the generator together, so its batches stay full
    (42 images per direction would leave a batch of 64 a third empty).
    """
    seeds, steps = len(latents), len(alphas)
    per_direction = seeds * steps
    codes = latents.repeat(len(components) * steps, 1, 1)  # direction-major, then α, then seed
    per_code = torch.from_numpy(alphas).to(latents).repeat_interleave(seeds).repeat(len(components))
    directions = torch.from_numpy(direction_set.directions[list(components)]).to(latents)
    edited = generator.edit(codes, directions.repeat_interleave(per_direction, dim=0), per_code, direction_set.layers)
    pixels = render_pixels(generator, edited, cell, precision,
                     lambda i: f"direction {components[i // per_direction]}, α {alphas[i // seeds % steps]:+g}")
    return pixels.reshape(len(components), steps, seeds, cell, cell, 3)


def change_of(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """(change map [cell, cell] in [0, 1], its mean): mean over seeds and channels of |image(+a) − image(−a)|."""
    difference = np.abs(pixels[-1].astype(np.float64) - pixels[0].astype(np.float64)) / 255.0  # [S, H, W, 3]
    change_map = difference.mean(axis=(0, 3))
    return change_map, float(change_map.mean())


def contact_sheet(pixels: np.ndarray, title: str) -> np.ndarray:
    """[label + seeds·cell, α·cell, 3]: rows = seeds, columns = α, under a title strip."""
    alphas, seeds, cell = pixels.shape[0], pixels.shape[1], pixels.shape[2]
    grid = pixels.transpose(1, 2, 0, 3, 4).reshape(seeds * cell, alphas * cell, 3)
    strip = label_strip(title, alphas * cell, max(24, cell // 4))
    return np.concatenate([strip, grid])


def compare(given: np.ndarray, sefa_directions: np.ndarray) -> list[list[tuple[int, float]]]:
    """Per given direction, (SeFa index, |cos|) for every SeFa direction, best match first (signs are arbitrary)."""
    given = given / np.linalg.norm(given, axis=1, keepdims=True)
    sefa = sefa_directions / np.linalg.norm(sefa_directions, axis=1, keepdims=True)
    similarity = np.abs(given @ sefa.T)  # [given, sefa]
    return [[(int(k), float(row[k])) for k in np.argsort(-row, kind="stable")] for row in similarity]


def spectrum_plot(eigenvalues: np.ndarray, title: str, width: int = 640, height: int = 320) -> np.ndarray:
    """Bars = each eigenvalue's share (left scale), line = the cumulative share (right scale, 0–100 %)."""
    share = eigenvalues / eigenvalues.sum()
    cumulative = np.cumsum(share)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    left, right, top, bottom = 48, width - 44, 30, height - 28
    draw.text((left, 8), f"{title}: share of each eigenvalue (bars), cumulative share (line)", fill="black", font=font)
    draw.rectangle([left, top, right, bottom], outline="black")
    step = (right - left) / len(share)
    scale = (bottom - top) / max(float(share.max()), 1e-12)
    points = []
    for k, (s, c) in enumerate(zip(share, cumulative)):
        x0 = left + k * step
        draw.rectangle([x0, bottom - s * scale, x0 + max(step - 1, 1), bottom], fill=(70, 110, 200))
        points.append((x0 + step / 2, bottom - c * (bottom - top)))
    if len(points) > 1:
        draw.line(points, fill=(220, 60, 40), width=2)
    draw.text((left - 4, top), f"{share.max():.1%}", fill=(70, 110, 200), font=font, anchor="rt")
    draw.text((left - 4, bottom), "0", fill=(70, 110, 200), font=font, anchor="rb")
    for fraction in (0.5, 1.0):
        draw.text((right + 4, bottom - fraction * (bottom - top)), f"{fraction:.0%}", fill=(220, 60, 40), font=font,
                  anchor="lm")
    draw.text((left, bottom + 6), "direction 0", fill="black", font=font)
    draw.text((right, bottom + 6), f"{len(share) - 1}", fill="black", font=font, anchor="ra")
    return np.asarray(image)


Comparison = list[tuple[str, list[tuple[int, float]]]]  # per given direction: name, (SeFa index, |cos|) best first


@dataclass(frozen=True)
class _Row:
    component: int
    name: str
    eigenvalue: float | None
    change: float
    sheet: str   # file names inside the report folder
    heat: str


def write_report(out: Path, generator: Generator, sets: list[ReportSet], seeds: tuple[int, ...], sampling: Sampling,
                 precision: str, amplitude: float, alpha_count: int, heading: str,
                 threshold: float = CHANGE_THRESHOLD, comparisons: dict[str, Comparison] | None = None,
                 extra_html: str = "") -> dict[str, dict[int, float]]:
    """Render every set into `out` (PNGs + index.html); returns each set's change number per direction.

    `threshold` is the share of the pixel range (0.02 = 2 %) above which a direction counts as changing the image.
    """
    cell = report_cell_size(generator.img_resolution)
    alphas = report_alphas(amplitude, alpha_count)
    latents = generator.latents_from_seeds(seeds, sampling)
    sections, summary = [], []
    with torch.no_grad():
        for number, report_set in enumerate(sets):
            prefix = f"set{number}"
            rows = []
            per_pass = max(1, IMAGES_PER_PASS // (len(seeds) * len(alphas)))
            for start in range(0, len(report_set.shown), per_pass):
                components = report_set.shown[start:start + per_pass]
                pixels = edited_pixels(generator, latents, report_set.direction_set, components, alphas, cell,
                                       precision)
                rows += [_write_direction(out, prefix, report_set.direction_set, component, pixels[k], alphas)
                         for k, component in enumerate(components)]
            spectrum = None
            if report_set.direction_set.eigenvalues is not None:
                spectrum = f"{prefix}-spectrum.png"
                write_image(out / spectrum, spectrum_plot(report_set.direction_set.eigenvalues, report_set.title), "png")
            sections.append(_set_section(report_set, rows, spectrum, amplitude, threshold,
                                         (comparisons or {}).get(report_set.title, [])))
            summary.append((report_set.title, rows))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(heading)}</title><style>"
            "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin:.5em 0}"
            "td,th{border:1px solid #ccc;padding:4px;vertical-align:top}img,video{max-width:100%}"
            ".media{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}figcaption{font-size:small}"
            "</style></head><body>"
            f"<h1>{html.escape(heading)}</h1><p>seeds {', '.join(map(str, seeds))}; {alpha_count} α from "
            f"−{amplitude:g} to +{amplitude:g}; a direction <b>changes the image</b> when the mean absolute pixel "
            f"change between α = −{amplitude:g} and +{amplitude:g} exceeds <b>{threshold * 100:g} %</b> of the "
            f"pixel range.</p>{_summary_table(summary, threshold)}" + "\n".join(sections) + extra_html
            + "</body></html>")
    write_text(out / "index.html", page)
    return {title: {row.component: row.change for row in rows} for title, rows in summary}


def _write_direction(out: Path, prefix: str, ds: DirectionSet, component: int, pixels: np.ndarray,
                     alphas: np.ndarray) -> _Row:
    """One direction's contact sheet and change map (from its pixels [α, seeds, cell, cell, 3]), written as PNGs."""
    change_map, change = change_of(pixels)
    eigenvalue = ds.eigenvalue(component)
    name = ds.names.get(component, "")
    label = (f"#{component} {name}".rstrip() + (f"  eigenvalue {eigenvalue:.2f}" if eigenvalue is not None else "")
             + f"  alpha {alphas[0]:+g} ... {alphas[-1]:+g}")
    row = _Row(component, name, eigenvalue, change, f"{prefix}-d{component}-sheet.jpg",
               f"{prefix}-d{component}-change.png")
    sheet = contact_sheet(pixels, label)
    write_bytes(out / row.sheet, encode_image(sheet, "jpg", jpeg_quality=SHEET_JPEG_QUALITY, jpeg_subsampling=0))
    scaled = np.clip(change_map / max(float(change_map.max()), 1e-12) * 255, 0, 255).astype(np.uint8)
    write_image(out / row.heat, np.repeat(scaled[:, :, None], 3, axis=2), "png")
    return row


def _summary_table(summary: list[tuple[str, list[_Row]]], threshold: float) -> str:
    """The SeFa paper's table: per layer group, directions examined and how many change the image."""
    lines = ["<table><tr><th>directions</th><th>examined</th>"
             f"<th>change the image (&gt; {threshold * 100:g} %)</th><th>largest change</th></tr>"]
    for title, rows in summary:
        largest = max(rows, key=lambda row: row.change, default=None)
        best = "" if largest is None else f"#{largest.component} {html.escape(largest.name)} ({largest.change:.1%})"
        lines.append(f"<tr><td>{html.escape(title)}</td><td>{len(rows)}</td>"
                     f"<td>{sum(row.change > threshold for row in rows)}</td><td>{best}</td></tr>")
    return "".join(lines) + "</table>"


def _set_section(report_set: ReportSet, rows: list[_Row], spectrum: str | None, amplitude: float, threshold: float,
                 comparison: Comparison) -> str:
    ds = report_set.direction_set
    parts = [f"<h2>{html.escape(report_set.title)}</h2>",
             f"<p>latent slots {', '.join(map(str, ds.layers))}; {len(ds.directions)} directions</p>"]
    if spectrum is not None:
        parts.append(f'<img src="{spectrum}" alt="spectrum of {html.escape(report_set.title)}">')
    passing = sum(row.change > threshold for row in rows)
    parts.append(f"<p><b>{passing} of {len(rows)}</b> directions change the image by more than {threshold * 100:g} % "
                 f"(mean |Δpixel| between α = −{amplitude:g} and +{amplitude:g}).</p>")
    parts.append("<table><tr><th>#</th><th>name</th><th>eigenvalue</th><th>change</th><th>passes</th>"
                 "<th>contact sheet (rows = seeds, columns = α)</th><th>change map</th></tr>")
    for row in rows:
        parts.append(f"<tr><td>{row.component}</td><td>{html.escape(row.name)}</td>"
                     f"<td>{'' if row.eigenvalue is None else f'{row.eigenvalue:.3f}'}</td><td>{row.change:.2%}</td>"
                     f"<td>{'yes' if row.change > threshold else 'no'}</td>"
                     f'<td><img src="{row.sheet}" alt="direction {row.component}"></td>'
                     f'<td><img src="{row.heat}" alt="change map {row.component}"></td></tr>')
    parts.append("</table>")
    if comparison:
        parts.append("<h3>Given directions (--compare), best matches first</h3><table><tr><th>given</th>"
                     "<th>best SeFa match |cos|</th><th>next matches</th></tr>")
        for name, matches in sorted(comparison, key=lambda item: -item[1][0][1]):
            (best, cosine), rest = matches[0], matches[1:5]
            parts.append(f"<tr><td>{html.escape(name)}</td><td>#{best} ({cosine:.3f})</td>"
                         f"<td>{', '.join(f'#{k} ({c:.3f})' for k, c in rest)}</td></tr>")
        parts.append("</table>")
    return "\n".join(parts)
