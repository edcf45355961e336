#!/usr/bin/env python
"""Benchmark one DeepDream step against the machine's matmul rate.

    python benchmarks/dream_step.py [--size 640x360] [--layer mixed4c] [--model inception5h]
                                    [--device auto] [--steps 10] [--json out.json]

In one run it measures and prints:

1. the fp32 matmul rate (``torch.mm`` n x n, warmed up, median) with the same thread count as the dream,
   plus a GEMM run as a 1x1 convolution (4096x1024x1024, by the convolution library: where the BLAS is
   slower than oneDNN, as on AMD CPUs, this is the more honest ceiling for the convolutions);
2. ms per dream step (median after warm-up) of the library's real ``renderer.dream.engine.dream_step``
   on one frame, the GFLOP per step (``FlopCounterMode``: convolutions forward + backward), the achieved
   GFLOP/s and its ratio to the matmul rate;
3. a ``torch.profiler`` breakdown of one step by kind of op (conv fwd/bwd, LRN, max-pool, relu, cat,
   other), the top ops by self time and the heaviest single calls;
4. the same step on a "naive port" of inception5h built in this file from the same weights
   (``nn.LocalResponseNorm``, ``F.pad(-inf)`` + ``max_pool2d``, contiguous memory), checked to give the
   same activations and gradient;
5. peak RSS (and on CUDA ``torch.cuda.max_memory_allocated``), page faults and kernel CPU time per step.

Nothing here is product code: the naive port exists only as a comparison point.
"""

from __future__ import annotations

import argparse
import functools
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

try:
    import resource
except ImportError:  # Windows: no page-fault / RSS figures
    resource = None

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
# Kineto (the profiler backend) of CUDA builds logs "gpuGetDeviceCount failed" on machines without a GPU.
os.environ.setdefault("KINETO_LOG_LEVEL", "5")

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

from renderer.devices import keep_freed_memory, pick_device
from renderer.dream import engine
from renderer.dream.engine import DreamSettings, auto_tile, dream_step, objective_gradient
from renderer.dream.objectives import parse_objective
from renderer.errors import DreamvidError
from renderer.models import DEFAULT_MODEL, load_backbone
from renderer.models.inception5h import Inception5h, _Conv

# ----------------------------------------------------------------------------------------------------
# Machine


