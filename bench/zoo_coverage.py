"""The zoo's coverage (issue #18): every name of timm's residual core and every torchvision
residual classifier, checked against the real model.

What: the names are `timm.list_models(module=M)` for M in resnet, resnetv2, res2net, resnest,
sknet, dpn, densenet and regnet (172 in timm 1.0.31), and torchvision's resnets, resnexts,
wide resnets and its 15 regnets (`torchvision.models.list_models()`, filtered). A name the
zoo's table (resdsl/zoo/families/) lacks is *not written*; each other is checked by
`resdsl.zoo.reference.check`: state_dict keys in order with shapes, parameters and MACs (the
reference on the meta device), and, up to 100M parameters, eval-mode outputs with the
reference's weights copied in (its norms randomised) at the smallest input the model
accepts. Prints per family and in total: exact / not exact / not written, with the reason of
each miss.

Run: `.venv/bin/python bench/zoo_coverage.py [--family F]... [--names N,...] [--no-outputs]
[--jobs J] [--write-status [FILE]]` (the whole zoo with outputs: several minutes per core).
`--write-status` records each checked row's status in resdsl/zoo/status.json (merged into
what it holds: a partial run updates its rows only), which `resdsl zoo` and docs/zoo.md show
(re-run scripts/zoo_docs.py after). Exit 0 when every name checked is exact, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resdsl.outputs import write_atomic  # noqa: E402
from resdsl.zoo import entries  # noqa: E402
from resdsl.zoo.entry import ZooEntry  # noqa: E402
from resdsl.zoo.table import STATUS, fingerprint  # noqa: E402

TIMM_MODULES = ("resnet", "resnetv2", "res2net", "resnest", "sknet", "dpn", "densenet",
                "regnet")
TORCHVISION = "torchvision"
# torchvision's residual classifiers besides its regnets (all of which count).
TORCHVISION_RESIDUAL = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                        "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
                        "wide_resnet50_2", "wide_resnet101_2")
NOT_WRITTEN = "not written"


@dataclass(frozen=True)
class Name:
    """A published model: its family (timm's module, or torchvision) and its library."""

    family: str
    source: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{'tv' if self.source == TORCHVISION else self.source}:{self.name}"


def published(families: Iterable[str]) -> list[Name]:
    """The names to cover, family by family."""
    import timm
    import torchvision

    names: list[Name] = []
    for family in families:
        if family == TORCHVISION:
            listed = set(torchvision.models.list_models(module=torchvision.models))
            regnets = sorted(n for n in listed if n.startswith("regnet_"))
            missing = [n for n in TORCHVISION_RESIDUAL if n not in listed]
            if missing:
                raise SystemExit(f"torchvision lacks {missing}: another version?")
            names += [Name(family, TORCHVISION, n) for n in (*TORCHVISION_RESIDUAL, *regnets)]
        else:
            names += [Name(family, "timm", n) for n in timm.list_models(module=family)]
    return names


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _check(entry: ZooEntry, outputs: bool) -> dict[str, Any]:
    from resdsl.zoo.reference import check

    result = check(entry, outputs)
    return {**result.as_json(), "seconds": round(result.seconds, 2), "notes": result.notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The zoo against timm and torchvision.")
    parser.add_argument("--family", action="append", choices=(*TIMM_MODULES, TORCHVISION),
                        help="only this family (repeatable; default all)")
    parser.add_argument("--names", help="only these names, comma-separated (timm's or "
                        "torchvision's spelling, or timm:NAME / tv:NAME)")
    parser.add_argument("--no-outputs", dest="outputs", action="store_false",
                        help="keys, shapes, parameters and MACs only (no forward passes)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--write-status", nargs="?", const=str(STATUS), metavar="FILE",
                        help=f"merge each checked row's status into FILE (default "
                        f"{STATUS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs takes a positive integer")
    families = args.family or [*TIMM_MODULES, TORCHVISION]
    names = published(families)
    if args.names:
        wanted = {n.strip() for n in args.names.split(",") if n.strip()}
        names = [n for n in names if n.name in wanted or n.qualified in wanted]
        unknown = wanted - {n.name for n in names} - {n.qualified for n in names}
        if unknown:
            print(f"not a name of the chosen families: {', '.join(sorted(unknown))}")
    rows = {(e.source, e.name): e for e in entries()}
    todo = [rows[(n.source, n.name)] for n in names if (n.source, n.name) in rows]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    if args.jobs == 1:
        _init_worker()
        checked = [_check(e, args.outputs) for e in todo]
    else:
        with ProcessPoolExecutor(args.jobs, initializer=_init_worker) as pool:
            checked = list(pool.map(_check, todo, [args.outputs] * len(todo)))
    results = {r["name"]: r for r in checked}
    misses = report(names, results, args.outputs)
    print(f"\n{time.perf_counter() - start:.0f} s, {args.jobs} job(s)"
          + ("" if args.outputs else "; outputs not compared (--no-outputs)"))
    extra = sorted(set(e.qualified for e in entries()) - {n.qualified for n in
                                                          published((*TIMM_MODULES, TORCHVISION))})
    if extra:
        print(f"rows of the table that are no published name: {', '.join(extra)}")
    if args.write_status:
        write_status(Path(args.write_status), results)
    return 1 if misses else 0


def report(names: list[Name], results: dict[str, dict[str, Any]], outputs: bool) -> int:
    """Print per family and in total; the number of misses (not exact or not written)."""
    totals = {"exact": 0, "not exact": 0, NOT_WRITTEN: 0}
    families = list(dict.fromkeys(n.family for n in names))
    lines = []
    for family in families:
        counts = {k: 0 for k in totals}
        misses = []
        for n in (n for n in names if n.family == family):
            found = results.get(n.qualified)
            status = found["status"] if found else NOT_WRITTEN
            counts[status] += 1
            if found is None:
                misses.append(f"    {n.qualified}: not written (no row in the zoo's table)")
            elif status != "exact":
                misses.append(f"    {n.qualified}: not exact: {found['reason']}")
            for note in (found or {}).get("notes", []):
                misses.append(f"    {n.qualified}: note: {note}")
        for k in totals:
            totals[k] += counts[k]
        total = sum(counts.values())
        lines.append(f"{family:<12} {total:>4} names: {counts['exact']:>4} exact, "
                     f"{counts['not exact']:>4} not exact, {counts[NOT_WRITTEN]:>4} not written")
        lines += misses
    for line in lines:
        print(line)
    total = sum(totals.values())
    print(f"{'total':<12} {total:>4} names: {totals['exact']:>4} exact, "
          f"{totals['not exact']:>4} not exact, {totals[NOT_WRITTEN]:>4} not written")
    checked = [r for r in results.values() if r["outputs_checked"]]
    if outputs and checked:
        worst = max(checked, key=lambda r: r["max_abs_diff"] or 0.0)
        print(f"outputs compared for {len(checked)} names; largest |difference| "
              f"{worst['max_abs_diff']:.3g} ({worst['name']})")
    return totals["not exact"] + totals[NOT_WRITTEN]


def write_status(path: Path, results: dict[str, dict[str, Any]]) -> None:
    """Merge `results` into the status file, in the zoo's order, dropping names that are no
    longer rows."""
    try:
        stored = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        stored = {}
    rows = {e.qualified: e for e in entries()}
    merged = {**stored, **{name: {**{k: r[k] for k in ("status", "reason", "outputs_checked",
                                                       "side", "max_abs_diff")},
                                  # What was checked: a later change to the row or its spec
                                  # makes this status "not checked" (resdsl/zoo/table.py).
                                  "fingerprint": fingerprint(rows[name])}
                           for name, r in results.items()}}
    ordered = {e.qualified: merged[e.qualified] for e in entries() if e.qualified in merged}
    text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}"
                              for k, v in ordered.items()) + "\n}\n"
    write_atomic(str(path), lambda f: _write(f, text))
    print(f"wrote {path}")


def _write(f: BinaryIO, text: str) -> None:
    f.write(text.encode("utf-8"))


if __name__ == "__main__":
    sys.exit(main())
