"""Forward latency of the generated PyTorch module against the reference implementation.

What: `resdsl.load(spec).to_torch()` against the reference module (torchvision's resnet50
and densenet121, timm's dpn92) holding the same weights: the reference is built by its own
constructor and its state_dict is copied into ours, so both compute the same numbers (the
script prints the largest output difference as a check). Eval mode, under
`torch.inference_mode()`, float32, NCHW, at batch 1 and batch 16, 224×224.

How: both models live in this process with the same `torch.set_num_threads(n)` (default 1:
on a small shared machine one thread is the steady setting). For each network and batch
size: W=3 warm-up forwards of each (with `--compile`, the first one compiles), then N rounds
of one timed forward of each (N=15 at batch 16; 60 below batch 8, where a forward is short
and a blip of machine load weighs more), interleaved, the order alternating every round (AB, BA, AB,
...) so that a drift in machine load hits both alike. Each forward is timed with
`time.perf_counter` (wall, the bar) and `time.process_time` (this process's CPU time,
which other people's load on a shared machine disturbs less). Prints the median wall
milliseconds of each and the ratio ours / reference of the medians, and beside it, for
reference, the same ratio of CPU medians and the ratio of the minima.

`--compile` runs the same comparison with both models wrapped in `torch.compile`
(`dynamic=False`, so each batch size gets its own static graph; `--backend` picks the
backend, inductor by default; inductor's first compile of a network takes minutes).

The `ops` column says whether one profiled forward of each dispatches the same multiset of
ATen operators (`torch.profiler`; names and call counts, which machine load cannot change):
`same` means the two modules do the same work and a ratio away from 1 is the machine's
noise; otherwise it lists the operators one side runs more often.

Bar (DESIGN.md §8): median(ours) / median(reference) ≤ 1.03 for every row.

`--dense` runs the dense-prediction networks of issue #16 (torchvision's `fcn_resnet50` and
`resnet_fpn_backbone("resnet50")`, whose forward returns an OrderedDict: the difference
printed is the largest over every output) at their bar's cases, batch 1 at 224×224 and batch 4
at 320×320 (`--cases`). `--attention` runs issue #17's networks written with the tensor ops
(timm's resnest50d_4s2x40d, skresnext50_32x4d and convnext_tiny) at batch 1 and 16.

Run: `.venv/bin/python bench/torch_latency.py [--compile] [--quick] [--repeats N]`
(about 5 minutes on 2 cores with the defaults; `--dense` about as long).
It prints; it asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
import torchvision

import resdsl

ROOT = Path(__file__).resolve().parent.parent
BAR_RATIO = 1.03


@dataclass(frozen=True)
class Network:
    spec: str
    reference: str
    build: Callable[[], torch.nn.Module]


NETWORKS: dict[str, Network] = {
    "resnet50": Network("specs/resnet50.res", "torchvision resnet50",
                        lambda: torchvision.models.resnet50()),
    "densenet121": Network("specs/densenet121.res", "torchvision densenet121",
                           lambda: torchvision.models.densenet121()),
    "dpn92": Network("specs/dpn92.res", "timm dpn92",
                     lambda: timm.create_model("dpn92", pretrained=False)),
    # The networks of issue #8 (multi-branch joins, named tensors, guarded residuals).
    "mobilenet_v2": Network("specs/mobilenet_v2.res", "torchvision mobilenet_v2",
                            lambda: torchvision.models.mobilenet_v2()),
    "res2net50_26w_4s": Network("specs/res2net50_26w_4s.res", "timm res2net50_26w_4s",
                                lambda: timm.create_model("res2net50_26w_4s", pretrained=False)),
    "inception_resnet_v2": Network("specs/inception_resnet_v2.res", "timm inception_resnet_v2",
                                   lambda: timm.create_model("inception_resnet_v2",
                                                             pretrained=False)),
    # The dense-prediction networks of issue #16 (several outputs: an OrderedDict each), with
    # their bar at `--cases 1x224,4x320` (`--dense` runs exactly that).
    "fcn_resnet50": Network("specs/fcn_resnet50.res", "torchvision fcn_resnet50",
                            lambda: torchvision.models.segmentation.fcn_resnet50(
                                weights=None, weights_backbone=None)),
    "resnet50_fpn": Network("specs/resnet50_fpn.res", "torchvision resnet_fpn_backbone",
                            lambda: torchvision.models.detection.backbone_utils
                            .resnet_fpn_backbone(backbone_name="resnet50", weights=None,
                                                 trainable_layers=5)),
    # The attention networks of issue #17, written with the tensor ops (`--attention`).
    "resnest50d_4s2x40d": Network("specs/resnest50d_4s2x40d.res", "timm resnest50d_4s2x40d",
                                  lambda: timm.create_model("resnest50d_4s2x40d")),
    "skresnext50_32x4d": Network("specs/skresnext50_32x4d.res", "timm skresnext50_32x4d",
                                 lambda: timm.create_model("skresnext50_32x4d")),
    "convnext_tiny": Network("specs/convnext_tiny.res", "timm convnext_tiny",
                             lambda: timm.create_model("convnext_tiny")),
    # Not in the default set: a small network for a quick look and for the tests.
    "resnet18": Network("specs/resnet18.res", "torchvision resnet18",
                        lambda: torchvision.models.resnet18()),
}
DEFAULT_NETWORKS = ("resnet50", "densenet121", "dpn92")
DENSE_NETWORKS = ("fcn_resnet50", "resnet50_fpn")
ATTENTION_NETWORKS = ("resnest50d_4s2x40d", "skresnext50_32x4d", "convnext_tiny")
DENSE_CASES = "1x224,4x320"


@dataclass(frozen=True)
class Row:
    network: str
    batch: int
    size: int
    ours: list[float]
    ref: list[float]
    ours_cpu: list[float]
    ref_cpu: list[float]
    max_diff: float
    ops: str

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.ref)

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.ours_cpu) / statistics.median(self.ref_cpu)


def build_pair(name: str, size: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Ours and the reference, in eval mode, with the reference's weights in both."""
    network = NETWORKS[name]
    ref = network.build().eval()
    spec = str(ROOT / network.spec)
    ours = resdsl.load(spec, input_shape=(3, size, size)).to_torch(seed=0).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours, ref


