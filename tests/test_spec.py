"""Job specs: valid ones load into typed objects, and each kind of mistake gets one precise line."""

import copy
import json
from pathlib import Path

import pytest

from jobs import TINY_JOB, write_job
from render.errors import SpecError
from render.spec import JobSpec, job_schema, load_job

ZOO = ("dcgan-digiface",)
REPO = Path(__file__).resolve().parents[1]


def job_with(change) -> dict:
    job = copy.deepcopy(TINY_JOB)
    change(job)
    return job


def error_for(tmp_path, job=None, text=None) -> str:
    path = write_job(tmp_path, job)
    if text is not None:
        path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_job(path, ZOO)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message[len(f"{path}: "):]


def video(job):
    return job["outputs"][0]["video"]


def dataset(job):
    return job["outputs"][1]["dataset"]


def test_a_valid_job_loads_into_typed_objects(tmp_path):
    job = load_job(write_job(tmp_path), ZOO)
    assert job.name == "tiny"
    assert job.seeds("grid") == (0, 1, 2, 3) and job.seeds((5, 6)) == (5, 6)
    assert job.schedule("loop").frames == 6
    assert [name for name, _ in job.videos()] == ["clips"] and [name for name, _ in job.datasets()] == ["pairs"]
    assert job.spec.directions["top"].names == {0: "first"}
    assert job.resolve_path("gan.pt") == (tmp_path / "gan.pt").resolve()


def test_a_job_survives_a_round_trip_through_json(tmp_path):
    spec = load_job(write_job(tmp_path), ZOO).spec
    assert JobSpec.model_validate(json.loads(json.dumps(spec.model_dump(mode="json")))) == spec


def test_defaults_fill_in_what_the_job_leaves_out(tmp_path):
    job = load_job(write_job(tmp_path, job_with(lambda j: j.pop("name"))), ZOO)
    assert job.name == "job"  # the file's stem
    clip = job.videos()[0][1]
    assert (clip.fps, clip.crf, clip.label, clip.side_by_side, clip.grid) == (30, 18, True, False, None)
    assert job.datasets()[0][1].image_format == "png"


def test_outputs_may_give_seeds_and_schedules_inline(tmp_path):
    def inline(job):
        video(job)["seeds"] = "0-1,5"
        video(job)["schedule"] = {"kind": "sine", "frames": 4}
        video(job).pop("name")
    job = load_job(write_job(tmp_path, job_with(inline)), ZOO)
    name, clip = job.videos()[0]
    assert name == "video0" and job.seeds(clip.seeds) == (0, 1, 5) and job.schedule(clip.schedule).frames == 4
    assert JobSpec.model_validate(job.spec.model_dump(mode="json")) == job.spec  # no serializer warnings either


def set_in(path, value):
    def change(job):
        target = job
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def append_output(entry):
    return lambda job: job["outputs"].append(entry)


def drop(path):
    def change(job):
        target = job
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


