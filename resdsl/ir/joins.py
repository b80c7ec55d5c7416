"""Which merges are residual joins: the primitives' merges, and joins of named tensors that a
user writes as `add(F(x), x)`.

A primitive's merge is the last node it makes (`skip`'s add, `concat`'s concat, `gate`'s
highway, ...). A join of named tensors (`add`, `cat`; not `mul`, which scales a tensor) is a
residual join when one of its tensors, x, *dominates* the others: every path from the input to
each of them passes through x, so they are functions of x alone. x is then the join's
shortcut, the identity, and the others its body: `add(F(x), x)` is drawn and counted like
`skip { F }`, `cat(x, F(x))` like `concat { F }`, wherever they are written. This is how a
pre-activation block is naturally written when its shortcut reads the tensor before the
activation (`x = in; bn; relu; ...; add(in, x)`). A sum of two functions of x
(`add(F(x), S(x))`, a projection shortcut) is a plain sum: nothing in it says which side is
the shortcut; `skip { F } shortcut S` says so. docs/language.md states the rule for users.

The diagram (`backends/dot_source.py`) and the path count (`ir/paths.py`) both take the joins
from here. Dominators are computed once, in the creation order (a topological order), each
node's immediate dominator being the nearest common dominator of its inputs, found with
skew-binary jump pointers in O(log n) (Myers 1983): linear in practice, and never quadratic,
whatever the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

from resdsl.ir.graph import Frame, Graph

# The ops a primitive's merge is; a primitive frame whose output is anything else (a `group`
# with `merge = "concat"` returns its body) has no merge.
MERGE_OPS = frozenset({"add", "weighted_sum", "highway", "concat", "dual", "mul"})
# A join of named tensors that can be residual, and the primitive it then stands for.
NAMED_JOINS = {"add": "skip", "concat": "concat"}


@dataclass(frozen=True)
class NamedJoin:
    """A residual join of named tensors: `node` (an add or concat) whose input `shortcut`
    (an index into its inputs) dominates its other inputs; `kind` is the primitive it stands
    for ("skip" for add, "concat" for cat)."""

    node: int
    shortcut: int
    kind: str


def primitive_merges(graph: Graph) -> dict[int, Frame]:
    """The merge node of each closed primitive that made one: the last node it created, of a
    merge op, with two or more inputs; mapped to its frame."""
    merges: dict[int, Frame] = {}
    for f in graph.frames:
        if f.kind != "primitive" or f.end is None or f.output is None:
            continue
        merge = graph.node(f.output)
        if merge.op in MERGE_OPS and merge.id == f.end - 1 and len(merge.inputs) >= 2:
            merges[merge.id] = f
    return merges


def named_joins(graph: Graph) -> dict[int, NamedJoin]:
    """The residual joins of named tensors in `graph`, by node (see the module docstring)."""
    merges = primitive_merges(graph)
    candidates = [n for n in graph.nodes() if n.op in NAMED_JOINS and n.id not in merges
                  and len(set(n.inputs)) >= 2]
    if not candidates:
        return {}
    tree = _Dominators(graph, candidates[-1].id)
    joins: dict[int, NamedJoin] = {}
    for node in candidates:
        for index, x in enumerate(node.inputs):
            if all(u == x or tree.dominates(x, u) for u in node.inputs):
                joins[node.id] = NamedJoin(node.id, index, NAMED_JOINS[node.op])
                break
    return joins


class _Dominators:
    """The dominator tree of `graph`'s nodes up to `last`, rooted at the input (node 0)."""

    def __init__(self, graph: Graph, last: int) -> None:
        n = last + 1
        self.idom = [0] * n
        self.depth = [0] * n
        # Skew-binary jump pointers: from each node, an ancestor up the tree whose distance
        # depends on the depth alone, so that any ancestor is O(log n) jumps away.
        self.jump = [0] * n
        for node in graph.nodes():
            if node.id >= n:
                break
            if not node.inputs:
                if node.id:  # no op makes a second source, but it would hang off the root
                    self.depth[node.id] = 1
                continue
            parent = node.inputs[0]
            for u in node.inputs[1:]:
                parent = self.common(parent, u)
            self.idom[node.id] = parent
            self.depth[node.id] = self.depth[parent] + 1
            j = self.jump[parent]
            if self.depth[parent] - self.depth[j] == self.depth[j] - self.depth[self.jump[j]]:
                self.jump[node.id] = self.jump[j]
            else:
                self.jump[node.id] = parent

    def ancestor_at(self, v: int, depth: int) -> int:
        """`v`'s dominator at `depth` (≤ v's own)."""
        while self.depth[v] > depth:
            v = self.jump[v] if self.depth[self.jump[v]] >= depth else self.idom[v]
        return v

    def common(self, a: int, b: int) -> int:
        """The nearest node that dominates both `a` and `b`."""
        if self.depth[a] < self.depth[b]:
            a, b = b, a
        a = self.ancestor_at(a, self.depth[b])
        while a != b:
            # Nodes of one depth have jumps of one length: jump together while that stays
            # below the common dominator.
            if self.jump[a] != self.jump[b]:
                a, b = self.jump[a], self.jump[b]
            else:
                a, b = self.idom[a], self.idom[b]
        return a

    def dominates(self, a: int, b: int) -> bool:
        """Whether every path from the input to `b` passes through `a` (a ≠ b)."""
        return a != b and self.depth[a] < self.depth[b] and \
            self.ancestor_at(b, self.depth[a]) == a
