"""Write resdsl/zoo/counts.json (each zoo row's input, parameters and MACs, for `resdsl zoo`)
and docs/zoo.md (the zoo's page, with bench/zoo_coverage.py's status from
resdsl/zoo/status.json).

    .venv/bin/python scripts/zoo_docs.py          # rewrite both
    .venv/bin/python scripts/zoo_docs.py --check  # exit 1 if either is stale

Run it after adding or changing a zoo row or a spec a row uses; tests/test_zoo.py fails while
either is stale.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resdsl.outputs import write_atomic  # noqa: E402
from resdsl.zoo.markdown import render  # noqa: E402
from resdsl.zoo.table import COUNTS, counts_table, stored_status  # noqa: E402

DOCS = ROOT / "docs" / "zoo.md"


def counts_text() -> str:
    """One row a line, in the zoo's order: a row's change is a one-line diff."""
    rows = counts_table()
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}"
                               for k, v in rows.items()) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether they are stale")
    args = parser.parse_args(argv)
    counts = counts_text()
    page = render(json.loads(counts), stored_status())
    stale = [p for p, text in ((COUNTS, counts), (DOCS, page))
             if not p.exists() or p.read_text("utf-8") != text]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is stale: run scripts/zoo_docs.py")
        return 1 if stale else 0
    for p, text in ((COUNTS, counts), (DOCS, page)):
        write_atomic(str(p), functools.partial(_write, text=text))
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


def _write(f: BinaryIO, text: str) -> None:
    f.write(text.encode("utf-8"))


if __name__ == "__main__":
    sys.exit(main())
