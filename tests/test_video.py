"""The MP4 sink, read back two independent ways: ffmpeg's frame count and a full decode."""

import os
import resource
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from render.errors import OutputError
from render.sinks.video import VideoWriter

REPO = Path(__file__).resolve().parents[1]


def frames_of(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """A bar sweeping across the frame: easy to compare after lossy coding."""
    frames = []
    for index in range(count):
        frame = np.full((height, width, 3), 40, np.uint8)
        left = (index * 3) % (width - 8)
        frame[:, left:left + 8] = (250, 200, 30)
        frames.append(frame)
    return frames


def decode(path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return meta, [np.frombuffer(data, np.uint8).reshape(height, width, 3) for data in reader]


def write(path, frames, fps=30, **options):
    height, width = frames[0].shape[:2]
    with VideoWriter(path, width, height, fps, **options) as writer:
        for frame in frames:
            writer.write(frame)
    return writer


@pytest.mark.parametrize("count", [1, 2, 15, 16, 17])
def test_video_has_every_frame_when_read_back(tmp_path, count):
    frames = frames_of(count)
    writer = write(tmp_path / "v.mp4", frames)
    assert writer.frames == count
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "v.mp4"))[0] == count
    meta, decoded = decode(tmp_path / "v.mp4")
    assert len(decoded) == count and meta["size"] == (64, 48) and meta["fps"] == 30
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    for original, back in zip(frames, decoded):
        assert np.abs(original.astype(int) - back.astype(int)).mean() < 4  # crf 18 on flat colours


def test_video_index_comes_first_so_browsers_can_stream_it(tmp_path):
    data = write(tmp_path / "v.mp4", frames_of(5)) and (tmp_path / "v.mp4").read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


def test_video_bytes_are_the_same_when_frames_are_the_same(tmp_path):
    write(tmp_path / "a.mp4", frames_of(12))
    write(tmp_path / "b.mp4", frames_of(12))
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_no_file_and_no_encoder_remain_when_rendering_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "v.mp4", 64, 48, 30) as writer:
            writer.write(frames_of(1)[0])
            raise RuntimeError("generator crashed")
    assert list(tmp_path.iterdir()) == []
    assert writer._process.poll() is not None


def test_an_empty_video_is_an_error_and_leaves_no_file(tmp_path):
    with pytest.raises(OutputError, match="no frames were written"):
        with VideoWriter(tmp_path / "v.mp4", 64, 48, 30):
            pass
    assert list(tmp_path.iterdir()) == []


def test_the_previous_video_survives_a_failed_rewrite(tmp_path):
    write(tmp_path / "v.mp4", frames_of(3))
    before = (tmp_path / "v.mp4").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(tmp_path / "v.mp4", 64, 48, 30) as writer:
            writer.write(frames_of(1)[0])
            raise KeyboardInterrupt
    assert (tmp_path / "v.mp4").read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["v.mp4"]


def test_odd_frame_sizes_are_refused():
    with pytest.raises(ValueError, match="even frame sizes"):
        VideoWriter("v.mp4", 63, 48, 30)


def test_ffmpeg_failure_is_reported_in_one_line(tmp_path):
    with pytest.raises(OutputError, match="ffmpeg (failed|stopped)"):
        write(tmp_path / "v.mp4", frames_of(2), preset="no-such-preset")
    assert list(tmp_path.iterdir()) == []


def test_a_file_size_limit_is_reported_in_one_line_and_leaves_no_file(tmp_path):
    """`ulimit -f`: ffmpeg dies of SIGXFSZ (Python ignores the signal, so only the encoder dies)."""
    script = ("import numpy as np; from render.errors import OutputError; from render.sinks.video import VideoWriter\n"
              "frames = np.random.default_rng(0).integers(0, 256, (30, 128, 128, 3), dtype=np.uint8)\n"
              "try:\n"
              "    with VideoWriter('v.mp4', 128, 128, 30, crf=0, preset='ultrafast') as writer:\n"
              "        [writer.write(frame) for frame in frames]\n"
              "except OutputError as error:\n"
              "    print(error)\n")
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, resource.RLIM_INFINITY))  # noqa: E731
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, preexec_fn=limit, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stdout.endswith("ffmpeg was killed by SIGXFSZ: the file size limit (ulimit -f) was reached\n")
    assert result.stdout.count("\n") == 1 and result.stderr == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to compare with one")
def test_video_bytes_are_the_same_whatever_cores_the_encoder_may_use(tmp_path):
    """x264's automatic thread count follows the cores a process may use, and its output follows the thread count."""
    frames = frames_of(24, height=256)  # x264 uses fewer threads than macroblock rows
    write(tmp_path / "all.mp4", frames)
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # this thread only; ffmpeg inherits it
    try:
        write(tmp_path / "one.mp4", frames)
    finally:
        os.sched_setaffinity(0, cores)
    assert (tmp_path / "one.mp4").read_bytes() == (tmp_path / "all.mp4").read_bytes()
