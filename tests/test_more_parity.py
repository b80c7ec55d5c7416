"""Parity for the specs that use `scale`, `gate` and `weight`, and the wide and pre-activation
ResNets, against their references.

SE-ResNet-50, Wide ResNet-50-2 and pre-activation ResNet-50 are in tests/test_parity.py's
reference table (keys, shapes, parameters and MACs against timm / torchvision); this file
checks what keys cannot show. The CIFAR specs have no PyTorch reference class; they are
checked against exact counts, each with its source named.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resdsl.ir.graph import Graph, Node
from resdsl.passes.counts import node_counts, state_shapes, totals
from resdsl.pipeline import Options, build
from tests.conftest import SPECS


def _graph(name: str, **defines: str) -> Graph:
    return build(str(SPECS / f"{name}.res"), Options(defines=defines)).graph


# ------------------------------------------------------------- structure beyond keys


def test_seresnet50_se_widths() -> None:
    """timm's make_divisible(C/16, 8): 16/32/64/128 for stages 1-4 (models.md §8)."""
    shapes = state_shapes(_graph("seresnet50"))
    for stage, (c, rd) in enumerate([(256, 16), (512, 32), (1024, 64), (2048, 128)], 1):
        assert shapes[f"layer{stage}.0.se.fc1.weight"] == (rd, c, 1, 1)
        assert shapes[f"layer{stage}.0.se.fc1.bias"] == (rd,)
        assert shapes[f"layer{stage}.0.se.fc2.weight"] == (c, rd, 1, 1)
        assert shapes[f"layer{stage}.0.se.fc2.bias"] == (c,)


def _by_path(graph: Graph) -> dict[str, Node]:
    return {node.path: node for node in graph.nodes()}


@pytest.mark.parametrize(
    ("spec", "unit", "norm", "branch", "shortcut", "op"),
    [
        # timm PreActBottleneck.forward: x_preact = norm1(x); downsample(x_preact), conv1(x_preact)
        # (the strided 1x1 conv written as a subsampling and a product with its weight, a
        # `param` made before norm1 as timm registers it: blocks/resnetv2.res)
        ("resnetv2_50", "stages.1.blocks.0", "norm1", "conv1", "downsample.proj.0", "avgpool"),
        # wide-residual-networks pytorch/resnet.py: o1 = relu(bn0(x)); conv0(o1), convdim(o1)
        ("wrn28_10", "group1.block0", "bn0", "conv0", "convdim", "conv"),
    ],
)
def test_projecting_unit_shares_its_preactivation(
    spec: str, unit: str, norm: str, branch: str, shortcut: str, op: str
) -> None:
    """Keys cannot show the wiring: a projecting unit's one BN-ReLU feeds both paths, and an
    identity unit adds its raw input."""
    graph = _graph(spec)
    nodes = _by_path(graph)
    first, proj = nodes[f"{unit}.{branch}"], nodes[f"{unit}.{shortcut}"]
    assert proj.op == op and proj.inputs == first.inputs
    (preact,) = first.inputs
    assert graph.node(preact).op == "relu"
    assert graph.node(graph.node(preact).inputs[0]).path == f"{unit}.{norm}"
    # The next unit's identity shortcut takes its raw input (this unit's sum), not norm's.
    nxt = unit[:-1] + "1"
    (add,) = [n for n in graph.nodes() if n.op == "add" and n.path.startswith(nxt + ".")]
    raw = graph.node(add.inputs[1])
    assert raw.op == "add" and raw.path.startswith(unit + ".")
    assert graph.node(nodes[f"{nxt}.{norm}"].inputs[0]) == raw


def test_resnetv2_101_by_override() -> None:
    """`-D layers=[3,4,23,3]` is timm's resnetv2_101: 44,541,480 params (models.md §4c)."""
    graph = _graph("resnetv2_50", layers="[3, 4, 23, 3]")
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnetv2_101", pretrained=False)
    assert totals(graph).params == sum(p.numel() for p in model.parameters()) == 44_541_480
    ref = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert state_shapes(graph) == ref


# ------------------------------------------------------------- WRN-28-10 (authors' code)


