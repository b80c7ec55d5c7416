"""The compiler as one function: parse → check → elaborate → verify.

`build()` is what the CLI and the tests call. It imports neither torch nor onnx.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from dataclasses import dataclass, field

from resdsl.diagnostics import Diagnostic, SpecError, error, fail
from resdsl.ir.elaborate import Elaborator
from resdsl.ir.evaluate import FUNCTIONS, Evaluator
from resdsl.ir.graph import Graph
from resdsl.ir.ops import MAX_DIM, Shape, Value
from resdsl.ir.resolve import check_program, did_you_mean
from resdsl.passes.names import check_module_names
from resdsl.passes.shapes import verify_shapes
from resdsl.passes.structure import check_structure
from resdsl.syntax import ast, parse_expression
from resdsl.syntax.loader import Program, load_program


class UsageError(Exception):
    """A mistake on the command line rather than in the spec (exit code 2)."""


@dataclass(frozen=True)
class Options:
    defines: Mapping[str, str] = field(default_factory=dict)
    input_shape: Shape | None = None
    network: str | None = None


@dataclass
class Result:
    program: Program
    network: ast.Definition
    params: dict[str, Value]
    graph: Graph
    warnings: list[Diagnostic]


def parse_input_shape(text: str) -> Shape:
    """`3x224x224` (or `3×224×224`, or `784`) → (3, 224, 224)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--input takes CxHxW or C, e.g. 3x224x224, not `{text}`") from None
    if len(dims) not in (1, 3) or not all(1 <= d <= MAX_DIM for d in dims):
        raise UsageError(f"--input takes CxHxW or C with positive sizes, not `{text}`")
    return dims


def select_network(program: Program, name: str | None) -> ast.Definition:
    networks = program.main.networks
    if name is not None:
        for net in networks:
            if net.name == name:
                return net
        names = [n.name for n in networks]
        hint = did_you_mean(name, names)
        raise UsageError(
            f"`{program.main.source.path}` has no network `{name}`"
            + (f"; {hint}" if hint else f" (it has: {', '.join(names) or 'none'})")
        )
    if len(networks) == 1:
        return networks[0]
    source = program.main.source
    if not networks:
        raise SpecError(
            [
                error(
                    "E0211",
                    f"`{source.path}` defines no network",
                    source.span(0, 0),
                    "nothing to compile",
                    help="add `network name(...) { input [C, H, W] ... }`; a file of blocks "
                    "alone is a library to `use`",
                )
            ]
        )
    listed = ", ".join(f"`{n.name}`" for n in networks)
    raise SpecError(
        [
            error(
                "E0211",
                f"`{source.path}` defines several networks: {listed}",
                networks[1].name_span,
                "a second network",
                help="choose one with `--network NAME`",
            )
        ]
    )


def _require_constant(expr: ast.Expr) -> None:
    """A `-D` value is a constant expression: no variables, no `in`, only known functions."""
    stack: list[ast.Expr] = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Var):
            raise fail("E0202", f"`{e.name}` is not a value (strings need double quotes: "
                       f'"{e.name}")', e.span)
        if isinstance(e, ast.In):
            raise fail("E0212", "`in` has no value on the command line", e.span)
        if isinstance(e, ast.FuncCall) and e.name not in FUNCTIONS:
            raise fail("E0213", f"unknown function `{e.name}`", e.span)
        stack.extend(ast.children(e))


def network_params(net: ast.Definition, defines: Mapping[str, str]) -> dict[str, Value]:
    """The network's parameters: defaults, overridden by `-D NAME=VALUE`."""
    names = [p.name for p in net.params]
    for name in defines:
        if name not in names:
            hint = did_you_mean(name, names)
            raise UsageError(
                f"network `{net.name}` has no parameter `{name}`"
                + (f"; {hint}" if hint else f" (it has: {', '.join(names) or 'none'})")
            )
    evaluate = Evaluator()
    values: dict[str, Value] = {}
    for param in net.params:
        if param.name in defines:
            try:
                expr = parse_expression(defines[param.name], f"-D {param.name}")
                _require_constant(expr)
                values[param.name] = evaluate(expr, {}, None)
            except SpecError as exc:
                reason = exc.diagnostics[0].message if exc.diagnostics else "invalid"
                raise UsageError(
                    f"-D {param.name}={defines[param.name]}: {reason} (values are numbers, "
                    'true/false, "strings" or [lists])'
                ) from None
        elif param.default is not None:
            values[param.name] = evaluate(param.default, values, None)
        else:
            raise SpecError(
                [
                    error(
                        "E0402",
                        f"network parameter `{param.name}` has no default and no value",
                        param.span,
                        "no default",
                        help=f"give it a default, or pass `-D {param.name}=VALUE`",
                    )
                ]
            )
    return values


def build(path: str, options: Options | None = None) -> Result:
    """Compile the spec at `path` to a checked graph; raise SpecError listing every problem."""
    # A deep network's graph is hundreds of thousands of long-lived objects and building it
    # makes almost no cyclic garbage, so the cyclic collector's full passes are pure overhead
    # that only starts once the graph outgrows the rest of the heap: about a third of the
    # time at 10,000 blocks, nothing at 100 (bench/frontend_scaling.py). Pause it while
    # building; reference counting still frees everything as usual.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _build(path, options or Options())
    finally:
        if enabled:
            gc.enable()


def _build(path: str, options: Options) -> Result:
    program = load_program(path)
    diagnostics, blocks = check_program(program)
    warnings = [d for d in diagnostics if not d.is_error]
    if len(warnings) != len(diagnostics):
        raise SpecError(diagnostics)
    try:
        net = select_network(program, options.network)
        params = network_params(net, options.defines)
        graph = Graph(net.name)
        Elaborator(blocks, graph).network(net, params, options.input_shape)
        check_module_names(graph)
    except SpecError as exc:
        raise SpecError(warnings + exc.diagnostics) from None
    check_structure(graph)
    verify_shapes(graph)
    return Result(program, net, params, graph, warnings)
