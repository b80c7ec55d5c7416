"""The network graph. This module is the only code in resdsl that imports networkx.

One node per op. Each node records its op, its resolved arguments, its output shape, its
hierarchical name (`layer2.0.conv2`, the module path backends use) and the span of the
statement it came from. Edges keep their input position (`index`), so `concat(a, b)` and
`add(x, x)` are represented faithfully (a multigraph allows the repeated edge).

Beside the module hierarchy (`scopes`, named levels only), the graph keeps the spec's structure
as elaboration ran it: `frames`, one per block call, primitive, repeat, repeat iteration, named
sequence and shortcut/transform clause, named or not, each with the contiguous range of node
ids it created. Backends that follow the spec rather than the lowered ops (the diagram: stages,
`group`'s branch count, folding of identical blocks) read them; the others can ignore them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import networkx as nx

from resdsl.diagnostics import Span
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
        self._g: nx.MultiDiGraph = nx.MultiDiGraph()
        self._nodes: dict[int, Node] = {}
        self.scopes: dict[str, Scope] = {}
        self.output: int | None = None
        # The spec's structure in the order elaboration opened it (parents before children).
        self.frames: list[Frame] = []
        self._open: list[int] = []

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
        node = Node(nid, op, args, inputs, shape, path, span, init or {})
        self._nodes[nid] = node
        self._g.add_node(nid)
        for index, src in enumerate(inputs):
            self._g.add_edge(src, nid, index=index)
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
        self.frames[fid] = replace(self.frames[fid], end=len(self._nodes), output=output)

    def node(self, nid: int) -> Node:
        return self._nodes[nid]

    def nodes(self) -> Iterator[Node]:
        """All nodes in topological order (the order elaboration created them)."""
        return iter(self._nodes.values())

    def users(self, nid: int) -> list[int]:
        return sorted(self._g.successors(nid))

    def edges(self) -> list[tuple[int, int, int]]:
        """(source, target, input index) for every edge, in a stable order."""
        return sorted((u, v, d["index"]) for u, v, d in self._g.edges(data=True))

    def sources(self) -> list[int]:
        return [n for n in self._g.nodes if self._g.in_degree(n) == 0]

    def ancestors(self, nid: int) -> set[int]:
        return set(nx.ancestors(self._g, nid))

    def is_acyclic(self) -> bool:
        return bool(nx.is_directed_acyclic_graph(self._g))

    def topological_order(self) -> list[int]:
        return list(nx.lexicographical_topological_sort(self._g))