CASES = [
    (set_in(["outputs", 0, "video", "fps"], "abc"), "outputs[0].video.fps: expected a positive integer, got 'abc'"),
    (set_in(["outputs", 0, "video", "fps"], 0), "outputs[0].video.fps: expected a positive integer, got 0"),
    (set_in(["outputs", 0, "video", "fps"], "30"), "outputs[0].video.fps: expected a positive integer, got '30'"),
    (set_in(["outputs", 0, "video", "crf"], 60), "outputs[0].video.crf: expected an integer from 0 (lossless) to 51, got 60"),
    (set_in(["outputs", 0, "video", "label"], "yes"), "outputs[0].video.label: expected true or false, got 'yes'"),
    (set_in(["outputs", 0, "video", "fsp"], 3), "outputs[0].video.fsp: unknown key; did you mean 'fps'?"),
    (set_in(["outputs", 0, "video", "zzz"], 3), "outputs[0].video.zzz: unknown key (allowed: name, directions, seeds, "
                                                "schedule, grid, cell_size, gutter, fps, crf, preset, label, side_by_side, camera, classes, class_layout)"),
    (set_in(["outputs", 0, "video", "preset"], "quick"), "outputs[0].video.preset: expected one of 'ultrafast', "
     "'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower' or 'veryslow', got 'quick'"),
    (set_in(["outputs", 1, "dataset", "png_compression"], 10),
     "outputs[1].dataset.png_compression: expected an integer from 0 (none) to 9 (smallest), got 10"),
    (set_in(["models", "gan", "precision"], "fp8"), "models.gan.precision: expected one of 'fp32', 'bf16' or 'fp16', got 'fp8'"),
    (set_in(["outputs", 0, "video", "grid"], [1, 2]), "outputs[0].video.grid: 1×2 cells cannot hold 4 seeds"),
    (set_in(["outputs", 0, "video", "grid"], [2, "x"]), "outputs[0].video.grid[1]: expected a positive integer, got 'x'"),
    (set_in(["outputs", 0, "video", "seeds"], "1-x"), "outputs[0].video.seeds: bad item '1-x': expected a non-negative number or 'a-b'"),
    (set_in(["outputs", 0, "video", "seeds"], "nope"), "outputs[0].video.seeds: unknown seed list 'nope' (defined: grid, pairs)"),
    (set_in(["outputs", 0, "video", "schedule"], "nope"), "outputs[0].video.schedule: unknown schedule 'nope' (defined: loop)"),
    (set_in(["outputs", 0, "video", "schedule"], 5), "outputs[0].video.schedule: expected a schedule name or a mapping with `kind`, got 5"),
    (set_in(["outputs", 0, "video", "schedule"], {"kind": "linear", "frames": "x"}),
     "outputs[0].video.schedule.frames: expected a positive integer up to 1,000,000, got 'x'"),
    (set_in(["outputs", 0, "video", "schedule"], {"kind": "linear", "frames": 3, "bogus": 1}),
     "outputs[0].video.schedule.bogus: unknown key (allowed: frames, start, stop, kind)"),
    (set_in(["outputs", 0, "video", "directions"], "bottom"), "outputs[0].video.directions: unknown direction set 'bottom' (defined: top)"),
    (drop(["outputs", 0, "video", "schedule"]), "outputs[0].video.schedule: missing required field"),
    (set_in(["outputs", 1, "dataset", "alphs"], [1]), "outputs[1].dataset.alphs: unknown key; did you mean 'alphas'?"),
    (set_in(["outputs", 1, "dataset", "alphas"], []), "outputs[1].dataset.alphas: expected at least 1 item(s)"),
    (set_in(["outputs", 1, "dataset", "alphas"], [1, "big"]), "outputs[1].dataset.alphas[1]: expected a number, got 'big'"),
    (set_in(["outputs", 1, "dataset", "test_fraction"], 1.5), "outputs[1].dataset.test_fraction: expected a number in [0, 1), got 1.5"),
    (set_in(["outputs", 1, "dataset", "image_format"], "gif"), "outputs[1].dataset.image_format: expected one of 'png' or 'jpg', got 'gif'"),
    (set_in(["outputs", 1, "dataset", "edit_prompt"], "{foo}"),
     "outputs[1].dataset.edit_prompt: unknown field {foo} in edit_prompt (available: direction, index, alpha), got '{foo}'"),
    (append_output({}), "outputs[2]: expected exactly one of 'video' or 'dataset'"),
    (append_output({"vidoe": {}}), "outputs[2].vidoe: unknown key; did you mean 'video'?"),
    (set_in(["outputs"], []), "outputs: expected at least 1 item(s)"),
    (set_in(["outputs"], "x"), "outputs: expected a list, got 'x'"),
    (drop(["outputs"]), "outputs: missing required field"),
    (set_in(["schedules", "loop", "frames"], 0), "schedules.loop.frames: expected a positive integer up to 1,000,000, got 0"),
    (set_in(["schedules", "loop", "kind"], "zigzag"), "schedules.loop.kind: expected one of 'linear', 'pingpong', 'sine', 'keyframes', got 'zigzag'"),
    (drop(["schedules", "loop", "kind"]), "schedules.loop: missing `kind` (one of 'linear', 'pingpong', 'sine', 'keyframes')"),
    (set_in(["schedules", "loop", "strat"], 1), "schedules.loop.strat: unknown key; did you mean 'start'?"),
    (set_in(["schedules", "k"], {"kind": "keyframes", "keys": [{"frame": 5, "alpha": 1}, {"frame": 2, "alpha": 0}]}),
     "schedules.k: keys must have increasing frames, got 5 then 2"),
    (set_in(["schedules", "k"], {"kind": "keyframes", "keys": [{"frame": 0, "alpha": 1, "easing": "bounce"}]}),
     "schedules.k.keys[0].easing: expected one of 'linear', 'ease-in', 'ease-out', 'ease-in-out' or 'hold', got 'bounce'"),
    (set_in(["schedules", "k"], {"kind": "keyframes", "frames": 2, "keys": [{"frame": 0, "alpha": 1}, {"frame": 4, "alpha": 0}]}),
     "schedules.k: frames (2) must be greater than the last key's frame (4)"),
    (set_in(["seeds", "grid"], "5-2"), "seeds.grid: bad range '5-2': expected 0 ≤ start ≤ stop"),
    (set_in(["seeds", "grid"], "1,1"), "seeds.grid: seed 1 is listed twice, got '1,1'"),
    (set_in(["seeds", "9lives"], 1), "seeds.9lives: expected a name of letters, digits, '_' and '-' that starts with a letter (at most 100), got '9lives'"),
    (set_in(["directions", "top", "model"], "gun"), "directions.top.model: unknown model 'gun' (defined: gan)"),
    (set_in(["directions", "top", "layers"], "a-b"), "directions.top.layers: bad item 'a-b': expected a non-negative number, 'a-b' or 'a-'"),
    (set_in(["directions", "top", "method"], "pca"), "directions.top.method: expected one of 'sefa' or 'file', got 'pca'"),
    (set_in(["directions", "top", "method"], "file"), "directions.top: method 'file' needs a `file`"),
    (set_in(["directions", "top", "file"], "d.npy"), "directions.top: `file` is only used with method: file"),
    (set_in(["directions", "top", "names"], {"x": "pose"}), "directions.top.names.x: expected an integer, got 'x'"),
    (set_in(["directions", "top", "names"], {0: "po se"}),
     "directions.top.names.0: expected a name of letters, digits, '_' and '-' that starts with a letter (at most 100), got 'po se'"),
    (set_in(["models", "gan", "checkpoint"], "zoo:nope"), "models.gan.checkpoint: unknown zoo model 'nope' (known: dcgan-digiface)"),
    (set_in(["models", "gan", "truncation_psi"], "high"), "models.gan.truncation_psi: expected a number, got 'high'"),
    (set_in(["models", "gan", "class_index"], -1), "models.gan.class_index: expected a class index (a non-negative integer) or a class name, got -1"),
    (set_in(["models"], {}), "models: expected at least 1 item(s)"),
    (set_in(["extra"], 1), "extra: unknown key (allowed: name, models, directions, seeds, schedules, outputs)"),
    (set_in(["name"], "my job"), "name: expected a name of letters, digits, '_' and '-' that starts with a letter (at most 100), got 'my job'"),
    (append_output({"video": {**TINY_JOB["outputs"][0]["video"]}}), "outputs: 2 video outputs are named 'clips'; give each a distinct `name`"),
    # sizes that cannot run are refused before anything is built (render/limits.py)
    (set_in(["seeds", "grid"], "0-4294967295"),
     "seeds.grid: 4,294,967,296 seeds or more; a seed list holds at most 1,000,000, got '0-4294967295'"),
    (set_in(["seeds", "grid"], ["0-999999", 1000000]), "seeds.grid: 1,000,001 seeds or more; a seed list holds at most 1,000,000"),
    (set_in(["schedules", "loop", "frames"], 10**12), "schedules.loop.frames: expected a positive integer up to 1,000,000, got 1000000000000"),
    (set_in(["schedules", "k"], {"kind": "keyframes", "keys": [{"frame": 10**12, "alpha": 1}]}),
     "schedules.k.keys[0].frame: expected a frame from 0 to 999,999, got 1000000000000"),
    (set_in(["outputs", 0, "video", "grid"], [100000, 100000]),
     "outputs[0].video: 100000×100000 cells of 32 px: frames of 3399998×3400022 px exceed H.264's largest side (16,880 px)"),
    (set_in(["outputs", 0, "video", "cell_size"], 1000000),
     "outputs[0].video: 2×2 cells of 1000000 px: frames of 2000002×2125002 px exceed H.264's largest side (16,880 px)"),
    (set_in(["outputs", 0, "video", "cell_size"], 4000),
     "outputs[0].video: 2×2 cells of 4000 px: frames of 8002×8502 px exceed H.264's largest frame (35,651,584 px)"),
    (set_in(["outputs", 1, "dataset", "image_size"], 100000),
     "outputs[1].dataset.image_size: expected a positive integer up to 9,459 (larger images are refused by readers as "
     "decompression bombs), got 100000"),
    (lambda job: job["outputs"][1]["dataset"].update(seeds="0-999999", alphas=list(range(10))),
     "outputs[1].dataset.seeds: 1,000,000 seeds × (1 + 10 α) are 11,000,000 images, more than one folder should hold (10,000,000)"),
    (set_in(["outputs", 1, "dataset", "alphas"], [1.5, -2, 1.5]), "outputs[1].dataset.alphas: α 1.5 is listed twice"),
    (set_in(["outputs", 1, "dataset", "alphas"], [0.0, -0.0]), "outputs[1].dataset.alphas: α -0.0 is listed twice"),
    (set_in(["outputs", 1, "dataset", "alphas"], [1.0e+300]),
     "outputs[1].dataset.alphas[0]: expected an α from -1000 to 1000 (directions have unit length; beyond that nothing of "
     "the original is left), got 1e+300"),
    (set_in(["outputs", 1, "dataset", "alphas"], ["1e300"]),
     "outputs[1].dataset.alphas[0]: expected a number, got '1e300' (YAML reads 1e300 as text; write 1.0e+300)"),
    (set_in(["schedules", "loop", "stop"], -1e6), "schedules.loop.stop: expected an α from -1000 to 1000 (directions have "
     "unit length; beyond that nothing of the original is left), got -1000000.0"),
    (set_in(["directions", "top", "names"], {0: "a" * 300}), "directions.top.names.0: expected a name of letters, digits, "
     f"'_' and '-' that starts with a letter (at most 100), got '{'a' * 300}'"),
]


