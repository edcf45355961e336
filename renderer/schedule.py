"""Keyframed parameter schedules in the Deforum syntax, evaluated for every frame at once.

A numeric setting is a constant (``1.04``) or a schedule string::

    "0:(1.0), 48:(1.04), 96:(1.0 + 0.02*sin(2*pi*t/48))"   keyframes KEY:(EXPRESSION)
    "1 + 0.1*sin(t)"                                        one expression for every frame
    "smooth| 0:(1), 2s:(2), 8b:(1)"                          interpolation prefix, keys in s / beats

Keys are frames (``48``), seconds (``2.5s``) or beats of the tempo (``8b``); seconds and beats are
rounded to the nearest frame, so a keyframe's value is reached exactly on some frame.

Semantics: every keyframe's expression is evaluated at every frame (``t`` is the frame index).
Between keyframes ``a`` and ``b`` the value blends ``expr_a(t)`` into ``expr_b(t)`` with weight
``u`` going from 0 at ``a`` to 1 at ``b``: linearly (``linear``, the default), not at all until ``b``
(``step``: hold ``expr_a``), or with a cosine ease (``smooth``). Before the first keyframe the first
expression holds, after the last the last one. The interpolation is chosen by the caller's
``interpolation`` argument, or per string by a ``MODE|`` prefix before the keyframes, which wins.

Expressions are parsed with Python's :mod:`ast` (parsing runs nothing), checked against a whitelist
of numbers, variables (:data:`VARIABLES`), operators and functions (:data:`FUNCTIONS`), rewritten
into plain numexpr syntax (``min``/``max``/``clip``/``round`` become ``where``/``floor``) and
evaluated by numexpr over all frames. Nothing a user types reaches Python's ``eval``.

Non-numeric settings (a dream objective that changes over time) use :func:`parse_text_schedule`:
the same keys and modes, and a cross-fade between consecutive texts.
"""

from __future__ import annotations

import ast
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

import numexpr
import numpy as np

from renderer.audio import FEATURE_NAMES
from renderer.errors import PresetError

#: Variables an expression may use: frame index, seconds, frame rate, last frame index, tempo,
#: and the per-frame audio features (0..1; zeros when there is no soundtrack).
VARIABLES: tuple[str, ...] = ("t", "s", "fps", "max_f", "bpm", *FEATURE_NAMES)
#: Named constants, written into the expression as numbers (so ``2*pi`` is a constant schedule).
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

_ONE_ARGUMENT = ["sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh"]
_ONE_ARGUMENT += ["exp", "log", "log10", "sqrt", "abs", "floor", "ceil", "round"]
# Allowed functions with (fewest, most) arguments; None = no limit.
_ARITY: dict[str, tuple[int, int | None]] = {
    **dict.fromkeys(_ONE_ARGUMENT, (1, 1)),
    "arctan2": (2, 2),
    "where": (3, 3),
    "min": (2, None),
    "max": (2, None),
    "clip": (3, 3),
}
# Conveniences that numexpr lacks (or has only since 2.13), rewritten into native calls by _desugar.
_SUGAR = frozenset({"min", "max", "clip", "round"})
#: Functions an expression may call.
FUNCTIONS: tuple[str, ...] = tuple(sorted(_ARITY))

_BINARY_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.Pow, ast.BitAnd, ast.BitOr)
_UNARY_OPERATORS = (ast.UAdd, ast.USub, ast.Invert)
_COMPARISONS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)

# A keyframe key: whole frames, or seconds / beats that may have a fraction (checked in _parse_key).
_AMOUNT = r"\d+|\d*\.\d+|\d+\."
_KEY = re.compile(rf"(?P<amount>{_AMOUNT})(?P<unit>[sb]?)")
#: What to do when a schedule needs a tempo that is not known.
TEMPO_HINT = "give the tempo with --bpm N (or audio.bpm in the preset), or a soundtrack with a steady beat"
_KEY_HINT = "expected a frame number like 48, seconds like 2.5s or beats like 8b"
# The start of a keyframe, KEY:( . Text is keyframed only if it starts so: "mixed4d:97" does not.
_KEYFRAME_START = rf"\s*(?:{_AMOUNT})[sb]?\s*:\s*\("
_KEYFRAMED_TEXT = re.compile(_KEYFRAME_START)
# An interpolation prefix: a word and "|" right before the first keyframe.
_MODE_PREFIX = re.compile(rf"\s*(?P<mode>[A-Za-z_]\w*)\s*\|(?={_KEYFRAME_START})")


