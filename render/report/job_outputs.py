"""The part of a job's report that shows what its last run made, as listed by its manifest.

Videos become playable <video> elements, datasets a few sample pairs (original
beside edited, one per direction and α) with a link to the dataset folder,
anything else a link. Every link is relative to the report folder, so the
report and the job's outputs open from disk together.
"""

from __future__ import annotations

import html
import json
import os
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import quote

from render.errors import SpecError
from render.manifest import MANIFEST_NAME

__all__ = ["job_outputs_html", "sample_pairs", "PAIRS_SHOWN"]

PAIRS_SHOWN = 8         # sample pairs per dataset
ROWS_SCANNED = 10_000   # metadata rows read looking for distinct (direction, α) pairs: a big dataset is not read whole
VIDEO_WIDTH = 480       # px at most on the page
PAIR_WIDTH = 128        # px on the page for each dataset image, whatever the model's resolution


def job_outputs_html(folder: Path, out: Path) -> str:
    """HTML for the videos and datasets that `folder/manifest.json` lists (linked relative to `out`)."""
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        return f"<p>No outputs yet: {html.escape(str(manifest_path))} does not exist (run the job first).</p>"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        raise SpecError(f"{manifest_path}: cannot be read ({error})") from None
    artifacts = manifest.get("artifacts", [])
    parts = ["<h2>The job's outputs</h2>"]
    for artifact in artifacts:
        if artifact.get("kind") not in ("video", "dataset"):
            parts.append(f'<p><a href="{_link(folder / str(artifact.get("path")), out)}">'
                         f'{html.escape(str(artifact.get("path")))}</a></p>')
    videos = [artifact for artifact in artifacts if artifact.get("kind") == "video"]
    if videos:
        parts.append('<h3>videos</h3><div class="media">')
        for video in videos:
            width = min(int(video.get("width") or VIDEO_WIDTH), VIDEO_WIDTH)
            source = _link(folder / str(video.get("path")), out)
            parts.append(f'<figure><video controls preload="metadata" src="{source}" width="{width}"></video>'
                         f'<figcaption>{html.escape(str(video.get("path")))}: direction {video.get("component")} '
                         f'{html.escape(str(video.get("direction_name") or ""))}</figcaption></figure>')
        parts.append("</div>")
    for dataset in (artifact for artifact in artifacts if artifact.get("kind") == "dataset"):
        parts.append(_dataset_html(folder / str(dataset.get("path")), out, dataset))
    return "\n".join(parts)


def sample_pairs(split_dir: Path, count: int = PAIRS_SHOWN) -> list[dict[str, Any]]:
    """The first row of each (direction, α) in `split_dir/metadata.jsonl`, up to `count`, with both images in it."""
    chosen: dict[tuple[Any, Any], dict[str, Any]] = {}
    inside = split_dir.resolve()
    try:
        with open(split_dir / "metadata.jsonl", encoding="utf-8") as lines:
            for line in islice(lines, ROWS_SCANNED):
                row = json.loads(line)
                key = (row.get("direction_set"), row.get("direction_index"), row.get("alpha"))
                images = [split_dir / str(row.get(f"{side}_image_file_name")) for side in ("input", "edited")]
                if key not in chosen and all(p.resolve().is_relative_to(inside) and p.is_file() for p in images):
                    chosen[key] = row
                    if len(chosen) == count:
                        break
    except (OSError, ValueError):
        return []  # a half-written or foreign dataset: the link to its folder is still shown
    return list(chosen.values())


def _dataset_html(dataset_dir: Path, out: Path, artifact: dict[str, Any]) -> str:
    splits = artifact.get("splits") or {}
    parts = [f'<h3>dataset <a href="{_link(dataset_dir, out)}">{html.escape(str(artifact.get("path")))}</a></h3>'
             f"<p>{artifact.get('rows')} pairs ({', '.join(f'{html.escape(str(k))} {v}' for k, v in splits.items())})"
             "; samples, one per direction and α:</p>"]
    split = next(iter(splits), None)
    rows = sample_pairs(dataset_dir / str(split)) if split is not None else []
    if not rows:
        return "".join(parts) + "<p>no sample pairs could be read</p>"
    parts.append('<div class="media">')
    for row in rows:
        original, edited = (_link(dataset_dir / str(split) / row[f"{side}_image_file_name"], out)
                            for side in ("input", "edited"))
        parts.append(f'<figure><img src="{original}" alt="original" width="{PAIR_WIDTH}"> '
                     f'<img src="{edited}" alt="edited" width="{PAIR_WIDTH}"><figcaption>original, edited: '
                     f"{html.escape(str(row.get('edit_prompt', '')))}, seed {row.get('seed')}</figcaption></figure>")
    return "".join(parts) + "</div>"


def _link(path: Path, out: Path) -> str:
    """A relative URL: path separators as '/', and '#', '?', '%' or spaces in file names percent-encoded."""
    return html.escape(quote(Path(os.path.relpath(path, out)).as_posix()), quote=True)
