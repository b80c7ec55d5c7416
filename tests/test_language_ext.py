"""The language beyond one path (issue #8): functions, guards on repeats and primitives,
unnamed sequences and dotted names, named tensors and their joins, multi-branch `concat` and
`skip`, `skip(scale = k)`, and the call context of diagnostics.

Structure and keys are checked on the graph; semantics on the compiled module against the
equation written out in torch, or against the reference implementation (timm, torchvision)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resdsl.diagnostics import SpecError
from resdsl.passes.counts import state_shapes
from tests.helpers import build_text, by_path, graph_of

torch = pytest.importorskip("torch")


def _module(tmp_path: Path, text: str, seed: int = 0) -> Any:
    import resdsl

    path = tmp_path / "spec.res"
    path.write_text(text, encoding="utf-8")
    return resdsl.load(str(path)).to_torch(seed=seed).eval()


# ---------------------------------------------------------------------- functions


MAKE_DIVISIBLE = """
def make_divisible(v, divisor = 8, min_value = divisor) {
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v
}
"""


@pytest.mark.parametrize("width_mult", [0.35, 0.5, 0.75, 1.0, 1.3, 1.4])
def test_a_function_matches_torchvisions_make_divisible(tmp_path: Path, width_mult: float) -> None:
    # The reference: torchvision.models._utils._make_divisible, applied as mobilenet_v2 does.
    from torchvision.models._utils import _make_divisible

    channels = [32, 16, 24, 32, 64, 96, 160, 320, 1280]
    spec = MAKE_DIVISIBLE + f"""
network n(m = {width_mult}, cs = {channels}) {{
    input [3, 8, 8]
    repeat len(cs) as i {{ c{{i}}: conv(make_divisible(cs[i] * m), 1) }}
}}"""
    nodes = by_path(graph_of(tmp_path, spec))
    got = [nodes[f"c{i}"].args["out"] for i in range(len(channels))]
    assert got == [_make_divisible(c * width_mult, 8) for c in channels]


def test_round_is_pythons_round_half_to_even(tmp_path: Path) -> None:
    spec = """
network n() {
    input [3, 8, 8]
    a: conv(round(2.5), 1); b: conv(round(3.5), 1); c: conv(round(16 * 1.4), 1)
}"""
    nodes = by_path(graph_of(tmp_path, spec))
    assert [nodes[p].args["out"] for p in "abc"] == [round(2.5), round(3.5), round(16 * 1.4)]


def test_functions_take_keywords_and_defaults_that_use_earlier_parameters(tmp_path: Path) -> None:
    spec = MAKE_DIVISIBLE + """
network n() {
    input [3, 8, 8]
    a: conv(make_divisible(30, divisor = 4), 1)
    b: conv(make_divisible(3, min_value = 16), 1)
}"""
    nodes = by_path(graph_of(tmp_path, spec))
    assert (nodes["a"].args["out"], nodes["b"].args["out"]) == (32, 16)


def test_an_error_inside_a_function_names_the_call(tmp_path: Path) -> None:
    spec = """
