"""The grammar itself: conflict-free LALR(1), and every shipped spec parses."""

from __future__ import annotations

from pathlib import Path

import pytest
from lark import Lark

from resdsl._resources import grammar_path
from resdsl.syntax import decode, parse
from tests.conftest import SPECS


def test_grammar_is_strict_lalr() -> None:
    """strict=True raises on any shift/reduce conflict or terminal collision."""
    Lark(grammar_path().read_text("utf-8"), parser="lalr", strict=True)


@pytest.mark.parametrize("spec", sorted(SPECS.rglob("*.res")), ids=lambda p: p.name)
def test_every_spec_parses(spec: Path) -> None:
    file = parse(decode(str(spec), spec.read_bytes()))
    assert file.blocks or file.networks


def test_spans_point_at_the_text() -> None:
    src = decode("x.res", b"network n {\n    input [3, 8, 8]\n    c1: conv(4, 3)\n}\n")
    stmt = parse(src).networks[0].body[1]
    assert (stmt.span.line, stmt.span.column, stmt.span.end_column) == (3, 5, 19)
