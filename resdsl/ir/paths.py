"""Input-to-output paths by length: Veit et al. 2016's "unraveled view", for any graph.

Veit, Wilber & Belongie (2016, "Residual networks behave like ensembles of relatively shallow
networks") write a residual unit y = x + F(x) as two paths, one through F and one around it,
so that n units unroll into 2^n paths of which C(n, k) pass through k of the F's. This
module computes that distribution from the elaborated graph alone (no torch), for every join
the language has.

The definition (docs/cli.md#resdsl-paths says it for users):

- A path is a chain of graph edges from the input node to the output node. Paths are between
  tensors, not channels: a concat or a dual join is one node, and a grouped conv (or a
  `group`, which lowers to grouped convs) is one path, not one per group.
- A **join** is a primitive whose merge lets a path go around its body: `skip`, `weight`
  (single body or branches), `gate`, `concat` and `dual`; and a join of named tensors that is
  written as one, `add(F(x), x)` (counted as a `skip`) or `cat(x, F(x))` (as a `concat`): one
  of its tensors dominates the others, which are then its body (`ir/joins.py` decides this for
  the diagram too). A path's **length** is the number of joins it enters through their body
  (F) rather than through their identity, shortcut or carry input. In a join with `branch`es
  each branch is a body. A projection shortcut, the identity, and a body or branch that is
  empty or only `identity` add nothing; a body that holds a join adds that join too, so
  nesting counts once per level.
- Modulating inputs are not paths: a gate's T = σ(W_T x + b_T) and a `scale`'s attention F in
  x·F(x) multiply a path rather than carry one (a product does not split into a sum of path
  terms, so Veit's unrolling does not apply to them). Paths enter a gate through H or the
  carried x, and a `scale` through x. `scale` and `group` are not joins: no path goes around
  them. Nor is a size reference: `upsample(to = t)` reads only t's height and width.
- Every other node with several inputs (a sum of named tensors none of which the others are
  computed from, such as Res2Net's `add(in, previous)`, or `add(F(x), S(x))`) passes each
  input on at length +0: its paths are counted, without a length.

So a ResNet of n units has C(n, k) paths of length k (a projection or option-A shortcut is
the unit's length-0 side), and so do a DenseNet with n dense layers in total (each dense
layer reads the concatenation of every earlier output, so a path picks any subset of the
layers it passes through; the transitions are on every path), a DPN with n dual units and a
highway network with n gated layers.

The count is a dynamic programme over the nodes in creation order, which is a topological
order: each node holds the polynomial Σ_k c_k z^k of the paths from the input to it by
length, and an edge that enters a join through its body multiplies by z. Exact Python
integers: ResNet-1202 has 2^600 paths.
"""

from __future__ import annotations

import itertools
import operator
from collections import Counter
from dataclasses import dataclass, field

from resdsl.diagnostics import Span, SpecError, error
from resdsl.ir.graph import Frame, Graph
from resdsl.ir.joins import named_joins, primitive_merges
from resdsl.ir.ops import OPS

# Primitives that give a path the choice of going around their body.
JOINS = ("skip", "weight", "gate", "concat", "dual")
# (primitive, merge op, input index) of the inputs that modulate rather than carry a path:
# highway(σ(T), H, x) and scale's mul(x, F).
MODULATORS = frozenset({("gate", "highway", 0), ("scale", "mul", 1)})
# Nodes that pass a body's output on, scaled at most: weight's α, skip's constant scale, and
# `identity`, so that `branch { identity }` (how a multi-branch join writes its shortcut) is
# the identity and not a body. The node they read decides whether the input is the body.
PASS_THROUGH = frozenset({"alpha", "rescale", "identity"})
# Beyond this many joins the table (n + 1 integers of up to n bits) and the O(n²) work get
# large (5,000 joins take seconds): ResNet-1202 has 600 and counts in 0.02 s.
MAX_JOINS = 5_000


@dataclass(frozen=True)
class PathCounts:
    """The input-to-output paths of a network by length.

    `counts[k]` is the number of paths that enter k joins through their body; `joins` is the
    number of joins in the graph by primitive (`{"skip": 54}` for ResNet-110)."""

    counts: tuple[int, ...]
    joins: dict[str, int]
    # For a network with named outputs, each output's own counts, in their order; `counts`
    # is then their sum: the paths from the input to any output (a path ends at one output).
    outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def units(self) -> int:
        return sum(self.joins.values())

    @property
    def mean(self) -> float:
        """The mean length of a path (paths weighted equally)."""
        total = self.total
        if total == 0:
            return 0.0
        # Exact until the final division: the sums can exceed a float's range.
        return sum(k * c for k, c in enumerate(self.counts)) / total

    @property
    def mode(self) -> int:
        """The most common length (the shortest, on ties)."""
        return max(range(len(self.counts)), key=lambda k: (self.counts[k], -k))

    @property
    def shortest(self) -> int:
        return next((k for k, c in enumerate(self.counts) if c), 0)

    @property
    def longest(self) -> int:
        return max((k for k, c in enumerate(self.counts) if c), default=0)


