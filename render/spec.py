"""Job specs: a YAML file → validated, frozen pydantic models.

A job names its models (checkpoints), direction sets (SeFa or a user `.npy`),
seed lists, α schedules and the outputs it wants. `load_job` returns a `Job`
or raises one `SpecError` whose message names the file, the field path and
what was expected, e.g.

    jobs/x.yaml: outputs[1].video.fps: expected a positive integer, got 'abc'

Rules a reader would otherwise have to discover:

- Unknown keys are errors (a typo must not pass silently), and so are
  duplicate keys in the YAML.
- Scalars are strict: `fps: "30"` is an error, not 30. Our own validators
  (`PlainValidator`) produce the messages, so they read the same everywhere.
- Paths in a job (checkpoints, direction files) are relative to the job file
  (to the current folder for a job read from stdin, `-`).
- The job's name is `name:`, else the file's stem; either way it must be a
  valid name, since it names the output folder.
- `seeds` and `schedule` in an output are either the name of an entry in the
  job's `seeds` / `schedules` sections or an inline value.

`job_schema()` publishes the same rules as JSON Schema for editors.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import string
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PlainSerializer, PlainValidator, Tag, ValidationError
from pydantic import WithJsonSchema, field_validator, model_validator

from render import limits, schedules
from render.errors import SpecError
from render.layout import PRESENTATION_SIZE, video_layout
from render.ranges import IndexSelection, parse_seeds, parse_selection
from render.spec_input import STDIN_PATH, read_spec_text, spec_path

__all__ = ["Job", "JobSpec", "ModelSpec", "DirectionSetSpec", "VideoSpec", "DatasetSpec", "load_job", "job_schema"]

ZOO_PREFIX = "zoo:"
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
NAME_RULE = f"a name of letters, digits, '_' and '-' that starts with a letter (at most {limits.MAX_NAME_LENGTH})"


def is_name(value: object) -> bool:
    return isinstance(value, str) and len(value) <= limits.MAX_NAME_LENGTH and re.fullmatch(NAME_PATTERN, value) is not None


EDIT_PROMPT_FIELDS = ("direction", "index", "alpha")
SEFA_WEIGHTS = ("default", "all")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


# --------------------------------------------------------------------------- scalars
def _scalar(base: type, check: Callable[[Any], bool], expected: str, schema: dict[str, Any]) -> Any:
    """A strict scalar type whose only error message is `expected …`."""

    def validate(value: Any) -> Any:
        if not check(value):
            raise ValueError(f"expected {expected}")
        return base(value)

    return Annotated[base, PlainValidator(validate), WithJsonSchema(schema)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and abs(value) < float("inf")  # NaN fails too


Name = _scalar(str, is_name, NAME_RULE, {"type": "string", "pattern": NAME_PATTERN, "maxLength": limits.MAX_NAME_LENGTH})
PositiveInt = _scalar(int, lambda v: _is_int(v) and v > 0, "a positive integer", {"type": "integer", "minimum": 1})
NonNegativeInt = _scalar(int, lambda v: _is_int(v) and v >= 0, "a non-negative integer", {"type": "integer", "minimum": 0})
Frames = _scalar(int, lambda v: _is_int(v) and 0 < v <= limits.MAX_FRAMES,
                 f"a positive integer up to {limits.MAX_FRAMES:,}",
                 {"type": "integer", "minimum": 1, "maximum": limits.MAX_FRAMES})
FrameIndex = _scalar(int, lambda v: _is_int(v) and 0 <= v < limits.MAX_FRAMES,
                     f"a frame from 0 to {limits.MAX_FRAMES - 1:,}", {"type": "integer", "minimum": 0,
                                                                       "maximum": limits.MAX_FRAMES - 1})
ImageSide = _scalar(int, lambda v: _is_int(v) and 0 < v <= limits.MAX_IMAGE_SIDE,
                    f"a positive integer up to {limits.MAX_IMAGE_SIDE:,} (larger images are refused by readers as "
                    "decompression bombs)", {"type": "integer", "minimum": 1, "maximum": limits.MAX_IMAGE_SIDE})


def _number(value: Any) -> float:
    if _is_number(value):
        return float(value)
    raise ValueError(f"expected a number, got {value!r}{_float_hint(value)}")


def _alpha(value: Any) -> float:
    alpha = _number(value)
    if abs(alpha) > limits.MAX_ABS_ALPHA:
        raise ValueError(f"expected an α from {-limits.MAX_ABS_ALPHA:g} to {limits.MAX_ABS_ALPHA:g} (directions have unit "
                         f"length; beyond that nothing of the original is left), got {value!r}")
    return alpha


def _float_hint(value: Any) -> str:
    """How to write a number that YAML read as text, e.g. '1e300' (YAML 1.1 floats need a dot and a signed exponent).

    >>> _float_hint("1e300"), _float_hint("abc")
    (' (YAML reads 1e300 as text; write 1.0e+300)', '')
    """
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    mantissa, _, exponent = value.strip().lower().partition("e")
    mantissa = mantissa if "." in mantissa else mantissa + ".0"
    written = mantissa + (f"e{exponent if exponent[:1] in '+-' else '+' + exponent}" if exponent else "")
    return f" (YAML reads {value} as text; write {written})"


Number = Annotated[float, PlainValidator(_number), WithJsonSchema({"type": "number"})]
Alpha = Annotated[float, PlainValidator(_alpha), WithJsonSchema({"type": "number", "minimum": -limits.MAX_ABS_ALPHA,
                                                                 "maximum": limits.MAX_ABS_ALPHA})]
Flag = _scalar(bool, lambda v: isinstance(v, bool), "true or false", {"type": "boolean"})
Fraction = _scalar(float, lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)",
                   {"type": "number", "minimum": 0, "exclusiveMaximum": 1})
Crf = _scalar(int, lambda v: _is_int(v) and 0 <= v <= 51, "an integer from 0 (lossless) to 51",
              {"type": "integer", "minimum": 0, "maximum": 51})
Compression = _scalar(int, lambda v: _is_int(v) and 0 <= v <= 9, "an integer from 0 (none) to 9 (smallest)",
                     {"type": "integer", "minimum": 0, "maximum": 9})
Text = _scalar(str, lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string", {"type": "string", "minLength": 1})

_INDEX_SCHEMA = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"},
                           {"type": "array", "items": {"type": ["integer", "string"]}}]}


def _selection(value: Any) -> IndexSelection:
    return parse_selection(value)


def _seed_list(value: Any) -> tuple[int, ...]:
    seeds = parse_seeds(value)
    if not seeds:
        raise ValueError("expected at least one seed")
    return seeds


Selection = Annotated[IndexSelection, PlainValidator(_selection), PlainSerializer(str), WithJsonSchema(_INDEX_SCHEMA)]
SeedList = Annotated[tuple[int, ...], PlainValidator(_seed_list), PlainSerializer(list), WithJsonSchema(_INDEX_SCHEMA)]


def _seed_ref(value: Any) -> str | tuple[int, ...]:
    """The name of a `seeds` entry, or inline seeds."""
    if isinstance(value, str) and re.fullmatch(NAME_PATTERN, value):
        return value
    return _seed_list(value)


def _class_ref(value: Any) -> int | str:
    """A class index, or a class name that the model resolves (BigGAN: an ImageNet name)."""
    if (_is_int(value) and value >= 0) or (isinstance(value, str) and value.strip()):
        return value
    raise ValueError("expected a class index (a non-negative integer) or a class name")


ClassRef = Annotated[Union[int, str], PlainValidator(_class_ref),
                     WithJsonSchema({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "minLength": 1}]})]
ClassList = Annotated[list[ClassRef], Field(min_length=1)]

SeedRef = Annotated[Union[str, tuple[int, ...]], PlainValidator(_seed_ref),
                    PlainSerializer(lambda ref: ref if isinstance(ref, str) else list(ref)),
                    WithJsonSchema({"oneOf": [{"type": "string", "pattern": NAME_PATTERN}, _INDEX_SCHEMA]})]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- models and directions
class InputTransformSpec(_Strict):
    translate: Annotated[tuple[Number, Number], Field(description="[x, y] in image widths")] = (0.0, 0.0)
    rotate: Annotated[Number, Field(description="degrees, counter-clockwise")] = 0.0


class ModelSpec(_Strict):
    checkpoint: Annotated[Text, Field(description="'zoo:NAME' or a checkpoint path (relative to the job file)")]
    truncation_psi: Annotated[Number | None, Field(description="ψ; unset = the family's default (StyleGAN: 0.7)")] = None
    truncation_cutoff: Annotated[NonNegativeInt | None, Field(
        description="truncate only the first N w+ slots; unset = the family's default (StyleGAN: 8)")] = None
    class_index: Annotated[ClassRef | None, Field(
        description="class for class-conditional models: an index, or a class name (BigGAN: ImageNet's)")] = None
    precision: Annotated[Literal["fp32", "bf16", "fp16"], Field(
        description="synthesis precision: bf16 is about 2× faster on CPUs, fp16 on GPUs; outputs differ slightly")] = "fp32"
    input_transform: Annotated[InputTransformSpec | None, Field(
        description="StyleGAN3: translate and rotate the image, as gen_images.py --translate/--rotate")] = None


class DirectionSetSpec(_Strict):
    model: Annotated[Name, Field(description="key of an entry in `models`")]
    method: Annotated[Literal["sefa", "file"], Field(description="'sefa' factorizes the model; 'file' reads `file`")] = "sefa"
    file: Annotated[Text | None, Field(description=".npy of shape [latent_dim] or [k, latent_dim] (method: file)")] = None
    layers: Annotated[Selection, Field(description="latent slots to factorize and edit: 'all', '0-1', '2-5', '6-', lists")] = (
        IndexSelection(None))
    include_input: Annotated[Flag, Field(
        description="StyleGAN3: also factorize and edit w slot 0, whose affine rotates and translates the input")] = False
    components: Annotated[Selection | None, Field(
        description="which directions to render, by index: '0-4', [0, 3], 'all'; default: the top 5 (sefa) or all (file)")] = None
    names: Annotated[dict[int, Name], Field(description="human names by direction index, e.g. {0: pose}")] = {}
    sefa_weights: Annotated[Literal[SEFA_WEIGHTS], Field(  # type: ignore[valid-type]
        description="which weights SeFa stacks: 'default', or 'all' (BigGAN: also every conditional batch norm's z columns)")] = (
        "default")

    @model_validator(mode="after")
    def _file_matches_method(self) -> "DirectionSetSpec":
        if self.method == "file" and self.file is None:
            raise ValueError("method 'file' needs a `file`")
        if self.method == "sefa" and self.file is not None:
            raise ValueError("`file` is only used with method: file")
        if self.method == "file" and self.sefa_weights != "default":
            raise ValueError("`sefa_weights` is only used with method: sefa")
        return self


# --------------------------------------------------------------------------- schedules
class _SweepScheduleSpec(_Strict):
    frames: Frames
    start: Alpha = -3.0
    stop: Alpha = 3.0


class LinearScheduleSpec(_SweepScheduleSpec):
    """α from `start` to `stop`, both included."""

    kind: Literal["linear"]

    def build(self) -> schedules.Schedule:
        return schedules.LinearSweep(self.frames, self.start, self.stop)


class PingPongScheduleSpec(_SweepScheduleSpec):
    """α from `start` to `stop` and back: a seamless loop of `frames` frames."""

    kind: Literal["pingpong"]

    def build(self) -> schedules.Schedule:
        return schedules.PingPong(self.frames, self.start, self.stop)


class SineScheduleSpec(_Strict):
    """α = center + amplitude·sin(2π·frame/frames): a seamless loop that starts at the original."""

    kind: Literal["sine"]
    frames: Frames
    amplitude: Alpha = 3.0
    center: Alpha = 0.0

    def build(self) -> schedules.Schedule:
        return schedules.SineLoop(self.frames, self.amplitude, self.center)


class KeyframeSpec(_Strict):
    frame: FrameIndex
    alpha: Alpha
    easing: Annotated[Literal[tuple(schedules.EASINGS)], Field(  # type: ignore[valid-type]
        description="how α arrives at this key from the previous one")] = "ease-in-out"


class KeyframesScheduleSpec(_Strict):
    """α through keyframes; `frames` defaults to the last key's frame + 1."""

    kind: Literal["keyframes"]
    keys: Annotated[list[KeyframeSpec], Field(min_length=1)]
    frames: Frames | None = None

    @model_validator(mode="after")
    def _keys_in_order(self) -> "KeyframesScheduleSpec":
        for previous, key in zip(self.keys, self.keys[1:]):
            if key.frame <= previous.frame:
                raise ValueError(f"keys must have increasing frames, got {previous.frame} then {key.frame}")
        if self.frames is not None and self.frames <= self.keys[-1].frame:
            raise ValueError(f"frames ({self.frames}) must be greater than the last key's frame ({self.keys[-1].frame})")
        return self

    def build(self) -> schedules.Schedule:
        keys = tuple(schedules.Keyframe(k.frame, k.alpha, k.easing) for k in self.keys)
        return schedules.Keyframes(self.frames or self.keys[-1].frame + 1, keys)


