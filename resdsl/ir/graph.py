"""The network graph. This module is the only code in resdsl that imports networkx.

One node per op. Each node records its op, its resolved arguments, its output shape, its
hierarchical name (`layer2.0.conv2`, the module path backends use) and the span of the
statement it came from. Edges keep their input position (`index`), so `concat(a, b)` and
`add(x, x)` are represented faithfully (a multigraph allows the repeated edge).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

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


class Graph:
    def __init__(self, name: str) -> None:
        self.name = name
        self._g: nx.MultiDiGraph = nx.MultiDiGraph()
        self._nodes: dict[int, Node] = {}
        self.scopes: dict[str, Scope] = {}
        self.output: int | None = None

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
