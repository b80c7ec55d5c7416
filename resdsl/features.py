"""Backbone features from any spec (timm's `features_only=True, out_indices=...`): which of
the network's feature points to return, checked against them, and the network cut after
them (`ir/features.py` finds the points and cuts the graph).

`Network.features(out_indices)` and the command line's `--features [INDICES]` both come
here, with the same rules: indices count from 0 over the feature points, negative ones from
the last (-1: the deepest), each at most once (E0741 out of range, E0742 twice); a network
without a feature map has no points (E0740). The outputs come in the network's order, as
timm's do, whatever the order of the indices.
"""

from __future__ import annotations

from collections.abc import Sequence

from resdsl.arguments import PYTHON, ArgumentError, Spelling
from resdsl.diagnostics import Span
from resdsl.ir.features import FeatureInfo, cut, feature_points, no_features
from resdsl.ir.graph import Graph


def select(points: Sequence[FeatureInfo], out_indices: tuple[int, ...] | None,
           network: str, spelling: Spelling = PYTHON) -> list[FeatureInfo]:
    """The points `out_indices` names (all when None), in the network's order."""
    if out_indices is None:
        return list(points)
    n = len(points)
    given = spelling.given("out_indices",
                           ",".join(map(str, out_indices)) if not spelling.python
                           else out_indices)
    listed = ", ".join(f"{p.index}: `{p.module}` ({p.num_chs} channels, reduction "
                       f"{p.reduction})" for p in points)
    chosen: dict[int, int] = {}
    for i in out_indices:
        if not -n <= i < n:
            raise ArgumentError(
                f"{given}: index {i} is out of range: `{network}` has {n} feature point"
                f"{'s' if n != 1 else ''}, indices 0 to {n - 1} (or {-n} to -1 from the last)",
                "out_indices", out_indices, code="E0741",
                help=f"its feature points are {listed}")
        k = i % n
        if k in chosen:
            raise ArgumentError(
                f"{given}: {chosen[k]} and {i} both name feature point {k} "
                f"(`{points[k].module}`)", "out_indices", out_indices, code="E0742",
                help="name each feature point once")
        chosen[k] = i
    return [points[k] for k in sorted(chosen)]


def features(graph: Graph, out_indices: tuple[int, ...] | None, span: Span | None,
             spelling: Spelling = PYTHON) -> tuple[Graph, list[FeatureInfo]]:
    """The features network of `graph`: cut after the chosen points, each an output named by
    its module path; and the points, with their nodes in the new graph. `span` is where the
    network is defined (E0740 points there)."""
    points = feature_points(graph)
    if not points:
        raise no_features(graph, span)
    return cut(graph, select(points, out_indices, graph.name, spelling))
