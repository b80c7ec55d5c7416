"""Static checks on the AST, before anything is elaborated.

Everything that can be known without evaluating the spec is checked here, all at once, so
one run reports every such mistake: unknown ops, blocks, variables and keyword arguments,
wrong argument counts, duplicate definitions, clauses in the wrong place, recursion between
blocks, and (as warnings) definitions that are never used.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from resdsl.diagnostics import Diagnostic, Label, Span, error, warning
from resdsl.ir.callgraph import (
    block_recursion,
    function_recursion,
    unused_definitions,
    walk_stmts,
)
from resdsl.ir.evaluate import FUNCTIONS, IN_ATTRIBUTES
from resdsl.ir.ops import REQUIRED, USER_OPS, ArgSpec, ArgType
from resdsl.ir.preprocessing import FIELDS as PREPROCESSING_FIELDS
from resdsl.ir.primitives import JOINS, PRIMITIVES
from resdsl.syntax import ast
from resdsl.syntax.loader import Program


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    # Above 0.6: typos match (`basci`, `strides`, `cc`), unrelated names do not (`basic` is
    # not `slice`, at exactly 0.6).
    match = difflib.get_close_matches(name, _likely(name, candidates), n=1, cutoff=0.65)
    return f"did you mean `{match[0]}`?" if match else None


# Names did_you_mean compares in full, at most. difflib costs microseconds per name, and a
# file of 20,000 blocks with a hundred misspelled calls would spend seconds on suggestions.
MAX_SUGGESTION_CANDIDATES = 200


def _likely(name: str, candidates: Iterable[str]) -> list[str]:
    """The candidates that can be close enough to `name`, sorted: a similarity of 0.65 needs
    the longer name at most 1.35/0.65 ≈ 2.08 times as long as the shorter. Past
    MAX_SUGGESTION_CANDIDATES, those sharing a first or last letter with `name`, and of
    these, the ones next to it in alphabetical order (the longest shared beginnings)."""
    n = len(name)
    lo, hi = int(0.48 * n), int(2.08 * n) + 1
    near = {c for c in candidates if lo <= len(c) <= hi}
    if len(near) > MAX_SUGGESTION_CANDIDATES:
        head, tail = name[:1], name[-1:]
        near = {c for c in near if c[:1] == head or c[-1:] == tail}
    ordered = sorted(near)
    if len(ordered) > MAX_SUGGESTION_CANDIDATES:
        i, half = bisect.bisect_left(ordered, name), MAX_SUGGESTION_CANDIDATES // 2
        ordered = ordered[max(0, i - half) : i + half]
    return ordered


# Other frameworks' names for the ops, for "did you mean" when difflib finds nothing close.
_ALIASES = {
    "batchnorm": "bn", "batchnorm2d": "bn", "batch_norm": "bn", "norm": "bn",
    "conv2d": "conv", "convolution": "conv", "dense": "linear", "fc": "linear",
    "maxpool2d": "maxpool", "max_pool": "maxpool", "avgpool2d": "avgpool",
    "avg_pool": "avgpool", "adaptiveavgpool2d": "global_avgpool", "gap": "global_avgpool",
    "adaptive_avgpool": "global_avgpool", "global_pool": "global_avgpool", "swish": "silu",
}


def _in_attribute(name: str) -> str | None:
    """`in.channels` → did you mean `in.c`?"""
    if name[:1].lower() in IN_ATTRIBUTES:
        return f"did you mean `in.{name[0].lower()}`?"
    return did_you_mean(name, IN_ATTRIBUTES)


def _alias(name: str) -> str | None:
    match = _ALIASES.get(name.lower())
    return f"did you mean `{match}`?" if match else None


@dataclass
class Blocks:
    """Every block and function visible to the program (all files share one namespace)."""

    by_name: dict[str, ast.Definition] = field(default_factory=dict)
    file_of: dict[str, ast.File] = field(default_factory=dict)
    functions: dict[str, ast.Function] = field(default_factory=dict)


def collect_blocks(program: Program, out: list[Diagnostic]) -> Blocks:
    blocks = Blocks()
    taken: dict[str, Span] = {}
    for file in program.files:
        defs: list[ast.Definition | ast.Function] = [*file.blocks, *file.functions]
        for item in defs:
            what = "block" if isinstance(item, ast.Definition) else "function"
            builtin = (
                "op" if item.name in USER_OPS
                else "join" if item.name in JOINS
                else "function" if item.name in FUNCTIONS
                else None
            )
            if builtin is not None:
                out.append(
                    error(
                        "E0204",
                        f"{what} `{item.name}` has the name of a built-in {builtin}",
                        item.name_span,
                        f"shadows the {builtin}",
                        help=f"rename the {what}, e.g. `my_{item.name}`",
                    )
                )
                continue
            first = taken.get(item.name)
            if first is not None:
                out.append(
                    error(
                        "E0204",
                        f"`{item.name}` is defined twice",
                        item.name_span,
                        "defined again here",
                        secondary=(Label(first, "first defined here"),),
                        help="rename one of them: blocks and functions share one namespace",
                    )
                )
                continue
            taken[item.name] = item.name_span
            if isinstance(item, ast.Function):
                blocks.functions[item.name] = item
            else:
                blocks.by_name[item.name] = item
                blocks.file_of[item.name] = file
    return blocks


@dataclass
class _Def:
    """A parameter, binding or repeat index, and whether anything reads it."""

    name: str
    span: Span
    used: bool = False
    # `t = in`: a named tensor, which a statement may continue from (`t`) or join (`add(t)`).
    tensor: bool = False


def is_tensor_binding(stmt: ast.Stmt) -> bool:
    """`t = in` names the flowing tensor; inside a repeat it is exported as a list."""
    return isinstance(stmt, ast.Binding) and isinstance(stmt.value, ast.In)


def plain_label(label: ast.Name | None) -> str | None:
    """A label's text when nothing in it is computed (`body`, `a.b`), else None: only such a
    level shares its tensors, since a use after it must be checkable before elaboration."""
    if label is None or not all(isinstance(p, str) for p in label.parts):
        return None
    return "".join(p for p in label.parts if isinstance(p, str))


def level_tensors(body: Iterable[ast.Stmt], blocks: Blocks, seen: frozenset[str] = frozenset()
                  ) -> list[str]:
    """The tensors a level made of `body` shares, by their paths inside it (`c3`,
    `layer2.c`): its own `t = in`s (a repeat's as lists), and those of the named levels in it
    (named sequences, block calls and repeats), one level of path per level."""
    names: list[str] = []
    for stmt in body:
        if is_tensor_binding(stmt):
            assert isinstance(stmt, ast.Binding)
            names.append(stmt.name)
            continue
        label = plain_label(getattr(stmt, "label", None))
        if isinstance(stmt, ast.RepeatStmt):
            collected = [s.name for s in stmt.body if isinstance(s, ast.Binding)
                         and is_tensor_binding(s)]
            names += collected
            if label is not None:
                names += [f"{label}.{n}" for n in collected]
        elif label is None:
            continue
        elif isinstance(stmt, ast.SeqStmt):
            names += [f"{label}.{n}" for n in level_tensors(stmt.body, blocks, seen)]
        elif isinstance(stmt, ast.CallStmt) and stmt.call.target in blocks.by_name \
                and stmt.call.target not in seen:
            block = blocks.by_name[stmt.call.target]
            names += [f"{label}.{n}" for n in level_tensors(block.body, blocks,
                                                            seen | {block.name})]
    return names


def _did_you_mean_in(level: str, name: str, shared: list[str]) -> str | None:
    hint = did_you_mean(name, shared)
    return hint.replace("`", f"`{level}.", 1) if hint else None


def level_key(path: str) -> str:
    """Where a level's tensor (`body.c3`) is kept among the visible names: under a key no
    variable can have, so levels and variables never collide."""
    return "." + path


_JOIN_HELP = ("`add(a, b)` sums, `cat(a, b)` concatenates channels, `mul(x, f)` scales, "
              "`sub(a, b)` subtracts, `matmul(a, b)` multiplies matrices")
_MULTI_BRANCH = ("weight", "skip", "concat")
_UNGUARDED = ("group", "scale", "branch")


Visible = dict[str, _Def]


class _DefinitionChecker:
    """Checks one block or network: names, arguments and clause placement."""

    def __init__(self, definition: ast.Definition, blocks: Blocks, out: list[Diagnostic]):
        self.definition = definition
        self.blocks = blocks
        self.out = out
        self.defs: list[_Def] = []
        # Every binding and repeat index of the definition, wherever it is visible, so that
        # a use outside that region is told where the name is; and the names so reported.
        self.bound: dict[str, Span] = {}
        for stmt in walk_stmts(definition.body):
            if isinstance(stmt, ast.Binding):
                self.bound.setdefault(stmt.name, stmt.name_span)
            elif isinstance(stmt, ast.RepeatStmt) and stmt.var and stmt.var_span:
                self.bound.setdefault(stmt.var, stmt.var_span)
        self.misplaced: set[str] = set()
        # The repeats without `as i` around the statement being checked, innermost last: an
        # unknown `i` inside one is most likely its index.
        self.unindexed: list[ast.RepeatStmt] = []
        self.tensors = {s.name for s in walk_stmts(definition.body)
                        if isinstance(s, ast.Binding) and is_tensor_binding(s)}

    def run(self) -> None:
        visible: Visible = {}
        for param in self.definition.params:
            if param.default is not None:
                self._expr(param.default, visible)
            self._define(param.name, param.span, "parameter", visible)
        after = self._body(self.definition.body, visible, in_weight=False)
        if self.definition.kind == "block":
            # A named call shares the block's tensors (`body.c3`): they may be read there.
            for name in level_tensors(self.definition.body, self.blocks):
                d = after.get(level_key(name) if "." in name else name)
                if d is not None:
                    d.used = True

    def function(self, fn: ast.Function) -> None:
        """A `def`: parameters, then bindings, then the result; no tensor flows in."""
        visible: Visible = {}
        for param in fn.params:
            if param.default is not None:
                self._expr(param.default, visible)
            self._define(param.name, param.span, "parameter", visible)
        for binding in fn.bindings:
            self._expr(binding.value, visible)
            self._define(binding.name, binding.name_span, "binding", visible)
        self._expr(fn.result, visible)
        exprs = [b.value for b in fn.bindings] + [fn.result]
        exprs += [p.default for p in fn.params if p.default is not None]
        while exprs:
            e = exprs.pop()
            if isinstance(e, ast.In):
                self._misplaced(e.span, "a function has no `in`: no tensor flows into it",
                                "`in` here", "pass the size it needs as a parameter "
                                "(`f(in.c)` at the call)")
            exprs.extend(ast.children(e))

    def unused(self) -> Iterator[tuple[str, Span]]:
        for d in self.defs:
            if not d.used and not d.name.startswith("_") and d.name not in self.misplaced:
                yield d.name, d.span

    def _define(
        self, name: str, span: Span, what: str, visible: Visible, tensor: bool = False
    ) -> None:
        first = visible.get(name)
        if first is not None:
            self.out.append(
                error(
                    "E0205",
                    f"`{name}` is already defined here",
                    span,
                    f"{what} `{name}` defined again",
                    secondary=(Label(first.span, "first defined here"),),
                    help="use a new name: a name cannot be redefined where it is visible",
                )
            )
            return
        d = _Def(name, span, tensor=tensor)
        self.defs.append(d)
        visible[name] = d

    def _body(self, body: Iterable[ast.Stmt], visible: Visible, in_weight: bool) -> Visible:
        visible = dict(visible)
        for stmt in body:
            self._stmt(stmt, visible, in_weight)
        return visible

    def _stmt(self, stmt: ast.Stmt, visible: Visible, in_weight: bool) -> None:
        if isinstance(stmt, ast.Binding):
            before = len(self.out)
            tensor = is_tensor_binding(stmt)
            if not tensor:
                self._expr(stmt.value, visible)
            self._define(stmt.name, stmt.name_span, "binding", visible, tensor)
            if len(self.out) > before and self.defs and self.defs[-1].span is stmt.name_span:
                self.defs[-1].used = True  # its value is already an error; no W0102 on top
        elif isinstance(stmt, ast.InputStmt):
            if self.definition.kind != "network":
                self.out.append(
                    error(
                        "E0212",
                        "`input` belongs in a network, not in a block",
                        stmt.span,
                        "inside block `" + self.definition.name + "`",
                        help="a block takes the tensor flowing into its call; use `in.c` for "
                        "its channels",
                    )
                )
            self._expr(stmt.shape, visible)
        elif isinstance(stmt, ast.CallStmt):
            self._label(stmt.label, visible)
            target = stmt.call.target
            if target in visible and not (target in USER_OPS or target in JOINS
                                          or target in self.blocks.by_name):
                self._continuation_label(stmt.label, target)
            self._call(stmt.call, visible, statement=True)
            if stmt.guard is not None:
                self._expr(stmt.guard, visible)
            label = plain_label(stmt.label)
            block = self.blocks.by_name.get(target)
            if label is not None and block is not None and target not in USER_OPS:
                self._share(label, level_tensors(block.body, self.blocks,
                                                 frozenset({block.name})), {}, visible)
        elif isinstance(stmt, ast.PathStmt):
            self._continuation_label(stmt.label, stmt.value.span.text)
            self._expr(stmt.value, visible)
            if stmt.guard is not None:
                self._expr(stmt.guard, visible)
        elif isinstance(stmt, ast.OutputStmt):
            if self.definition.kind != "network" or not any(
                    s is stmt for s in self.definition.body):
                where = ("inside block `" + self.definition.name + "`"
                         if self.definition.kind != "network" else "inside a `{ }`")
                self._misplaced(stmt.span, "`output` belongs in a network's body, at its top "
                                "level", where,
                                "name the tensor (`t = in`) and give `output name = t` in the "
                                "network's body; a tensor inside a named level is reached by "
                                "its path, `level.t`")
            if stmt.value is not None:
                self._expr(stmt.value, visible)
            if stmt.guard is not None:
                self._expr(stmt.guard, visible)
        elif isinstance(stmt, ast.ElementStmt):
            self._continuation_label(stmt.label, stmt.value.span.text)
            root = stmt.root
            if root.name in visible or root.name in self.bound:
                self._expr(stmt.value, visible)
            else:
                self._unknown_tensor(root.name, root.span, visible)
                element: ast.Expr = stmt.value
                while isinstance(element, ast.Index):  # `c[i][j]`: the indices still count
                    self._expr(element.index, visible)
                    element = element.obj
            if stmt.guard is not None:
                self._expr(stmt.guard, visible)
        elif isinstance(stmt, ast.SeqStmt):
            self._label(stmt.label, visible)
            if stmt.guard is not None:
                self._expr(stmt.guard, visible)
            after = self._body(stmt.body, visible, False)
            label = plain_label(stmt.label)
            if label is not None:
                self._share(label, level_tensors(stmt.body, self.blocks), after, visible)
        elif isinstance(stmt, ast.RepeatStmt):
            self._label(stmt.label, visible)
            self._expr(stmt.count, visible)
            if stmt.guard is not None:
                self._expr(stmt.guard, visible)
            inner = dict(visible)
            if stmt.var is not None and stmt.var_span is not None:
                self._define(stmt.var, stmt.var_span, "repeat index", inner)
            else:
                self.unindexed.append(stmt)
            try:
                after = self._body(stmt.body, inner, False)
            finally:
                if stmt.var is None:
                    self.unindexed.pop()
            # A tensor named in each iteration is, after the repeat, the list of them.
            for sub in stmt.body:
                if is_tensor_binding(sub):
                    assert isinstance(sub, ast.Binding)
                    d = after[sub.name]
                    if sub.name not in visible:
                        visible[sub.name] = d
            label = plain_label(stmt.label)
            if label is not None:
                collected = [s.name for s in stmt.body if isinstance(s, ast.Binding)
                             and is_tensor_binding(s)]
                self._share(label, collected, after, visible)
        else:
            self._primitive(stmt, visible, in_weight)

    def _primitive(self, stmt: ast.PrimitiveStmt, visible: Visible, in_weight: bool) -> None:
        prim = PRIMITIVES[stmt.kind]
        self._label(stmt.label, visible)
        if stmt.kind == "branch" and not in_weight:
            self._misplaced(stmt.kind_span,
                            "`branch` is only allowed directly inside `weight`, `skip` or "
                            "`concat`",
                            "a branch of a multi-branch join",
                            "put the branches in `concat { branch { ... } branch { ... } }` "
                            "(or `skip`, `weight`), or drop `branch` and keep its body")
        if stmt.guard is not None:
            self._expr(stmt.guard, visible)
            if stmt.kind in _UNGUARDED or stmt.branches:
                self._misplaced(
                    stmt.guard.span,
                    f"a guard cannot switch {'a multi-branch ' if stmt.branches else ''}"
                    f"`{stmt.kind}`",
                    "guard here",
                    "a guard on a primitive switches its connection off and runs the body "
                    "alone, which has no meaning here; guard the call of a block that holds it",
                )
        for arg in stmt.args:
            self._expr(arg.value, visible)
        self._args(stmt.kind, prim.args, stmt.args, stmt.kind_span, visible, "primitive")
        for clause, allowed in ((stmt.shortcut, prim.shortcut), (stmt.transform, prim.transform)):
            if clause is None:
                continue
            if not allowed:
                takers = [p.name for p in PRIMITIVES.values() if getattr(p, clause.keyword)]
                self._misplaced(
                    clause.span,
                    f"`{stmt.kind}` takes no `{clause.keyword}` clause",
                    f"`{clause.keyword}` belongs to " + ", ".join(f"`{t}`" for t in takers),
                    f"remove the clause, or use one of those primitives; `{stmt.kind}` is "
                    f"{PRIMITIVES[stmt.kind].summary}",
                )
            self._label(clause.label, visible)
            if clause.call is not None:
                self._call(clause.call, visible)
            if clause.body is not None:
                self._body(clause.body, visible, False)
            if clause.guard is not None:
                self._expr(clause.guard, visible)
        branches = stmt.branches
        if stmt.kind in _MULTI_BRANCH and branches:
            kind = stmt.kind
            others = [s for s in stmt.body if s not in branches and not isinstance(s, ast.Binding)]
            if others:
                self._misplaced(
                    others[0].span,
                    f"a multi-branch `{kind}` holds only `branch` statements",
                    "not a branch",
                    "wrap this statement in its own `branch { ... }`",
                )
            if stmt.shortcut is not None:
                self._misplaced(
                    stmt.shortcut.span,
                    f"a multi-branch `{kind}` takes no `shortcut`",
                    "shortcut here",
                    "add the shortcut as one more `branch`, e.g. `branch { identity }`",
                )
            if stmt.args:
                # weight: one softmax logit per branch, starting at 0; skip/concat: a plain join.
                self._misplaced(
                    stmt.args[0].span,
                    f"a multi-branch `{kind}` takes no arguments",
                    "not used with branches",
                    "its weights are softmax(w) over the branches with w starting at 0; "
                    "drop the arguments"
                    if kind == "weight"
                    else "the branches are joined as they are; drop the arguments",
                )
        self._body(stmt.body, visible, in_weight=stmt.kind in _MULTI_BRANCH)

    def _share(self, level: str, names: list[str], inside: Visible, visible: Visible) -> None:
        """Make the tensors of the level `level` visible after it as `level.name`; reading one
        counts as a use of the binding inside (which a block's checker cannot see: those
        are made used)."""
        for name in names:
            d = inside.get(level_key(name) if "." in name else name)
            visible[level_key(f"{level}.{name}")] = d if d is not None else _Def(
                name, self.definition.span, used=True, tensor=True)

    def _level_path(self, e: ast.Attr, visible: Visible) -> bool:
        """`body.c3`, `body.layer2.c.h`: a path through levels, when its first name is not a
        variable. Reports an unknown level (E0230) or tensor (E0231); False when `e` is not
        such a path (`t.c` of a variable, `in.c`)."""
        names: list[str] = []
        obj: ast.Expr = e
        while isinstance(obj, ast.Attr):
            names.append(obj.name)
            obj = obj.obj
        if not isinstance(obj, ast.Var) or obj.name in visible:
            return False
        names.reverse()
        root = obj.name
        levels = {k[1:].split(".", 1)[0] for k in visible if k.startswith(".")}
        if root not in levels:
            if len(names) == 1 and names[0] in IN_ATTRIBUTES:
                return False  # `t.c` of an unknown `t`: reported as an unknown variable
            self.out.append(error(
                "E0230",
                f"unknown level `{root}`",
                obj.span,
                "no named sequence, block call or repeat shares tensors by this name here",
                help=did_you_mean(root, levels) or (
                    f"`{root}.{names[0]}` reads the tensor `{names[0]}` named inside the "
                    f"level `{root}` (`{root}: {{ ...; {names[0]} = in }}`), after it"
                    if root not in self.bound else
                    f"`{root}` is a value: only `.c`, `.h` and `.w` read its sizes")))
            return True
        path = root
        for i, name in enumerate(names):
            path = f"{path}.{name}"
            d = visible.get(level_key(path))
            if d is not None:
                d.used = True
                rest = names[i + 1:]
                if len(rest) > 1 or (rest and rest[0] not in IN_ATTRIBUTES):
                    self.out.append(error(
                        "E0213", f"unknown attribute `.{rest[0]}`", e.span,
                        f"`{path}` is a tensor: only `.c`, `.h` and `.w` exist",
                        help=_in_attribute(rest[0])))
                return True
            if not any(k.startswith(level_key(path) + ".") for k in visible):
                break
        shared = sorted(k[len(root) + 2:] for k in visible if k.startswith(level_key(root) + "."))
        inside = path.split(".", 1)[1]
        self.out.append(error(
            "E0231",
            f"the level `{root}` has no tensor `{inside}`",
            e.span,
            f"`{root}` shares " + ", ".join(f"`{n}`" for n in shared[:8])
            + (f" and {len(shared) - 8} more" if len(shared) > 8 else ""),
            help=_did_you_mean_in(root, inside, shared) or "a level shares the tensors named "
            "at its top (`t = in`) and those of the named levels in it, by their paths "
            "(`layer2.c`)"))
        return True

    def _misplaced(self, span: Span, message: str, label: str, help: str | None = None) -> None:
        self.out.append(error("E0212", message, span, label, help=help))

    def _label(self, label: ast.Name | None, visible: Visible) -> None:
        if label is not None:
            for part in label.parts:
                if not isinstance(part, str):
                    self._expr(part, visible)

    def _call(self, call: ast.Call, visible: Visible, statement: bool = False) -> None:
        for arg in call.args:
            self._expr(arg.value, visible)
        if call.target in USER_OPS:
            sig = USER_OPS[call.target].args
            self._args(call.target, sig, call.args, call.target_span, visible, "op")
            return
        if call.target in JOINS:
            if not call.args:
                self.out.append(error("E0402", f"`{call.target}` joins tensors: it needs some",
                                      call.target_span, "no tensors", help=_JOIN_HELP))
            for arg in call.args:
                if arg.name is not None:
                    self.out.append(error("E0203", f"`{call.target}` takes no keyword arguments",
                                          arg.span, "keyword here", help=_JOIN_HELP))
            return
        local = visible.get(call.target)
        if local is not None and statement and call.target not in self.blocks.by_name:
            # `t`: continue from the tensor named `t`.
            local.used = True
            if call.args:
                self.out.append(
                    error(
                        "E0214",
                        f"`{call.target}` is a value, not an op or block: it takes no arguments",
                        call.span,
                        "called here",
                        help=f"a statement `{call.target}` alone continues from the tensor "
                        f"named `{call.target}`",
                    )
                )
            return
        block = self.blocks.by_name.get(call.target)
        if block is None:
            tensors = [n for n, d in visible.items() if d.tensor and n[:1] != "."]
            candidates = [*USER_OPS, *JOINS, *self.blocks.by_name, *tensors]
            self.out.append(
                error(
                    "E0201",
                    f"unknown op, block or tensor `{call.target}`",
                    call.target_span,
                    "not an op, a block or a named tensor",
                    help=did_you_mean(call.target, candidates)
                    or _alias(call.target)
                    or "define it with `block " + call.target + "(...) { ... }` or import it "
                    "with `use`",
                )
            )
            return
        sig = tuple(
            ArgSpec(p.name, ArgType.ANY, REQUIRED if p.default is None else None)
            for p in block.params
        )
        self._args(call.target, sig, call.args, call.target_span, visible, "block")

    def _continuation_label(self, label: ast.Name | None, what: str) -> None:
        """`x: t`: a statement that continues from a tensor makes no module to name."""
        if label is not None:
            self._misplaced(
                label.span,
                f"`{what}` continues from a tensor, and makes no module to name",
                "a name here",
                f"drop `{label.span.text}:`; to name the tensor, write `{label.span.text} = in` "
                "on the next line",
            )

    def _unknown_tensor(self, name: str, span: Span, visible: Visible) -> None:
        """`t[0]` as a statement, with no `t` anywhere in the definition."""
        tensors = [n for n, d in visible.items() if d.tensor and n[:1] != "."]
        self.out.append(
            error(
                "E0201",
                f"unknown tensor `{name}`",
                span,
                "not a named tensor",
                help=did_you_mean(name, tensors)
                or f"name a tensor with `{name} = in`; inside a repeat, that makes the list "
                f"`{name}` of every iteration's tensor",
            )
        )

    def _args(
        self,
        target: str,
        sig: tuple[ArgSpec, ...],
        args: tuple[ast.Arg, ...],
        span: Span,
        visible: Visible,
        what: str,
    ) -> None:
        names = [s.name for s in sig]
        positional = [a for a in args if a.name is None]
        seen: dict[str, Span] = {}
        for arg in args:
            if arg.name is None:
                if seen:
                    self.out.append(
                        error(
                            "E0402",
                            "a positional argument follows a keyword argument",
                            arg.span,
                            "positional",
                            help="put positional arguments first",
                        )
                    )
                continue
            if arg.name not in names:
                self.out.append(
                    error(
                        "E0203",
                        f"{what} `{target}` has no parameter `{arg.name}`",
                        arg.span,
                        "unknown keyword",
                        help=did_you_mean(arg.name, names)
                        or f"`{target}` takes " + (", ".join(f"`{n}`" for n in names) or "none"),
                    )
                )
            elif arg.name in seen or names.index(arg.name) < len(positional):
                self.out.append(
                    error(
                        "E0402",
                        f"`{arg.name}` is given twice",
                        arg.span,
                        "given again here",
                        help="pass each argument once",
                    )
                )
            seen[arg.name] = arg.span
        if len(positional) > len(sig):
            self.out.append(
                error(
                    "E0402",
                    f"{what} `{target}` takes at most {len(sig)} positional argument"
                    f"{'s' if len(sig) != 1 else ''}, not {len(positional)}",
                    positional[len(sig)].span,
                    "extra argument",
                    help=f"`{target}` takes " + (", ".join(f"`{n}`" for n in names) or "none"),
                )
            )
        given = set(names[: len(positional)]) | set(seen)
        missing = [s.name for s in sig if s.required and s.name not in given]
        if missing:
            listed = ", ".join(f"`{m}`" for m in missing)
            self.out.append(
                error(
                    "E0402",
                    f"{what} `{target}` is missing {listed}",
                    span,
                    f"needs {listed}",
                    help=f"`{target}` takes " + ", ".join(f"`{n}`" for n in names),
                )
            )

    def _expr(self, expr: ast.Expr, visible: Visible) -> None:
        stack: list[ast.Expr] = [expr]
        while stack:
            e = stack.pop()
            if isinstance(e, ast.Var):
                self._var(e, visible)
            elif isinstance(e, ast.Attr):
                if self._level_path(e, visible):
                    continue
                if not isinstance(e.obj, (ast.In, ast.Var)) or e.name not in IN_ATTRIBUTES:
                    self.out.append(
                        error(
                            "E0213",
                            f"unknown attribute `.{e.name}`",
                            e.span,
                            "only `.c`, `.h` and `.w` exist (of `in` or a named tensor)",
                            help=_in_attribute(e.name)
                            if isinstance(e.obj, (ast.In, ast.Var)) else None,
                        )
                    )
            elif isinstance(e, ast.FuncCall) and e.name in self.blocks.functions:
                fn = self.blocks.functions[e.name]
                sig = tuple(
                    ArgSpec(p.name, ArgType.ANY, REQUIRED if p.default is None else None)
                    for p in fn.params
                )
                self._args(e.name, sig, e.args, e.name_span, visible, "function")
            elif isinstance(e, ast.FuncCall) and e.name not in FUNCTIONS:
                hint = (
                    f"`{e.name}` is an op: name a layer with `:` (`x: {e.name}(...)`), "
                    "`=` binds a value"
                    if e.name in USER_OPS or e.name in self.blocks.by_name
                    else did_you_mean(e.name, [*FUNCTIONS, *self.blocks.functions])
                    or (
                        "use `int(x)` (toward zero), `floor(x)` or `a // b`"
                        if e.name == "trunc"
                        else "functions are " + ", ".join(f"`{f}`" for f in FUNCTIONS)
                        + "; define one with `def " + e.name + "(...) { return ... }`"
                    )
                )
                self.out.append(
                    error("E0213", f"unknown function `{e.name}`", e.name_span, "here",
                          help=hint)
                )
            stack.extend(ast.children(e))

    def _var(self, e: ast.Var, visible: Visible) -> None:
        d = visible.get(e.name)
        if d is not None:
            d.used = True
            return
        secondary: tuple[Label, ...] = ()
        where = self.bound.get(e.name)
        if where is not None:
            self.misplaced.add(e.name)
            message, label = f"`{e.name}` is not defined at this point", "not visible here"
            secondary = (Label(where, "defined here"),)
            if (where.line, where.column) > (e.span.line, e.span.column) and e.name in self.tensors:
                hint = (f"a tensor can be used only after the statement that names it, which "
                        f"keeps the network free of cycles; move `{e.name} = in` above this use")
            elif (where.line, where.column) > (e.span.line, e.span.column):
                hint = f"`{e.name}` is defined further down; move its definition above this use"
            else:
                hint = (
                    f"`{e.name}` is visible from its definition to the end of the `{{ }}` that "
                    "holds it; define it where this use can see it"
                )
        else:
            label = "not defined here"
            message, hint, secondary = self._unknown(e.name, visible)
        self.out.append(error("E0202", message, e.span, label, help=hint, secondary=secondary))

    def _unknown(self, name: str, visible: Visible) -> tuple[str, str, tuple[Label, ...]]:
        """The message, help and labels for a name defined nowhere in the definition."""
        hint = (
            f"`{name}` is an op or block, not a value: name a layer with `:` "
            f"(`x: {name}`); `=` binds a value"
            if name in USER_OPS or name in self.blocks.by_name
            else literal_hint(name) or did_you_mean(name, [n for n in visible if n[:1] != "."])
        )
        kind = self.definition.kind
        if hint is not None or not self.unindexed:
            return (f"unknown variable `{name}`",
                    hint or f"a {kind} sees only its parameters and bindings; add `{name}` as "
                    "a parameter", ())
        # Inside a repeat without `as i`: the name is most likely the repeat's index.
        count = self.unindexed[-1].count.span
        hint = (
            f"name the repeat's index with `repeat {count.text} as {name}`"
            if len(name) <= 3 or name in _INDEX_NAMES
            else f"if `{name}` is the repeat's index, name it with `repeat {count.text} as "
            f"{name}`; otherwise add it as a parameter of the {kind}"
        )
        return f"`{name}` is not defined here", hint, (Label(count, "this repeat names no index"),)


def literal_hint(name: str) -> str | None:
    """`True`, `None`: other languages' spellings of the literals, and what to write instead."""
    if name.lower() in ("true", "false"):
        return f"write `{name.lower()}`: the booleans are `true` and `false`, in lower case"
    if name.lower() in ("none", "null", "nil"):
        return f"there is no `{name}`: leave the argument out to get its default"
    return None


# Names that say "index" whatever their length (short names are taken as indices anyway).
_INDEX_NAMES = ("idx", "index", "iteration", "layer", "stage", "unit", "step")


# Reporting stops after this many errors: a flood helps nobody, and each "did you mean"
# compares against every name, so an unbounded flood would take quadratic time.
MAX_ERRORS = 100


class _Full(Exception):
    pass


class _Bounded(list[Diagnostic]):
    """The diagnostics of the static checks, refusing errors past MAX_ERRORS."""

    errors = 0

    def append(self, d: Diagnostic) -> None:
        if d.is_error:
            if self.errors >= MAX_ERRORS:
                raise _Full
            self.errors += 1
        super().append(d)

    def __iadd__(self, ds: Iterable[Diagnostic]) -> _Bounded:  # type: ignore[override, misc]
        for d in ds:
            self.append(d)
        return self


def check_program(program: Program) -> tuple[list[Diagnostic], Blocks]:
    """All static checks. Returns the diagnostics (errors and warnings) and the block table."""
    out = _Bounded()
    try:
        blocks = _check_program(program, out)
    except _Full:
        # Only errors fill the list, so the build stops here and the empty table is unused.
        last = out[-1]
        note = f"resdsl stopped after {MAX_ERRORS} errors; fix these and run it again"
        out[-1] = replace(last, notes=(*last.notes, note))
        return list(out), Blocks()
    return list(out), blocks


def _check_program(program: Program, out: list[Diagnostic]) -> Blocks:
    blocks = collect_blocks(program, out)
    main = program.main
    for file in program.files:
        for fn in file.functions:
            _DefinitionChecker(_as_definition(fn), blocks, out).function(fn)
        defs = list(file.blocks) + (list(file.networks) if file is main else [])
        for definition in defs:
            checker = _DefinitionChecker(definition, blocks, out)
            checker.run()
            if file is main:
                for name, span in checker.unused():
                    if definition.kind == "network" and name in PREPROCESSING_FIELDS:
                        continue  # read by the timm protocol, not by an op
                    out.append(
                        warning(
                            "W0102",
                            f"`{name}` is never used",
                            span,
                            "defined here",
                            help=f"remove it, or prefix it with `_` (`_{name}`) to keep it",
                        )
                    )
    out += block_recursion(blocks)
    out += function_recursion(blocks)
    if not any(d.code == "E0201" for d in out):
        # An unknown call may be a misspelt use of a block or import: no warning about those.
        out += unused_definitions(program, blocks)
    return blocks


def _as_definition(fn: ast.Function) -> ast.Definition:
    """A function seen as a block without statements, for the checker's messages."""
    return ast.Definition("function", fn.name, fn.params, (), fn.span, fn.name_span)
