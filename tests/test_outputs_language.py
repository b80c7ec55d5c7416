"""Several named outputs (`output name`, `output name = t`) and tensors across levels
(`body.c3`): the language, the graph, and every backend (issue 16, items 2 and 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from resdsl.api import Network, load
from resdsl.diagnostics import SpecError
from tests.helpers import build_text, graph_of

# Two outputs: an FCN-like toy, a classifier head upsampled to the input and an auxiliary
# head on the third stage's output, read across the level `backbone`.
FCN = """
block stage(c, stride = 2) {
    conv(c, 3, stride = stride); bn; relu
    conv(c, 3); bn; relu
}

block head(c, classes) { conv(c, 3); bn; relu; conv(classes, 1, bias = true) }

network fcn(classes = 5, aux_loss = true) {
    input [3, 32, 32]
    img = in
    backbone: {
        stem: { conv(8, 3); bn; relu }
        layer1: stage(8, stride = 1)
        layer2: stage(16)
        c3 = in
        layer3: stage(32)
    }
    classifier: head(16, classes)
    upsample(to = img, mode = "bilinear")
    output out
    backbone.c3
    aux_classifier: head(8, classes) if aux_loss
    upsample(to = img, mode = "bilinear") if aux_loss
    output aux if aux_loss
}
"""

# Five outputs with torchvision's FPN names, read from a named repeat and a named block call.
FIVE = """
block unit(c, stride = 1) { conv(c, 3, stride = stride); bn; relu; t = in }

network five() {
    input [3, 32, 32]
    body: {
        stem: conv(8, 3)
        layer1: unit(8)
        layer2: repeat 2 as i { unit(16, stride = 2 if i == 0 else 1); f = in }
        layer3: unit(32, stride = 2)
    }
    output "0" = body.layer1.t
    output 1 = body.layer2.f[-1]
    output "2" = body.layer2.f[0]
    output 3 = body.layer3.t
    output pool = body.layer3.t if body.layer3.t.c == 32
    maxpool(1, stride = 2)
    output extra
}
"""

FIVE_SHAPES = {"0": (8, 32, 32), "1": (16, 16, 16), "2": (16, 16, 16), "3": (32, 8, 8),
               "pool": (32, 8, 8), "extra": (32, 4, 4)}


def _net(tmp_path: Path, text: str, name: str = "spec.res", **params: object) -> Network:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load(path, **params)  # type: ignore[arg-type]


def _codes(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        build_text(tmp_path, text)
    return [d.code for d in info.value.diagnostics if d.is_error]


# ---------------------------------------------------------------------- the graph


def test_two_outputs_in_order(tmp_path: Path) -> None:
    g = graph_of(tmp_path, FCN)
    assert list(g.outputs) == ["out", "aux"]
    assert [g.node(n).shape for n in g.outputs.values()] == [(5, 32, 32), (5, 32, 32)]
    # The aux head reads the tensor named inside `backbone`, after layer2.
    aux_head = next(n for n in g.nodes() if n.path == "aux_classifier.0")
    assert g.node(aux_head.inputs[0]).path == "backbone.layer2.5"
    assert g.results() == list(g.outputs.items())


def test_a_guarded_output_is_left_out(tmp_path: Path) -> None:
    net = _net(tmp_path, FCN, aux_loss=False)
    assert list(net.graph.outputs) == ["out"]
    assert not any(n.path.startswith("aux") for n in net.graph.nodes())


def test_five_outputs_keys_order_and_shapes(tmp_path: Path) -> None:
    g = graph_of(tmp_path, FIVE)
    assert list(g.outputs) == ["0", "1", "2", "3", "pool", "extra"]
    assert {k: g.node(n).shape for k, n in g.outputs.items()} == FIVE_SHAPES
    # `output pool` gives again the tensor of `3`: one node under two names.
    assert g.outputs["pool"] == g.outputs["3"]


def test_no_output_statement_is_one_output_as_before(tmp_path: Path) -> None:
    g = graph_of(tmp_path, "network n() { input [3, 8, 8]; conv(4, 3); relu }")
    assert g.outputs == {}
    assert g.results() == [(None, g.output)]


def test_output_is_still_a_name(tmp_path: Path) -> None:
    """`output: conv(...)` still names a layer, and `output` a block parameter."""
    g = graph_of(tmp_path, """
