"""The graph and the passes over it, on hand-built graphs."""

from __future__ import annotations

import pytest

from resdsl.diagnostics import InternalError
from resdsl.ir.graph import Graph
from resdsl.ir.ops import Value
from resdsl.passes.counts import rollup, totals
from resdsl.passes.shapes import verify_shapes
from resdsl.passes.structure import check_structure


def _chain() -> Graph:
    g = Graph("t")
    x = g.add("input", {"shape": "4×8×8"}, (), (4, 8, 8), "input", None)
    r = g.add("relu", {}, (x,), (4, 8, 8), "a.relu", None)
    g.output = g.add("add", {}, (r, r), (4, 8, 8), "a.skip", None)
    return g


def test_edges_keep_input_order_and_repeats() -> None:
    g = _chain()
    assert g.edges() == [(0, 1, 0), (1, 2, 0), (1, 2, 1)]  # add(x, x): two edges
    assert g.node(2).inputs == (1, 1)
    check_structure(g)
    verify_shapes(g)


def test_dead_nodes_are_an_internal_error() -> None:
    g = _chain()
    g.add("relu", {}, (0,), (4, 8, 8), "dead", None)
    with pytest.raises(InternalError, match="dead"):
        check_structure(g)


def test_a_wrong_recorded_shape_is_an_internal_error() -> None:
    g = _chain()
    g.output = g.add("flatten", {}, (2,), (4,), "f", None)
    with pytest.raises(InternalError, match="256"):
        verify_shapes(g)


def test_rollup_sums_along_the_hierarchy() -> None:
    g = Graph("t")
    x = g.add("input", {"shape": "3×8×8"}, (), (3, 8, 8), "input", None)
    args: dict[str, Value] = {"out": 4, "kernel": (3, 3), "stride": (1, 1), "padding": None,
            "dilation": (1, 1), "groups": 1, "bias": False}
    c = g.add("conv", args, (x,), (4, 8, 8), "s.b.conv", None)
    g.output = g.add("conv", args | {"out": 4}, (c,), (4, 8, 8), "s.c", None)
    rows = {r.path: r for r in rollup(g, 2)}
    assert rows["s"].params == 4 * 3 * 9 + 4 * 4 * 9 == totals(g).params
    assert rows["s.b"].macs == 4 * 64 * 3 * 9
