"""Differential testing at scale: random valid specs through every backend.

What: `tests/specgen.py` writes a random valid spec per seed (every op, primitive and
construct of docs/language.md: named tensors, joins of one, two or more tensors and of lists,
dotted levels filled in turns or revisited, guards, multi-branch joins, blocks and functions;
random widths, strides, groups, repeats); each is compiled to ONNX (opset 13, 17 or 21 at
random, BN folded in some), to the PyTorch module and to the standalone source of `--to python`
(executed on its own), with the same weights (BN statistics, α and branch weights randomised).
The ONNX model must pass `onnx.checker` (full) and strict shape inference with resdsl's shapes;
both modules' state_dicts must be `state_shapes()` (keys, shapes and order); ONNX Runtime's
output must equal the module's (eval mode, rtol 1e-4, atol 1e-5·max(1, max|y|), or within four
times the module's float32 rounding against float64) and the source's output the module's,
exactly. A crash (a SyntaxError in the source, a state_dict that does not load) is a mismatch.

Bar (issue 6, issue 15): at least 1,000 specs, no mismatch; every mismatch found becomes a
regression test in tests/test_onnx_difftest.py.

Run: `.venv/bin/python bench/onnx_difftest.py [--count 1000] [--start 0]` (about 0.5 s a
spec on 2 cores). It prints the seeds that fail, the ops and wiring constructs the specs held,
and a summary.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resdsl.pipeline import build  # noqa: E402
from tests.specgen import differential, generate_with  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--start", type=int, default=0)
    args = p.parse_args()
    failed: list[str] = []
    ops: Counter[str] = Counter()
    constructs: Counter[str] = Counter()
    opsets: Counter[int] = Counter()
    folded = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, seed in enumerate(range(args.start, args.start + args.count), 1):
            try:
                outcome = differential(seed, folder)
            except Exception as exc:  # a crash is a mismatch too
                failed.append(f"seed {seed}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            ops.update(n.op for n in build(str(folder / f"gen{seed}.res")).graph.nodes())
            constructs.update(generate_with(seed)[1])
            opsets[outcome.opset] += 1
            folded += outcome.fold_bn
            if not outcome.ok:
                failed.append(f"seed {seed}: {outcome.detail.strip('; ')}")
            if i % 100 == 0:
                print(f"  {i}/{args.count} specs, {len(failed)} mismatches, "
                      f"{time.perf_counter() - start:.0f} s", flush=True)
    elapsed = time.perf_counter() - start
    for line in failed:
        print("MISMATCH", line)
    print(f"\n{args.count} specs (seeds {args.start}-{args.start + args.count - 1}) in "
          f"{elapsed:.0f} s: {args.count - len(failed)} match, {len(failed)} mismatch")
    print(f"opsets {dict(sorted(opsets.items()))}, BN folded in {folded}; nodes per op: "
          + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
    print("wiring constructs: " + ", ".join(f"{k} {v}" for k, v in sorted(constructs.items())))
    print(f"the bar (≥ 1,000 specs, no mismatch): "
          f"{'met' if args.count >= 1000 and not failed else 'NOT met'}")


if __name__ == "__main__":
    main()