# szagoruyko/wide-residual-networks, pytorch/resnet.py: no conv biases, convdim only where
# the width changes. Exact counts from shared/reference/models.md §5 (analytic from that
# code): WRN-28-10 36,479,194 (CIFAR-100: 36,536,884), WRN-40-4 8,949,210, WRN-16-8
# 10,961,370, WRN-40-10 55,841,754; MACs at 32x32 5.243 G for WRN-28-10.
@pytest.mark.parametrize(
    ("defines", "params"),
    [
        ({}, 36_479_194),
        ({"classes": "100"}, 36_536_884),
        ({"depth": "40", "k": "4"}, 8_949_210),
        ({"depth": "16", "k": "8"}, 10_961_370),
        ({"depth": "40", "k": "10"}, 55_841_754),
        ({"drop": "0.3"}, 36_479_194),
    ],
)
def test_wrn_counts(defines: dict[str, str], params: int) -> None:
    assert totals(_graph("wrn28_10", **defines)).params == params


def test_wrn28_10_macs_and_names() -> None:
    graph = _graph("wrn28_10")
    assert round(totals(graph).macs / 1e9, 3) == 5.243
    shapes = state_shapes(graph)
    # The authors' parameter names (pytorch/resnet.py), each with its state suffix.
    assert shapes["conv0.weight"] == (16, 3, 3, 3)
    assert shapes["group0.block0.bn0.weight"] == (16,)  # pre-activates the 16-channel input
    assert shapes["group0.block0.conv0.weight"] == (160, 16, 3, 3)
    assert shapes["group0.block0.convdim.weight"] == (160, 16, 1, 1)
    assert shapes["group1.block0.convdim.weight"] == (320, 160, 1, 1)
    assert shapes["group2.block3.conv1.weight"] == (640, 640, 3, 3)
    assert shapes["fc.weight"] == (10, 640)
    # convdim only where the width changes: the first block of each group.
    assert sorted(k for k in shapes if "convdim" in k) == [
        f"group{g}.block0.convdim.weight" for g in range(3)
    ]
    assert not any(k.endswith(".bias") and "conv" in k for k in shapes)


# ------------------------------------------------------------- Highway (gate)


def _gate_parts(graph: Graph, highway: Node) -> tuple[Node, Node]:
    """The transform conv T and the body's conv H of one lowered `gate`."""
    sigmoid, h_out, _ = (graph.node(i) for i in highway.inputs)
    t = graph.node(sigmoid.inputs[0])
    h = h_out
    while h.op != "conv":
        h = graph.node(h.inputs[0])
    return t, h


def test_highway_count() -> None:
    """flukeskywalker/highway-networks, examples/highways/cifar10-19layers: 2,256,838
    parameters with a 10-way classifier (models.md §9). The prototxt's ip2 actually has 100
    outputs; its sample.log says "The network has total 2265928 trainable parameters"."""
    assert totals(_graph("highway_cifar19")).params == 2_256_838
    assert totals(_graph("highway_cifar19", classes="100")).params == 2_265_928


def test_highway_layer_counts() -> None:
    """Per-layer counts as sample.log prints them ("With N trainable parameters")."""
    graph = _graph("highway_cifar19")
    per_layer: dict[str, int] = {}
    for node in graph.nodes():
        top = node.path.split(".")[0]
        per_layer[top] = per_layer.get(top, 0) + node_counts(graph, node).params
    assert per_layer["conv1"] == 896
    assert all(per_layer[f"conv{i}"] == 18_496 for i in range(2, 6))
    assert per_layer["conv6"] == 23_120
    assert all(per_layer[f"conv{i}"] == 115_360 for i in range(7, 12))
    assert per_layer["conv12"] == 92_288
    assert all(per_layer[f"conv{i}"] == 295_168 for i in range(13, 18))
    assert per_layer["conv18"] == 12_900


def test_gate_transform_matches_body() -> None:
    """DESIGN.md §2: W_T is the same kind and shape of layer as H's, and b_T starts negative
    (−2 in every layer of the authors' CIFAR nets, `transform_bias_filler`)."""
    graph = _graph("highway_cifar19")
    shapes = state_shapes(graph)
    highways = [n for n in graph.nodes() if n.op == "highway"]
    assert len(highways) == 14
    for node in highways:
        t, h = _gate_parts(graph, node)
        assert t.op == h.op == "conv"
        assert t.args == h.args and t.args["bias"] is True
        assert t.inputs == h.inputs  # both see the layer's input x
        assert t.shape == h.shape == graph.node(node.inputs[2]).shape == node.shape
        assert shapes[f"{t.path}.weight"] == shapes[f"{h.path}.weight"]
        assert shapes[f"{t.path}.bias"] == shapes[f"{h.path}.bias"]
        assert t.init == {"bias": -2.0}
        assert h.init == {}
    assert shapes["conv2.transform.weight"] == shapes["conv2.h.weight"] == (32, 32, 3, 3)
    assert shapes["conv17.transform.bias"] == (128,)


