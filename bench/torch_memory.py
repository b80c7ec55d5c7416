"""Peak memory of a forward pass: the generated PyTorch module against the reference.

What: the extra resident memory (RSS) at the peak of one batch-16 forward at 224×224, eval
mode, under `torch.inference_mode()`, of `resdsl.load(spec).to_torch()` and of the reference
module (torchvision's resnet50 and densenet121, timm's dpn92): the activations, the
workspaces of the conv kernels and everything else the forward allocates; not the weights,
which are resident before it starts.

How, and why RSS: torch's CPU tensors come from the C library's malloc, and oneDNN's conv
workspaces from its own allocations, so tracemalloc (Python objects only) sees none of
them, and PyTorch keeps no peak counter for the CPU. The kernel does: Linux's VmHWM is the
process's peak RSS, and writing 5 to /proc/self/clear_refs resets it to the current RSS
(the reset that `ru_maxrss` lacks). Each measurement runs in a fresh subprocess:
1. build the model, eval mode; make the input; one warm-up forward (one-time allocations:
   oneDNN's primitive cache, thread pools, lazily loaded code); drop its output; gc;
2. K=3 times: reset VmHWM, read VmRSS (the baseline: model, input, runtime), run the
   forward and keep its output, read VmHWM; peak − baseline is the forward's peak memory;
   drop the output.
The subprocess runs with glibc's `MALLOC_MMAP_THRESHOLD_=65536` and
`MALLOC_TRIM_THRESHOLD_=65536`: every block of 64 KiB or more (every activation) is its own
mmap and goes back to the kernel when freed. Without them glibc may raise its mmap
threshold after the first frees (up to 32 MiB) and keep freed blocks in its heap: memory
from the warm-up stays resident at the baseline (resnet18: a 60 MiB higher baseline), and
a measured forward that reuses it raises no peak.
Both models get the same `torch.set_num_threads(n)` (default 1). R=2 subprocesses per
model, interleaved (ours, ref, ref, ours); the median over all R·K forwards.

Bar (DESIGN.md §8): peak(ours) ≤ 1.05 · peak(reference) for every network.

Run: `.venv/bin/python bench/torch_memory.py [--quick]` (about 2 minutes; Linux only). It
prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BAR_RATIO = 1.05
MIB = 1024 * 1024
# network → (spec, reference)
NETWORKS: dict[str, tuple[str, str]] = {
    "resnet50": ("specs/resnet50.res", "torchvision resnet50"),
    "densenet121": ("specs/densenet121.res", "torchvision densenet121"),
    "dpn92": ("specs/dpn92.res", "timm dpn92"),
    # Not in the default set: a small network for a quick look and for the tests.
    "resnet18": ("specs/resnet18.res", "torchvision resnet18"),
}
DEFAULT_NETWORKS = ("resnet50", "densenet121", "dpn92")
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}


# ---------------------------------------------------------------------- the child


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def _build(network: str, impl: str, size: int) -> Any:
    import torch

    if impl == "ours":
        import resdsl

        spec = str(ROOT / NETWORKS[network][0])
        model = resdsl.load(spec, input_shape=(3, size, size)).to_torch(seed=0)
    elif network == "dpn92":
        import timm

        model = timm.create_model("dpn92", pretrained=False)
    else:
        import torchvision

        model = getattr(torchvision.models, network)()
    assert isinstance(model, torch.nn.Module)
    return model.eval()


def child(network: str, impl: str, size: int, batch: int, threads: int, forwards: int) -> None:
    """Measure in this (fresh) process; print one line of JSON."""
    import torch

    torch.set_num_threads(threads)
    model = _build(network, impl, size)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    deltas: list[int] = []
    with torch.inference_mode():
        out = model(x)
        del out
        gc.collect()
        for _ in range(forwards):
            _reset_peak()
            base = _status_kib("VmRSS")
            out = model(x)
            peak = _status_kib("VmHWM")
            del out
            gc.collect()
            deltas.append(peak - base)
            last_base = base
    print(json.dumps({
        "deltas_kib": deltas,
        "baseline_kib": last_base,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


# ---------------------------------------------------------------------- the parent


@dataclass
class Measured:
    deltas: list[int]
    baselines: list[int]


def measure(network: str, impl: str, args: argparse.Namespace) -> tuple[list[int], int]:
    cmd = [sys.executable, __file__, "--child", network, impl, "--size", str(args.size),
           "--batch", str(args.batch), "--threads", str(args.threads),
           "--forwards", str(args.forwards)]
    env = dict(os.environ, **MALLOC_ENV, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return [int(d) for d in result["deltas_kib"]], int(result["baseline_kib"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--networks", default=",".join(DEFAULT_NETWORKS),
                        help=f"comma-separated, from {', '.join(NETWORKS)} "
                        f"(default {','.join(DEFAULT_NETWORKS)})")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--runs", type=int, default=None,
                        help="subprocesses per model (default 2, 1 with --quick)")
    parser.add_argument("--forwards", type=int, default=3,
                        help="measured forwards per subprocess (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="a short run: 1 subprocess each")
    parser.add_argument("--child", nargs=2, metavar=("NETWORK", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.size, args.batch, args.threads, args.forwards)
        return
    if not Path("/proc/self/clear_refs").exists():
        raise SystemExit("this measurement needs Linux (/proc/self/clear_refs and VmHWM)")
    names = [n for n in args.networks.split(",") if n]
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        parser.error(f"unknown network {', '.join(unknown)}; choose from {', '.join(NETWORKS)}")
    runs: int = args.runs if args.runs is not None else (1 if args.quick else 2)

    print(f"peak RSS − baseline RSS of one forward, batch {args.batch}, {args.size}x{args.size}, "
          f"eval + inference_mode, {args.threads} thread(s)")
    malloc = " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items())
    print(f"{runs} fresh subprocess(es) per model, interleaved, {args.forwards} measured "
          f"forwards each after a warm-up; medians (MiB); {malloc}")
    print()
    print(f"  {'network':<12} {'ours MiB':>9} {'ref MiB':>9} {'ratio':>7}   {'ours base':>9} "
          f"{'ref base':>9}   ours range / ref range       bar <= {BAR_RATIO}")
    worst: tuple[float, str] | None = None
    for name in names:
        results: dict[str, Measured] = {"ours": Measured([], []), "ref": Measured([], [])}
        for r in range(runs):
            order = ("ours", "ref") if r % 2 == 0 else ("ref", "ours")
            for impl in order:
                deltas, base = measure(name, impl, args)
                results[impl].deltas += deltas
                results[impl].baselines.append(base)
        ours, ref = results["ours"], results["ref"]
        o, f = statistics.median(ours.deltas) / 1024, statistics.median(ref.deltas) / 1024
        ratio = o / f
        verdict = "meets" if ratio <= BAR_RATIO else "MISSES"
        print(f"  {name:<12} {o:>9.1f} {f:>9.1f} {ratio:>7.3f}   "
              f"{statistics.median(ours.baselines) / 1024:>9.1f} "
              f"{statistics.median(ref.baselines) / 1024:>9.1f}   "
              f"{min(ours.deltas) / 1024:.1f}-{max(ours.deltas) / 1024:.1f} / "
              f"{min(ref.deltas) / 1024:.1f}-{max(ref.deltas) / 1024:.1f}  {verdict}",
              flush=True)
        if worst is None or ratio > worst[0]:
            worst = (ratio, name)
    if worst is not None:
        verdict = "meets" if worst[0] <= BAR_RATIO else "MISSES"
        print()
        print(f"worst ratio {worst[0]:.3f} ({worst[1]}); bar <= {BAR_RATIO}: {verdict} the bar")
    print("(base = RSS before the forward: interpreter, torch, model weights and input)")


if __name__ == "__main__":
    main()
