"""The backbones: a faithful inception5h port (checked by classification), truncation, weights."""

from __future__ import annotations

import re
import shutil

import torch
import torch.nn.functional as F
import torchvision.models as tvm
from safetensors.torch import load_file, save_file

import pytest
from conftest import sample_image
from renderer.errors import ModelError
from renderer.models import INCEPTION5H_FILES, LOGITS, RANDOM_WEIGHTS, available_models, load_backbone
from renderer.models import weights as W
from renderer.models.inception5h import Inception5h, local_response_norm, max_pool_same_3x3s2

PACKAGED = W.DATA_DIR / "inception5h.safetensors"


@pytest.mark.parametrize(("image", "label", "min_p"), [("chelsea.jpg", "Egyptian cat", 0.9),
                                                        ("coffee.jpg", "espresso", 0.95)])
def test_inception5h_classifies_sample_photos(inception, image, label, min_p):
    x = sample_image(image, (224, 224))
    probs = inception(x, [LOGITS])[LOGITS].softmax(-1)[0]
    top = int(probs.argmax())
    assert inception.class_names()[top].split(",")[0] == label
    assert float(probs[top]) > min_p


def test_fast_lrn_matches_pytorch_and_its_gradient():
    x = (torch.rand(1, 24, 9, 13, dtype=torch.float64) * 4).requires_grad_(True)
    reference = torch.nn.LocalResponseNorm(11, alpha=0.0011, beta=0.5, k=2.0)
    assert torch.allclose(local_response_norm(x), reference(x), atol=1e-12)
    assert torch.autograd.gradcheck(local_response_norm, (x,))


@pytest.mark.parametrize("size", [(8, 8), (9, 9), (8, 11), (13, 6)])
def test_max_pool_matches_tensorflow_same_padding(size):
    x = torch.rand(1, 4, *size) - 0.5  # negative values too: padding must act like -inf
    h, w = size
    pad_h, pad_w = (2 if h % 2 else 1), (2 if w % 2 else 1)  # SAME total padding for 3x3/2
    padded = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=float("-inf"))
    assert torch.equal(max_pool_same_3x3s2(x), F.max_pool2d(padded, 3, 2))


def test_forward_stops_at_the_deepest_requested_layer(inception):
    calls = []
    hook = inception.blocks[5].register_forward_hook(lambda *a: calls.append(1))  # mixed4d
    try:
        out = inception(torch.rand(1, 3, 67, 91), ["mixed3a", "mixed4c"])
    finally:
        hook.remove()
    assert set(out) == {"mixed3a", "mixed4c"} and not calls
    assert out["mixed4c"].shape == (1, 512, 5, 6)  # SAME padding: ceil(67/16), ceil(91/16)
    assert not any(p.requires_grad for p in inception.parameters())


@pytest.mark.parametrize("name", [n for n in available_models() if n != "inception5h"])
def test_torchvision_backbones_expose_layers_and_truncate(name):
    net = load_backbone(name, weights=RANDOM_WEIGHTS)
    layers = net.layer_names()
    assert net.default_layer in layers and layers[-1] == net.logits_layer
    out = net(torch.rand(1, 3, 96, 128), [net.default_layer])
    assert set(out) == {net.default_layer}
    assert net(torch.rand(1, 3, 96, 128), [net.logits_layer])[net.logits_layer].shape == (1, 1000)
    assert len(net.class_names()) == 1000
    assert not any(p.requires_grad for p in net.parameters())


def test_weights_with_changed_values_are_rejected(tmp_path):
    state = load_file(PACKAGED)
    changed = dict(state, **{"mixed4c_3x3_pre_relu_conv.weight": state["mixed4c_3x3_pre_relu_conv.weight"] * 1.01})
    bad = tmp_path / "inception5h.safetensors"
    save_file(changed, str(bad))
    with pytest.raises(ModelError, match="differ from the known-good"):
        load_backbone("inception5h", weights=bad)
    torch.save({k: v for k, v in state.items() if "mixed5b" not in k}, tmp_path / "partial.pth")
    with pytest.raises(ModelError, match="lacks tensor mixed5b"):
        load_backbone("inception5h", weights=tmp_path / "partial.pth")


def test_pth_state_dict_loads_like_the_safetensors(tmp_path, inception):
    state = load_file(PACKAGED)
    torch.save(state, tmp_path / "inception5h.pth")
    net = load_backbone("inception5h", weights=tmp_path / "inception5h.pth")
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(net(x, ["mixed3b"])["mixed3b"], inception(x, ["mixed3b"])["mixed3b"])


def no_weights_but_the_packaged(tmp_path, monkeypatch) -> None:
    """No $DREAMVID_WEIGHTS, an empty cache, downloads forbidden: only the packaged file is left."""
    monkeypatch.delenv("DREAMVID_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DREAMVID_OFFLINE", "1")


def test_default_weights_ship_inside_the_package(tmp_path, monkeypatch):
    no_weights_but_the_packaged(tmp_path, monkeypatch)
    net = load_backbone("inception5h")
    state = load_file(PACKAGED)
    assert torch.equal(net.conv2d0_pre_relu_conv.bias, state["conv2d0_pre_relu_conv.bias"])
    assert W.find_weights(INCEPTION5H_FILES, None) == PACKAGED