class Interpolation(Enum):
    """How a schedule moves from one keyframe's value to the next."""

    LINEAR = "linear"  # straight line
    STEP = "step"  # hold each keyframe's expression until the next keyframe
    SMOOTH = "smooth"  # cosine ease in and out: no velocity jump at keyframes

    def ease(self, u: np.ndarray) -> np.ndarray:
        """Map linear progress ``u`` in 0..1 between two keyframes to this mode's blend weight."""
        if self is Interpolation.STEP:
            return np.zeros_like(u)
        if self is Interpolation.SMOOTH:
            return 0.5 - 0.5 * np.cos(np.pi * u)
        return u


class KeyUnit(Enum):
    """What a keyframe key counts."""

    FRAME = ""
    SECOND = "s"
    BEAT = "b"


@dataclass(frozen=True)
class Key:
    """A keyframe position as typed: ``amount`` frames, seconds or beats."""

    amount: float
    unit: KeyUnit

    def to_frame(self, fps: float, bpm: float | None) -> int:
        """Frame index of this key (seconds and beats rounded half up). ``bpm`` is needed for beats."""
        if self.unit is KeyUnit.FRAME:
            return int(self.amount)
        seconds = self.amount if self.unit is KeyUnit.SECOND else self.amount * 60.0 / bpm
        return math.floor(seconds * fps + 0.5)


@dataclass(frozen=True)
class Keyframe:
    """One ``KEY:(BODY)`` entry (or a whole unkeyed string, at key 0).

    Attributes:
        label: how error messages name it, e.g. ``keyframe 2 ("48:(1.04)")``.
        key: where it sits.
        body: the text between the parentheses, stripped.
    """

    label: str
    key: Key
    body: str


@dataclass(frozen=True)
class Expression:
    """A validated expression.

    Attributes:
        code: numexpr source, only whitelisted names, functions and float literals.
        names: the variables it reads.
        constant: its value when it reads no variables (computed once at parse time), else None.
    """

    code: str
    names: frozenset[str]
    constant: float | None


@dataclass(frozen=True)
class ScheduleContext:
    """What a schedule needs to know about the render.

    Attributes:
        n_frames: frames in the render (>= 1).
        fps: frames per second (> 0).
        bpm: the tempo in beats per minute, or None if unknown (then beat keys and ``bpm`` fail).
        features: per-frame audio features by name (a subset of ``FEATURE_NAMES``), each shape
            (n_frames,), 0..1. Missing ones read as zeros.
    """

    n_frames: int
    fps: float
    bpm: float | None = None
    features: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.fps <= 0 or (self.bpm is not None and self.bpm <= 0):
            raise ValueError(
                f"need n_frames >= 1, fps > 0, bpm > 0 or None; got {self.n_frames}, {self.fps}, {self.bpm}"
            )
        for name, values in self.features.items():
            if name not in FEATURE_NAMES:
                raise ValueError(f"unknown audio feature {name!r} (known: {', '.join(FEATURE_NAMES)})")
            if np.shape(values) != (self.n_frames,):
                raise ValueError(f"feature {name!r} has shape {np.shape(values)}, expected ({self.n_frames},)")

    def variables(self) -> dict[str, np.ndarray | float]:
        """Values of :data:`VARIABLES`: arrays of shape (n_frames,) float64, or scalars.

        ``t`` is the frame index (0-based), ``s = t / fps`` in seconds, ``max_f`` the last frame
        index (``n_frames - 1``, as in Deforum: ``t/max_f`` runs 0..1). ``bpm`` is left out when unknown.
        (``pi`` and ``e`` are :data:`CONSTANTS`, substituted at parse time.)
        """
        t = np.arange(self.n_frames, dtype=np.float64)
        values: dict[str, np.ndarray | float] = {
            "t": t,
            "s": t / self.fps,
            "fps": float(self.fps),
            "max_f": float(self.n_frames - 1),
        }
        if self.bpm is not None:
            values["bpm"] = float(self.bpm)
        zeros = np.zeros(self.n_frames)
        for name in FEATURE_NAMES:
            values[name] = np.asarray(self.features.get(name, zeros), dtype=np.float64)
        return values


