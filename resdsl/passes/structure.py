"""Structure checks: the graph has one input, no cycle, and every node reaches the output.

The language makes these hold by construction (a network has one `input` statement, checked
with a diagnostic during elaboration, and every primitive merges what it branches), so a
violation here is a bug in resdsl and is reported as an internal error.
"""

from __future__ import annotations

from resdsl.diagnostics import InternalError
from resdsl.ir.graph import Graph


def check_structure(graph: Graph) -> None:
    sources = graph.sources()
    inputs = [n for n in sources if graph.node(n).op == "input"]
    if len(inputs) != 1 or len(sources) != 1:
        raise InternalError(f"graph `{graph.name}` has sources {sources}, inputs {inputs}")
    if graph.output is None:
        raise InternalError(f"graph `{graph.name}` has no output")
    if not graph.is_acyclic():
        raise InternalError(f"graph `{graph.name}` has a cycle")
    reaching = graph.ancestors(graph.output) | {graph.output}
    dead = [graph.node(n).path for n in range(len(graph)) if n not in reaching]
    if dead:
        raise InternalError(f"nodes that do not reach the output: {', '.join(dead[:5])}")
