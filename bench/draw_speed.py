"""`resdsl draw`, whole process: is drawing a big network quick enough to use in a loop?

What: the wall time of whole processes `python -m resdsl draw SPEC ... -o OUT.svg`: start-up,
imports, parse, elaboration, the DOT text and the Graphviz render (whichever renderer
`resdsl draw` picks: `dot` on PATH, else graphviz-pure), for
- DenseNet-201 (`specs/densenet121.res -D blocks=[6,12,48,32]`) at layers depth (the bar;
  identical dense layers folded, as `resdsl draw` does by default) and at blocks depth, and
  DenseNet-121 at layers depth with `--expand` (every one of its ~430 ops drawn);
- dpn92 at blocks and layers depth;
- the worst diagrams the limits admit (`WORST`): for each count that drives the layout's cost
  (`dot_source.Size`: long edges, clusters in a chain, clusters side by side, nodes side by
  side), a diagram of that family just under the limit of `dot_draw.layout_share`, and the
  largest CIFAR ResNet drawn with every block; as SVG, and the clusters side by side also as
  a PNG (scaled down to `dot_render.PNG_MAX_PIXELS`). They are generated into a temporary
  folder.
Beside each, the same spec's `python -m resdsl check` (the part of the time that is not
drawing), and the time split inside one process: build, DOT text, render, and its share of
the layout limit.

How: one warm-up of each command, then N=5 runs of each, interleaved (the order alternates
every round); medians. Prints draw / bar (2 s) and draw / check, and the peak RSS of each
worst case's draw (its renderer included).

Bars: (issue 7) whole-process `resdsl draw` of DenseNet-201 at layers depth ≤ 2 s; (issue 15)
each worst admitted diagram well within the 5 s / 1 GB contract of docs/robustness.md.

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
    ("DenseNet-201, blocks", [*DENSENET201, "--depth", "blocks"], False),
    ("DenseNet-121, layers --expand", ["specs/densenet121.res", "--depth", "layers",
                                       "--expand"], False),
    ("dpn92, blocks", ["specs/dpn92.res", "--depth", "blocks"], False),
    ("dpn92, layers", ["specs/dpn92.res", "--depth", "layers"], False),
]
QUICK = [("resnet18, blocks", ["specs/resnet18.res"], False)]


def long_edges(tensors: int, layers: int) -> str:
    """`tensors` named tensors, then `layers` layers, then all of them joined: long edges."""
    return (f"network long_edges {{\n    input [4, 8, 8]\n    repeat {tensors} {{ relu; z = in }}\n"
            f"    repeat {layers} {{ relu }}\n    add(in, z)\n}}\n")


def chained_clusters(count: int) -> str:
    """`count` named one-conv blocks in a chain, each a cluster."""
    return ("block one() { conv(4, 1) }\nnetwork chained_clusters {\n    input [4, 8, 8]\n"
            f"    layer: repeat {count} {{ one() }}\n}}\n")


def side_by_side(units: int, branches: int = 16) -> str:
    """`units` skips of `branches` branches each: clusters side by side on every rank."""
    body = " ".join(f"branch {{ conv({4 + b % 3}, 1); conv(4, 1) }}" for b in range(branches))
    return (f"network side_by_side {{\n    input [4, 8, 8]\n    repeat {units} as i {{ skip {{ "
            f"{body} }}; conv(4 + i % 2, 1) }}\n}}\n")


def shuffled(tensors: int) -> str:
    """`tensors` parallel chains, each continued from another in a shuffled order: many
    nodes side by side and their edges crossing."""
    return ("network shuffled {\n    input [4, 8, 8]\n    x = in\n"
            f"    repeat {tensors} as i {{ x; conv(4 + i % 3, 1); conv(4, 1); a = in }}\n"
            f"    repeat {tensors} as i {{ add(a[(i * 7 + 3) % {tensors}]); conv(5, 1); "
            "conv(4, 1); b = in }\n    add(b)\n}\n")


# The worst diagrams the limits admit: (label, generated spec (name, text) or None, draw
# arguments with {spec} for the generated file). tests/test_draw.py checks that each is
# admitted and within a tenth of the limit.
EXPANDED = ["--depth", "layers", "--expand"]
WORST: list[tuple[str, tuple[str, str] | None, list[str]]] = [
    ("long edges (10 tensors, 74 layers)", ("long_edges.res", long_edges(10, 74)),
     ["{spec}", *EXPANDED]),
    ("clusters in a chain (640)", ("chained.res", chained_clusters(640)), ["{spec}", *EXPANDED]),
    ("clusters side by side (22 × 16)", ("side.res", side_by_side(22)), ["{spec}", *EXPANDED]),
    ("shuffled joins (142 tensors)", ("shuffled.res", shuffled(142)), ["{spec}", *EXPANDED]),
    ("CIFAR ResNet-464, blocks --expand", None,
     ["specs/resnet20.res", "-D", "depth=464", "--expand"]),
    ("clusters side by side, PNG", ("side.res", side_by_side(22)),
     ["{spec}", *EXPANDED, "--format", "png"]),
]
# Draw options that `check` does not take, with the number of values each has.
DRAW_ONLY = {"--depth": 1, "--expand": 0, "--lr": 0, "--no-shapes": 0, "--format": 1}


def run(cmd: list[str]) -> tuple[float, int, float]:
    """Wall time of `cmd`, and the peak RSS (MB) and CPU time (user + system) of it and the
    processes it waited for (the renderer), measured from a process in between."""
    probe = ("import resource, subprocess, sys; "
             "rc = subprocess.run(sys.argv[1:], capture_output=True).returncode; "
             "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
             "print(rc, u.ru_maxrss, u.ru_utime + u.ru_stime)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", probe, *cmd], cwd=ROOT, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    rc, rss_kb, cpu = proc.stdout.split()
    if rc != "0":
        raise SystemExit(f"{' '.join(cmd)} failed ({rc}); run it to see why")
    return wall, int(rss_kb) // 1024, float(cpu)


def check_args(args: list[str]) -> list[str]:
    """The arguments of `draw` that `check` takes too: the spec, -D, --input, --network."""
    kept: list[str] = []
    skip = 0
    for a in args:
        if skip:
            skip -= 1
        elif a in DRAW_ONLY:
            skip = DRAW_ONLY[a]
        else:
            kept.append(a)
    return kept


def split(args: list[str]) -> tuple[float, float, float, float, str]:
    """In one process: build, DOT text, render; the diagram's share of the layout limit; the
    renderer."""
    from resdsl.backends.dot_draw import layout_share
    from resdsl.backends.dot_render import choose, render
    from resdsl.backends.dot_source import Settings, measure
    from resdsl.cli import _options, _parser
    from resdsl.pipeline import build

    ns = _parser().parse_args(["draw", *args])
    fmt = ns.format or "svg"
    t0 = time.perf_counter()
    graph = build(ns.spec, _options(ns)).graph
    t1 = time.perf_counter()
    settings = Settings(ns.depth, ns.expand, ns.lr, ns.shapes)
    dot, size = measure(graph, settings)
    t2 = time.perf_counter()
    renderer = choose(fmt)
    render(dot, fmt, renderer, settings.lr)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, layout_share(size), renderer.describe()


def worst_cases(folder: Path) -> list[tuple[str, list[str], bool]]:
    """`WORST` as cases, their specs written to `folder`."""
    cases = []
    for label, generated, args in WORST:
        spec = ""
        if generated is not None:
            name, text = generated
            spec = str(folder / name)
            Path(spec).write_text(text, encoding="utf-8")
        cases.append((label, [a.replace("{spec}", spec) for a in args], False))
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worst", action="store_true",
                    help="only the worst admitted diagrams, one run each, no warm-up")
    opts = ap.parse_args()
    runs = 1 if opts.quick or opts.worst else opts.runs
    with tempfile.TemporaryDirectory() as tmp:
        worst = [] if opts.quick else worst_cases(Path(tmp))
        cases = QUICK if opts.quick else worst if opts.worst else [*CASES, *worst]
        commands: dict[str, tuple[list[str], list[str]]] = {}
        for label, args, _ in cases:
            fmt = args[args.index("--format") + 1] if "--format" in args else "svg"
            out = str(Path(tmp) / f"d.{fmt}")
            draw = [sys.executable, "-m", "resdsl", "draw", *args, "-o", out]
            check = [sys.executable, "-m", "resdsl", "check", *check_args(args)]
            commands[label] = (draw, check)
        times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in commands}
        peak: dict[str, int] = dict.fromkeys(commands, 0)
        cpus: dict[str, list[float]] = {k: [] for k in commands}
        if not (opts.quick or opts.worst):
            for draw, check in commands.values():
                run(draw)
                run(check)
        for r in range(runs):
            for label, (draw, check) in commands.items():
                pair = [(0, draw), (1, check)]
                for which, cmd in (pair if r % 2 == 0 else pair[::-1]):
                    wall, rss, cpu = run(cmd)
                    times[label][which].append(wall)
                    if which == 0:
                        peak[label] = max(peak[label], rss)
                        cpus[label].append(cpu)
        print(f"resdsl draw, whole process, median of {runs} (wall s; the draw's CPU s and "
              f"peak RSS, its renderer's included); bar: DenseNet-201 at layers depth ≤ "
              f"{BAR_S:g} s\n")
        print(f"{'case':<36} {'draw':>7} {'check':>7} {'draw/check':>10} {'draw/bar':>9} "
              f"{'CPU s':>6} {'RSS MB':>7}")
        verdict = []
        for label, _, has_bar in cases:
            d = statistics.median(times[label][0])
            c = statistics.median(times[label][1])
            print(f"{label:<36} {d:7.3f} {c:7.3f} {d / c:10.2f} {d / BAR_S:9.2f} "
                  f"{statistics.median(cpus[label]):6.2f} {peak[label]:7d}")
            if has_bar:
                verdict.append(f"{label}: {d:.3f} s / {BAR_S:g} s = {d / BAR_S:.2f} "
                               f"({'met' if d <= BAR_S else 'NOT met'})")
        print("\nin one process (s): build, DOT text, render; share of the layout limit")
        for label, args, _ in cases:
            b, g, rendering, share, renderer = split(args)
            print(f"{label:<36} build {b:6.3f}  dot {g:6.3f}  render {rendering:6.3f}  "
                  f"{share:5.2f} of the limit  ({renderer})")
    for line in verdict:
        print("\nbar: " + line)


if __name__ == "__main__":
    main()
