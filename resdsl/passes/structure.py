"""Structure checks: the graph has one input, no cycle, and every node reaches an output.

The language makes the first two hold by construction (a network has one `input` statement,
checked with a diagnostic during elaboration), so a violation is a bug in resdsl and is
reported as an internal error. Every primitive merges what it branches, but named tensors
let a spec compute a layer and then continue from another tensor (`x = in; conv(16, 3); x`),
so a layer that does not reach the output is the spec's mistake (E0504) when it comes from
the spec, and a bug only when resdsl made it without a source.
"""

from __future__ import annotations

from resdsl.diagnostics import InternalError, SpecError, error
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
    reaching: set[int] = set()
    for _, out in graph.results():
        reaching |= graph.ancestors(out) | {out}
    dead = [graph.node(n) for n in range(len(graph)) if n not in reaching]
    if dead and dead[0].span is not None:
        first = dead[0]
        more = f" (nor that of {len(dead) - 1:,} more layers)" if len(dead) > 1 else ""
        raise SpecError([error(
            "E0504",
            f"the output of `{first.path}` ({first.op}) is never used{more}",
            first.span,
            "computed here, then dropped",
            help=("the network names its outputs: make this one of them (`output name`), "
                  "use it, or remove the layers" if graph.outputs else
                  "a statement that is a tensor's name (`x`) continues from that tensor and "
                  "drops the one before it: join them (`add(in, t)`, `cat(in, t)`) or remove "
                  "the layers"),
        )])
    if dead:
        paths = ", ".join(n.path for n in dead[:5])
        raise InternalError(f"nodes that do not reach the output: {paths}")
