"""Bad input, as users type it: one clear line naming the problem and the fix, a non-zero exit, no
traceback, nothing created and nothing overwritten. Every check runs before the render touches the disk."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import SAMPLES, dreamvid, ffmpeg
from renderer import media
from renderer.workdir import WorkDir


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=12:duration=1", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           str(d / "clip.mp4"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=330:duration=1", str(d / "audio_only.m4a"))
    data = (d / "clip.mp4").read_bytes()
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("not a video\n")
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (d / "random.mp4").write_bytes(os.urandom(len(data)))
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    (d / "not-toml.toml").write_text("mode = feedback\n[dream\nsteps = 3\n")
    (d / "a-file").write_text("I am a file, not a folder\n")
    (d / "no-frames").mkdir()
    (d / "no-frames" / "notes.txt").write_text("no images here\n")
    return {p.name: p for p in d.iterdir()}


#: (input, extra arguments, words the one line must contain). Output is tmp/out.mp4 unless -o is given.
BAD = {
    "missing file": ("missing.mp4", [], "no such file"),
    "empty file": ("empty.mp4", [], "empty.mp4"),
    "text named .mp4": ("text.mp4", [], "text.mp4"),
    "truncated video": ("truncated.mp4", [], "truncated.mp4"),
    "random bytes": ("random.mp4", [], "random.mp4"),
    "corrupt image": ("broken.png", [], "broken.png"),
    "audio only": ("audio_only.m4a", [], "no video stream"),
    "folder without frames": ("no-frames", [], "no-frames"),
    "start past the end": ("clip.mp4", ["--start", "5"], "--start"),
    "end before start": ("clip.mp4", ["--start", "0.5", "--end", "0.2"], "--end"),
    "huge size": ("clip.mp4", ["--size", "100000x100000"], "too large"),
    "size not WxH": ("clip.mp4", ["--size", "big"], "WIDTHxHEIGHT"),
    "zero fps": ("clip.mp4", ["--fps", "0"], "--fps"),
    "negative fps": ("clip.mp4", ["--fps", "-24"], "--fps"),
    "fps in the preset": ("clip.mp4", ["--set", "output.fps=0"], "output.fps"),
    "unknown preset": ("clip.mp4", ["--preset", "fractal-zom"], "did you mean 'fractal-zoom'"),
    "preset file missing": ("clip.mp4", ["--preset", "mine.toml"], "preset file not found"),
    "preset not TOML": ("clip.mp4", ["--preset", "@not-toml.toml"], "not a valid TOML preset"),
    "misspelled key": ("clip.mp4", ["--set", "dream.stpes=3"], "did you mean 'dream.steps'"),
    "misspelled section": ("clip.mp4", ["--set", "moton.zoom=1.2"], "did you mean 'motion'"),
    "bad --set": ("clip.mp4", ["--set", "dream.steps"], "section.key=value"),
    "unclosed keyframe": ("clip.mp4", ["--set", "motion.zoom=0:(1), 48:(1.04"], 'missing ")"'),
    "python import": ("clip.mp4", ["--set", "motion.zoom=__import__('os').system('true')"], "motion.zoom"),
    "attribute access": ("clip.mp4", ["--set", "motion.angle=t.__class__"], "motion.angle"),
    "lambda": ("clip.mp4", ["--set", "motion.zoom=(lambda: 1)()"], "motion.zoom"),
    "unknown variable": ("clip.mp4", ["--set", "motion.zoom=1 + speed"], "speed"),
    "value out of range": ("clip.mp4", ["--set", "motion.mix=1.5"], "out of range"),
    "wrong type": ("clip.mp4", ["--set", "dream.jitter=lots"], "whole number"),
    "bad precision": ("clip.mp4", ["--set", "dream.precision=fp64"], "fp32"),
    "beats without a tempo": ("clip.mp4", ["--no-audio", "--set", "motion.zoom=0:(1), 8b:(1.5)"], "--bpm"),
    "unknown layer": ("clip.mp4", ["--set", "dream.objective=mixed9"], "valid layers"),
    "unknown class": ("clip.mp4", ["--set", "dream.objective=class:notaclassatall"], "notaclassatall"),
    "missing guide image": ("clip.mp4", ["--set", "dream.objective=guide:nowhere.jpg"], "nowhere.jpg"),
    "unknown model": ("clip.mp4", ["--set", "model.name=alexnet"], "inception5h"),
    "missing weights file": ("clip.mp4", ["--set", "model.weights=nowhere.safetensors"], "nowhere.safetensors"),
    "flow on an image": (str(SAMPLES / "chelsea.jpg"), ["--preset", "flow-dream"], "flow mode needs a video"),
    "missing soundtrack": ("clip.mp4", ["--audio", "nowhere.wav"], "nowhere.wav"),
    "soundtrack without sound": ("clip.mp4", ["--audio", "@text.mp4"], "text.mp4"),
    "unknown output type": ("clip.mp4", ["-o", "out.avi"], ".mp4"),
    "output folder missing": ("clip.mp4", ["-o", "/nonexistent-dir/out.mp4"], "does not exist"),
    "output under a file": ("clip.mp4", ["-o", "@a-file/out.mp4"], "is a file, not a folder"),
    "output is the input": ("clip.mp4", ["-o", "@clip.mp4", "--overwrite"], "also an input"),
    "unknown device": ("clip.mp4", ["--device", "tpu"], "tpu"),
}


def _resolve(value: str, files: dict[str, Path], tmp_path: Path) -> str:
    """'@name' or '@name/more' starts at a prepared file; anything else is used as written."""
    if not value.startswith("@"):
        return value
    name, _, rest = value[1:].partition("/")
    return str(files[name] / rest) if rest else str(files[name])


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_clear_line_and_creates_nothing(capsys, monkeypatch, tmp_path, files, case):
    source, extra, words = BAD[case]
    monkeypatch.chdir(tmp_path)
    source = str(files.get(source, source))
    extra = [_resolve(v, files, tmp_path) for v in extra]
    before = set(tmp_path.iterdir()) | set(files["clip.mp4"].parent.iterdir())
    args = ["render", source, *extra, "--quiet"] + ([] if "-o" in extra else ["-o", tmp_path / "out.mp4"])
    code, _, err = dreamvid(capsys, monkeypatch, *args)
    lines = err.strip().splitlines()
    assert code != 0, err
    assert len(lines) == 1 and lines[0].startswith("dreamvid: error: ") and words in lines[0], err
    assert "Traceback" not in err
    after = set(tmp_path.iterdir()) | set(files["clip.mp4"].parent.iterdir())
    assert after == before  # no output, no work folder, no settings file, no probe left over


def test_an_existing_output_and_settings_file_are_never_replaced(capsys, monkeypatch, tmp_path, files):
    """Including the settings file beside the output: `--preset mylook.toml -o mylook.mp4` once replaced
    the user's own commented preset with the saved settings."""
    look = tmp_path / "mylook.toml"
    look.write_text("# my favourite look\nmode = \"feedback\"\n[dream]\nsteps = 1\nfirst_steps = 1\n"
                    "octaves = 1\nfirst_octaves = 1\nobjective = \"mixed3a\"\n")
    original = look.read_text()
    for extra in ([], ["--overwrite"]):
        code, _, err = dreamvid(capsys, monkeypatch, "render", files["clip.mp4"], "--preset", look, "-o",
                             tmp_path / "mylook.mp4", "--quiet", *extra)
        assert code != 0 and "the preset it reads" in err and len(err.strip().splitlines()) == 1, err
    assert look.read_text() == original and not (tmp_path / "mylook.mp4").exists()

    out, settings = tmp_path / "render.mp4", tmp_path / "render.toml"
    settings.write_text("# notes I keep beside my render\n")
    code, _, err = dreamvid(capsys, monkeypatch, "render", files["clip.mp4"], "--preset", look, "-o", out, "--quiet")
    assert code != 0 and "render.toml exists" in err and "--overwrite" in err
    assert settings.read_text() == "# notes I keep beside my render\n" and not out.exists()

    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frame_000001.png").write_bytes(b"keep me")
    code, _, err = dreamvid(capsys, monkeypatch, "render", files["clip.mp4"], "--preset", look, "-o", f"{frames}/",
                         "--quiet")
    assert code != 0 and "exists" in err and (frames / "frame_000001.png").read_bytes() == b"keep me"