def test_damaged_packaged_weights_are_refused_by_sha256(tmp_path, monkeypatch):
    W.verify_sha256(PACKAGED, W.PACKAGED_SHA256[PACKAGED.name])  # the shipped file is intact
    damaged_dir = tmp_path / "data"
    damaged_dir.mkdir()
    damaged = damaged_dir / PACKAGED.name
    data = bytearray(PACKAGED.read_bytes())
    data[-1000] ^= 0x01  # one bit of one float: still a readable safetensors file
    damaged.write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        W.verify_sha256(damaged, W.PACKAGED_SHA256[PACKAGED.name])
    assert "damaged" in str(info.value) and "reinstall" in str(info.value) and "\n" not in str(info.value)

    no_weights_but_the_packaged(tmp_path, monkeypatch)
    monkeypatch.setattr(W, "DATA_DIR", damaged_dir)
    with pytest.raises(ModelError, match=f"packaged weights {re.escape(str(damaged))} are damaged.*reinstall"):
        load_backbone("inception5h")


def test_relative_weights_folder_resolves_against_the_working_directory(tmp_path, monkeypatch):
    no_weights_but_the_packaged(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    shutil.copy(PACKAGED, tmp_path / "w" / "inception5h.safetensors")
    monkeypatch.setenv("DREAMVID_WEIGHTS", "w")
    assert W.find_weights(INCEPTION5H_FILES, None) == tmp_path / "w" / "inception5h.safetensors"
    load_backbone("inception5h")

    # A file there is what gets loaded (and verified by its values, not trusted like the packaged one).
    state = load_file(PACKAGED)
    state["mixed3a_1x1_pre_relu_conv.bias"] = state["mixed3a_1x1_pre_relu_conv.bias"] + 1
    save_file(state, str(tmp_path / "w" / "inception5h.safetensors"))
    absolute = re.escape(str(tmp_path / "w" / "inception5h.safetensors"))
    with pytest.raises(ModelError, match=f"{absolute}: values of mixed3a_1x1"):
        load_backbone("inception5h")

    monkeypatch.setenv("DREAMVID_WEIGHTS", "missing")
    with pytest.raises(ModelError) as info:
        load_backbone("inception5h")
    message = str(info.value)
    assert f"$DREAMVID_WEIGHTS names a folder that does not exist: {tmp_path / 'missing'} -" in message
    assert "\n" not in message


def test_torchvision_weights_must_fit_the_network(tmp_path):
    # torchvision's googlenet checkpoint carries the aux heads that our aux_logits=False net drops.
    checkpoint = tvm.googlenet(weights=None, aux_logits=True, init_weights=False).state_dict()
    assert any(k.startswith("aux1.") for k in checkpoint)
    torch.save(checkpoint, tmp_path / "googlenet.pth")
    net = load_backbone("googlenet", weights=tmp_path / "googlenet.pth")
    assert torch.equal(net.stages[0].conv.weight, checkpoint["conv1.conv.weight"])

    torch.save({k: v for k, v in checkpoint.items() if k != "fc.bias"}, tmp_path / "truncated.pth")
    with pytest.raises(ModelError, match=r"truncated.pth does not fit googlenet: 1 missing tensors \(e.g. fc.bias\)"):
        load_backbone("googlenet", weights=tmp_path / "truncated.pth")
    torch.save(tvm.googlenet(weights=None, aux_logits=False, init_weights=False, num_classes=10).state_dict(),
               tmp_path / "ten-classes.pth")
    with pytest.raises(ModelError, match=r"with the wrong shape \(e.g. fc.weight: \[10, 1024\]"):
        load_backbone("googlenet", weights=tmp_path / "ten-classes.pth")
    with pytest.raises(ModelError) as info:
        load_backbone("resnet50", weights=PACKAGED)
    message = str(info.value)
    assert f"{PACKAGED} does not fit resnet50" in message and "unexpected (e.g. conv2d0_pre_relu_conv" in message
    assert message.endswith("is this a weight file for resnet50?") and "\n" not in message


def test_unknown_model_lists_the_choices():
    with pytest.raises(ModelError, match="vgg16"):
        load_backbone("alexnet")
    assert isinstance(Inception5h().layer_names(), tuple)


@pytest.mark.parametrize("size", [(8, 8), (9, 9), (10, 13), (31, 6)])
def test_stem_conv_equals_the_7x7_stride_2_same_convolution(inception, size):
    x = torch.rand(1, 3, *size, dtype=torch.float64, requires_grad=True)
    conv = inception.conv2d0_pre_relu_conv.double()
    try:
        h, w = size
        pads = [(max((-(-n // 2) - 1) * 2 + 7 - n, 0)) for n in (w, h)]
        reference = F.conv2d(F.pad(x, (pads[0] // 2, pads[0] - pads[0] // 2, pads[1] // 2, pads[1] - pads[1] // 2)),
                             conv.weight, conv.bias, stride=2)
        ours = conv(x)
        assert ours.shape == reference.shape
        assert torch.allclose(ours, reference, atol=1e-10)
        g1, = torch.autograd.grad(ours.sum(), x)
        g2, = torch.autograd.grad(reference.sum(), x)
        assert torch.allclose(g1, g2, atol=1e-10)
    finally:
        conv.float()
