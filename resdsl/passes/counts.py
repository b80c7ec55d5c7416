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
    """Every state_dict key the network has (parameters and buffers) with its shape, in the
    order of PyTorch's `state_dict()`: a module's own tensors (a `weight`'s α sits on the
    module that holds the primitive) before its children's, and children in the order they
    first appear. Node order alone differs where a dotted name revisits a level
    (`convs.0, bns.0, convs.1` is `convs.0, convs.1, bns.0` in torch)."""
    first: dict[str, int] = {}
    entries: list[tuple[tuple[tuple[int, int], ...], str, Shape]] = []
    for node in graph.nodes():
        for st in OPS[node.op].state(_ins(graph, node), node.args, node.shape):
            key = f"{node.path}.{st.name}" if st.name else node.path
            owner = node.path if st.name else node.path.rpartition(".")[0]
            levels = owner.split(".") if owner else []
            chain = []
            for k in range(1, len(levels) + 1):
                prefix = ".".join(levels[:k])
                chain.append((1, first.setdefault(prefix, len(first))))
            # (0, n): the module's own tensors, before any child's (1, ...).
            entries.append(((*chain, (0, len(entries))), key, st.shape))
    return {key: shape for _, key, shape in sorted(entries, key=lambda e: e[0])}


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


@dataclass(frozen=True)
class OutputRow:
    """One of the network's outputs in `resdsl info`: its name (None for a network's one
    unnamed output), shape, and the parameters and MACs of the layers its value is computed
    from (an input read for its size alone, `upsample(to = t)`'s, does not count)."""

    name: str | None
    shape: Shape
    params: int
    macs: int


def output_rows(graph: Graph) -> list[OutputRow]:
    """Each output with what it is computed from; a layer shared by two outputs counts in
    both, so the rows may add up to more than the total."""
    rows = []
    for name, out in graph.results():
        reach, stack = {out}, [out]
        while stack:
            node = graph.node(stack.pop())
            size_only = OPS[node.op].size_inputs(node.args)
            for i, src in enumerate(node.inputs):
                if i not in size_only and src not in reach:
                    reach.add(src)
                    stack.append(src)
        params = macs = 0
        for nid in reach:
            c = node_counts(graph, graph.node(nid))
            params, macs = params + c.params, macs + c.macs
        rows.append(OutputRow(name, graph.node(out).shape, params, macs))
    return rows
