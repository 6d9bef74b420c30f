"""α schedules: how far along a direction each frame of a video goes.

Each schedule is a frozen dataclass with a frame count and `alpha(frame)`;
`alphas()` gives them all as an array. Pure functions, no I/O.

Loops (`PingPong`, `SineLoop`) are periodic in `frames`: frame `frames` would
equal frame 0, so it is not rendered and the video loops without a stutter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

__all__ = ["EASINGS", "LinearSweep", "PingPong", "SineLoop", "Keyframe", "Keyframes", "Schedule"]


def _ease_in_out(t: float) -> float:
    """Cubic ease-in-out: zero velocity at both ends."""
    return 4 * t**3 if t < 0.5 else 1 - (-2 * t + 2) ** 3 / 2


EASINGS: dict[str, Callable[[float], float]] = {
    "linear": lambda t: t,
    "ease-in": lambda t: t**3,
    "ease-out": lambda t: 1 - (1 - t) ** 3,
    "ease-in-out": _ease_in_out,
    "hold": lambda t: 1.0 if t >= 1 else 0.0,  # keep the previous key's α until this key's frame
}


@dataclass(frozen=True)
class _Schedule:
    frames: int

    def alpha(self, frame: int) -> float:
        raise NotImplementedError

    def alphas(self) -> np.ndarray:
        """α for every frame, [frames] float64."""
        return np.array([self.alpha(frame) for frame in range(self.frames)], dtype=np.float64)


@dataclass(frozen=True)
class LinearSweep(_Schedule):
    """From `start` to `stop`, both included.

    >>> LinearSweep(frames=5, start=-2, stop=2).alphas().tolist()
    [-2.0, -1.0, 0.0, 1.0, 2.0]
    """

    start: float = -3.0
    stop: float = 3.0

    def alpha(self, frame: int) -> float:
        if self.frames == 1:
            return self.start
        return self.start + (self.stop - self.start) * frame / (self.frames - 1)


@dataclass(frozen=True)
class PingPong(_Schedule):
    """`start` → `stop` → back towards `start`, a seamless loop.

    >>> PingPong(frames=4, start=-1, stop=1).alphas().tolist()
    [-1.0, 0.0, 1.0, 0.0]
    """

    start: float = -3.0
    stop: float = 3.0

    def alpha(self, frame: int) -> float:
        phase = 2 * (frame % self.frames) / self.frames  # 0 … 2 over one loop
        t = phase if phase <= 1 else 2 - phase
        return self.start + (self.stop - self.start) * t


@dataclass(frozen=True)
class SineLoop(_Schedule):
    """`center + amplitude·sin(2π·frame/frames)`: starts at the original, a seamless loop.

    >>> [round(a, 6) for a in SineLoop(frames=4, amplitude=2).alphas().tolist()]
    [0.0, 2.0, 0.0, -2.0]
    """

    amplitude: float = 3.0
    center: float = 0.0

    def alpha(self, frame: int) -> float:
        return self.center + self.amplitude * math.sin(2 * math.pi * frame / self.frames)


@dataclass(frozen=True)
class Keyframe:
    frame: int
    alpha: float
    easing: str = "ease-in-out"  # how α arrives here from the previous key (a name in EASINGS)


@dataclass(frozen=True)
class Keyframes(_Schedule):
    """α through keyframes, eased per segment; held before the first and after the last.

    >>> Keyframes(frames=5, keys=(Keyframe(0, 0.0), Keyframe(4, 4.0, "linear"))).alphas().tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0]
    """

    keys: tuple[Keyframe, ...] = ()

    def __post_init__(self) -> None:
        assert self.keys, "Keyframes needs at least one key"
        assert all(a.frame < b.frame for a, b in zip(self.keys, self.keys[1:])), "keys must be in frame order"

    def alpha(self, frame: int) -> float:
        if frame <= self.keys[0].frame:
            return self.keys[0].alpha
        for previous, key in zip(self.keys, self.keys[1:]):
            if frame <= key.frame:
                t = (frame - previous.frame) / (key.frame - previous.frame)
                return previous.alpha + (key.alpha - previous.alpha) * EASINGS[key.easing](t)
        return self.keys[-1].alpha


Schedule = Union[LinearSweep, PingPong, SineLoop, Keyframes]