@dataclass(frozen=True)
class Schedule:
    """A numeric setting over time. Build with :func:`parse_schedule`.

    Attributes:
        path: the preset key it came from (e.g. ``motion.zoom``), quoted in every error.
        keyframes: the keyframes in order; ``expressions[i]`` belongs to ``keyframes[i]``.
        expressions: the compiled expressions.
        interpolation: how values move between keyframes.
        source: the setting exactly as written (a number or the schedule text), for saving it back.
    """

    path: str
    keyframes: tuple[Keyframe, ...]
    expressions: tuple[Expression, ...]
    interpolation: Interpolation
    source: float | str

    @property
    def needs_tempo(self) -> bool:
        """True when a key counts beats or an expression reads ``bpm``."""
        return _has_beat_keys(self.keyframes) or "bpm" in self.names

    @property
    def constant(self) -> float | None:
        """The value when it is the same at every frame of every render, else None."""
        return self.expressions[0].constant if self.is_constant else None

    @property
    def names(self) -> frozenset[str]:
        """Variables the schedule reads (e.g. to warn when it uses audio and there is none)."""
        return frozenset().union(*(expression.names for expression in self.expressions))

    @property
    def is_constant(self) -> bool:
        """True when the value is the same at every frame of every render."""
        values = {expression.constant for expression in self.expressions}
        return len(values) == 1 and None not in values

    def evaluate(self, ctx: ScheduleContext) -> np.ndarray:
        """The value at every frame: float64, shape (ctx.n_frames,).

        Raises:
            PresetError: a beat key or ``bpm`` without a tempo, keys out of order at this frame
                rate, or a value that is not finite at a frame where it is used.
        """
        frames = np.arange(ctx.n_frames)
        key_frames = _key_frames(self.keyframes, ctx.fps, ctx.bpm, self.path)
        lower, upper, weight = _blend(key_frames, frames, self.interpolation)
        variables = ctx.variables()
        result = np.zeros(ctx.n_frames)
        for index, (keyframe, expression) in enumerate(zip(self.keyframes, self.expressions)):
            share = np.where(lower == index, 1.0 - weight, 0.0) + np.where(upper == index, weight, 0.0)
            used = share > 0.0
            if used.any():
                values = _evaluate(expression, variables, ctx.n_frames, f"{self.path}: {keyframe.label}")
                _require_finite(values, used, f"{self.path}: {keyframe.label}")
                result[used] += share[used] * values[used]
        return result


@dataclass(frozen=True)
class TextSchedule:
    """A text setting over time (e.g. the dream objective). Build with :func:`parse_text_schedule`.

    Attributes:
        path: the preset key it came from, quoted in every error.
        keyframes: the keyframes in order; each ``body`` is its text.
        interpolation: ``linear``/``smooth`` cross-fade between consecutive texts, ``step`` cuts.
        source: the setting exactly as written, for saving it back.
    """

    path: str
    keyframes: tuple[Keyframe, ...]
    interpolation: Interpolation
    source: str

    @property
    def needs_tempo(self) -> bool:
        """True when a key counts beats."""
        return _has_beat_keys(self.keyframes)

    @property
    def texts(self) -> tuple[str, ...]:
        """The distinct texts in order of first appearance (e.g. to build every objective up front)."""
        return tuple(dict.fromkeys(keyframe.body for keyframe in self.keyframes))

    @property
    def is_constant(self) -> bool:
        """True when there is only one text."""
        return len(self.texts) == 1

    def weights_at(self, frame: int, ctx: ScheduleContext) -> list[tuple[str, float]]:
        """The texts in effect at ``frame`` with blend weights that sum to 1.

        One entry of weight 1 while a text holds; while fading from text A to text B, A's weight
        falls from 1 to 0 as B's rises (two entries, A first). Equal texts are merged.
        Only ``ctx.fps`` and ``ctx.bpm`` are used.
        """
        key_frames = _key_frames(self.keyframes, ctx.fps, ctx.bpm, self.path)
        lower, upper, weight = _blend(key_frames, np.array([frame]), self.interpolation)
        weights: dict[str, float] = {}
        for index, share in ((lower[0], 1.0 - weight[0]), (upper[0], weight[0])):
            if share > 0.0:
                text = self.keyframes[index].body
                weights[text] = weights.get(text, 0.0) + float(share)
        return list(weights.items())


