"""`dreamvid still`, `models`, `presets` as a user runs them, and their errors."""

from __future__ import annotations

import pytest
import torch

from conftest import SAMPLES, dreamvid
from renderer import media
from renderer.config import load_preset, preset_names
from renderer.frames import to_tensor


def test_still_dreams_an_image_and_keeps_its_size(capsys, monkeypatch, tmp_path, inception):
    out = tmp_path / "dream.png"
    code, stdout, err = dreamvid(capsys, monkeypatch, "still", SAMPLES / "chelsea.jpg", "-o", out, "--size", "180x120",
                                 "--steps", "4", "--octaves", "2", "--layer", "mixed4a", "--seed", "1")
    assert code == 0, err
    result = media.load_image(out)
    assert result.shape == (120, 180, 3) and "wrote" in stdout
    source = to_tensor(media.load_image(SAMPLES / "chelsea.jpg"))
    source = torch.nn.functional.interpolate(source, size=(120, 180), mode="bilinear", antialias=True)
    with torch.no_grad():
        before = inception(source, ["mixed4a"])["mixed4a"].pow(2).mean()
        after = inception(to_tensor(result), ["mixed4a"])["mixed4a"].pow(2).mean()
    assert after > 1.3 * before


def test_still_from_noise_with_a_class(capsys, monkeypatch, tmp_path):
    out = tmp_path / "n.png"
    code, _, err = dreamvid(capsys, monkeypatch, "still", "noise", "-o", out, "--size", "96x64", "--steps", "2",
                            "--octaves", "1", "--objective", "class:banana")
    assert code == 0, err
    assert media.load_image(out).shape == (64, 96, 3)


@pytest.mark.parametrize(("args", "words"), [
    (["missing.jpg"], "no such file"),
    (["unreadable.png"], "unreadable.png"),
    ([str(SAMPLES / "chelsea.jpg"), "--layer", "mixed9"], "valid layers: conv2d0"),
    ([str(SAMPLES / "chelsea.jpg"), "--objective", "mixed4c*+mixed5a"], "malformed objective"),
    ([str(SAMPLES / "chelsea.jpg"), "--objective", "class:unicorn"], "unknown class"),
    ([str(SAMPLES / "chelsea.jpg"), "--model", "alexnet"], "inception5h"),
    ([str(SAMPLES / "chelsea.jpg"), "--size", "big"], "WIDTHxHEIGHT"),
])
def test_still_errors_are_one_line(capsys, monkeypatch, tmp_path, args, words):
    (tmp_path / "unreadable.png").write_bytes(b"\x89PNG not really")
    monkeypatch.chdir(tmp_path)
    code, _, err = dreamvid(capsys, monkeypatch, "still", *args, "-o", tmp_path / "o.png")
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and words in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "o.png").exists()


def test_missing_weights_offline_from_the_cli(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DREAMVID_WEIGHTS", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DREAMVID_OFFLINE", "1")
    code, _, err = dreamvid(capsys, monkeypatch, "still", "noise", "-o", tmp_path / "o.png", "--size", "64x64")
    lines = err.strip().splitlines()
    assert code == 3 and len(lines) == 1
    assert "nothing-here" in lines[0] and "put inception5h.safetensors or inception5h.pth into" in lines[0]


def test_still_never_overwrites(capsys, monkeypatch, tmp_path):
    out = tmp_path / "o.png"
    out.write_bytes(b"precious")
    code, _, err = dreamvid(capsys, monkeypatch, "still", "noise", "-o", out, "--size", "64x64")
    assert code != 0 and "--overwrite" in err and out.read_bytes() == b"precious"


def test_models_lists_layers(capsys, monkeypatch):
    code, out, _ = dreamvid(capsys, monkeypatch, "models")
    assert code == 0 and "inception5h (default)" in out and "mixed4c" in out and "relu4_3" in out
    code, out, _ = dreamvid(capsys, monkeypatch, "models", "inception5h")
    assert "mixed4d_3x3_bottleneck_pre_relu" in out


def test_presets_list_and_show(capsys, monkeypatch):
    required = {"fractal-zoom", "spiral-zoom", "flow-dream", "deep-objects", "soft-strokes", "noise-genesis",
                "beat-zoom"}
    assert required <= set(preset_names())
    for name in required:
        load_preset(name)  # every shipped preset validates
    code, out, _ = dreamvid(capsys, monkeypatch, "presets")
    assert code == 0 and all(name in out for name in required)
    code, out, _ = dreamvid(capsys, monkeypatch, "presets", "show", "flow-dream")
    assert code == 0 and 'mode = "flow"' in out and "carry" in out
    code, _, err = dreamvid(capsys, monkeypatch, "presets", "show", "nope")
    assert code != 0 and "fractal-zoom" in err
