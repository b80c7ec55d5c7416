"""The generated source's share of timm's protocol (no torch): which networks get it, the
root class's `timm_spec`, its `forward_head`, and the text of `TimmProtocol`
(`backends/torch_protocol.py`, below its marker line) that the file defines.

A network gets the protocol when `ir/protocol.protocol` finds its classifier head and the
generated root class can split its forward there: the root's forward items are the features'
then the head's (a region holds one or the other), each feature point is a module (a forward
hook sees its tensor), and no top-level module takes a name of the protocol's.
"""

from __future__ import annotations

import pprint
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resdsl.ir.graph import Graph, Node
from resdsl.ir.protocol import NoProtocol, Protocol, protocol

# Attributes and methods of TimmProtocol: a top-level module of one of these names would
# shadow it (or be shadowed).
NAMES = frozenset({
    "timm_spec", "num_classes", "num_features", "head_hidden_size", "pretrained_cfg",
    "default_cfg", "feature_info", "grad_checkpointing", "pool_type", "forward_features",
    "forward_head", "get_classifier", "reset_classifier", "forward_intermediates",
    "prune_intermediate_layers", "set_grad_checkpointing", "group_matcher",
})
# What the copied class needs beyond the generated file's own `import torch` / `from torch
# import nn`.
IMPORTS = ("import contextlib", "import functools", "import re",
           "from collections.abc import Iterator, Sequence", "from typing import Any, ClassVar")
TORCH_IMPORTS = ("from torch.utils.checkpoint import checkpoint",)


@dataclass(frozen=True)
class RootSplit:
    """The protocol of a network and how its root's forward splits: `head` the root's
    forward items that are the head's (node ids or region paths), `modules` each feature
    point's module path in the generated model."""

    proto: Protocol
    head_items: frozenset[str | int]
    modules: tuple[str, ...]


def split(graph: Graph, items: Sequence[tuple[str, Node]], module_of: Callable[[int, str],
          str | None], root_children: Sequence[str]) -> RootSplit | None:
    """The protocol and the root's split (see the module's docstring), or None when the
    network does not get it. `items` are the root's forward items, `module_of(node, path)`
    the module a feature point's tensor is the output of (None when it is none)."""
    try:
        proto = protocol(graph)
    except NoProtocol:
        return None
    if any(child.split(".", 1)[0] in NAMES for child in root_children):
        return None
    head = set(proto.head.nodes)
    head_items: set[str | int] = set()
    seen_head = False
    for kind, node in items:
        if kind == "node":
            in_head = node.id in head
            key: str | int = node.id
        else:
            members = {n.id for n in graph.nodes()
                       if n.path == kind or n.path.startswith(kind + ".")}
            in_head = bool(members & head)
            if in_head and not members <= head:
                return None  # a region holding both features and head
            key = kind
        if in_head:
            head_items.add(key)
            seen_head = True
        elif seen_head:
            return None  # a feature op after the head's first
    modules = []
    for point in proto.feature_info:
        module = module_of(point.node, point.module)
        if module is None:
            return None
        modules.append(module)
    return RootSplit(proto, frozenset(head_items), tuple(modules))


def timm_spec(root: RootSplit) -> dict[str, Any]:
    """The root class's `timm_spec` (plain values: a Python literal)."""
    p = root.proto
    info = [{"num_chs": f.num_chs, "reduction": f.reduction, "module": module, "index": f.index}
            for f, module in zip(p.feature_info, root.modules, strict=True)]
    cfg = p.pretrained_cfg()
    return {
        "num_classes": p.num_classes,
        "num_features": p.num_features,
        "head_hidden_size": p.head_hidden_size,
        "global_pool": p.global_pool,
        "classifier_kind": "conv" if p.classifier_conv else "linear",
        "pretrained_cfg": cfg,
        "feature_info": info,
        "groups_coarse": [list(g) for g in p.groups_coarse],
        "groups_fine": [list(g) for g in p.groups_fine],
        "prune_after": [list(g) for g in p.prune_after],
        "head_modules": list(p.head_modules),
    }


def spec_lines(root: RootSplit) -> list[str]:
    """`timm_spec = {...}`, the class attribute's lines (indented once), one key a line."""
    lines = ["    timm_spec: ClassVar[dict[str, Any]] = {"]
    for key, value in timm_spec(root).items():
        lead = f"        {key!r}: "
        text = pprint.pformat(value, width=92 - len(lead), sort_dicts=False, compact=True)
        rest = text.split("\n")
        lines.append(lead + rest[0])
        lines += [" " * len(lead) + r for r in rest[1:]]
        lines[-1] += ","
    return [*lines, "    }"]


def mixin_source() -> str:
    """TimmProtocol and its helpers, as the generated file defines them."""
    text = Path(__file__).with_name("torch_protocol.py").read_text(encoding="utf-8")
    marker = "# ---- copied into the generated source below this line ----\n"
    return text.split(marker, 1)[1].strip("\n")