def test_a_failed_start_leaves_nothing_that_blocks_the_corrected_command(capsys, monkeypatch, tmp_path, files):
    """A typo in the objective is found before the work folder exists, so the fixed command just runs."""
    out = tmp_path / "out.mp4"
    fast = ["--quiet", "--set", "dream.working_size=0", "--set", "dream.steps=1", "--set", "dream.first_steps=1", "--set", "dream.octaves=1",
            "--set", "dream.first_octaves=1", "--frames", "3"]
    code, _, err = dreamvid(capsys, monkeypatch, "render", files["clip.mp4"], "-o", out, *fast,
                         "--set", "dream.objective=mixd3a")
    assert code != 0 and "mixd3a" in err
    assert not WorkDir(out, media.output_format(out)).exists()
    code, _, err = dreamvid(capsys, monkeypatch, "render", files["clip.mp4"], "-o", out, *fast,
                         "--set", "dream.objective=mixed3a")
    assert code == 0, err
    assert media.count_frames(out) == 3


def _as_nobody() -> None:
    os.setgid(65534)
    os.setuid(65534)


@pytest.fixture
def unwritable_folder(tmp_path) -> Path:
    """A folder this process cannot write to, also as root: a read-only mount (root ignores modes)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
        yield folder
        subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)


def test_unwritable_output_folder(capsys, monkeypatch, unwritable_folder, files):
    code, _, err = dreamvid(capsys, monkeypatch, "render", files["clip.mp4"], "-o", unwritable_folder / "o.mp4",
                         "--quiet")
    assert code != 0 and "cannot write to" in err and len(err.strip().splitlines()) == 1, err
    assert list(unwritable_folder.iterdir()) == []


def test_an_ffmpeg_too_old_for_the_pipeline_is_refused_before_anything_is_dreamed(capsys, monkeypatch, tmp_path):
    """imageio-ffmpeg 0.5 ships ffmpeg 4.2, which lacks the ``setts`` filter the final join needs: a render
    with it dreamed every frame and then failed. A stand-in executable answers as ffmpeg 4.2.2 does."""
    old = tmp_path / "ffmpeg-4.2.2"
    old.write_text("#!/bin/sh\n"
                   'case "$*" in *-bsfs*) printf "Bitstream filters:\\naac_adtstoasc\\nh264_mp4toannexb\\nnull\\n";;\n'
                   '  *) echo "ffmpeg version 4.2.2-static https://johnvansickle.com/ffmpeg/";; esac\n')
    old.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(old))
    out = tmp_path / "out.mp4"
    code, _, err = dreamvid(capsys, monkeypatch, "render", "noise", "-o", out, "--frames", "2", "--size", "64x36")
    assert code != 0
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line, err
    assert "too old" in line and "4.2.2" in line and "setts" in line and "imageio-ffmpeg>=0.6" in line, line
    assert list(tmp_path.iterdir()) == [old], "nothing is created"
