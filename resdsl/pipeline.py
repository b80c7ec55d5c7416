"""The compiler as one function: parse → check → elaborate → verify.

`build()` is what the CLI and the tests call. It imports neither torch nor onnx.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from resdsl.arguments import COMMAND_LINE, ArgumentError, Spelling
from resdsl.arguments import UsageError as UsageError  # re-exported: where it was defined
from resdsl.diagnostics import Diagnostic, SpecError, error, fail
from resdsl.ir.elaborate import Elaborator
from resdsl.ir.evaluate import FUNCTIONS, Evaluator
from resdsl.ir.features import FeatureInfo
from resdsl.ir.graph import Graph
from resdsl.ir.ops import Shape, Value
from resdsl.ir.resolve import Blocks, check_program, did_you_mean, literal_hint
from resdsl.passes.counts import state_shapes
from resdsl.passes.names import check_module_names, check_output_names
from resdsl.passes.shapes import verify_shapes
from resdsl.passes.structure import check_structure
from resdsl.syntax import ast, parse_expression
from resdsl.syntax.loader import Program, load_program


@dataclass(frozen=True)
class Options:
    """What to build: `-D` overrides as spec text, the input shape, the network's name, and
    how messages name these (`--network` on the command line, `network=` in the API)."""

    defines: Mapping[str, str] = field(default_factory=dict)
    input_shape: Shape | None = None
    network: str | None = None
    spelling: Spelling = COMMAND_LINE
    # A features network (`--features`, `Network.features()`): the network cut after its
    # feature points `out_indices` (None: all), each an output.
    features: bool = False
    out_indices: tuple[int, ...] | None = None


@dataclass(repr=False)
class Result:
    program: Program
    network: ast.Definition
    params: dict[str, Value]
    graph: Graph
    warnings: list[Diagnostic]
    # What it was built with (and so how its messages name the arguments).
    options: Options = field(default_factory=Options)
    # For a features network, its feature points (`FeatureInfo`), in output order; None
    # for the full network.
    feature_info: tuple[FeatureInfo, ...] | None = None
    # For a features network, the full network's state_dict keys it does not have: a full
    # checkpoint's values for them are set aside when it is loaded, not unexpected.
    dropped_keys: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        # The fields hold the whole program and graph: a dump would be megabytes.
        return (f"<Result {self.network.name}: {len(self.graph):,} nodes, "
                f"{len(self.warnings)} warnings>")


def select_network(program: Program, name: str | None,
                   spelling: Spelling = COMMAND_LINE) -> ast.Definition:
    networks = program.main.networks
    if name is not None:
        for net in networks:
            if net.name == name:
                return net
        names = [n.name for n in networks]
        hint = did_you_mean(name, names)
        raise ArgumentError(
            f"`{program.main.source.path}` has no network `{name}`"
            + (f"; {hint}" if hint else f" (it has: {', '.join(names) or 'none'})"),
            "network", name,
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
                help=f"choose one with `{spelling.usage('network', 'NAME')}`",
            )
        ]
    )


def _require_constant(expr: ast.Expr) -> None:
    """A `-D` value is a constant expression: no variables, no `in`, only known functions."""
    stack: list[ast.Expr] = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Var):
            hint = literal_hint(e.name) or f'strings need double quotes: "{e.name}"'
            raise fail("E0202", f"`{e.name}` is not a value ({hint})", e.span)
        if isinstance(e, ast.In):
            raise fail("E0212", "`in` has no value on the command line", e.span)
        if isinstance(e, ast.FuncCall) and e.name not in FUNCTIONS:
            raise fail("E0213", f"unknown function `{e.name}`", e.span)
        stack.extend(ast.children(e))


def network_params(net: ast.Definition, defines: Mapping[str, str],
                   spelling: Spelling = COMMAND_LINE) -> dict[str, Value]:
    """The network's parameters: defaults, overridden by `defines` (`-D NAME=VALUE`, or the
    keyword arguments of `resdsl.load` written as spec text)."""
    names = [p.name for p in net.params]
    for name in defines:
        if name not in names:
            hint = did_you_mean(name, names)
            raise ArgumentError(
                f"network `{net.name}` has no parameter `{name}`"
                + (f"; {hint}" if hint else f" (it has: {', '.join(names) or 'none'})"),
                name, defines[name],
            )
    evaluate = Evaluator()
    values: dict[str, Value] = {}
    for param in net.params:
        if param.name in defines:
            given = spelling.define(param.name, defines[param.name])
            try:
                expr = parse_expression(defines[param.name], given)
                _require_constant(expr)
                values[param.name] = evaluate(expr, {}, None)
            except SpecError as exc:
                reason = exc.diagnostics[0].message if exc.diagnostics else "invalid"
                raise ArgumentError(
                    f"{given}: {reason} (values are numbers, "
                    'true/false, "strings" or [lists])',
                    param.name, defines[param.name],
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
                        help="give it a default, or pass "
                        f"`{spelling.define(param.name, 'VALUE')}`",
                    )
                ]
            )
    return values


def build(path: str, options: Options | None = None,
          text: str | bytes | None = None) -> Result:
    """Compile the spec at `path` to a checked graph; raise SpecError listing every problem.
    `text`, when given, is the spec's source, checked as if it were the file at `path`.
    `path` may be a zoo name (`timm:resnet50d`): its spec, with its row's parameters under
    `options.defines` (`resolve`)."""
    path, options = resolve(path, options or Options(), text)
    try:
        with collector_paused():
            return _build(path, options, text)
    except SpecError as exc:
        if text is None and [d.code for d in exc.diagnostics] == ["E0001"]:
            raise _zoo_hint(exc, path) from None
        raise


def _zoo_hint(exc: SpecError, path: str) -> SpecError:
    """A missing file named like a zoo model (`resdsl info resnet50`): E0001 says which
    zoo name it may be (`tv:resnet50`)."""
    from resdsl import zoo

    d = exc.diagnostics[0]
    bare = path[:-len(".res")] if path.endswith(".res") else path
    names = [e.qualified for e in zoo.entries() if e.name == bare]
    if d.primary is not None or not names or "/" in path or "\\" in path:
        return exc
    listed = " or ".join(f"`{n}`" for n in names)
    return SpecError([replace(d, help=f"for the published model, write {listed} (a zoo "
                                      "name: `resdsl zoo` lists them)")])


def resolve(path: str, options: Options, text: str | bytes | None = None
            ) -> tuple[str, Options]:
    """The one place a spec argument becomes a file: a zoo name (`timm:resnet50d`,
    `tv:resnet50`) is its row's spec, built with the row's parameters and then the caller's
    (`-D` on top of a zoo name overrides the row), at the input the model is published at
    (resdsl/zoo/inputs.py); a path stays itself. ArgumentError E0005 for a zoo name the zoo
    lacks."""
    from resdsl import zoo

    if text is not None or not zoo.is_zoo_name(path):
        return path, options
    from resdsl.zoo.inputs import published_input

    spec, defines = zoo.resolve(path, options.defines)
    # The model's published input, unless the caller gives one (`--input`, `input_shape=`).
    shape = options.input_shape or published_input(zoo.lookup(path).qualified)
    return spec, replace(options, defines=defines, input_shape=shape)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run a build with Python's cyclic garbage collector paused."""
    # A deep network's graph is hundreds of thousands of long-lived objects and building it
    # makes almost no cyclic garbage, so the cyclic collector's full passes are pure overhead
    # that only starts once the graph outgrows the rest of the heap: about a third of the
    # time at 10,000 blocks, nothing at 100 (bench/frontend_scaling.py). Pause it while
    # building; reference counting still frees everything as usual.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(path: str, options: Options, text: str | bytes | None) -> Result:
    program = load_program(path, text)
    diagnostics, blocks = check_program(program)
    warnings = [d for d in diagnostics if not d.is_error]
    if len(warnings) != len(diagnostics):
        raise SpecError(diagnostics)
    try:
        net = select_network(program, options.network, options.spelling)
    except SpecError as exc:
        raise SpecError(warnings + exc.diagnostics) from None
    return build_network(program, blocks, net, options, warnings)