# ------------------------------------------------------------- weighted residual / ReZero


def _alphas(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes() if n.op == "alpha"]


def test_rezero_one_parameter_per_unit(tmp_path: Path) -> None:
    """No reference implementation exists (models.md §10, §11): y = x + α·F(x) adds exactly
    one scalar per unit to the same net written with `skip`, and to He et al.'s ResNet-56
    (853,018 params, models.md §1), whose option-A layout it shares."""
    spec = SPECS / "rezero_resnet56.res"
    graph = build(str(spec)).graph
    text = spec.read_text()
    assert text.count("weight(init = alpha)") == 1
    plain = tmp_path / "plain.res"
    plain.write_text(text.replace("weight(init = alpha)", "skip"))
    without = build(str(plain)).graph

    alphas = _alphas(graph)
    assert len(alphas) == 27 == 3 * (56 - 2) // 6
    assert totals(graph).params == totals(without).params + 27 == 853_018 + 27
    assert totals(graph).macs == totals(without).macs
    ours, theirs = state_shapes(graph), state_shapes(without)
    extra = {k: v for k, v in ours.items() if k not in theirs}
    assert extra == {f"layer{s}.{i}.alpha": (1,) for s in (1, 2, 3) for i in range(9)}
    assert set(theirs) <= set(ours)
    # Same keys as the option-A ResNet-56 apart from the α.
    assert set(theirs) == set(state_shapes(_graph("resnet56")))


def test_rezero_alpha_init_and_placement() -> None:
    graph = _graph("rezero_resnet56")
    for alpha in _alphas(graph):
        assert alpha.init == {"": 0.0}
        assert alpha.args["per_channel"] is False
        # α scales the branch, whose last layer is its ReLU (ReLU inside the branch) ...
        assert graph.node(alpha.inputs[0]).op == "relu"
        # ... and the sum is the unit's output: no ReLU after the add.
        (add,) = graph.users(alpha.id)
        assert graph.node(add).op == "add"
        for user in graph.users(add):
            assert graph.node(user).op != "relu"
    assert _alphas(_graph("rezero_resnet56", alpha="0.25"))[0].init == {"": 0.25}


SMALL = """
network small(classes = 10) {
    input [3, 32, 32]
    conv1: conv(16, 3); bn1: bn; relu
    unit: weight(init = 0.5, per_channel = true) {
        conv1: conv(16, 3); bn1: bn; relu
        conv2: conv(16, 3); bn2: bn
    }
    mix: weight {
        a: branch { conv: conv(16, 3) }
        b: branch { conv: conv(16, 1, bias = true) }
        branch { identity }
    }
    avgpool: global_avgpool; flatten
    fc: linear(classes)
}
"""


def test_per_channel_and_multi_branch_weight(tmp_path: Path) -> None:
    """`weight(per_channel = true)` learns one α per channel; `weight { branch ... }` learns
    one weight per branch (softmax-normalised, so they start equal: init 0)."""
    spec = tmp_path / "small.res"
    spec.write_text(SMALL)
    graph = build(str(spec)).graph
    shapes = state_shapes(graph)

    (alpha,) = _alphas(graph)
    assert alpha.path == "unit.alpha" and shapes["unit.alpha"] == (16, 1, 1)
    assert alpha.init == {"": 0.5}

    (mix,) = [n for n in graph.nodes() if n.op == "weighted_sum"]
    assert mix.path == "mix.weight" and shapes["mix.weight"] == (3,)
    assert mix.init == {"": 0.0}
    assert len(mix.inputs) == 3 and mix.shape == (16, 32, 32)
    assert [graph.node(i).path for i in mix.inputs] == ["mix.a.conv", "mix.b.conv", "mix.2"]

    stem = 16 * 3 * 9 + 2 * 16
    unit = 2 * (16 * 16 * 9) + 2 * (2 * 16) + 16  # two convs, two BNs (γ, β), 16 α
    mix_params = 16 * 16 * 9 + (16 * 16 + 16) + 3  # 3x3 conv, 1x1 conv with bias, 3 weights
    head = 16 * 10 + 10
    assert totals(graph).params == stem + unit + mix_params + head == 7_901
