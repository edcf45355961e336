"""Synthetic test footage with known motion: layered scenes cut from the CC0 sample photos.

Flow mode has to cope with what real shots contain: objects moving on their own, crossing and
occluding each other, backgrounds revealed behind them, parallax, zoom, motion blur, lighting change and
compression noise. A camera pan over a photo has none of that. This module builds such shots from the
shipped photos (``samples/chelsea.jpg``, ``samples/coffee.jpg``, CC0), deterministically from a seed,
and returns the *ground truth* with them: the backward optical flow and the disocclusions of every
frame.

How a scene is made: a stack of :class:`Layer`\\ s, each a sprite (an RGB cut-out with a soft alpha
mask) placed in the frame by an affine map that changes over time (:class:`Motion`: drift, sway,
orbit, scale, turn). Frames are composited back to front, ordered by each layer's depth at that
instant. Since each layer moves rigidly in its own plane, the flow of every pixel is exact: for the
layer that owns pixel ``x`` of frame t (the front-most with alpha > 0.5), ``M_{t-1} M_t^{-1} x``.

Conventions (as in :mod:`renderer.flow` and :mod:`renderer.metrics`):

- frames: numpy ``uint8`` ``(H, W, 3)`` RGB;
- flows: ``float32`` ``(H, W, 2)`` in pixels, **backward**: ``flow[y, x] = (dx, dy)`` says that pixel
  ``(x, y)`` of frame t shows the point seen at ``(x + dx, y + dy)`` in frame t-1; pixel centres at
  integer coordinates;
- ``occluded[t]``: ``bool (H, W)``, True where frame t's pixel was not visible in frame t-1 (revealed
  behind a mover, or entering at the frame's edge); frame 0's flow is zero and nothing in it is occluded;
- motion in the presets is given in frame *heights* per second, so a scene looks the same at 160x90
  and 320x180, and at any frame rate.

Presets (:data:`PRESETS`, :func:`make_scene`): ``crossing`` (two cut-outs crossing over a panning
background with a parallax layer), ``orbit`` (three cut-outs circling, scaling with depth and passing
in front of each other over a slowly zooming background, with lighting change), ``street`` (many small
movers in lanes over a two-layer parallax background, with motion blur, flicker, sensor noise and
x264 compression).
"""

from __future__ import annotations

import math
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from . import media

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
#: The photos the scenes are cut from (CC0, see samples/README.md).
PHOTOS = ("chelsea.jpg", "coffee.jpg")


# ------------------------------------------------------------------------------------ sprites


@dataclass(frozen=True)
class Sprite:
    """An RGB cut-out with straight (not premultiplied) alpha.

    Attributes:
        rgb: ``float32 (h, w, 3)`` in [0, 1].
        alpha: ``float32 (h, w)`` in [0, 1]; 1 = opaque.
        tile: what lies outside the sprite: ``False`` nothing (alpha 0), ``True`` the sprite mirrored
            (a background that never runs out).
    """

    rgb: np.ndarray
    alpha: np.ndarray
    tile: bool = False

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) of the sprite's centre in its own pixel coordinates."""
        return (self.rgb.shape[1] - 1) / 2, (self.rgb.shape[0] - 1) / 2


def load_photo(name: str) -> np.ndarray:
    """A sample photo as ``float32 (H, W, 3)`` RGB in [0, 1]."""
    return media.load_image(SAMPLES / name).astype(np.float32) / 255


