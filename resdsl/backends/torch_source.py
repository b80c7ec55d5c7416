"""Graph → standalone PyTorch source: an `nn.Module` tree named by the spec, with a generated
forward. The same source is what `resdsl compile --to python` writes and what
`to_torch()` executes, so the two cannot drift apart.

How the graph becomes classes:
- every stateful node (conv, bn, linear) is a leaf module at its path; `alpha` and a
  multi-branch `weight` are bare `nn.Parameter`s on their parent module;
- every proper prefix of those paths is a module. A prefix whose nodes form a
  single-entry, single-exit region (a block call, a sequence, a repeat) gets a forward of its
  own and is called like a function, as torchvision's blocks are; any other prefix is a plain
  container;
- where a region's forward is a *chain* (each step a child module applied to the step
  before's output, as in torchvision's ResNet: conv1, bn1, relu, maxpool, layer1, ...), its
  stateless ops are modules too (`self.relu = nn.ReLU(inplace=True)`), registered in the
  order the forward calls them, so that torchvision's IntermediateLayerGetter, which runs a
  module's children in order and nothing else, computes the forward's own tensors. The
  root's leading chain is made so even when the rest of its forward is not a chain, and its
  docstring then says up to which child the wrapper is right. A chain of children numbered
  0, 1, ... becomes an `nn.Sequential`. Stateless modules hold no state, so the state_dict
  (keys and order) is the same either way;
- structurally identical regions share one class; the numbers that differ between them
  (channels, strides, slice bounds) become its constructor parameters.

Variables are reused once their value is dead and activations (ReLU, ReLU6, Hardswish,
LeakyReLU), residual adds and constant scales run in place when that is safe, so peak memory
matches hand-written code. A function the forward calls (`drop_path`) is defined once at the
top of the file, which needs nothing but PyTorch.

Nothing here imports torch: the source can be generated on a machine without it.
"""

from __future__ import annotations

import json
import keyword
import re
import string
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from resdsl import __version__
from resdsl.backends import torch_ctor, torch_units
from resdsl.backends import torch_protocol_source as timm_protocol
from resdsl.backends.torch_lowering import HELPER_NAMES, LOWERINGS, Code, Ctx, HoleValue, lit
from resdsl.ir.graph import Graph, Node
from resdsl.ir.ops import OPS, Shape, State, fmt_shape
from resdsl.ir.primitives import PRIMITIVES
from resdsl.passes.counts import totals
from resdsl.passes.names import RESERVED

_CHANNEL_HINTS = ("in_channels", "num_features", "in_features")
_CHANNEL_KEYS = (*_CHANNEL_HINTS, "out_channels", "out_features")
# Scope kinds that do not name a class: such a region's class is named after its path
# (`layer1.0` → `Layer1Item`, a level of dotted names `fuse_layers.0` → `FuseLayersItem`).
_FIXED_KINDS = frozenset({"sequence", "iteration", "list", *PRIMITIVES})


@dataclass(frozen=True)
class Generated:
    source: str
    class_name: str
    # What the root class's constructor takes besides the spec's modules (num_classes,
    # in_chans: backends/torch_ctor.py).
    arguments: torch_ctor.Arguments = torch_ctor.NONE


@dataclass
class _Region:
    """A module path whose nodes have one input and one output: it gets a forward."""

    path: str
    entry: int
    exit: int
    sequential: bool = False


@dataclass
class _Line:
    """One line of generated code: text with `{h0}`, `{h1}`... holes, their values and the
    names the holes would take as constructor parameters."""

    text: str
    values: list[HoleValue] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)


@dataclass
class _Draft:
    """One region's class body before classes are shared."""

    region: _Region
    kind: str
    init: list[_Line]
    forward: list[_Line]
    entry_channels: int

    def signature(self) -> tuple[object, ...]:
        return (self.kind, tuple(ln.text for ln in self.init),
                tuple(ln.text for ln in self.forward))

    def values(self) -> list[HoleValue]:
        return [v for ln in self.init + self.forward for v in ln.values]

    def hints(self) -> list[str]:
        return [h for ln in self.init + self.forward for h in ln.hints]


@dataclass
class _Class:
    name: str
    drafts: list[_Draft]
    # Per hole position: the constructor parameter it reads, or None for a constant.
    params: list[str | None]
    param_names: list[str]
    forward_params: set[str]

    def ctor(self, draft: _Draft) -> _Line:
        """`Bottleneck(in_channels=64, ...)` for one of its regions, as a line of holes."""
        values = draft.values()
        first: dict[str, HoleValue] = {}
        for name, value in zip(self.params, values, strict=True):
            if name is not None and name not in first:
                first[name] = value
        if not self.param_names:
            return _Line(f"{self.name}()")
        args = ", ".join(f"{n}={{h{i}}}" for i, n in enumerate(self.param_names))
        return _Line(f"{self.name}({args})", [first[n] for n in self.param_names],
                     list(self.param_names))


