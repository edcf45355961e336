"""The classic DeepDream network: Google's GoogLeNet "inception5h" as a PyTorch module.

A faithful port of the TensorFlow graph (``tensorflow_inception_graph.pb``) with the parameter names of
the widely used PyTorch port (lucent's ``InceptionV1``), so the same state dict loads from
``inception5h.safetensors`` or the public ``inception5h.pth``.

Conventions:
    * input: RGB in [0, 1], shape (B, 3, H, W), any H, W >= 1; converted inside to the network's own
      range (0..255 minus 117, one mean for all channels);
    * TensorFlow "SAME" padding everywhere, computed from the actual input size, so odd sizes work;
    * layer outputs are after ReLU (``mixed4c`` is the concatenation of its four branches), except the
      ``*_pre_relu`` branch layers and ``softmax2_pre_activation`` (the 1008 class logits).

Speed: the two local response normalisations and the padded max-pools are written so that they cost
a small fraction of the convolutions (PyTorch's ``LocalResponseNorm`` builds on ``avg_pool3d`` and
took over half of a dream step on CPU).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from functools import cache
from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

#: Inception blocks in depth order with their channel counts
#: (in, 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool reduce).
BLOCKS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "mixed3a": (192, 64, 96, 128, 16, 32, 32),
    "mixed3b": (256, 128, 128, 192, 32, 96, 64),
    "mixed4a": (480, 192, 96, 204, 16, 48, 64),
    "mixed4b": (508, 160, 112, 224, 24, 64, 64),
    "mixed4c": (512, 128, 128, 256, 24, 64, 64),
    "mixed4d": (512, 112, 144, 288, 32, 64, 64),
    "mixed4e": (528, 256, 160, 320, 32, 128, 128),
    "mixed5a": (832, 256, 160, 320, 48, 128, 128),
    "mixed5b": (832, 384, 192, 384, 48, 128, 128),
}
#: Blocks followed by a 3x3/2 max-pool.
POOL_AFTER = ("mixed3b", "mixed4e")
BRANCHES = ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5", "pool_reduce")
STEM = ("conv2d0", "conv2d1", "conv2d2")
LOGITS = "softmax2_pre_activation"
N_CLASSES = 1008
INPUT_MEAN = 117.0


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding (before, after) for one spatial dimension of `size` pixels."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def max_pool_same_3x3s2(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-2 max-pool with TensorFlow SAME padding, without materialising a padded copy.

    SAME pads (0, 1) on an even dimension and (1, 1) on an odd one; ``ceil_mode`` gives the trailing
    half-window and padding 1 the leading one. PyTorch pads max-pools with -inf, as TensorFlow does.
    """
    h, w = x.shape[-2:]
    return F.max_pool2d(x, 3, 2, padding=(h % 2, w % 2), ceil_mode=True)


def _window_sum(v: torch.Tensor, size: int) -> torch.Tensor:
    """Sum of `v` (B,C,H,W) over the `size` channels centred on each channel (clipped at the ends),
    from one cumulative sum: O(C) per pixel whatever the window."""
    channels, half = v.shape[1], size // 2
    c = torch.cumsum(v, 1)
    out = torch.empty_like(v)
    out[:, : channels - half] = c[:, half:]
    out[:, channels - half:] = c[:, channels - 1: channels]
    out[:, half + 1:] -= c[:, : channels - half - 1]
    return out


