"""Each connection primitive lowers to exactly its DESIGN.md §2 semantics in the graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from resdsl.diagnostics import SpecError
from resdsl.ir.graph import Graph, Node
from resdsl.passes.counts import state_shapes, totals
from tests.helpers import by_path, graph_of


def _ops(g: Graph, node: Node) -> list[str]:
    return [g.node(i).op for i in node.inputs]


def test_skip_identity_projection_and_option_a(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        network n {
            input [16, 8, 8]
            a: skip { conv(16, 3) }
            b: skip { conv(32, 3, stride = 2) } shortcut zeropad(32, stride = 2)
            c: skip { conv(64, 3, stride = 2) } shortcut down: { conv(64, 1, stride = 2); bn }
        }
    """)
    p = by_path(g)
    assert _ops(g, p["a.skip"]) == ["conv", "input"]  # F(x) + x
    assert p["b.skip"].shape == (32, 4, 4) and _ops(g, p["b.skip"]) == ["conv", "zeropad"]
    assert p["c.skip"].shape == (64, 2, 2) and _ops(g, p["c.skip"]) == ["conv", "bn"]
    assert totals(g).params == 16 * 16 * 9 + 32 * 16 * 9 + 64 * 32 * 9 + 64 * 32 + 2 * 64


def test_weight_scalar_and_per_channel(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        network n {
            input [8, 4, 4]
            a: weight { conv(8, 3) }
            b: weight(init = 0.5, per_channel = true) { conv(8, 3) }
        }
    """)
    p = by_path(g)
    assert p["a.alpha"].init == {"": 0.0} and p["b.alpha"].init == {"": 0.5}
    assert state_shapes(g)["a.alpha"] == (1,)
    assert state_shapes(g)["b.alpha"] == (8, 1, 1)
    assert _ops(g, p["a.weight"]) == ["input", "alpha"]  # S(x) + α·F(x)


def test_weight_over_branches(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        network n {
            input [8, 4, 4]
            w: weight { branch { identity } b: branch { conv(8, 3) } branch { conv(8, 1) } }
        }
    """)
    node = by_path(g)["w.weight"]
    assert node.op == "weighted_sum" and _ops(g, node) == ["identity", "conv", "conv"]
    assert state_shapes(g)["w.weight"] == (3,) and node.init == {"": 0.0}


def test_gate_derives_its_transform_from_the_body(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        network n { input [32, 8, 8]; h: gate(bias = -3) { conv(32, 3, bias = true); relu } }
    """)
    p = by_path(g)
    t, body = p["h.transform"], p["h.0"]
    assert t.op == body.op == "conv" and dict(t.args) == dict(body.args)
    assert t.inputs == body.inputs == (0,) and t.init == {"bias": -3.0}
    mix = p["h.highway"]
    assert [g.node(i).path for i in mix.inputs] == ["h.gate", "h.1", "input"]  # T, H, x
    assert p["h.gate"].op == "sigmoid"


def test_gate_body_must_keep_the_shape(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, "network n { input [8, 4, 4]; gate { conv(16, 3); relu } }")
    assert exc.value.diagnostics[0].code == "E0305"


def test_concat_and_scale(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        network n {
            input [8, 4, 4]
            d: concat { bn; relu; conv(4, 3) }
            se: scale { global_avgpool; conv(3, 1, bias = true); relu; conv(12, 1); sigmoid }
        }
    """)
    p = by_path(g)
    assert p["d.concat"].shape == (12, 4, 4) and _ops(g, p["d.concat"]) == ["input", "conv"]
    assert p["se.scale"].op == "mul" and p["se.scale"].shape == (12, 4, 4)


def test_dual_adds_the_first_r_channels_and_concatenates_the_rest(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        network n {
            input [10, 4, 4]
            u: dual(8) { conv(12, 1) } shortcut proj: conv(16, 1)
            v: dual(8) { conv(10, 1) }
        }
    """)
    p = by_path(g)
    assert p["u.dual"].shape == (16 + 12 - 8, 4, 4)
    assert p["v.dual"].shape == (20 + 10 - 8, 4, 4)
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, "network n { input [10, 4, 4]; dual(12) { conv(8, 1) } }")
    assert exc.value.diagnostics[0].code == "E0306"


def test_group_lowers_to_grouped_convolution(tmp_path: Path) -> None:
    """ResNeXt form (a) → form (c): the fan-out conv stacks the branches, inner convs are
    grouped, and a sum-merged last conv folds to one dense conv over the concatenation."""
    g = graph_of(tmp_path, """
        network n {
            input [64, 8, 8]
            group(32) {
                c1: conv(4, 1); b1: bn; relu; c2: conv(4, 3); b2: bn; relu; c3: conv(256, 1)
            }
        }
    """)
    s = state_shapes(g)
    assert s["c1.weight"] == (128, 64, 1, 1)
    assert s["c2.weight"] == (128, 4, 3, 3) and by_path(g)["c2"].args["groups"] == 32
    assert s["c3.weight"] == (256, 128, 1, 1) and by_path(g)["c3"].args["groups"] == 1
    assert s["b1.weight"] == (128,)


def test_group_concat_merge_and_group_sum(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        network n {
            input [8, 4, 4]
            a: { group(4, merge = "concat") { conv(2, 1); relu; conv(3, 3) } }
            b: { group(2) { conv(6, 1); relu } }
        }
    """)
    p = by_path(g)
    assert p["a.2"].shape == (12, 4, 4) and p["a.2"].args["groups"] == 4
    assert p["b.group_sum"].shape == (6, 4, 4) and p["b.0"].shape == (12, 4, 4)


def test_group_body_must_start_with_a_conv(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, "network n { input [8, 4, 4]; group(2) { bn; conv(4, 1) } }")
    assert exc.value.diagnostics[0].code == "E0311"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("skip { conv(16, 3) }", "E0301"),
        ("skip { conv(8, 3, stride = 2) }", "E0302"),
        ("concat { conv(8, 3, stride = 2) }", "E0303"),
        ("scale { conv(4, 1) }", "E0309"),
    ],
)
def test_merge_mismatches_are_diagnosed(tmp_path: Path, body: str, code: str) -> None:
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, f"network n {{ input [8, 4, 4]; {body} }}")
    assert exc.value.diagnostics[0].code == code