def physical_cores() -> int:
    """Physical cores this process may run on (SMT siblings counted once); os.cpu_count() as fallback."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = set()
    try:
        for cpu in allowed:
            topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
    except OSError:
        return len(allowed) or os.cpu_count() or 1
    return len(cores) or os.cpu_count() or 1


def cpu_description() -> str:
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    flags = info.get("flags", "").split()
    simd = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "no avx2"
    return (f"{info.get('model name', '?')} (family {info.get('cpu family', '?')} model {info.get('model', '?')}, "
            f"{simd})")


class CpuContention:
    """How many cores *other* processes kept busy while we ran (Linux /proc/stat; None elsewhere).

    Busy = user+nice+system+irq+softirq+steal jiffies of the whole machine minus this process's own CPU
    time. Steal is time the hypervisor gave to other VMs. A value near the thread count means the timings
    are inflated (with OpenMP, one preempted thread stalls the others at every barrier).
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample():
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        if resource is None:
            return None
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy = sum(fields[i] for i in (0, 1, 2, 5, 6, 7) if i < len(fields))
        return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), usage.ru_utime + usage.ru_stime

    def others_busy_cores(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None:
            return None
        wall = end[0] - self.start[0]
        return max(0.0, ((end[1] - self.start[1]) - (end[2] - self.start[2])) / wall) if wall > 0 else None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds per call of fn() for `repeats` calls after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def matmul_rates(n: int, device: torch.device, fmt: torch.memory_format,
                 low_precision: torch.dtype | None = None) -> dict[str, float]:
    """fp32 GFLOP/s of torch.mm (n x n) and of a convolution-shaped GEMM run by the convolution library.

    The second is a 1x1 convolution of 1024 -> 1024 channels over 64x64 pixels (a 4096 x 1024 x 1024
    GEMM, in the memory format the dream runs in). On CPU torch.mm goes to the BLAS (MKL) and convolutions
    to oneDNN; they need not reach the same rate (on an AMD Zen 5 MKL's sgemm ran at half oneDNN's rate).
    With `low_precision` (the dream step's autocast dtype), torch.mm is also timed in that dtype.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    c = torch.empty(n, n, device=device)
    mm = statistics.median(timed(lambda: torch.mm(a, b, out=c), device, 2, 7))
    x = torch.randn(1, 1024, 64, 64, generator=gen).to(device).contiguous(memory_format=fmt)
    w = torch.randn(1024, 1024, 1, 1, generator=gen).to(device).contiguous(memory_format=fmt)
    conv = statistics.median(timed(lambda: F.conv2d(x, w), device, 2, 7))
    rates = {"mm_gflops": 2.0 * n ** 3 / mm / 1e9, "conv1x1_gflops": 2.0 * 4096 * 1024 * 1024 / conv / 1e9}
    if low_precision is not None:
        a, b, c = a.to(low_precision), b.to(low_precision), c.to(low_precision)
        low = statistics.median(timed(lambda: torch.mm(a, b, out=c), device, 2, 7))
        rates["mm_low_precision_gflops"] = 2.0 * n ** 3 / low / 1e9
    return rates


# ----------------------------------------------------------------------------------------------------
# The "naive port" comparison (benchmark-only)


def naive_max_pool_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow SAME max-pool the way ports usually write it: an explicit -inf padded copy, then pool."""
    pads: list[int] = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad lists the last dimension first
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)


class NaiveInception5h(Inception5h):
    """inception5h as a straightforward port would write it: a plain 7x7 stride-2 first convolution,
    ``nn.LocalResponseNorm`` (avg_pool3d inside) instead of the fast LRN, ``F.pad(-inf)`` + ``max_pool2d`` for every SAME max-pool (the stride-2 ones
    and each block's stride-1 pool branch), contiguous (not channels-last) tensors. Everything else,
    convolutions included, is the product's code, loaded with the product's weights."""

    lrn = staticmethod(functools.partial(F.local_response_norm, size=11, alpha=0.0011, beta=0.5, k=2.0))
    pool_s2 = staticmethod(functools.partial(naive_max_pool_same, kernel=3, stride=2))
    pool_s1 = staticmethod(functools.partial(naive_max_pool_same, kernel=3, stride=1))

    def __init__(self) -> None:
        super().__init__()
        self.conv2d0_pre_relu_conv = _Conv(3, 64, 7, stride=2)  # a plain strided 7x7, not our space-to-depth stem
        self.requires_grad_(False)

    @classmethod
    def like(cls, product: Inception5h) -> "NaiveInception5h":
        naive = cls()
        naive.load_state_dict(product.state_dict())
        naive.name = f"{product.name} (naive port)"
        return naive.eval().to(next(product.parameters()).device, memory_format=torch.contiguous_format)


# ----------------------------------------------------------------------------------------------------
# FLOPs and profile


