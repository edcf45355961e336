"""Keyframe schedules: values computed by hand, Deforum examples, modes, text schedules, every error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from renderer.errors import PresetError
from renderer.schedule import (
    Interpolation,
    ScheduleContext,
    parse_schedule,
    parse_text_schedule,
)

PATH = "motion.zoom"


def values(value: float | str, n_frames: int = 101, fps: float = 24.0, **context: object) -> np.ndarray:
    """Evaluate a setting over ``n_frames`` frames."""
    return parse_schedule(value, PATH).evaluate(ScheduleContext(n_frames=n_frames, fps=fps, **context))


def error_message(value: object, n_frames: int = 101, fps: float = 24.0, **context: object) -> str:
    """The PresetError a setting raises at parse or evaluation time (it must be one line naming PATH)."""
    with pytest.raises(PresetError) as caught:
        parse_schedule(value, PATH).evaluate(ScheduleContext(n_frames=n_frames, fps=fps, **context))
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{PATH}: ")
    return message


# --- numeric schedules ---------------------------------------------------------------------------


def test_deforum_constant_keyframe() -> None:
    schedule = parse_schedule("0:(1.04)", PATH)
    assert schedule.is_constant
    np.testing.assert_allclose(values("0:(1.04)"), np.full(101, 1.04))


def test_deforum_triangle() -> None:
    result = values("0: (0), 50: (5), 100: (0)", n_frames=121)
    assert result.shape == (121,) and result.dtype == np.float64
    expected = {0: 0.0, 10: 1.0, 25: 2.5, 50: 5.0, 75: 2.5, 90: 1.0, 100: 0.0, 120: 0.0}
    for frame, value in expected.items():
        assert result[frame] == pytest.approx(value), frame


def test_deforum_sine_expression() -> None:
    t = np.arange(101)
    np.testing.assert_allclose(values("0:(10*sin(2*3.14*t/10))"), 10 * np.sin(2 * 3.14 * t / 10))


@pytest.mark.parametrize(
    "text",
    ["0:(-1), 10:(+2)", "0: ( -1 ), 10: ( +2 )", " 0 :(-1) ,10:( 2)", "0:(-1),\n  10:(+2),", "0:(- 1), 10:(2.0)"],
)
def test_whitespace_and_sign_variants(text: str) -> None:
    np.testing.assert_allclose(values(text, n_frames=21), np.concatenate([np.linspace(-1, 2, 11), np.full(10, 2.0)]))


@pytest.mark.parametrize("value", [1.5, "1.5", "(1.5)", " ( 1.5 ) ", "3/2", "0:(1.5)", "15e-1", "+1.5", 3, "3"])
def test_constants_and_bare_values(value: float | str) -> None:
    assert parse_schedule(value, PATH).is_constant
    expected = 3.0 if str(value) == "3" else 1.5
    np.testing.assert_array_equal(values(value, n_frames=5), np.full(5, expected))


def test_bare_expression_applies_to_every_frame() -> None:
    t = np.arange(50)
    np.testing.assert_allclose(values("1+0.1*sin(t)", n_frames=50), 1 + 0.1 * np.sin(t))
    assert not parse_schedule("1+0.1*sin(t)", PATH).is_constant


def test_interpolates_between_two_moving_expressions() -> None:
    # Between frame 0 (t) and frame 10 (2t): (1 - t/10) * t + (t/10) * 2t; after 10: 2t.
    t = np.arange(21.0)
    u = np.clip(t / 10, 0, 1)
    np.testing.assert_allclose(values("0:(t), 10:(2*t)", n_frames=21), (1 - u) * t + u * 2 * t)
    assert values("0:(t), 10:(2*t)", n_frames=21)[5] == pytest.approx(7.5)


def test_holds_before_first_and_after_last_keyframe() -> None:
    result = values("10:(1), 20:(3)", n_frames=31)
    np.testing.assert_allclose(result[:11], 1.0)
    assert result[15] == pytest.approx(2.0)
    np.testing.assert_allclose(result[20:], 3.0)


def test_keyframe_beyond_the_last_frame_still_interpolates() -> None:
    assert values("0:(0), 200:(1)", n_frames=101)[100] == pytest.approx(0.5)


@pytest.mark.parametrize("fps, key_frame", [(24.0, 60), (30.0, 75)])
def test_seconds_keys(fps: float, key_frame: int) -> None:
    result = values("0:(0), 2.5s:(1)", n_frames=100, fps=fps)
    assert result[key_frame] == 1.0 and result[key_frame - 1] < 1.0
    assert result[key_frame // 2] == pytest.approx((key_frame // 2) / key_frame)


@pytest.mark.parametrize("fps, bpm, key_frame", [(24.0, 120.0, 96), (30.0, 120.0, 120), (30.0, 128.0, 113)])
def test_beat_keys(fps: float, bpm: float, key_frame: int) -> None:
    # 8 beats at 128 bpm = 3.75 s = 112.5 frames at 30 fps, rounded half up to 113.
    result = values("0:(0), 8b:(1)", n_frames=150, fps=fps, bpm=bpm)
    assert result[key_frame] == 1.0 and result[key_frame - 1] < 1.0


def test_mixed_key_units() -> None:
    result = values("0:(0), 1s:(1), 2b:(2), 60:(3)", n_frames=61, fps=24.0, bpm=60.0)  # keys at 0, 24, 48, 60
    assert [result[f] for f in (12, 24, 36, 48, 54, 60)] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])


def test_step_interpolation() -> None:
    result = values("step| 0:(0), 10:(1), 20:(t)", n_frames=25)
    np.testing.assert_allclose(result, np.concatenate([np.zeros(10), np.ones(10), np.arange(20.0, 25.0)]))


def test_smooth_interpolation() -> None:
    result = values("smooth|0:(0), 10:(1)", n_frames=11)
    expected = 0.5 - 0.5 * np.cos(np.pi * np.arange(11) / 10)
    np.testing.assert_allclose(result, expected)
    assert result[5] == pytest.approx(0.5) and result[1] < 0.1  # eases in: slower than linear at first


def test_interpolation_argument_and_prefix_override() -> None:
    ctx = ScheduleContext(n_frames=11, fps=24.0)
    assert parse_schedule("0:(0), 10:(1)", PATH, Interpolation.STEP).evaluate(ctx)[5] == 0.0
    assert parse_schedule("linear| 0:(0), 10:(1)", PATH, Interpolation.STEP).evaluate(ctx)[5] == 0.5
    assert parse_schedule("SMOOTH | 0:(0), 10:(1)", PATH).interpolation is Interpolation.SMOOTH


def test_time_variables() -> None:
    ctx = {"n_frames": 49, "fps": 24.0}
    t = np.arange(49)
    np.testing.assert_allclose(values("s", **ctx), t / 24)
    np.testing.assert_allclose(values("fps + max_f", **ctx), np.full(49, 24 + 48))
    np.testing.assert_allclose(values("t/max_f", **ctx), t / 48)  # Deforum's max_f: last frame index
    np.testing.assert_allclose(values("pi + e", **ctx), np.full(49, math.pi + math.e))
    np.testing.assert_allclose(values("bpm/60", bpm=90.0, **ctx), np.full(49, 1.5))


def test_audio_variables() -> None:
    beat = np.linspace(0, 1, 10)
    result = values("1 + 0.5*beat + rms", n_frames=10, features={"beat": beat})
    np.testing.assert_allclose(result, 1 + 0.5 * beat)  # rms not given: reads as zeros
    assert parse_schedule("1 + 0.5*beat + rms", PATH).names == {"beat", "rms"}


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("min(t, 3)", [0, 1, 2, 3, 3, 3]),
        ("max(t, 2, 1)", [2, 2, 2, 3, 4, 5]),
        ("clip(t, 1, 4)", [1, 1, 2, 3, 4, 4]),
        ("round(t/2)", [0, 1, 1, 2, 2, 3]),  # half up
        ("floor(t/2) + ceil(t/4)", [0, 1, 2, 2, 3, 4]),
        ("where(t < 2, 10, -t)", [10, 10, -2, -3, -4, -5]),
        ("where((t > 1) & ~(t > 3) | (t == 5), 1, 0)", [0, 0, 1, 1, 0, 1]),
        ("1 < t <= 3", [0, 0, 1, 1, 0, 0]),
        ("t % 2 + 2**t / 32", [1 / 32, 1 + 1 / 16, 1 / 8, 1 + 1 / 4, 1 / 2, 2]),
        ("abs(t - 2) + sqrt(t*t) + arctan2(0, 1) + log10(10) + exp(0) + log(e)", [5, 5, 5, 7, 9, 11]),
        ("7/2", [3.5] * 6),  # true division even between whole numbers
    ],
)
def test_functions_and_operators(expression: str, expected: list[float]) -> None:
    np.testing.assert_allclose(values(expression, n_frames=6), expected)


def test_is_constant_and_names() -> None:
    assert parse_schedule("2*pi", PATH).is_constant
    assert parse_schedule("0:(1), 10:(1)", PATH).is_constant
    assert not parse_schedule("0:(1), 10:(2)", PATH).is_constant
    assert not parse_schedule("0:(1), 10:(t)", PATH).is_constant
    assert parse_schedule("0:(s), 10:(bass)", PATH).names == {"s", "bass"}


def test_expression_only_checked_where_it_is_used() -> None:
    # 1/t is inf at frame 0, but keyframe 2 only contributes from frame 1 on.
    assert values("0:(0), 10:(1/t)", n_frames=20)[19] == pytest.approx(1 / 19)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0:(1.0), 48:(1.04", 'keyframe 2 ("48:(1.04"): missing ")"'),
        ("0:(tt)", 'keyframe 1 ("0:(tt)"): unknown variable "tt" (known: t, s, fps, max_f'),
        ("abc:(1)", 'keyframe 1 ("abc:(1)"): bad key "abc"'),
        ("2.5:(1)", 'bad key "2.5"'),
        ("-5:(1)", 'bad key "-5"'),
        ("0:(1), 0:(2)", 'keyframe 2 ("0:(2)"): lands on frame 0, not after keyframe 1 (frame 0)'),
        ("0:(1), 20:(2), 10:(3)", 'keyframe 3 ("10:(3)"): lands on frame 10, not after keyframe 2 (frame 20)'),
        ("0:(1), 48:()", 'keyframe 2 ("48:()"): nothing between the parentheses'),
        ("", "empty expression"),
        ("0:(1),,48:(2)", "keyframe 2 is empty"),
        ("0:(1) 48:(2)", 'unexpected "48:(2)" after ")" (a missing comma?)'),
        ("0:1", 'expected "(" after ":"'),
        ("0:(1), 48", "keyframe 2 (\"48\"): expected KEY:(VALUE)"),
        ("0:(1/(t-5))", "value is inf at frame 5"),
        ("0:(1), 10:(log(t-15))", 'keyframe 2 ("10:(log(t-15))"): value is nan at frame 1'),
        ("1/0", "division by zero"),
        ("8b:(1)", "a key in beats needs a tempo"),
        ("0:(bpm)", 'uses "bpm" but the tempo is unknown'),
        ("smoth| 0:(1)", 'unknown interpolation "smoth" (expected linear, step, smooth)'),
        ("0:(1+*2)", "cannot read"),
        ("foo(t)", 'unknown function "foo"'),
        ("sin(t, 1)", "sin() takes 1 argument, got 2"),
        ("clip(t, 1)", "clip() takes 3 arguments, got 2"),
        ("min(t)", "min() takes 2 or more arguments, got 1"),
        ("where(t, 1, 2)", "where() needs a condition first"),
        ("t^2", "write a**b"),
        ("t > 1 and t < 3", "instead of and/or/not"),
        ("1e400", "value is inf at frame 0"),
        ("+".join(["t"] * 20000), "expression"),
        (float("nan"), "expected a finite number"),
        (True, "expected a number or a schedule"),
        (None, "expected a number or a schedule"),
    ],
)
def test_errors_name_the_key_keyframe_and_problem(value: object, expected: str) -> None:
    assert expected in error_message(value)


def test_seconds_keys_that_collide_at_this_frame_rate() -> None:
    # 1.01 s and 1.02 s are both frame 24 at 24 fps, but frames 30 and 31 at 30 fps.
    assert "lands on frame 24, not after keyframe 1 (frame 24)" in error_message("1.01s:(0), 1.02s:(1)", fps=24.0)
    assert values("1.01s:(0), 1.02s:(1)", fps=30.0)[31] == 1.0


@pytest.mark.parametrize(
    "attack",
    [
        "__import__('os')",
        "__import__('os').system('echo pwned')",
        "0:(__import__('os').system('echo pwned'))",
        "().__class__.__bases__[0].__subclasses__()",
        "t.__class__",
        "eval('1')",
        "exec('x=1')",
        "open('/etc/passwd')",
        "globals()",
        "lambda: 1",
        "[c for c in 'ab']",
        "'abc'",
        "sin(x=1)",
        "sin(*[1])",
        "(x := 1)",
        "t if t else 1",
        "{}",
    ],
)
def test_code_injection_is_rejected(attack: str) -> None:
    error_message(attack)


def test_context_checks_feature_arrays() -> None:
    with pytest.raises(ValueError, match="shape"):
        ScheduleContext(n_frames=10, fps=24.0, features={"beat": np.zeros(9)})
    with pytest.raises(ValueError, match="unknown audio feature"):
        ScheduleContext(n_frames=10, fps=24.0, features={"loudness": np.zeros(10)})


# --- text schedules ------------------------------------------------------------------------------

CTX24 = ScheduleContext(n_frames=1, fps=24.0)


@pytest.mark.parametrize("text", ["mixed4c", "mixed4d:97", "class:banana", "0.5*mixed4c + mixed5a:12", "layer:(3)"])
def test_plain_text_is_constant(text: str) -> None:
    schedule = parse_text_schedule(text, "dream.objective")
    assert schedule.is_constant and schedule.texts == (text,)
    assert schedule.weights_at(0, CTX24) == [(text, 1.0)]
    assert schedule.weights_at(500, CTX24) == [(text, 1.0)]


def test_text_cross_fade() -> None:
    schedule = parse_text_schedule("0:(mixed4c), 4s:(mixed4c), 6s:(mixed5a)", "dream.objective")
    assert schedule.texts == ("mixed4c", "mixed5a")
    assert schedule.weights_at(0, CTX24) == [("mixed4c", 1.0)]
    assert schedule.weights_at(50, CTX24) == [("mixed4c", 1.0)]  # same text on both sides: merged
    assert schedule.weights_at(96, CTX24) == [("mixed4c", 1.0)]
    assert schedule.weights_at(120, CTX24) == [("mixed4c", pytest.approx(0.5)), ("mixed5a", pytest.approx(0.5))]
    weights = dict(schedule.weights_at(108, CTX24))  # a quarter of the way from frame 96 to 144
    assert weights["mixed4c"] == pytest.approx(0.75) and sum(weights.values()) == pytest.approx(1.0)
    assert schedule.weights_at(144, CTX24) == [("mixed5a", 1.0)]
    assert schedule.weights_at(1000, CTX24) == [("mixed5a", 1.0)]


def test_text_keyframes_with_colons_stars_and_parentheses() -> None:
    schedule = parse_text_schedule("step| 0:(mixed4d:97*2), 8b:(0.5*(class:banana + mixed5a)), 12:(a, b)", "o")
    assert schedule.texts == ("mixed4d:97*2", "0.5*(class:banana + mixed5a)", "a, b")
    ctx = ScheduleContext(n_frames=1, fps=2.0, bpm=120.0)  # 8 beats = 4 s = frame 8
    assert schedule.weights_at(7, ctx) == [("mixed4d:97*2", 1.0)]
    assert schedule.weights_at(8, ctx) == [("0.5*(class:banana + mixed5a)", 1.0)]
    assert schedule.weights_at(12, ctx) == [("a, b", 1.0)]


def test_text_smooth_fade() -> None:
    schedule = parse_text_schedule("0:(a), 10:(b)", "o", Interpolation.SMOOTH)
    a, b = schedule.weights_at(2, CTX24)
    assert b == ("b", pytest.approx(0.5 - 0.5 * math.cos(math.pi * 0.2)))


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0:(mixed4c), 4s:(mixed5a", 'keyframe 2 ("4s:(mixed5a"): missing ")"'),
        ("0:(a), abc:(b)", 'keyframe 2 ("abc:(b)"): bad key "abc"'),
        ("0:(a), 10:()", "nothing between the parentheses"),
        ("0:(a), 10:(b), 5:(c)", "lands on frame 5, not after keyframe 2 (frame 10)"),
        ("0:(a), 8b:(b)", "a key in beats needs a tempo"),
        ("smoth| 0:(a)", 'unknown interpolation "smoth"'),
        ("   ", "empty text"),
        (3, "expected text"),
    ],
)
def test_text_errors(value: object, expected: str) -> None:
    with pytest.raises(PresetError) as caught:
        parse_text_schedule(value, "dream.objective").weights_at(0, CTX24)
    assert str(caught.value).startswith("dream.objective: ") and expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_text_keys_out_of_order_only_at_some_frame_rates() -> None:
    schedule = parse_text_schedule("0:(a), 2s:(b), 40:(c)", "o")
    # At 15 fps 2s is frame 30, before 40: fine. At 24 fps it is frame 48, after 40.
    assert schedule.weights_at(34, ScheduleContext(n_frames=1, fps=15.0)) == [
        ("b", pytest.approx(0.6)),
        ("c", pytest.approx(0.4)),
    ]
    with pytest.raises(PresetError, match="lands on frame 40, not after keyframe 2 \\(frame 48\\)"):
        schedule.weights_at(0, CTX24)
