"""The resource contract: `resdsl check` and `resdsl info` finish within 5 s and 1 GB of RSS
for any input (docs/language.md §Limits). This measures the specs that sit at each limit,
all limits at once, and the hostile specs of issue #10 that cross them.

What: each case is a fresh `python -m resdsl check|info SPEC` process, as a user runs it,
under `ulimit -v 2000000` (RLIMIT_AS, 2 GB of address space). Wall time
(`time.perf_counter` around the process), CPU time (user + system, from `os.wait4`) and peak
RSS (`ru_maxrss` of that one process) are recorded; R runs per case (default 3), the median
wall and CPU and the largest RSS reported. Interpreter start and imports are included
(about 0.3 s of CPU here).

The machine is small (2 cores) and shared, so wall time absorbs other people's load; CPU
time mostly does not, and is what the contract is checked against when the machine is busy.
The load average is printed before and after.

Bars (each case): CPU ≤ 5 s, peak RSS ≤ 1 GB, exit code 0 or 1, no traceback.

Run: `.venv/bin/python bench/frontend_limits.py [--runs R] [--only NAME ...]` (about two
minutes). It prints; it asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resdsl.ir.elaborate import MAX_NODES, MAX_STEPS  # noqa: E402
from resdsl.ir.evaluate import MAX_OPERATIONS  # noqa: E402
from resdsl.syntax.loader import MAX_TOKENS  # noqa: E402
from tests.fuzz.harness import run_process  # noqa: E402
from tests.fuzz.hostile import (  # noqa: E402
    CASES,
    CIFAR,
    CIFAR_DEPTH_AT_LIMIT,
    Case,
    near_every_limit,
    net,
)

BAR_CPU = 5.0
BAR_RSS = 1 << 30


def _ops_repeat(iterations: int, items: int) -> str:
    row = ", ".join(["i + i * i"] * items)
    return f"    repeat {iterations} as i {{ _x = [{row}] }}"


def limit_cases() -> list[Case]:
    """Specs just under each limit, and one that is near all of them at once."""
    nodes = MAX_NODES - 10
    steps_outer = MAX_STEPS // (4 * 990 + 5)
    return [
        Case(f"tokens: {(MAX_TOKENS - 200) // 2:,} statements",
             net("relu;\n" * ((MAX_TOKENS - 200) // 2))),
        Case(f"nodes: {nodes:,} named", net(f"    layer: repeat {nodes} as i {{ r{{i}}: relu }}"),
             command="info"),
        Case(f"nodes: CIFAR ResNet depth {CIFAR_DEPTH_AT_LIMIT:,}",
             CIFAR.format(depth=CIFAR_DEPTH_AT_LIMIT), command="info"),
        Case(f"steps: {steps_outer} × 990 empty iterations",
             net(f"    repeat {steps_outer} {{ repeat 990 {{ }} }}")),
        Case("steps: bindings",
             net(f"    repeat {MAX_STEPS // 715} {{ repeat 99 {{ _x = 1; _y = 2; _z = 3 }} }}")),
        Case("operations: list of 400 expressions", net(_ops_repeat(MAX_OPERATIONS // 2_420, 400))),
        Case("all limits at once", near_every_limit),
    ]


ACCEPTANCE = ("string_doubling", "list_doubling", "use_5gib_file", "statements_150k",
              "repeat_400k_nodes", "cifar_depth_110110", "blocks_call_next_twice",
              "blocks_20k_misspelled", "networks_20k", "exponential_functions",
              "wide_scope_copied", "empty_repeats", "unclosed_100k", "list_literal_200k",
              "uses_2000_empty_files", "compare_big_lists", "max_of_big_list")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    by_name = {c.name: c for c in CASES}
    cases = limit_cases() + [by_name[n] for n in ACCEPTANCE]
    if args.only:
        cases = [c for c in cases if any(o in c.name for o in args.only)]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'case':40} {'cmd':5} {'exit':>4} {'wall s':>7} {'cpu s':>6} {'RSS MB':>7}  first line")
    worst_cpu, worst_rss, failures = 0.0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(cases):
            folder = Path(tmp) / f"c{i}"
            folder.mkdir()
            spec = case.write(folder)
            runs = [run_process(case.command, spec) for _ in range(args.runs)]
            wall = statistics.median(r.wall for r in runs)
            cpu = statistics.median(r.cpu for r in runs)
            rss = max(r.rss for r in runs)
            bad = (cpu > BAR_CPU or rss > BAR_RSS or any(r.code not in (0, 1) for r in runs)
                   or any("TRACEBACK" in r.first_line for r in runs))
            failures += bad
            worst_cpu, worst_rss = max(worst_cpu, cpu), max(worst_rss, rss)
            print(f"{case.name[:40]:40} {case.command:5} {runs[0].code:>4} {wall:>7.2f} "
                  f"{cpu:>6.2f} {rss / 2**20:>7.0f}  {'MISS ' if bad else ''}"
                  f"{runs[0].first_line[:70]}", flush=True)
    print(f"worst CPU {worst_cpu:.2f} s (bar {BAR_CPU} s), worst RSS {worst_rss / 2**20:.0f} MB "
          f"(bar {BAR_RSS / 2**20:.0f} MB); {failures} case(s) miss a bar")
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
