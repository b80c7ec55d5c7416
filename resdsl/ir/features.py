"""Backbone features: a classification network's feature points, and the network cut after
the chosen ones with each one an output (timm's `features_only=True, out_indices=...`).

**Reduction.** A tensor's reduction is its nominal stride: how many input pixels one of its
pixels steps over, the product of the strides on the way from the input (a conv's or pool's
`stride`, a pool's kernel when it has none; a transposed conv or `upsample` divides; `upsample
(to = t)` takes `t`'s): each op's own `Op.stride` in the op vocabulary. An op with several
inputs takes that of its first input that has one; any other op keeps its input's (a pad or a
crop moves the border, not the pitch). It is the stride timm's `feature_info` reports, and it
stays exact where sizes do not divide (Inception-ResNet-v2's unpadded convs take 299 to 147,
71, 35, 17 and 8 pixels: reductions 2, 4, 8, 16, 32). A tensor has one only as a feature map
C×H×W with the same whole stride on both axes; a global pool's output and what follows from
it have none, and so has what an op that moves values between positions gives (a reshape, a
permute, a matmul: attention's view of a map as a sequence, `Op.keeps_positions`), even when
it is 3-D: such a tensor's size says nothing about a stride, and it becomes a feature map
again only where it joins one (the block's residual add).

**Feature points.** The network is read as a list of *stages*, module-tree levels in order:
the network's top-level statements, where any one whose tensors span two or more changes of
reduction is replaced by its own children, until none does (DenseNet's `features` is opened
into `conv0`, `norm0`, `relu0`, `pool0`, `denseblock1`, `transition1`, ...; a ResNet's
`layer2` changes the reduction once, at its first block, and stays whole). The list ends at
the first stage without a reduction (the global pool) or with a smaller one than the stage
before (an upsampling: a decoder or a dense head). A feature point is the last stage of
each run of stages at one reduction, its output tensor: the tensor just before the spatial
size changes again. So a stage that begins by reducing (`layer2`, MobileNet's stride-2
block) counts at its new reduction, and one that ends by reducing (DenseNet's `transition1`:
norm, relu, conv, pool) leaves the point before it (`denseblock1`) to the old one. For
torchvision's ResNet-50: the stem's relu (64 channels, reduction 2), `layer1` (256, 4),
`layer2` (512, 8), `layer3` (1024, 16), `layer4` (2048, 32), timm's `feature_info`.

**Cut.** `cut` keeps what the chosen points are computed from, and nothing else: the nodes
after the last one (and their parameters) are dropped, so the state_dict is the prefix of the
full network's that the features need, and each point becomes an output named by its module
path. networkx is not needed: the graph's own queries are enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from resdsl.diagnostics import Span, SpecError, error
from resdsl.ir.graph import Frame, Graph, Node
from resdsl.ir.ops import OPS, Shape, fmt_shape

Stride = tuple[Fraction, Fraction]


@dataclass(frozen=True)
class FeatureInfo:
    """One feature point, as timm's `feature_info` describes it: `module` (its module path,
    the output's name), `num_chs` (channels) and `reduction` (the stride from the input);
    `index` is its position among the network's feature points (what `out_indices` selects),
    `shape` its C×H×W at the network's input size, `node` its node in the graph it was
    found in."""

    index: int
    module: str
    num_chs: int
    reduction: int
    shape: Shape
    node: int

    def as_dict(self) -> dict[str, int | str]:
        """timm's dict: `{"num_chs": ..., "reduction": ..., "module": ..., "index": ...}`."""
        return {"num_chs": self.num_chs, "reduction": self.reduction, "module": self.module,
                "index": self.index}


def strides(graph: Graph) -> list[Stride | None]:
    """Every node's nominal stride from the input (height, width); None where it is not a
    feature map, or follows from one without a stride (a global pool)."""
    out: list[Stride | None] = []
    for node in graph.nodes():
        out.append(_stride(node, graph, out))
    return out


_ONE = Fraction(1)


def _stride(node: Node, graph: Graph, known: list[Stride | None]) -> Stride | None:
    if len(node.shape) != 3:
        return None
    if node.op == "input":
        return (_ONE, _ONE)
    op = OPS[node.op]
    if not op.keeps_positions:
        return None
    if op.ends_feature_maps(tuple(graph.node(i).shape for i in node.inputs), node.args):
        return None
    sized = sorted(op.size_inputs(node.args))
    if sized:  # its size is that input's (`upsample(to = t)`): so is its stride
        return known[node.inputs[sized[0]]]
    given = [s for s in (known[i] for i in node.inputs) if s is not None]
    if not given:
        return None
    sh, sw = given[0]
    factor = op.stride(node.args)
    if factor is not None:
        return (sh * factor[0], sw * factor[1])
    return (sh, sw)


def reduction(stride: Stride | None) -> int | None:
    """The stride as timm's one integer: when both axes have the same whole one."""
    if stride is None or stride[0] != stride[1] or stride[0].denominator != 1:
        return None
    return int(stride[0])


@dataclass
class _Stage:
    """A level of the module tree and the node ids under it (in creation order)."""

    path: str
    nodes: list[int]