@pytest.mark.parametrize("change, expected", CASES, ids=[expected.split(":")[0] + f"#{i}" for i, (_, expected) in enumerate(CASES)])
def test_each_mistake_is_reported_with_its_field_path(tmp_path, change, expected):
    assert error_for(tmp_path, job_with(change)) == expected


def test_a_missing_checkpoint_file_is_named(tmp_path):
    message = error_for(tmp_path, job_with(set_in(["models", "gan", "checkpoint"], "other.pt")))
    assert message == f"models.gan.checkpoint: file not found: {(tmp_path / 'other.pt').resolve()}"


def test_a_missing_direction_file_is_named(tmp_path):
    def change(job):
        job["directions"]["top"].update(method="file", file="mine.npy")
    assert error_for(tmp_path, job_with(change)) == f"directions.top.file: file not found: {(tmp_path / 'mine.npy').resolve()}"


@pytest.mark.parametrize("text, expected", [
    ("models: [1, 2", "line 1: expected ',' or ']', but got '<stream end>'"),
    ("models: {}\nmodels: {}\n", "line 2: duplicate key 'models'"),
    ("- a\n- b\n", "expected a mapping of sections (models, directions, outputs, …), got list"),
    ("", "expected a mapping of sections (models, directions, outputs, …), got NoneType"),
    ("x: !!python/object/apply:os.system ['true']", "line 1: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
])
def test_yaml_problems_are_reported_with_a_line_number(tmp_path, text, expected):
    assert error_for(tmp_path, text=text) == expected


@pytest.mark.parametrize("text", [
    # nine levels of ten aliases: 10**9 values once expanded, from a few hundred bytes
    "a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)) + "seeds: {grid: *a9}\n",
    "seeds: &s {grid: [*s]}\n",  # a recursive alias
])
def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path, text):
    assert error_for(tmp_path, text=text).startswith("line 1: the document expands to more than 1,000,000 values")


