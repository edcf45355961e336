"""`dreamvid batch`: a jobs file of several renders, checked up front, run here one after the other."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import SAMPLES, dreamvid
from renderer import media

OVERRIDES = ["dream.working_size=0", "dream.steps=1", "dream.octaves=1", "dream.first_steps=1", "dream.first_octaves=1", "dream.objective=mixed3b"]
FAST_SET = "[" + ", ".join(f'"{o}"' for o in OVERRIDES) + "]"


def jobs_file(folder: Path, *jobs: str) -> Path:
    path = folder / "jobs.toml"
    path.write_text("\n".join(f"[[job]]\n{job}\nset = {FAST_SET}\n" for job in jobs))
    return path


ZOOM = 'input = "noise"\noutput = "zoom.mp4"\nframes = 6\nsize = "48x32"\npreset = "fractal-zoom"'
STILL = f'input = "{SAMPLES / "chelsea.jpg"}"\noutput = "frames_v1.2/"\nframes = 4\nsize = "48x32"\npreset = ["fractal-zoom", "spiral-zoom"]\nseed = 3'


def test_batch_renders_every_job_with_its_own_settings(capsys, monkeypatch, tmp_path):
    jobs = jobs_file(tmp_path, ZOOM, STILL)
    code, out, err = dreamvid(capsys, monkeypatch, "batch", jobs, "--quiet")
    assert code == 0, err
    assert media.count_frames(tmp_path / "zoom.mp4") == 6
    assert len(list((tmp_path / "frames_v1.2").glob("*.png"))) == 4
    assert (tmp_path / "frames_v1.2.toml").exists() and (tmp_path / "zoom.toml").exists()
    assert out.count("wrote") == 2
    # Done jobs are skipped with --resume; without it, nothing is overwritten.
    code, out, err = dreamvid(capsys, monkeypatch, "batch", jobs, "--resume", "--quiet")
    assert code == 0 and "wrote" not in out, err
    code, _, err = dreamvid(capsys, monkeypatch, "batch", jobs, "--quiet")
    assert code == 2 and "job 1" in err and "exists" in err


def test_a_typo_in_a_later_job_fails_before_the_first_starts(capsys, monkeypatch, tmp_path):
    jobs = jobs_file(tmp_path, ZOOM, ZOOM.replace("zoom.mp4", "b.mp4").replace("fractal-zoom", "fractal-zom"))
    code, _, err = dreamvid(capsys, monkeypatch, "batch", jobs, "--quiet")
    assert code == 2 and "job 2" in err and "fractal-zoom" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "zoom.mp4").exists() and not list(tmp_path.glob("*.dreamvid-partial"))

    jobs = jobs_file(tmp_path, ZOOM, ZOOM.replace("zoom.mp4", "b.mp4").replace("frames =", "frame ="))
    code, _, err = dreamvid(capsys, monkeypatch, "batch", jobs, "--quiet")
    assert code == 2 and "job 2" in err and "did you mean 'frames'" in err

    jobs = jobs_file(tmp_path, ZOOM, ZOOM)
    code, _, err = dreamvid(capsys, monkeypatch, "batch", jobs, "--quiet")
    assert code == 2 and "jobs 1 and 2 both write" in err


def test_batch_frames_are_those_of_single_renders(capsys, monkeypatch, tmp_path):
    """A job renders exactly what `dreamvid render` with the same options does (PNG: exact frames)."""
    jobs = jobs_file(tmp_path, STILL)
    assert dreamvid(capsys, monkeypatch, "batch", jobs, "--quiet")[0] == 0
    single = tmp_path / "single"
    code, _, err = dreamvid(capsys, monkeypatch, "render", SAMPLES / "chelsea.jpg", "-o", f"{single}/", "--frames", "4",
                            "--size", "48x32", "--preset", "fractal-zoom", "--preset", "spiral-zoom", "--seed", "3",
                            "--quiet", *[f"--set={o}" for o in OVERRIDES])
    assert code == 0, err
    for a, b in zip(sorted((tmp_path / "frames_v1.2").glob("*.png")), sorted(single.glob("*.png")), strict=True):
        assert np.array_equal(media.load_image(a), media.load_image(b))
