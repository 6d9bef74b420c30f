"""The restricted unpickler: real snapshots load as inert records, hostile pickles are refused without side effects."""

import builtins
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from render.errors import CheckpointError
from render.models.registry import load_generator
from render.models.safe_pickle import EasyDict, PersistentRecord, load_pickle
from tests.checkpoints_stylegan2 import (
    MODULE_SRC_MARKER, FakePersistent, dump_nvidia, fake_nvidia_modules, stylegan2_weights, write_nvidia_pickle,
)

MARKER = "PWNED"


class Payload:
    """Pickles as a call `function(*args)`: what a hostile pickle does."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


@pytest.fixture(autouse=True)
def no_code_runs(monkeypatch, tmp_path):
    """Any exec/eval during a test is a failure; so is importing NVIDIA's modules.

    One genuine load first, so that modules torch imports lazily (the import
    system runs them with exec) are already imported.
    """
    load_generator(write_nvidia_pickle(tmp_path / "warm-up.pkl"))

    def refuse(*args, **kwargs):
        raise AssertionError("code was executed while loading a checkpoint")

    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(builtins, "eval", refuse)
    yield
    assert not {"torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"} & set(sys.modules)
    assert not Path(MARKER).exists() and not Path(MODULE_SRC_MARKER).exists()


def storage_blob(content) -> bytes:
    buffer = io.BytesIO()
    torch.save(content, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()


def call_pickle(module: str, name: str, *args: str) -> bytes:
    """Protocol 2: GLOBAL module.name, MARK, the args as BINUNICODE, TUPLE, REDUCE, STOP."""
    encoded = b"".join(b"X" + len(arg.encode()).to_bytes(4, "little") + arg.encode() for arg in args)
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"(" + encoded + b"tR."


def hostile_top_level(kind: str) -> bytes:
    if kind == "os.system":
        return pickle.dumps(Payload(os.system, f"touch {MARKER}"), protocol=4)
    if kind == "builtins.eval":
        return call_pickle("builtins", "eval", f"open({MARKER!r}, 'w')")
    if kind == "subprocess":
        return pickle.dumps(Payload(subprocess.call, ["touch", MARKER]), protocol=4)
    if kind == "builtins.getattr":
        return call_pickle("builtins", "getattr", "os", "system")
    if kind == "training class":
        # GLOBAL 'training.networks Generator', EMPTY_TUPLE, NEWOBJ, STOP: an official class by name.
        return b"\x80\x02ctraining.networks\nGenerator\n)\x81."
    if kind == "storage blob with code":
        return pickle.dumps({"G_ema": Payload(torch.storage._load_from_bytes, storage_blob(Payload(os.system, f"touch {MARKER}")))}, protocol=4)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess", "builtins.getattr", "training class", "storage blob with code"])
def test_refuses_without_side_effect_when_pickle_calls_code(tmp_path, kind):
    path = tmp_path / "evil.pkl"
    path.write_bytes(hostile_top_level(kind))
    with pytest.raises(CheckpointError) as error:
        load_generator(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "refused" in message


def persistent_pickle(tmp_path: Path, name: str, **options) -> Path:
    """A snapshot whose G_ema carries one hostile or malformed part."""
    with fake_nvidia_modules():
        if "attrs" in options:
            record = FakePersistent("Generator", attrs=options["attrs"])
        else:
            record = FakePersistent("Generator", version=options.get("version", 6), meta_type=options.get("meta_type", "class"))
        return dump_nvidia(tmp_path / name, {"G_ema": record})


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"attrs": {"resolution": Payload(os.system, f"touch {MARKER}")}}, "posix.system"),
        ({"attrs": {"sizes": np.array([1, "x"], dtype=object)}}, "numpy dtype"),
        ({"version": 5}, "version 5"),
        ({"meta_type": "function"}, "'function'"),
    ],
    ids=["os.system inside a state", "object-dtype array", "persistence version", "persistence type"],
)
def test_refuses_persistent_objects_when_state_or_meta_is_not_plain(tmp_path, options, fragment):
    path = persistent_pickle(tmp_path, "bad.pkl", **options)
    with pytest.raises(CheckpointError, match="refused") as error:
        load_generator(path)
    assert fragment.replace("posix", os.system.__module__) in str(error.value)


def test_refuses_persistent_ids_when_the_writer_used_them(tmp_path):
    class PersistentIdPickler(pickle.Pickler):
        def persistent_id(self, obj):
            return "external" if obj == "by-reference" else None

    buffer = io.BytesIO()
    PersistentIdPickler(buffer, protocol=4).dump({"G_ema": "by-reference"})
    path = tmp_path / "persid.pkl"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="persistent ids"):
        load_generator(path)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_reports_corruption_when_the_file_is_truncated(tmp_path, cut):
    data = write_nvidia_pickle(tmp_path / "whole.pkl").read_bytes()
    path = tmp_path / "truncated.pkl"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as error:
        load_generator(path)
    assert "\n" not in str(error.value)


def test_reads_a_snapshot_as_inert_records_when_it_is_genuine(tmp_path):
    weights = stylegan2_weights()
    path = write_nvidia_pickle(tmp_path / "snapshot.pkl", weights=weights)
    with open(path, "rb") as f:
        content = load_pickle(f)
    assert set(content) == {"training_set_kwargs", "G", "D", "G_ema", "augment_pipe"}
    g_ema = content["G_ema"]
    assert isinstance(g_ema, PersistentRecord) and g_ema.class_name == "Generator"
    assert len(g_ema.module_src_sha256) == 64
    assert isinstance(g_ema.init_kwargs["synthesis_kwargs"], EasyDict) and g_ema.init_kwargs["synthesis_kwargs"].architecture == "skip"
    fc0 = g_ema.children["mapping"].children["fc0"]
    assert type(fc0.attrs["weight_gain"]) is np.float64 and fc0.attrs["activation"] == "lrelu"
    state = g_ema.state_dict()
    assert set(state) == set(weights)
    for name, tensor in weights.items():
        assert torch.equal(state[name], tensor), name
    # The resnet skip's None bias, hook dicts and other private entries leave no trace.
    assert not any(key.startswith("_") for key in g_ema.children["synthesis"].attrs)


def test_refuses_a_tree_that_shares_children_when_walking_it_would_explode(tmp_path):
    with fake_nvidia_modules():
        level = FakePersistent("Layer")
        for _ in range(20):  # each level names the previous one twice: 2^20 paths, a 2 kB file
            level = FakePersistent("Layer", modules={"a": level, "b": level})
        path = dump_nvidia(tmp_path / "dag.pkl", {"G_ema": level})
    assert path.stat().st_size < 10_000
    with pytest.raises(CheckpointError, match="shared references expand"):
        load_generator(path)


def test_refuses_a_build_opcode_when_it_targets_a_record(tmp_path):
    class RecordWithBuild(FakePersistent):
        def __reduce__(self):
            return (*super().__reduce__(), {"children": {"loop": "anything"}})

    with fake_nvidia_modules():
        path = dump_nvidia(tmp_path / "build.pkl", {"G_ema": RecordWithBuild("Generator")})
    with pytest.raises(CheckpointError, match="modify a network record"):
        load_generator(path)


@pytest.mark.parametrize("dimension", [2**70, 2**62], ids=["beyond int64", "overflowing the byte count"])
def test_reports_one_line_when_an_array_declares_a_dimension_that_overflows(tmp_path, dimension):
    data = pickle.dumps({"a": np.zeros(3, dtype=np.float32)}, protocol=5)
    assert data[2:3] == b"\x95"  # FRAME: dropped, so that the edited pickle needs no new frame length
    data = data[:2] + data[11:]
    huge = b"\x8a" + bytes([9]) + dimension.to_bytes(9, "little")  # LONG1
    assert data.count(b"K\x03\x85") == 1
    path = tmp_path / "overflow.pkl"
    path.write_bytes(data.replace(b"K\x03\x85", huge + b"\x85"))
    with pytest.raises(CheckpointError, match="refused to load: numpy array data") as error:
        load_generator(path)
    assert "\n" not in str(error.value)
