"""Building an initialised PyTorch module: spec → `to_torch()` against torchvision's constructor.

What: `resdsl.load("specs/resnet152.res").to_torch(seed=0)`, everything from the spec file
to a module holding its initial weights (parsing, checks, elaboration, generating and
executing the source, the seeded numpy initialiser, assigning the weights), against
`torchvision.models.resnet152()`, which builds its layers and initialises them with torch's
generator (kaiming normal for the convs, constants for BN, the default Linear init). Both
end with a float32 module in training mode with 60,192,808 parameters.

How: in this process, with the same `torch.set_num_threads(n)` (default 1) for both. That
bounds torch's threads only: resdsl's initialiser fills its tensors in a thread pool of
min(8, os.cpu_count()) threads (numpy releases the GIL), while torchvision's init is serial,
so the CPU-time ratio is printed beside the wall ratio, and `--cpus K` pins the whole
process to K cores (sched_setaffinity) for a comparison on equal cores. One
warm-up of each (the first resdsl build also loads Lark's cached parser tables; the first
torchvision build imports and warms its modules), then N=7 builds of each, interleaved, the
order alternating every round. `gc.collect()` before each build, and the previous module is
dropped first, so neither pays for freeing the other's. `time.perf_counter` (wall) and
`time.process_time` (CPU) per build; medians and the ratio ours / torchvision.

Then, for diagnosis only (not in the ratio), where our time goes: the median over 3 more
builds of each phase, `resdsl.load` (parse, checks, elaboration), `Network.state` (the
numpy initialiser) and `build_module` (the source, exec, a meta-device module and the
assignment of the weights).

Bar (DESIGN.md §8): median(ours) / median(torchvision) ≤ 1.5.

Run: `.venv/bin/python bench/torch_build.py [--runs N] [--quick]` (about a minute). It
prints; it asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

import resdsl
from resdsl.backends.torch_module import build_module

ROOT = Path(__file__).resolve().parent.parent
BAR_RATIO = 1.5
# spec name → the torchvision constructor it is measured against.
NETWORKS = ("resnet152", "resnet50", "resnet18")


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float


def timed(build: Callable[[], object]) -> Sample:
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    module = build()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    del module
    return Sample(wall, cpu)


def med(samples: list[Sample], field: str) -> float:
    return float(statistics.median(getattr(s, field) for s in samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--network", default="resnet152", choices=NETWORKS,
                        help="spec and torchvision constructor (default resnet152)")
    parser.add_argument("--runs", type=int, default=None,
                        help="timed builds of each (default 7, 3 with --quick)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--cpus", type=int, default=None,
                        help="pin the process to this many cores (Linux; default: no pinning)")
    parser.add_argument("--quick", action="store_true", help="a short run: 3 builds of each")
    args = parser.parse_args()
    if args.cpus is not None:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cpus])
    runs: int = args.runs if args.runs is not None else (3 if args.quick else 7)
    name: str = args.network
    spec = str(ROOT / "specs" / f"{name}.res")
    constructor: Callable[[], torch.nn.Module] = getattr(torchvision.models, name)

    def ours() -> torch.nn.Module:
        return resdsl.load(spec).to_torch(seed=0)

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{torch.get_num_threads()} torch thread(s), "
          f"{len(os.sched_getaffinity(0))} of {os.cpu_count()} cores usable")
    print(f"A: resdsl.load({Path(spec).relative_to(ROOT)}).to_torch(seed=0)")
    print(f"B: torchvision.models.{name}()")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    a, b = ours(), constructor()
    n_ours = sum(p.numel() for p in a.parameters())
    n_ref = sum(p.numel() for p in b.parameters())
    assert list(a.state_dict()) == list(b.state_dict()), "state_dict keys differ"
    del a, b
    print(f"parameters: ours {n_ours:,}, torchvision {n_ref:,}")

    mine: list[Sample] = []
    theirs: list[Sample] = []
    for i in range(runs):
        if i % 2 == 0:
            mine.append(timed(ours))
            theirs.append(timed(constructor))
        else:
            theirs.append(timed(constructor))
            mine.append(timed(ours))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    ratio = med(mine, "wall") / med(theirs, "wall")
    print()
    print(f"{runs} interleaved builds each after one warm-up each; medians")
    for label, samples in (("resdsl to_torch", mine), (f"torchvision {name}", theirs)):
        print(f"  {label:<22} wall {med(samples, 'wall'):.3f} s   "
              f"cpu {med(samples, 'cpu'):.3f} s")
    verdict = "meets" if ratio <= BAR_RATIO else "MISSES"
    print(f"  ratio (wall)   {ratio:.3f}   bar <= {BAR_RATIO}: {verdict} the bar")
    print(f"  ratio (cpu)    {med(mine, 'cpu') / med(theirs, 'cpu'):.3f}   (for reference)")

    phases: dict[str, list[float]] = {"load": [], "state": [], "build_module": []}
    for _ in range(3):
        gc.collect()
        t0 = time.perf_counter()
        net = resdsl.load(spec)
        t1 = time.perf_counter()
        state, _ = net.state(0)
        t2 = time.perf_counter()
        module = build_module(net.graph, state)
        t3 = time.perf_counter()
        del module, state, net
        for key, t in zip(phases, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            phases[key].append(t)
    print()
    print("where our time goes (median of 3 more builds, wall):")
    total = sum(statistics.median(v) for v in phases.values())
    for key, values in phases.items():
        m = statistics.median(values)
        print(f"  {key:<13} {m:.3f} s  ({m / total:.0%})")


if __name__ == "__main__":
    main()
