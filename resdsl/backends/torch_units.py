"""The residual units of a network: the modules that `residual_units()` returns on every
generated network class, in forward order, for the wrapping policies of sharded and
checkpointed training (FSDP's `fully_shard` of each unit, then of the root).

A unit is the smallest module with a forward of its own that holds a whole residual
connection: the nodes of a connection primitive that merges the input it branched from
(`skip`, `weight`, `gate`, `dual`, `concat`) or those between an explicit `add`'s first
input and the add (ConvNeXt's `add(in, x)`). Units nested in another unit are left out (a
bottleneck's squeeze-and-excitation), so every parameter belongs to at most one unit; what
no unit holds (the stem, the head, a DenseNet transition) stays with the root. The list
follows the forward: a unit's output comes after the previous unit's.

Only modules with a forward of their own qualify: FSDP gathers a unit's parameters in a
hook on its call, so a plain container, whose children the parent calls one by one, would
run with its parameters still sharded.

Nothing here imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from resdsl.ir.graph import Graph

# The primitives whose output merges the tensor they branched from.
_MERGING = frozenset({"skip", "weight", "gate", "dual", "concat"})
# What the generated class holds the units' paths in, and the method that returns them.
PATHS_ATTRIBUTE = "residual_unit_paths"
METHOD = "residual_units"


def residual_units(graph: Graph, regions: Mapping[str, int]) -> list[str]:
    """The units' module paths in forward order. `regions`: each module path with a forward
    of its own (the root, "", aside) → the node that is its output."""
    found: set[str] = set()
    for start, end in _connections(graph):
        common = _common_prefix(graph.node(i).path for i in range(start, end))
        unit = _deepest_region(common, regions)
        if unit:
            found.add(unit)
    outermost = [u for u in found if not any(_inside(u, v) for v in found)]
    return sorted(outermost, key=lambda p: regions[p])


def _connections(graph: Graph) -> list[tuple[int, int]]:
    """Each residual connection as the range of nodes it spans, [start, end)."""
    spans = [(f.start, f.end) for f in graph.frames
             if f.kind == "primitive" and f.name in _MERGING and f.end is not None]
    spans += [(min(n.inputs) + 1, n.id + 1) for n in graph.nodes()
              if n.op == "add" and len(n.inputs) >= 2]
    return [(s, e) for s, e in spans if s < e]


def _common_prefix(paths: Iterable[str]) -> list[str]:
    """The longest module path that every path is or lies under, as its parts."""
    common: list[str] | None = None
    for path in paths:
        parts = path.split(".")
        if common is None:
            common = parts
            continue
        k = 0
        while k < min(len(common), len(parts)) and common[k] == parts[k]:
            k += 1
        del common[k:]
        if not common:
            break
    return common or []


def _deepest_region(parts: list[str], regions: Mapping[str, int]) -> str:
    """The deepest module with a forward of its own at or above `parts` ("" for none)."""
    for k in range(len(parts), 0, -1):
        path = ".".join(parts[:k])
        if path in regions:
            return path
    return ""


def _inside(path: str, other: str) -> bool:
    return path.startswith(other + ".")


def render(paths: list[str]) -> tuple[list[str], list[str]]:
    """The root class's lines (indented for a class body) that hold the units' paths, for
    the top of the class, and the method that returns the units, for after `forward`."""
    if paths:
        rows: list[str] = []
        for item in (f"{json.dumps(p)}," for p in paths):
            if rows and len(rows[-1]) + 1 + len(item) <= 84:
                rows[-1] += " " + item
            else:
                rows.append(item)
        held = [f"    {PATHS_ATTRIBUTE} = (", *(f"        {r}" for r in rows), "    )"]
    else:
        held = [f"    {PATHS_ATTRIBUTE}: tuple[str, ...] = ()"]
    attribute = [
        "    # The residual units, in forward order: the modules that each hold a whole",
        "    # residual connection (the outermost ones; the stem and the head are in none).",
        *held,
        "",
    ]
    method = [
        "",
        f"    def {METHOD}(self) -> list[nn.Module]:",
        '        """The residual units, in forward order: the units of a wrapping policy',
        '        (FSDP\'s `fully_shard` on each, then on the root)."""',
        f"        return [self.get_submodule(p) for p in self.{PATHS_ATTRIBUTE}]",
    ]
    return attribute, method
