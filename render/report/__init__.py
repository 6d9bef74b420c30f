"""`sefa-render report`: look at directions before rendering them.

For each direction set (layer groups of a model, or a job's own sets) the
report writes the eigenvalue spectrum with its cumulative share, per
direction a contact sheet (rows = seeds, columns = α from −a to +a) and a
change map (mean absolute pixel change over the seeds between −a and +a, and
its mean as one number), and a table of the top directions with how many
pass a stated change threshold (the layout of the SeFa paper's table).
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
from PIL import Image, ImageDraw

from render.directions import DirectionSet
from render.execute import _pixels
from render.layout import default_cell_size, label_strip
from render.models.base import Generator, Sampling
from render.sinks.atomic import atomic_path, write_text

__all__ = ["ReportSet", "report_alphas", "change_of", "contact_sheet", "compare", "write_report",
           "CHANGE_THRESHOLD"]

CHANGE_THRESHOLD = 0.02  # a direction "changes the image" when its mean |Δpixel| over ±a exceeds 2 % of the range


@dataclass(frozen=True)
class ReportSet:
    title: str                 # e.g. "layers 0-1" or a job's direction-set key
    direction_set: DirectionSet
    shown: tuple[int, ...]     # the rows drawn (top-K, or the job's components)


def report_alphas(amplitude: float, count: int) -> np.ndarray:
    """`count` α values evenly from −amplitude to +amplitude."""
    return np.linspace(-amplitude, amplitude, count)


def edited_pixels(generator: Generator, latents: torch.Tensor, direction_set: DirectionSet, component: int,
                  alphas: np.ndarray, cell: int, precision: str) -> np.ndarray:
    """uint8 [len(alphas), seeds, cell, cell, 3]: every seed at every α, in the generator's batches."""
    count = len(latents)
    codes = latents.repeat(len(alphas), 1, 1)  # α-major
    per_code = torch.from_numpy(alphas).to(latents).repeat_interleave(count)
    direction = torch.from_numpy(direction_set.directions[component]).to(latents)
    edited = generator.edit(codes, direction, per_code, direction_set.layers)
    pixels = _pixels(generator, edited, cell, precision, lambda i: f"direction {component}, α {alphas[i // count]:+g}")
    return pixels.reshape(len(alphas), count, cell, cell, 3)


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


def _save_png(path: Path, pixels: np.ndarray) -> None:
    with atomic_path(path) as temporary:
        Image.fromarray(pixels).save(temporary, format="PNG", compress_level=1)  # 4× faster than level 6


def spectrum_plot(eigenvalues: np.ndarray, title: str, width: int = 640, height: int = 320) -> np.ndarray:
    """Bars = each eigenvalue's share (left scale), line = the cumulative share (0–100 %), drawn with PIL."""
    share = eigenvalues / eigenvalues.sum()
    cumulative = np.cumsum(share)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 50, width - 20, 30, height - 30
    draw.text((left, 8), f"{title}: share of each eigenvalue (bars), cumulative share (line)", fill="black")
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
    draw.text((4, top), f"{share.max():.0%}", fill="black")
    draw.text((right - 34, top + 2), "100%", fill=(220, 60, 40))
    draw.text((left, bottom + 6), f"direction 0 … {len(share) - 1}", fill="black")
    return np.asarray(image)


def write_report(out: Path, generator: Generator, sets: list[ReportSet], seeds: tuple[int, ...], sampling: Sampling,
                 precision: str, amplitude: float, alpha_count: int, heading: str,
                 comparisons: dict[str, list[list[tuple[int, float]]]] | None = None,
                 extra_html: str = "") -> dict[str, dict[int, float]]:
    """Render every set into `out` (PNGs + index.html); returns each set's change number per direction."""
    cell = default_cell_size(generator.img_resolution)
    alphas = report_alphas(amplitude, alpha_count)
    latents = generator.latents_from_seeds(seeds, sampling)
    sections, changes = [], {}
    with torch.no_grad():
        for number, report_set in enumerate(sets):
            prefix = f"set{number}"
            ds = report_set.direction_set
            parts = [f"<h2>{html.escape(report_set.title)}</h2>",
                     f"<p>latent slots {', '.join(map(str, ds.layers))}; {len(ds.directions)} directions</p>"]
            if ds.eigenvalues is not None:
                _save_png(out / f"{prefix}-spectrum.png", spectrum_plot(ds.eigenvalues, report_set.title))
                parts.append(f'<img src="{prefix}-spectrum.png" alt="spectrum of {html.escape(report_set.title)}">')
            rows, changes[report_set.title] = [], {}
            for component in report_set.shown:
                pixels = edited_pixels(generator, latents, ds, component, alphas, cell, precision)
                change_map, change = change_of(pixels)
                changes[report_set.title][component] = change
                eigenvalue = ds.eigenvalue(component)
                label = (f"#{component} {ds.names.get(component, '')}".rstrip()
                         + (f"  eigenvalue {eigenvalue:.2f}" if eigenvalue is not None else "")
                         + f"  alpha {-amplitude:+g} … {amplitude:+g}")
                sheet, heat = f"{prefix}-d{component}-sheet.png", f"{prefix}-d{component}-change.png"
                _save_png(out / sheet, contact_sheet(pixels, label))
                scaled = np.clip(change_map / max(float(change_map.max()), 1e-12) * 255, 0, 255).astype(np.uint8)
                _save_png(out / heat, np.repeat(scaled[:, :, None], 3, axis=2))
                rows.append((component, ds.names.get(component, ""), eigenvalue, change, sheet, heat))
            passing = sum(1 for row in rows if row[3] > CHANGE_THRESHOLD)
            parts.append(f"<p><b>{passing} of {len(rows)}</b> directions change the image by more than "
                         f"{CHANGE_THRESHOLD:.0%} (mean |Δpixel| between α = −{amplitude:g} and +{amplitude:g}).</p>")
            parts.append("<table><tr><th>#</th><th>name</th><th>eigenvalue</th><th>change</th><th>passes</th>"
                         "<th>contact sheet (rows = seeds, columns = α)</th><th>change map</th></tr>")
            for component, name, eigenvalue, change, sheet, heat in rows:
                parts.append(f"<tr><td>{component}</td><td>{html.escape(name)}</td>"
                             f"<td>{'' if eigenvalue is None else f'{eigenvalue:.3f}'}</td><td>{change:.4f}</td>"
                             f"<td>{'yes' if change > CHANGE_THRESHOLD else 'no'}</td>"
                             f'<td><img src="{sheet}" alt="direction {component}"></td>'
                             f'<td><img src="{heat}" alt="change map {component}"></td></tr>')
            parts.append("</table>")
            for given, matches in enumerate((comparisons or {}).get(report_set.title, [])):
                best = ", ".join(f"#{k} ({cos:.3f})" for k, cos in matches[:5])
                parts.append(f"<p>given direction {given}: best SeFa matches |cos| {best}</p>")
            sections.append("\n".join(parts))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(heading)}</title><style>"
            "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px;vertical-align:top}img{max-width:100%}</style></head><body>"
            f"<h1>{html.escape(heading)}</h1><p>seeds {', '.join(map(str, seeds))}; {alpha_count} α from "
            f"−{amplitude:g} to +{amplitude:g}</p>{extra_html}" + "\n".join(sections) + "</body></html>")
    write_text(out / "index.html", page)
    return changes