class _Generator:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes = list(graph.nodes())
        self.uses: dict[int, int] = defaultdict(int)
        self.user_nodes: dict[int, set[int]] = defaultdict(set)
        for node in self.nodes:
            for i in node.inputs:
                self.uses[i] += 1
                self.user_nodes[i].add(node.id)
        self.state: dict[int, tuple[State, ...]] = {}
        for node in self.nodes:
            st = OPS[node.op].state(self._ins(node), node.args, node.shape)
            if st:
                self.state[node.id] = st
        self.modules, self.children = self._module_tree()
        self.leaf_by_path = {self.graph.node(n).path: self.graph.node(n) for n in self.state}
        self.regions = self._find_regions()
        self.owner = {n.id: self._owner(n) for n in self.nodes}
        self.items = self._items()
        # The stateless nodes that are modules (in a chain, see the docstring): their paths.
        self.stateless: dict[int, str] = {}
        # The root's leading chain: the last child module in it (None when there is none),
        # and what ends it (None when the whole forward is a chain).
        self.root_chain_last: str | None = None
        self.root_chain_break: str | None = None
        # The regions whose forward is their children called in order (an nn.Sequential or
        # a class): a checkpointed stage runs them one by one.
        self.chains: set[str] = set()
        for region in list(self.regions.values()):
            self._make_chain(region)
        self.classes: list[_Class] = []
        # Names the file defines besides its classes (`F`, the helpers' FrozenBatchNorm2d).
        self.class_names: set[str] = {"F", *HELPER_NAMES}
        # The root class's constructor arguments, once it is rendered.
        self.arguments = torch_ctor.NONE
        # timm's protocol (a classifier's root class splits its forward into
        # forward_features and forward_head; `backends/torch_protocol_source.py`).
        self.timm = timm_protocol.split(graph, self.items[""], self._point_module,
                                        self.children.get("", []), self.chains)
        if self.timm is not None:
            self.class_names.add("TimmProtocol")

    # ------------------------------------------------------------------ structure

    def _point_module(self, nid: int, path: str) -> str | None:
        """The module whose output is node `nid`, the last of the module-tree level `path`
        (a feature point): the level's own module, or the stateless module the node is."""
        if path in self.regions and self.regions[path].exit == nid:
            return path
        if nid in self.stateless:
            return self.stateless[nid]
        leaf = self.leaf_by_path.get(path)
        return path if leaf is not None and leaf.id == nid else None

    def _ins(self, node: Node) -> tuple[Shape, ...]:
        return tuple(self.graph.node(i).shape for i in node.inputs)

    def _module_tree(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Module paths → "leaf" | "param" | "container", and each module's children in
        order of first appearance."""
        modules: dict[str, str] = {"": "container"}
        children: dict[str, list[str]] = defaultdict(list)
        for nid, states in self.state.items():
            path = self.graph.node(nid).path
            modules[path] = "param" if states[0].name == "" else "leaf"
            parts = path.split(".")
            for k in range(len(parts)):
                prefix, child = ".".join(parts[:k]), ".".join(parts[: k + 1])
                if child not in children[prefix]:
                    children[prefix].append(child)
                if k + 1 < len(parts):
                    modules.setdefault(child, "container")
        return modules, children

    def _find_regions(self) -> dict[str, _Region]:
        members: dict[str, list[int]] = defaultdict(list)
        containers = {p for p, k in self.modules.items() if k == "container" and p}
        for node in self.nodes:
            for prefix in _prefixes(node.path):
                if prefix in containers:
                    members[prefix].append(node.id)
        out = self.graph.output
        # Every output leaves its region: a region holding one beside its exit is no class.
        results = {nid for _, nid in self.graph.results()}
        regions = {"": _Region("", 0, out if out is not None else 0)}
        for path, ids in members.items():
            inside = set(ids)
            entries = {i for nid in ids for i in self.graph.node(nid).inputs if i not in inside}
            exits = [nid for nid in ids
                     if nid in results or any(u not in inside for u in self.user_nodes[nid])]
            if len(entries) == 1 and len(exits) == 1:
                regions[path] = _Region(path, entries.pop(), exits[0])
        return regions

    def _owner(self, node: Node) -> str:
        """The deepest region strictly above the node."""
        for prefix in reversed(_prefixes(node.path)):
            if prefix in self.regions:
                return prefix
        return ""

    def _items(self) -> dict[str, list[tuple[str, Node]]]:
        """Each region's forward items in graph order: its own nodes ("node") and the calls
        of the regions directly below it (by path, placed at their first node)."""
        items: dict[str, list[tuple[str, Node]]] = defaultdict(list)
        placed: set[str] = set()
        for node in self.nodes:
            if node.op == "input":
                continue
            owner = self.owner[node.id]
            items[owner].append(("node", node))
            below = owner
            chain = ["", *_prefixes(owner)] if owner else []
            for prefix in reversed(chain):
                if prefix not in self.regions:
                    continue
                if below in placed:
                    break
                placed.add(below)
                items[prefix].append((below, self.graph.node(self.regions[below].exit)))
                below = prefix
        return items

    def _inplace(self, region: _Region, node: Node) -> bool:
        """Whether the node overwrites its first input in the forward of `region`: when the
        op can, the input is read by nothing else, it is not the region's input (the
        caller's tensor) nor a named output, and autograd does not need it."""
        lowering = LOWERINGS[node.op]
        if not node.inputs or not lowering.inplace or lowering.alias(node):
            return False
        first = node.inputs[0]
        # A named output is returned as it is: never overwritten by the op after it.
        return (self.uses[first] == 1 and first != region.entry
                and first not in self.graph.outputs.values()
                and self._overwritable(self.graph.node(first)))

    def _module_code(self, node: Node, region: _Region) -> Code | None:
        """The nn module of a stateless node in `region`'s forward, if PyTorch has one."""
        return LOWERINGS[node.op].module(
            Ctx(node, self._ins(node), ("x",) * len(node.inputs), "self",
                self._inplace(region, node)))

    def _plain_call(self, node: Node) -> bool:
        """Whether a stateful leaf's forward is a call of its module alone (`out = m(x)`): a
        linear or layer norm on an axis other than the last moves that axis last and back
        around the call (ConvNeXt's LayerNorm2d), which an nn.Sequential child cannot."""
        ctx = Ctx(node, self._ins(node), ("x",) * len(node.inputs), "m", False)
        return LOWERINGS[node.op].emit(ctx).forward.text == "{out} = m(x)"

    def _chain(self, region: _Region) -> tuple[list[tuple[str, Node]], str | None]:
        """The region's leading chain: its items that are (or become) child modules, in
        order (`(path, node)` for a child module, `("node", node)` for a stateless op that
        becomes one), and what ends the chain (None when the whole forward is one). A chain
        is what IntermediateLayerGetter runs: each item reads the one output of the item
        before it (the first, the region's input) and is a child module called in the order
        the children are registered (a stateful leaf or a region), a stateless op with an nn
        module form, or an alias (which runs nothing)."""
        kids = self.children.get(region.path, [])
        prev, called = region.entry, 0
        modules: list[tuple[str, Node]] = []
        for kind, node in self.items[region.path]:
            ins: tuple[int, ...]
            if kind != "node":
                ins, out, path = (self.regions[kind].entry,), self.regions[kind].exit, kind
            else:
                ins, out = node.inputs, node.id
                path = node.path if node.id in self.state else ""
            rel = self._rel(region.path, path or node.path)
            if kind != "node":
                what = f"`{rel}`"
            elif _is_attribute(rel) or (path and "." in rel):
                what = f"`{rel}` ({node.op})"
            else:
                what = f"an unnamed `{node.op}`"
            if len(ins) > 1:
                return modules, f"{what} reads {len(ins)} tensors"
            if ins != (prev,):
                return modules, f"{what} reads an earlier tensor than the one before it"
            if path:
                if self.modules[path] != "leaf" and path not in self.regions:
                    return modules, f"{what} is a parameter"
                if self.modules[path] == "leaf" and not self._plain_call(node):
                    return modules, f"{what} moves an axis around its module's call"
                if called >= len(kids) or kids[called] != path:
                    holder = rel.split(".", 1)[0]
                    if "." in rel and holder in kids:
                        # A level whose tensors are read outside it (`backbone.c3`) is a
                        # plain holder of modules: the root runs its layers one by one.
                        return modules, (f"{what} runs inside `{holder}`, a holder of modules "
                                         f"without a forward of its own (its tensors are read "
                                         f"from outside it)")
                    return modules, f"{what} is not the next child registered"
                modules.append((path, node))
                called += 1
            elif not LOWERINGS[node.op].alias(node):
                if self._module_code(node, region) is None:
                    return modules, f"{what} has no nn module"
                modules.append(("node", node))
            prev = out
        return modules, None

    def _make_chain(self, region: _Region) -> None:
        """Make the stateless ops of the region's chain modules, registered in the order
        the forward calls them: the root's leading chain (the children a wrapper can reach
        rightly), any other region's when its whole forward is one. Each takes its
        statement's name (`maxpool`), else its op's (`relu`, `relu2` when taken), or its
        position where every child is numbered (an nn.Sequential)."""
        modules, end = self._chain(region)
        kids = self.children.get(region.path, [])
        called = sum(1 for kind, _ in modules if kind != "node")
        whole = end is None and called == len(kids)
        if whole and region.path:  # its forward runs its children in order, nothing else
            self.chains.add(region.path)
        if region.path and not whole:
            return
        rel = {node.id: self._rel(region.path, node.path)
               for kind, node in modules if kind == "node"}
        numbered = bool(region.path) and bool(modules) and all(
            (rel[node.id] if kind == "node" else kind.rsplit(".", 1)[-1]) == str(i)
            for i, (kind, node) in enumerate(modules))
        names = self._stateless_names(region, modules, rel, numbered)
        order: list[str] = []
        for kind, node in modules:
            if kind == "node":
                path = f"{region.path}.{names[node.id]}" if region.path else names[node.id]
                self.stateless[node.id] = path
                self.modules[path] = "leaf"
                self.leaf_by_path[path] = node
                order.append(path)
            else:
                order.append(kind)
        self.children[region.path] = order + kids[called:]
        region.sequential = numbered and whole
        if not region.path:
            self.root_chain_last = order[-1] if order else None
            self.root_chain_break = None if whole else end or "not every child is called in it"

    @staticmethod
    def _rel(region: str, path: str) -> str:
        return path[len(region) + 1:] if region else path

    def _stateless_names(self, region: _Region, modules: list[tuple[str, Node]],
                         rel: dict[int, str], numbered: bool) -> dict[int, str]:
        """The names of the region's stateless modules: named statements first, so that an
        op's name (`relu`) never takes a statement's; a number where all are numbered. A
        repeated op's name is numbered as classes are (`relu`, `relu2`): never `relu_1`,
        which torchvision's create_feature_extractor takes for a second call of `relu` and
        renames (its node names strip a `_<number>` ending and renumber)."""
        taken = set(RESERVED) | {k.rsplit(".", 1)[-1] for k in self.children.get(region.path, [])}
        names: dict[int, str] = {}
        stateless = [node for kind, node in modules if kind == "node"]
        for node in stateless:
            if (numbered or _is_attribute(rel[node.id])) and rel[node.id] not in taken:
                names[node.id] = rel[node.id]
                taken.add(rel[node.id])
        for node in stateless:
            if node.id not in names:
                name, k = node.op, 2
                while name in taken:
                    name, k = f"{node.op}{k}", k + 1
                names[node.id] = name
                taken.add(name)
        return names

    # ------------------------------------------------------------------ emission

    def generate(self) -> Generated:
        # Deepest regions first: a class's children are named before the class.
        order = sorted((p for p in self.regions if p), key=lambda p: -p.count("."))
        ctor: dict[str, _Line] = {}
        for depth in sorted({p.count(".") for p in order}, reverse=True):
            level = [p for p in order if p.count(".") == depth]
            level_drafts: list[_Draft] = []
            for path in level:
                region = self.regions[path]
                if region.sequential:
                    continue
                level_drafts.append(self._draft(region, ctor))
            self._share(level_drafts, ctor)
            for path in level:
                region = self.regions[path]
                if region.sequential:
                    ctor[path] = self._sequential(region, ctor)
        root = self._draft(self.regions[""], ctor)
        root_name = self._class_name(_camel(self.graph.name) or "Network")
        root_class = _Class(root_name, [root], [None] * len(root.values()), [], set())
        self.classes.append(root_class)
        source = self._render()
        return Generated(source, root_name, self.arguments)

    def _draft(self, region: _Region, ctor: dict[str, _Line]) -> _Draft:
        init: list[_Line] = []
        self._init_lines(region.path, region.path, init, ctor)
        forward = self._forward(region)
        scope = self.graph.scopes.get(region.path)
        kind = scope.kind if scope else "network"
        entry_c = self.graph.node(region.entry).shape[0]
        return _Draft(region, kind, init, forward, entry_c)

    def _ref(self, region: str, path: str) -> str:
        """The expression for module `path` in the class of `region` (`self.layer1[0].conv1`),
        the one way every module is referred to, in `__init__` and in `forward`: a child of
        an nn.Sequential or an nn.ModuleList is indexed, a name that is not an identifier
        (`0`, a keyword) is read with `getattr`, any other is an attribute."""
        expr, parent = "self", region
        rel = path[len(region) + 1:] if region else path
        for part in rel.split(".") if rel else ():
            child = f"{parent}.{part}" if parent else part
            if parent != region and (
                (parent in self.regions and self.regions[parent].sequential)
                or self._is_list(parent)
            ):
                expr = f"{expr}[{part}]"
            elif _is_attribute(part):
                expr = f"{expr}.{part}"
            else:
                expr = f'getattr({expr}, "{part}")'
            parent = child
        return expr

    def _register(self, region: str, path: str, value: str) -> str:
        """The `__init__` line that makes `value` the module (or parameter) `path` of its
        parent, the parent referred to by `_ref`."""
        parent, _, name = path.rpartition(".")
        owner = self._ref(region, parent)
        if _is_attribute(name):
            return f"{owner}.{name} = {value}"
        method = "register_parameter" if self.modules[path] == "param" else "add_module"
        return f'{owner}.{method}("{name}", {value})'

    def _init_lines(self, region: str, path: str, out: list[_Line],
                    ctor: dict[str, _Line]) -> None:
        """The `__init__` lines of `region`'s class that build the children of `path` (the
        region itself, or a plain container inside it), depth first, in the modules' order."""
        for kid in self.children.get(path, []):
            name = kid.rsplit(".", 1)[-1]
            kind = self.modules[kid]
            if kind in ("leaf", "param"):
                line = self._leaf_ctor(kid)
            elif kid in self.regions:
                line = ctor[kid]
            elif self._is_list(kid):
                line = self._module_list(kid, ctor)
            else:
                line = _Line("nn.Module()")
            hint = name if name.isidentifier() else f"m{name}"
            out.append(_Line(self._register(region, kid, line.text), list(line.values),
                             [_join(hint, h) for h in line.hints]))
            if kind == "container" and kid not in self.regions and not self._is_list(kid):
                self._init_lines(region, kid, out, ctor)

    def _is_list(self, path: str) -> bool:
        """A plain container whose children are modules numbered 0, 1, ...: an nn.ModuleList,
        as timm's `convs` and `bns` of Res2Net are (a dotted name `convs.{i}` makes one)."""
        if not path or self.modules.get(path) != "container" or path in self.regions:
            return False
        kids = self.children.get(path, [])
        return bool(kids) and all(
            k.rsplit(".", 1)[-1] == str(i)
            and (self.modules[k] == "leaf" or k in self.regions)
            for i, k in enumerate(kids)
        )

    def _module_list(self, path: str, ctor: dict[str, _Line]) -> _Line:
        parts: list[str] = []
        values: list[HoleValue] = []
        hints: list[str] = []
        for kid in self.children[path]:
            line = self._leaf_ctor(kid) if self.modules[kid] == "leaf" else ctor[kid]
            parts.append(_shift(line.text, len(values)))
            values += line.values
            hints += [_join(f"m{kid.rsplit('.', 1)[-1]}", h) for h in line.hints]
        body = "".join(f"\n    {_indent(p)}," for p in parts)
        return _Line(f"nn.ModuleList([{body}\n])", values, hints)

    def _leaf_ctor(self, path: str) -> _Line:
        node = self.leaf_by_path[path]
        if node.id in self.stateless:
            code = self._module_code(node, self.regions[self.owner[node.id]])
            assert code is not None
            return _holes(code, "", prefix="")
        lowered = LOWERINGS[node.op].emit(Ctx(node, self._ins(node), ("x",) * len(node.inputs),
                                              "self", False))
        assert lowered.init is not None
        return _holes(lowered.init, "", prefix="")

    def _sequential(self, region: _Region, ctor: dict[str, _Line]) -> _Line:
        parts: list[str] = []
        values: list[HoleValue] = []
        hints: list[str] = []
        for kid in self.children[region.path]:
            line = self._leaf_ctor(kid) if self.modules[kid] == "leaf" else ctor[kid]
            offset = len(values)
            parts.append(_shift(line.text, offset))
            values += line.values
            name = kid.rsplit(".", 1)[-1]
            hints += [_join(f"m{name}", h) for h in line.hints]
        body = "".join(f"\n    {_indent(p)}," for p in parts)
        return _Line(f"nn.Sequential({body}\n)", values, hints)

    def _forward(self, region: _Region, head: bool = False) -> list[_Line]:
        """The region's forward body: its own nodes and calls of its child regions, in graph
        order. A variable is reused once its value is dead, and a relu or an add overwrites
        its first input when nothing else reads it, as hand-written blocks do."""
        items = self.items[region.path]
        exit_id = region.exit
        entry_id = region.entry
        timm = self.timm if not region.path else None
        if timm is not None:  # the root's forward_features (the items before the head), or
            # with `head` its forward_head (the head's items)
            items = [(kind, node) for kind, node in items
                     if ((node.id if kind == "node" else kind) in timm.head_items) == head]
            if head:
                entry_id = timm.proto.head.features
            else:
                exit_id = timm.proto.head.features

        def inputs(item: tuple[str, Node]) -> tuple[int, ...]:
            kind, node = item
            return node.inputs if kind == "node" else (self.regions[kind].entry,)

        last_use: dict[int, int] = {}
        for k, item in enumerate(items):
            for i in inputs(item):
                last_use[i] = k
        last_use[exit_id] = len(items)
        named = self.graph.outputs if not region.path else {}
        for nid in named.values():
            last_use[nid] = len(items)  # an output lives to the end, never overwritten
        var: dict[int, str] = {entry_id: "x"}
        free: list[str] = []
        lines: list[_Line] = []
        for k, item in enumerate(items):
            kind, node = item
            ins = inputs(item)
            names = tuple(var[i] for i in ins)
            dying = [i for i in dict.fromkeys(ins) if last_use.get(i) == k]
            first = ins[0]
            alias = kind == "node" and LOWERINGS[node.op].alias(node)
            inplace = kind == "node" and self._inplace(region, node)
            # A module's inplace flag is fixed in __init__: it must be what the forward does.
            assert not inplace or first in dying
            free += [var[i] for i in dying if not (inplace and i == first)]
            if inplace or first in dying:
                out = var[first]
                if out in free:
                    free.remove(out)
            elif free:
                out = free.pop(0)
            else:
                out = f"x{len(set(var.values()))}"
            var[node.id] = out
            if alias and out == names[0]:
                continue  # `x = x`: the node is its input, in the same variable
            if kind == "node" and node.id in self.stateless:
                ref = self._ref(region.path, self.stateless[node.id])
                lines.append(_Line(f"{out} = {ref}({names[0]})"))
            elif kind == "node":
                attr = self._ref(region.path, node.path) if node.id in self.state else ""
                lowered = LOWERINGS[node.op].emit(
                    Ctx(node, self._ins(node), names, attr, inplace))
                rel = node.path[len(region.path) + 1:] if region.path else node.path
                # An unnamed node's holes are named after its op (`zeropad_channels`).
                prefix = node.op if rel.rsplit(".", 1)[-1].isdigit() else _ident(rel)
                lines.append(_holes(lowered.forward, out, prefix=prefix))
            else:
                ref = self._ref(region.path, kind)
                call = f"{ref}({names[0]})"
                if timm is not None and not head:  # a stage: its blocks checkpointed
                    call += (f" if not self.grad_checkpointing else "
                             f"self.checkpoint_stage({ref}, {names[0]})")
                lines.append(_Line(f"{out} = {call}"))
        if named:
            # torchvision's segmentation models and BackboneWithFPN return an OrderedDict.
            pairs = "".join(f"\n    ({_string(k)}, {var[n]})," for k, n in named.items())
            lines.append(_Line(f"return OrderedDict([{pairs}\n])".replace("{", "{{")
                               .replace("}", "}}")))
        else:
            lines.append(_Line(f"return {var[exit_id]}"))
        return lines

    @staticmethod
    def _overwritable(node: Node) -> bool:
        """Whether an op may overwrite the node's output in place (when nothing else reads
        it): a fresh tensor autograd does not need, not a view or another node's tensor."""
        lowering = LOWERINGS[node.op]
        return lowering.overwritable and not lowering.alias(node)

    # ------------------------------------------------------------------ sharing

    def _share(self, drafts: Sequence[_Draft], ctor: dict[str, _Line]) -> None:
        groups: dict[tuple[object, ...], list[_Draft]] = {}
        for d in drafts:
            groups.setdefault(d.signature(), []).append(d)
        for members in groups.values():
            cls = self._make_class(members)
            self.classes.append(cls)
            for d in members:
                ctor[d.region.path] = cls.ctor(d)

    def _make_class(self, drafts: list[_Draft]) -> _Class:
        first = drafts[0]
        vectors = list(zip(*(d.values() for d in drafts), strict=True))
        hints = first.hints()
        entry_vector = tuple(d.entry_channels for d in drafts)
        params: list[str | None] = []
        # Holes with equal values in every instance share a parameter when they mean the
        # same kind of number: a channel count with a channel count, a stride with a stride.
        by_vector: dict[tuple[str, tuple[HoleValue, ...]], str] = {}
        taken = {"self", "x", "w"} | set(_child_names(first)) | RESERVED
        n_init = sum(len(ln.values) for ln in first.init)
        forward_params: set[str] = set()
        for pos, (vector, hint) in enumerate(zip(vectors, hints, strict=True)):
            if len(set(vector)) == 1:
                params.append(None)
                continue
            key = hint.rsplit("_", 1)[-1] if "_" in hint else hint
            meaning = "<channels>" if hint.endswith(_CHANNEL_KEYS) else key
            name = by_vector.get((meaning, vector))
            if name is None:
                name = (
                    "in_channels"
                    if vector == entry_vector and hint.endswith(_CHANNEL_HINTS)
                    else _ident(hint)
                )
                base, k = name, 2
                while name in taken:
                    name, k = f"{base}_{k}", k + 1
                taken.add(name)
                by_vector[(meaning, vector)] = name
            params.append(name)
            if pos >= n_init:
                forward_params.add(name)
        names = list(dict.fromkeys(p for p in params if p is not None))
        base = _class_base(first, self.graph)
        return _Class(self._class_name(base), drafts, params, names, forward_params)

    def _class_name(self, base: str) -> str:
        name, k = base, 2
        while name in self.class_names:
            name, k = f"{base}{k}", k + 1
        self.class_names.add(name)
        return name

    # ------------------------------------------------------------------ rendering

    def _render(self) -> str:
        g = self.graph
        t = totals(g)
        root = self.classes[-1]
        out_shape = fmt_shape(g.node(g.output or 0).shape)
        if g.outputs:
            out_shape = ("an OrderedDict of " + ", ".join(
                f"{_string(k)} {fmt_shape(g.node(n).shape)}" for k, n in g.outputs.items())
            ).replace("\\", "\\\\")  # a docstring, where a `\` would escape
        # The module-level functions the forward code calls (drop_path), once each.
        helpers = dict.fromkeys(h for n in self.nodes for h in LOWERINGS[n.op].helpers)
        body = [*helpers, *(self._render_class(c) for c in self.classes)]
        if self.timm is not None:
            body.insert(len(helpers), timm_protocol.mixin_source())
        # `F` only where a forward calls it: a network whose stateless ops are all modules
        # (a ResNet) needs none, and an unused import is what a linter reports first.
        calls_f = re.search(r"\bF\.", "\n".join(body)) is not None
        functional = ["import torch.nn.functional as F"] if calls_f else []
        head = [
            f'"""{g.name}: generated by resdsl {__version__}. Do not edit; edit the spec.',
            "",
            f"Input {fmt_shape(g.node(0).shape)} → output {out_shape}; "
            f"{t.params:,} parameters, {t.macs:,} multiply-accumulates.",
            "This file needs only PyTorch:",
            "",
            f"    model = {root.name}()",
            "    model.load_state_dict(state_dict)",
            '"""',
            "",
            "from __future__ import annotations",
            "",
            *(["from collections import OrderedDict", ""] if g.outputs else []),
            *([*timm_protocol.IMPORTS, ""] if self.timm is not None else []),
            "import torch",
            *functional,
            "from torch import nn",
            *(timm_protocol.TORCH_IMPORTS if self.timm is not None else ()),
            "",
            f'__all__ = ["{root.name}"]',
        ]
        return "\n".join(head) + "\n\n\n" + "\n\n\n".join(body) + "\n"

    def _render_class(self, cls: _Class) -> str:
        d = cls.drafts[0]
        values = d.values()
        position = 0

        def fill(line: _Line, in_forward: bool) -> str:
            nonlocal position
            holes: dict[str, str] = {}
            for i in range(len(line.values)):
                name = cls.params[position]
                if name is None:
                    holes[f"h{i}"] = lit(values[position])
                else:
                    holes[f"h{i}"] = f"self.{name}" if in_forward else name
                position += 1
            return line.text.format(**holes)

        init = [fill(ln, False) for ln in d.init]
        forward = [fill(ln, True) for ln in d.forward]
        params = ", ".join(f"{n}: {_type_name(values[cls.params.index(n)])}"
                           for n in cls.param_names)
        doc = _describe(cls, self.graph)
        if cls is self.classes[-1] and self.root_chain_break is not None:
            doc += "\n\n" + textwrap.fill(self._wrapper_note(), 92, initial_indent="    ",
                                          subsequent_indent="    ") + "\n    "
        timm = self.timm if cls is self.classes[-1] else None
        base = "TimmProtocol" if timm is not None else "nn.Module"
        lines = [f"class {cls.name}({base}):", f'    """{doc}"""', ""]
        if timm is not None:
            lines += [*timm_protocol.spec_lines(timm), ""]
        root = cls is self.classes[-1]
        units = torch_units.render(torch_units.residual_units(
            self.graph, {p: r.exit for p, r in self.regions.items() if p})) if root else None
        if units:
            lines += units[0]
        ctor = torch_ctor.arguments(self.graph, timm.proto.num_classes if timm else None
                                    ) if root else None
        if ctor:
            self.arguments = ctor
        extra = ctor.signature() if ctor else ""
        lines.append(f"    def __init__(self{', ' if params else ''}{params}{extra}) -> None:")
        lines.append("        super().__init__()")
        for name in sorted(cls.forward_params, key=cls.param_names.index):
            lines.append(f"        self.{name} = {name}")
        for text in init:
            lines += ["        " + t for t in text.split("\n")]
        if ctor:
            lines += ctor.lines(self._conv_line, lambda path: self._ref("", path))
        result = ("OrderedDict[str, torch.Tensor]"
                  if self.graph.outputs and not d.region.path else "torch.Tensor")
        name = "forward_features" if timm is not None else "forward"
        lines += ["", f"    def {name}(self, x: torch.Tensor) -> {result}:"]
        for text in forward:
            lines += ["        " + t for t in text.split("\n")]
        if timm is not None:
            lines += ["", "    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) "
                      "-> torch.Tensor:"]
            lines += ["        " + t for t in self._head_lines(timm)]
            for text in (fill_constant(ln) for ln in self._forward(d.region, head=True)):
                lines += ["        " + t for t in text.split("\n")]
            lines += ["", "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
                      "        return self.forward_head(self.forward_features(x))"]
        if units:
            lines += units[1]
        return "\n".join(lines)

    def _head_lines(self, timm: timm_protocol.RootSplit) -> list[str]:
        """forward_head's first lines: reset_classifier(0, "")'s unpooled features, and with
        `pre_logits` the head's nodes before the classifier, each as the forward runs it (a
        module called, any other node's lowering), flattened. The forward's own head code
        follows them (`_forward(..., head=True)`: a region's module called, so that its
        hooks see it)."""
        head = timm.proto.head
        lines = [f"if self.pool_type != {timm.proto.global_pool!r}:",
                 '    return x  # reset_classifier(0, ""): the unpooled features',
                 "if pre_logits:"]
        before = self.graph.node(head.pre_logits[-1] if head.pre_logits else head.features)
        for nid in head.pre_logits:
            node = self.graph.node(nid)
            if nid in self.stateless:
                lines.append(f"    x = {self._ref('', self.stateless[nid])}(x)")
                continue
            attr = self._ref("", node.path) if nid in self.state else ""
            code = LOWERINGS[node.op].emit(Ctx(node, self._ins(node), ("x",), attr, False))
            line = _holes(code.forward, "x", prefix="h")
            lines += ["    " + t for t in line.text.format(
                **{f"h{i}": lit(v) for i, v in enumerate(line.values)}).split("\n")]
        return [*lines, f"    return {'x' if len(before.shape) == 1 else 'x.flatten(1)'}"]

    def _conv_line(self, node: Node, in_channels: str) -> str:
        """The root's `__init__` line that registers the conv `node` anew, reading
        `in_channels` channels (an expression): the constructor's `in_chans`."""
        line = self._leaf_ctor(node.path)
        holes = {f"h{i}": in_channels if hint == "in_channels" else lit(value)
                 for i, (value, hint) in enumerate(zip(line.values, line.hints, strict=True))}
        return self._register("", node.path, line.text.format(**holes))

    def _wrapper_note(self) -> str:
        """The root's docstring where its forward is not a chain of its children: a wrapper
        that runs the children in order would be wrong after the chain, so say where."""
        last = self.root_chain_last
        reach = (f"which is this forward up to `{last}` only" if last is not None
                 else "which is not this forward from its first step")
        ask = f"ask it for no child after `{last}`" if last is not None else "do not use it"
        return (f"torchvision's IntermediateLayerGetter (BackboneWithFPN, the segmentation "
                f"models) runs the children in order and nothing else, {reach}: "
                f"{self.root_chain_break}, so {ask}. create_feature_extractor "
                f"(torchvision.models.feature_extraction) and forward hooks see every module.")


# ---------------------------------------------------------------------- helpers


def _holes(code: Code, out: str, prefix: str) -> _Line:
    """Fill `{out}` and number the holes that the text uses, in order of appearance."""
    fields = [f for _, f, _, _ in string.Formatter().parse(code.text) if f]
    mapping: dict[str, str] = {"out": out}
    values: list[HoleValue] = []
    hints: list[str] = []
    for f in fields:
        if f in mapping:
            continue
        mapping[f] = f"{{h{len(values)}}}"
        values.append(code.holes[f])
        hints.append(_join(prefix, f))
    return _Line(code.text.format(**mapping), values, hints)


def fill_constant(line: _Line) -> str:
    """A line of the root class, whose holes are all constants, filled."""
    return line.text.format(**{f"h{i}": lit(v) for i, v in enumerate(line.values)})


def _shift(text: str, offset: int) -> str:
    """Renumber `{hN}` holes by `offset` (for a line nested in another)."""
    fields = [f for _, f, _, _ in string.Formatter().parse(text) if f]
    return text.format(**{f: f"{{h{int(f[1:]) + offset}}}" for f in fields})


def _prefixes(path: str) -> list[str]:
    """The proper prefixes of a module path, shortest first: `a.b.c` → [`a`, `a.b`]."""
    parts = path.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def _indent(text: str) -> str:
    """A nested constructor's lines after its first, indented one level more."""
    return text.replace("\n", "\n    ")


def _is_attribute(name: str) -> bool:
    """Whether `self.NAME` reads the child `name` (not a number, not a keyword)."""
    return name.isidentifier() and not keyword.iskeyword(name)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}_{name}" if prefix else name