class _LRN(torch.autograd.Function):
    """Local response normalisation across channels with an analytic backward.

    y = x * r with r = d^-beta, d = k + alpha/size * (window sum of x^2 over `size` channels). Saves r
    (not d) so the backward needs no extra power; beta = 0.5 (inception5h) uses rsqrt and r^3.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
        r = _window_sum(x * x, size).mul_(alpha / size).add_(k)
        r = r.rsqrt_() if beta == 0.5 else r.pow_(-beta)
        ctx.save_for_backward(x, r)
        ctx.params = (size, alpha, beta)
        return x * r

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, r = ctx.saved_tensors
        size, alpha, beta = ctx.params
        # dL/dx_i = g_i r_i - (2 a b / n) x_i * sum_{j in win(i)} g_j x_j d_j^(-b-1),  d^(-b-1) = r * r^(1/b)
        inner = (grad_y * x).mul_(r)
        inner = inner.mul_(r).mul_(r) if beta == 0.5 else inner.mul_(r.pow(1.0 / beta))
        grad_x = (grad_y * r).addcmul_(x, _window_sum(inner, size), value=-2.0 * alpha * beta / size)
        return grad_x, None, None, None, None


def local_response_norm(x: torch.Tensor, size: int = 11, alpha: float = 0.0011, beta: float = 0.5,
                        k: float = 2.0) -> torch.Tensor:
    """Same maths as ``nn.LocalResponseNorm(size, alpha, beta, k)`` on (B, C, H, W), much faster.

    Half precision inputs are computed in fp32: the running sum over channels cancels catastrophically
    in bf16/fp16."""
    if x.dtype in (torch.float32, torch.float64):
        return _LRN.apply(x, size, alpha, beta, k)
    return _LRN.apply(x.float(), size, alpha, beta, k).to(x.dtype)


class _Conv(nn.Conv2d):
    """Conv with TensorFlow SAME padding; symmetric padding is passed to the conv (no copy)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        sh, sw = self.stride
        if (kh, kw) == (1, 1) and (sh, sw) == (1, 1):
            return F.conv2d(x, self.weight, self.bias)
        top, bottom = _same_pad(x.shape[-2], kh, sh)
        left, right = _same_pad(x.shape[-1], kw, sw)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride)