ScheduleSpec = Annotated[Union[LinearScheduleSpec, PingPongScheduleSpec, SineScheduleSpec, KeyframesScheduleSpec],
                         Field(discriminator="kind")]
SCHEDULE_KINDS = ("linear", "pingpong", "sine", "keyframes")
ScheduleRef = Annotated[Union[Annotated[Name, Tag("name")], Annotated[ScheduleSpec, Tag("inline")]],
                        Discriminator(lambda value: "name" if isinstance(value, str)
                                      else "inline" if isinstance(value, (dict, BaseModel)) else None)]


# --------------------------------------------------------------------------- outputs
class VideoSpec(_Strict):
    """One MP4 per direction: a grid of seeds moving along it as α follows the schedule."""

    name: Annotated[Name | None, Field(description="folder under videos/; default video<i>")] = None
    directions: Annotated[Name, Field(description="key of an entry in `directions`")]
    seeds: Annotated[SeedRef, Field(description="seeds of the grid cells: a `seeds` key or inline ('0-8')")]
    schedule: Annotated[ScheduleRef, Field(description="a `schedules` key or an inline schedule")]
    grid: Annotated[tuple[PositiveInt, PositiveInt] | None, Field(
        description="[columns, rows]; default: as square as the seed count allows")] = None
    cell_size: Annotated[PositiveInt | None, Field(
        description="pixels per cell side; default: the smallest multiple of the model's resolution ≥ 256")] = None
    gutter: Annotated[NonNegativeInt, Field(description="pixels between cells")] = 4
    fps: PositiveInt = 30
    crf: Annotated[Crf, Field(description="H.264 quality: lower is better, 18 is visually lossless")] = 18
    preset: Annotated[Literal[X264_PRESETS], Field(  # type: ignore[valid-type]
        description="x264 speed/size trade-off at the same quality; slower presets give smaller files")] = "veryfast"
    label: Annotated[Flag, Field(description="strip with direction, eigenvalue and α under the grid")] = True
    side_by_side: Annotated[Flag, Field(description="each cell shows original | edited")] = False
    camera: Annotated[InputTransformSpec | None, Field(
        description="StyleGAN3: a camera move, a seamless loop: at frame f the image moves by "
                    "sin(2π·f/frames)·(translate, rotate), on top of the model's input_transform")] = None
    classes: Annotated[ClassList | None, Field(
        description="class-conditional models: render these classes (indices or names) instead of the model's class_index")] = None
    class_layout: Annotated[Literal["rows", "videos"], Field(
        description="with `classes`: 'rows' gives one video per direction with a row of seeds per class; "
                    "'videos' gives one video per direction and class")] = "rows"

    @property
    def class_rows(self) -> int:
        """Rows of seeds in one video: one per class when the classes share a video, else one."""
        return len(self.classes) if self.classes and self.class_layout == "rows" else 1


