"""The CIFAR pre-activation ResNets that bench/ measures: exact counts and structure.

Reference numbers: /work/shared/reference/models.md §4a and DESIGN.md §7, computed from the
authors' code, KaimingHe/resnet-1k-layers `resnet-pre-act.lua` (depth 9n+2, no conv biases):
ResNet-164 = 1,703,258 parameters and 0.245 GMACs at 32x32, ResNet-1001 = 10,327,706
parameters and 1.488 GMACs (CIFAR-10).
"""

from __future__ import annotations

import pytest

from resdsl.ir.graph import Graph, Node
from resdsl.passes.counts import totals
from resdsl.pipeline import Options, build
from tests.conftest import SPECS


@pytest.mark.parametrize(
    ("spec", "params", "gmacs"),
    [
        ("preact_resnet164.res", 1_703_258, 0.245),
        ("preact_resnet1001.res", 10_327_706, 1.488),
    ],
)
def test_reference_counts(spec: str, params: int, gmacs: float) -> None:
    counts = totals(build(str(SPECS / spec)).graph)
    assert counts.params == params
    assert round(counts.macs / 1e9, 3) == gmacs


def test_depth_parameter_scales_the_network() -> None:
    # depth 1001 through -D on the 164 spec is the same network as the 1001 spec.
    options = Options(defines={"depth": "1001"})
    counts = totals(build(str(SPECS / "preact_resnet164.res"), options).graph)
    assert counts.params == 10_327_706
    # CIFAR-100 changes only the classifier: + 90 * 256 weights + 90 biases (models.md §4a).
    options = Options(defines={"classes": "100"})
    assert totals(build(str(SPECS / "preact_resnet164.res"), options).graph).params == 1_726_388


def _by_path(graph: Graph) -> dict[str, Node]:
    return {node.path: node for node in graph.nodes()}


def test_dimension_changing_unit_shares_its_preactivation() -> None:
    graph = build(str(SPECS / "preact_resnet164.res")).graph
    nodes = _by_path(graph)
    # layer2.0: one BN-ReLU on x, feeding both the branch and the plain 1x1 projection.
    conv1, shortcut = nodes["layer2.0.conv1"], nodes["layer2.0.shortcut"]
    assert shortcut.op == "conv" and shortcut.inputs == conv1.inputs
    (preact,) = conv1.inputs
    assert graph.node(preact).op == "relu"
    (bn1,) = graph.node(preact).inputs
    assert graph.node(bn1).path == "layer2.0.bn1"
    # The stride sits on the first 1x1 conv (the authors' quirk), not on the 3x3.
    assert conv1.shape == (32, 16, 16) and nodes["layer2.0.bn2"].shape == (32, 16, 16)
    # No conv has a bias; nothing follows the addition but the next unit's BN.
    assert all(n.args["bias"] is False for n in graph.nodes() if n.op == "conv")
    add = nodes["layer2.0.skip"]
    assert add.inputs == (nodes["layer2.0.conv3"].id, shortcut.id)


def test_other_units_use_identity_shortcuts() -> None:
    graph = build(str(SPECS / "preact_resnet164.res")).graph
    nodes = _by_path(graph)
    add = nodes["layer2.1.skip"]
    assert add.inputs == (nodes["layer2.1.conv3"].id, nodes["layer2.0.skip"].id)
    assert "layer2.1.shortcut" not in nodes
    # The head: BN, ReLU, global average pool, linear(10), and no stem BN.
    assert nodes["conv1"].shape == (16, 32, 32) and "bn1" not in nodes
    assert nodes["bn"].op == "bn" and nodes["fc"].shape == (10,)
