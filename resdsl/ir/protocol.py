"""What timm's model protocol needs to know about a classification network, read from its
graph (no torch): where its features end, its classifier head, its first conv, its feature
points and the values of timm's `pretrained_cfg`.

**Head.** The head is everything after the feature maps end. Walking back from the network's
one output, the head's nodes are those without a stride (`ir/features.strides`: a global
pool's output and what follows from it); the node before them, the last one with a stride, is
`forward_features`' output. So ConvNeXt's head is its global pool, its layer norm over the
pooled channels, its flatten and its `fc`, and no list of "pass-through" ops is needed: a norm
on a map (a ResNet-v2's final bn) has a stride and is a feature, the same norm after the pool
has none and is the head's. The head must be a chain (each node reads the one before it, the
first reads the features) that ends at the output or one flatten or reshape after its
*classifier*: its last node with weights, a `linear`, or a `conv` whose output is 1×1 (DPN's,
a ResNet-v2's). A network that returns several tensors or a map (a segmentation or detection
network) has no head, and no protocol: `protocol()` says why.

**Groups.** timm's layer-wise learning-rate decay orders the parameters by depth
(`group_matcher`): here the stem is the stages (`ir/features.stages`) up to the first feature
point, each later group the stages up to the next point (coarse) or each child of those stages
(fine: a ResNet's `layer1.0`, `layer1.1`, ...); the head is in none, and timm puts it last.

**Pre-logits.** timm's `forward_head(x, pre_logits=True)` returns the head's output before its
classifier, flattened: here the head's nodes before the classifier, then a flatten when they
leave a C×1×1 map.

**pretrained_cfg.** `input_size` is the spec's `input`, `pool_size` the features' H×W at that
size, `first_conv` the first conv's module path, `classifier` the classifier's; `mean`, `std`,
`crop_pct` and `interpolation` are the network's parameters of those names
(ir/preprocessing.py), or timm's defaults for ImageNet (IMAGENET_DEFAULT_MEAN / _STD, 0.875,
bilinear: `timm.models.resnet._cfg`); a caller overrides either
(`resdsl.timm.register(..., pretrained_cfg={...})`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resdsl.ir.features import FeatureInfo, children, feature_points, reduction, stages, strides
from resdsl.ir.graph import Graph, Node
from resdsl.ir.ops import OPS

# timm's defaults (timm/data/constants.py IMAGENET_DEFAULT_MEAN / _STD; timm/models/resnet.py
# `_cfg`: crop_pct 0.875, interpolation "bilinear").
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875
DEFAULT_INTERPOLATION = "bilinear"

# Ops that only reshape the classifier's output to a vector, after it.
_FLATTENS = frozenset({"flatten", "reshape"})
# Global pools timm names (`global_pool` of reset_classifier): the op and its timm name.
_POOLS = {"global_avgpool": "avg", "mean": "avg", "amax": "max", "avgpool": "avg",
          "maxpool": "max"}


@dataclass(frozen=True)
class Head:
    """The classifier head: `features` is the node `forward_features` returns, `nodes` the
    head's nodes in order (the chain from it to the output), `classifier` the final linear
    or 1×1 conv among them, `pool` the global pool (None when the head has none)."""

    features: int
    nodes: tuple[int, ...]
    classifier: int
    pool: int | None

    @property
    def pre_logits(self) -> tuple[int, ...]:
        """The head's nodes before the classifier."""
        return self.nodes[:self.nodes.index(self.classifier)]