def _ident(text: str) -> str:
    """A parameter name made of `text`. Leading underscores go: Python mangles a name that
    starts with `__` inside a class body, keyword arguments of a call included, so
    `Block(__out_channels=4)` written in another class would miss the parameter."""
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in text).lstrip("_")
    return out if out and not out[0].isdigit() else f"m{out}"


def _camel(text: str) -> str:
    # `-` too: an interpolated name may hold one (torchvision's RegNet `block1-0`).
    parts = [p for p in text.replace("-", "_").split("_") if p]
    out = ""
    for p in parts:
        if out and p[0].isdigit():
            out += "_" + p
        else:
            out += p[0].upper() + p[1:]
    return out


def _class_base(draft: _Draft, graph: Graph) -> str:
    kind, path = draft.kind, draft.region.path
    last = path.rsplit(".", 1)[-1]
    if kind not in _FIXED_KINDS and not kind.startswith("repeat"):
        return _camel(kind) or "Block"
    if last[:1].isalpha():
        return _camel(last)
    parent = path.rsplit(".", 2)[-2] if path.count(".") else ""
    return (_camel(parent) if parent[:1].isalpha() else "Block") + "Item"


def _child_names(draft: _Draft) -> Iterable[str]:
    for ln in draft.init:
        head = ln.text.split(" = ", 1)[0]
        if head.startswith("self."):
            yield head[5:].split(".")[0]


def _type_name(value: HoleValue) -> str:
    if isinstance(value, tuple):
        return "tuple[int, ...]"
    return type(value).__name__


def _describe(cls: _Class, graph: Graph) -> str:
    paths = [d.region.path or graph.name for d in cls.drafts]
    kind = cls.drafts[0].kind
    what = f"The network `{graph.name}`" if kind == "network" else f"`{kind}`"
    shown = ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    return f"{what}: {shown}." if kind != "network" else f"{what}."


def _string(text: str) -> str:
    """A Python string literal of `text` (an output's name), in double quotes."""
    return json.dumps(text)


def generate(graph: Graph) -> Generated:
    """The standalone PyTorch source of `graph`; its `class_name` builds the network."""
    return _Generator(graph).generate()
