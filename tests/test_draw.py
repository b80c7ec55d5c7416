"""`resdsl draw`: the diagram's structure, DOT goldens, real renders, renderer choice, the
drawing of invalid specs, the diagnostics of rendering, and the API.

DOT goldens are in tests/golden/dot/ (`NAME.dot` for each case below; `bad_*.res` there are
invalid specs drawn up to their error). RESDSL_UPDATE_GOLDEN=1 rewrites them after a
deliberate change; review the diff, and re-run scripts/gallery.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import resdsl
import resdsl.pipeline
from resdsl.backends import dot_draw, dot_render, dot_source
from resdsl.backends.dot_draw import layout_share
from resdsl.backends.dot_lowering import EDGE_STYLES, LOOKS
from resdsl.backends.dot_render import Renderer, find_renderers
from resdsl.backends.dot_source import Settings, _Drawer, element_count, generate, measure
from resdsl.cli import _options, _parser
from resdsl.ir.graph import Graph
from resdsl.ir.ops import OPS
from resdsl.ir.primitives import PRIMITIVES
from tests.conftest import ROOT, run_cli
from tests.test_docs import res_blocks

GOLDEN = ROOT / "tests" / "golden" / "dot"
COMPILE = ROOT / "tests" / "golden" / "compile"
# (golden name, spec, arguments)
CASES = [
    ("resnet50_stages", "specs/resnet50.res", ["--depth", "stages"]),
    ("resnet50_blocks", "specs/resnet50.res", []),
    ("resnet18_layers", "specs/resnet18.res", ["--depth", "layers"]),
    ("resnet18_blocks_expand_lr", "specs/resnet18.res", ["--expand", "--lr"]),
    ("resnext50_32x4d_blocks", "specs/resnext50_32x4d.res", []),
    ("resnext50_32x4d_layers", "specs/resnext50_32x4d.res", ["--depth", "layers"]),
    ("densenet121_blocks", "specs/densenet121.res", []),
    ("densenet121_layers", "specs/densenet121.res", ["--depth", "layers", "--no-shapes"]),
    ("dpn92_stages", "specs/dpn92.res", ["--depth", "stages"]),
    ("dpn92_blocks", "specs/dpn92.res", []),
    ("seresnet50_blocks", "specs/seresnet50.res", []),
    ("highway_cifar19_layers", "specs/highway_cifar19.res", ["--depth", "layers"]),
    ("rezero_resnet56_blocks", "specs/rezero_resnet56.res", []),
    ("resnet20_blocks", "specs/resnet20.res", ["--input", "3x64x64", "-D", "classes=100"]),
    ("bad_skip_blocks", "tests/golden/dot/bad_skip.res", []),
    ("bad_skip_layers", "tests/golden/dot/bad_skip.res", ["--depth", "layers"]),
    ("bad_gate_blocks", "tests/golden/dot/bad_gate.res", []),
]
HAS_RENDERER = bool(find_renderers())
needs_renderer = pytest.mark.skipif(not HAS_RENDERER, reason="no Graphviz renderer installed "
                                    "(pip install -e '.[draw]')")


def _dot(tmp_path: Path, spec: str, *args: str) -> tuple[str, int, str]:
    out = tmp_path / "d.dot"
    run = run_cli("draw", spec, "--format", "dot", "-o", str(out), *args)
    return (out.read_text("utf-8") if out.exists() else ""), run.code, run.err


# ------------------------------------------------------------------ the look table


def test_every_op_has_a_look() -> None:
    missing = sorted(set(OPS) - set(LOOKS))
    assert not missing, f"ops without an entry in dot_lowering.LOOKS: {missing}"
    assert not set(LOOKS) - set(OPS)


def test_every_edge_kind_has_a_style_and_colours_are_six_digit_hex() -> None:
    for look in LOOKS.values():
        for index in range(3):
            for prim in (*PRIMITIVES, ""):
                assert look.inputs(index, prim) in EDGE_STYLES
    for style in EDGE_STYLES.values():
        assert re.fullmatch(r"#[0-9a-f]{6}", style.color)  # Graphviz 2.43 rejects #abc


# ------------------------------------------------------------------ frames (graph provenance)


def test_frames_keep_the_spec_structure() -> None:
    g = resdsl.load("specs/resnext50_32x4d.res").graph
    groups = [f for f in g.frames if f.kind == "primitive" and f.name == "group"]
    assert len(groups) == 16 and all(f.args == {"groups": 32, "merge": "sum"} for f in groups)
    shortcuts = [f for f in g.frames if f.kind == "clause" and f.name == "shortcut"]
    assert len(shortcuts) == 4  # one projection per stage
    repeats = [f for f in g.frames if f.kind == "repeat"]
    assert [(f.path, f.args["count"]) for f in repeats] == [
        ("layer1", 3), ("layer2", 4), ("layer3", 6), ("layer4", 3)]
    for f in g.frames:
        assert f.end is not None and f.output is not None and f.start <= f.end
        if f.parent is not None:
            p = g.frames[f.parent]
            assert p.end is not None and p.start <= f.start and f.end <= p.end
    # Transparent (unnamed) block calls are frames too: dpn92's four stages.
    dpn = resdsl.load("specs/dpn92.res").graph
    stages = [f for f in dpn.frames if f.kind == "block" and f.name == "dpn_stage"]
    assert [f.path for f in stages] == [None] * 4
    assert [f.args["units"] for f in stages] == [3, 4, 20, 3]


def test_gate_transform_and_weight_branches_are_frames() -> None:
    g = resdsl.load("specs/highway_cifar19.res").graph
    derived = [f for f in g.frames if f.kind == "clause" and f.name == "transform"]
    assert len(derived) == 14 and all(g.node(f.output or 0).op == "conv" for f in derived)


# ------------------------------------------------------------------ DOT goldens


@pytest.mark.parametrize(("name", "spec", "args"), CASES, ids=[c[0] for c in CASES])
def test_dot_golden(tmp_path: Path, name: str, spec: str, args: list[str]) -> None:
    dot, code, err = _dot(tmp_path, spec, *args)
    assert code == (1 if name.startswith("bad_") else 0), err
    golden = GOLDEN / f"{name}.dot"
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        golden.write_text(dot, encoding="utf-8")
    assert dot == golden.read_text("utf-8")


def test_dot_is_the_same_in_every_process_and_hash_seed(tmp_path: Path) -> None:
    outputs = []
    for seed in ("0", "1", "4242", "random"):
        out = tmp_path / f"dpn92_{seed}.dot"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        run = subprocess.run([sys.executable, "-m", "resdsl", "draw", "specs/dpn92.res",
                              "--format", "dot", "-o", str(out)], cwd=ROOT, env=env,
                             capture_output=True, timeout=120)
        assert run.returncode == 0, run.stderr
        outputs.append(out.read_bytes())
    assert len(set(outputs)) == 1
    assert outputs[0] == (GOLDEN / "dpn92_blocks.dot").read_bytes()


# ------------------------------------------------------------------ what the diagram shows


def test_blocks_depth_folds_identical_blocks_and_expand_unfolds_them(tmp_path: Path) -> None:
    dot, _, _ = _dot(tmp_path, "specs/resnet50.res")
    # layer2's first block projects; the other three fold. Structure decides, not names.
    assert "bottleneck ×3" in dot and "bottleneck ×5" in dot
    assert "1×1 conv, 512, s2 · BN" in dot  # the projection, on its dashed edge
    expanded, _, _ = _dot(tmp_path, "specs/resnet50.res", "--expand")
    assert "×3</B>" not in expanded and expanded.count("subgraph cluster_") == 4 + 16
    assert dot.count("subgraph cluster_") == 4 + 8


def test_copies_that_read_their_own_inputs_are_not_folded(tmp_path: Path) -> None:
    """An FPN's levels (`repeat n as i { feats[i]; conv }`) have one structure, but each reads
    its own stage and gives its own output: drawn once, three of four edges in and out were
    lost (every output came from one box). Each level is drawn, and every stage reaches the
    FPN."""
    dot, code, err = _dot(tmp_path, "specs/resnet50_fpn.res")
    assert code == 0, err
    assert "iteration ×" not in dot
    # layer1..layer4's outputs (256, 512, 1024, 2048 channels) each enter the FPN.
    for c, side in ((256, 56), (512, 28), (1024, 14), (2048, 7)):
        assert f"{c}×{side}×{side}" in dot, c
    # Folding still applies where copies chain: the bottlenecks of each stage.
    assert "bottleneck ×5" in dot


def test_dpn92_shows_four_stages_and_both_paths(tmp_path: Path) -> None:
    dot, _, _ = _dot(tmp_path, "specs/dpn92.res")
    assert dot.count("<B>dpn_stage</B>") == 4
    for folded in ("dual_unit ×2", "dual_unit ×3", "dual_unit ×19"):
        assert folded in dot
    residual = EDGE_STYLES["residual"].color
    dense = EDGE_STYLES["dense"].color
    assert re.search(rf":r:n \[.*color=\"{residual}\"", dot)
    assert re.search(rf":d:n \[.*color=\"{dense}\"", dot)
    assert "style=\"dashed\"" in dot  # the shortcut S into both halves


def test_group_shows_its_branches(tmp_path: Path) -> None:
    dot, _, _ = _dot(tmp_path, "specs/resnext50_32x4d.res")
    # Per branch, as the spec writes it, although the graph holds grouped convs.
    assert "32 branches, summed" in dot and "3×3 conv, 4 · BN · ReLU" in dot
    layers, _, _ = _dot(tmp_path, "specs/resnext50_32x4d.res", "--depth", "layers")
    assert "lowered to grouped convolution" in layers and "3×3 conv, 128, g32" in layers


def test_each_primitive_has_its_look(tmp_path: Path) -> None:
    highway, _, _ = _dot(tmp_path, "specs/highway_cifar19.res")
    assert "label=\"σ\"" in highway and "label=\"T\"" in highway
    assert "label=\"1−T\"" in highway
    rezero, _, _ = _dot(tmp_path, "specs/rezero_resnet56.res")
    assert "× α (scalar, init 0)" in rezero
    assert "zero-pad → 32, s2 (option A)" in rezero
    assert f"color=\"{EDGE_STYLES['zeropad'].color}\"" in rezero
    se, _, _ = _dot(tmp_path, "specs/seresnet50.res")
    assert "label=\"×\"" in se and "attention" in se
    assert "style=\"dotted\"" in se
    dense, _, _ = _dot(tmp_path, "specs/densenet121.res")
    assert "penwidth=\"5\"" in dense and "arrowhead=\"none\"" in dense  # the bus
    for dot in (highway, rezero, se, dense):
        assert "parameters · " in dot and "MACs · input " in dot  # the title


def test_concat_is_a_bus_of_linear_size(tmp_path: Path) -> None:
    """DenseNet-201 at layers depth, every layer drawn: O(n) edges, never O(n²)."""
    dot, code, _ = _dot(tmp_path, "specs/densenet121.res", "-D", "blocks=[6,12,48,32]",
                        "--depth", "layers", "--expand")
    assert code == 0
    nodes = len(re.findall(r"^\s+(?:n\d+|output) \[", dot, re.M))
    edges = dot.count(" -> ")
    assert 700 < nodes < 800 and edges < nodes + 100
    assert "-D blocks=[6,12,48,32]" in dot and "20,013,928 parameters" in dot


def test_stages_depth_has_one_box_per_stage(tmp_path: Path) -> None:
    dot, _, _ = _dot(tmp_path, "specs/resnet50.res", "--depth", "stages")
    boxes = re.findall(r"<B>(layer\d)</B>", dot)
    assert boxes == ["layer1", "layer2", "layer3", "layer4"]
    assert "subgraph" not in dot


def test_lr_and_no_shapes(tmp_path: Path) -> None:
    dot, _, _ = _dot(tmp_path, "specs/resnet18.res", "--lr", "--no-shapes")
    assert 'rankdir="LR"' in dot and "×56×56\"" not in dot


def test_deeply_nested_spec_draws(tmp_path: Path) -> None:
    """Blocks nested 95 deep (the limit is 100): no recursion limit in the drawing."""
    lines = ["block b0() { conv(4, 3) }"]
    lines += [f"block b{i}() {{ x: b{i - 1}(); relu }}" for i in range(1, 95)]
    lines += ["network deep {", "    input [3, 8, 8]", "    top: b94()", "}"]
    spec = tmp_path / "deep.res"
    spec.write_text("\n".join(lines) + "\n", "utf-8")
    for depth_name in ("stages", "blocks", "layers"):
        dot, code, err = _dot(tmp_path, str(spec), "--depth", depth_name)
        assert code == 0, err
        assert dot.startswith('digraph "deep"')


@pytest.mark.parametrize("variant", ["", "_identity"])
def test_a_residual_of_named_tensors_is_drawn_as_a_skip(tmp_path: Path, variant: str) -> None:
    """Issue 15, item 16: `x = in; ...; add(in, x)` is drawn as `skip { ... }` is, at every
    depth: at blocks depth its block is a unit with the + and the dashed shortcut (before, one
    box with no skip edge). Only the legend's entry and the tensor's name on its edge
    differ."""
    from tests.test_paths import PREACT, preact_spec

    def drawn(body: str, depth: str) -> str:
        spec = tmp_path / "spec.res"
        spec.write_text(preact_spec(body), "utf-8")
        dot, code, err = _dot(tmp_path, str(spec), "--depth", depth)
        assert code == 0, err
        return dot

    def strip(dot: str) -> str:
        dot = dot.replace(' [label="x"]', "").replace('label="x\\n', 'label="')
        return re.sub(r"^  graph \[label=.*$", "", dot, flags=re.M)

    for depth in ("stages", "blocks", "layers"):
        written, named = drawn(PREACT["skip" + variant], depth), drawn(PREACT["named" + variant],
                                                                      depth)
        assert strip(named) == strip(written), depth
    named = drawn(PREACT["named" + variant], "blocks")
    shortcut = EDGE_STYLES["shortcut"].color
    assert re.search(rf'-> n\d+ \[color="{shortcut}", style="dashed"', named)
    assert 'label="+"' in named and "<B>layer1 · unit ×3</B>" in named
    assert "<B>add(F(x), x)</B> of named tensors: a residual join, as skip" in named


def _well_formed(dot: str) -> None:
    """Every edge joins declared nodes; nodes are declared once."""
    declared = re.findall(r"^\s+(\w+) \[", dot, re.M)
    assert len(declared) == len(set(declared))
    for src, dst in re.findall(r"^\s+(\w+) -> (\w+)", dot, re.M):
        assert src in declared and dst in declared, (src, dst)


def _covered(graph: Graph, settings: Settings) -> None:
    """Every node of the graph is drawn: as an element, on an edge, or by a folded copy."""
    drawer = _Drawer(graph, settings, None)
    dot = drawer.draw("")
    _well_formed(dot)
    for node in graph.nodes():
        nid = drawer.canonical(node.id)
        assert drawer.rep[nid] is not None or nid in drawer.edge_op, (node.path, node.op)


LANGUAGE_EXAMPLES = [body for _, body in res_blocks(ROOT / "docs" / "language.md")]


@pytest.mark.parametrize("body", LANGUAGE_EXAMPLES,
                         ids=[f"example{i}" for i in range(len(LANGUAGE_EXAMPLES))])
def test_every_language_example_draws_at_every_depth(tmp_path: Path, body: str) -> None:
    spec = tmp_path / "example.res"
    spec.write_text(body, encoding="utf-8")
    first = body.split("\n", 1)[0]
    args = first[len("# args:"):].split() if first.startswith("# args:") else []
    options = _options(_parser().parse_args(["check", str(spec), *args]))
    result = resdsl.pipeline.build(str(spec), options)
    for depth in ("stages", "blocks", "layers"):
        for expand in (False, True):
            _covered(result.graph, Settings(depth=depth, expand=expand))


@pytest.mark.parametrize("spec", sorted(p.name for p in (ROOT / "specs").glob("*.res")))
def test_every_spec_draws_every_node(spec: str) -> None:
    graph = resdsl.load(f"specs/{spec}").graph
    for depth in ("stages", "blocks", "layers"):
        _covered(graph, Settings(depth=depth))


# ------------------------------------------------------------------ invalid specs


def test_an_invalid_spec_is_drawn_up_to_its_error(tmp_path: Path) -> None:
    spec = "tests/golden/dot/bad_skip.res"
    check = run_cli("check", spec)
    out = tmp_path / "bad.dot"
    run = run_cli("draw", spec, "-o", str(out))
    assert run.code == check.code == 1
    assert run.err == check.err  # the diagnostic exactly as `check` prints it
    assert run.out.startswith(f"wrote {out}: diagram of tiny at blocks depth, up to the error")
    dot = out.read_text("utf-8")
    assert "error[E0301]" in dot and "bad_skip.res:4:5" in dot
    assert 'color="#c0392b"' in dot  # the clusters where it stopped, in red


def test_frames_left_open_by_an_error() -> None:
    graph, files = dot_draw.partial_graph("tests/golden/dot/bad_skip.res",
                                          resdsl.pipeline.Options())
    assert graph is not None and files == ("tests/golden/dot/bad_skip.res",)
    still_open = [(f.kind, f.name, f.path) for f in graph.frames if f.end is None]
    assert still_open == [("repeat", "repeat", "layer1"), ("iteration", "iteration", "layer1.0"),
                          ("block", "basic", None), ("primitive", "skip", None)]
    assert graph.output is None and graph.node(len(graph) - 1).op == "bn"


def test_a_syntax_error_is_reported_and_nothing_is_drawn(tmp_path: Path) -> None:
    spec = "tests/golden/errors/E0101_missing_comma.res"
    out = tmp_path / "x.svg"
    run = run_cli("draw", spec, "-o", str(out))
    assert run.code == 1 and run.err == run_cli("check", spec).err
    assert run.out == "" and not out.exists()


def test_usage_errors(tmp_path: Path) -> None:
    assert run_cli("draw", "specs/resnet18.res", "--depth", "units").code == 2
    assert run_cli("draw", "specs/resnet18.res", "-D", "clases=3").code == 2
    # Never over the spec or a file it uses.
    assert run_cli("draw", "specs/resnet18.res", "-o", "specs/blocks/basic.res").code == 2


# ------------------------------------------------------------------ rendering


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@needs_renderer
def test_real_svg_render(tmp_path: Path) -> None:
    out = tmp_path / "dpn92.svg"
    run = run_cli("draw", "specs/dpn92.res", "-o", str(out))
    assert run.code == 0 and "rendered by " in run.out
    root = ET.fromstring(out.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = "".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "dpn92" in texts and "dual_unit ×19" in texts


@needs_renderer
def test_real_png_render_has_a_sensible_size(tmp_path: Path) -> None:
    for spec, args in (("specs/resnet18.res", []), ("specs/resnet50.res", ["--depth", "stages"]),
                       ("specs/dpn92.res", ["--lr"])):
        out = tmp_path / "d.png"  # the suffix chooses the format
        run = run_cli("draw", spec, "-o", str(out), *args)
        assert run.code == 0, run.err
        width, height = _png_size(out.read_bytes())
        assert 300 <= max(width, height) <= 8000 and 150 <= min(width, height) <= 3000, \
            (spec, width, height)


def _path_without(*programs: str) -> str:
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not any(os.path.exists(os.path.join(d, p)) for p in programs)]
    return os.pathsep.join(keep)


@pytest.mark.skipif(dot_render._beside_python("graphviz-pure") is None,
                    reason="graphviz-pure is not installed beside this interpreter")
def test_draws_with_no_dot_on_path(tmp_path: Path) -> None:
    """The acceptance: `resdsl draw specs/dpn92.res` writes dpn92.svg with no system
    Graphviz, the venv not activated (graphviz-pure found beside the interpreter)."""
    env = dict(os.environ, PATH=_path_without("dot", "graphviz-pure"))
    run = subprocess.run([sys.executable, "-m", "resdsl", "draw", str(ROOT / "specs/dpn92.res")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "wrote dpn92.svg: diagram of dpn92 at blocks depth" in run.stdout
    assert "rendered by graphviz-pure" in run.stdout
    ET.fromstring((tmp_path / "dpn92.svg").read_bytes())
    assert [p.name for p in tmp_path.iterdir()] == ["dpn92.svg"]  # no temporary file left


def _fake_dot(folder: Path, body: str) -> None:
    folder.mkdir()
    script = folder / "dot"
    script.write_text(f"#!{sys.executable}\nimport sys\n" + textwrap.dedent(body), "utf-8")
    script.chmod(0o755)


def test_dot_on_path_is_preferred(tmp_path: Path) -> None:
    _fake_dot(tmp_path / "bin", """
        if "-V" in sys.argv:
            sys.stderr.write("dot - graphviz version 9.9.9 (fake)\\n"); sys.exit(0)
        assert sys.stdin.read().startswith("digraph")
        sys.stdout.write('<svg xmlns="http://www.w3.org/2000/svg"><text>fake</text></svg>')
    """)
    env = dict(os.environ, PATH=str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    run = subprocess.run([sys.executable, "-m", "resdsl", "draw", str(ROOT / "specs/resnet18.res")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "(rendered by dot 9.9.9)" in run.stdout
    assert (tmp_path / "resnet18.svg").read_text().endswith("<text>fake</text></svg>")


def _golden(name: str, text: str) -> None:
    golden = COMPILE / f"{name}.txt"
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text("utf-8")


def test_a_failing_renderer_is_a_diagnostic_and_writes_nothing(tmp_path: Path) -> None:
    _fake_dot(tmp_path / "bin", """
        if "-V" in sys.argv:
            sys.exit(0)
        sys.stderr.write("Error: <stdin>: syntax error in line 1 near 'digraph'\\n")
        sys.exit(1)
    """)
    out = tmp_path / "resnet18.svg"
    out.write_text("the old file", "utf-8")
    env = dict(os.environ, PATH=str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    run = subprocess.run([sys.executable, "-m", "resdsl", "draw", str(ROOT / "specs/resnet18.res"),
                          "-o", str(out)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    _golden("E0723_renderer_failed", run.stderr)
    assert out.read_text("utf-8") == "the old file"  # atomic: the old file stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "resnet18.svg"]


def test_no_renderer_is_a_diagnostic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dot_draw, "find_renderers", lambda: [])
    run = run_cli("draw", "specs/resnet18.res", "-o", str(tmp_path / "r.svg"))
    assert run.code == 1 and not (tmp_path / "r.svg").exists()
    _golden("E0721_no_graphviz", run.err)
    # The DOT text needs no renderer.
    assert run_cli("draw", "specs/resnet18.res", "-o", str(tmp_path / "r.dot")).code == 0
    # A notebook shows the network's table, which needs no renderer.
    assert resdsl.load("specs/resnet18.res")._repr_html_().startswith("<table")


def test_pdf_without_dot_is_a_clear_error(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pure = Renderer("graphviz-pure", "/nonexistent/graphviz-pure", ("svg", "png"))
    monkeypatch.setattr(dot_draw, "find_renderers", lambda: [pure])
    run = run_cli("draw", "specs/resnet18.res", "--format", "pdf", "-o", str(tmp_path / "r.x"))
    assert run.code == 1
    _golden("E0722_no_pdf", run.err)


@pytest.mark.skipif(shutil.which("dot") is None, reason="no system Graphviz for PDF")
def test_pdf_with_dot(tmp_path: Path) -> None:
    run = run_cli("draw", "specs/resnet18.res", "-o", str(tmp_path / "r.pdf"))
    assert run.code == 0 and (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")


def _bench() -> types.ModuleType:
    """bench/draw_speed.py, whose `WORST` cases are the largest diagrams the limits admit."""
    spec = importlib.util.spec_from_file_location("draw_speed", ROOT / "bench" / "draw_speed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _refuse_to_render(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a renderer was looked for or run")

    monkeypatch.setattr(dot_draw, "find_renderers", fail)
    monkeypatch.setattr(dot_draw, "render", fail)


def test_too_large_to_render_is_refused_before_rendering(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: ResNet-1202 with every block drawn took 18 s and 1.2 GB as a PNG (4,215 nodes
    and edges, under the old limit of 20,000); it is refused from the DOT's counts, before
    any renderer is looked for."""
    _refuse_to_render(monkeypatch)
    out = tmp_path / "r.png"
    run = run_cli("draw", "specs/resnet20.res", "-D", "depth=1202", "--expand", "-o", str(out))
    assert run.code == 1 and not out.exists()
    _golden("E0724_too_large", run.err)
    # The DOT text of any size needs no renderer and is written.
    dot = tmp_path / "r.dot"
    assert run_cli("draw", "specs/resnet20.res", "-D", "depth=1202", "--expand", "-o",
                   str(dot)).code == 0 and dot.stat().st_size > 100_000