block b(output = 4) { conv(output, 1) }
network n() { input [3, 8, 8]; output: conv(4, 3); b }
""")
    assert [n.path for n in g.nodes()][1:] == ["output", "1"]


def test_tensor_across_a_named_sequence_and_a_block_call(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
block stage(c) { conv(c, 3, stride = 2); mid = in; relu }
network n() {
    input [3, 16, 16]
    body: { stem: conv(8, 3); c1 = in; layer2: stage(16) }
    add(in, body.layer2.mid)
    output a
    body.c1
    conv(body.layer2.mid.c, 1)
    output b
}
""")
    paths = {n.id: n.path for n in g.nodes()}
    add = next(n for n in g.nodes() if n.op == "add")
    assert [paths[i] for i in add.inputs] == ["body.layer2.1", "body.layer2.0"]
    conv = next(n for n in g.nodes() if n.path == "2")
    assert paths[conv.inputs[0]] == "body.stem" and conv.shape == (16, 16, 16)


def test_a_repeat_shares_its_lists_by_the_level_too(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
network n() {
    input [3, 8, 8]
    layer: repeat 3 { conv(4, 3); f = in }
    cat(layer.f)
    output a
    layer.f[0]
    output b
}
""")
    assert [g.node(n).shape for n in g.outputs.values()] == [(12, 8, 8), (4, 8, 8)]


# ---------------------------------------------------------------------- diagnostics


@pytest.mark.parametrize(("text", "code"), [
    ("network n() { input [3, 8, 8]; body: { conv(4, 3); t = in }; bdy.t }", "E0230"),
    ("network n() { input [3, 8, 8]; body: { conv(4, 3); t = in }; body.u }", "E0231"),
    ("network n() { input [3, 8, 8]; body: { conv(4, 3); t = in } if in.c == 1; body.t }",
     "E0231"),
    ("network n() { input [3, 8, 8]; conv(4, 3); output a; relu; output a }", "E0505"),
    ("network n() { input [3, 8, 8]; conv(4, 3); output a; relu }", "E0504"),
    ("block b() { output a } network n() { input [3, 8, 8]; b }", "E0212"),
    ("network n() { input [3, 8, 8]; { conv(4, 3); output a } }", "E0212"),
    ("network n() { input [3, 8, 8]; repeat 2 { conv(4, 3); t = in }; output a = t }", "E0401"),
    ("network n() { input [3, 8, 8]; w = 3; output a = w }", "E0401"),
    ("network n() { input [3, 8, 8]; body: { conv(4, 3); t = in }; body.t.x }", "E0213"),
    # ONNX names the input `input` and each weight by its state_dict key.
    ("network n() { input [3, 8, 8]; conv(4, 3); output input }", "E0506"),
    ("network n(a = false) { input [3, 8, 8]; conv(4, 3); output x if a; output y if a }",
     "E0507"),
    ('network n() { input [3, 8, 8]; c: conv(4, 3); output "c.weight" }', "E0506"),
    ('network n() { input [3, 8, 8]; c: conv(4, 3); bn; output "1.running_var" }', "E0506"),
])
def test_diagnostics(tmp_path: Path, text: str, code: str) -> None:
    assert code in _codes(tmp_path, text)


def test_unknown_level_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        build_text(tmp_path, "network n() { input [3, 8, 8]; body: { conv(4, 3); t = in }; "
                   "conv(bdoy.t.c, 1) }")
    d = info.value.diagnostics[0]
    assert d.code == "E0230" and "`body`" in (d.help or "")


def test_unknown_tensor_in_level_suggests_its_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        build_text(tmp_path, "network n() { input [3, 8, 8]; body: { conv(4, 3); feat = in }; "
                   "body.fet }")
    d = info.value.diagnostics[0]
    assert d.code == "E0231" and "`body.feat`" in (d.help or "")


def test_a_variable_keeps_its_sizes(tmp_path: Path) -> None:
    """`t.c` of a tensor variable is its size even beside a level that shares a `c`."""
    g = graph_of(tmp_path, """
network n() {
    input [3, 8, 8]
    t = in
    t2: { conv(6, 3); c = in }
    conv(t.c, 1)
    output a
    t2.c
    output b
}
""")
    assert [g.node(n).shape for n in g.outputs.values()] == [(3, 8, 8), (6, 8, 8)]


# ---------------------------------------------------------------------- info, draw, paths


def _cli(tmp_path: Path, spec: str, *argv: str) -> str:
    from tests.conftest import run_cli

    path = tmp_path / "spec.res"
    path.write_text(spec, encoding="utf-8")
    run = run_cli(argv[0], str(path), *argv[1:])
    assert run.code == 0, run.err
    return run.out


def test_info_lists_every_output(tmp_path: Path) -> None:
    text = _cli(tmp_path, FIVE, "info")
    table = text.split("6 outputs, each with the parameters and MACs it is computed from:\n")[1]
    rows = [line.split() for line in table.splitlines()[1:]]
    assert [r[0] for r in rows] == ["0", "1", "2", "3", "pool", "extra"]
    assert [r[1] for r in rows] == ["8×32×32", "16×16×16", "16×16×16", "32×8×8", "32×8×8",
                                    "32×4×4"]
    # `0` is computed from the stem and layer1 only: 8·3·9 + 8·8·9 + 2·8 + 2·8 parameters.
    assert rows[0][2] == f"{8 * 3 * 9 + 8 * 8 * 9 + 16:,}"
    doc = json.loads(_cli(tmp_path, FIVE, "info", "--format", "json"))
    assert [(o["name"], tuple(o["shape"])) for o in doc["outputs"]] == list(FIVE_SHAPES.items())
    assert doc["outputs"][3]["params"] == doc["params"]


def test_info_json_of_one_output_is_unnamed(tmp_path: Path) -> None:
    doc = json.loads(_cli(tmp_path, "network n() { input [3, 8, 8]; conv(4, 3) }", "info",
                          "--format", "json"))
    assert doc["outputs"] == [{"name": None, "shape": [4, 8, 8], "params": 108, "macs": 6912}]


def test_info_leaves_out_a_size_only_input(tmp_path: Path) -> None:
    """`upsample(to = t)` reads t's size: t's layers are not what the output is made of."""
    doc = json.loads(_cli(tmp_path, """
network n() {
    input [3, 8, 8]
    img = in
    big: conv(64, 3); t = in
    output a
    img
    small: conv(4, 1, stride = 2)
    upsample(to = t)
    output b
}""", "info", "--format", "json"))
    assert [o["params"] for o in doc["outputs"]] == [64 * 27, 4 * 3]


def test_draw_shows_every_output(tmp_path: Path) -> None:
    dot = tmp_path / "five.dot"
    _cli(tmp_path, FIVE, "draw", "--format", "dot", "-o", str(dot))
    text = dot.read_text("utf-8")
    for i, name in enumerate(FIVE_SHAPES):
        assert f'output_{i} [label="output {name}"' in text
    assert 'output [label="output"' not in text


def test_paths_counts_each_output(tmp_path: Path) -> None:
    spec = """
network n() {
    input [4, 8, 8]
    body: { skip { conv(4, 3) }; a = in; skip { conv(4, 3) } }
    output out
    body.a
    output mid
}
"""
    net = _net(tmp_path, spec)
    counts = net.paths()
    assert counts.outputs == {"out": (1, 2, 1), "mid": (1, 1)}
    assert counts.counts == (2, 3, 1)
    text = _cli(tmp_path, spec, "paths")
    assert "6 paths from input to its 2 outputs" in text
    doc = json.loads(_cli(tmp_path, spec, "paths", "--format", "json"))
    assert doc["outputs"] == {"out": [1, 2, 1], "mid": [1, 1]}


# ---------------------------------------------------------------------- PyTorch


torch = pytest.importorskip("torch")


def _standalone(net: Network) -> Any:
    """The module of `resdsl compile --to python`'s file, exec'd, with the API's weights."""
    from resdsl.backends.torch_source import generate

    generated = generate(net.graph)
    namespace: dict[str, object] = {}
    exec(compile(generated.source, "<generated>", "exec"), namespace)
    model = namespace[generated.class_name]()  # type: ignore[operator]
    model.load_state_dict(net.to_torch(seed=0).state_dict())
    return model.eval()


@pytest.mark.parametrize("spec", [FCN, FIVE])
def test_torch_module_returns_an_ordered_dict(tmp_path: Path, spec: str) -> None:
    from collections import OrderedDict

    net = _net(tmp_path, spec)
    model = net.to_torch(seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, OrderedDict)
    assert list(y) == list(net.graph.outputs)
    for key, nid in net.graph.outputs.items():
        assert tuple(y[key].shape) == (2, *net.graph.node(nid).shape)


@pytest.mark.parametrize("spec", [FCN, FIVE])
def test_standalone_source_returns_the_same_dict(tmp_path: Path, spec: str) -> None:
    net = _net(tmp_path, spec)
    source = net.to_python()
    assert "from collections import OrderedDict" in source
    assert "-> OrderedDict[str, torch.Tensor]:" in source
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ours, theirs = net.to_torch(seed=0).eval()(x), _standalone(net)(x)
    assert list(theirs) == list(ours)
    for key in ours:
        torch.testing.assert_close(theirs[key], ours[key], rtol=0, atol=0)


def test_an_output_is_never_overwritten_in_place(tmp_path: Path) -> None:
    """`conv; output a; relu`: the relu must not overwrite the conv's output in place."""
    net = _net(tmp_path, """
network n() { input [3, 8, 8]; conv(4, 3); output a; relu; output b; add(in, in); output c }
""")
    with torch.no_grad():
        y = net.to_torch(seed=0).eval()(torch.randn(1, 3, 8, 8))
    assert (y["a"] < 0).any()
    torch.testing.assert_close(y["b"], torch.relu(y["a"]))
    torch.testing.assert_close(y["c"], 2 * y["b"])


def test_output_names_are_python_strings(tmp_path: Path) -> None:
    net = _net(tmp_path, 'network n() { input [3, 8, 8]; conv(4, 3); output "a{b}\\" }')
    with torch.no_grad():
        y = _standalone(net)(torch.randn(1, 3, 8, 8))
    assert list(y) == ["a{b}\\"]


# ---------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("fold_bn", [False, True])
@pytest.mark.parametrize("spec", [FCN, FIVE])
def test_onnx_has_one_named_output_each_equal_to_torch(tmp_path: Path, spec: str,
                                                       fold_bn: bool) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = _net(tmp_path, spec)
    model = net.to_onnx(seed=0, fold_bn=fold_bn)
    outputs = [(o.name, [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim])
               for o in model.graph.output]
    assert outputs == [(k, ["batch", *net.graph.node(n).shape])
                       for k, n in net.graph.outputs.items()]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 32, 32)
    ys = sess.run(None, {"input": x.numpy()})
    with torch.no_grad():
        ref = net.to_torch(seed=0).eval()(x)
    for y, key in zip(ys, ref, strict=True):
        np_ref = ref[key].numpy()
        assert y.shape == np_ref.shape
        assert abs(y - np_ref).max() <= 1e-4 * max(1.0, abs(np_ref).max())


