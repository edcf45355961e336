"""torchvision ImageNet classifiers as dreamable backbones.

Each network is flattened into named stages in forward order; ``forward(x, layers)`` runs stages until
the deepest requested one, so nothing past it is computed. Weights come from an explicit file, a file
with the enum's file name in ``$DREAMVID_WEIGHTS`` or dreamvid's cache, or else torchvision's weight
enums (downloaded into torch's hub cache the normal way and checked against the hash in their URL;
not when ``$DREAMVID_OFFLINE`` is set). Whatever is loaded must fit the network exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

import torch
import torchvision.models as tvm
from torch import nn

from ..errors import ModelError
from . import weights as W

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: googlenet and inception_v3 weights were ported from TensorFlow and expect x*2-1
#: (torchvision's ``transform_input`` undoes the ImageNet normalisation to get there).
TF_MEAN, TF_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
LOGITS = "logits"
#: Auxiliary classifier heads that torchvision's googlenet (aux1, aux2) and inception_v3 (AuxLogits)
#: checkpoints contain but our networks, built with aux_logits=False, do not: dropped before loading.
AUX_HEADS = ("aux1.", "aux2.", "AuxLogits.")


def _vgg_stages(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """Name VGG's `features` as conv1_1, relu1_1, ..., pool5 (the names in the DeepDream literature)."""
    stages, block, index = [], 1, 1
    for module in net.features:
        if isinstance(module, nn.Conv2d):
            stages.append((f"conv{block}_{index}", module))
        elif isinstance(module, nn.ReLU):
            stages.append((f"relu{block}_{index}", nn.ReLU(inplace=False)))
            index += 1
        else:
            stages.append((f"pool{block}", module))
            block, index = block + 1, 1
    head = nn.Sequential(net.avgpool, nn.Flatten(1), net.classifier)
    return stages + [(LOGITS, head)]


def _resnet_stages(net: nn.Module) -> list[tuple[str, nn.Module]]:
    stages = [("conv1", nn.Sequential(net.conv1, net.bn1, net.relu)), ("maxpool", net.maxpool)]
    for name in ("layer1", "layer2", "layer3", "layer4"):
        stages += [(f"{name}.{i}", block) for i, block in enumerate(getattr(net, name))]
    return stages + [(LOGITS, nn.Sequential(net.avgpool, nn.Flatten(1), net.fc))]


def _named_children_stages(order: tuple[str, ...]) -> Callable[[nn.Module], list[tuple[str, nn.Module]]]:
    def stages(net: nn.Module) -> list[tuple[str, nn.Module]]:
        head = nn.Sequential(net.avgpool, nn.Flatten(1), net.fc)
        return [(name, getattr(net, name)) for name in order] + [(LOGITS, head)]

    return stages


_GOOGLENET = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
              "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
              "inception5a", "inception5b")
_INCEPTION_V3 = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                 "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                 "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")

#: name -> (constructor, weights enum, stage builder, (mean, std), default layer, builder kwargs)
TORCHVISION_MODELS: dict[str, tuple] = {
    "vgg16": (tvm.vgg16, tvm.VGG16_Weights.IMAGENET1K_V1, _vgg_stages, (IMAGENET_MEAN, IMAGENET_STD), "relu4_3", {}),
    "vgg19": (tvm.vgg19, tvm.VGG19_Weights.IMAGENET1K_V1, _vgg_stages, (IMAGENET_MEAN, IMAGENET_STD), "relu4_4", {}),
    "googlenet": (tvm.googlenet, tvm.GoogLeNet_Weights.IMAGENET1K_V1, _named_children_stages(_GOOGLENET),
                  (TF_MEAN, TF_STD), "inception4c", {"aux_logits": False, "init_weights": False}),
    "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V2, _resnet_stages,
                 (IMAGENET_MEAN, IMAGENET_STD), "layer3.5", {}),
    "inception_v3": (tvm.inception_v3, tvm.Inception_V3_Weights.IMAGENET1K_V1,
                     _named_children_stages(_INCEPTION_V3), (TF_MEAN, TF_STD), "Mixed_6c",
                     {"aux_logits": False, "init_weights": False}),
}


class StagedBackbone(nn.Module):
    """A classifier as an ordered list of named stages; see the module docstring."""

    logits_layer = LOGITS

    def __init__(self, name: str, stages: list[tuple[str, nn.Module]], mean: tuple[float, ...],
                 std: tuple[float, ...], default_layer: str, classes: tuple[str, ...]) -> None:
        super().__init__()
        self.name = name
        self.default_layer = default_layer
        self.stage_names = tuple(n for n, _ in stages)
        self.stages = nn.ModuleList(m for _, m in stages)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self._classes = classes

    def layer_names(self) -> tuple[str, ...]:
        return self.stage_names

    def class_names(self) -> tuple[str, ...]:
        return self._classes

    def forward(self, x: torch.Tensor, layers: Collection[str]) -> dict[str, torch.Tensor]:
        """x (B,3,H,W) RGB in [0,1] -> {layer: activation}; stops after the deepest requested layer."""
        wanted, out = set(layers), {}
        x = (x - self.mean) / self.std
        for name, stage in zip(self.stage_names, self.stages):
            x = stage(x)
            if name in wanted:
                out[name] = x
                if wanted <= out.keys():
                    break
        return out


def load_torchvision(name: str, weights: str | Path | None, random: bool = False) -> StagedBackbone:
    """Build torchvision network `name` with ImageNet weights (or untrained when `random`).

    Raises ModelError when the weights cannot be had or do not fit the network (missing, unexpected or
    wrongly shaped tensors), naming the file and the first offending key.
    """
    build, enum, stages, (mean, std), default_layer, kwargs = TORCHVISION_MODELS[name]
    net = build(weights=None, **kwargs)
    if not random:
        filename = Path(enum.url).name
        path = W.find_weights((filename,), weights)
        state = W.read_state_dict(path) if path else _download_state_dict(name, enum, filename)
        ours = net.state_dict()
        state = {k: v for k, v in state.items() if k in ours or not k.startswith(AUX_HEADS)}
        W.check_state_dict_fits(state, ours, str(path or enum.url), name, optional=("num_batches_tracked",))
        net.load_state_dict(state)
    return StagedBackbone(name, stages(net), mean, std, default_layer, tuple(enum.meta["categories"]))


def _download_state_dict(name: str, enum: tvm.WeightsEnum, filename: str) -> dict[str, torch.Tensor]:
    """torchvision's own ImageNet weights for `name`, from torch's hub cache or downloaded into it."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hint = f"put {filename} into {hub}, ${W.ENV_DIR} or {W.cache_dir()}, or pass --weights FILE"
    if W.offline() and not (hub / filename).is_file():
        raise ModelError(f"{name} weights are not in {hub} and ${W.ENV_OFFLINE} forbids downloading them", hint=hint)
    try:
        # check_hash: torchvision's file names carry the first digits of their sha256.
        return enum.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # no network, HTTP error, hash mismatch, truncated file
        raise ModelError(f"cannot get {name} weights ({str(exc).splitlines()[0]})", hint=hint) from exc