class AlphaDistribution(_Strict):
    """How a sampled edit draws each α: exactly one of a uniform range, a normal around 0, or a weighted list."""

    uniform: tuple[Alpha, Alpha] | None = None
    normal: Annotated[float | None, Field(description="σ of a normal around 0")] = None
    choices: Annotated[list[Alpha], Field(min_length=1)] | None = None
    weights: list[Annotated[float, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _one(self) -> "AlphaDistribution":
        given = [name for name in ("uniform", "normal", "choices") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("expected exactly one of 'uniform', 'normal' or 'choices'")
        if self.normal is not None and not (0 <= self.normal <= limits.MAX_ABS_ALPHA):
            raise ValueError(f"normal: σ {self.normal!r} must be in [0, {limits.MAX_ABS_ALPHA:g}]")
        if self.uniform is not None and self.uniform[0] > self.uniform[1]:
            raise ValueError(f"uniform: {list(self.uniform)} is empty (low > high)")
        if self.weights is not None and (self.choices is None or len(self.weights) != len(self.choices)
                                         or sum(self.weights) <= 0):
            raise ValueError("weights: one non-negative weight per choice, not all zero")
        return self


class SampledEdits(_Strict):
    """Per seed `per_seed` edits, each Σ αᵢ·nᵢ over `k` distinct directions drawn from the set."""

    per_seed: Annotated[int, Field(ge=1, le=limits.MAX_SAMPLES_PER_SEED)] = 1
    k: Annotated[int, Field(ge=1, le=limits.MAX_COMBINED_DIRECTIONS)] = 1
    alpha: AlphaDistribution
    seed: Annotated[int, Field(ge=0, le=2**63 - 1, description="dataset seed: every draw derives from it")] = 0
    classes: Annotated[Literal["fixed", "list", "cycle", "uniform"], Field(
        description="class-conditional models: each sample's class from the dataset's `classes` (fixed: the "
                    "first; list: one per seed, in order, repeated; cycle: round robin over samples; uniform: "
                    "drawn)")] = "fixed"


class DatasetSpec(_Strict):
    """Pairs (original, edited by α) in Hugging Face imagefolder layout."""

    name: Annotated[Name | None, Field(description="folder under datasets/; default dataset<i>")] = None
    directions: Annotated[Name, Field(description="key of an entry in `directions`")]
    seeds: Annotated[SeedRef, Field(description="a `seeds` key or inline seeds ('0-999')")]
    alphas: Annotated[Annotated[list[Alpha], Field(min_length=1)] | None, Field(
        description="imagefolder: one edited image per α, per direction, per seed")] = None
    test_fraction: Annotated[Fraction, Field(description="imagefolder: share of seeds (the last ones) put in a test split")] = 0.0
    image_format: Literal["png", "jpg"] = "png"
    png_compression: Annotated[Compression, Field(
        description="zlib level of PNG files: 1 is about 4× faster than 6 for 20% larger files")] = 1
    image_size: Annotated[ImageSide | None, Field(description="resize images to this side; default: native")] = None
    edit_prompt: Annotated[Text, Field(description="imagefolder: template with {direction}, {index}, {alpha}")] = (
        "{direction} {alpha:+.2f}")
    classes: Annotated[ClassList | None, Field(
        description="class-conditional models: render every seed in each of these classes (indices or names)")] = None
    layout: Annotated[Literal["imagefolder", "webdataset", "parquet"], Field(
        description="imagefolder: the grid seeds × directions × alphas; webdataset: tar shards of sampled edits; "
                    "parquet: the same in parquet files with embedded images (needs pyarrow)")] = "imagefolder"
    samples: Annotated[SampledEdits | None, Field(description="webdataset and parquet layouts: the sampled edits")] = None
    shard_size: Annotated[int, Field(ge=1, le=limits.MAX_SHARD_SAMPLES, description="samples per shard file")] = 1000

    @model_validator(mode="after")
    def _layout_fields(self) -> "DatasetSpec":
        if self.layout != "imagefolder" and self.samples is None:
            raise ValueError(f"layout {self.layout!r} needs 'samples'")
        if self.layout == "imagefolder" and self.samples is not None:
            raise ValueError("'samples' needs layout 'webdataset' or 'parquet'")
        if self.layout == "parquet" and importlib.util.find_spec("pyarrow") is None:
            raise ValueError("layout 'parquet' needs pyarrow: pip install 'sefa-render[parquet]'")
        if self.layout == "imagefolder" and self.alphas is None:
            raise ValueError("layout 'imagefolder' needs 'alphas'")
        # Options of the other layout are refused, never silently ignored (a default is no option: a dumped
        # spec, as the queue stores it, holds every field).
        foreign = ("alphas", "test_fraction", "edit_prompt") if self.samples is not None else ("shard_size",)
        given = [name for name in foreign if getattr(self, name) != type(self).model_fields[name].default]
        if given:
            raise ValueError(f"{given[0]!r} does not apply to layout {self.layout!r}")
        return self

    @field_validator("alphas")
    @classmethod
    def _distinct(cls, alphas: list[float] | None) -> list[float] | None:
        seen: set[float] = set()
        for alpha in alphas or ():
            if alpha in seen:  # -0.0 == 0.0: the same edit
                raise ValueError(f"α {alpha!r} is listed twice")
            seen.add(alpha)
        return alphas

    @field_validator("edit_prompt")
    @classmethod
    def _known_fields(cls, template: str) -> str:
        for _, field, _, _ in string.Formatter().parse(template):
            if field is not None and field not in EDIT_PROMPT_FIELDS:
                raise ValueError(f"unknown field {{{field}}} in edit_prompt (available: {', '.join(EDIT_PROMPT_FIELDS)})")
        try:
            template.format(direction="pose", index=0, alpha=1.0)
        except (ValueError, IndexError) as error:
            raise ValueError(f"bad edit_prompt template: {error}") from None
        return template


class OutputSpec(_Strict):
    video: VideoSpec | None = None
    dataset: DatasetSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "OutputSpec":
        if (self.video is None) == (self.dataset is None):
            raise ValueError("expected exactly one of 'video' or 'dataset'")
        return self


class JobSpec(_Strict):
    name: Annotated[Name | None, Field(description="output folder name; default: the job file's stem")] = None
    models: Annotated[dict[Name, ModelSpec], Field(min_length=1)]
    directions: Annotated[dict[Name, DirectionSetSpec], Field(min_length=1)]
    seeds: dict[Name, SeedList] = {}
    schedules: dict[Name, ScheduleSpec] = {}
    outputs: Annotated[list[OutputSpec], Field(min_length=1)]


# --------------------------------------------------------------------------- the loaded job
@dataclass(frozen=True)
class Job:
    """A validated spec plus where it came from."""

    spec: JobSpec
    path: Path

    @property
    def name(self) -> str:
        return self.spec.name or self.path.stem

    def resolve_path(self, relative: str) -> Path:
        """A path from the job file, taken relative to the job file's folder."""
        return (self.path.parent / Path(relative).expanduser()).resolve()

    def seeds(self, ref: str | tuple[int, ...]) -> tuple[int, ...]:
        return self.spec.seeds[ref] if isinstance(ref, str) else ref

    def schedule(self, ref: Any) -> schedules.Schedule:
        return (self.spec.schedules[ref] if isinstance(ref, str) else ref).build()

    def videos(self) -> list[tuple[str, VideoSpec]]:
        """(name, spec) of each video output, in spec order."""
        entries = [output.video for output in self.spec.outputs if output.video is not None]
        return [(video.name or f"video{i}", video) for i, video in enumerate(entries)]

    def datasets(self) -> list[tuple[str, DatasetSpec]]:
        entries = [output.dataset for output in self.spec.outputs if output.dataset is not None]
        return [(dataset.name or f"dataset{i}", dataset) for i, dataset in enumerate(entries)]


def job_schema() -> dict[str, Any]:
    """JSON Schema of a job file, for editors (`sefa-render schema`)."""
    schema = JobSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "sefa-render job"}


def load_job(path: Path | str, known_zoo: typing.Collection[str] = (), text: str | None = None) -> Job:
    """Read, validate and cross-check a job file; raise `SpecError` on the first problem.

    `known_zoo`: names that `zoo:NAME` checkpoints may use. `path` '-' reads standard input. `text`: the
    file's content as read earlier (a queued job's frozen copy); paths in it are still relative to `path`.
    """
    path = spec_path(path)
    data = _read_yaml(path, text)
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as error:
        problems = error.errors()
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SpecError(f"{path}: {_describe(problems[0], data)}{more}") from None
    if spec.name is None and path == STDIN_PATH:
        raise SpecError(f"{path}: a job read from standard input needs `name:` (it names the output folder)")
    if spec.name is None and not is_name(path.stem):
        raise SpecError(f"{path}: the job is named after its file, and {path.stem!r} is not {NAME_RULE}; "
                        f"add `name: …` to the spec")
    job = Job(spec, path)
    for field, message in _cross_check(job, known_zoo):
        raise SpecError(f"{path}: {field}: {message}")
    return job


# --------------------------------------------------------------------------- YAML
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which PyYAML would silently overwrite, documents that
    expand (through aliases) to more than `limits.MAX_YAML_NODES` values: a few lines of nested aliases
    ("billion laughs") would otherwise take minutes and gigabytes to construct and validate, and
    nesting deeper than `limits.MAX_YAML_DEPTH`.
    """

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # PyYAML composes recursively: refuse deep nesting before Python's recursion limit does, with a traceback.
        self.depth += 1
        try:
            if self.depth > limits.MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {limits.MAX_YAML_DEPTH} levels deep",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        if _expanded_size(node) > limits.MAX_YAML_NODES:
            raise yaml.constructor.ConstructorError(
                None, None, f"the document expands to more than {limits.MAX_YAML_NODES:,} values "
                            "(through anchors and aliases, or a recursive alias)", node.start_mark)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            keys.add(key)
        return super().construct_mapping(node, deep)


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes `root` has with every alias expanded, counted without expanding (capped just over the limit).

    Depth-first with an explicit stack; an alias shares its anchor's node, so
    each node's size is computed once. A node that contains itself counts as
    too big.
    """
    too_big = limits.MAX_YAML_NODES + 1
    sizes: dict[int, int] = {}
    entered: set[int] = set()  # entered and unfinished: the ancestors of the node on top
    stack = [root]
    while stack:
        node = stack[-1]
        children = [] if isinstance(node, yaml.ScalarNode) else (
            [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else node.value)
        if id(node) in sizes:
            stack.pop()
        elif id(node) not in entered:
            entered.add(id(node))
            for child in children:
                if id(child) in entered and id(child) not in sizes:
                    return too_big
                stack.append(child)
        else:
            stack.pop()
            sizes[id(node)] = min(too_big, 1 + sum(sizes[id(child)] for child in children))
    return sizes[id(root)]


def _read_yaml(path: Path, text: str | None = None) -> dict[str, Any]:
    if text is None:
        text = read_spec_text(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise SpecError(f"{path}: {where}{error.problem or error}") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: invalid YAML ({error})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of sections (models, directions, outputs, …), got {type(data).__name__}")
    return data


# --------------------------------------------------------------------------- error messages
def _describe(error: Any, data: Any) -> str:
    """'field.path: what was expected, got X' for one pydantic error."""
    keys, path, value, found = _real_path(error["loc"], data, error["type"])
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "missing":
        return f"{path}: missing required field"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(keys[:-1], data)
        close = difflib.get_close_matches(str(keys[-1]), allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f" (allowed: {', '.join(allowed)})"
        return f"{path}: unknown key{hint}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        kinds = ", ".join(repr(k) for k in SCHEDULE_KINDS)
        if isinstance(value, dict) and "kind" in value:
            return f"{path}.kind: expected one of {kinds}, got {value['kind']!r}"
        if isinstance(value, dict):
            return f"{path}: missing `kind` (one of {kinds})"
        return f"{path}: expected a schedule name or a mapping with `kind`, got {value!r}"
    if kind == "literal_error":
        message = f"expected one of {ctx.get('expected')}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = "expected a mapping"
    elif kind in ("list_type", "tuple_type"):
        message = "expected a list"
    elif kind == "too_short":
        message = f"expected at least {ctx.get('min_length')} item(s)"
    elif kind == "too_long":
        message = f"expected at most {ctx.get('max_length')} item(s)"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        message = "expected an integer"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message[0].lower() + message[1:] if message else message
    quoted = f"got {value!r}" in message or (isinstance(value, str) and repr(value) in message)
    if found and not isinstance(value, (dict, list)) and not quoted:
        message += f", got {value!r}"
    return f"{path}: {message}"


def _real_path(loc: tuple[Any, ...], data: Any, kind: str) -> tuple[list[Any], str, Any, bool]:
    """Follow a pydantic location through the data.

    Returns the real keys, their text ('outputs[1].video.fps'), the value
    there and whether it exists. Pydantic puts the tag of a tagged union
    ('pingpong', 'inline') into the location as if it were a key; a location
    element that is not a key of the data at that point is such a tag, except
    the last element of a 'missing' error, which names the missing key.
    """
    keys: list[Any] = []
    text = ""
    current, found = data, True
    for position, element in enumerate(loc):
        if element == "[key]":  # pydantic's marker for an invalid dict key: the key is the value
            return keys, text.lstrip("."), keys[-1] if keys else None, True
        if isinstance(current, dict) and element in current:
            text += f".{element}"
        elif isinstance(current, list) and isinstance(element, int) and 0 <= element < len(current):
            text += f"[{element}]"
        elif position == len(loc) - 1 and kind == "missing":
            keys.append(element)
            return keys, f"{text}.{element}".lstrip("."), None, False
        else:
            continue
        keys.append(element)
        current = current[element]
    return keys, text.lstrip(".") or "(top level)", current, found


def _allowed_keys(keys: list[Any], data: Any) -> list[str]:
    """Field names of the model at `keys` (walking JobSpec's annotations alongside the data)."""
    annotation: Any = JobSpec
    current = data
    for key in keys:
        annotation = _model_for(annotation, current)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = annotation.model_fields[key].annotation
        else:  # dict[K, V] → V, list[V] → V
            annotation = typing.get_args(annotation)[-1]
        current = current[key]
    model = _model_for(annotation, current)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _model_for(annotation: Any, value: Any) -> Any:
    """Unwrap Annotated/Optional/Union down to the model that validated `value`."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        for member in typing.get_args(annotation):
            member = _model_for(member, value)
            if isinstance(member, type) and issubclass(member, BaseModel):
                kind_field = member.model_fields.get("kind")
                if kind_field is None or (isinstance(value, dict) and value.get("kind") in typing.get_args(kind_field.annotation)):
                    return member
        return annotation
    return annotation


# --------------------------------------------------------------------------- cross-references
def _cross_check(job: Job, known_zoo: typing.Collection[str]) -> typing.Iterator[tuple[str, str]]:
    """(field, message) for each reference to something that does not exist."""
    spec = job.spec

    def unknown(kind: str, name: str, defined: typing.Iterable[str]) -> str:
        names = ", ".join(defined) or "none"
        return f"unknown {kind} {name!r} (defined: {names})"

    for key, model in spec.models.items():
        reference = model.checkpoint
        if reference.startswith(ZOO_PREFIX):
            zoo_name = reference[len(ZOO_PREFIX):]
            if zoo_name not in known_zoo:
                yield f"models.{key}.checkpoint", f"unknown zoo model {zoo_name!r} (known: {', '.join(known_zoo) or 'none'})"
        elif not job.resolve_path(reference).exists():  # a file, or a folder (Hugging Face BigGAN)
            yield f"models.{key}.checkpoint", f"file not found: {job.resolve_path(reference)}"
    for key, direction_set in spec.directions.items():
        if direction_set.model not in spec.models:
            yield f"directions.{key}.model", unknown("model", direction_set.model, spec.models)
        if direction_set.file is not None and not job.resolve_path(direction_set.file).is_file():
            yield f"directions.{key}.file", f"file not found: {job.resolve_path(direction_set.file)}"
    names_seen: dict[tuple[str, str], int] = {}
    for index, output in enumerate(spec.outputs):
        kind = "video" if output.video is not None else "dataset"
        entry = output.video or output.dataset
        assert entry is not None
        field = f"outputs[{index}].{kind}"
        if entry.directions not in spec.directions:
            yield f"{field}.directions", unknown("direction set", entry.directions, spec.directions)
        if isinstance(entry.seeds, str) and entry.seeds not in spec.seeds:
            yield f"{field}.seeds", unknown("seed list", entry.seeds, spec.seeds)
        if isinstance(entry, VideoSpec) and isinstance(entry.schedule, str) and entry.schedule not in spec.schedules:
            yield f"{field}.schedule", unknown("schedule", entry.schedule, spec.schedules)
        seeds_known = not isinstance(entry.seeds, str) or entry.seeds in spec.seeds
        if isinstance(entry, VideoSpec) and entry.grid is not None and seeds_known:
            columns, rows = entry.grid
            cells = len(job.seeds(entry.seeds)) * entry.class_rows
            if columns * rows < cells:
                yield f"{field}.grid", f"{columns}×{rows} cells cannot hold {cells} seeds"
        if seeds_known:
            yield from _size_problems(field, entry, len(job.seeds(entry.seeds)))
    for kind, outputs in (("video", job.videos()), ("dataset", job.datasets())):
        for name, _ in outputs:
            names_seen[(kind, name)] = names_seen.get((kind, name), 0) + 1
    for (kind, name), count in names_seen.items():
        if count > 1:
            yield "outputs", f"{count} {kind} outputs are named {name!r}; give each a distinct `name`"


def _size_problems(field: str, entry: VideoSpec | DatasetSpec, seeds: int) -> typing.Iterator[tuple[str, str]]:
    """Sizes that cannot run, known before the model is loaded (see render/limits.py).

    An unset `cell_size` is checked at its smallest default (256 px); `prepare`
    checks again with the model's resolution. A dataset split is checked with
    one direction; `prepare` again with the direction set's size.
    """
    if isinstance(entry, VideoSpec):
        problem = limits.frame_problem(video_layout(entry, seeds, entry.cell_size or PRESENTATION_SIZE))
        if problem:
            yield field, problem
    elif entry.samples is not None:
        shards = -(-seeds * entry.samples.per_seed // entry.shard_size)
        if shards > limits.MAX_SHARDS:
            yield f"{field}.shard_size", (f"{seeds:,} seeds × {entry.samples.per_seed} samples in shards of "
                                          f"{entry.shard_size} are {shards:,} shards, more than {limits.MAX_SHARDS:,}")
    elif entry.alphas is not None:
        problem = limits.split_problem(seeds, len(entry.alphas))
        if problem:
            yield f"{field}.seeds", problem