def ratio(a, b) { return a // b }
network n() {
    input [3, 8, 8]
    conv(ratio(8, 0), 1)
}"""
    with pytest.raises(SpecError) as exc:
        build_text(tmp_path, spec)
    (d,) = exc.value.diagnostics
    assert d.code == "E0405"
    assert any(n.startswith("in function `ratio`, called at") for n in d.notes)


# ---------------------------------------------------------------------- guards and names


def test_a_guarded_repeat_and_a_guarded_off_primitive_keep_the_keys(tmp_path: Path) -> None:
    spec = """
network n(res = true) {
    input [8, 8, 8]
    conv: skip { { conv(8, 1); bn } conv(8, 3); bn } if res
    extra: repeat 2 { conv(8, 1) } if not res
}"""
    on = graph_of(tmp_path, spec)
    off = graph_of(tmp_path, spec.replace("res = true", "res = false"))
    keys_on = [k for k in state_shapes(on) if not k.startswith("extra")]
    keys_off = [k for k in state_shapes(off) if not k.startswith("extra")]
    assert keys_on == keys_off == [
        "conv.0.0.weight", "conv.0.1.weight", "conv.0.1.bias", "conv.0.1.running_mean",
        "conv.0.1.running_var", "conv.0.1.num_batches_tracked", "conv.1.weight",
        "conv.2.weight", "conv.2.bias", "conv.2.running_mean", "conv.2.running_var",
        "conv.2.num_batches_tracked",
    ]
    assert [n.op for n in on.nodes()].count("add") == 1
    assert [n.op for n in off.nodes()].count("add") == 0
    assert "extra.1.0.weight" in state_shapes(off)
    assert not [k for k in state_shapes(on) if k.startswith("extra")]


def test_dotted_names_open_numbered_levels(tmp_path: Path) -> None:
    spec = """
network n() {
    input [8, 8, 8]
    repeat 2 as i { convs.{i}: conv(8, 3); bns.{i}: bn }
    0: relu
    head: { 1.fc: conv(4, 1) }
}"""
    g = graph_of(tmp_path, spec)
    assert [k for k in state_shapes(g) if k.endswith("weight")] == [
        "convs.0.weight", "convs.1.weight", "bns.0.weight", "bns.1.weight", "head.1.fc.weight"]
    assert g.scopes["convs"].kind == "list"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("convs: conv(8, 1)\n convs.0: conv(8, 1)", "E0206"),
        ("convs.0: conv(8, 1)\n convs: conv(8, 1)", "E0206"),
        ("convs.0: conv(8, 1)\n convs.0: conv(8, 1)", "E0206"),
    ],
)
def test_dotted_names_clash_with_modules(tmp_path: Path, body: str, code: str) -> None:
    with pytest.raises(SpecError) as exc:
        build_text(tmp_path, f"network n() {{ input [8, 8, 8]\n {body} }}")
    assert [d.code for d in exc.value.diagnostics] == [code]


# ---------------------------------------------------------------------- named tensors


def test_a_tensor_named_in_a_repeat_is_a_list_after_it(tmp_path: Path) -> None:
    spec = """
network n() {
    input [4, 8, 8]
    x = in
    repeat 3 as i { x; conv(2 + i, 1); y = in }
    cat(y, x)
}"""
    g = graph_of(tmp_path, spec)
    assert g.output is not None
    assert g.node(g.output).op == "concat"
    assert g.node(g.output).shape == (2 + 3 + 4 + 4, 8, 8)


def test_joins_compute_their_equations(tmp_path: Path) -> None:
    spec = """
network n() {
    input [4, 6, 6]
    x = in
    a: conv(4, 3)
    y = in
    x; g: { global_avgpool; conv(4, 1, bias = true); sigmoid }
    f = in
    added: add(x, y)
    summed = in
    mul(summed, f)
    cat(in, x)
}"""
    m = _module(tmp_path, spec)
    x = torch.randn(2, 4, 6, 6)
    y = m.a(x)
    f = m.g(x)
    expected = torch.cat([(x + y) * f, x], 1)
    torch.testing.assert_close(m(x), expected)


def test_join_mistakes_are_diagnosed(tmp_path: Path) -> None:
    for body, code in [
        ("a = in\n conv(8, 1)\n add(in, a)", "E0301"),
        ("a = in\n maxpool(2)\n cat(in, a)", "E0303"),
        ("a = in\n conv(4, 1)\n mul(a)", "E0402"),
        ("n = 2\n n", "E0401"),
        ("add(in, nothing)", "E0202"),
    ]:
        with pytest.raises(SpecError) as exc:
            build_text(tmp_path, f"network n() {{ input [4, 8, 8]\n {body} }}")
        assert exc.value.diagnostics[0].code == code, body


def test_hierarchical_split_matches_timms_bottle2neck(tmp_path: Path) -> None:
    """The named-tensor Res2Net unit of docs/language.md against timm's Bottle2neck, with
    copied weights (timm/models/res2net.py, the reference implementation of Gao et al.)."""
    from timm.models.res2net import Bottle2neck

    spec = """
block bottle2neck(planes, width = 26, scale = 4) {
    skip {
        conv1: conv(width * scale, 1); bn1: bn; relu
        spx = in
        repeat scale - 1 as i {
            previous = in
            spx; slice(i * width, (i + 1) * width)
            add(in, previous) if i > 0
            convs.{i}: conv(width, 3); bns.{i}: bn; relu
            y = in
        }
        spx; slice((scale - 1) * width)
        cat(y, in)
        conv3: conv(planes * 4, 1); bn3: bn
    }
    relu
}
network n() { input [256, 14, 14]
    bottle2neck(64) }"""
    ours = _module(tmp_path, spec)
    ref = Bottle2neck(256, 64, base_width=26, scale=4, norm_layer=torch.nn.BatchNorm2d).eval()
    for p in ref.parameters():
        torch.nn.init.normal_(p, std=0.1)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 256, 14, 14)
    torch.testing.assert_close(ours(x), ref(x))


# ---------------------------------------------------------------------- multi-branch joins


def test_concat_and_skip_over_branches(tmp_path: Path) -> None:
    spec = """
network n() {
    input [8, 9, 9]
    mixed: concat {
        b0: branch { conv(4, 3, stride = 2, padding = 0) }
        b1: branch { conv(2, 1); conv(6, 3, stride = 2, padding = 0) }
        b2: branch { maxpool(3, stride = 2) }
    }
    summed: skip { branch { identity } branch { c: conv(18, 1) } }
    scaled: skip(scale = 0.17) { r: conv(18, 1) }
}"""
    m = _module(tmp_path, spec)
    g = graph_of(tmp_path, spec)
    assert g.output is not None and g.node(g.output).shape == (18, 4, 4)
    x = torch.randn(2, 8, 9, 9)
    mixed = torch.cat([m.mixed.b0(x), m.mixed.b1(x), torch.nn.functional.max_pool2d(x, 3, 2)], 1)
    summed = mixed + m.summed.c(mixed)
    expected = summed + 0.17 * m.scaled.r(summed)
    torch.testing.assert_close(m(x), expected)
    # `skip(scale = k)` has no parameter: only the convs have state.
    assert not [k for k in m.state_dict() if "scale" in k and "weight" not in k]


# ---------------------------------------------------------------------- context


def test_an_error_in_a_block_says_which_call_and_iteration(tmp_path: Path) -> None:
    spec = """
block unit(width) { conv1: conv(width, 3, groups = 32) }
network n() {
    input [64, 8, 8]
    layer3: repeat 3 as i { unit(64 - 16 * i) }
}"""
    with pytest.raises(SpecError) as exc:
        build_text(tmp_path, spec)
    (d,) = exc.value.diagnostics
    assert d.code == "E0304"
    assert d.notes[0].startswith("in `layer3.1` (unit), called at ")
    assert d.notes[1].startswith("in `layer3.1`, iteration 1 of the repeat at ")


@pytest.mark.parametrize("spec", ["res2net50_26w_4s", "rezero_resnet56", "highway_cifar19"])
def test_state_shapes_list_the_keys_in_state_dict_order(spec: str) -> None:
    """`state_shapes()` (what ONNX initializers and structural weight matching follow) lists
    the keys in the order of the module's `state_dict()`, also where a dotted name revisits a
    level (Res2Net's `convs.{i}`/`bns.{i}`) and where α sits on the module of a `weight`."""
    import resdsl
    from tests.conftest import SPECS

    net = resdsl.load(str(SPECS / f"{spec}.res"))
    assert list(net.state_shapes()) == list(net.to_torch(seed=0).state_dict())


def test_functions_may_be_called_any_number_of_times(tmp_path: Path) -> None:
    # The nesting limit counts calls inside calls, not calls one after another.
    spec = """
def twice(v) { return 2 * v }
network n() {
    input [3, 8, 8]
    repeat 150 as i { conv(twice(1) + twice(twice(1)) - 5, 1) }
}"""
    g = graph_of(tmp_path, spec)
    assert sum(1 for node in g.nodes() if node.op == "conv") == 150


def test_the_graph_converts_to_networkx(tmp_path: Path) -> None:
    nx = pytest.importorskip("networkx")
    g = graph_of(tmp_path, """
network n() { input [4, 8, 8]
    x = in
    conv(4, 3); add(in, x, x) }""")
    h = g.to_networkx()
    assert nx.is_directed_acyclic_graph(h)
    assert sorted((u, v, d["index"]) for u, v, d in h.edges(data=True)) == g.edges()
    add = next(n for n in g.nodes() if n.op == "add")
    assert sorted(d["index"] for _, _, d in h.in_edges(add.id, data=True)) == [0, 1, 2]
    assert h.nodes[add.id]["path"] == add.path and h.nodes[add.id]["shape"] == (4, 8, 8)
