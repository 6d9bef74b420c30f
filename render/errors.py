"""The errors sefa-render raises for bad input.

Everything below `cli.py` raises one of these with a message that names what is
wrong and where (file, field, value); `cli.py` prints that one line and exits 2.
Anything that is not a `RenderError` is a bug in sefa-render and keeps its
traceback.
"""

__all__ = ["RenderError", "SpecError", "CheckpointError", "OutputError", "OutputLost", "WriteFailed", "ZooError",
           "NonFiniteOutputError", "RenderWarning"]


class RenderError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class SpecError(RenderError):
    """A job spec (or a command-line value standing in for one) is invalid.

    Raised with the file and the field path, e.g.
    `jobs/x.yaml: outputs[1].video.fps: expected a positive integer, got 'abc'`.
    """


class CheckpointError(RenderError):
    """A checkpoint cannot be read safely, is of an unknown format, or does not
    match the architecture its content implies (missing or mis-shaped tensor)."""


class OutputError(RenderError):
    """An output location cannot be written (not a directory, no permission, a link)."""


class OutputLost(OutputError):
    """The job folder was deleted during a run: the run fails (exit code 1), nothing more is written."""


class WriteFailed(OutputError):
    """A file could not be written for lack of room (disk full, file size limit): a failure like a
    failed unit, not bad input; the run goes on and reports it."""


class ZooError(RenderError):
    """A zoo model cannot be fetched (offline, unknown name, hash mismatch)."""


class NonFiniteOutputError(RenderError):
    """The generator produced NaN or infinite pixels (an α too large for a
    direction, or a broken checkpoint): the unit fails instead of writing black images."""


class RenderWarning(UserWarning):
    """Something was wrong but has been dealt with (a bad cache entry recomputed,
    unverifiable journal lines rendered again); `cli.py` prints it as one line."""
