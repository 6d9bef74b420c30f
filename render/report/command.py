"""Resolve `sefa-render report MODEL|JOB` arguments into `write_report` inputs; bad input is a `SpecError`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from render.directions import DirectionSet, read_direction_file, sefa_directions
from render.errors import CheckpointError, OutputError, SpecError
from render.factorize import NothingToFactorize
from render.limits import MAX_ABS_ALPHA
from render.models import zoo
from render.models.registry import checkpoint_sha256, load_generator
from render.prepare import locate_checkpoint, prepare
from render.ranges import parse_seeds, parse_selection
from render.report import CHANGE_THRESHOLD, ReportSet, compare, write_report
from render.report.job_outputs import job_outputs_html
from render.spec import load_job

__all__ = ["build_report", "model_sets", "read_comparison", "DEFAULT_GROUPS"]

DEFAULT_GROUPS = ("0-1", "2-5", "6-")  # the paper's bottom, middle and top layers (clipped to the model)
# A contact sheet holds seeds × α cells of 128 px in memory and in one JPEG: 64 × 33 cells is 8192 × 4224 px (100 MB).
MAX_SHEET_SEEDS = 64
MAX_SHEET_ALPHAS = 33


def build_report(target: str, out: Path, layers: list[str] | None, top: int, seeds: str, amplitude: float,
                 alpha_count: int, compare_path: Path | None, output_root: Path,
                 threshold_percent: float = CHANGE_THRESHOLD * 100) -> dict[str, dict[int, float]]:
    """Write the report of a model (`zoo:NAME`, a checkpoint) or of a job (a `.yaml`/`.yml` spec) into `out`.

    `compare_path` is one .npy file or a folder of them; `threshold_percent` is the change (percent of the
    pixel range) above which a direction counts as changing the image.
    """
    if top < 1:
        raise SpecError(f"--top {top}: expected a positive number of directions per layer group")
    if not 2 <= alpha_count <= MAX_SHEET_ALPHAS or not 0 < amplitude <= MAX_ABS_ALPHA:
        raise SpecError(f"--alphas {alpha_count} / --amplitude {amplitude:g}: expected 2 to {MAX_SHEET_ALPHAS} α values "
                        f"and an amplitude above 0, at most {MAX_ABS_ALPHA:g}")
    try:
        seed_list = parse_seeds(seeds)
    except ValueError as error:
        raise SpecError(f"--seeds {seeds}: {error}") from None
    if len(seed_list) > MAX_SHEET_SEEDS:
        raise SpecError(f"--seeds {seeds}: {len(seed_list)} seeds; a contact sheet shows at most {MAX_SHEET_SEEDS} rows")
    if not 0 < threshold_percent < 100:
        raise SpecError(f"--threshold {threshold_percent:g}: expected a percentage between 0 and 100")
    if compare_path is not None and not compare_path.exists():
        raise SpecError(f"--compare {compare_path}: file not found")
    if target.endswith((".yaml", ".yml")):
        generator, sets, sampling, precision, extra = _job_sets(Path(target), output_root, out)
    else:
        checkpoint = locate_checkpoint(target)
        generator = load_generator(checkpoint)
        sets = model_sets(generator, checkpoint_sha256(checkpoint), layers or None, top)
        sampling, precision, extra = generator.default_sampling, "fp32", ""
    comparisons = None
    if compare_path is not None:
        names, given = read_comparison(compare_path, generator.latent_dim)
        comparisons = {s.title: list(zip(names, compare(given, s.direction_set.directions))) for s in sets}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"--out {out}: cannot create the folder ({error.strerror})") from None
    return write_report(out, generator, sets, seed_list, sampling, precision, amplitude, alpha_count,
                        f"SeFa report: {target}", threshold_percent / 100, comparisons, extra)


def read_comparison(path: Path, latent_dim: int) -> tuple[list[str], np.ndarray]:
    """Given directions from one .npy file or a folder of them: (names from the file names, unit rows)."""
    try:
        files = sorted(p for p in path.iterdir() if p.suffix == ".npy" and p.is_file()) if path.is_dir() else [path]
    except OSError as error:
        raise SpecError(f"--compare {path}: cannot list the folder ({error.strerror})") from None
    if not files:
        raise SpecError(f"--compare {path}: the folder holds no .npy files")
    names, arrays = [], []
    for file in files:
        try:
            rows = read_direction_file(file, latent_dim)
        except ValueError as error:
            raise SpecError(f"--compare {file}: {error}") from None
        names += [file.stem] if len(rows) == 1 else [f"{file.stem}[{row}]" for row in range(len(rows))]
        arrays.append(rows)
    return names, np.concatenate(arrays)


def model_sets(generator, sha256: str, layers: list[str] | None, top: int) -> list[ReportSet]:
    """One set per layer group (`layers`, default the paper's groups the model has) with its top directions."""
    sets = []
    for text in layers or DEFAULT_GROUPS:
        try:
            selected = generator.select_layers(parse_selection(text))
        except ValueError as error:
            if layers is not None:
                raise SpecError(f"--layers {text}: {error}") from None
            continue  # a default group the model does not have (DCGAN has one slot)
        sets.append(_sefa_set(generator, sha256, text, selected, top))
    if not sets:  # none of the paper's groups fit: the whole latent
        sets.append(_sefa_set(generator, sha256, "all", generator.select_layers(parse_selection("all")), top))
    return sets


def _sefa_set(generator, sha256: str, text: str, layers: tuple[int, ...], top: int) -> ReportSet:
    """SeFa of these slots, through the directions cache where it is usable (work done once), top `top` shown."""
    try:
        directions, eigenvalues, _ = sefa_directions(generator, sha256, layers)
    except NothingToFactorize as error:
        raise CheckpointError(f"--layers {text}: {error}") from None
    return ReportSet(f"layers {text}", DirectionSet("sefa", layers, directions, eigenvalues),
                     tuple(range(min(top, len(directions)))))


def _job_sets(path: Path, output_root: Path, out: Path):
    """The job's own direction sets (its components and names) and links to what its last run made."""
    job = load_job(path, known_zoo=zoo.ZOO)
    prepared, generators = prepare(job)
    if len(generators) != 1:
        raise SpecError(f"{path}: the report handles jobs with one model; this one has {len(generators)}")
    (key, generator), = generators.items()
    model = prepared.models[key]
    sets = [ReportSet(f"direction set {name}", ds, ds.components) for name, ds in prepared.direction_sets.items()]
    return generator, sets, model.sampling, model.precision, job_outputs_html(output_root / job.name, out)