def test_deeply_nested_yaml_is_refused_without_a_traceback(tmp_path):
    text = "seeds: {grid: " + "[" * 20000 + "1" + "]" * 20000 + "}\n"
    assert error_for(tmp_path, text=text).endswith("nested more than 50 levels deep")


def test_a_missing_job_file_is_reported(tmp_path):
    with pytest.raises(SpecError, match="nothing.yaml: job file not found"):
        load_job(tmp_path / "nothing.yaml")


def test_only_the_first_of_several_mistakes_is_described_with_a_count(tmp_path):
    def two(job):
        video(job)["fps"] = 0
        dataset(job)["alphas"] = "x"
    assert error_for(tmp_path, job_with(two)) == "outputs[0].video.fps: expected a positive integer, got 0 (and 1 more)"


def test_schema_describes_the_job_for_editors():
    schema = job_schema()
    json.dumps(schema)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) == {"name", "models", "directions", "seeds", "schedules", "outputs"}
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"models", "directions", "outputs"}


@pytest.mark.parametrize("job_file", sorted((REPO / "jobs").glob("*.yaml")), ids=lambda p: p.name)
def test_example_jobs_are_valid(job_file):
    job = load_job(job_file, ZOO)
    assert job.videos() or job.datasets()


@pytest.mark.parametrize("file_name", ["...yaml", "bad name é.yaml", ".hidden.yaml", "9lives.yaml"])
def test_a_job_named_after_a_file_whose_stem_is_no_valid_name_is_refused(tmp_path, file_name):
    job = copy.deepcopy(TINY_JOB)
    del job["name"]
    path = write_job(tmp_path, job, name=file_name)
    with pytest.raises(SpecError, match=r"is not a name of letters.*; add `name: …` to the spec") as error:
        load_job(path)
    assert str(error.value).startswith(f"{path}: the job is named after its file")


def test_a_valid_file_stem_names_the_job(tmp_path):
    job = copy.deepcopy(TINY_JOB)
    del job["name"]
    assert load_job(write_job(tmp_path, job, name="my-job_2.yaml")).name == "my-job_2"
