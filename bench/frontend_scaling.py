"""The front end's speed on a deep network, and whether its cost grows linearly with depth.

What: `resdsl.pipeline.build` in this process, i.e. everything before a backend: reading and
parsing the spec and its imports, the static checks, elaboration to the graph with shape
inference, the structure checks and the shape verification pass.

How: one warm-up build (it also builds or loads Lark's cached LALR tables), then
1. `specs/preact_resnet1001.res` (333 bottleneck units, 3,340 nodes), R=7 runs, median;
2. the same family (depth 9n+2 has 3n units, set with `-D depth=...`) at about 100, 500,
   1,500 and 4,500 units (45,000 nodes: past the node limit of 20,000, which the sweep lifts,
   as it measures the cost per unit, not what is accepted), R=5 rounds, sizes interleaved
   (the order rotates every round), median per size;
3. (`--files`) the cost per statement of one network of N `relu;` statements, N = 1,000 to
   150,000, and per definition of files of N = 10 to 20,000 blocks (a network calls 100 of
   them misspelled, so every "did you mean" scans all N) or N networks, with the file,
   token, node and step limits lifted for the run (they would refuse the big sizes at
   once): it shows that reading, parsing, checking and elaborating cost O(N), not that
   such a file is accepted. Each size is built R times (median), by stage.
Every run is preceded by `gc.collect()` and timed with `time.perf_counter` (wall). CPU time
(`time.process_time`) is printed beside it, because the machines are small and shared:
wall time absorbs other people's load, CPU time mostly does not. So is the time the cyclic
garbage collector spent inside the run (`gc.callbacks`): its full passes over a growing
graph were what made the cost non-linear, and `build` now pauses it, so this should be 0.

Linearity: measured t(4,500) divided by the linear prediction from 100 units,
t(100) · 4,500/100. A fixed per-run cost (parsing the files, Python's first-call costs)
inflates t(100) and so flatters this ratio, so the script also prints the ratio against a
line fitted through two mid points (500 and 1,500 units), and the fitted fixed cost.
For the files sweep: the largest µs per statement (or definition) divided by the smallest.

Bars: ResNet-1001 median ≤ 0.5 s; t(4,500) / linear prediction ≤ 1.2; files sweep: largest
per-item cost / smallest ≤ 1.5.

Run: `.venv/bin/python bench/frontend_scaling.py [--rounds R] [--files]` (about a minute
on 2 cores, three more with `--files`).
It prints; it asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from resdsl.pipeline import Options, build

ROOT = Path(__file__).resolve().parent.parent
SPEC = str(ROOT / "specs" / "preact_resnet1001.res")
BAR_1001 = 0.5
BAR_LINEAR = 1.2
TARGETS = (100, 500, 1_500, 4_500)


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    gc: float
    nodes: int


class GcTimer:
    """Accumulates the time the cyclic collector runs, through `gc.callbacks`."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start


def timed(run: Callable[[], int]) -> Sample:
    gc.collect()
    timer = GcTimer()
    gc.callbacks.append(timer)
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        nodes = run()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        gc.callbacks.remove(timer)
    return Sample(wall, cpu, timer.total, nodes)


def build_depth(depth: int | None) -> Callable[[], int]:
    options = Options(defines={"depth": str(depth)}) if depth is not None else None

    def run() -> int:
        return len(build(SPEC, options).graph)

    return run


def med(samples: list[Sample], field: str) -> float:
    return float(statistics.median(getattr(s, field) for s in samples))


def depth_for(units: int) -> tuple[int, int]:
    """The depth 9n+2 with 3n closest to `units`, and its unit count 3n."""
    n = max(1, round(units / 3))
    return 9 * n + 2, 3 * n