def difference(a: Any, b: Any) -> float:
    """The largest absolute difference of two outputs: tensors, or dicts of them (the
    dense-prediction networks return an OrderedDict by name)."""
    if isinstance(a, dict):
        assert list(a) == list(b), (list(a), list(b))
        return max(difference(a[k], b[k]) for k in a)
    return float((a - b).abs().max())


def aten_ops(model: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Counter[str]:
    """The ATen operators one forward dispatches, with their call counts."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model(x)
    return Counter({e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")})


def ops_difference(ours: Counter[str], ref: Counter[str]) -> str:
    """`same`, or the operators each side runs more often (`+cat×2` ours, `-stack×2` ref)."""
    more = [f"+{k[6:]}×{n}" for k, n in sorted((ours - ref).items())]
    fewer = [f"-{k[6:]}×{n}" for k, n in sorted((ref - ours).items())]
    return " ".join(more + fewer) or "same"


def timed(model: Callable[[torch.Tensor], Any], x: torch.Tensor,
          wall: list[float], cpu: list[float]) -> None:
    c0, t0 = time.process_time(), time.perf_counter()
    model(x)
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)


def measure(
    name: str, batch: int, ours: Callable[[torch.Tensor], Any],
    ref: Callable[[torch.Tensor], Any], size: int, warmup: int, repeats: int,
) -> Row:
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
    with torch.inference_mode():
        max_diff = difference(ours(x), ref(x))
        for _ in range(warmup):
            ours(x)
            ref(x)
        ops = ops_difference(aten_ops(ours, x), aten_ops(ref, x))
        row = Row(name, batch, size, [], [], [], [], max_diff, ops)
        for i in range(repeats):
            if i % 2 == 0:
                timed(ours, x, row.ours, row.ours_cpu)
                timed(ref, x, row.ref, row.ref_cpu)
            else:
                timed(ref, x, row.ref, row.ref_cpu)
                timed(ours, x, row.ours, row.ours_cpu)
    return row


def report(row: Row) -> None:
    ours_ms, ref_ms = statistics.median(row.ours) * 1e3, statistics.median(row.ref) * 1e3
    verdict = "meets" if row.ratio <= BAR_RATIO else "MISSES"
    min_ratio = min(row.ours) / min(row.ref)
    print(
        f"  {row.network:<12} {row.batch:>5} {row.size:>4} {ours_ms:>10.2f} {ref_ms:>10.2f}"
        f" {row.ratio:>7.3f}"
        f"  {row.cpu_ratio:>9.3f} {min_ratio:>9.3f}  {row.max_diff:>9.1e}  {verdict}"
        f"  ops {row.ops}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--networks", default=",".join(DEFAULT_NETWORKS),
                        help=f"comma-separated, from {', '.join(NETWORKS)} "
                        f"(default {','.join(DEFAULT_NETWORKS)})")
    parser.add_argument("--batches", default="1,16", help="batch sizes (default 1,16)")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--cases", default=None,
                        help="BATCHxSIZE pairs, overriding --batches and --size "
                        f"(e.g. {DENSE_CASES})")
    parser.add_argument("--attention", action="store_true",
                        help=f"issue 17's bar: --networks {','.join(ATTENTION_NETWORKS)} "
                        "(batch 1 and 16 at 224)")
    parser.add_argument("--dense", action="store_true",
                        help=f"the dense-prediction bar: --networks {','.join(DENSE_NETWORKS)} "
                        f"--cases {DENSE_CASES}")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed forwards of each model (default 15, 60 below batch 8; "
                        "3 with --quick)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed forwards of each first (default 3, 1 with --quick)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--quick", action="store_true", help="a short run: 1 warm-up, 3 repeats")
    args = parser.parse_args()
    if args.dense:
        args.networks, args.cases = ",".join(DENSE_NETWORKS), args.cases or DENSE_CASES
    if args.attention:
        args.networks = ",".join(ATTENTION_NETWORKS)
    names = [n for n in args.networks.split(",") if n]
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        parser.error(f"unknown network {', '.join(unknown)}; choose from {', '.join(NETWORKS)}")
    if args.cases:
        cases = [(int(b), int(s)) for b, s in (c.split("x") for c in args.cases.split(","))]
    else:
        cases = [(int(b), args.size) for b in args.batches.split(",") if b]
    batches = [b for b, _ in cases]

    def repeats_for(batch: int) -> int:
        if args.repeats is not None:
            return int(args.repeats)
        return 3 if args.quick else (60 if batch < 8 else 15)

    warmup: int = args.warmup if args.warmup is not None else (1 if args.quick else 3)

    torch.set_num_threads(args.threads)
    mode = f"torch.compile(backend={args.backend!r}, dynamic=False)" if args.compile else "eager"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) for both, {mode}, "
          f"{', '.join(sorted({f'{s}x{s}' for _, s in cases}))}, eval + inference_mode")
    counts = ", ".join(f"{repeats_for(b)} at batch {b}" for b in batches)
    print(f"{warmup} warm-up + interleaved timed forwards of each ({counts}); medians (ms)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(f"  {'network':<12} {'batch':>5} {'size':>4} {'ours ms':>10} {'ref ms':>10} {'ratio':>7}"
          f"  {'cpu ratio':>9} {'min ratio':>9}  {'max|diff|':>9}  bar <= {BAR_RATIO}")
    rows: list[Row] = []
    for name in names:
        for size in dict.fromkeys(s for _, s in cases):
            # The spec is built for its input size (a network that upsamples to its input
            # has it in its graph); the reference takes any.
            ours, ref = build_pair(name, size)
            run_ours: Callable[[torch.Tensor], Any] = ours
            run_ref: Callable[[torch.Tensor], Any] = ref
            if args.compile:
                run_ours = torch.compile(ours, backend=args.backend, dynamic=False)
                run_ref = torch.compile(ref, backend=args.backend, dynamic=False)
            for b in (b for b, s in cases if s == size):
                row = measure(name, b, run_ours, run_ref, size, warmup, repeats_for(b))
                report(row)
                rows.append(row)
            del ours, ref, run_ours, run_ref
            if args.compile:
                torch._dynamo.reset()
    print()
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    worst = max(rows, key=lambda r: r.ratio)
    verdict = "meets" if worst.ratio <= BAR_RATIO else "MISSES"
    print(f"worst ratio {worst.ratio:.3f} ({worst.network}, batch {worst.batch} at "
          f"{worst.size}x{worst.size}); "
          f"bar <= {BAR_RATIO}: {verdict} the bar")
    print("(ratio = median wall ours / median wall reference, the bar; cpu ratio: the same of "
          "CPU times; min ratio: of the fastest runs)")


if __name__ == "__main__":
    main()