def blob_mask(height: int, width: int, rng: np.random.Generator, wobble: float = 0.12,
              feather: float = 1.0) -> np.ndarray:
    """A soft-edged blob filling an ``(height, width)`` box: ``float32`` in [0, 1].

    An ellipse whose radius wobbles with angle (a few random harmonics of relative amplitude up to
    ``wobble``; 0 gives an ellipse), its edge blurred by a Gaussian of ``feather`` pixels so that it
    antialiases like a real object's outline.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    # leave room for the wobble and the feather inside the box
    feather = min(feather, width / 8, height / 8)  # tiny sprites (a mover at 64x36) stay solid inside
    rx = max((width / 2 - 2 * feather - 1) / (1 + wobble), 0.5)
    ry = max((height / 2 - 2 * feather - 1) / (1 + wobble), 0.5)
    dx, dy = (xs - cx) / rx, (ys - cy) / ry
    theta = np.arctan2(dy, dx)
    radius = np.ones_like(theta)
    for k in (2, 3, 5):
        radius += rng.uniform(0, wobble) / len((2, 3, 5)) * 2 * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    # signed distance in pixels (approximately) from the wobbly edge, then a smooth step
    dist = (np.sqrt(dx * dx + dy * dy) - radius) * min(rx, ry)
    if feather <= 0:
        return (dist <= 0).astype(np.float32)
    return (0.5 * (1 - np.tanh(dist / feather))).astype(np.float32)


def cut_sprite(photo: np.ndarray, center: tuple[float, float], radius: float, size: tuple[int, int],
               rng: np.random.Generator, wobble: float = 0.12, aspect: float = 1.0) -> Sprite:
    """Cut a blob out of a photo.

    Args:
        photo: ``float32 (H, W, 3)``.
        center: (x, y) of the cut in fractions of the photo's width and height.
        radius: half the cut's height, in fractions of the photo's height.
        size: (width, height) of the sprite in output pixels.
        rng: for the blob's shape.
        wobble: how far the outline departs from an ellipse (0 = ellipse).
        aspect: width / height of the cut region in the photo (the sprite is stretched to ``size``).
    """
    ph, pw = photo.shape[:2]
    half_h = radius * ph
    half_w = half_h * aspect
    x0, x1 = center[0] * pw - half_w, center[0] * pw + half_w
    y0, y1 = center[1] * ph - half_h, center[1] * ph + half_h
    w, h = size
    # map the cut rectangle onto the sprite box (area-like quality via INTER_AREA when shrinking)
    matrix = np.array([[w / (x1 - x0), 0, -x0 * w / (x1 - x0)], [0, h / (y1 - y0), -y0 * h / (y1 - y0)]])
    shrink = w < (x1 - x0)
    if shrink:  # pre-blur so the shrink does not alias (warpAffine samples, it does not average)
        sigma = 0.5 * (x1 - x0) / w
        photo = cv2.GaussianBlur(photo, (0, 0), sigma)
    rgb = cv2.warpAffine(photo, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return Sprite(rgb, blob_mask(h, w, rng, wobble))


def photo_background(photo: np.ndarray, height: int) -> Sprite:
    """A whole photo scaled to ``height`` pixels, mirrored beyond its edges (never runs out)."""
    ph, pw = photo.shape[:2]
    width = round(pw * height / ph)
    rgb = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA if height < ph else cv2.INTER_CUBIC)
    return Sprite(np.clip(rgb, 0, 1), np.ones((height, width), np.float32), tile=True)


def posts_layer(photo: np.ndarray, height: int, width: int, rng: np.random.Generator, count: int) -> Sprite:
    """A strip of soft-edged vertical posts textured from a photo (a near parallax layer: fences,
    trees), transparent between them, tiling horizontally."""
    ph, pw = photo.shape[:2]
    texture = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    alpha = np.zeros((height, width), np.float32)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    for i in range(count):
        cx = (i + rng.uniform(0.2, 0.8)) * width / count
        half = rng.uniform(0.03, 0.07) * height
        top = rng.uniform(-0.2, 0.45) * height  # posts of different heights, all reaching the bottom
        lean = rng.uniform(-0.08, 0.08)
        dist = np.maximum(np.abs(xs - cx - lean * (ys - height)) - half, top - ys)
        alpha = np.maximum(alpha, 0.5 * (1 - np.tanh(dist / 1.0)))
    return Sprite(texture, alpha.astype(np.float32), tile=True)


# ------------------------------------------------------------------------------------ motion


@dataclass(frozen=True)
class Motion:
    """Where a sprite is at time ``s`` (seconds): position, scale and angle, each smooth in time.

    Position (frame pixels) = ``start + velocity * s + sway * sin(2 pi s / period + phase)``
    (``sway`` and ``period`` per axis, so an orbit is ``sway = (rx, ry)`` with phases a quarter apart);
    scale = ``scale * (1 + pulse * sin(2 pi s / period_scale + phase_scale)) * zoom ** s``; angle =
    ``angle + spin * s`` degrees, counter-clockwise on screen. With ``wrap`` (pixels, > 0) the x
    position wraps around ``[-wrap, frame_width + wrap)``: a mover leaves on one side and comes back on
    the other while off-screen (``wrap`` must exceed the sprite's half-width), so a long clip keeps its
    traffic and the ground truth stays exact.
    """

    start: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    sway: tuple[float, float] = (0.0, 0.0)
    period: float = 1.0
    phase: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    pulse: float = 0.0
    period_scale: float = 1.0
    phase_scale: float = 0.0
    zoom: float = 1.0
    angle: float = 0.0
    spin: float = 0.0
    wrap: float = 0.0
    frame_width: float = 0.0

    def position(self, s: float) -> tuple[float, float]:
        x, y = (self.start[i] + self.velocity[i] * s
                + self.sway[i] * math.sin(2 * math.pi * s / self.period + self.phase[i]) for i in (0, 1))
        if self.wrap > 0:
            span = self.frame_width + 2 * self.wrap
            x = (x + self.wrap) % span - self.wrap
        return x, y

    def scale_at(self, s: float) -> float:
        return self.scale * (1 + self.pulse * math.sin(2 * math.pi * s / self.period_scale + self.phase_scale)) \
            * self.zoom ** s

    def matrix(self, s: float, center: tuple[float, float]) -> np.ndarray:
        """``(3, 3)`` affine map from sprite pixels to frame pixels at time ``s``."""
        x, y = self.position(s)
        k = self.scale_at(s)
        a = math.radians(self.angle + self.spin * s)
        # image y points down: a counter-clockwise turn on screen is a clockwise one in (x, y)
        c, n = math.cos(a) * k, math.sin(a) * k
        cx, cy = center
        return np.array([[c, n, x - c * cx - n * cy], [-n, c, y + n * cx - c * cy], [0, 0, 1]])


@dataclass(frozen=True)
class Layer:
    """A sprite, its motion, and its depth (larger = nearer the camera, drawn later).

    ``depth_from_scale``: the depth at each instant is ``depth + scale`` (an object that grows is
    coming closer), so orbiting objects pass in front of each other.
    """

    name: str
    sprite: Sprite
    motion: Motion
    depth: float = 0.0
    depth_from_scale: bool = False

    def depth_at(self, s: float) -> float:
        return self.depth + (self.motion.scale_at(s) if self.depth_from_scale else 0.0)


# ------------------------------------------------------------------------------------ scenes


@dataclass(frozen=True)
class Look:
    """Camera and delivery effects that do not change the motion (the ground truth stays exact).

    Attributes:
        blur: shutter as a fraction of the frame interval (0 = none, 0.5 = a 180-degree shutter): each
            frame averages ``blur_samples`` instants spread over it (motion blur).
        blur_samples: instants per frame when ``blur > 0``.
        brightness: relative amplitude of a slow global lighting change (0.1 = +-10 %).
        brightness_period: its period, seconds.
        flicker: relative amplitude of a per-frame random brightness jitter (clouds, auto exposure).
        noise: standard deviation of per-pixel sensor noise, [0, 1] units.
        crf: x264 constant rate factor to encode and decode the frames with (None: no compression).
    """

    blur: float = 0.0
    blur_samples: int = 5
    brightness: float = 0.0
    brightness_period: float = 3.0
    flicker: float = 0.0
    noise: float = 0.0
    crf: int | None = None


@dataclass(frozen=True)
class Scene:
    """Frames with their ground truth.

    Attributes:
        name: the preset (or a caller's name).
        frames: ``uint8 (N, H, W, 3)`` RGB (after compression when the look asks for it).
        flows: ``float32 (N, H, W, 2)``: backward flow of frame t into frame t-1; ``flows[0]`` is 0.
        occluded: ``bool (N, H, W)``: True where frame t's pixel was not visible in frame t-1.
        mixed: ``bool (N, H, W)``: soft edges, where two layers that move differently blend (the flow
            there is that of the front layer, but the colour is a mix: a metric should skip them).
        fps: frame rate.
        seed: the seed it was made with.
    """

    name: str
    frames: np.ndarray
    flows: np.ndarray
    occluded: np.ndarray
    mixed: np.ndarray
    fps: float
    seed: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.frames.shape[2], self.frames.shape[1]

    def __len__(self) -> int:
        return len(self.frames)

    def write(self, path: str | Path, *, audio: bool = True, crf: int = 18, overwrite: bool = False) -> Path:
        """Encode the frames to a video file (any format :func:`renderer.media.output_format` takes), with
        a generated soundtrack (a tone and a kick every half second) unless ``audio=False``, so
        ``dreamvid render scene.mp4 --preset flow-dream`` has sound to keep. Returns the path."""
        return write_video(self.frames, path, self.fps, audio=audio, crf=crf, overwrite=overwrite)


def render_layers(layers: list[Layer], size: tuple[int, int], n_frames: int, fps: float = 24.0,
                  look: Look = Look(), seed: int = 0, name: str = "scene") -> Scene:
    """Composite ``layers`` into ``n_frames`` frames of ``size = (width, height)`` with the ground truth.

    The first layer in depth order must cover the whole frame (a tiling background).
    """
    width, height = size
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    ones = np.ones_like(xs)
    points = np.stack([xs, ys, ones])  # (3, H, W)
    rng = np.random.default_rng([seed, 1])
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    flows = np.zeros((n_frames, height, width, 2), np.float32)
    occluded = np.zeros((n_frames, height, width), bool)
    mixed = np.zeros((n_frames, height, width), bool)
    owners = np.empty((n_frames, height, width), np.int16)

    def matrix(layer: Layer, t: float) -> np.ndarray:
        return layer.motion.matrix(t / fps, layer.sprite.center)

    def composite(t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb float32 (H,W,3), owner int16 (H,W), mixed bool (H,W)) at time t (frames)."""
        canvas = np.zeros((height, width, 3), np.float32)
        owner = np.full((height, width), -1, np.int16)
        soft = np.zeros((height, width), bool)
        order = sorted(range(len(layers)), key=lambda i: layers[i].depth_at(t / fps))
        for i in order:
            layer = layers[i]
            affine = matrix(layer, t)[:2]
            border = cv2.BORDER_REFLECT if layer.sprite.tile else cv2.BORDER_CONSTANT
            rgb = cv2.warpAffine(layer.sprite.rgb, affine, size, flags=cv2.INTER_LINEAR, borderMode=border)
            alpha = cv2.warpAffine(layer.sprite.alpha, affine, size, flags=cv2.INTER_LINEAR, borderMode=border)
            canvas += (rgb - canvas) * alpha[..., None]
            owner[alpha > 0.5] = i
            soft = np.where(alpha > 0.98, False, soft | ((alpha > 0.02) & (alpha <= 0.98)))
        if (owner < 0).any():
            raise ValueError("the layers leave part of the frame uncovered: the back layer must tile")
        return canvas, owner, soft

    for t in range(n_frames):
        canvas, owner, soft = composite(t)
        if look.blur > 0 and look.blur_samples > 1:
            offsets = look.blur * (np.linspace(0, 1, look.blur_samples) - 0.5)
            canvas = np.mean([composite(t + o)[0] if o else canvas for o in offsets], axis=0)
        gain = 1 + look.brightness * math.sin(2 * math.pi * t / fps / look.brightness_period)
        gain *= 1 + look.flicker * rng.standard_normal()
        canvas = canvas * gain
        if look.noise > 0:
            canvas = canvas + rng.normal(0, look.noise, canvas.shape).astype(np.float32)
        frames[t] = np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8)
        owners[t], mixed[t] = owner, soft
        if t == 0:
            continue
        # ground-truth backward flow: each pixel's owning layer, from frame t back to frame t-1
        for i, layer in enumerate(layers):
            here = owner == i
            if not here.any():
                continue
            back = matrix(layer, t - 1) @ np.linalg.inv(matrix(layer, t))
            prev = np.tensordot(back[:2], points[:, here], axes=1)  # (2, n)
            flows[t][here] = (prev - points[:2, here]).T
        px, py = xs + flows[t][..., 0], ys + flows[t][..., 1]
        outside = (px < -0.5) | (px > width - 0.5) | (py < -0.5) | (py > height - 0.5)
        ix = np.clip(np.rint(px), 0, width - 1).astype(np.intp)
        iy = np.clip(np.rint(py), 0, height - 1).astype(np.intp)
        occluded[t] = outside | (owners[t - 1][iy, ix] != owner)
    if look.crf is not None:
        frames = np.stack(compress(list(frames), fps, look.crf))
    return Scene(name, frames, flows, occluded, mixed, fps, seed)


# ------------------------------------------------------------------------------------ presets


def _crossing(size: tuple[int, int], rng: np.random.Generator, duration: float) -> list[Layer]:
    """Two cut-outs crossing each other over a panning background with a parallax layer."""
    width, height = size
    chelsea, coffee = load_photo("chelsea.jpg"), load_photo("coffee.jpg")
    bg = photo_background(coffee, round(1.5 * height))
    posts = posts_layer(chelsea, height, 2 * width, rng, count=3)
    cat = cut_sprite(chelsea, (0.55, 0.5), 0.42, (round(0.62 * height), round(0.55 * height)), rng, aspect=1.1)
    cup = cut_sprite(coffee, (0.48, 0.42), 0.36, (round(0.55 * height), round(0.5 * height)), rng, aspect=1.05)
    # speeds in frame heights per second; both objects cross the frame over the clip, meeting midway
    travel = width + 0.6 * height
    return [
        Layer("background", bg, Motion((0.5 * width, 0.5 * height), velocity=(-0.12 * height, 0.0),
                                       sway=(0.0, 0.04 * height), period=4.0)),
        Layer("posts", posts, Motion((width, 0.5 * height), velocity=(-0.35 * height, 0.0)), depth=1),
        Layer("cat", cat, Motion((-0.3 * height, 0.42 * height), velocity=(travel / duration, 0.02 * height),
                                 sway=(0.0, 0.05 * height), period=2.0, scale=1.0, zoom=1.05, spin=4.0), depth=3),
        Layer("cup", cup, Motion((width + 0.3 * height, 0.6 * height), velocity=(-travel / duration, -0.02 * height),
                                 sway=(0.0, 0.04 * height), period=1.5, phase=(0.0, 1.0), scale=1.0,
                                 pulse=0.08, period_scale=2.5, spin=-6.0), depth=2),
    ]


def _orbit(size: tuple[int, int], rng: np.random.Generator, duration: float) -> list[Layer]:
    """Three cut-outs orbiting the centre, scaling with depth and passing in front of each other, over
    a slowly zooming and turning background."""
    width, height = size
    chelsea, coffee = load_photo("chelsea.jpg"), load_photo("coffee.jpg")
    bg = photo_background(chelsea, round(1.3 * height))
    cuts = [(coffee, (0.48, 0.42), 0.33), (chelsea, (0.38, 0.42), 0.2), (coffee, (0.6, 0.72), 0.15)]
    layers = [Layer("background", bg, Motion((0.5 * width, 0.5 * height), zoom=1.04, spin=1.5))]
    period = 4.0
    for i, (photo, center, radius) in enumerate(cuts):
        side = round(rng.uniform(0.36, 0.44) * height)
        sprite = cut_sprite(photo, center, radius, (side, side), rng)
        phase = 2 * math.pi * i / len(cuts)
        # on an ellipse around the centre; nearer (sin > 0) = bigger, drawn in front
        motion = Motion((0.5 * width, 0.5 * height), sway=(0.32 * width, 0.16 * height), period=period,
                        phase=(phase + math.pi / 2, phase), scale=1.0, pulse=0.3, period_scale=period,
                        phase_scale=phase, spin=rng.uniform(-15, 15))
        layers.append(Layer(f"orbiter{i}", sprite, motion, depth=10, depth_from_scale=True))
    return layers


def _street(size: tuple[int, int], rng: np.random.Generator, duration: float) -> list[Layer]:
    """Many small movers in lanes, both ways, over a slow far layer and a faster near parallax layer."""
    width, height = size
    chelsea, coffee = load_photo("chelsea.jpg"), load_photo("coffee.jpg")
    layers = [
        Layer("far", photo_background(coffee, round(1.2 * height)),
              Motion((0.5 * width, 0.45 * height), velocity=(-0.05 * height, 0.0))),
        Layer("near", posts_layer(chelsea, height, 2 * width, rng, count=5),
              Motion((width, 0.55 * height), velocity=(-0.25 * height, 0.0)), depth=1),
    ]
    cuts = [(chelsea, (0.38, 0.4)), (chelsea, (0.72, 0.45)), (chelsea, (0.58, 0.78)), (coffee, (0.48, 0.35)),
            (coffee, (0.62, 0.72)), (coffee, (0.2, 0.55)), (chelsea, (0.5, 0.2)), (coffee, (0.85, 0.3))]
    lanes = (0.35, 0.55, 0.75)
    for i, (photo, center) in enumerate(cuts):
        lane = i % len(lanes)
        side = round(rng.uniform(0.12, 0.2) * height * (0.8 + 0.3 * lane))  # nearer lanes, bigger movers
        sprite = cut_sprite(photo, center, 0.14, (round(side * 1.3), side), rng, aspect=1.3)
        direction = 1 if lane % 2 == 0 else -1
        speed = direction * rng.uniform(0.3, 0.9) * height
        motion = Motion((rng.uniform(0, width), lanes[lane] * height), velocity=(speed, 0.0),
                        sway=(0.0, 0.015 * height), period=rng.uniform(0.4, 0.8),  # a gait
                        phase=(0.0, rng.uniform(0, 2 * math.pi)), wrap=0.7 * side * 1.3 + 2, frame_width=width)
        layers.append(Layer(f"mover{i}", sprite, motion, depth=2 + lane + 0.01 * i))
    return layers


@dataclass(frozen=True)
class ScenePreset:
    """A named scene: its layers (built for a size, seed and duration) and its default look."""

    build: Callable[[tuple[int, int], np.random.Generator, float], list[Layer]]
    look: Look = field(default_factory=Look)
    description: str = ""


PRESETS: dict[str, ScenePreset] = {
    "crossing": ScenePreset(_crossing, Look(blur=0.3, crf=18),
                            "two cut-outs cross over a panning background with a parallax layer"),
    "orbit": ScenePreset(_orbit, Look(brightness=0.12, crf=18),
                         "three cut-outs orbit, scale with depth and occlude each other; zooming background"),
    "street": ScenePreset(_street, Look(blur=0.5, flicker=0.015, noise=0.01, crf=23),
                          "eight small movers in lanes over two parallax layers; blur, flicker, noise, x264"),
}


def make_scene(name: str, size: tuple[int, int] = (320, 180), n_frames: int = 48, *, seed: int = 0,
               fps: float = 24.0, look: Look | None = None, **look_changes: object) -> Scene:
    """A preset scene with its ground truth, the same for the same arguments.

    Args:
        name: a key of :data:`PRESETS`.
        size: (width, height) in pixels (e.g. 160x90, 320x180).
        n_frames: length (12..120 is typical).
        seed: shapes, speeds and noise.
        fps: frame rate (motion is per second, so it only changes the step between frames).
        look: replaces the preset's look; ``look_changes`` change single fields of it
            (``make_scene("street", crf=None, noise=0)``).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown scene {name!r}; choose one of {', '.join(PRESETS)}")
    if n_frames < 1 or size[0] < 16 or size[1] < 16:
        raise ValueError(f"need at least 1 frame of at least 16x16 pixels, got {n_frames} of {size}")
    preset = PRESETS[name]
    look = replace(look or preset.look, **look_changes)  # type: ignore[arg-type]
    layers = preset.build(size, np.random.default_rng(seed), max(n_frames / fps, 0.5))
    return render_layers(layers, size, n_frames, fps, look, seed, name)


# ------------------------------------------------------------------------------------ encoding


def compress(frames: list[np.ndarray], fps: float, crf: int) -> list[np.ndarray]:
    """The frames after an x264 round trip at ``crf`` (yuv420p): real compression noise and chroma
    subsampling. ``uint8 (H, W, 3)`` in and out; the size must be even."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        height, width = frames[0].shape[:2]
        with media.SegmentWriter(path, width, height, fps, media.OutputFormat.MP4, crf) as writer:
            for frame in frames:
                writer.write(frame)
        decoded = list(media.read_video(path))
    if len(decoded) != len(frames):
        raise RuntimeError(f"x264 round trip gave {len(decoded)} frames for {len(frames)}")
    return decoded


def soundtrack(path: Path, seconds: float, rate: int = 44100) -> Path:
    """A 16-bit mono WAV: a 220 Hz tone and a kick every half second (as samples/cat-pan.mp4 has)."""
    t = np.arange(round(seconds * rate)) / rate
    beat = np.mod(t, 0.5)
    signal = 0.25 * np.sin(2 * np.pi * 220 * t) + 0.6 * np.exp(-25 * beat) * np.sin(2 * np.pi * 55 * t)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(signal, -1, 1) * 32000).astype("<i2").tobytes())
    return path