def test_long_edges_are_counted_not_just_nodes(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """40 named tensors joined 40 layers later: 205 nodes and edges, which took 14 s to lay
    out, since each of the 40 long edges is a chain of virtual nodes to `dot`. Refused, with
    what to do."""
    bench = _bench()
    spec = tmp_path / "long.res"
    spec.write_text(bench.long_edges(40, 40), "utf-8")
    graph = resdsl.load(str(spec)).graph
    dot, size = measure(graph, Settings("layers", expand=True))
    assert element_count(dot) == 205 and size.virtual > 4_000
    _refuse_to_render(monkeypatch)
    run = run_cli("draw", str(spec), "--depth", "layers", "--expand", "-o",
                  str(tmp_path / "l.svg"))
    assert run.code == 1 and "error[E0724]" in run.err
    assert "long edges crossing 4,760 of them" in run.err
    assert "a coarser depth (`--depth blocks` or `--depth stages`)" in run.err
    assert "without `--expand`" in run.err


def _write(folder: Path, text: str) -> Path:
    path = folder / "spec.res"
    path.write_text(text, "utf-8")
    return path


def test_size_counts_ranks_virtual_nodes_and_clusters(tmp_path: Path) -> None:
    """The counts on a diagram small enough to count by hand: 3 tensors named, 4 layers,
    then all joined; every edge is labelled (the tensors' names), so it crosses two ranks
    per step."""
    graph = resdsl.load(str(_write(tmp_path, _bench().long_edges(3, 4)))).graph
    _, size = measure(graph, Settings("layers", expand=True))
    # input, relu ×7, add, output: 10 nodes on 10 ranks, doubled for the labels.
    assert (size.nodes, size.ranks, size.clusters) == (10, 20, 0)
    # The edges into the add from the relus of ranks 1, 2 and 3 (the add is on rank 8) span
    # 7, 6 and 5 ranks: 2 × (6 + 5 + 4) virtual nodes.
    assert size.virtual == 30
    assert size.edges == 12 and size.layout == 10 + 2 * (12 - 3 + 18) + 3 * 30
    # One cluster per block: a chain of 5 one-node clusters, each as wide as two nodes on
    # its rank.
    graph = resdsl.load(str(_write(tmp_path, _bench().chained_clusters(5)))).graph
    _, size = measure(graph, Settings("layers", expand=True))
    assert (size.nodes, size.ranks, size.clusters) == (7, 14, 5)
    assert size.cluster_ranks == 5 * 14 and size.widest == 1 + dot_source.CLUSTER_WIDTH


def test_the_worst_admitted_diagrams_are_just_under_the_limit(tmp_path: Path) -> None:
    """bench/draw_speed.py times the largest diagram of each kind that the limits admit:
    each is admitted, and within a tenth of the limit, so the figure it gives is the worst
    case's."""
    bench = _bench()
    for label, args, _ in bench.worst_cases(tmp_path):
        ns = _parser().parse_args(["draw", *args])
        graph = resdsl.pipeline.build(ns.spec, _options(ns)).graph
        _, size = measure(graph, Settings(ns.depth, ns.expand, ns.lr, ns.shapes))
        assert 0.9 < layout_share(size) <= 1, (label, size)


@needs_renderer
def test_a_large_png_is_scaled_down_to_its_pixel_bound(tmp_path: Path) -> None:
    """Issue 15: a PNG's time and memory follow its pixels (ResNet-434 with every block drawn
    was 526 × 48,472, 2.4 s and 240 MB to rasterise): it is scaled down to fit
    PNG_MAX_PIXELS, and the command says so."""
    out = tmp_path / "r.png"
    run = run_cli("draw", "specs/resnet20.res", "-D", "depth=434", "--expand", "-o", str(out))
    assert run.code == 0, run.err
    width, height = _png_size(out.read_bytes())
    margin = 2 * round(dot_source.MARGIN_IN * dot_render.PNG_DPI)
    across, along = dot_render.PNG_MAX_PIXELS
    assert width <= across + margin and height <= along + margin
    assert f"scaled down to fit {across:,}×{along:,} pixels" in run.out
    # A diagram within the bound is drawn at full size, and says nothing of scaling.
    run = run_cli("draw", "specs/resnet18.res", "-o", str(out))
    assert "scaled down" not in run.out and _png_size(out.read_bytes()) == (526, 2146)


def test_drawing_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from resdsl.cli import main; "
        f"rc = main(['draw', 'specs/dpn92.res', '--format', 'dot', '-o', {str(tmp_path / 'd.dot')!r}]); "  # noqa: E501
        "import resdsl; resdsl.load('specs/resnet18.res').draw(format='dot'); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime')]; "
        "print(rc, heavy)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.stdout.strip().endswith("0 []"), run.stdout + run.stderr


# ------------------------------------------------------------------ the API


def test_api_draw(tmp_path: Path) -> None:
    net = resdsl.load("specs/resnet18.res")
    drawing = net.draw(format="dot", depth="stages")
    assert drawing.format == "dot" and drawing.renderer is None
    assert drawing.dot == generate(net.graph, Settings(depth="stages"))
    assert drawing.data == drawing.dot.encode()
    with pytest.raises(ValueError, match="depth"):
        net.draw(depth="units")
    if HAS_RENDERER:
        svg = net.draw()._repr_svg_()
        assert svg is not None and ET.fromstring(svg.encode()).tag.endswith("svg")
        out = tmp_path / "r18.png"
        png = net.draw(str(out))
        assert png.format == "png" and out.read_bytes() == png.data
        assert png.renderer is not None


@needs_renderer
def test_the_benchmark_runs() -> None:
    run = subprocess.run([sys.executable, "bench/draw_speed.py", "--quick"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "resnet18, blocks" in run.stdout and "of the limit" in run.stdout


# ------------------------------------------------------------------ the gallery


def test_the_gallery_shows_every_spec() -> None:
    page = (ROOT / "docs" / "gallery.md").read_text("utf-8")
    images = re.findall(r"<img src=\"gallery/([\w.]+)\"", page)
    for spec in sorted((ROOT / "specs").glob("*.res")):
        assert f"{spec.stem}.png" in images, f"docs/gallery.md lacks {spec.stem}: run " \
            "scripts/gallery.py"
    for image in images:
        assert (ROOT / "docs" / "gallery" / image).is_file()
    assert any("_stages" in i for i in images) and any("_layers" in i for i in images)
    assert (ROOT / "docs" / "gallery" / "dpn92.svg").is_file()
