"""The network graph.

One node per op. Each node records its op, its resolved arguments, its output shape, its
hierarchical name (`layer2.0.conv2`, the module path backends use) and the span of the
statement it came from. Edges keep their input position (`index`), so `concat(a, b)` and
`add(x, x)` are represented faithfully (the repeated edge is kept).

A node's inputs are always nodes made before it, so the creation order is a topological
order and the graph cannot have a cycle; `add` refuses anything else. Plain lists hold the
nodes and each node's users, so every query here is linear or better: the graph of a
100,000-node spec is built and checked in a fraction of a second (networkx, which this used
before, cost about a third of the front end's time and memory at that size, and 130 ms to
import). `to_networkx()` hands the graph to networkx for analysis.

Beside the module hierarchy (`scopes`, named levels only), the graph keeps the spec's structure
as elaboration ran it: `frames`, one per block call, primitive, repeat, repeat iteration, named
sequence and shortcut/transform clause, named or not, each with the contiguous range of node
ids it created. Backends that follow the spec rather than the lowered ops (the diagram: stages,
`group`'s branch count, folding of identical blocks) read them; the others can ignore them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from resdsl.diagnostics import InternalError, Span
from resdsl.ir.ops import Shape, Value


@dataclass(frozen=True)
class Node:
    id: int
    op: str
    args: Mapping[str, Value]
    inputs: tuple[int, ...]
    shape: Shape
    path: str
    span: Span | None
    # Constant initial values for some of the op's state entries (a gate's negative bias,
    # a weighted residual's α); the rest follow the default initialisation.
    init: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Scope:
    """A named level of the module hierarchy: a named block call, sequence, repeat, repeat
    iteration or primitive. `kind` is the block's name for block calls."""

    path: str
    kind: str
    span: Span | None


FrameKind = Literal["block", "primitive", "repeat", "iteration", "sequence", "clause"]


@dataclass(frozen=True)
class Frame:
    """A region of the spec's structure, as elaboration ran it, named or not.

    `kind` and `name`: a block call (`"block"`, the block's name), a primitive (`"primitive"`,
    `"skip"`, `"group"`, ...; `"branch"` for a branch of a multi-branch `weight`), a repeat
    (`"repeat"`) and each of its iterations (`"iteration"`), a named sequence (`"sequence"`,
    its name) or a primitive's clause (`"clause"`, `"shortcut"` or `"transform"`; a gate's
    derived transform too). `path` is its module path when the statement is named, None when
    it is transparent. `args` are its bound arguments: a block's parameters, a primitive's
    arguments (`group`'s `groups` and `merge`), a repeat's `count`, an iteration's `index`.

    It reads node `input` and created the nodes `start` up to `end` (exclusive) and frames
    nested in it; `output` is its result. `end` and `output` are None while it is open: when
    elaboration stopped inside it with an error.
    """

    id: int
    parent: int | None
    kind: FrameKind
    name: str
    path: str | None
    span: Span | None
    args: Mapping[str, Value]
    input: int
    start: int
    end: int | None = None
    output: int | None = None


