"""Parameter and MAC counts per node, rolled up along the module hierarchy.

MACs count the multiply-accumulates of convolutions and linear layers only: the convention
behind torchvision's published GFLOPS (and timm's GMACs), so the totals compare directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from resdsl.ir.graph import Graph, Node
from resdsl.ir.ops import OPS, Shape


@dataclass(frozen=True)
class Counts:
    params: int
    macs: int


@dataclass(frozen=True)
class Row:
    """One level of the hierarchy in `resdsl info`: a stage, a block or a layer."""

    path: str
    depth: int
    kind: str
    shape: Shape
    params: int
    macs: int


def _ins(graph: Graph, node: Node) -> list[Shape]:
    return [graph.node(i).shape for i in node.inputs]


def node_counts(graph: Graph, node: Node) -> Counts:
    op = OPS[node.op]
    ins = _ins(graph, node)
    return Counts(op.params(ins, node.args, node.shape), op.macs(ins, node.args, node.shape))


def totals(graph: Graph) -> Counts:
    params = macs = 0
    for node in graph.nodes():
        c = node_counts(graph, node)
        params += c.params
        macs += c.macs
    return Counts(params, macs)


def state_values(graph: Graph) -> int:
    """Values in every parameter and buffer: what building the network allocates."""
    total = 0
    for node in graph.nodes():
        total += sum(s.size for s in OPS[node.op].state(_ins(graph, node), node.args, node.shape))
    return total


def state_shapes(graph: Graph) -> dict[str, Shape]:
    """Every state_dict key the network has (parameters and buffers) with its shape."""
    out: dict[str, Shape] = {}
    for node in graph.nodes():
        for st in OPS[node.op].state(_ins(graph, node), node.args, node.shape):
            out[f"{node.path}.{st.name}" if st.name else node.path] = st.shape
    return out


@dataclass
class _Acc:
    depth: int
    kind: str
    shape: Shape
    params: int = 0
    macs: int = 0


def rollup(graph: Graph, depth: int) -> list[Row]:
    """Rows for every module path up to `depth` levels, in the order they first appear.
    A row's shape is the output of its last node, i.e. of the stage or block."""
    rows: dict[str, _Acc] = {}
    for node in graph.nodes():
        if node.op == "input":
            continue
        c = node_counts(graph, node)
        parts = node.path.split(".")
        for level in range(1, min(depth, len(parts)) + 1):
            prefix = ".".join(parts[:level])
            acc = rows.get(prefix)
            if acc is None:
                scope = graph.scopes.get(prefix)
                acc = rows[prefix] = _Acc(level, scope.kind if scope else node.op, node.shape)
            acc.shape = node.shape
            acc.params += c.params
            acc.macs += c.macs
    return [Row(p, a.depth, a.kind, a.shape, a.params, a.macs) for p, a in rows.items()]