def linearity(units: list[int], times: list[float], field: str) -> None:
    u100, u1k, u3k, u10k = units
    t100, t1k, t3k, t10k = times
    from_100 = t100 * u10k / u100
    slope = (t3k - t1k) / (u3k - u1k)
    fixed = t1k - slope * u1k
    from_mid = fixed + slope * u10k
    r1, r2 = t10k / from_100, t10k / from_mid
    v1 = "meets" if r1 <= BAR_LINEAR else "MISSES"
    v2 = "meets" if r2 <= BAR_LINEAR else "MISSES"
    print(
        f"  [{field}] t({u10k}) / (t({u100}) * {u10k}/{u100}) = {t10k:.3f} / {from_100:.3f}"
        f" = {r1:.3f}   bar <= {BAR_LINEAR}: {v1} the bar"
    )
    print(
        f"  [{field}] t({u10k}) / line through {u1k} and {u3k} units = {t10k:.3f} / "
        f"{from_mid:.3f} = {r2:.3f}   ({v2} the bar)"
    )
    share = fixed / t100 if t100 > 0 else 0.0
    print(
        f"  [{field}] fitted fixed cost {fixed * 1e3:.1f} ms ({share:.0%} of t({u100})), "
        f"slope {slope * 1e6:.0f} µs per unit"
    )


# ---------------------------------------------------------------------- the files sweep

STATEMENTS = (1_000, 10_000, 50_000, 150_000)
DEFINITIONS = (10, 100, 1_000, 5_000, 20_000)
BAR_FLAT = 1.5


@contextlib.contextmanager
def limits_lifted() -> Iterator[None]:
    """Lift the size limits for a sweep: this measures cost per item, past the limits."""
    import resdsl.ir.elaborate as elaborate
    import resdsl.syntax.loader as loader
    import resdsl.syntax.parser as parser

    saved = (loader.MAX_TOKENS, parser.MAX_FILE_BYTES, elaborate.MAX_NODES,
             elaborate.MAX_STEPS)
    loader.MAX_TOKENS = elaborate.MAX_NODES = elaborate.MAX_STEPS = 10**9
    parser.MAX_FILE_BYTES = 1 << 30
    try:
        yield
    finally:
        loader.MAX_TOKENS, parser.MAX_FILE_BYTES, elaborate.MAX_NODES, elaborate.MAX_STEPS = saved


def statements_spec(n: int) -> str:
    return "network n {\n    input [3, 8, 8]\n" + "    relu;\n" * n + "}\n"


def blocks_spec(n: int) -> str:
    """N blocks; the network calls 100 of them misspelled (`unti7`), so the checks report
    100 unknown blocks, each with a "did you mean" over all N."""
    blocks = "".join(f"block unit{i}(c) {{ conv(c, 3); bn; relu }}\n" for i in range(n))
    calls = "".join(f"    unti{i * 7919 % n}(16)\n" for i in range(100))
    return blocks + "network n {\n    input [3, 8, 8]\n" + calls + "}\n"