@dataclass(frozen=True)
class Protocol:
    """Everything timm's protocol reads from the graph (see the module's docstring)."""

    head: Head
    num_classes: int
    num_features: int
    head_hidden_size: int
    first_conv: str
    classifier: str
    classifier_conv: bool
    global_pool: str
    input_size: tuple[int, int, int]
    pool_size: tuple[int, int]
    feature_info: tuple[FeatureInfo, ...]
    # group_matcher's groups of module paths: the stem, then each stage (coarse) or block.
    groups_coarse: tuple[tuple[str, ...], ...]
    groups_fine: tuple[tuple[str, ...], ...]
    # prune_after[k]: the outermost modules with weights that no feature point up to k needs.
    prune_after: tuple[tuple[str, ...], ...]
    # The head's weighted modules before the classifier (ConvNeXt's `head.norm`).
    head_modules: tuple[str, ...]
    mean: tuple[float, ...] = DEFAULT_MEAN
    std: tuple[float, ...] = DEFAULT_STD
    crop_pct: float = DEFAULT_CROP_PCT
    interpolation: str = DEFAULT_INTERPOLATION
    extra: dict[str, Any] = field(default_factory=dict)

    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's `pretrained_cfg` dict (the fields timm's `_cfg` sets)."""
        mean = self.mean if len(self.mean) == self.input_size[0] else (self.mean[0],) * \
            self.input_size[0]
        std = self.std if len(self.std) == self.input_size[0] else (self.std[0],) * \
            self.input_size[0]
        return {"num_classes": self.num_classes, "input_size": self.input_size,
                "pool_size": self.pool_size, "crop_pct": self.crop_pct,
                "interpolation": self.interpolation, "mean": mean, "std": std,
                "first_conv": self.first_conv, "classifier": self.classifier, **self.extra}


class NoProtocol(Exception):
    """The network has no classifier head for timm's protocol: the message says why."""


def find_head(graph: Graph) -> Head:
    """The classifier head (see the module's docstring); NoProtocol when there is none."""
    if graph.outputs:
        raise NoProtocol(f"`{graph.name}` returns {len(graph.outputs)} named tensors "
                         f"({', '.join(graph.outputs)}), not class scores")
    if graph.output is None or len(graph) < 2:
        raise NoProtocol(f"`{graph.name}` has no output")
    out = graph.node(graph.output)
    if len(out.shape) != 1:
        raise NoProtocol(f"`{graph.name}` returns a {'×'.join(map(str, out.shape))} tensor, "
                         "not a vector of class scores")
    known = strides(graph)
    chain: list[Node] = []
    node = out
    while known[node.id] is None:
        if len(node.inputs) != 1:
            raise NoProtocol(f"its head's `{node.op}` ({node.path}) reads {len(node.inputs)} "
                             "tensors: a head is a chain from the last feature map")
        chain.append(node)
        node = graph.node(node.inputs[0])
        if node.op == "input":
            raise NoProtocol(f"`{graph.name}` has no feature map before its head")
    chain.reverse()
    inside = {n.id for n in chain}
    for n in graph.nodes():  # nothing outside the head may read inside it
        if n.id not in inside and any(i in inside for i in n.inputs):
            raise NoProtocol(f"`{n.path}` reads the head's tensors")
    classifier = _classifier(chain)
    pools = [n.id for n in chain if n.op in _POOLS and n.shape[1:] == (1, 1)]
    return Head(node.id, tuple(n.id for n in chain), classifier.id,
                pools[0] if pools else None)


def _classifier(chain: list[Node]) -> Node:
    tail = list(chain)
    while tail and tail[-1].op in _FLATTENS:
        tail.pop()
    if not tail or not ((tail[-1].op == "linear" and len(tail[-1].shape) == 1)
                        or (tail[-1].op == "conv" and tail[-1].shape[1:] == (1, 1))):
        last = tail[-1] if tail else chain[-1]
        raise NoProtocol(f"its head ends in `{last.op}` ({last.path}), not a linear or 1×1 "
                         "conv classifier")
    return tail[-1]


def protocol(graph: Graph) -> Protocol:
    """timm's protocol values of `graph`; NoProtocol when it is no classifier."""
    head = find_head(graph)
    features = graph.node(head.features)
    first = next((n for n in graph.nodes() if n.op == "conv"), None)
    if first is None or len(features.shape) != 3:
        raise NoProtocol(f"`{graph.name}` has no conv")
    classifier = graph.node(head.classifier)
    pre = [graph.node(i) for i in head.pre_logits]
    width = pre[-1].shape[0] if pre else features.shape[0]
    pool = graph.node(head.pool) if head.pool is not None else None
    points = tuple(feature_points(graph))
    if not points:
        raise NoProtocol(f"`{graph.name}` has no feature points")
    coarse, fine = _groups(graph, points, set(head.nodes))
    if not coarse:
        raise NoProtocol(f"`{graph.name}` has no weights before its head")
    c, h, w = graph.node(0).shape
    return Protocol(
        head=head,
        num_classes=classifier.shape[0],
        num_features=features.shape[0],
        head_hidden_size=width,
        first_conv=first.path,
        classifier=classifier.path,
        classifier_conv=classifier.op == "conv",
        global_pool=_POOLS[pool.op] if pool is not None else "",
        input_size=(c, h, w),
        pool_size=(features.shape[1], features.shape[2]),
        feature_info=points,
        groups_coarse=coarse,
        groups_fine=fine,
        prune_after=tuple(_prunable(graph, p, set(head.nodes)) for p in points),
        head_modules=tuple(graph.node(n).path for n in head.pre_logits if _has_state(graph, n)),
        **graph.preprocessing,  # type: ignore[arg-type]
    )