def build_network(program: Program, blocks: Blocks, net: ast.Definition, options: Options,
                  warnings: list[Diagnostic]) -> Result:
    """The stages after the static checks, for one network of a checked program: its
    parameters, elaboration, the graph's checks and, with `options.features`, the cut to its
    features. The language server builds every network of a file with this, after checking
    the file once."""
    try:
        params = network_params(net, options.defines, options.spelling)
        graph = Graph(net.name)
        Elaborator(blocks, graph).network(net, params, options.input_shape)
        check_module_names(graph)
        check_output_names(graph)
    except SpecError as exc:
        raise SpecError(warnings + exc.diagnostics) from None
    check_structure(graph)
    verify_shapes(graph)
    result = Result(program, net, params, graph, warnings, options)
    return with_features(result, options.out_indices) if options.features else result


def with_features(result: Result, out_indices: tuple[int, ...] | None) -> Result:
    """`result`'s network cut after its feature points `out_indices` (None: all), each an
    output (`resdsl.features`); E0740 for a network without feature maps, E0741/E0742 for
    bad indices."""
    from resdsl.features import features

    options = result.options
    graph, points = features(result.graph, out_indices, result.network.name_span,
                             options.spelling)
    dropped = frozenset(state_shapes(result.graph)) - frozenset(state_shapes(graph))
    return Result(result.program, result.network, result.params, graph, result.warnings,
                  replace(options, features=True, out_indices=out_indices), tuple(points),
                  dropped)
