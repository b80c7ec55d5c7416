"""`resdsl draw` and `Network.draw()`: a spec → its diagram, rendered and written.

`draw_graph` turns a checked graph into a `Drawing` (the DOT text, and the rendered bytes
unless the format is `dot`). `draw_file` is the command: it builds the spec and, when
elaboration stops at an error, draws the graph made up to that point with the failing place
highlighted, then reports the error as `check` does. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from resdsl.arguments import COMMAND_LINE, ArgumentError, Spelling, choice
from resdsl.backends.dot_render import (
    FORMATS,
    choose,
    find_renderers,
    png_box,
    png_scaled,
    render,
    without_expand,
)
from resdsl.backends.dot_source import Settings, Size, measure
from resdsl.diagnostics import Diagnostic, SpecError, error
from resdsl.ir.elaborate import Elaborator
from resdsl.ir.graph import Graph
from resdsl.ir.resolve import check_program
from resdsl.outputs import check_output, write_atomic
from resdsl.passes.counts import totals
from resdsl.pipeline import Options, build, network_params, resolve, select_network
from resdsl.syntax.loader import load_program

# Every format `resdsl draw` writes: the renderers' and the DOT text itself.
ALL_FORMATS = (*FORMATS, "dot")
# File suffixes that choose a format when `--format` is not given.
SUFFIXES = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
# What laying a diagram out may cost, in each of the counts of `dot_source.Size`. Their
# costs add up (they are different phases of the layout), so a diagram is rendered when its
# shares of these limits add up to at most 1. At each limit alone, the worst family of
# diagrams measured (bench/draw_speed.py) lays out in about a second of CPU on the shared,
# loaded development machine, well within the 5 s / 1 GB contract of docs/robustness.md with
# the rest of the command; a diagram that large is unreadable anyway.
MAX_LAYOUT = 7_000
MAX_CLUSTER_RANKS = 1_200_000
MAX_PAIRS = 175_000


@dataclass(frozen=True)
class Drawing:
    """A diagram: its DOT text, and `data` in `format` (the DOT text itself for "dot")."""

    dot: str
    format: str
    data: bytes
    # The program that rendered it (`graphviz-pure 0.2.2`); None for the DOT text.
    renderer: str | None = None
    # A PNG too large for `dot_render.PNG_MAX_PIXELS`: scaled down to fit.
    scaled: bool = False

    def save(self, path: str, inputs: tuple[str, ...] = ()) -> None:
        """Write `data` to `path` atomically, never over one of `inputs` (the spec files)."""
        check_output(path, inputs)
        data = self.data

        def write(f: BinaryIO) -> None:
            f.write(data)

        write_atomic(path, write)

    def _repr_svg_(self) -> str | None:
        return self.data.decode("utf-8") if self.format == "svg" else None


def draw_graph(
    graph: Graph,
    settings: Settings | None = None,
    fmt: str = "svg",
    *,
    note: str = "",
    failure: Diagnostic | None = None,
    renderer: str | None = None,
    spelling: Spelling = COMMAND_LINE,
) -> Drawing:
    """Draw `graph` and render it to `fmt` (svg, png, pdf, or dot for the DOT text), with
    the preferred renderer, or the one named `renderer` ("dot", "graphviz-pure")."""
    if fmt not in ALL_FORMATS:
        raise ValueError(f"format must be one of {', '.join(ALL_FORMATS)}, not {fmt!r}")
    settings = settings or Settings()
    dot, size = measure(graph, settings, note=note, failure=failure)
    if fmt == "dot":
        return Drawing(dot, fmt, dot.encode("utf-8"))
    check_size(size, settings, spelling)
    found = find_renderers()
    program = choose(fmt, [r for r in found if renderer is None or r.name == renderer],
                     spelling)
    data = render(dot, fmt, program, settings.lr, spelling)
    scaled = fmt == "png" and png_scaled(data, settings.lr)
    return Drawing(dot, fmt, data, program.describe(), scaled)


def layout_share(size: Size) -> float:
    """How much of what a layout may cost a diagram of `size` needs (1: all of it)."""
    return (size.layout / MAX_LAYOUT + size.cluster_ranks / MAX_CLUSTER_RANKS
            + size.pairs / MAX_PAIRS)


def check_size(size: Size, settings: Settings, spelling: Spelling = COMMAND_LINE) -> None:
    """E0724 when laying out a diagram of `size` would take Graphviz too long or too much
    memory: counted from the DOT text, before anything is rendered."""
    share = layout_share(size)
    if share <= 1:
        return
    terms = [
        (size.layout / MAX_LAYOUT,
         f"{size.nodes:,} nodes and {size.edges:,} edges over {size.ranks:,} levels"
         + (f", long edges crossing {size.virtual:,} of them" if size.virtual else "")
         + f": {size.layout:,} layout units, of {MAX_LAYOUT:,}"),
        (size.cluster_ranks / MAX_CLUSTER_RANKS,
         f"{size.clusters:,} clusters across {size.ranks:,} levels: "
         f"{size.cluster_ranks:,} cluster levels, of {MAX_CLUSTER_RANKS:,}"),
        (size.pairs / MAX_PAIRS,
         f"up to {size.widest:,} nodes and clusters side by side: {size.pairs:,} pairs to "
         f"order, of "
         f"{MAX_PAIRS:,}"),
    ]
    notes = tuple(f"{text} ({part:.0%})" for part, text in sorted(terms, reverse=True)
                  if part >= 0.05)
    blocks, stages = (f"`{spelling.given('depth', d)}`" for d in ("blocks", "stages"))
    coarser = {"layers": f"{blocks} or {stages}", "blocks": stages}
    ways = [f"a coarser depth ({coarser[settings.depth]})"] if settings.depth in coarser else []
    if settings.expand:
        ways.append(f"{without_expand(spelling)} (repeated blocks folded into one)")
    ways.append("a smaller network (`-D`)" if not spelling.python
                else "a smaller network (its parameters)")
    raise SpecError([error(
        "E0724",
        f"the diagram is too large to render: laying it out needs {share:.1f} times the "
        "work allowed",
        None,
        notes=notes,
        help=f"draw less: {', or '.join(ways)}; `{spelling.given('format', 'dot')}` writes "
        "the DOT text of any size",
    )])


def format_for(output: str | None, fmt: str | None,
               spelling: Spelling = COMMAND_LINE) -> str:
    """`--format` (`format=`), else the output's suffix, else svg. A suffix that names no
    format (`d.jpg`) is an ArgumentError: the file would hold SVG under another name."""
    if fmt is not None:
        return choice(fmt, "format", ALL_FORMATS, spelling)
    suffix = "" if output is None else Path(output).suffix.lower()
    if not suffix:  # no output, or a name without a suffix (`-o /dev/stdout`)
        return "svg"
    if suffix not in SUFFIXES:
        listed = ", ".join(SUFFIXES)
        formats = ", ".join(ALL_FORMATS)
        raise ArgumentError(
            f"{spelling.given('path', output)}: `{suffix}` is not a format resdsl draws; "
            f"the suffix chooses the format: {listed}, or choose one ({formats}) with "
            f"`{spelling.usage('format', 'FORMAT')}`", "path", output)
    return SUFFIXES[suffix]


@dataclass
class Report:
    """What `draw_file` did: the file it wrote (if any) and every diagnostic to show."""

    network: str
    output: str | None = None
    renderer: str | None = None
    params: int = 0
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # The spec has an error: the diagram (if written) stops there.
    failed: bool = False
    # A PNG scaled down to fit this box, (width, height) in pixels.
    scaled_to: tuple[int, int] | None = None


def draw_file(
    spec: str,
    options: Options,
    settings: Settings,
    fmt: str | None = None,
    output: str | None = None,
    note: str = "",
) -> Report:
    """`resdsl draw`: build `spec`, draw it and write it to `output` (default: the network's
    name with the format's suffix). A spec that fails while it is elaborated is drawn up to
    the error; a spec that fails before (syntax, names) is not drawn. Raises SpecError only
    when the drawing itself cannot be made (no renderer, a failing renderer)."""
    fmt = format_for(output, fmt)
    spec, options = resolve(spec, options)  # a zoo name: its spec, for the partial drawing too
    try:
        result = build(spec, options)
    except SpecError as exc:
        return _draw_partial(spec, options, settings, fmt, output, note, exc)
    graph = result.graph
    target = output or f"{graph.name}.{fmt}"
    files = tuple(f.source.path for f in result.program.files)
    check_output(target, files)
    drawing = draw_graph(graph, settings, fmt, note=note)
    drawing.save(target, files)
    return Report(graph.name, target, drawing.renderer, totals(graph).params,
                  list(result.warnings), scaled_to=_scaled_to(drawing, settings))


def _scaled_to(drawing: Drawing, settings: Settings) -> tuple[int, int] | None:
    return png_box(settings.lr) if drawing.scaled else None


def _draw_partial(spec: str, options: Options, settings: Settings, fmt: str,
                  output: str | None, note: str, exc: SpecError) -> Report:
    graph, files = partial_graph(spec, options)
    failure = next((d for d in exc.diagnostics if d.is_error), None)
    if graph is None or failure is None or len(graph) == 0:
        return Report(graph.name if graph else "", diagnostics=list(exc.diagnostics),
                      failed=True)
    target = output or f"{graph.name}.{fmt}"
    report = Report(graph.name, diagnostics=list(exc.diagnostics), failed=True)
    check_output(target, files)
    try:
        drawing = draw_graph(graph, settings, fmt, note=note, failure=failure)
    except SpecError as render_error:
        report.diagnostics += render_error.diagnostics
        return report
    drawing.save(target, files)
    report.output, report.renderer = target, drawing.renderer
    report.scaled_to = _scaled_to(drawing, settings)
    report.params = totals(graph).params
    return report


def partial_graph(spec: str, options: Options) -> tuple[Graph | None, tuple[str, ...]]:
    """The graph elaboration made before it stopped at an error (the pipeline's steps, with
    the graph kept); None when the spec fails before elaboration (syntax, names)."""
    try:
        program = load_program(spec)
        diagnostics, blocks = check_program(program)
        if any(d.is_error for d in diagnostics):
            return None, ()
        net = select_network(program, options.network)
        params = network_params(net, options.defines)
    except SpecError:
        return None, ()
    files = tuple(f.source.path for f in program.files)
    graph = Graph(net.name)
    with contextlib.suppress(SpecError):  # the graph stops where the error is
        Elaborator(blocks, graph).network(net, params, options.input_shape)
    return graph, files
