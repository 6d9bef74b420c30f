"""Stream RGB frames into an H.264 MP4 that plays in browsers, QuickTime and slides.

Frames go to ffmpeg (the binary that ships in the imageio-ffmpeg wheel) through
a pipe as they are made, so a video of any length needs the memory of one
batch of frames. We run the process ourselves rather than through
`imageio_ffmpeg.write_frames` because that generator does not report ffmpeg's
exit status: a failed encode (disk full, killed encoder) would be renamed into
place as if it were finished.

Encoding choices and why:
- `yuv420p`: the only chroma layout every browser and QuickTime decode
  (libx264 would pick yuv444p for RGB input). It needs even frame sizes, which
  the caller guarantees; we never let ffmpeg rescale silently.
- `-movflags +faststart`: the index goes first, so a browser starts playing
  before the whole file has arrived.
- `-crf 18`: visually lossless for GAN faces at a modest size.
- bitexact flags and no metadata: the same frames give the same bytes.
- A fixed number of encoder threads and no threaded lookahead, so the bytes
  depend on the frames alone. x264 by default runs 1.5 threads per core
  (its output depends on the thread count, so on the machine) and a
  lookahead thread whose rate-control decisions depend on how many frames
  have arrived when it runs: on a busy machine the same frames gave
  different B-frame QPs, hence different bytes (issue 8). Sending the same
  frames in one burst or with 50 ms pauses reproduced it every time; with
  `sync-lookahead=0` the lookahead runs inside the encoding thread, at fixed
  points, and frame threads stay (they are deterministic).
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import imageio_ffmpeg
import numpy as np

from render import safe_fs
from render.errors import OutputError
from render.sinks.atomic import temporary_path

__all__ = ["VideoWriter", "ENCODER_THREADS"]

ENCODER_THREADS = 4  # enough to keep up with a GPU worker; the same on every machine


class VideoWriter:
    """Context manager: `write(frame)` uint8 [height, width, 3] frames; the MP4 appears at `path` on a clean exit."""

    def __init__(self, path: Path, width: int, height: int, fps: int, crf: int = 18, preset: str = "medium"):
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even frame sizes, got {width}×{height}")
        self.path = Path(path)
        self.width, self.height, self.fps, self.crf, self.preset = width, height, fps, crf, preset
        self.frames = 0

    def __enter__(self) -> "VideoWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = temporary_path(self.path)
        self._stderr = tempfile.TemporaryFile()
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}", "-r", str(self.fps), "-i", "-",
            "-an", "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf), "-pix_fmt", "yuv420p",
            "-threads", str(ENCODER_THREADS), "-x264-params", "sync-lookahead=0",
            "-movflags", "+faststart", "-fflags", "+bitexact", "-map_metadata", "-1",
            "-f", "mp4", str(self._temporary),
        ]
        # A session of its own: Ctrl-C reaches only us, and we stop ffmpeg in __exit__.
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=self._stderr, start_new_session=True)
        except BaseException:
            self._stderr.close()
            self._temporary.unlink(missing_ok=True)
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """Send one frame, [height, width, 3] uint8, to the encoder."""
        assert frame.shape == (self.height, self.width, 3) and frame.dtype == np.uint8, (frame.shape, frame.dtype)
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).data)
        except (BrokenPipeError, OSError):
            returncode = self._process.wait()
            raise OutputError(f"{self.path}: ffmpeg stopped while encoding: {self._ffmpeg_error(returncode)}") from None
        self.frames += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:  # also when a signal interrupts the commit: no ffmpeg left running, no temporary file left
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            with contextlib.suppress(OSError):  # frames still buffered for a dead encoder cannot be flushed
                self._process.stdin.close()
            self._stderr.close()
            self._temporary.unlink(missing_ok=True)  # already renamed after a commit

    def _commit(self) -> None:
        self._process.stdin.close()  # end of input: ffmpeg finishes the file
        returncode = self._process.wait()
        if returncode != 0:
            raise OutputError(f"{self.path}: ffmpeg failed (exit {returncode}): {self._ffmpeg_error(returncode)}")
        if self.frames == 0:
            raise OutputError(f"{self.path}: no frames were written")
        safe_fs.replace(self._temporary, self.path)

    def _ffmpeg_error(self, returncode: int) -> str:
        """Why ffmpeg failed, in one line: the signal that killed it, else its first error line (the cause;
        later lines are consequences, e.g. 'Nothing was written into output file' after a full disk)."""
        if returncode < 0:
            if -returncode == signal.SIGXFSZ:
                return "ffmpeg was killed by SIGXFSZ: the file size limit (ulimit -f) was reached"
            return f"ffmpeg was killed by signal {-returncode}"
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return re.sub(r"^\[[^]]*\] ", "", lines[0]) if lines else "no message"  # without "[out#0/mp4 @ 0x…] "