class Graph:
    def __init__(self, name: str) -> None:
        self.name = name
        self._nodes: list[Node] = []
        # The nodes that read each node, in increasing order, each once.
        self._users: list[list[int]] = []
        self.scopes: dict[str, Scope] = {}
        # The final tensor of the network's statements; with no `output` statement, the
        # network's one output.
        self.output: int | None = None
        # The outputs named with `output` statements, in their order: name → node. A node may
        # be given under two names.
        self.outputs: dict[str, int] = {}
        # Where each output is named (`output out`'s `out`), for the diagnostics about it.
        self.output_spans: dict[str, Span] = {}
        # The spec's structure in the order elaboration opened it (parents before children).
        self.frames: list[Frame] = []
        self._open: list[int] = []
        # The spec's names for tensors (`spx = in`): node → the first name given to it.
        self.tensor_names: dict[int, str] = {}
        # How the input is prepared (timm's pretrained_cfg mean, std, crop_pct,
        # interpolation), from the network's parameters of those names (ir/preprocessing.py).
        self.preprocessing: dict[str, float | str | tuple[float, ...]] = {}

    def results(self) -> list[tuple[str | None, int]]:
        """What the network returns, in order: its named outputs, or its final tensor alone
        (named None) when it names none."""
        if self.outputs:
            return list(self.outputs.items())
        return [] if self.output is None else [(None, self.output)]

    def __len__(self) -> int:
        return len(self._nodes)

    def add(
        self,
        op: str,
        args: Mapping[str, Value],
        inputs: tuple[int, ...],
        shape: Shape,
        path: str,
        span: Span | None,
        init: Mapping[str, float] | None = None,
    ) -> int:
        nid = len(self._nodes)
        for src in inputs:
            if not 0 <= src < nid:
                raise InternalError(f"`{path}` ({op}) reads node {src}, which is not made yet")
        self._nodes.append(Node(nid, op, args, inputs, shape, path, span, init or {}))
        self._users.append([])
        for src in inputs:
            users = self._users[src]
            if not users or users[-1] != nid:
                users.append(nid)
        return nid

    def update(self, nid: int, args: Mapping[str, Value], shape: Shape) -> None:
        """Change a node's arguments and shape (a `group` folding its last conv); only valid
        while the node has no users."""
        assert not self.users(nid), "a node with users cannot change its shape"
        self._nodes[nid] = replace(self._nodes[nid], args=args, shape=shape)

    def set_init(self, nid: int, init: Mapping[str, float]) -> None:
        self._nodes[nid] = replace(self._nodes[nid], init={**self._nodes[nid].init, **init})

    def add_scope(self, scope: Scope) -> None:
        self.scopes[scope.path] = scope

    def open_frame(
        self,
        kind: FrameKind,
        name: str,
        path: str | None,
        span: Span | None,
        args: Mapping[str, Value],
        input: int,
    ) -> int:
        """Start a region of the spec's structure, nested in the innermost open one."""
        fid = len(self.frames)
        parent = self._open[-1] if self._open else None
        self.frames.append(Frame(fid, parent, kind, name, path, span, args, input,
                                 len(self._nodes)))
        self._open.append(fid)
        return fid

    def close_frame(self, fid: int, output: int) -> None:
        """End the innermost open region: its nodes are those created since it opened."""
        assert self._open and self._open[-1] == fid, "frames close innermost first"
        self._open.pop()
        f = self.frames[fid]
        # Built directly rather than with `replace`, which costs several times more and runs
        # once per frame: a repeat of a million empty iterations closes a million frames.
        self.frames[fid] = Frame(f.id, f.parent, f.kind, f.name, f.path, f.span, f.args,
                                 f.input, f.start, len(self._nodes), output)

    def node(self, nid: int) -> Node:
        return self._nodes[nid]

    def nodes(self) -> Iterator[Node]:
        """All nodes in topological order (the order elaboration created them)."""
        return iter(self._nodes)

    def users(self, nid: int) -> list[int]:
        """The nodes that read node `nid`, in increasing order, each once."""
        return list(self._users[nid])

    def edges(self) -> list[tuple[int, int, int]]:
        """(source, target, input index) for every edge, in a stable order."""
        return sorted((u, n.id, i) for n in self._nodes for i, u in enumerate(n.inputs))

    def sources(self) -> list[int]:
        return [n.id for n in self._nodes if not n.inputs]

    def ancestors(self, nid: int) -> set[int]:
        seen: set[int] = set()
        stack = list(self._nodes[nid].inputs)
        while stack:
            u = stack.pop()
            if u not in seen:
                seen.add(u)
                stack.extend(self._nodes[u].inputs)
        return seen

    def is_acyclic(self) -> bool:
        """Every edge runs from an earlier node to a later one (`add` and `update` keep it
        so), which rules out a cycle."""
        return all(u < n.id for n in self._nodes for u in n.inputs)

    def to_networkx(self) -> Any:
        """The graph as a `networkx.MultiDiGraph`, for analysis with networkx's algorithms:
        one node per op (attributes `op`, `args`, `shape`, `path`), one edge per input with
        its position as `index` (so `add(x, x)` keeps both edges). networkx is imported here
        only: the compiler itself needs none of it, and it costs 130 ms to import."""
        import networkx as nx

        g = nx.MultiDiGraph(name=self.name)
        for node in self._nodes:
            g.add_node(node.id, op=node.op, args=dict(node.args), shape=node.shape,
                       path=node.path)
        for src, dst, index in self.edges():
            g.add_edge(src, dst, index=index)
        return g

    def topological_order(self) -> list[int]:
        """The smallest topological order: the creation order, since every edge runs
        forward."""
        return list(range(len(self._nodes)))
