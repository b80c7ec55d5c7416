"""`resdsl paths SPEC`: the number of input-to-output paths by length, as a table, JSON or a
bar chart (Veit et al. 2016, Fig. 2, for any spec).

The counting is `resdsl.ir.paths` (graph only); this module formats it. It never imports
torch: the plot needs matplotlib alone, imported only for `--plot` (E0732 without it).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from resdsl.diagnostics import SpecError, error, render_all_text, write_errors
from resdsl.ir.paths import PathCounts, count_paths
from resdsl.pipeline import Options, UsageError, build

EXIT_OK, EXIT_SPEC = 0, 1
PLOT_FORMATS = (".png", ".svg", ".pdf")


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("paths", help="input-to-output paths by length (the residual "
                       "branches each passes through)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--plot", metavar="FILE",
                   help="also draw the distribution as a bar chart (.png, .svg or .pdf; "
                   "needs matplotlib)")
    common(p)


def paths(args: argparse.Namespace, options: Options, out: TextIO, err: TextIO) -> int:
    if args.plot is not None:
        _check_plot_path(args.plot)
    try:
        result = build(args.spec, options)
        counts = count_paths(result.graph, result.network.name_span)
        if args.plot is not None:
            plot(counts, result.network.name, args.plot,
                 [f.source.path for f in result.program.files])
    except SpecError as exc:
        write_errors(exc.diagnostics, args.format, out, err)
        return EXIT_SPEC
    if result.warnings and args.format == "text":
        err.write(render_all_text(result.warnings))
    if args.format == "json":
        doc = {"network": result.network.name, "spec": args.spec, "joins": counts.joins,
               "units": counts.units, "total": counts.total, "mean": counts.mean,
               "mode": counts.mode, "binomial": is_binomial(counts),
               "counts": list(counts.counts),
               # A network with named outputs: each one's counts; `counts` is their sum.
               "outputs": {name: list(c) for name, c in counts.outputs.items()}}
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        out.write(table(counts, result.network.name, args.spec))
    if args.plot is not None and args.format == "text":
        out.write(f"wrote {args.plot}: paths of {result.network.name} by length\n")
    return EXIT_OK


def is_binomial(counts: PathCounts) -> bool:
    """Whether the counts are C(n, k) for the n joins: every join on every path, each
    passed through or around independently (Veit et al.'s ResNet)."""
    n = counts.units
    return list(counts.counts) == [math.comb(n, k) for k in range(n + 1)]


def _share(count: int, total: int) -> str:
    if count == 0:
        return "0 %"
    share = 100 * count / total
    return f"{share:.2f} %" if share >= 0.01 else f"{share:.1e} %"


def _joins(counts: PathCounts) -> str:
    if not counts.joins:
        return "no joins"
    kinds = ", ".join(f"{kind} ×{n}" for kind, n in counts.joins.items())
    return f"{counts.units} join{'s' if counts.units != 1 else ''} ({kinds})"


def table(counts: PathCounts, network: str, spec: str) -> str:
    """The text report: a header, one row per length, and a summary."""
    total = counts.total
    rows = [("length", "paths", "share")]
    rows += [(str(k), f"{c:,}", _share(c, total)) for k, c in enumerate(counts.counts)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    ends = (f"to its {len(counts.outputs)} outputs (a path ends at one)" if counts.outputs
            else "to output")
    lines = [f"{network} ({spec}): {_joins(counts)}; {total:,} paths from input {ends}", ""]
    lines += [f"{a:>{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
    lines.append("")
    summary = f"mean length {counts.mean:.2f}, most common {counts.mode}"
    if is_binomial(counts) and counts.units:
        summary += f"; the counts are the binomial C({counts.units}, k)"
    lines.append(summary)
    if counts.outputs:
        per = [("output", "paths", "lengths")] + [
            (name, f"{sum(c):,}", f"0 to {len(c) - 1}") for name, c in counts.outputs.items()]
        w = [max(len(r[i]) for r in per) for i in range(3)]
        lines += ["", "by output:"]
        lines += [f"{a:<{w[0]}}  {b:>{w[1]}}  {c}" for a, b, c in per]
    return "\n".join(lines) + "\n"


def _check_plot_path(path: str) -> None:
    target = Path(path)
    if target.suffix.lower() not in PLOT_FORMATS:
        raise UsageError(f"--plot {path}: the file must end in .png, .svg or .pdf")
    if target.is_dir():
        raise UsageError(f"--plot {path}: is a folder; give a file name")
    if str(target.parent) and not target.parent.exists():
        raise UsageError(f"--plot {path}: the folder {target.parent} does not exist")


def require_matplotlib() -> Any:
    """Import matplotlib with a file-only backend, or explain how to install it (E0732)."""
    try:
        import matplotlib
    except ImportError:
        raise SpecError([error(
            "E0732",
            "plotting needs matplotlib, which is not installed",
            None,
            help="install it with `pip install resdsl[plot]` (or `pip install matplotlib`); "
            "without --plot, `resdsl paths` needs nothing more",
        )]) from None
    # Agg draws to files without a display: the command must work over ssh and in CI.
    matplotlib.use("Agg")
    return matplotlib


def plot(counts: PathCounts, network: str, path: str, inputs: list[str]) -> None:
    """Draw the share of paths per length as bars (Veit et al. 2016, Fig. 2a) to `path`."""
    from resdsl.outputs import check_output, write_atomic

    check_output(path, inputs)
    require_matplotlib()
    import matplotlib.pyplot as plt

    total = counts.total
    lengths = range(len(counts.counts))
    # Shares, not counts: 2^54 does not fit an axis label, and the shape is the point.
    shares = [100 * c / total if total else 0.0 for c in counts.counts]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    ax.bar(lengths, shares, width=0.85, color="#3b6ea8")
    ax.set_xlabel("path length (joins entered through their body)")
    ax.set_ylabel("share of paths (%)")
    ax.set_title(f"{network}: {_joins(counts)}, {_sci(total)} paths, mean length "
                 f"{counts.mean:.1f}", fontsize=10)
    ax.set_xlim(-0.5, max(len(counts.counts), 2) - 0.5)
    fig.tight_layout()
    fmt = Path(path).suffix.lower().lstrip(".")
    # Fixed metadata: the same counts give the same bytes (no creation date in the file).
    metadata: dict[str, Any] = {"Software": None} if fmt == "png" else {}
    if fmt in ("svg", "pdf"):
        metadata = {"Date": None, "Creator": None} if fmt == "svg" else {"CreationDate": None}
    write_atomic(path, lambda f: fig.savefig(f, format=fmt, metadata=metadata))
    plt.close(fig)


def _sci(n: int) -> str:
    """`n` for a title: exact up to 10^6, else as 2^k when a power of two, else ≈ 1.8e16."""
    if n < 10**6:
        return f"{n:,}"
    if n & (n - 1) == 0:
        return f"$2^{{{n.bit_length() - 1}}}$"  # mathtext: a superscript
    return f"≈ {n:.2e}" if n < 10**300 else f"≈ 10^{len(str(n)) - 1}"
