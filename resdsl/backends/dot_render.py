"""DOT text → SVG, PNG or PDF with Graphviz, choosing the renderer.

The `dot` program is used when it is on PATH (a system Graphviz). Otherwise the
`graphviz-pure` program (a static build of Graphviz 16.1.0 in a PyPI wheel, installed by
`pip install resdsl[draw]`; it writes SVG and PNG, not PDF), found on PATH or beside the
running interpreter, so a virtual environment that is not activated still finds its own.
Renderers run as subprocesses with the DOT text on stdin; a missing, unsuitable or failing
renderer is a diagnostic (E0721–E0723), never a traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
from dataclasses import dataclass

from resdsl.arguments import COMMAND_LINE, Spelling
from resdsl.backends.dot_source import MARGIN_IN
from resdsl.diagnostics import SpecError, error

FORMATS = ("svg", "png", "pdf")
# A renderer that takes longer than this is stopped (E0723).
TIMEOUT_S = 300
# PNGs at screen resolution (Graphviz's default is 72 dpi, small for 9-point labels).
PNG_DPI = 96
# The largest PNG drawn, in pixels across and along the direction of flow (top to bottom,
# or left to right with `--lr`), its margins aside: a larger diagram is scaled down to fit.
# Rasterising costs about 0.1 µs and 10 bytes a pixel (a 526 × 48,472 PNG of ResNet-434
# with every block drawn took 2.4 s and 240 MB), so the pixels, not the diagram, would
# otherwise decide the time and memory; at this size a PNG costs at most about a second
# and 100 MB. SVG and PDF are vector formats, drawn at full size.
PNG_MAX_PIXELS = (1_280, 7_680)


@dataclass(frozen=True)
class Renderer:
    name: str
    path: str
    formats: tuple[str, ...]

    def describe(self) -> str:
        """`dot 2.43.0`, `graphviz-pure 0.2.2`: the program and its version."""
        try:
            run = subprocess.run([self.path, "-V"], capture_output=True, timeout=30,
                                 check=False)
        except (OSError, subprocess.TimeoutExpired):
            return self.name
        found = re.search(rb"version (\S+)", run.stderr + run.stdout)
        return f"{self.name} {found[1].decode('ascii', 'replace')}" if found else self.name


def _beside_python(program: str) -> str | None:
    """`program` in the interpreter's scripts folder (a venv's bin/), whether or not that
    folder is on PATH."""
    folders = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    for folder in folders:
        for name in (program, program + ".exe"):
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return None


def find_renderers() -> list[Renderer]:
    """The renderers on this machine, in order of preference."""
    found = []
    dot = shutil.which("dot")
    if dot is not None:
        found.append(Renderer("dot", dot, FORMATS))
    pure = shutil.which("graphviz-pure") or _beside_python("graphviz-pure")
    if pure is not None:
        found.append(Renderer("graphviz-pure", pure, ("svg", "png")))
    return found


def choose(fmt: str, renderers: list[Renderer] | None = None,
           spelling: Spelling = COMMAND_LINE) -> Renderer:
    """The first renderer that writes `fmt`; E0721 when there is none, E0722 when none of
    those installed writes that format."""
    renderers = find_renderers() if renderers is None else renderers
    for renderer in renderers:
        if fmt in renderer.formats:
            return renderer
    if not renderers:
        raise SpecError([error(
            "E0721",
            "drawing needs Graphviz, which is not installed",
            None,
            help="install it with `pip install resdsl[draw]` (the graphviz-pure program: no "
            f"system package needed), or install Graphviz; `{spelling.given('format', 'dot')}` "
            "writes the DOT text without it",
        )])
    names = ", ".join(r.name for r in renderers)
    raise SpecError([error(
        "E0722",
        f"{names} cannot write {fmt.upper()}",
        None,
        help=f"install Graphviz (its `dot` program) for {fmt.upper()}, or choose "
        f"{' or '.join(f for f in FORMATS if any(f in r.formats for r in renderers))}",
    )])


def without_expand(spelling: Spelling) -> str:
    """Drawing repeated blocks folded, as the caller asks for it."""
    return "`expand=False`" if spelling.python else "without `--expand`"


def png_box(lr: bool) -> tuple[int, int]:
    """The largest PNG drawing, (width, height) in pixels, margins aside."""
    across, along = PNG_MAX_PIXELS
    return (along, across) if lr else (across, along)


def png_scaled(data: bytes, lr: bool) -> bool:
    """Whether the PNG `render` wrote was scaled down to fit `png_box`: the drawing then
    fills the box in one direction (one pixel short, for rounding)."""
    width: int
    height: int
    width, height = struct.unpack(">II", data[16:24])
    margin = 2 * round(MARGIN_IN * PNG_DPI)
    box_w, box_h = png_box(lr)
    return width >= box_w + margin - 1 or height >= box_h + margin - 1


def render(dot: str, fmt: str, renderer: Renderer, lr: bool = False,
           spelling: Spelling = COMMAND_LINE) -> bytes:
    """Run `renderer` on `dot`; its output in format `fmt` (E0723 when it fails). A PNG is
    drawn at `PNG_DPI`, scaled down to fit `png_box(lr)` if it is larger."""
    command = [renderer.path, "-q", f"-T{fmt}"]
    if fmt == "png":
        # `size` is in inches: Graphviz scales the drawing down uniformly to fit it.
        box_w, box_h = png_box(lr)
        command += [f"-Gdpi={PNG_DPI}", f"-Gsize={box_w / PNG_DPI:g},{box_h / PNG_DPI:g}"]
    try:
        run = subprocess.run(command, input=dot.encode("utf-8"), capture_output=True,
                             timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise SpecError([error(
            "E0723",
            f"`{renderer.name}` did not finish rendering the diagram in {TIMEOUT_S} s",
            None,
            help=f"draw less: `{spelling.given('depth', 'blocks')}` or "
            f"`{spelling.given('depth', 'stages')}`, and {without_expand(spelling)}",
        )]) from None
    except OSError as exc:
        raise SpecError([error(
            "E0723", f"`{renderer.name}` could not be run: {exc.strerror or exc}", None,
            help=f"check the program at {renderer.path}",
        )]) from None
    if run.returncode != 0 or not run.stdout:
        lines = run.stderr.decode("utf-8", "replace").strip().splitlines()
        notes = tuple(f"{renderer.name}: {line}" for line in lines[:5])
        raise SpecError([error(
            "E0723",
            f"`{renderer.name}` failed to render the diagram (exit status {run.returncode})",
            None,
            notes=notes,
            help=f"`{spelling.given('format', 'dot')}` writes the DOT text; please report the "
            "spec if it is a resdsl diagram that Graphviz rejects",
        )])
    return run.stdout
