"""`resdsl check` against `import torch`: is checking a spec cheap next to touching torch?

What: the wall time of a whole process `python -m resdsl check specs/resnet50.res` against a
whole process `python -c "import torch"`, with the same interpreter (this one), so start-up,
imports, parsing, elaboration and the checks all count.

How: one warm-up of each (fills the OS file cache and writes bytecode), then N=7 runs of
each, interleaved (the order alternates every round so that a drift in machine load hits
both alike). Prints the median wall times and their ratio, and the same for the CPU time
the children used (getrusage), which a shared machine disturbs less. Then runs
`python -X importtime -m resdsl check specs/resnet50.res` three times and reports whether
any module named torch* or onnx* was imported, and the five most expensive imports (median
self time over the three runs).

Bars (DESIGN.md §4: `resdsl check` never imports torch):
- median(check) / median(import torch) ≤ 0.25;
- no torch* or onnx* module in the import trace.

Run: `.venv/bin/python bench/check_vs_torch_import.py [--runs N]`. It prints; it asserts
nothing about timings.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = "specs/resnet50.res"
BAR_RATIO = 0.25
CHECK = [sys.executable, "-m", "resdsl", "check", SPEC]
TORCH = [sys.executable, "-c", "import torch"]
IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(cmd: list[str]) -> Sample:
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return Sample(wall, cpu)


@dataclass(frozen=True)
class Import:
    name: str
    self_us: float
    cumulative_us: float
    top_level: bool


def import_trace() -> list[Import]:
    """One `-X importtime` run of the check; the modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *CHECK[1:]], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"-X importtime check failed ({proc.returncode}):\n{proc.stderr}")
    out: list[Import] = []
    for line in proc.stderr.splitlines():
        m = IMPORT_LINE.match(line)
        if m:
            self_us, cum_us, indent, name = m.groups()
            out.append(Import(name, float(self_us), float(cum_us), len(indent) <= 1))
    return out


def is_heavy(name: str) -> bool:
    top = name.split(".", 1)[0]
    return top.startswith(("torch", "onnx"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each (default 7)")
    args = parser.parse_args()
    n: int = args.runs

    print(f"interpreter: {sys.executable}")
    print(f"A: {shlex.join(['python', *CHECK[1:]])}")
    print(f"B: {shlex.join(['python', *TORCH[1:]])}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    run_once(CHECK)
    run_once(TORCH)
    checks: list[Sample] = []
    torches: list[Sample] = []
    for i in range(n):
        if i % 2 == 0:
            checks.append(run_once(CHECK))
            torches.append(run_once(TORCH))
        else:
            torches.append(run_once(TORCH))
            checks.append(run_once(CHECK))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    check_wall = statistics.median(s.wall for s in checks)
    torch_wall = statistics.median(s.wall for s in torches)
    check_cpu = statistics.median(s.cpu for s in checks)
    torch_cpu = statistics.median(s.cpu for s in torches)
    ratio = check_wall / torch_wall
    print()
    print(f"{n} interleaved runs each after one warm-up each; medians")
    print(f"  resdsl check   wall {check_wall:.3f} s   cpu {check_cpu:.3f} s")
    print(f"  import torch   wall {torch_wall:.3f} s   cpu {torch_cpu:.3f} s")
    verdict = "meets" if ratio <= BAR_RATIO else "MISSES"
    print(f"  ratio (wall)   {ratio:.3f}   bar <= {BAR_RATIO}: {verdict} the bar")
    print(f"  ratio (cpu)    {check_cpu / torch_cpu:.3f}   (for reference)")

    traces = [import_trace() for _ in range(3)]
    names = {imp.name for trace in traces for imp in trace}
    heavy = sorted(name for name in names if is_heavy(name))
    print()
    print(f"-X importtime: {len(traces[0])} modules imported by `resdsl check`")
    if heavy:
        print(f"  torch*/onnx* modules imported: {', '.join(heavy)}  (bar: none): MISSES the bar")
    else:
        print("  torch*/onnx* modules imported: none  (bar: none): meets the bar")
    self_times: dict[str, list[float]] = defaultdict(list)
    cumulative: dict[str, list[float]] = defaultdict(list)
    top_level: set[str] = set()
    for trace in traces:
        for imp in trace:
            self_times[imp.name].append(imp.self_us)
            cumulative[imp.name].append(imp.cumulative_us)
            if imp.top_level:
                top_level.add(imp.name)
    print("  5 most expensive imports by self time (median of 3 runs, ms):")
    ranked = sorted(self_times, key=lambda k: statistics.median(self_times[k]), reverse=True)
    for name in ranked[:5]:
        s, c = statistics.median(self_times[name]), statistics.median(cumulative[name])
        print(f"    {s / 1e3:7.1f} self  {c / 1e3:7.1f} cumulative  {name}")
    print("  5 most expensive top-level imports by cumulative time (median of 3 runs, ms):")
    ranked = sorted(top_level, key=lambda k: statistics.median(cumulative[k]), reverse=True)
    for name in ranked[:5]:
        print(f"    {statistics.median(cumulative[name]) / 1e3:7.1f} cumulative  {name}")


if __name__ == "__main__":
    main()
