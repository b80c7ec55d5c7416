"""Which definitions call which: blocks and functions that recurse (E0207, or E0004 past
MAX_CALL_DEPTH), and the blocks and imports of the main file that no network reaches (W0101,
W0103). These checks look at the whole program at once; `resolve.py` checks each definition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from resdsl.diagnostics import Diagnostic, error, warning
from resdsl.syntax import ast
from resdsl.syntax.loader import Program

if TYPE_CHECKING:
    from resdsl.ir.resolve import Blocks

# Blocks calling blocks; the checks and elaboration recurse once per level.
MAX_CALL_DEPTH = 100


def walk_stmts(body: Iterable[ast.Stmt]) -> Iterator[ast.Stmt]:
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.SeqStmt, ast.RepeatStmt, ast.PrimitiveStmt)):
            yield from walk_stmts(stmt.body)
        if isinstance(stmt, ast.PrimitiveStmt):
            for clause in (stmt.shortcut, stmt.transform):
                if clause is not None and clause.body is not None:
                    yield from walk_stmts(clause.body)


def calls_in(definition: ast.Definition) -> Iterator[ast.Call]:
    for stmt in walk_stmts(definition.body):
        if isinstance(stmt, ast.CallStmt):
            yield stmt.call
        if isinstance(stmt, ast.PrimitiveStmt):
            for clause in (stmt.shortcut, stmt.transform):
                if clause is not None and clause.call is not None:
                    yield clause.call


def block_recursion(blocks: Blocks) -> list[Diagnostic]:
    """Blocks may not call themselves, directly or through others."""
    out: list[Diagnostic] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    reported: set[frozenset[str]] = set()
    too_deep: list[bool] = []

    def visit(name: str, stack: list[tuple[str, ast.Call]]) -> None:
        state[name] = 1
        for call in calls_in(blocks.by_name[name]):
            target = call.target
            if target not in blocks.by_name:
                continue
            if state.get(target) == 1:
                names = [n for n, _ in stack] + [name]
                cycle = names[names.index(target) :]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    chain = " → ".join([*cycle, target])
                    out.append(
                        error(
                            "E0207",
                            f"blocks call each other recursively: {chain}",
                            call.span,
                            f"`{name}` calls `{target}` here",
                            help="a network is finite: unroll the recursion with `repeat`",
                        )
                    )
            elif target not in state and len(stack) >= MAX_CALL_DEPTH:
                if not too_deep:
                    too_deep.append(True)
                    out.append(
                        error(
                            "E0004",
                            f"blocks call each other more than {MAX_CALL_DEPTH} levels deep",
                            call.span,
                            f"`{name}` calls `{target}` here, {len(stack) + 1} calls down",
                            help="call the blocks one after another from one caller, not each "
                            "inside the one before",
                        )
                    )
            elif target not in state:
                visit(target, [*stack, (name, call)])
        state[name] = 2

    for name in blocks.by_name:
        if name not in state:
            visit(name, [])
    return out


def _function_calls(fn: ast.Function) -> Iterator[ast.FuncCall]:
    stack: list[ast.Expr] = [b.value for b in fn.bindings] + [fn.result]
    stack += [p.default for p in fn.params if p.default is not None]
    while stack:
        e = stack.pop()
        if isinstance(e, ast.FuncCall):
            yield e
        stack.extend(ast.children(e))


def function_recursion(blocks: Blocks) -> list[Diagnostic]:
    """Functions may not call themselves, directly or through others (E0207, as blocks)."""
    out: list[Diagnostic] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for call in _function_calls(blocks.functions[name]):
            if call.name not in blocks.functions:
                continue
            if state.get(call.name) == 1:
                stack = [*path, name]
                cycle = [*stack[stack.index(call.name):], call.name]
                out.append(error("E0207", "functions call each other recursively: "
                                 + " → ".join(cycle), call.span,
                                 f"`{name}` calls `{call.name}` here",
                                 help="a function is a formula: write the recursion out"))
            elif call.name not in state and len(path) < MAX_CALL_DEPTH:
                visit(call.name, [*path, name])
        state[name] = 2

    for name in blocks.functions:
        if name not in state:
            visit(name, [])
    return out


def unused_definitions(program: Program, blocks: Blocks) -> list[Diagnostic]:
    """Blocks of the main file, and imports, that no network of the main file reaches."""
    reached: set[str] = set()
    frontier = [call.target for net in program.main.networks for call in calls_in(net)]
    while frontier:
        name = frontier.pop()
        if name in reached or name not in blocks.by_name:
            continue
        reached.add(name)
        frontier += [c.target for c in calls_in(blocks.by_name[name])]
    out: list[Diagnostic] = []
    if not program.main.networks:
        return out  # a block library: its blocks are for others
    for block in program.main.blocks:
        if block.name not in reached and blocks.by_name.get(block.name) is block:
            out.append(
                warning(
                    "W0101",
                    f"block `{block.name}` is never used",
                    block.name_span,
                    "defined here",
                    help="remove it, or call it from the network",
                )
            )
    used_files = {id(blocks.file_of[n]) for n in reached}
    for use in program.main.uses:
        target = program.imports.get((program.main.source.path, use.path))
        if target is None or _reaches_used(program, target, used_files, set()):
            continue
        out.append(
            warning(
                "W0103",
                f"nothing from `{use.path}` is used",
                use.span,
                "imported here",
                help="remove the import",
            )
        )
    return out


def _reaches_used(program: Program, file: ast.File, used: set[int], seen: set[int]) -> bool:
    if id(file) in used:
        return True
    seen.add(id(file))
    for use in file.uses:
        target = program.imports.get((file.source.path, use.path))
        if (
            target is not None
            and id(target) not in seen
            and _reaches_used(program, target, used, seen)
        ):
            return True
    return False
