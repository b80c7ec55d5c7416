"""`resdsl zoo [FILTER]`: the zoo's names with their spec, `-D` values, parameters, GMACs
(at the input the model is published at) and check status. Reads the checked-in figures
(resdsl/zoo/table.py): no torch, no building unless a row's figures are stale."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from resdsl.zoo.table import listing

EXIT_OK = 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("zoo", help="the published models resdsl writes, by name "
                       "(timm:NAME, tv:NAME), with parameters and GMACs")
    p.add_argument("filter", nargs="?", metavar="FILTER",
                   help="only names (or families, or specs) containing FILTER, or matching "
                   "it as a glob (`timm:resnet*d`); case-insensitive")
    p.add_argument("--format", choices=("text", "json"), default="text")


def zoo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    rows = listing(args.filter)
    if args.format == "json":
        out.write(json.dumps([r.as_json() for r in rows], indent=2) + "\n")
        return EXIT_OK
    if not rows:
        err.write(f"resdsl zoo: no name matches `{args.filter}`\n")
        return EXIT_OK
    # The -D values last: a pruned network's channel lists run to hundreds of characters.
    table = [("name", "spec", "params", "GMACs", "input", "status", "-D")]
    for r in rows:
        table.append((r.entry.qualified, f"specs/{r.entry.spec}", f"{r.params:,}",
                      f"{r.macs / 1e9:.3f}", "x".join(map(str, r.input)), r.status, r.defines))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    right = {2, 3}
    for row in table:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        out.write("  ".join(cells).rstrip() + "\n")
    out.write(f"\n{len(rows):,} of the zoo's names; load one with `resdsl info NAME`, "
              "`resdsl.load(\"NAME\")`\n")
    return EXIT_OK
