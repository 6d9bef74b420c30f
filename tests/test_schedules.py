import numpy as np
import pytest

from render.schedules import EASINGS, Keyframe, Keyframes, LinearSweep, PingPong, SineLoop


@pytest.mark.parametrize("frames", [1, 2, 7, 90])
def test_every_schedule_has_its_frame_count(frames):
    for schedule in (LinearSweep(frames), PingPong(frames), SineLoop(frames),
                     Keyframes(frames, (Keyframe(0, -1.0), Keyframe(max(frames - 1, 1), 1.0)))):
        assert schedule.alphas().shape == (frames,)


def test_linear_sweep_hits_both_endpoints():
    alphas = LinearSweep(11, start=-3, stop=3).alphas()
    assert alphas[0] == -3 and alphas[-1] == 3
    np.testing.assert_allclose(np.diff(alphas), 0.6)


@pytest.mark.parametrize("schedule", [PingPong(30, -2, 5), PingPong(31, -2, 5), SineLoop(30, 4, 1), SineLoop(17, 2)])
def test_loops_are_seamless_when_played_on_repeat(schedule):
    """The frame after the last is frame 0 again, and no frame repeats it."""
    assert schedule.alpha(schedule.frames) == pytest.approx(schedule.alpha(0))
    assert schedule.alphas()[-1] != pytest.approx(schedule.alphas()[0])


def test_pingpong_reaches_both_ends_when_frames_are_even():
    alphas = PingPong(20, -3, 3).alphas()
    assert alphas.min() == -3 and alphas.max() == 3


def test_sine_loop_starts_at_the_original():
    alphas = SineLoop(40, amplitude=3).alphas()
    assert alphas[0] == 0 and alphas.max() == pytest.approx(3) and alphas.min() == pytest.approx(-3)


def test_keyframes_pass_through_every_key_with_each_easing():
    for easing in EASINGS:
        schedule = Keyframes(31, (Keyframe(0, 1.0), Keyframe(10, -2.0, easing), Keyframe(30, 4.0, easing)))
        alphas = schedule.alphas()
        assert (alphas[0], alphas[10], alphas[30]) == (1.0, -2.0, 4.0)


def test_keyframes_hold_before_the_first_and_after_the_last_key():
    schedule = Keyframes(10, (Keyframe(3, 1.0), Keyframe(5, 2.0, "linear")))
    assert schedule.alphas().tolist() == [1.0, 1.0, 1.0, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0, 2.0]


def test_hold_easing_jumps_at_the_key():
    schedule = Keyframes(4, (Keyframe(0, 0.0), Keyframe(3, 1.0, "hold")))
    assert schedule.alphas().tolist() == [0.0, 0.0, 0.0, 1.0]


def test_easings_map_zero_to_zero_and_one_to_one():
    for name, ease in EASINGS.items():
        assert ease(1.0) == 1.0, name
        assert ease(0.0) == 0.0, name