def parse_schedule(
    value: float | int | str, path: str, interpolation: Interpolation = Interpolation.LINEAR
) -> Schedule:
    """Parse a numeric setting: a number, an expression, or ``KEY:(EXPRESSION), ...`` keyframes.

    Args:
        value: the setting as read from the preset or ``--set``.
        path: the preset key (e.g. ``motion.zoom``), named in every error.
        interpolation: the default mode; a ``MODE|`` prefix in the string overrides it.

    Raises:
        PresetError: one line naming ``path``, the keyframe and the problem.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PresetError(f'{path}: expected a number or a schedule like "0:(1.0), 48:(1.04)", got {value!r}')
    source: float | str = value if isinstance(value, (str, int)) else float(value)
    if not isinstance(value, str):
        if not math.isfinite(value):
            raise PresetError(f"{path}: expected a finite number, got {value}")
        value = repr(float(value))
    interpolation, text = _split_mode(value, path, interpolation)
    # ":" never occurs in an expression, so any colon means keyframes.
    keyframes = _parse_keyframes(text, path) if ":" in text else (_unkeyed(text, "expression", path),)
    expressions = tuple(_compile(keyframe.body, f"{path}: {keyframe.label}") for keyframe in keyframes)
    _check_frame_keys(keyframes, path)
    return Schedule(path, keyframes, expressions, interpolation, source)


def parse_text_schedule(value: str, path: str, interpolation: Interpolation = Interpolation.LINEAR) -> TextSchedule:
    """Parse a text setting: plain text, or ``KEY:(TEXT), ...`` keyframes.

    Only a string that starts with ``KEY:(`` (after an optional ``MODE|`` prefix) is keyframed;
    texts may themselves contain ``:``, ``*``, ``+`` and balanced parentheses
    (``"0:(mixed4d:97), 4s:(0.5*mixed4c + class:banana)"``).

    Raises:
        PresetError: one line naming ``path``, the keyframe and the problem.
    """
    if not isinstance(value, str):
        raise PresetError(f'{path}: expected text like "mixed4c" or "0:(mixed4c), 4s:(mixed5a)", got {value!r}')
    interpolation, text = _split_mode(value, path, interpolation)
    keyframes = _parse_keyframes(text, path) if _KEYFRAMED_TEXT.match(text) else (_unkeyed(text, "text", path),)
    _check_frame_keys(keyframes, path)
    return TextSchedule(path, keyframes, interpolation, value)


def _split_mode(text: str, path: str, default: Interpolation) -> tuple[Interpolation, str]:
    """Strip a ``MODE|`` prefix that stands right before the first keyframe; return the mode and the rest."""
    match = _MODE_PREFIX.match(text)
    if match is None:
        return default, text
    modes = {mode.value: mode for mode in Interpolation}
    name = match["mode"].lower()
    if name not in modes:
        raise PresetError(f'{path}: unknown interpolation "{match["mode"]}" (expected {", ".join(modes)})')
    return modes[name], text[match.end() :]


def _one_line(text: str) -> str:
    """Collapse runs of whitespace (newlines from multi-line TOML strings) so messages stay one line."""
    return " ".join(text.split())


def _unkeyed(text: str, what: str, path: str) -> Keyframe:
    """The whole string as a single keyframe at frame 0."""
    if not text.strip():
        raise PresetError(f"{path}: empty {what}")
    return Keyframe(f'{what} "{_one_line(text)}"', Key(0.0, KeyUnit.FRAME), text.strip())


def _parse_keyframes(text: str, path: str) -> tuple[Keyframe, ...]:
    """Split ``KEY:(BODY), KEY:(BODY), ...`` at top-level commas (a trailing comma is allowed)."""
    parts = _split_top_level(text)
    if len(parts) > 1 and not parts[-1].strip():
        parts.pop()
    return tuple(_parse_keyframe(part, number, path) for number, part in enumerate(parts, start=1))


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside parentheses (commas inside belong to function calls or texts)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)  # a stray ")" is reported by _parse_keyframe
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _parse_keyframe(part: str, number: int, path: str) -> Keyframe:
    """Parse one ``KEY:(BODY)``; every error names the keyframe by number and text."""
    label = f'keyframe {number} ("{_one_line(part)}")'
    where = f"{path}: {label}"
    if not part.strip():
        raise PresetError(f"{path}: keyframe {number} is empty (a stray comma?)")
    key_text, colon, rest = part.partition(":")
    if not colon:
        raise PresetError(f'{where}: expected KEY:(VALUE), e.g. "48:(1.0)"')
    key = _parse_key(key_text.strip(), where)
    rest = rest.strip()
    if not rest.startswith("("):
        raise PresetError(f'{where}: expected "(" after ":"')
    close = _closing_parenthesis(rest)
    if close is None:
        raise PresetError(f'{where}: missing ")"')
    if rest[close + 1 :].strip():
        raise PresetError(f'{where}: unexpected "{_one_line(rest[close + 1:])}" after ")" (a missing comma?)')
    body = rest[1:close].strip()
    if not body:
        raise PresetError(f"{where}: nothing between the parentheses")
    return Keyframe(label, key, body)


def _parse_key(text: str, where: str) -> Key:
    """Parse ``48``, ``2.5s`` or ``8b``."""
    match = _KEY.fullmatch(text)
    if match is None or (not match["unit"] and not match["amount"].isdigit()):
        raise PresetError(f'{where}: bad key "{text}" ({_KEY_HINT})')
    return Key(float(match["amount"]), KeyUnit(match["unit"]))


def _closing_parenthesis(text: str) -> int | None:
    """Index of the ")" matching the "(" at ``text[0]``, or None if it never closes."""
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return index
    return None


def _has_beat_keys(keyframes: tuple[Keyframe, ...]) -> bool:
    return any(keyframe.key.unit is KeyUnit.BEAT for keyframe in keyframes)


def _check_frame_keys(keyframes: tuple[Keyframe, ...], path: str) -> None:
    """Report out-of-order keys at parse time when they don't depend on fps or tempo."""
    if all(keyframe.key.unit is KeyUnit.FRAME for keyframe in keyframes):
        _key_frames(keyframes, fps=1.0, bpm=None, path=path)


def _key_frames(keyframes: tuple[Keyframe, ...], fps: float, bpm: float | None, path: str) -> np.ndarray:
    """Frame index of every keyframe at this fps and tempo, strictly increasing. Shape (n_keys,) int."""
    frames: list[int] = []
    for number, keyframe in enumerate(keyframes):
        if keyframe.key.unit is KeyUnit.BEAT and bpm is None:
            raise PresetError(
                f"{path}: {keyframe.label}: a key in beats needs a tempo", TEMPO_HINT
            )
        frame = keyframe.key.to_frame(fps, bpm)
        if frames and frame <= frames[-1]:
            raise PresetError(
                f"{path}: {keyframe.label}: lands on frame {frame}, not after keyframe {number} (frame {frames[-1]})",
                "keys must increase",
            )
        frames.append(frame)
    return np.array(frames)


def _blend(
    key_frames: np.ndarray, frames: np.ndarray, interpolation: Interpolation
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which two keyframes each frame blends, and how much of the second.

    Args:
        key_frames: keyframe positions, strictly increasing, shape (n_keys,).
        frames: frame indices, shape (n,).

    Returns:
        (lower, upper, weight), each shape (n,): the value is ``(1 - weight) * expr[lower] +
        weight * expr[upper]``. Outside the keyed range, and on a keyframe, lower == upper and weight 0.
    """
    upper = np.searchsorted(key_frames, frames, side="right")
    lower = np.clip(upper - 1, 0, len(key_frames) - 1)
    upper = np.clip(upper, 0, len(key_frames) - 1)
    span = key_frames[upper] - key_frames[lower]
    # Outside the keyed range lower == upper: progress 0, so the held keyframe gets weight exactly 1.
    progress = np.where(span > 0, (frames - key_frames[lower]) / np.maximum(span, 1), 0.0)
    return lower, upper, interpolation.ease(progress)


def _compile(source: str, where: str) -> Expression:
    """Validate ``source`` and rewrite it into numexpr syntax; constants are evaluated right away."""
    source = _one_line(source)  # line breaks from multi-line TOML strings would end the expression
    names: set[str] = set()
    try:
        code = ast.unparse(_rewrite(ast.parse(source, mode="eval").body, source, names))
    except SyntaxError as error:
        raise PresetError(f'{where}: cannot read "{source}": {error.msg} at character {error.offset}') from None
    except _Unsupported as error:
        raise PresetError(f"{where}: {error}") from None
    except RecursionError:
        raise PresetError(f"{where}: expression too deeply nested") from None
    expression = Expression(code, frozenset(names), None)
    if names:
        return expression
    value = _evaluate(expression, {}, 1, where)
    _require_finite(value, np.ones(1, dtype=bool), where)
    return Expression(code, frozenset(), float(value[0]))


class _Unsupported(Exception):
    """Raised inside :func:`_rewrite` with a message for the user; turned into a PresetError."""


def _call(name: str, *args: ast.expr) -> ast.Call:
    """An AST call of a native numexpr function."""
    return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])


def _compare(left: ast.expr, op: ast.cmpop, right: ast.expr) -> ast.Compare:
    return ast.Compare(left=left, ops=[op], comparators=[right])


def _desugar(name: str, args: list[ast.expr]) -> ast.expr:
    """Rewrite a call of ``min``, ``max``, ``clip`` or ``round`` into native numexpr calls."""
    if name in ("min", "max"):
        op = ast.Lt() if name == "min" else ast.Gt()
        return functools.reduce(lambda a, b: _call("where", _compare(a, op, b), a, b), args)
    if name == "clip":
        value, low, high = args
        return _desugar("min", [_desugar("max", [value, low]), high])
    # round half up; numexpr's own round (2.13+) rounds half to even and is missing before 2.13.
    return _call("floor", ast.BinOp(left=args[0], op=ast.Add(), right=ast.Constant(0.5)))


def _check_arity(name: str, count: int) -> None:
    fewest, most = _ARITY[name]
    if count < fewest or (most is not None and count > most):
        expected = f"{fewest} or more" if most is None else str(fewest)
        raise _Unsupported(f"{name}() takes {expected} argument{'' if most == 1 else 's'}, got {count}")


def _rewrite(node: ast.AST, source: str, names: set[str]) -> ast.expr:
    """Check one AST node against the whitelist and return its numexpr-ready equivalent.

    Numbers become floats (no integer division or overflow surprises), ``pi`` and ``e`` numbers; chained comparisons
    ``a < b < c`` become ``(a < b) & (b < c)``; sugar functions are rewritten by :func:`_desugar`.
    Variables read are added to ``names``.
    """

    def visit(child: ast.AST) -> ast.expr:
        return _rewrite(child, source, names)

    match node:
        case ast.Constant(value=bool()):
            pass  # True/False fall through to the generic error
        case ast.Constant(value=int() | float() as number):
            return ast.Constant(float(number))
        case ast.Name(id=name) if name in CONSTANTS:
            return ast.Constant(CONSTANTS[name])
        case ast.Name(id=name) if name in VARIABLES:
            names.add(name)
            return node
        case ast.Name(id=name):
            raise _Unsupported(f'unknown variable "{name}" (known: {", ".join([*VARIABLES, *CONSTANTS])})')
        case ast.UnaryOp(op=op, operand=operand) if isinstance(op, _UNARY_OPERATORS):
            return ast.UnaryOp(op=op, operand=visit(operand))
        case ast.BinOp(left=left, op=op, right=right) if isinstance(op, _BINARY_OPERATORS):
            return ast.BinOp(left=visit(left), op=op, right=visit(right))
        case ast.BinOp(op=ast.BitXor()):
            raise _Unsupported('"^" is not a power here: write a**b')
        case ast.BoolOp() | ast.UnaryOp(op=ast.Not()):
            raise _Unsupported("write & | ~ (with parentheses around comparisons) instead of and/or/not")
        case ast.Compare(left=left, ops=ops, comparators=comparators) if all(
            isinstance(op, _COMPARISONS) for op in ops
        ):
            operands = [visit(left), *(visit(item) for item in comparators)]
            pairs = [_compare(a, op, b) for a, op, b in zip(operands, ops, operands[1:])]
            return functools.reduce(lambda a, b: ast.BinOp(left=a, op=ast.BitAnd(), right=b), pairs)
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
            if any(isinstance(arg, ast.Starred) for arg in args):
                raise _Unsupported(f'"*" unpacking is not allowed in {name}()')
            _check_arity(name, len(args))
            visited = [visit(arg) for arg in args]
            if name == "where" and not _is_condition(visited[0]):
                raise _Unsupported("where() needs a condition first, e.g. where(t < 48, 1, 2)")
            return _desugar(name, visited) if name in _SUGAR else _call(name, *visited)
        case ast.Call(func=ast.Name(id=name), keywords=[]):
            raise _Unsupported(f'unknown function "{name}" (known: {", ".join(FUNCTIONS)})')
    snippet = ast.get_source_segment(source, node) or source
    raise _Unsupported(
        f'"{snippet}" is not allowed (only numbers, variables, + - * / % **, comparisons, & | ~ and math functions)'
    )


def _is_condition(node: ast.expr) -> bool:
    """True for a comparison, or comparisons joined by & | ~ (numexpr's where() needs a boolean)."""
    match node:
        case ast.Compare():
            return True
        case ast.BinOp(left=left, op=ast.BitAnd() | ast.BitOr(), right=right):
            return _is_condition(left) and _is_condition(right)
        case ast.UnaryOp(op=ast.Invert(), operand=operand):
            return _is_condition(operand)
    return False


def _evaluate(expression: Expression, variables: Mapping[str, np.ndarray | float], n: int, where: str) -> np.ndarray:
    """Evaluate over all frames with numexpr. Returns float64, shape (n,)."""
    if expression.constant is not None:
        return np.full(n, expression.constant)
    if "bpm" in expression.names and "bpm" not in variables:
        raise PresetError(f'{where}: uses "bpm" but the tempo is unknown', TEMPO_HINT)
    try:
        with np.errstate(all="ignore"):
            raw = numexpr.evaluate(
                expression.code, local_dict={name: variables[name] for name in expression.names}, global_dict={}
            )
    except ZeroDivisionError:
        raise PresetError(f"{where}: division by zero") from None
    except (ValueError, TypeError, KeyError, NotImplementedError, OverflowError) as error:
        raise PresetError(f"{where}: cannot evaluate: {_one_line(str(error))}") from None
    return np.broadcast_to(np.asarray(raw, dtype=np.float64), (n,)).copy()


def _require_finite(values: np.ndarray, used: np.ndarray, where: str) -> None:
    """Raise naming the first frame where ``values`` is inf or nan among the ``used`` frames."""
    bad = np.flatnonzero(used & ~np.isfinite(values))
    if bad.size:
        frame = int(bad[0])
        raise PresetError(
            f"{where}: value is {values[frame]} at frame {frame}",
            "check for division by zero, log of 0 or sqrt of a negative",
        )
