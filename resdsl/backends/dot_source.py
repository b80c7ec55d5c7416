"""Graph → DOT text: the diagram `resdsl draw` renders.

The diagram follows the spec's structure (the graph's frames), not the lowered ops:

- **Regions.** Every frame (block call, primitive, repeat, iteration, named sequence, clause)
  that created nodes is a region; a frame that only wraps another with the same nodes (a repeat
  iteration that is one block call, a block whose body is one primitive) merges into it.
- **Roles.** A *unit* is a residual-family unit: the innermost block, sequence or iteration that
  holds exactly one outermost primitive (a `bottleneck`, a `dual_unit`, a `dense_layer`), or
  the primitive itself. A *stage* holds units directly (through unnamed repeats only): `layer1`,
  `denseblock1`, a `dpn_stage` call. A *block* is a plain block or named sequence outside any
  unit (`stem`, `transition1`). Other regions are containers (`features`).
- **Depth.** `stages`: stages, blocks and units are boxes. `blocks`: blocks are boxes; a unit
  is a cluster that shows its primitive (the merge node, the shortcut, the attention path) with
  each run of plain layers summarised in one box, as a paper's table writes it ("3×3 conv, 64 ·
  BN · ReLU"), and each shortcut or transform written on its edge ("1×1 conv, s2"). `layers`:
  every op is a node, every region with a name, a block or a primitive is a cluster.
- **Folding.** Consecutive sibling regions with the same structure (ops, arguments, wiring;
  not names, not input widths) are drawn once, labelled "bottleneck ×3"; `expand` turns that
  off. Only copies that chain fold: each reads only the copy before it (and what that one
  reads), and nothing inside a copy is read from outside the group, so no edge is lost; an
  edge out of the last copy leaves the first.
- **Edges** carry the tensor's `C×H×W` and a style from `dot_lowering.EDGE_STYLES`, chosen by
  the merge they enter (`LOOKS[op].inputs`): dashed shortcuts, the concat bus, T and 1−T.

The text is a pure function of the graph and the settings: nodes, clusters and edges come out
in node-id order, so the same spec gives the same bytes in every process.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from resdsl.backends.dot_lowering import EDGE_STYLES, GATE_SYMBOL, LOOKS, EdgeKind
from resdsl.diagnostics import Diagnostic
from resdsl.ir.graph import Frame, Graph, Node
from resdsl.ir.joins import named_joins
from resdsl.ir.ops import fmt_shape
from resdsl.ir.primitives import PRIMITIVES
from resdsl.passes.counts import node_counts

Depth = Literal["stages", "blocks", "layers"]
DEPTHS: tuple[Depth, ...] = ("stages", "blocks", "layers")

FONT = "Helvetica"
GREY = "#666666"
ERROR = "#c0392b"
# The margin around the drawing, in inches.
MARGIN_IN = 0.2
# What a virtual node of a long edge costs `dot` more than a drawn node: its positioning
# keeps long edges straight with weights of 2 and 8 (Gansner et al. 1993, §4.2), and spends
# most of its iterations on them (see `Size`).
LONG_EDGE_WEIGHT = 3
# What a cluster counts for on each rank it spans, against a node: it is ordered as one node,
# and positioned with two, its left and right borders (see `Size`).
CLUSTER_WIDTH = 2
# The legend's entry for a residual join of named tensors, by op.
NAMED_LEGEND = {"add": "add", "concat": "cat"}
# A summary box lists at most this many lines; the middle of a longer one is elided.
MAX_LINES = 9


@dataclass(frozen=True)
class Settings:
    depth: Depth = "blocks"
    # Draw every copy of consecutive identical blocks instead of folding them.
    expand: bool = False
    # Left to right instead of top to bottom.
    lr: bool = False
    # `C×H×W` on edges.
    shapes: bool = True


@dataclass(frozen=True)
class Size:
    """What laying a diagram out costs Graphviz's `dot`, counted from the DOT before it is
    rendered.

    `dot` ranks the nodes, makes every edge that spans several ranks a chain of virtual nodes,
    one per rank it crosses (two per rank when edges carry labels: a label is a node on a
    rank of its own), orders each rank to reduce crossings, and positions the nodes with a
    network simplex that keeps each cluster apart from its neighbours on every rank. Three
    counts drive its time and memory, each faster than linearly. Measured with graphviz-pure
    (CPU time, on a loaded machine) on the families of diagrams each one dominates:

    - `layout`: the drawn nodes, the ranks every edge crosses, and `LONG_EDGE_WEIGHT` more for
      each of its virtual nodes (`virtual`), since straightening long edges is where the
      positioning spends its iterations. Tensors joined far from where they were made are few
      nodes and many virtual ones: 40 named tensors joined 40 layers later (205 nodes and
      edges) took 9 to 14 s, ResNet-434 with every block drawn (1,527) 0.4 s.
    - `cluster_ranks`: the clusters times the ranks; `dot` keeps a table of every rank for
      each cluster. 1,600 one-node clusters in a chain took 3.7 s and 360 MB.
    - `pairs`: the pairs of nodes that share a rank, drawn or virtual, each cluster that spans
      the rank counting as `CLUSTER_WIDTH` (ordering a rank compares them, a cluster as one
      block of it; positioning keeps them apart, a cluster by its two borders). 450 tensors
      joined in a shuffled order took 8.5 s; 36 skips of 16 branches each, every branch a
      cluster, 2.6 s.

    They are counted on the longest-path ranking, which puts no edge on fewer ranks in total
    than `dot`'s (it minimises their total length). `widest` is the most that share a rank."""

    nodes: int
    edges: int
    clusters: int
    ranks: int
    virtual: int
    widest: int
    layout: int
    cluster_ranks: int
    pairs: int


@dataclass(eq=False)
class Region:
    frames: list[Frame]
    start: int
    end: int
    input: int
    output: int | None
    open: bool
    parent: Region | None
    children: list[Region] = field(default_factory=list)
    items: list[Region | int] = field(default_factory=list)
    role: str = ""
    prims: int = 0
    signature: tuple[object, ...] | None = None

    @property
    def kinds(self) -> set[str]:
        return {f.kind for f in self.frames}

    @property
    def is_primitive(self) -> bool:
        return any(f.kind == "primitive" for f in self.frames)

    @property
    def transparent(self) -> bool:
        """An unnamed repeat or iteration: a loop in the spec, no level of its own."""
        return bool(self.frames) and all(
            f.kind in ("repeat", "iteration") and f.path is None for f in self.frames
        )

    @property
    def path(self) -> str | None:
        return next((f.path for f in self.frames if f.path is not None), None)

    @property
    def primitive(self) -> Frame | None:
        return next((f for f in self.frames if f.kind == "primitive"), None)

    def name(self) -> str:
        """The block it calls, else its primitive, sequence or loop."""
        for kind in ("block", "primitive", "sequence", "clause"):
            for f in self.frames:
                if f.kind == kind:
                    return f.name
        return "repeat" if "repeat" in self.kinds else "iteration"