def _has_state(graph: Graph, nid: int) -> bool:
    """Whether the node holds weights (a module or a parameter at its path)."""
    node = graph.node(nid)
    ins = tuple(graph.node(i).shape for i in node.inputs)
    return bool(OPS[node.op].state(ins, node.args, node.shape))


def _weighted(graph: Graph, nodes: list[int]) -> bool:
    return any(_has_state(graph, n) for n in nodes)


def _groups(graph: Graph, points: tuple[FeatureInfo, ...], head: set[int]
            ) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]:
    """group_matcher's groups (see the module's docstring): coarse, fine."""
    ends = {p.module: p.index for p in points}
    runs: list[list[tuple[str, list[int]]]] = [[]]
    for stage in stages(graph, [reduction(s) for s in strides(graph)]):
        kept = [n for n in stage.nodes if n not in head]
        if not kept:
            continue
        runs[-1].append((stage.path, kept))
        if stage.path in ends and ends[stage.path] < len(points) - 1:
            runs.append([])
    coarse: list[tuple[str, ...]] = []
    fine: list[tuple[str, ...]] = []
    for k, run in enumerate(runs):
        weighted = [(path, nodes) for path, nodes in run if _weighted(graph, nodes)]
        if not weighted:
            continue
        coarse.append(tuple(path for path, _ in weighted))
        if k == 0:  # the stem is one group, as timm's
            fine.append(coarse[-1])
            continue
        for path, nodes in weighted:
            fine.extend(_blocks(graph, path, nodes, 1))
    return tuple(coarse), tuple(fine)


def _weighted_children(graph: Graph, path: str, nodes: list[int]) -> list[tuple[str, list[int]]]:
    return [(k.path, k.nodes) for k in children(path, nodes, graph) if _weighted(graph, k.nodes)]


def _numbered(graph: Graph, kids: list[tuple[str, list[int]]]) -> bool:
    """Whether `kids` are a list of blocks: two or more, each more than one layer, named with
    a number at the end (`layer1.0`, `denselayer1`)."""
    return len(kids) > 1 and all(path[-1].isdigit() and children(path, nodes, graph)
                                 for path, nodes in kids)


def _blocks(graph: Graph, path: str, nodes: list[int], depth: int) -> list[tuple[str, ...]]:
    """A stage's blocks, fine groups: its numbered children (a ResNet's `layer1.0`, ...),
    or `depth` levels down (ConvNeXt's `stages.1.blocks.0`, beside `stages.1.downsample`),
    else the stage whole."""
    kids = _weighted_children(graph, path, nodes)
    if _numbered(graph, kids):
        return [(kid,) for kid, _ in kids]
    if depth and any(_numbered(graph, _weighted_children(graph, kid, kn)) for kid, kn in kids):
        return [b for kid, kn in kids for b in _blocks(graph, kid, kn, depth - 1)]
    return [(path,)]


def _prunable(graph: Graph, point: FeatureInfo, head: set[int]) -> tuple[str, ...]:
    """The outermost module paths whose weights the point does not need (the head aside)."""
    needed = graph.ancestors(point.node) | {point.node}
    held: set[str] = set()
    for nid in needed:
        parts = graph.node(nid).path.split(".")
        held.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    out: list[str] = []
    for node in graph.nodes():
        if node.id in needed or node.id in head or not _has_state(graph, node.id):
            continue
        parts = node.path.split(".")
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            if prefix not in held:
                if prefix not in out and not any(prefix.startswith(o + ".") for o in out):
                    out.append(prefix)
                break
    return tuple(out)

