"""docs/api.md stays true: every ```python block runs, and prints the ```text block that
follows it (when one does)."""

from __future__ import annotations

import contextlib
import io
import os
import re

import pytest

from tests.conftest import ROOT

API = ROOT / "docs" / "api.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```\n(?:\n```text\n(.*?)^```\n)?", re.M | re.S)
# Signature sketches, not programs.
EXAMPLES = [(m.group(1), m.group(2)) for m in _BLOCK.finditer(API.read_text("utf-8"))
            if not m.group(1).startswith("resdsl.load(\n")]


def test_api_doc_has_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize(("code", "expected"), EXAMPLES,
                         ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_api_example(code: str, expected: str | None) -> None:
    pytest.importorskip("torch")
    out = io.StringIO()
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(API), "exec"), {"__name__": "__example__"})
    finally:
        os.chdir(old)
    if expected is not None:
        assert out.getvalue() == expected