@dataclass
class _Elem:
    """One drawn node: the graph nodes it stands for."""

    id: str
    nodes: list[int]
    kind: str  # "op", "chain", "box", "merge", "sigma", "dual", "bus", "error"


def _regions(graph: Graph, named: Collection[int] = ()) -> tuple[Region, dict[int, Region]]:
    """The region tree: one region per frame that made nodes, wrapper frames merged. `named`
    are the residual joins of named tensors, which make units as primitives do."""
    n = len(graph)
    root = Region([], 0, n, 0, graph.output, graph.output is None, None)
    by_frame: dict[int, Region] = {}
    for f in graph.frames:
        end = n if f.end is None else f.end
        if end <= f.start:
            continue
        parent = root if f.parent is None else by_frame.get(f.parent, root)
        # An open repeat's first iteration has its range so far: it stays an iteration.
        if parent is not root and parent.start == f.start and parent.end == end and not (
                f.end is None and parent.frames[-1].kind == "repeat"):
            parent.frames.append(f)
            parent.open = parent.open or f.end is None
            by_frame[f.id] = parent
            continue
        region = Region([f], f.start, end, f.input, f.output, f.end is None, parent)
        parent.children.append(region)
        by_frame[f.id] = region
    stack = [root]
    while stack:
        region = stack.pop()
        pos = region.start
        for child in region.children:
            region.items.extend(range(pos, child.start))
            region.items.append(child)
            pos = child.end
        region.items.extend(range(pos, region.end))
        stack.extend(region.children)
    _roles(root, named)
    return root, by_frame


def _postorder(root: Region) -> list[Region]:
    order: list[Region] = []
    stack = [root]
    while stack:
        region = stack.pop()
        order.append(region)
        stack.extend(region.children)
    return order[::-1]


def _roles(root: Region, named: Collection[int]) -> None:
    post = _postorder(root)
    units: set[int] = set()
    for r in post:
        joins = sum(1 for it in r.items if isinstance(it, int) and it in named)
        r.prims = 1 if r.is_primitive else sum(c.prims for c in r.children) + joins
        # A residual join of named tensors makes the region it is written in a unit, when it
        # is that region's only join and no primitive holds it.
        if joins and r.prims == 1 and r is not root and not _inside_primitive(r):
            units.add(id(r))
    for r in post:
        if not r.is_primitive or _inside_primitive(r):
            continue
        unit = r
        parent = r.parent
        if r.kinds == {"primitive"} and parent is not None and parent is not root \
                and parent.prims == 1 and not parent.transparent:
            unit = parent
        units.add(id(unit))
    # Blocks: plain regions with no block, sequence or iteration inside.
    nested_block: dict[int, bool] = {}
    for r in post:
        nested_block[id(r)] = any(
            nested_block[id(c)] or bool(c.kinds & {"block", "sequence", "iteration"})
            for c in r.children
        )
    for r in reversed(post):  # parents first
        if r is root:
            r.role = "root"
        elif r.parent is not None and r.parent.role in ("unit", "part"):
            r.role = "part"
        elif id(r) in units:
            r.role = "unit"
        elif r.prims == 0:
            blockish = bool(r.kinds & {"block", "sequence", "iteration", "clause"})
            r.role = "block" if blockish and not nested_block[id(r)] else "container"
        else:
            r.role = "container"
    for r in post:
        if r.role == "container" and not r.transparent and _holds_units(r):
            r.role = "stage"


def _inside_primitive(r: Region) -> bool:
    p = r.parent
    while p is not None:
        if p.is_primitive:
            return True
        p = p.parent
    return False


def _holds_units(r: Region) -> bool:
    """Whether units sit in `r` directly, or through unnamed repeats only."""
    return any(
        c.role == "unit" or (c.transparent and c.role == "container" and _holds_units(c))
        for c in r.children
    )


