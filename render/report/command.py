"""Resolve `sefa-render report MODEL|JOB` arguments into `write_report` inputs; bad input is a `SpecError`."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from render import cache
from render.directions import DirectionSet, cached_factorization, factorize_generator, read_direction_file
from render.errors import CheckpointError, OutputError, SpecError
from render.factorize import NothingToFactorize
from render.manifest import MANIFEST_NAME
from render.models import zoo
from render.models.registry import checkpoint_sha256, load_generator
from render.prepare import locate_checkpoint, prepare
from render.ranges import parse_seeds, parse_selection
from render.report import ReportSet, compare, write_report

__all__ = ["build_report", "DEFAULT_GROUPS"]

DEFAULT_GROUPS = ("0-1", "2-5", "6-")  # the paper's bottom, middle and top layers (clipped to the model)


def build_report(target: str, out: Path, layers: list[str] | None, top: int, seeds: str, amplitude: float,
                 alpha_count: int, compare_file: Path | None, output_root: Path) -> dict[str, dict[int, float]]:
    """Write the report of a model (`zoo:NAME`, a checkpoint) or of a job (a `.yaml`/`.yml` spec) into `out`."""
    if top < 1:
        raise SpecError(f"--top {top}: expected a positive number of directions per layer group")
    if alpha_count < 2 or amplitude <= 0:
        raise SpecError(f"--alphas {alpha_count} / --amplitude {amplitude}: expected at least 2 α values and a positive amplitude")
    try:
        seed_list = parse_seeds(seeds)
    except ValueError as error:
        raise SpecError(f"--seeds {seeds}: {error}") from None
    if compare_file is not None and not compare_file.exists():
        raise SpecError(f"--compare {compare_file}: file not found")
    if target.endswith((".yaml", ".yml")):
        generator, sets, sampling, precision, extra = _job_sets(Path(target), output_root, out)
    else:
        generator = load_generator(locate_checkpoint(target))
        sets = _model_sets(generator, checkpoint_sha256(locate_checkpoint(target)), layers or None, top)
        sampling, precision, extra = generator.default_sampling, "fp32", ""
    comparisons = None
    if compare_file is not None:
        try:
            given = read_direction_file(compare_file, generator.latent_dim)
        except ValueError as error:
            raise SpecError(f"--compare {compare_file}: {error}") from None
        comparisons = {s.title: compare(given, s.direction_set.directions) for s in sets}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"--out {out}: cannot create the folder ({error.strerror})") from None
    return write_report(out, generator, sets, seed_list, sampling, precision, amplitude, alpha_count,
                        f"SeFa report: {target}", comparisons, extra)


def _model_sets(generator, sha256: str, layers: list[str] | None, top: int) -> list[ReportSet]:
    sets = []
    explicit = layers is not None
    for text in layers or DEFAULT_GROUPS:
        try:
            selected = generator.select_layers(parse_selection(text))
        except ValueError as error:
            if explicit:
                raise SpecError(f"--layers {text}: {error}") from None
            continue  # a default group the model does not have (DCGAN has one slot)
        directions, eigenvalues = _factorize(generator, sha256, selected, text)
        sets.append(ReportSet(f"layers {text}", DirectionSet("sefa", selected, directions, eigenvalues),
                              tuple(range(min(top, len(directions))))))
    if not sets:  # none of the paper's groups fit: the whole latent
        selected = generator.select_layers(parse_selection("all"))
        directions, eigenvalues = _factorize(generator, sha256, selected, "all")
        sets.append(ReportSet("layers all", DirectionSet("sefa", selected, directions, eigenvalues),
                              tuple(range(min(top, len(directions))))))
    return sets


def _factorize(generator, sha256: str, layers: tuple[int, ...], text: str) -> tuple[np.ndarray, np.ndarray]:
    """SeFa of these slots, through the directions cache where it is usable (work done once)."""
    root = cache.usable(zoo.cache_dir())
    try:
        if root is None:
            return factorize_generator(generator, layers)
        return cached_factorization(generator, sha256, layers, root)[:2]
    except NothingToFactorize as error:
        raise CheckpointError(f"--layers {text}: {error}") from None


def _job_sets(path: Path, output_root: Path, out: Path):
    """The job's own direction sets (its components and names) and links to what its last run made."""
    from render.spec import load_job

    job = load_job(path, known_zoo=zoo.ZOO)
    prepared, generators = prepare(job)
    if len(generators) != 1:
        raise SpecError(f"{path}: the report handles jobs with one model; this one has {len(generators)}")
    (key, generator), = generators.items()
    model = prepared.models[key]
    sets = [ReportSet(f"direction set {name}", ds, ds.components) for name, ds in prepared.direction_sets.items()]
    return generator, sets, model.sampling, model.precision, _job_outputs(output_root / job.name, out)


def _job_outputs(folder: Path, out: Path) -> str:
    """HTML for the videos and dataset files the job's manifest lists (linked relative to the report)."""
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        return f"<p>No outputs yet: {html.escape(str(manifest_path))} does not exist (run the job first).</p>"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        raise SpecError(f"{manifest_path}: cannot be read ({error})") from None
    parts = ["<h2>The job's outputs</h2>"]
    for artifact in manifest.get("artifacts", []):
        link = html.escape(os.path.relpath(folder / str(artifact.get("path", "")), out), quote=True)
        if artifact.get("kind") == "video":
            name = artifact.get("direction_name") or ""
            parts.append(f"<p>{html.escape(str(artifact.get('path')))} — direction {artifact.get('component')} "
                         f"{html.escape(str(name))}<br><video controls src=\"{link}\" width=\"480\"></video></p>")
        else:
            parts.append(f"<p><a href=\"{link}\">{html.escape(str(artifact.get('path')))}</a></p>")
    return "\n".join(parts)