def children(path: str, nodes: list[int], graph: Graph) -> list[_Stage]:
    """The children of the level `path` (the root when empty) holding `nodes`: one per next
    path component, ordered by their first node."""
    prefix = f"{path}." if path else ""
    kids: dict[str, list[int]] = {}
    for nid in nodes:
        node = graph.node(nid)
        if node.op == "input" or not node.path.startswith(prefix):
            continue
        head = node.path[len(prefix):].split(".", 1)[0]
        kids.setdefault(prefix + head, []).append(nid)
    return [_Stage(p, ids) for p, ids in kids.items()]


def _changes(stage: _Stage, graph: Graph, reductions: list[int | None]) -> int:
    """How many times the reduction changes within `stage`: the distinct reductions of its
    nodes and of the tensors it reads from outside, less one."""
    inside = set(stage.nodes)
    seen = {reductions[nid] for nid in stage.nodes}
    for nid in stage.nodes:
        seen.update(reductions[u] for u in graph.node(nid).inputs if u not in inside)
    seen.discard(None)
    return max(0, len(seen) - 1)


def stages(graph: Graph, reductions: list[int | None]) -> list[_Stage]:
    """The network as a list of stages (see the module's docstring); `reductions` are its
    nodes'."""
    items = children("", list(range(len(graph))), graph)
    opened = True
    while opened:
        opened = False
        spread: list[_Stage] = []
        for stage in items:
            kids = children(stage.path, stage.nodes, graph)
            if kids and _changes(stage, graph, reductions) >= 2:
                spread.extend(kids)
                opened = True
            else:
                spread.append(stage)
        items = spread
    return items


def feature_points(graph: Graph) -> list[FeatureInfo]:
    """The network's feature points, in order: the last stage of each run of stages at one
    reduction, up to the first stage without one or with a smaller one."""
    reductions = [reduction(s) for s in strides(graph)]
    runs: list[tuple[_Stage, int]] = []
    for stage in stages(graph, reductions):
        last = max(stage.nodes)
        r = reductions[last]
        if r is None or (runs and r < runs[-1][1]):
            # The head (a global pool), or a decoder (the size grows again): a backbone's
            # features come before either.
            break
        if runs and runs[-1][1] == r:
            runs[-1] = (stage, r)
        else:
            runs.append((stage, r))
    points = []
    for index, (stage, r) in enumerate(runs):
        node = graph.node(max(stage.nodes))
        points.append(FeatureInfo(index, stage.path, node.shape[0], r, node.shape, node.id))
    return points


def no_features(graph: Graph, span: Span | None) -> SpecError:
    """E0740: the network has no feature map to take features from."""
    first = graph.node(0).shape if len(graph) else ()
    why = (f"its input is {fmt_shape(first)}, not a feature map C×H×W" if len(first) != 3
           else "no stage before its global pool keeps a whole stride")
    return SpecError([error(
        "E0740",
        f"network `{graph.name}` has no feature maps to take features from",
        span,
        "no feature maps",
        help="features are the stage outputs of a convolutional network (C×H×W tensors "
        "before its global pool); name the tensors to return with `output` statements "
        "instead",
        notes=(why,),
    )])


def cut(graph: Graph, chosen: Sequence[FeatureInfo]) -> tuple[Graph, list[FeatureInfo]]:
    """The network up to the chosen feature points, each an output named by its module path:
    only the nodes they are computed from, in their order. Returns the new graph and the
    points with their nodes in it."""
    keep: set[int] = set()
    for point in chosen:
        keep.add(point.node)
        keep |= graph.ancestors(point.node)
    new_id: dict[int, int] = {}
    # before[i]: how many kept nodes come before node i (frame ranges map through it).
    before = [0] * (len(graph) + 1)
    out = Graph(graph.name)
    for node in graph.nodes():
        before[node.id + 1] = before[node.id] + (node.id in keep)
        if node.id in keep:
            new_id[node.id] = out.add(node.op, node.args,
                                      tuple(new_id[u] for u in node.inputs), node.shape,
                                      node.path, node.span, node.init)
    # The levels that still hold a node: every prefix of a kept node's path.
    held: set[str] = set()
    for nid in keep:
        parts = graph.node(nid).path.split(".")
        held.update(".".join(parts[:k]) for k in range(1, len(parts)))
    for path, scope in graph.scopes.items():
        if path in held:
            out.add_scope(scope)
    out.frames = _frames(graph.frames, keep, new_id, before)
    out.tensor_names = {new_id[n]: name for n, name in graph.tensor_names.items()
                        if n in keep}
    points = [FeatureInfo(p.index, p.module, p.num_chs, p.reduction, p.shape, new_id[p.node])
              for p in chosen]
    out.outputs = {p.module: p.node for p in points}
    out.output = points[-1].node
    return out, points


def _frames(frames: list[Frame], keep: set[int], new_id: dict[int, int],
            before: list[int]) -> list[Frame]:
    """The frames that still hold something, their node ranges and ids renumbered; a frame
    cut short ends at its last kept node, which becomes its output."""
    kept: dict[int, int] = {}
    out: list[Frame] = []
    for f in frames:
        if f.input not in new_id:
            continue
        start = before[f.start]
        end = None if f.end is None else before[f.end]
        if f.output is not None and f.output in new_id:
            output: int | None = new_id[f.output]
        elif end is not None and end > start:
            output = end - 1
        else:
            continue
        parent = f.parent
        while parent is not None and parent not in kept:
            parent = frames[parent].parent
        fid = len(out)
        kept[f.id] = fid
        out.append(Frame(fid, None if parent is None else kept[parent], f.kind, f.name,
                         f.path, f.span, f.args, new_id[f.input], start, end, output))
    return out