def count_flops(model: nn.Module, objective, image: torch.Tensor) -> dict[str, int]:
    """FLOPs of one gradient of the objective (convolutions/matmuls forward and backward).

    dream_step takes the gradient with torch.autograd.grad, which FlopCounterMode cannot follow in this
    torch version ("A leaf node was passed to _will_engine_execute_node"), so we count the equivalent
    loss.backward() on a leaf input instead: the same forward and the same backward ops (parameters are
    frozen, so only input gradients are computed in both). Elementwise ops (LRN, relu, pools) are not
    counted by FlopCounterMode; they are memory-bound anyway.
    """
    x = image.detach().clone().requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        objective(model(x, objective.layers)).backward()
    counts = {str(op).split(".")[-1]: int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    counts["total"] = int(counter.get_total_flops())
    return counts


CATEGORIES = ("conv fwd", "conv bwd", "LRN", "max-pool", "relu", "cat", "other")
_BACKWARD_PREFIX = "autograd::engine::evaluate_function: "


def _rule(name: str) -> str | None:
    """Category an event's name implies, or None (then it inherits its caller's)."""
    n = name.lower()
    if "local_response_norm" in n or "localresponsenorm" in n or "_lrn" in n:
        return "LRN"
    if "max_pool" in n or "maxpool" in n:
        return "max-pool"
    if "convolution_backward" in n or "convolutionbackward" in n:
        return "conv bwd"
    if n.startswith(("nn.module: _conv", "nn.module: conv")) or n in ("aten::conv2d", "aten::convolution"):
        return "conv fwd"
    if "relu" in n or "threshold" in n or n == "aten::clamp_min":
        return "relu"
    if n == "aten::cat" or "catbackward" in n:
        return "cat"
    if n == "aten::roll" or "rollbackward" in n:  # the jitter (its inner cats are not the network's)
        return "other"
    return None


def _is_python(event) -> bool:
    """A profiler event for a Python function (torch < 2.11 marks them; 2.11 dropped the attribute)."""
    return getattr(event, "is_python_function", False)


def profile_step(step, device: torch.device) -> dict:
    """Profile one call of step() and split its time by category (see CATEGORIES).

    Every event's *self* time is attributed to the outermost enclosing event whose name says what it is
    (an ``aten::mul`` inside ``local_response_norm`` is LRN). Backward nodes are named by autograd
    (ConvolutionBackward0, _LRNBackward, ...); those with generic names (MulBackward0 inside
    nn.LocalResponseNorm) take the category of the forward op that created them (same sequence number).
    On CUDA the device (kernel) time is used instead of CPU time.
    """
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    synchronize(device)
    with profile(activities=activities, with_stack=True, record_shapes=True) as prof:
        with record_function("BENCH_STEP"):
            step()
        synchronize(device)
    events = prof.events()
    root = next(e for e in events if e.name == "BENCH_STEP")
    use_device = device.type == "cuda"

    def own_time(e) -> float:
        return e.self_device_time_total if use_device else e.self_cpu_time_total

    # Pass 1: forward-phase categories and sequence numbers -> category of the creating op.
    forward_category: dict[int, str] = {}
    tagged: list[tuple[object, str | None, bool]] = []  # (event, category, inside backward)

    def walk(e, inherited: str | None, in_backward: bool) -> None:
        category = inherited
        backward_here = in_backward
        if e.name.startswith(_BACKWARD_PREFIX):
            backward_here = True
            if category is None:
                category = _rule(e.name[len(_BACKWARD_PREFIX):]) or ("?seq", e.sequence_nr)
        elif category is None:
            category = _rule(e.name)
        tagged.append((e, category, backward_here))
        if not backward_here and e.sequence_nr >= 0 and not _is_python(e):
            forward_category[e.sequence_nr] = category or "other"  # the last op with this number created the node
        for child in sorted(e.cpu_children, key=lambda c: c.time_range.start):
            walk(child, category, backward_here)

    walk(root, None, False)

    # Pass 2: resolve backward nodes with generic names through their forward op.
    per_category: dict[str, float] = defaultdict(float)
    per_op: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    calls: list[tuple[float, str, str]] = []  # single calls (incl. children) of the ops that do the work
    for e, category, in_backward in tagged:
        if isinstance(category, tuple):
            category = forward_category.get(category[1], "other")
            if category == "conv fwd":
                category = "conv bwd"  # e.g. the backward of the asymmetric SAME pad inside a conv
        category = category or "other"
        t = own_time(e) / 1e3
        if e.name in ("aten::convolution", "aten::convolution_backward", "aten::max_pool2d_with_indices",
                      "aten::max_pool2d_with_indices_backward", "aten::cumsum") and not _is_python(e):
            total_t = (e.device_time_total if use_device else e.cpu_time_total) / 1e3
            shapes = ["x".join(map(str, v)) for v in (e.input_shapes or []) if isinstance(v, list) and v]
            # convolution_backward's inputs are (grad_output, input, weight): show input and weight
            shown = shapes[1:3] if e.name == "aten::convolution_backward" else shapes[:2]
            calls.append((total_t, e.name, ", ".join(shown)))
        per_category[category] += t
        if not _is_python(e) and t > 0:
            name = e.name[len(_BACKWARD_PREFIX):] + " (engine)" if e.name.startswith(_BACKWARD_PREFIX) else e.name
            per_op[(category, name)][0] += t
            per_op[(category, name)][1] += 1
    total = sum(per_category.values())
    top = sorted(((t, n, cat, name) for (cat, name), (t, n) in per_op.items()), reverse=True)
    return {
        "profiled_step_ms": total,
        "categories_ms": {c: per_category.get(c, 0.0) for c in CATEGORIES},
        "top_ops": [{"op": name, "category": cat, "calls": n, "ms": t} for t, n, cat, name in top],
        "top_calls": [{"op": name, "input": shape, "ms": t} for t, name, shape in sorted(calls, reverse=True)[:5]],
    }


# ----------------------------------------------------------------------------------------------------
# Dream-step measurement


def measure_steps(model, objective, image, settings, tile, device, warmup: int, steps: int) -> dict:
    """Time `steps` consecutive dream steps (after `warmup`), chained as dream() does.

    Also counts this process's minor page faults and kernel (sys) CPU time per timed step: fresh memory
    from the OS is zero-filled page by page on first touch, which shows up there.
    """
    generator = torch.Generator().manual_seed(0)
    state = {"x": image}

    def step():
        state["x"] = dream_step(state["x"], model, objective, settings, generator, tile)

    timed(step, device, warmup, 0)
    before = resource.getrusage(resource.RUSAGE_SELF) if resource else None
    times = timed(step, device, 0, steps)
    after = resource.getrusage(resource.RUSAGE_SELF) if resource else None
    nan = float("nan")
    return {
        "step_ms": statistics.median(times) * 1e3,
        "step_ms_all": [t * 1e3 for t in times],
        "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps if resource else nan,
        "sys_cpu_ms_per_step": (after.ru_stime - before.ru_stime) * 1e3 / steps if resource else nan,
        "user_cpu_ms_per_step": (after.ru_utime - before.ru_utime) * 1e3 / steps if resource else nan,
    }


def peak_rss_mib() -> float:
    if resource is None:
        return float("nan")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, default=(640, 360), help="frame WIDTHxHEIGHT (default 640x360)")
    p.add_argument("--layer", "--objective", dest="objective", default=None,
                   help="objective string (default: the model's default layer, mixed4c for inception5h)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--weights", default=None, help="weight file or 'random' (default: the project's lookup)")
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=10, help="timed dream steps (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed dream steps before timing")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")
    p.add_argument("--precision", default="auto",
                   help="dream arithmetic where the library supports it: auto (bf16/fp16 autocast on CUDA, "
                        "fp32 elsewhere), fp32, bf16, fp16")
    p.add_argument("--tile", default="auto", help="'auto' (as dream() decides), 'none', or a tile side in px")
    p.add_argument("--mm-size", type=int, default=2048, help="n for the n x n matmul reference")
    p.add_argument("--no-naive", action="store_true", help="skip the naive-port comparison")
    p.add_argument("--json", type=Path, default=None, help="also write all figures to this file")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")

    malloc_tuned = keep_freed_memory()  # as the dreamvid command does at start
    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    device = pick_device(args.device)
    width, height = args.size
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    contention = CpuContention()
    res: dict = {
        "torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
        "cpu": cpu_description(), "os_cpu_count": os.cpu_count(), "loadavg_1min_at_start": load,
        "size": [width, height], "model": args.model, "steps": args.steps, "warmup": args.warmup,
        "malloc_tuned": malloc_tuned,
    }
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(device)
        res["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        res["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32

    print(f"torch {torch.__version__} on {device}"
          + (f" ({res['gpu']})" if device.type == "cuda" else f": {res['cpu']}"))
    print(f"threads: torch.set_num_threads({threads}) (os.cpu_count()={os.cpu_count()}, physical cores={physical_cores()});"
          f" 1-min load average at start {load:.2f}")
    print(f"glibc keeps freed memory (mallopt, as dreamvid does): {malloc_tuned}")
    if device.type == "cuda":
        print(f"TF32: cudnn.allow_tf32={res['cudnn_allow_tf32']} (convs), matmul.allow_tf32={res['matmul_allow_tf32']}")

    model = load_backbone(args.model, args.weights, device)
    # dream() feeds frames in the memory format of the weights (channels-last on CPU).
    conv_weight = next((q for q in model.parameters() if q.dim() == 4), None)
    channels_last = conv_weight is not None and conv_weight.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    res["memory_format"] = "channels_last" if channels_last else "contiguous"
    # The dream step's arithmetic (newer versions of the library autocast the network on CUDA).
    has_precision = "precision" in {f.name for f in dataclasses.fields(DreamSettings)}
    precision = getattr(engine, "Precision", str)(args.precision.lower())  # an enum in newer versions
    settings = DreamSettings(precision=precision) if has_precision else DreamSettings()
    step_dtype = engine.compute_dtype(settings.precision, device) if hasattr(engine, "compute_dtype") else None
    res["step_dtype"] = str(step_dtype or torch.float32).replace("torch.", "")

    # 1. matmul reference
    res.update(matmul_rates(args.mm_size, device, fmt, step_dtype))

    # 2. the product network's dream step
    objective = parse_objective(args.objective or model.default_layer, model)
    res["objective"] = objective.description
    gen = torch.Generator().manual_seed(1)
    frame = torch.rand(1, 3, height, width, generator=gen).to(device)
    image = frame.contiguous(memory_format=fmt)
    if args.tile == "auto":
        tile = auto_tile(model, objective.layers, height, width, device, margin=settings.tile_margin)
    else:
        tile = None if args.tile == "none" else int(args.tile)
    res["tile"] = tile
    rss_loaded = peak_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    res.update(measure_steps(model, objective, image, settings, tile, device, args.warmup, args.steps))
    step_ms = res["step_ms"]
    res["peak_rss_mib"] = peak_rss_mib()
    res["peak_rss_mib_before_steps"] = rss_loaded
    if device.type == "cuda":
        res["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20

    # The work is counted on the straightforward network: our stem convolution runs an 8x8 kernel with a
    # zero tap row (more multiply-adds than the 7x7 it equals), which would flatter the achieved rate.
    reference = NaiveInception5h.like(model) if isinstance(model, Inception5h) else model
    flops = count_flops(reference, objective, image.contiguous() if reference is not model else image)
    res["flops"] = flops
    gflop = flops["total"] / 1e9
    res["gflop_per_step"] = gflop
    res["achieved_gflops"] = gflop / (step_ms / 1e3)

    generator = torch.Generator().manual_seed(123)
    prof = profile_step(lambda: dream_step(image, model, objective, settings, generator, tile), device)
    res["profile"] = prof

    # 3. naive port
    naive = None
    if not args.no_naive and isinstance(model, Inception5h):
        naive_model = NaiveInception5h.like(model)
        naive_image = frame.contiguous()
        with torch.no_grad():
            a = model(image, objective.layers)
            b = naive_model(naive_image, objective.layers)
        act_diff = max((a[k] - b[k]).abs().max().item() for k in a)
        act_max = max(a[k].abs().max().item() for k in a)
        g_product = objective_gradient(image, model, objective)
        g_naive = objective_gradient(naive_image, naive_model, objective)
        grad_rel = ((g_product - g_naive).abs().max() / g_product.abs().max()).item()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        nsteps = measure_steps(naive_model, objective, naive_image, settings, tile, device, args.warmup, args.steps)
        naive_ms = nsteps["step_ms"]
        nflops = count_flops(naive_model, objective, naive_image)["total"]
        generator = torch.Generator().manual_seed(123)
        nprof = profile_step(lambda: dream_step(naive_image, naive_model, objective, settings, generator, tile),
                             device)
        naive = {
            **nsteps, "gflop_per_step": nflops / 1e9,
            "achieved_gflops": nflops / 1e9 / (naive_ms / 1e3), "max_abs_activation_diff": act_diff,
            "max_abs_activation": act_max, "max_rel_gradient_diff": grad_rel, "profile": nprof,
            "peak_rss_mib": peak_rss_mib(),
        }
        if device.type == "cuda":
            naive["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        res["naive"] = naive

    res["others_busy_cores"] = contention.others_busy_cores()
    report(res, naive)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
        print(f"\nwrote {args.json}")
    return res


def report(res: dict, naive: dict | None) -> None:
    mm, conv_ref = res["mm_gflops"], res["conv1x1_gflops"]
    width, height = res["size"]
    times = res["step_ms_all"]
    spread = (max(times) - min(times)) / res["step_ms"]
    tile = "whole frame" if res["tile"] is None else f"tiles of {res['tile']} px"
    low = {"bfloat16": "bf16", "float16": "fp16"}.get(res["step_dtype"], res["step_dtype"])
    print(f"\n{res['model']} -> {res['objective']}, {width}x{height} frame ({tile}, {res['memory_format']}, "
          f"{res['step_dtype'] if res['step_dtype'] == 'float32' else res['step_dtype'] + ' autocast'}), "
          f"median of {res['steps']} steps after {res['warmup']} warm-up")
    rows = [
        ("fp32 matmul, torch.mm", f"{mm:8.1f} GFLOP/s", ""),
        *([(f"{low} matmul, torch.mm", f"{res['mm_low_precision_gflops']:8.1f} GFLOP/s",
            "the dream step's autocast dtype")] if "mm_low_precision_gflops" in res else []),
        ("fp32 GEMM as 1x1 conv", f"{conv_ref:8.1f} GFLOP/s", "4096x1024x1024, run by the conv library (oneDNN on CPU)"),
        ("dream step", f"{res['step_ms']:8.1f} ms", f"min {min(times):.1f}, max {max(times):.1f}"),
        ("  page faults per step", f"{res['minor_faults_per_step']:8.0f}",
         (f"{res['sys_cpu_ms_per_step']:.1f} ms kernel CPU per step (zero-filling fresh pages), "
          f"{res['user_cpu_ms_per_step']:.0f} ms user CPU")),
        ("  work per step", f"{res['gflop_per_step']:8.2f} GFLOP",
         ", ".join(f"{k} {v / 1e9:.2f}" for k, v in res["flops"].items() if k != "total")
         + ("" if res["tile"] is None else " (whole frame; tiles' margins add more)")),
        ("  achieved", f"{res['achieved_gflops']:8.1f} GFLOP/s",
         f"{100 * res['achieved_gflops'] / mm:.0f}% of torch.mm, {100 * res['achieved_gflops'] / conv_ref:.0f}% of 1x1-conv GEMM"
         + (f", {100 * res['achieved_gflops'] / res['mm_low_precision_gflops']:.0f}% of {low} torch.mm"
            if "mm_low_precision_gflops" in res else "")),
    ]
    if naive:
        rows += [
            ("naive port step", f"{naive['step_ms']:8.1f} ms",
             (f"{naive['step_ms'] / res['step_ms']:.2f}x the product; min {min(naive['step_ms_all']):.1f}, "
              f"max {max(naive['step_ms_all']):.1f}; {naive['minor_faults_per_step']:.0f} page faults per step")),
            ("  achieved", f"{naive['achieved_gflops']:8.1f} GFLOP/s",
             f"{100 * naive['achieved_gflops'] / mm:.0f}% of torch.mm, {100 * naive['achieved_gflops'] / conv_ref:.0f}% of 1x1-conv GEMM"),
            ("  same result?", f"{naive['max_abs_activation_diff']:8.1e} abs",
             (f"max |activation diff| (activations up to {naive['max_abs_activation']:.0f}); "
              f"gradient max rel. diff {naive['max_rel_gradient_diff']:.1e}")),
        ]
    rows.append(("peak RSS", f"{res['peak_rss_mib']:8.0f} MiB",
                 f"process peak after the product's steps ({res['peak_rss_mib_before_steps']:.0f} MiB before them)"))
    if "cuda_max_allocated_mib" in res:
        rows.append(("CUDA max allocated", f"{res['cuda_max_allocated_mib']:8.0f} MiB",
                     "during the product's steps" + (f"; naive {naive['cuda_max_allocated_mib']:.0f} MiB" if naive else "")))
    for name, value, note in rows:
        print(f"  {name:<24}{value:>18}   {note}")
    busy = res["others_busy_cores"]
    if busy is not None:
        print(f"  {'other processes':<24}{busy:>12.2f} cores   CPU that other processes (or other VMs) used during this run")
    if busy is not None and busy > 0.25:
        print(f"  ! other processes used {busy:.2f} cores during the run: timings are inflated, re-run on a quiet machine")
    elif spread > 0.2:
        print(f"  ! step times spread {100 * spread:.0f}% of the median: a busy host (a VM's steal is not always "
              f"visible) or page faults that vary from step to step; re-run")

    prof = res["profile"]
    conv_flops = res["flops"]
    cats = prof["categories_ms"]
    total = prof["profiled_step_ms"]
    print(f"\nwhere one step's time goes (torch.profiler, self {'GPU' if res['device'].startswith('cuda') else 'CPU'} "
          f"time; profiled step {total:.1f} ms" + (f", naive {naive['profile']['profiled_step_ms']:.1f} ms" if naive else "") + ")")
    header = f"  {'category':<10}{'ms':>8}{'%':>6}"
    if naive:
        header += f"   {'naive ms':>9}{'%':>6}"
    print(header)
    for c in CATEGORIES:
        line = f"  {c:<10}{cats[c]:8.1f}{100 * cats[c] / total:6.1f}"
        if naive:
            nc, nt = naive["profile"]["categories_ms"][c], naive["profile"]["profiled_step_ms"]
            line += f"   {nc:9.1f}{100 * nc / nt:6.1f}"
        if c == "conv fwd" and cats[c] > 0 and "convolution" in conv_flops:
            line += f"   ({conv_flops['convolution'] / 1e6 / cats[c]:.0f} GFLOP/s)"
        if c == "conv bwd" and cats[c] > 0 and "convolution_backward" in conv_flops:
            line += f"   ({conv_flops['convolution_backward'] / 1e6 / cats[c]:.0f} GFLOP/s)"
        print(line)
    print("\n  top ops of the product step (self time):")
    print(f"  {'op':<48}{'category':<10}{'calls':>6}{'ms':>8}{'%':>6}")
    for op in prof["top_ops"][:8]:
        print(f"  {op['op'][:47]:<48}{op['category']:<10}{op['calls']:6d}{op['ms']:8.2f}{100 * op['ms'] / total:6.1f}")
    print("\n  heaviest single calls:")
    for call in prof["top_calls"][:3]:
        print(f"  {call['op'] + ' (' + call['input'] + ')':<64}{call['ms']:8.2f}{100 * call['ms'] / total:6.1f}")


if __name__ == "__main__":
    try:
        main()
    except DreamvidError as exc:  # e.g. weights not found: print the message and hint, not a traceback
        sys.exit(f"error: {exc}")