class _StemConv(_Conv):
    """The 7x7 stride-2 input convolution, computed as a 4x4 stride-1 convolution on 2x2 pixel blocks.

    Same result (the 7x7 kernel is zero-padded to 8x8 and regrouped by ``pixel_unshuffle``), but 12
    input channels instead of 3: oneDNN's gradient for a 3-channel input ran at ~70 GFLOP/s and took
    12 % of a dream step; this form takes half the time.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _same_pad(x.shape[-2], 7, 2)
        left, right = _same_pad(x.shape[-1], 7, 2)
        bottom += (x.shape[-2] + top + bottom) % 2  # an even padded size; the extra zeros meet the zero 8th tap
        right += (x.shape[-1] + left + right) % 2
        blocks = F.pixel_unshuffle(F.pad(x, (left, right, top, bottom)), 2)
        weight = F.pixel_unshuffle(F.pad(self.weight, (0, 1, 0, 1)), 2)
        return F.conv2d(blocks, weight.contiguous(memory_format=torch.channels_last), self.bias)


class _Mixed(nn.Module):
    """One inception block; parameters named ``{block}_{branch}_pre_relu_conv`` as in the weight files."""

    def __init__(self, name: str, channels: tuple[int, int, int, int, int, int, int]) -> None:
        super().__init__()
        cin, c1, c3r, c3, c5r, c5, cp = channels
        self.name = name
        specs = {"1x1": (cin, c1, 1), "3x3_bottleneck": (cin, c3r, 1), "3x3": (c3r, c3, 3),
                 "5x5_bottleneck": (cin, c5r, 1), "5x5": (c5r, c5, 5), "pool_reduce": (cin, cp, 1)}
        for branch, (i, o, k) in specs.items():
            self.add_module(f"{name}_{branch}_pre_relu_conv", _Conv(i, o, k))

    def conv(self, branch: str) -> _Conv:
        return getattr(self, f"{self.name}_{branch}_pre_relu_conv")

    def forward(self, x: torch.Tensor, pool: Callable[[torch.Tensor], torch.Tensor],
                record: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        pre = {
            "1x1": self.conv("1x1")(x),
            "3x3_bottleneck": self.conv("3x3_bottleneck")(x),
            "5x5_bottleneck": self.conv("5x5_bottleneck")(x),
            "pool_reduce": self.conv("pool_reduce")(pool(x)),
        }
        pre["3x3"] = self.conv("3x3")(F.relu(pre["3x3_bottleneck"]))
        pre["5x5"] = self.conv("5x5")(F.relu(pre["5x5_bottleneck"]))
        if record is not None:
            for branch, value in pre.items():
                record[f"{self.name}_{branch}_pre_relu"] = value
        return F.relu(torch.cat([pre["1x1"], pre["3x3"], pre["5x5"], pre["pool_reduce"]], 1))


class Inception5h(nn.Module):
    """GoogLeNet inception5h. ``forward(x, layers)`` returns the requested activations and stops
    computing after the deepest one (the rest of the network costs nothing).
    """

    name = "inception5h"
    default_layer = "mixed4c"
    #: The non-convolution ops, as attributes so a comparison port can swap them (benchmarks/).
    lrn = staticmethod(local_response_norm)
    pool_s2 = staticmethod(max_pool_same_3x3s2)
    #: Block inputs are post-ReLU, so the stride-1 SAME max-pool is symmetric padding by 1.
    pool_s1 = staticmethod(functools.partial(F.max_pool2d, kernel_size=3, stride=1, padding=1))

    def __init__(self) -> None:
        super().__init__()
        self.conv2d0_pre_relu_conv = _StemConv(3, 64, 7, stride=2)
        self.conv2d1_pre_relu_conv = _Conv(64, 64, 1)
        self.conv2d2_pre_relu_conv = _Conv(64, 192, 3)
        self.blocks = nn.ModuleList(_Mixed(n, c) for n, c in BLOCKS.items())
        self.softmax2_pre_activation_matmul = nn.Linear(1024, N_CLASSES)
        self.requires_grad_(False)

    logits_layer = LOGITS

    @staticmethod
    @cache
    def class_names() -> tuple[str, ...]:
        """1008 class names in the network's order (index 0 is a dummy class), synset ids dropped."""
        lines = resources.files("renderer.data").joinpath("inception5h-labels.txt").read_text().splitlines()
        return tuple(line.split(" ", 1)[1] if line.startswith("n0") else line for line in lines)

    @staticmethod
    def layer_names() -> tuple[str, ...]:
        """Dreamable layers in depth order: stem, blocks, each block's branch convs, class logits."""
        names: list[str] = list(STEM)
        for block in BLOCKS:
            names += [f"{block}_{b}_pre_relu" for b in BRANCHES] + [block]
        return (*names, LOGITS)

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a state dict keyed as in the weight files (``mixed4c_1x1_pre_relu_conv.weight``...).

        Raises KeyError/RuntimeError on missing keys or wrong shapes; extra keys (auxiliary heads) are ignored.
        """
        ours = {}
        for key, value in state_dict.items():
            block = key.split("_", 1)[0]
            name = f"blocks.{list(BLOCKS).index(block)}.{key}" if block in BLOCKS else key
            ours[name] = value
        expected = self.state_dict().keys()
        missing = [k for k in expected if k not in ours]
        if missing:
            raise KeyError(f"missing {len(missing)} tensors, e.g. {missing[0]}")
        self.load_state_dict({k: ours[k] for k in expected})

    def forward(self, x: torch.Tensor, layers: Collection[str]) -> dict[str, torch.Tensor]:
        """Args: x (B,3,H,W) RGB in [0,1]; layers: names from :meth:`layer_names`.
        Returns: {name: activation (B,C,h,w) or (B,1008) for the logits}."""
        wanted = set(layers)
        out: dict[str, torch.Tensor] = {}

        def keep(name: str, value: torch.Tensor) -> bool:
            if name in wanted:
                out[name] = value
            return wanted <= out.keys()

        x = x * 255.0 - INPUT_MEAN
        x = F.relu(self.conv2d0_pre_relu_conv(x))
        if keep("conv2d0", x):
            return out
        x = self.lrn(self.pool_s2(x))
        x = F.relu(self.conv2d1_pre_relu_conv(x))
        if keep("conv2d1", x):
            return out
        x = F.relu(self.conv2d2_pre_relu_conv(x))
        if keep("conv2d2", x):
            return out
        x = self.pool_s2(self.lrn(x))
        for block in self.blocks:
            record: dict[str, torch.Tensor] | None = {} if any(n.startswith(block.name + "_") for n in wanted) else None
            x = block(x, self.pool_s1, record)
            for name, value in (record or {}).items():
                keep(name, value)
            if keep(block.name, x):
                return out
            if block.name in POOL_AFTER:
                x = self.pool_s2(x)
        logits = self.softmax2_pre_activation_matmul(x.mean(dim=(2, 3)))
        keep(LOGITS, logits)
        return out
