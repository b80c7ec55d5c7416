"""`resdsl draw`, whole process: is drawing a big network quick enough to use in a loop?

What: the wall time of whole processes `python -m resdsl draw SPEC ... -o OUT.svg`: start-up,
imports, parse, elaboration, the DOT text and the Graphviz render (whichever renderer
`resdsl draw` picks: `dot` on PATH, else graphviz-pure), for
- DenseNet-201 (`specs/densenet121.res -D blocks=[6,12,48,32]`) at layers depth (the bar;
  identical dense layers folded, as `resdsl draw` does by default), at layers depth with
  `--expand` (every one of its ~740 ops drawn, the concat bus included), and at blocks depth;
- dpn92 at blocks and layers depth.
Beside each, the same spec's `python -m resdsl check` (the part of the time that is not
drawing), and the time split inside one process: build, DOT text, render.

How: one warm-up of each command, then N=5 runs of each, interleaved (the order alternates
every round); medians. Prints draw / bar (2 s) and draw / check.

Bar (issue 7): whole-process `resdsl draw` of DenseNet-201 at layers depth ≤ 2 s.

Run: `.venv/bin/python bench/draw_speed.py [--runs N] [--quick]`. It prints; it asserts
nothing about timings. `--quick` (1 run, no warm-up, resnet18 only) is what the tests run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BAR_S = 2.0
DENSENET201 = ["specs/densenet121.res", "-D", "blocks=[6,12,48,32]"]
CASES: list[tuple[str, list[str], bool]] = [
    # (label, draw arguments, has a bar)
    ("DenseNet-201, layers", [*DENSENET201, "--depth", "layers"], True),
    ("DenseNet-201, layers --expand", [*DENSENET201, "--depth", "layers", "--expand"], False),
    ("DenseNet-201, blocks", [*DENSENET201, "--depth", "blocks"], False),
    ("dpn92, blocks", ["specs/dpn92.res", "--depth", "blocks"], False),
    ("dpn92, layers", ["specs/dpn92.res", "--depth", "layers"], False),
]
QUICK = [("resnet18, blocks", ["specs/resnet18.res"], False)]


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return wall


def split(args: list[str]) -> tuple[float, float, float, int, str]:
    """In one process: build, DOT text, render; the DOT's size; the renderer."""
    from resdsl.backends.dot_render import choose, render
    from resdsl.backends.dot_source import Settings, element_count, generate
    from resdsl.cli import _options, _parser
    from resdsl.pipeline import build

    ns = _parser().parse_args(["draw", *args])
    t0 = time.perf_counter()
    graph = build(ns.spec, _options(ns)).graph
    t1 = time.perf_counter()
    settings = Settings(ns.depth, ns.expand, ns.lr, ns.shapes)
    dot = generate(graph, settings)
    t2 = time.perf_counter()
    renderer = choose("svg")
    render(dot, "svg", renderer)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, element_count(dot), renderer.describe()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    opts = ap.parse_args()
    cases = QUICK if opts.quick else CASES
    runs = 1 if opts.quick else opts.runs
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "d.svg")
        commands: dict[str, tuple[list[str], list[str]]] = {}
        for label, args, _ in cases:
            spec_args = [a for a in args if not a.startswith("--") and a not in
                         ("layers", "blocks", "stages")]
            draw = [sys.executable, "-m", "resdsl", "draw", *args, "-o", out]
            check = [sys.executable, "-m", "resdsl", "check", *spec_args]
            commands[label] = (draw, check)
        times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in commands}
        if not opts.quick:
            for draw, check in commands.values():
                run(draw)
                run(check)
        for r in range(runs):
            for label, (draw, check) in commands.items():
                pair = [(0, draw), (1, check)]
                for which, cmd in (pair if r % 2 == 0 else pair[::-1]):
                    times[label][which].append(run(cmd))
    print(f"resdsl draw, whole process, median of {runs} (wall s); bar: DenseNet-201 at "
          f"layers depth ≤ {BAR_S:g} s\n")
    print(f"{'case':<32} {'draw':>7} {'check':>7} {'draw/check':>10} {'draw/bar':>9}")
    verdict = []
    for label, _, has_bar in cases:
        d = statistics.median(times[label][0])
        c = statistics.median(times[label][1])
        print(f"{label:<32} {d:7.3f} {c:7.3f} {d / c:10.2f} {d / BAR_S:9.2f}")
        if has_bar:
            verdict.append(f"{label}: {d:.3f} s / {BAR_S:g} s = {d / BAR_S:.2f} "
                           f"({'met' if d <= BAR_S else 'NOT met'})")
    print("\nin one process (s): build, DOT text, render; nodes+edges in the DOT")
    for label, args, _ in cases:
        b, g, rendering, size, renderer = split(args)
        print(f"{label:<32} build {b:6.3f}  dot {g:6.3f}  render {rendering:6.3f}  {size:5d} "
              f"elements  ({renderer})")
    for line in verdict:
        print("\nbar: " + line)


if __name__ == "__main__":
    main()
