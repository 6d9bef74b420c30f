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
- Paths in a job (checkpoints, direction files) are relative to the job file.
- `seeds` and `schedule` in an output are either the name of an entry in the
  job's `seeds` / `schedules` sections or an inline value.

`job_schema()` publishes the same rules as JSON Schema for editors.
"""

from __future__ import annotations

import difflib
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

from render import schedules
from render.errors import SpecError
from render.ranges import IndexSelection, parse_seeds, parse_selection

__all__ = ["Job", "JobSpec", "ModelSpec", "DirectionSetSpec", "VideoSpec", "DatasetSpec", "load_job", "job_schema"]

ZOO_PREFIX = "zoo:"
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
EDIT_PROMPT_FIELDS = ("direction", "index", "alpha")
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


Name = _scalar(str, lambda v: isinstance(v, str) and re.fullmatch(NAME_PATTERN, v) is not None,
               "a name of letters, digits, '_' and '-' that starts with a letter",
               {"type": "string", "pattern": NAME_PATTERN})
PositiveInt = _scalar(int, lambda v: _is_int(v) and v > 0, "a positive integer", {"type": "integer", "minimum": 1})
NonNegativeInt = _scalar(int, lambda v: _is_int(v) and v >= 0, "a non-negative integer", {"type": "integer", "minimum": 0})
Number = _scalar(float, _is_number, "a number", {"type": "number"})
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


SeedRef = Annotated[Union[str, tuple[int, ...]], PlainValidator(_seed_ref),
                    PlainSerializer(lambda ref: ref if isinstance(ref, str) else list(ref)),
                    WithJsonSchema({"oneOf": [{"type": "string", "pattern": NAME_PATTERN}, _INDEX_SCHEMA]})]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- models and directions
class ModelSpec(_Strict):
    checkpoint: Annotated[Text, Field(description="'zoo:NAME' or a checkpoint path (relative to the job file)")]
    truncation_psi: Annotated[Number | None, Field(description="ψ; unset = the family's default (StyleGAN: 0.7)")] = None
    truncation_cutoff: Annotated[NonNegativeInt | None, Field(
        description="truncate only the first N w+ slots; unset = the family's default (StyleGAN: 8)")] = None
    class_index: Annotated[NonNegativeInt | None, Field(description="class for class-conditional models")] = None
    precision: Annotated[Literal["fp32", "bf16", "fp16"], Field(
        description="synthesis precision: bf16 is about 2× faster on CPUs, fp16 on GPUs; outputs differ slightly")] = "fp32"


class DirectionSetSpec(_Strict):
    model: Annotated[Name, Field(description="key of an entry in `models`")]
    method: Annotated[Literal["sefa", "file"], Field(description="'sefa' factorizes the model; 'file' reads `file`")] = "sefa"
    file: Annotated[Text | None, Field(description=".npy of shape [latent_dim] or [k, latent_dim] (method: file)")] = None
    layers: Annotated[Selection, Field(description="latent slots to factorize and edit: 'all', '0-1', '2-5', '6-', lists")] = (
        IndexSelection(None))
    components: Annotated[Selection | None, Field(
        description="which directions to render, by index: '0-4', [0, 3], 'all'; default: the top 5 (sefa) or all (file)")] = None
    names: Annotated[dict[int, Name], Field(description="human names by direction index, e.g. {0: pose}")] = {}

    @model_validator(mode="after")
    def _file_matches_method(self) -> "DirectionSetSpec":
        if self.method == "file" and self.file is None:
            raise ValueError("method 'file' needs a `file`")
        if self.method == "sefa" and self.file is not None:
            raise ValueError("`file` is only used with method: file")
        return self


# --------------------------------------------------------------------------- schedules
class _SweepScheduleSpec(_Strict):
    frames: PositiveInt
    start: Number = -3.0
    stop: Number = 3.0


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
    frames: PositiveInt
    amplitude: Number = 3.0
    center: Number = 0.0

    def build(self) -> schedules.Schedule:
        return schedules.SineLoop(self.frames, self.amplitude, self.center)


class KeyframeSpec(_Strict):
    frame: NonNegativeInt
    alpha: Number
    easing: Annotated[Literal[tuple(schedules.EASINGS)], Field(  # type: ignore[valid-type]
        description="how α arrives at this key from the previous one")] = "ease-in-out"


class KeyframesScheduleSpec(_Strict):
    """α through keyframes; `frames` defaults to the last key's frame + 1."""

    kind: Literal["keyframes"]
    keys: Annotated[list[KeyframeSpec], Field(min_length=1)]
    frames: PositiveInt | None = None

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


class DatasetSpec(_Strict):
    """Pairs (original, edited by α) in Hugging Face imagefolder layout."""

    name: Annotated[Name | None, Field(description="folder under datasets/; default dataset<i>")] = None
    directions: Annotated[Name, Field(description="key of an entry in `directions`")]
    seeds: Annotated[SeedRef, Field(description="a `seeds` key or inline seeds ('0-999')")]
    alphas: Annotated[list[Number], Field(min_length=1, description="one edited image per α, per direction, per seed")]
    test_fraction: Annotated[Fraction, Field(description="share of seeds (the last ones) put in a test split")] = 0.0
    image_format: Literal["png", "jpg"] = "png"
    png_compression: Annotated[Compression, Field(
        description="zlib level of PNG files: 1 is about 4× faster than 6 for 20% larger files")] = 1
    image_size: Annotated[PositiveInt | None, Field(description="resize images to this side; default: native")] = None
    edit_prompt: Annotated[Text, Field(description="template with {direction}, {index}, {alpha}")] = (
        "{direction} {alpha:+.2f}")

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

    `known_zoo`: names that `zoo:NAME` checkpoints may use. `text`: the file's
    content as read earlier (a queued job's frozen copy); paths in it are still
    relative to `path`.
    """
    path = Path(path)
    data = _read_yaml(path, text)
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as error:
        problems = error.errors()
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SpecError(f"{path}: {_describe(problems[0], data)}{more}") from None
    job = Job(spec, path)
    for field, message in _cross_check(job, known_zoo):
        raise SpecError(f"{path}: {field}: {message}")
    return job


# --------------------------------------------------------------------------- YAML
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which PyYAML would silently overwrite."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            keys.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path, text: str | None = None) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8") if text is None else text
    except FileNotFoundError:
        raise SpecError(f"{path}: job file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot read job file ({error})") from None
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
    if found and not isinstance(value, (dict, list)) and repr(value) not in message:
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
        elif not job.resolve_path(reference).is_file():
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
            if columns * rows < len(job.seeds(entry.seeds)):
                yield f"{field}.grid", f"{columns}×{rows} cells cannot hold {len(job.seeds(entry.seeds))} seeds"
    for kind, outputs in (("video", job.videos()), ("dataset", job.datasets())):
        for name, _ in outputs:
            names_seen[(kind, name)] = names_seen.get((kind, name), 0) + 1
    for (kind, name), count in names_seen.items():
        if count > 1:
            yield "outputs", f"{count} {kind} outputs are named {name!r}; give each a distinct `name`"