def networks_spec(n: int) -> str:
    """N networks; 100 of them, spread evenly, call `rleu` (did you mean `relu`?)."""
    step = max(1, n // 100)
    return "".join(
        f"network n{i} {{ input [3, 8, 8]; conv(8, 3); bn; {'rleu' if i % step == 0 else 'relu'}"
        " }\n" for i in range(n))


def _stage_times(path: str, options: Options) -> tuple[float, float]:
    """(reading and parsing, everything after it) in CPU seconds, the collector paused as
    `build` pauses it."""
    from resdsl.diagnostics import SpecError
    from resdsl.syntax.loader import load_program

    gc.collect()
    gc.disable()
    try:
        c0 = time.process_time()
        load_program(path)
        c1 = time.process_time()
    finally:
        gc.enable()
    gc.collect()
    c2 = time.process_time()
    with contextlib.suppress(SpecError):
        build(path, options)
    c3 = time.process_time()
    return c1 - c0, (c3 - c2) - (c1 - c0)


def files_sweep(rounds: int) -> None:
    import tempfile

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    kinds = [("statements", STATEMENTS, statements_spec, Options()),
             ("blocks", DEFINITIONS, blocks_spec, Options()),
             ("networks", DEFINITIONS, networks_spec, Options(network="n1"))]
    with tempfile.TemporaryDirectory() as tmp, limits_lifted():
        for kind, sizes, make, options in kinds:
            print()
            print(f"{kind}: CPU µs per {kind[:-1]}, median of {rounds} (parse = read + parse; "
                  "rest = checks, did-you-mean, elaboration, passes)")
            print(f"  {'N':>8} {'bytes':>10} {'parse µs':>9} {'rest µs':>8} {'total µs':>9}")
            totals: list[float] = []
            for n in sizes:
                path = os.path.join(tmp, f"{kind}{n}.res")
                with open(path, "w", encoding="utf-8") as f:
                    f.write(make(n))
                runs = [_stage_times(path, options) for _ in range(rounds)]
                parse = statistics.median(r[0] for r in runs) / n * 1e6
                rest = statistics.median(r[1] for r in runs) / n * 1e6
                totals.append(parse + rest)
                print(f"  {n:>8,} {os.path.getsize(path):>10,} {parse:>9.1f} {rest:>8.1f} "
                      f"{parse + rest:>9.1f}", flush=True)
            # The smallest sizes carry the fixed cost of a build; flatness is judged from 1,000.
            big = [t for n, t in zip(sizes, totals, strict=True) if n >= 1_000]
            ratio = max(big) / min(big)
            verdict = "meets" if ratio <= BAR_FLAT else "MISSES"
            print(f"  largest / smallest per-item cost from N = 1,000: {ratio:.2f}   bar <= "
                  f"{BAR_FLAT}: {verdict} the bar")
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of ResNet-1001 (default 7)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the sweep (default 5)")
    parser.add_argument("--files", action="store_true",
                        help="only the per-statement and per-definition sweep")
    args = parser.parse_args()
    if args.files:
        files_sweep(max(1, min(args.rounds, 3)))
        return

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    warm = timed(build_depth(None))
    print(f"warm-up build (grammar cache): {warm.wall:.3f} s wall")

    runs = [timed(build_depth(None)) for _ in range(args.runs)]
    wall, cpu = med(runs, "wall"), med(runs, "cpu")
    verdict = "meets" if wall <= BAR_1001 else "MISSES"
    print()
    print(f"preact_resnet1001.res ({runs[0].nodes} nodes), median of {args.runs} runs:")
    print(f"  wall {wall:.3f} s   cpu {cpu:.3f} s   gc {med(runs, 'gc'):.3f} s")
    print(f"  bar <= {BAR_1001} s (wall): {verdict} the bar")

    sizes = [depth_for(t) for t in TARGETS]
    samples: dict[int, list[Sample]] = {units: [] for _, units in sizes}
    with limits_lifted():
        for r in range(args.rounds):
            order = sizes[r % len(sizes) :] + sizes[: r % len(sizes)]
            for depth, units in order:
                samples[units].append(timed(build_depth(depth)))
    print()
    print(f"scaling sweep, median of {args.rounds} interleaved rounds:")
    print(
        f"  {'units':>6} {'depth':>6} {'nodes':>7} {'wall s':>8} {'cpu s':>8} {'gc s':>7}"
        f" {'µs/unit (wall)':>15} {'µs/unit (cpu)':>14}"
    )
    for depth, units in sizes:
        s = samples[units]
        w, c = med(s, "wall"), med(s, "cpu")
        print(
            f"  {units:>6} {depth:>6} {s[0].nodes:>7} {w:>8.3f} {c:>8.3f} {med(s, 'gc'):>7.3f}"
            f" {w / units * 1e6:>15.0f} {c / units * 1e6:>14.0f}"
        )
    units_list = [u for _, u in sizes]
    for field in ("wall", "cpu"):
        linearity(units_list, [med(samples[u], field) for u in units_list], field)
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
