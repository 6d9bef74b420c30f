"""Bounded loading: tiny hostile pickles (issue 17 §1) are refused before anything is built.

No timers: each case would hang or exhaust memory without the scan, so finishing
at all is the check. Each error must be one short line.
"""

import io
import pickle
import struct
import zipfile

import pytest
import torch

from render.cli import main
from render.errors import CheckpointError
from render.models.checkpoint import read_checkpoint
from render.models.pickle_scan import MAX_DEPTH, UnsafePickleError, scan
from tests.checkpoints import write_dcgan
from tests.checkpoints_stylegan2 import FakePersistent, dump_nvidia, fake_nvidia_modules

# The issue's reproductions, byte for byte: DUP + TUPLE2 forty times, a 2⁴⁰-leaf tuple in ~100 bytes.
DAG_IN_PERSISTENCE_META = (b"\x80\x02ctorch_utils.persistence\n_reconstruct_persistent_obj\n(}X\x04\x00\x00\x00type]"
                           + b"2\x86" * 40 + b"sX\x07\x00\x00\x00versionK\x06stR.")
DAG_AS_DICT_KEY = b"\x80\x02}K\x01" + b"2\x86" * 40 + b"K\x01s."


def memo_dag(depth: int) -> bytes:
    """A 2^depth tuple DAG through the memo (BINGET i, TUPLE2, BINPUT i+1): torch's weights_only unpickler accepts these opcodes."""
    ops = b"K\x01q\x00"
    for index in range(depth):
        ops += b"h" + bytes([index]) + b"\x86q" + bytes([index + 1])
    return ops


def with_data_pkl(template: bytes, data_pkl: bytes) -> bytes:
    """A torch zip archive like `template` whose data.pkl is replaced."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(template)) as source, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            target.writestr(info, data_pkl if info.filename.endswith("/data.pkl") else source.read(info))
    return out.getvalue()


def assert_short_refusal(path, fragment: str) -> str:
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert "\n" not in message and len(message) < len(str(path)) + 200, message
    assert fragment in message, message
    return message


@pytest.mark.parametrize("content, fragment", [
    (DAG_IN_PERSISTENCE_META, "shared references expand"),
    (DAG_AS_DICT_KEY, "shared references expand"),
    (b"\x80\x02}" + memo_dag(40) + b"K\x01s.", "shared references expand"),
    (b"\x80\x02" + b"]" * (MAX_DEPTH + 5) + b"a" * (MAX_DEPTH + 4) + b".", f"deep (at most {MAX_DEPTH})"),
    (b"\x80\x02]q\x00h\x00a.", "contains itself"),
    # A key of 20 000 elements hashed once is cheap, but it shows keys are bounded on their own.
    (b"\x80\x02}(" + b"K\x01" * 20_000 + b"tK\x01s.", "dict key or set element"),
    # LONG_BINPUT 2²⁷: the C unpickler would fill a 2 GiB memo array; 2³²−1 raised MemoryError.
    (b"\x80\x02Nr\x00\x00\x00\x08.", "memoizes at index 134,217,728"),
    (b"\x80\x02Nr\xff\xff\xff\xff.", "memoizes at index 4,294,967,295"),
], ids=["issue DAG in persistence meta", "issue DAG as dict key", "memo DAG as dict key", "deep nesting", "cycle", "huge key",
        "memo index 2^27", "memo index 2^32-1"])
def test_refuses_quickly_when_a_small_pickle_would_build_too_much(tmp_path, content, fragment):
    path = tmp_path / "hostile.pkl"
    path.write_bytes(content)
    assert_short_refusal(path, fragment)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_refuses_a_torch_file_when_its_pickle_is_a_dag(tmp_path, legacy):
    # torch's weights_only unpickler has no DUP but builds memo DAGs and hashes them as keys.
    path = write_dcgan(tmp_path / "gan.pt", legacy_format=legacy)
    hostile = b"\x80\x02}" + memo_dag(40) + b"K\x01s."
    if legacy:
        stream = io.BytesIO(path.read_bytes())
        for _ in range(3):  # magic number, protocol, sys_info
            pickle.load(stream)
        path.write_bytes(stream.getvalue()[: stream.tell()] + hostile + pickle.dumps([], protocol=2))
    else:
        path.write_bytes(with_data_pkl(path.read_bytes(), hostile))
    assert_short_refusal(path, "shared references expand")


def test_refuses_a_storage_blob_inside_a_network_pickle_when_it_is_a_dag(tmp_path):
    blob = io.BytesIO()
    for value in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001}):
        pickle.dump(value, blob, protocol=2)
    blob.write(b"\x80\x02}" + memo_dag(40) + b"K\x01s.")

    class Storage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (blob.getvalue(),))

    with fake_nvidia_modules():
        path = dump_nvidia(tmp_path / "blob.pkl", {"G_ema": FakePersistent("Generator", params={"w": None}), "s": Storage()})
    assert_short_refusal(path, "shared references expand")


@pytest.mark.parametrize("content", [
    b"\x80\x04\x8e" + struct.pack("<Q", 1 << 60) + b"abc",   # BINBYTES8 of 2⁶⁰ bytes: refused by the scan
    b"\x80\x04\x95" + struct.pack("<Q", 1 << 33) + b"N.",    # FRAME of 8 GiB: the scan skips frames, the unpickler reads them
], ids=["BINBYTES8", "FRAME"])
def test_reports_truncation_without_allocating_when_a_length_field_is_huge(tmp_path, content):
    path = tmp_path / "huge-length.pkl"
    path.write_bytes(content)
    assert_short_refusal(path, "corrupt or truncated")


def test_quotes_untrusted_values_in_bounded_form_when_refusing_them(tmp_path):
    with fake_nvidia_modules():
        path = dump_nvidia(tmp_path / "long.pkl", {"G_ema": FakePersistent("Generator", meta_type="x" * 1_000_000)})
    assert "xxx...xxx" in assert_short_refusal(path, "persistent object type 'xxx")


def test_inspect_exits_2_with_one_line_when_the_pickle_is_the_issue_reproduction(tmp_path, capsys):
    path = tmp_path / "dag.pkl"
    path.write_bytes(DAG_IN_PERSISTENCE_META)
    assert main(["inspect", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "shared references expand" in error and len(error) < 300


def test_accepts_a_pickle_that_shares_values_within_its_size_budget():
    # A memoized string referenced 1000 times, as state-dict keys are: expands 10× at most.
    data = pickle.dumps([["weight"] * 1000], protocol=4)
    scan(io.BytesIO(data), len(data))
    with pytest.raises(UnsafePickleError):
        scan(io.BytesIO(b"\x80\x02" + memo_dag(40) + b"."), 100)
