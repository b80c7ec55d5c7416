"""Shape verification: re-infers every node's shape from its inputs with the op rules.

Elaboration infers shapes as it creates nodes (it needs them for `in.c` and for lowering
`group`); this pass re-derives them over the finished graph in topological order, so any
later rewrite of the graph that breaks a shape is caught before a backend sees it.
"""

from __future__ import annotations

from resdsl.diagnostics import InternalError
from resdsl.ir.graph import Graph
from resdsl.ir.ops import OPS, ShapeError, fmt_shape


def verify_shapes(graph: Graph) -> None:
    for nid in graph.topological_order():
        node = graph.node(nid)
        if node.op == "input":
            continue
        op = OPS[node.op]
        expected = op.input_count(node.args)
        if expected is not None and len(node.inputs) != expected:
            raise InternalError(f"`{node.path}` ({node.op}) has {len(node.inputs)} inputs")
        ins = [graph.node(i).shape for i in node.inputs]
        try:
            shape = op.infer(ins, node.args)
        except ShapeError as exc:
            raise InternalError(f"`{node.path}` ({node.op}): {exc.message}") from None
        if shape != node.shape:
            raise InternalError(
                f"`{node.path}` ({node.op}) records {fmt_shape(node.shape)} but its inputs "
                f"give {fmt_shape(shape)}"
            )