def edge_lengths(graph: Graph) -> tuple[dict[tuple[int, int], int | None], Counter[str]]:
    """How much each input of each merge adds to a path's length.

    Returns {(merge node, input index): 1 (the join's body), 0 (its identity, shortcut or
    carry), None (a modulating input or a size reference, which no path takes)} for the merges
    of the joins and of `scale` and for the size references of ops such as `upsample`, and the
    number of joins by primitive. Inputs not listed add 0."""
    clauses: dict[int, list[Frame]] = {}
    for f in graph.frames:
        if f.kind == "clause" and f.parent is not None and f.end is not None:
            clauses.setdefault(f.parent, []).append(f)
    lengths: dict[tuple[int, int], int | None] = {}
    joins: Counter[str] = Counter()
    for merge_id, f in primitive_merges(graph).items():
        if f.name not in JOINS and f.name != "scale":
            continue
        merge = graph.node(merge_id)
        if f.name in JOINS:
            joins[f.name] += 1
        for index, src in enumerate(merge.inputs):
            if (f.name, merge.op, index) in MODULATORS:
                lengths[merge.id, index] = None
                continue
            if f.name not in JOINS:
                continue
            lengths[merge.id, index] = int(_in_body(graph, f, clauses.get(f.id, []), src))
    for join in named_joins(graph).values():
        joins[join.kind] += 1
        shortcut = graph.node(join.node).inputs[join.shortcut]
        for index, src in enumerate(graph.node(join.node).inputs):
            lengths[join.node, index] = int(src != shortcut)
    # Tensors an op reads only for their size (`upsample(to = t)`) carry no path either.
    for node in graph.nodes():
        for index in OPS[node.op].size_inputs(node.args):
            lengths[node.id, index] = None
    return lengths, joins


def _in_body(graph: Graph, frame: Frame, clauses: list[Frame], src: int) -> bool:
    """Whether `src`, an input of `frame`'s merge, is the output of the primitive's body (or
    of one of its branches): a node the primitive created outside its shortcut and transform
    clauses. Its input x and its clauses' outputs are not; an empty body's output is x."""
    node = graph.node(src)
    while node.op in PASS_THROUGH and frame.start <= node.id:
        node = graph.node(node.inputs[0])
    assert frame.end is not None
    if not frame.start <= node.id < frame.end:
        return False
    return not any(c.start <= node.id < (c.end or c.start) for c in clauses)


def count_paths(graph: Graph, span: Span | None = None) -> PathCounts:
    """The number of input-to-output paths of `graph` by length (see the module docstring).

    Raises SpecError (E0731) when the graph has more than MAX_JOINS joins; `span` is where
    the network is defined."""
    lengths, joins = edge_lengths(graph)
    units = sum(joins.values())
    if units > MAX_JOINS:
        raise SpecError([error(
            "E0731",
            f"the network has {units:,} joins, too many to count its paths",
            span,
            f"{units:,} joins",
            help=f"path counting takes at most {MAX_JOINS:,} joins (the table alone would "
            f"hold {units + 1:,} integers of up to {units:,} bits); count a shallower "
            "version of the network with -D",
        )])
    assert graph.output is not None, "an elaborated graph has an output"
    ends = {nid for _, nid in graph.results()}
    # poly[v][k]: paths from the input to node v that entered k joins through their body.
    # A single-input node shares its input's list (never mutated), so a chain costs nothing.
    poly: dict[int, list[int]] = {}
    remaining = Counter(src for node in graph.nodes() for src in node.inputs)
    for node in graph.nodes():
        if not node.inputs:
            poly[node.id] = [1]
            continue
        if len(node.inputs) == 1 and lengths.get((node.id, 0), 0) == 0:
            poly[node.id] = poly[node.inputs[0]]
        else:
            acc: list[int] = []
            for index, src in enumerate(node.inputs):
                shift = lengths.get((node.id, index), 0)
                if shift is None:
                    continue
                p = [0] * shift + poly[src] if shift else poly[src]
                if len(acc) < len(p):
                    acc, p = p, acc
                # map() over the shorter list: C-speed additions (5× the indexed loop).
                acc = [*map(operator.add, acc, p), *acc[len(p):]]
            poly[node.id] = acc
        # Free what no later node reads: DenseNet-sized graphs hold hundreds of long lists.
        for src in node.inputs:
            remaining[src] -= 1
            if remaining[src] == 0 and src not in ends:
                del poly[src]
    by_output = {name: _trimmed(poly[nid]) for name, nid in graph.results()}
    total: list[int] = []
    for counts in by_output.values():
        total = [a + b for a, b in itertools.zip_longest(total, counts, fillvalue=0)]
    return PathCounts(_trimmed(total), dict(sorted(joins.items(), key=lambda kv:
                                                   JOINS.index(kv[0]))),
                      {name: c for name, c in by_output.items() if name is not None})


def _trimmed(counts: list[int]) -> tuple[int, ...]:
    """Without the trailing zeros, and never empty."""
    end = len(counts)
    while end > 1 and counts[end - 1] == 0:
        end -= 1
    return tuple(counts[:end] or [0])
