"""The long fuzz run of the front end (docs/robustness.md reports its result).

What: `--cases` specs (default 100,000), run with `resdsl check` or `resdsl info` (alternating)
in a long-lived worker process under an address-space cap of 2 GB (`ulimit -v 2000000`) and
a per-case time limit (default 20 s wall; the worker is killed and restarted past it), as
`tests/fuzz/harness.py` describes. The cases: first the whole hostile corpus
(`tests/fuzz/hostile.py`), then, alternating, specs from the grammar-aware generator
(`tests/fuzz/generate.py`) and mutants of the shipped specs and the docs' examples
(`tests/fuzz/mutate.py`), all from one seed, so a run can be repeated exactly.

Each case's outcome is counted: `ok` (exit 0) and `diagnosed` (exit 1) are passes;
`internal` (exit 3, E9000, a traceback), `timeout`, `crash`, `memory` (peak RSS over 1 GB
or a MemoryError) and `unexpected` (a hostile case without its diagnostic) are failures,
and each is written to `--save` (default `fuzz-findings/`) to become a regression test.
Printed: the counts, the diagnostic codes seen, the ten slowest cases by CPU time, the
largest peak RSS and the time per case.

Run: `nice -n 10 .venv/bin/python bench/fuzz_frontend.py [--cases N] [--seed S]`
(about 5 ms a case on this machine when it is quiet).
"""

from __future__ import annotations

import argparse
import collections
import heapq
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fuzz.generate import Generator  # noqa: E402
from tests.fuzz.harness import FAILURES, Pool, Result, Scratch  # noqa: E402
from tests.fuzz.hostile import CASES  # noqa: E402
from tests.fuzz.mutate import Mutator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--save", default="fuzz-findings")
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    generator = Generator(random.Random(rng.random()))
    mutator = Mutator(random.Random(rng.random()))
    scratch = Scratch()
    save = Path(args.save)
    outcomes: collections.Counter[str] = collections.Counter()
    by_source: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    codes: collections.Counter[str] = collections.Counter()
    slowest: list[tuple[float, str, float, int]] = []
    peak = (0, "")
    total_cpu = 0.0
    t0 = time.perf_counter()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with Pool(timeout=args.timeout) as pool:
        for i in range(args.cases):
            command = "check" if i % 2 == 0 else "info"
            folder = scratch.fresh()
            if i < len(CASES):
                case = CASES[i]
                source, name, text = "hostile", f"hostile:{case.name}", None
                spec = case.write(folder)
                result = pool.run(name, spec, case.command, case.expect)
            else:
                if i % 2 == 0:
                    source, text = "generated", generator.spec()
                    name = f"generated:{i}"
                else:
                    source = "mutated"
                    origin, text = mutator.spec()
                    name = f"mutated:{i}:{origin}"
                spec = folder / "main.res"
                spec.write_bytes(text.encode("utf-8", "surrogatepass"))
                result = pool.run(name, spec, command)
            outcomes[result.outcome] += 1
            by_source[source][result.outcome] += 1
            codes.update(result.codes)
            total_cpu += result.cpu
            _keep_slowest(slowest, result)
            if result.peak_rss > peak[0]:
                peak = (result.peak_rss, result.name)
            if result.outcome in FAILURES:
                _save(save, i, result, text if text is not None else spec.read_text("utf-8"))
                print(f"FAILURE {result.outcome}: {result.name}\n{result.detail[-800:]}",
                      flush=True)
            if (i + 1) % 5_000 == 0:
                rate = (time.perf_counter() - t0) / (i + 1) * 1e3
                print(f"{i + 1:>7,} cases, {rate:.1f} ms a case, {dict(outcomes)}", flush=True)
        restarts = pool.restarts
    scratch.close()
    wall = time.perf_counter() - t0
    failures = sum(outcomes[f] for f in FAILURES)
    print()
    print(f"cases: {args.cases:,} (seed {args.seed}) in {wall:,.0f} s wall, "
          f"{wall / args.cases * 1e3:.1f} ms a case; cases' own CPU {total_cpu:,.0f} s")
    print(f"outcomes: {dict(outcomes)}; failures: {failures}; worker restarts: {restarts}")
    for source, counter in by_source.items():
        print(f"  {source}: {dict(counter)}")
    print(f"peak RSS of one case: {peak[0] / 2**20:.0f} MB ({peak[1]})")
    print("diagnostic codes seen:", ", ".join(f"{c} {n:,}" for c, n in sorted(codes.items())))
    print("slowest cases by CPU time:")
    for cpu, name, wall_s, rss in sorted(slowest, reverse=True):
        print(f"  {cpu:6.2f} s CPU {wall_s:6.2f} s wall {rss / 2**20:5.0f} MB  {name}")
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "cases": args.cases, "seed": args.seed, "wall": wall, "outcomes": outcomes,
            "by_source": by_source, "codes": codes, "peak_rss": peak, "restarts": restarts,
            "slowest": sorted(slowest, reverse=True),
        }, indent=1), encoding="utf-8")


def _keep_slowest(heap: list[tuple[float, str, float, int]], r: Result, n: int = 10) -> None:
    item = (r.cpu, r.name, r.wall, r.peak_rss)
    if len(heap) < n:
        heapq.heappush(heap, item)
    else:
        heapq.heappushpop(heap, item)


def _save(folder: Path, i: int, r: Result, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{i:06d}_{r.outcome}.res").write_text(text, encoding="utf-8", errors="replace")
    (folder / f"{i:06d}_{r.outcome}.txt").write_text(
        f"{r.name}\n{r.outcome} exit {r.code} {r.codes}\n{r.detail}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