def write_video(frames: np.ndarray | list[np.ndarray], path: str | Path, fps: float, *, audio: bool = True,
                crf: int = 18, overwrite: bool = False) -> Path:
    """Write ``uint8 (H, W, 3)`` frames to ``path`` through :mod:`renderer.media` (segment + finalize:
    exact frame rate and count, atomic), with :func:`soundtrack` when ``audio`` and the format takes it."""
    path = Path(path)
    fmt = media.output_format(path)
    height, width = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        segment = Path(tmp) / f"segment{fmt.segment_suffix}"
        with media.SegmentWriter(segment, width, height, fps, fmt, crf) as writer:
            for frame in frames:
                writer.write(np.ascontiguousarray(frame))
        track = None
        if audio and fmt.supports_audio:
            track = media.AudioSource(soundtrack(Path(tmp) / "sound.wav", len(frames) / fps + 0.5))
        return media.finalize([segment], path, fmt, fps, audio=track, overwrite=overwrite)


def main(argv: list[str] | None = None) -> int:
    """``python -m renderer.scenes NAME OUT.mp4 [--size WxH] [--frames N] [--seed S]``: write a scene
    (with a soundtrack) to render with ``dreamvid render OUT.mp4 --preset flow-dream``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m renderer.scenes", description=main.__doc__)
    parser.add_argument("name", choices=list(PRESETS))
    parser.add_argument("output", type=Path)
    parser.add_argument("--size", default="320x180", help="WxH (even for mp4)")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    scene = make_scene(args.name, (width, height), args.frames, seed=args.seed)
    print(scene.write(args.output, overwrite=args.overwrite))
    return 0


__all__ = [
    "PRESETS", "Layer", "Look", "Motion", "Scene", "ScenePreset", "Sprite", "blob_mask", "compress",
    "cut_sprite", "make_scene", "photo_background", "posts_layer", "render_layers", "soundtrack", "write_video",
]


if __name__ == "__main__":
    raise SystemExit(main())