def _path_of(r: Region) -> str | None:
    """The region's module path, or the first one inside it."""
    queue = [r]
    while queue:
        c = queue.pop(0)
        if c.path is not None:
            return c.path
        queue.extend(c.children)
    return None


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _attr(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def _attrs(attrs: dict[str, str]) -> str:
    parts = []
    for k, v in attrs.items():
        parts.append(f"{k}={v}" if v.startswith("<") and v.endswith(">") else f"{k}={_attr(v)}")
    return "[" + ", ".join(parts) + "]"


def _count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


class _Drawer:
    def __init__(self, graph: Graph, settings: Settings, failure: Diagnostic | None) -> None:
        # Primitives written with `branch`es: their merge joins equal branches.
        self.branched = {f.parent for f in graph.frames
                         if f.kind == "primitive" and f.name == "branch" and f.parent is not None}
        self.g = graph
        self.s = settings
        self.failure = failure
        n = len(graph)
        self.n = n
        # Residual joins of named tensors (`add(F(x), x)`): drawn as their primitive is.
        self.named = named_joins(graph)
        self.root, self.by_frame = _regions(graph, self.named)
        self.users: list[list[int]] = [[] for _ in range(n)]
        for node in graph.nodes():
            for i in node.inputs:
                self.users[i].append(node.id)
        # Parameters and MACs as prefix sums over node ids: a region's are two lookups.
        self.params = [0] * (n + 1)
        self.macs = [0] * (n + 1)
        for node in graph.nodes():
            c = node_counts(graph, node)
            self.params[node.id + 1] = self.params[node.id] + c.params
            self.macs[node.id + 1] = self.macs[node.id] + c.macs
        self.owner = self._owners()
        self._ctx: dict[int, int] = {}
        self._simple: dict[int, bool] = {}
        self.rep: list[str | None] = [None] * n
        self.elems: dict[str, _Elem] = {}
        self.edge_op: dict[int, str] = {}
        self.canon = list(range(n))
        self.shadow = bytearray(n)
        self.out: list[str] = []
        self.indent = 1
        self.clusters = 0
        # The cluster each element is drawn in (0: none), to tell edges that cross a border.
        self.cluster_of: dict[str, int] = {}
        self.cluster_stack: list[int] = [0]
        # Each cluster's enclosing cluster (0: the graph itself), and every edge drawn as
        # (source element, target element, whether it constrains the ranks): what
        # `layout_size` estimates Graphviz's work from.
        self.cluster_parent: list[int] = [0]
        self.links: list[tuple[str, str, bool]] = []
        self.labelled = False
        self.used: set[str] = set()
        # The innermost open frame: where elaboration stopped.
        open_frames = [f for f in graph.frames if f.end is None]
        self.failed_frame = open_frames[-1] if open_frames else None
        self.error_placed = False

    # ------------------------------------------------------------------ structure

    def _owners(self) -> list[int]:
        """The innermost frame holding each node (-1: the network itself)."""
        owner = [-1] * self.n
        ends = [self.n if f.end is None else f.end for f in self.g.frames]
        # Frames open in order of their first node, each nested in the open ones before it.
        frames = [f for f in self.g.frames if ends[f.id] > f.start]
        stack: list[int] = []
        k = 0
        for i in range(self.n):
            while stack and ends[stack[-1]] <= i:
                stack.pop()
            while k < len(frames) and frames[k].start <= i:
                stack.append(frames[k].id)
                k += 1
            owner[i] = stack[-1] if stack else -1
        return owner

    def ctx(self, nid: int) -> int:
        """The innermost primitive or clause frame holding a node (-1 for none)."""
        fid = self.owner[nid]
        trail = []
        while fid >= 0 and fid not in self._ctx:
            f = self.g.frames[fid]
            if f.kind in ("primitive", "clause"):
                self._ctx[fid] = fid
                break
            trail.append(fid)
            fid = -1 if f.parent is None else f.parent
        result = self._ctx[fid] if fid >= 0 else -1
        for t in trail:
            self._ctx[t] = result
        return result

    def frame(self, fid: int) -> Frame | None:
        return self.g.frames[fid] if fid >= 0 else None

    def simple_clause(self, fid: int) -> bool:
        """A closed clause that is a plain chain of layers: drawn as its edge's label."""
        if fid not in self._simple:
            f = self.g.frames[fid]
            ok = f.kind == "clause" and f.end is not None and f.end > f.start
            if ok:
                assert f.end is not None
                prev = f.input
                for nid in range(f.start, f.end):
                    node = self.g.node(nid)
                    if LOOKS[node.op].role != "layer" or node.inputs != (prev,) or \
                            (nid + 1 < f.end and len(self.users[nid]) != 1):
                        ok = False
                        break
                    prev = nid
            self._simple[fid] = ok
        return self._simple[fid]

    def is_gate_sigma(self, nid: int) -> bool:
        users = self.users[nid]
        return (self.g.node(nid).op == "sigmoid" and len(users) == 1
                and self.g.node(users[0]).op == "highway"
                and self.g.node(users[0]).inputs[0] == nid)

    def signature(self, r: Region) -> tuple[object, ...]:
        if r.signature is None:
            s = r.start
            ext: dict[int, int] = {}
            parts: list[object] = [tuple(
                (f.kind, f.name, tuple(f.args.items()) if f.kind == "primitive" else ())
                for f in r.frames)]
            for nid in range(s, r.end):
                node = self.g.node(nid)
                ins = tuple(i - s if i >= s else -1 - ext.setdefault(i, len(ext))
                            for i in node.inputs)
                parts.append((node.op, tuple(node.args.items()), ins,
                              tuple(node.init.items())))
            stack = list(reversed(r.children))
            while stack:
                c = stack.pop()
                parts.append((tuple((f.kind, f.name, tuple(f.args.items())
                                     if f.kind == "primitive" else ()) for f in c.frames),
                              c.start - s, c.end - s))
                stack.extend(reversed(c.children))
            r.signature = tuple(parts)
        return r.signature

    def same(self, a: Region, b: Region) -> bool:
        return (
            not a.open and not b.open
            and a.end - a.start == b.end - b.start
            and a.role == b.role
            and [(f.kind, f.name) for f in a.frames] == [(f.kind, f.name) for f in b.frames]
            and self.signature(a) == self.signature(b)
        )

    def chained(self, prev: Region, it: Region) -> bool:
        """Whether `it` only continues `prev`, so that one drawing of both loses no edge: it
        reads nothing from before but `prev`'s output and what `prev` reads too, and nothing
        of `prev` is read after it but through `it`. An FPN's levels (`repeat n as i {
        feats[i]; conv }`) have the same structure but each its own input and output: drawn
        once, three of their four edges in and out would be lost."""
        if prev.output is None:
            return False

        def reads(r: Region) -> set[int]:
            return {i for nid in range(r.start, r.end) for i in self.g.node(nid).inputs
                    if i < r.start}

        if not reads(it) <= reads(prev) | {prev.output}:
            return False
        return all(it.start <= u < it.end
                   for nid in range(prev.start, prev.end)
                   for u in self.users[nid] if u >= prev.end)

    def fold(self, items: Sequence[Region | int]) -> list[list[Region] | int]:
        out: list[list[Region] | int] = []
        for it in items:
            if isinstance(it, int):
                out.append(it)
                continue
            last = out[-1] if out else None
            if (not self.s.expand and isinstance(last, list)
                    and last[-1].output == it.input and self.chained(last[-1], it)
                    and self.same(last[0], it)):
                last.append(it)
            else:
                out.append([it])
        return out

    def shadow_copies(self, group: list[Region]) -> None:
        first = group[0]
        for r in group[1:]:
            for nid in range(r.start, r.end):
                self.shadow[nid] = 1
                self.canon[nid] = nid - r.start + first.start

    def canonical(self, nid: int) -> int:
        while self.shadow[nid]:
            nid = self.canon[nid]
        return nid

    # ------------------------------------------------------------------ labels

    def text(self, nid: int) -> str:
        node = self.g.node(nid)
        return LOOKS[node.op].text(node, [self.g.node(i).shape for i in node.inputs])

    def group_text(self, nid: int, group: Frame) -> str:
        """A layer of a `group` body, per branch, as the spec writes it (the graph holds the
        lowered, grouped form)."""
        node = self.g.node(nid)
        g = group.args.get("groups")
        if node.op != "conv" or not isinstance(g, int):
            return self.text(nid)
        groups = node.args["groups"]
        assert isinstance(groups, int)
        folded = nid == group.output and group.args.get("merge") == "sum" and groups == 1
        args = dict(node.args) if folded else dict(
            node.args, groups=max(1, groups // g) if groups > 1 else 1)
        shape = node.shape if folded else (node.shape[0] // g, *node.shape[1:])
        fake = Node(node.id, node.op, args, node.inputs, shape, node.path, node.span, node.init)
        return LOOKS["conv"].text(fake, [])

    def lines(self, nodes: Iterable[int], group: Frame | None = None) -> list[str]:
        lines: list[str] = []
        for nid in nodes:
            node = self.g.node(nid)
            look = LOOKS[node.op]
            text = self.group_text(nid, group) if group is not None else self.text(nid)
            if look.heavy or not lines:
                lines.append(text)
            else:
                lines[-1] += " · " + text
        if len(lines) > MAX_LINES:
            keep = MAX_LINES - 1
            head, tail = lines[: keep // 2 + 1], lines[len(lines) - keep // 2:]
            lines = [*head, f"… {len(lines) - len(head) - len(tail)} more …", *tail]
        return lines

    def counts_text(self, start: int, end: int) -> str:
        params = self.params[end] - self.params[start]
        macs = self.macs[end] - self.macs[start]
        parts = [f"{params:,} params"] if params else []
        if macs:
            parts.append(f"{_count(macs)} MACs")
        return " · ".join(parts)

    def paths(self, group: list[Region]) -> str:
        """The module paths a (folded) region covers: `layer1.1 … 2`."""
        if len(group) > 1:
            first, last = _path_of(group[0]), _path_of(group[-1])
        else:
            r = group[0]
            if r.path is not None:
                return r.path
            inner = [p for p in (_path_of(c) for c in r.children) if p is not None]
            if not inner:
                return ""
            first, last = inner[0], inner[-1]
        if first is None or last is None:
            return ""
        return first if first == last else f"{first} … {last.rsplit('.', 1)[-1]}"

    def title(self, group: list[Region]) -> str:
        r = group[0]
        name = r.name()
        if name in ("repeat", "iteration") and r.path:
            name = r.path
        if r.frames and r.frames[0].kind == "sequence":
            name = r.frames[0].name
        return f"{name} ×{len(group)}" if len(group) > 1 else name

    def sub(self, group: list[Region]) -> str:
        parts = []
        paths = self.paths(group)
        title = self.title(group)
        if paths and paths != title:
            parts.append(paths)
        counts = self.counts_text(group[0].start, group[-1].end)
        if counts:
            parts.append(counts)
        return " · ".join(parts)

    def cluster_label(self, group: list[Region], inner: list[Region] | None = None) -> str:
        r = group[0]
        title = _esc(self.title(group))
        if inner is not None:
            title += f" · {_esc(self.title(inner))}"
        extra = []
        prim = r.primitive
        if r.role in ("part", "unit") and prim is not None and prim.name == "group":
            merge = "summed" if prim.args.get("merge") == "sum" else "concatenated"
            extra.append(f"{prim.args.get('groups')} branches, {merge}"
                         + (" (lowered to grouped convolution)" if self.s.depth == "layers"
                            else ""))
        sub = self.sub(group)
        text = f"<B>{title}</B>"
        if extra:
            text += f" <FONT COLOR=\"#8e44ad\">{_esc(' · '.join(extra))}</FONT>"
        left = '<BR ALIGN="LEFT"/>'
        if sub:
            text += f"{left}<FONT POINT-SIZE=\"9\" COLOR=\"{GREY}\">{_esc(sub)}</FONT>"
        return f"<{text}{left}>"

    # ------------------------------------------------------------------ emission

    def line(self, text: str) -> None:
        self.out.append("  " * self.indent + text)

    def node(self, elem: _Elem, attrs: dict[str, str]) -> None:
        self.elems[elem.id] = elem
        self.cluster_of[elem.id] = self.cluster_stack[-1]
        for nid in elem.nodes:
            self.rep[nid] = elem.id
        self.line(f"{elem.id} {_attrs(attrs)}")

    def op_node(self, nid: int) -> None:
        node = self.g.node(nid)
        look = LOOKS[node.op]
        if look.role == "edge":
            self.edge_op[nid] = self.text(nid)
            return
        elem = _Elem(f"n{nid}", [nid], "op")
        if node.op == "input":
            label = (f"<<B>input</B><BR/><FONT POINT-SIZE=\"9\">{_esc(fmt_shape(node.shape))}"
                     "</FONT>>")
            self.node(elem, {"label": label, "shape": "box", "style": "rounded,filled",
                             "fillcolor": look.fill})
            return
        if look.role == "merge" or self.is_gate_sigma(nid):
            self.merge_node(nid)
            return
        name = node.path.rsplit(".", 1)[-1]
        text = _esc(self.text(nid))
        if name and not name.isdigit() and name not in ("transform", "gate"):
            text += f"<BR/><FONT POINT-SIZE=\"8\" COLOR=\"{GREY}\">{_esc(name)}</FONT>"
        attrs = {"label": f"<{text}>", "shape": "box", "style": "rounded,filled",
                 "fillcolor": look.fill}
        if node.op == "zeropad":
            attrs["style"] = "rounded,filled,dashed"
            attrs["color"] = EDGE_STYLES["zeropad"].color
        self.node(elem, attrs)

    def merge_node(self, nid: int) -> None:
        node = self.g.node(nid)
        look = LOOKS[node.op]
        prim = self.frame(self.ctx(nid))
        if nid in self.named:
            self.used.add(NAMED_LEGEND[node.op])
        elif prim is not None:
            self.used.add(prim.name)
        tooltip = self.text(nid)
        if node.op == "dual":
            r = node.args["r"]
            label = ("<<TABLE BORDER=\"0\" CELLBORDER=\"1\" CELLSPACING=\"0\" CELLPADDING=\"3\">"
                     "<TR><TD PORT=\"r\" BGCOLOR=\"#dae8fc\"> + </TD>"
                     "<TD PORT=\"d\" BGCOLOR=\"#d5f0e0\"> ‖ </TD></TR></TABLE>>")
            self.node(_Elem(f"n{nid}", [nid], "dual"),
                      {"label": label, "shape": "plain", "tooltip": f"{tooltip}: the first {r} "
                       "channels added, the rest concatenated"})
            return
        if node.op == "concat":
            w, h = ("0.09", "0.5") if self.s.lr else ("0.5", "0.09")
            self.node(_Elem(f"n{nid}", [nid], "bus"),
                      {"label": "", "shape": "box", "style": "filled", "width": w, "height": h,
                       "fixedsize": "true", "color": EDGE_STYLES["bus"].color,
                       "fillcolor": EDGE_STYLES["bus"].color, "tooltip": "concat"})
            return
        symbol = GATE_SYMBOL if node.op == "sigmoid" else look.symbol
        color = {"mul": "#c0392b", "highway": "#8e44ad", "sigmoid": "#8e44ad"}.get(
            node.op, "#1f6fd1")
        self.node(_Elem(f"n{nid}", [nid], "sigma" if node.op == "sigmoid" else "merge"),
                  {"label": symbol, "shape": "circle", "width": "0.32", "fixedsize": "true",
                   "fontsize": "13", "color": color, "fontcolor": color, "penwidth": "1.4",
                   "tooltip": tooltip})

    def box(self, group: list[Region]) -> None:
        r = group[0]
        elem = _Elem(f"n{r.start}", list(range(r.start, r.end)), "box")
        lines: list[str] = []
        if r.role == "block":
            lines = self.lines(nid for nid in range(r.start, r.end)
                               if LOOKS[self.g.node(nid).op].role != "edge")
        else:
            for entry in self.fold(r.items):
                if isinstance(entry, int):
                    if LOOKS[self.g.node(entry).op].role in ("layer", "merge"):
                        lines.append(self.text(entry))
                else:
                    lines.append(self.title(entry))
            if len(lines) > MAX_LINES:
                lines = [*lines[:4], f"… {len(lines) - 8} more …", *lines[-4:]]
        self.mark_used(r)
        text = f"<B>{_esc(self.title(group))}</B>"
        sub = self.sub(group)
        if sub:
            text += f"<BR/><FONT POINT-SIZE=\"9\" COLOR=\"{GREY}\">{_esc(sub)}</FONT>"
        if lines:
            text += "<BR/>" + "<BR/>".join(_esc(x) for x in lines)
        fill = {"stage": "#e8eef7", "unit": "#eef5ff"}.get(r.role, "#f5f5f5")
        attrs = {"label": f"<{text}>", "shape": "box", "style": "rounded,filled",
                 "fillcolor": fill}
        if len(group) > 1:
            attrs["peripheries"] = "2"
        self.node(elem, attrs)

    def mark_used(self, r: Region) -> None:
        stack = [r]
        while stack:
            c = stack.pop()
            prim = c.primitive
            if prim is not None:
                self.used.add(prim.name)
            stack.extend(c.children)

    def mode(self, r: Region) -> str:
        """How a region is drawn: "box", "unit" (summarised layers) or "full"."""
        depth = self.s.depth
        if r.role == "part":
            return "full"
        if r.open:
            return "unit" if r.role == "unit" and depth != "layers" else "full"
        if depth == "stages" and r.role in ("stage", "unit", "block"):
            return "box"
        if depth == "blocks" and r.role == "block":
            return "box"
        if depth != "layers" and r.role == "unit":
            return "unit"
        return "full"

    def clustered(self, r: Region) -> bool:
        if r.role == "root" or r.transparent:
            return False
        if r.role == "part" and r.path is None and r.kinds <= {"primitive", "clause"}:
            # A unit's own merge shows these; group, scale and branches keep their box.
            prim = r.primitive
            return prim is not None and prim.name in ("group", "scale", "branch")
        whole = r.start <= 1 and r.end >= self.n and r.role == "container"
        return not whole

    def region(self, group: list[Region], inline: bool = False) -> None:
        r = group[0]
        if len(group) > 1:
            self.shadow_copies(group)
        mode = self.mode(r)
        if mode == "box":
            self.box(group)
            return
        if inline or (not self.clustered(r) and len(group) == 1):
            if mode == "unit":
                self.unit(r)
            else:
                self.items(r)
            return
        # A cluster that holds one (folded) region only names it in its own label.
        entries = self.fold(r.items) if mode == "full" else []
        inner = entries[0] if len(entries) == 1 and isinstance(entries[0], list) else None
        if inner is not None and (self.mode(inner[0]) == "box" or inner[0].role == "part"):
            inner = None
        self.clusters += 1
        self.cluster_parent.append(self.cluster_stack[-1])
        self.cluster_stack.append(self.clusters)
        self.line(f"subgraph cluster_{self.clusters} {{")
        self.indent += 1
        style = {"unit": ("#f7fafd", "#9db8d9"), "stage": ("#fbfbfb", "#7f8fa6")}.get(
            r.role, ("#ffffff", "#b0b0b0"))
        attrs = {"label": self.cluster_label(group, inner), "labeljust": "l",
                 "style": "rounded,filled",
                 "fillcolor": style[0], "color": style[1], "fontsize": "11"}
        if r.open:
            attrs["color"] = ERROR
            attrs["penwidth"] = "2"
        if len(group) > 1:
            attrs["penwidth"] = "2"
        for k, v in attrs.items():
            self.line(f"{k}={v if v.startswith('<') else _attr(v)};")
        if mode == "unit":
            self.unit(r)
        elif inner is not None:
            self.used.update(f.name for f in r.frames if f.kind == "primitive")
            self.region(inner, inline=True)
            self.place_error(r)
        else:
            self.items(r)
        self.indent -= 1
        self.cluster_stack.pop()
        self.line("}")

    def items(self, r: Region) -> None:
        prim = r.primitive
        if prim is not None:
            self.used.add(prim.name)
        for entry in self.fold(r.items):
            if isinstance(entry, int):
                self.op_node(entry)
            else:
                self.region(entry)
        self.place_error(r)

    def place_error(self, r: Region) -> None:
        f = self.failed_frame
        if self.failure is None or self.error_placed:
            return
        if (f is None and r is self.root) or (f is not None and self.by_frame.get(f.id) is r):
            self.error_placed = True
            self.error_node()

    def unit(self, r: Region) -> None:
        """A unit with each run of plain layers in one box and its shortcuts on edges."""
        self.mark_used(r)
        chains: list[_Elem] = []
        own: dict[int, _Elem] = {}
        for nid in range(r.start, r.end):
            node = self.g.node(nid)
            look = LOOKS[node.op]
            ctx = self.ctx(nid)
            if look.role == "edge" or (ctx >= 0 and self.simple_clause(ctx)):
                self.edge_op[nid] = self.text(nid)
                continue
            if look.role == "merge" or self.is_gate_sigma(nid):
                chains.append(_Elem(f"n{nid}", [nid], "merge"))
                continue
            if len(node.inputs) == 1:
                p = node.inputs[0]
                prev = own.get(p)
                if (prev is not None and prev.kind == "chain" and self.ctx(p) == ctx
                        and self.users[p] == [nid]):
                    prev.nodes.append(nid)
                    own[nid] = prev
                    continue
            elem = _Elem(f"n{nid}", [nid], "chain")
            chains.append(elem)
            own[nid] = elem
        for elem in chains:
            if elem.kind == "merge":
                self.merge_node(elem.nodes[0])
            else:
                self.chain_node(elem)
        self.place_error(r)

    def chain_node(self, elem: _Elem) -> None:
        ctx = self.frame(self.ctx(elem.nodes[0]))
        group = ctx if ctx is not None and ctx.kind == "primitive" and ctx.name == "group" \
            else None
        lines = self.lines(elem.nodes, group)
        title = ""
        attrs: dict[str, str] = {"shape": "box", "style": "rounded,filled"}
        if group is not None:
            merge = "summed" if group.args.get("merge") == "sum" else "concatenated"
            title = f"{group.args.get('groups')} branches, {merge}"
            attrs["peripheries"] = "2"
            attrs["color"] = "#8e44ad"
        elif ctx is not None and ctx.kind == "primitive" and ctx.name == "scale":
            title = "attention"
            attrs["color"] = EDGE_STYLES["attention"].color
        elif ctx is not None and ctx.kind == "primitive" and ctx.name == "branch":
            title = "branch"
        elif ctx is not None and ctx.kind == "clause":
            title = ctx.name
        ops = [self.g.node(i).op for i in elem.nodes]
        fill = next((LOOKS[op].fill for op in ops if LOOKS[op].heavy), LOOKS[ops[0]].fill)
        text = "<BR/>".join(_esc(x) for x in lines)
        if title:
            text = f"<FONT POINT-SIZE=\"9\" COLOR=\"{GREY}\">{_esc(title)}</FONT><BR/>{text}"
        attrs["label"] = f"<{text}>"
        attrs["fillcolor"] = fill
        self.node(elem, attrs)

    def error_node(self) -> None:
        d = self.failure
        assert d is not None
        where = f"<BR/>{_esc(str(d.primary.span))}" if d.primary is not None else ""
        message = "<BR/>".join(_esc(x) for x in textwrap.wrap(d.message, 36))
        label = (f"<<B>error[{_esc(d.code)}]</B><BR/>{message}"
                 f"<FONT POINT-SIZE=\"9\">{where}</FONT>>")
        self.elems["error"] = _Elem("error", [], "error")
        self.line(f"error {_attrs({'label': label, 'shape': 'box', 'style': 'rounded,filled,bold', 'fillcolor': '#f8d7da', 'color': ERROR, 'fontcolor': ERROR, 'penwidth': '2'})}")  # noqa: E501

    # ------------------------------------------------------------------ edges

    def edges(self) -> list[str]:
        out: list[str] = []
        seen: set[tuple[str, str, str]] = set()
        for u, v, index in self.g.edges():
            if self.shadow[v] or v in self.edge_op:
                continue
            src, labels, zeropad = self.walk(u)
            dst = self.rep[v]
            if src is None or dst is None or src == dst:
                continue
            node = self.g.node(v)
            kind = self.kind(v, index, dst)
            if kind == "shortcut" and (zeropad or node.op == "zeropad"):
                kind = "zeropad"
            shape = fmt_shape(self.g.node(u).shape) if self.show_shape(src, u, dst, kind) else ""
            name = self.g.tensor_names.get(self.canonical(u))
            if name is not None and kind == "main":
                labels = [*labels, name]  # the spec's name for a tensor used further on
            if node.op == "dual" and dst == f"n{v}":
                # S and F each feed the residual half (+) and the dense half (‖).
                side = "w" if self.s.lr else "n"
                if index == 0:
                    self.edge(out, seen, src, f"{dst}:r:{side}", "shortcut", labels, shape, False)
                    self.edge(out, seen, src, f"{dst}:d:{side}", "dense_shortcut", [], "", False)
                else:
                    self.edge(out, seen, src, f"{dst}:r:{side}", "residual", [], shape)
                    self.edge(out, seen, src, f"{dst}:d:{side}", "dense", [], "")
                continue
            self.edge(out, seen, src, dst, kind, labels, shape)
        if self.failure is not None:
            self.error_edges(out, seen)
        else:
            # One box per output: `output` for a network's one output, `output NAME` for
            # each named one, in their order.
            for i, (name, nid) in enumerate(self.g.results()):
                src = self.rep[self.canonical(nid)]
                if src is None:
                    continue  # (a network that ends in folded copies ends at the first)
                dot_id = _output_id(i, name)
                label = "output" if name is None else f"output {name}"
                out.append(f"{dot_id} {_attrs({'label': label, 'shape': 'box', 'style': 'rounded', 'color': GREY, 'fontcolor': GREY})}")  # noqa: E501
                self.edge(out, seen, src, dot_id, "main", [], fmt_shape(self.g.node(nid).shape))
        return out

    def show_shape(self, src: str, u: int, dst: str, kind: str) -> bool:
        """Shapes go where they tell something: where an element changes the shape, and on
        edges that cross a cluster's border (a unit's input and output)."""
        shape = self.g.node(u).shape
        elem = self.elems[src]
        first = self.g.node(elem.nodes[0]) if elem.nodes else None
        changes = first is None or not first.inputs or \
            self.g.node(first.inputs[0]).shape != shape
        if kind in ("shortcut", "zeropad", "carry", "dense_shortcut", "gate", "transform"):
            # An identity shortcut repeats the shape of the main path beside it; a projection
            # shows what it makes.
            ctx = self.frame(self.ctx(u))
            return u in self.edge_op or (ctx is not None and ctx.kind == "clause" and changes)
        return changes or self.cluster_of.get(src) != self.cluster_of.get(dst)

    def walk(self, u: int) -> tuple[str | None, list[str], bool]:
        """The drawn source of an edge from `u`, through the ops drawn as edge labels."""
        labels: list[str] = []
        zeropad = False
        u = self.canonical(u)
        while u in self.edge_op:
            labels.insert(0, self.edge_op[u])
            zeropad = zeropad or self.g.node(u).op == "zeropad"
            u = self.canonical(self.g.node(u).inputs[0])
        if self.g.node(u).op == "zeropad":
            zeropad = True
        return self.rep[u], labels, zeropad

    def kind(self, v: int, index: int, dst: str) -> EdgeKind:
        node = self.g.node(v)
        if index > 0 and LOOKS[node.op].role == "layer":  # a tensor argument (`to = t`)
            return LOOKS[node.op].inputs(index, "")
        if dst != f"n{v}" or self.elems[dst].kind in ("chain", "box"):
            return "main"
        look = LOOKS[node.op]
        if self.is_gate_sigma(v):
            return "transform"
        join = self.named.get(v)
        if join is not None:  # drawn as its primitive: the shortcut dashed, or the bus
            if node.op == "concat":
                return "bus" if index == join.shortcut else "dense"
            return "shortcut" if index == join.shortcut else "main"
        ctx = self.frame(self.ctx(v))
        if look.role == "merge":
            if ctx is None:
                return "main"  # only a join of named tensors merges outside any primitive
            if node.op != "weighted_sum" and (ctx.output != v or ctx.id in self.branched):
                # A join of named tensors, or of a multi-branch `skip`/`concat`: no input is
                # a shortcut or the dense bus, all are main paths.
                return "main"
            return look.inputs(index, ctx.name)
        if ctx is not None and ctx.kind == "clause":
            return "transform" if ctx.name == "transform" else "shortcut"
        return "main"

    def edge(self, out: list[str], seen: set[tuple[str, str, str]], src: str, dst: str,
             kind: str, labels: list[str], shape: str, loose: bool = True) -> None:
        key = (src, dst, kind)
        if key in seen:
            return
        seen.add(key)
        style = EDGE_STYLES[kind]
        attrs: dict[str, str] = {}
        ops = " · ".join(labels) + (" (option A)" if kind == "zeropad" and labels else "")
        parts = [x for x in (style.label, ops) if x]
        if shape and self.s.shapes:
            parts.append(shape)
        if parts:
            attrs["label"] = "\n".join(parts)
        if style.color != EDGE_STYLES["main"].color:
            attrs["color"] = style.color
            if parts:
                attrs["fontcolor"] = style.color
        if style.style != "solid":
            attrs["style"] = style.style
        if style.penwidth != 1.0:
            attrs["penwidth"] = f"{style.penwidth:g}"
        if style.arrowhead != "normal":
            attrs["arrowhead"] = style.arrowhead
        if loose and kind in ("shortcut", "zeropad", "carry") and \
                self.elems[dst].kind in ("merge", "dual", "bus"):
            # The main path decides the ranks; a shortcut is drawn beside it.
            attrs["constraint"] = "false"
        out.append(f"{src} -> {dst}" + (f" {_attrs(attrs)}" if attrs else ""))
        self.links.append((src.split(":")[0], dst.split(":")[0],
                           attrs.get("constraint") != "false"))
        self.labelled = self.labelled or "label" in attrs

    def error_edges(self, out: list[str], seen: set[tuple[str, str, str]]) -> None:
        dangling = [nid for nid in range(self.n) if not self.users[nid]]
        for nid in dangling:
            src = self.rep[self.canonical(nid)]
            if src is not None:
                self.edge(out, seen, src, "error", "main", [],
                          fmt_shape(self.g.node(nid).shape))
        f = self.failed_frame
        while f is not None and f.kind != "primitive":
            f = self.frame(f.parent) if f.parent is not None else None
        if f is not None and f.name in ("skip", "weight", "gate", "dual", "concat", "scale"):
            src = self.rep[self.canonical(f.input)]
            if src is not None:
                self.edge(out, seen, src, "error", "shortcut", [],
                          fmt_shape(self.g.node(f.input).shape))

    # ------------------------------------------------------------------ the graph

    def draw(self, note: str) -> str:
        self.items(self.root)
        body = self.out
        edges = self.edges()
        total_params, total_macs = self.params[self.n], self.macs[self.n]
        input_shape = fmt_shape(self.g.node(0).shape) if self.n else ""
        stats = f"{total_params:,} parameters · {_count(total_macs)} MACs · input {input_shape}"
        if self.failure is not None:
            stats = f"drawn up to error[{self.failure.code}] · " + stats + " so far"
        rows = [f"<TR><TD COLSPAN=\"2\"><FONT POINT-SIZE=\"18\"><B>{_esc(self.g.name)}</B>"
                "</FONT></TD></TR>",
                f"<TR><TD COLSPAN=\"2\">{_esc(stats)}</TD></TR>"]
        if note:
            rows.append(f"<TR><TD COLSPAN=\"2\"><FONT COLOR=\"{GREY}\">{_esc(note)}</FONT>"
                        "</TD></TR>")
        rows += self.legend()
        label = ("<<TABLE BORDER=\"0\" CELLSPACING=\"2\" CELLPADDING=\"1\">"
                 + "".join(rows) + "</TABLE>>")
        rankdir = "LR" if self.s.lr else "TB"
        head = [
            f"digraph {_attr(self.g.name)} {{",
            f"  graph [label={label}, labelloc=\"t\", fontname=\"{FONT}\", fontsize=\"11\", "
            f"rankdir=\"{rankdir}\", newrank=\"true\", compound=\"true\", nodesep=\"0.25\", "
            f"ranksep=\"0.2\", margin=\"{MARGIN_IN:g}\"];",
            f"  node [fontname=\"{FONT}\", fontsize=\"11\", margin=\"0.12,0.04\", "
            "height=\"0.3\"];",
            f"  edge [fontname=\"{FONT}\", fontsize=\"9\", color=\"#444444\", "
            "fontcolor=\"#444444\", arrowsize=\"0.6\"];",
        ]
        return "\n".join([*head, *body, *("  " + e for e in edges), "}"]) + "\n"

    def size(self) -> Size:
        """The diagram's `Size`, after `draw`."""
        outputs = [_output_id(i, name) for i, (name, _) in enumerate(self.g.results())]
        names = [*self.elems, *outputs]
        index = {name: i for i, name in enumerate(names)}
        ends = [(index[u], index[v], constrains) for u, v, constrains in self.links]
        rank = _longest_path_ranks(len(names), [(u, v) for u, v, c in ends if c and u != v])
        # With labels on edges, `dot` puts each label on a rank of its own between its
        # edge's ends: every edge then crosses two ranks per step of the ranking.
        step = 2 if self.labelled else 1
        spans = [abs(rank[v] - rank[u]) for u, v, _ in ends]
        segments = sum(step * max(1, span) for span in spans)
        virtual = sum(step * (span - 1) for span in spans if span > 1)
        targets = {v for _, v, _ in ends}
        shown = [i for i in range(len(names)) if i < len(self.elems) or i in targets]
        drawn = len(shown)
        ranks = step * (max(rank, default=0) + 1)
        # How many nodes each rank holds: drawn, virtual, and `CLUSTER_WIDTH` for each
        # cluster that spans it.
        held = [0] * (ranks + 1)
        for i in shown:
            held[step * rank[i]] += 1
        passing = [0] * (ranks + 1)  # edges and clusters through each rank, as differences
        for u, v, _ in ends:
            low, high = sorted((step * rank[u], step * rank[v]))
            if high - low > 1:
                passing[low + 1] += 1
                passing[high] -= 1
        first = [ranks] * (self.clusters + 1)
        last = [-1] * (self.clusters + 1)
        for name, cluster in self.cluster_of.items():
            r = step * rank[index[name]]
            first[cluster], last[cluster] = min(first[cluster], r), max(last[cluster], r)
        for c in range(self.clusters, 0, -1):  # a cluster is numbered after its parent
            p = self.cluster_parent[c]
            first[p], last[p] = min(first[p], first[c]), max(last[p], last[c])
            if first[c] <= last[c]:
                passing[first[c]] += CLUSTER_WIDTH
                passing[last[c] + 1] -= CLUSTER_WIDTH
        pairs = widest = through = 0  # `through`: what passes through rank r
        for r in range(ranks):
            through += passing[r]
            width = held[r] + through
            pairs += width * (width - 1) // 2
            widest = max(widest, width)
        return Size(drawn, len(ends), self.clusters, ranks, virtual, widest,
                    drawn + segments + LONG_EDGE_WEIGHT * virtual, self.clusters * ranks,
                    pairs)

    def legend(self) -> list[str]:
        rows = []
        looks = {
            "skip": ("+", "#1f6fd1", "dashed: the shortcut (labelled when it projects; dotted "
                     "orange: zero-pad, option A)"),
            "weight": ("+", "#1f6fd1", "α is written on its edge"),
            "gate": ("σ", "#8e44ad", "T and 1−T on the edges into the +"),
            "concat": ("▬", EDGE_STYLES["bus"].color, "a bus: each layer's output joins it"),
            "group": ("Σ", "#8e44ad", "a double box: the layers of one branch"),
            "dual": ("+‖", "#1f6fd1", "blue: residual path (add), green: dense path (concat)"),
            "scale": ("×", "#c0392b", "dotted red: the attention path"),
        }
        named = {
            # Joins of named tensors that are residual (ir/joins.py), drawn as the primitive.
            "add": ("+", "#1f6fd1", "add(F(x), x)", "of named tensors: a residual join, as skip",
                    "dashed: x, the shortcut (the tensor the others are computed from)"),
            "cat": ("▬", EDGE_STYLES["bus"].color, "cat(x, F(x))",
                    "of named tensors: a dense join, as concat", "the bus: x"),
        }
        entries = [(looks[name], name, PRIMITIVES[name].summary) for name in PRIMITIVES
                   if name in self.used and name in looks]
        entries += [((symbol, color, how), written, what)
                    for name, (symbol, color, written, what, how) in named.items()
                    if name in self.used]
        for (symbol, color, how), name, summary in entries:
            rows.append(
                f"<TR><TD ALIGN=\"RIGHT\"><FONT COLOR=\"{color}\"><B>{_esc(symbol)}</B></FONT>"
                f"</TD><TD ALIGN=\"LEFT\"><B>{_esc(name)}</B> {_esc(summary)}"
                f"<BR ALIGN=\"LEFT\"/><FONT POINT-SIZE=\"9\" COLOR=\"{GREY}\">{_esc(how)}"
                "</FONT><BR ALIGN=\"LEFT\"/></TD></TR>")
        return rows


def generate(graph: Graph, settings: Settings | None = None, *, note: str = "",
             failure: Diagnostic | None = None) -> str:
    """The DOT text of `graph`'s diagram. `failure` is the error that stopped elaboration
    of a partial graph: it is drawn where elaboration stopped. `note` is a line under the
    title (the `-D` overrides)."""
    return _Drawer(graph, settings or Settings(), failure).draw(note)


def _longest_path_ranks(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Each of `n` nodes' rank on the longest-path ranking of `edges` (Kahn's order). A node
    left on a cycle, which `dot` breaks by reversing an edge, is ranked after its ranked
    predecessors; `generate`'s edges have none, as they follow the graph's."""
    succs: list[list[int]] = [[] for _ in range(n)]
    waiting = [0] * n
    for u, v in edges:
        succs[u].append(v)
        waiting[v] += 1
    rank = [0] * n
    ready = [i for i in range(n) if waiting[i] == 0]
    done = [False] * n
    next_left = 0
    while True:
        while ready:
            u = ready.pop()
            done[u] = True
            for v in succs[u]:
                rank[v] = max(rank[v], rank[u] + 1)
                waiting[v] -= 1
                if waiting[v] == 0:
                    ready.append(v)
        while next_left < n and done[next_left]:
            next_left += 1
        if next_left == n:
            return rank
        waiting[next_left] = 0
        ready.append(next_left)


def measure(graph: Graph, settings: Settings | None = None, *, note: str = "",
            failure: Diagnostic | None = None) -> tuple[str, Size]:
    """`generate`'s DOT text and its `Size`: what rendering it costs, known before it is
    rendered."""
    drawer = _Drawer(graph, settings or Settings(), failure)
    dot = drawer.draw(note)
    return dot, drawer.size()


def element_count(dot: str) -> int:
    """Nodes and edges in a DOT text `generate` wrote (one statement per line)."""
    return sum(1 for line in dot.splitlines()
               if line.startswith("  ") and not line.strip().endswith(("{", "}", ";")))


__all__ = ["DEPTHS", "Depth", "Settings", "Size", "element_count", "generate", "measure"]


def _output_id(i: int, name: str | None) -> str:
    """The DOT id of the network's `i`th output: `output` for its one unnamed output."""
    return "output" if name is None else f"output_{i}"