def test_outputs_named_as_internal_values_keep_their_names(tmp_path: Path) -> None:
    """An output may be called as one of resdsl's own ONNX values (a node's path, a path
    with `:out`, an emitter's constant `act/min`): the internal value is renamed, the output keeps
    its name and its value."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = _net(tmp_path, """
network n() {
    input [3, 8, 8]
    conv1: conv(4, 3)
    t = in
    relu
    act: relu6
    output "conv1:out"
    output conv1 = t
    output "act/min" = t
}
""")
    model = net.to_onnx(seed=0)
    assert [o.name for o in model.graph.output] == ["conv1:out", "conv1", "act/min"]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 8, 8)
    ys = sess.run(None, {"input": x.numpy()})
    with torch.no_grad():
        ref = net.to_torch(seed=0).eval()(x)
    for y, key in zip(ys, ref, strict=True):
        assert np.allclose(y, ref[key].numpy(), atol=1e-5), key


def test_verify_compares_every_output(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    spec = tmp_path / "five.res"
    spec.write_text(FIVE, encoding="utf-8")
    run = run_cli("compile", str(spec), "--to", "onnx", "-o", str(tmp_path / "five.onnx"),
                  "--verify")
    assert run.code == 0, run.err
    assert "all 6 outputs" in run.out


def test_the_docs_example_is_the_language_page_s() -> None:
    """docs/examples/two_heads.res (run by api.md and cli.md) is language.md's example."""
    from tests.conftest import ROOT

    page = (ROOT / "docs" / "language.md").read_text("utf-8")
    example = (ROOT / "docs" / "examples" / "two_heads.res").read_text("utf-8")
    assert f"```res\n{example}```" in page
