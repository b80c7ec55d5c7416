"""Golden tests: every bad spec in tests/golden/errors/ gives exactly its expected message.

Each `NAME.res` beside `NAME.txt` is checked with `resdsl check NAME.res`; the rendered
diagnostics (stderr) must equal NAME.txt and the exit code must be 1 (0 for a spec that only
has warnings). A first line `# args: ...` adds command-line arguments. Files that other specs
import live in subfolders. Set RESDSL_UPDATE_GOLDEN=1 to rewrite the .txt files after a
deliberate change of wording, then review the diff.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from resdsl.diagnostics.codes import CODES
from tests.conftest import ROOT, run_cli

GOLDEN = ROOT / "tests" / "golden" / "errors"
CASES = sorted(GOLDEN.glob("*.res"))


def _args(spec: Path) -> list[str]:
    first = spec.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    return shlex.split(first[len("# args:") :]) if first.startswith("# args:") else []


@pytest.mark.parametrize("spec", CASES, ids=[c.stem for c in CASES])
def test_golden(spec: Path) -> None:
    rel = spec.relative_to(ROOT).as_posix()
    run = run_cli("check", rel, *_args(spec))
    expected_file = spec.with_suffix(".txt")
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        expected_file.write_text(run.err, encoding="utf-8")
    assert run.err == expected_file.read_text(encoding="utf-8")
    codes = set(re.findall(r"^(error|warning)\[(\w+)\]", run.err, re.M))
    assert codes, "a golden spec must produce a diagnostic"
    only_warnings = all(kind == "warning" for kind, _ in codes)
    assert run.code == (0 if only_warnings else 1)
    assert "Traceback" not in run.err


def test_every_code_has_a_golden() -> None:
    covered: set[str] = set()
    for txt in GOLDEN.glob("*.txt"):
        covered |= set(re.findall(r"^(?:error|warning)\[(\w+)\]", txt.read_text("utf-8"), re.M))
    missing = sorted(set(CODES) - covered)
    assert not missing, f"codes without a golden test: {missing}"
