"""Everything a job needs before rendering: checkpoints located, hashed and loaded,
sampling settings checked, and direction sets computed once each.

This runs in the coordinator. What it returns (`Prepared`) is plain,
picklable data that workers receive; they never factorize. SeFa results are
cached on disk by checkpoint hash, method and layers (`cached_factorization`),
and computed at most once per job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from render.directions import DirectionSet, read_direction_file, resolve_components, sefa_directions
from render.errors import CheckpointError, SpecError
from render.factorize import NothingToFactorize
from render.limits import check_units_fit
from render.models import zoo
from render.models.base import Generator, Sampling
from render.models.registry import checkpoint_sha256, load_generator
from render.spec import ZOO_PREFIX, Job, ModelSpec

__all__ = ["ResolvedModel", "Prepared", "prepare", "locate_checkpoint", "merge_sampling"]


@dataclass(frozen=True)
class ResolvedModel:
    key: str
    checkpoint: str          # as written in the job ('zoo:NAME' or a path)
    path: Path               # the file read
    sha256: str
    sampling: Sampling       # the spec's settings over the family's defaults
    precision: str           # 'fp32', 'bf16' or 'fp16' synthesis
    description: dict        # Generator.describe(): family, config, sizes
    input_transform: tuple[tuple[float, float], float] | None = None  # StyleGAN3: (translate, rotate)

    def load(self) -> Generator:
        """The generator, set up as the job asks (a worker's own copy)."""
        generator = load_generator(self.path)
        if self.input_transform is not None:
            generator.set_input_transform(*self.input_transform)
        return generator


@dataclass(frozen=True)
class Prepared:
    job: Job
    models: dict[str, ResolvedModel]
    direction_sets: dict[str, DirectionSet]


def locate_checkpoint(reference: str, relative_to: Path | None = None) -> Path:
    """The file behind 'zoo:NAME' (fetched into the cache if needed) or a path."""
    if reference.startswith(ZOO_PREFIX):
        return zoo.fetch(reference[len(ZOO_PREFIX):])
    path = Path(reference).expanduser()
    return (relative_to / path).resolve() if relative_to is not None else path


def merge_sampling(spec: ModelSpec, defaults: Sampling) -> Sampling:
    """Spec values where given, the family's defaults elsewhere."""
    return Sampling(
        truncation_psi=defaults.truncation_psi if spec.truncation_psi is None else spec.truncation_psi,
        truncation_cutoff=defaults.truncation_cutoff if spec.truncation_cutoff is None else spec.truncation_cutoff,
        class_index=spec.class_index,
    )


def prepare(job: Job) -> tuple[Prepared, dict[str, Generator]]:
    """Load every model once and compute every direction set once; errors name the job field.

    Returns the picklable `Prepared` and the loaded generators (by model key).
    """
    models: dict[str, ResolvedModel] = {}
    generators: dict[str, Generator] = {}
    for key, model_spec in job.spec.models.items():
        field = f"{job.path}: models.{key}"
        path = locate_checkpoint(model_spec.checkpoint, job.path.parent)
        try:
            generator = load_generator(path)
        except CheckpointError as error:
            raise CheckpointError(f"{field}.checkpoint: {error}") from None
        class_index = _class_number(generator, model_spec.class_index, f"{field}.class_index")
        sampling = dataclasses.replace(merge_sampling(model_spec, generator.default_sampling), class_index=class_index)
        # A model whose outputs all list their classes needs no class of its own; those are checked below.
        checked = sampling if class_index is not None or not _every_output_lists_classes(job, key) else (
            dataclasses.replace(sampling, class_index=0))
        problem = generator.check_sampling(checked)
        if problem:
            raise SpecError(f"{field}: {problem}")
        transform = model_spec.input_transform
        input_transform = None if transform is None else (transform.translate, transform.rotate)
        if input_transform is not None:
            try:
                generator.set_input_transform(*input_transform)
            except ValueError as error:
                raise SpecError(f"{field}.input_transform: {error}") from None
        generators[key] = generator
        models[key] = ResolvedModel(key, model_spec.checkpoint, path, checkpoint_sha256(path), sampling, model_spec.precision,
                                    generator.describe(), input_transform)

    _check_output_classes(job, models, generators)
    direction_sets: dict[str, DirectionSet] = {}
    factorized: dict[tuple[str, tuple[int, ...], str], tuple] = {}  # each (checkpoint, layers, weights) once per job
    for key, set_spec in job.spec.directions.items():
        field = f"{job.path}: directions.{key}"
        generator = generators[set_spec.model]
        try:
            layers = generator.select_layers(set_spec.layers, set_spec.include_input)
        except ValueError as error:
            raise SpecError(f"{field}.layers: {error}") from None
        if set_spec.method == "sefa":
            memo = (models[set_spec.model].sha256, layers, set_spec.sefa_weights)
            if memo not in factorized:
                factorized[memo] = _sefa(generator, memo[0], layers, memo[2], field)
            directions, eigenvalues, source = factorized[memo]
        else:
            assert set_spec.file is not None
            try:
                directions, eigenvalues = read_direction_file(job.resolve_path(set_spec.file), generator.latent_dim), None
            except ValueError as error:
                raise SpecError(f"{field}.file: {job.resolve_path(set_spec.file)}: {error}") from None
            source = "file"
        try:
            components = resolve_components(set_spec.components, set_spec.method, len(directions))
        except ValueError as error:
            raise SpecError(f"{field}.components: {error}") from None
        stray = sorted(set(set_spec.names) - set(components))
        if stray:
            raise SpecError(f"{field}.names: direction {stray[0]} is named but not among the rendered components")
        direction_sets[key] = DirectionSet(set_spec.method, layers, directions, eigenvalues, components,
                                           dict(set_spec.names), source)
    check_units_fit(job, generators, direction_sets)
    for index, output in enumerate(job.spec.outputs):
        if output.video is not None and output.video.camera is not None:
            generator = generators[job.spec.directions[output.video.directions].model]
            if not generator.geometric_slots:  # the slot of an input transform, which a camera moves
                raise SpecError(f"{job.path}: outputs[{index}].video.camera: {generator.family} models have no input "
                                "transform to move (only StyleGAN3 has one)")
        dataset = output.dataset
        if dataset is not None and dataset.samples is not None:  # a sampled edit sums k distinct directions of its set
            available = len(direction_sets[dataset.directions].components)
            if dataset.samples.k > available:
                raise SpecError(f"{job.path}: outputs[{index}].dataset.samples.k: {dataset.samples.k} is more than "
                                f"the {available} directions of set {dataset.directions!r}")
    return Prepared(job, models, direction_sets), generators


def _sefa(generator: Generator, checkpoint_sha256: str, layers: tuple[int, ...], weights: str, field: str) -> tuple:
    """(directions, eigenvalues, source): from the cache where it can be used, else computed."""
    try:
        return sefa_directions(generator, checkpoint_sha256, layers, weights)
    except NothingToFactorize as error:
        raise CheckpointError(f"{field}.layers: {error}") from None
    except ValueError as error:  # a variant the family does not have
        raise SpecError(f"{field}.sefa_weights: {error}") from None


def _class_number(generator: Generator, reference: int | str | None, field: str) -> int | None:
    """A class index as given, or the index of a class name (which only some models know)."""
    if not isinstance(reference, str):
        return reference
    try:
        return generator.class_index(reference)
    except ValueError as error:
        raise SpecError(f"{field}: {error}") from None


def _every_output_lists_classes(job: Job, model_key: str) -> bool:
    entries = [entry for _, entry in job.videos() + job.datasets() if job.spec.directions[entry.directions].model == model_key]
    return bool(entries) and all(entry.classes for entry in entries)


def _check_output_classes(job: Job, models: dict[str, ResolvedModel], generators: dict[str, Generator]) -> None:
    """Every class an output lists must exist in its model (plan.py resolves the names again)."""
    for index, output in enumerate(job.spec.outputs):
        kind, entry = ("video", output.video) if output.video is not None else ("dataset", output.dataset)
        assert entry is not None
        key = job.spec.directions[entry.directions].model
        seen: set[int | None] = set()
        for position, reference in enumerate(entry.classes or ()):
            field = f"{job.path}: outputs[{index}].{kind}.classes[{position}]"
            number = _class_number(generators[key], reference, field)
            problem = generators[key].check_sampling(dataclasses.replace(models[key].sampling, class_index=number))
            if problem:
                raise SpecError(f"{field}: {problem}")
            if number in seen:  # its files would collide
                raise SpecError(f"{field}: class {number} is listed twice")
            seen.add(number)


def describe_model(model: ResolvedModel) -> dict[str, object]:
    """Manifest entry for a model."""
    transform = {} if model.input_transform is None else {
        "input_transform": {"translate": list(model.input_transform[0]), "rotate": model.input_transform[1]}}
    return {"checkpoint": model.checkpoint, "path": str(model.path), "sha256": model.sha256,
            "sampling": dataclasses.asdict(model.sampling), "precision": model.precision, **transform, **model.description}
