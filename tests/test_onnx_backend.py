"""The ONNX backend: the emitter table, the model file (interface, names, traceability,
content), the checker and ONNX's own shape inference against resdsl's shapes for every spec,
the opset range at both ends, BN folding, external data, determinism across processes, the
size limit, and `resdsl compile --to onnx` (outputs, atomic writes, errors).

Output parity (ONNX Runtime against the PyTorch backend and torchvision/timm) is in
test_onnx_parity.py; the random-spec differential run in test_onnx_difftest.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import resdsl  # noqa: E402
from resdsl.backends import onnx_lowering  # noqa: E402
from resdsl.backends.onnx_export import compile_network, save  # noqa: E402
from resdsl.backends.onnx_lowering import EMITTERS, MAX_OPSET, MIN_OPSET  # noqa: E402
from resdsl.ir.ops import OPS  # noqa: E402
from resdsl.verify import sample_input, session  # noqa: E402
from tests.conftest import ROOT, SPECS, run_cli, small_shape  # noqa: E402

ALL_SPECS = sorted(SPECS.glob("*.res"))
GOLDEN = ROOT / "tests" / "golden" / "compile"

# Every op and primitive at least once, small: for the opset range and the interface.
ALL_OPS = """
block unit(planes, stride = 1) {
    skip {
        conv1: conv(planes, 3, stride = stride); bn1: bn; relu
        conv2: conv(planes, 3); bn2: bn
    } shortcut downsample: { conv(planes, 1, stride = stride); bn } if stride != 1 or in.c != planes
    relu
}

network all_ops(classes = 5) {
    input [3, 17, 17]
    c1: conv(8, 3, bias = true); b1: bn(eps = 0.001); relu
    c2: conv(8, [1, 3], groups = 2); silu; gelu; tanh; identity; dropout(0.2)
    relu6; hardswish; leaky_relu(0.2); drop_path(0.1)
    m: maxpool(3, stride = 2, padding = 1, ceil_mode = true)
    a: avgpool(3, stride = 1, padding = 1)
    a2: avgpool(3, stride = 2, padding = 1, ceil_mode = true)
    a3: avgpool(3, stride = 1, padding = 1, count_include_pad = false)
    u1: unit(12, stride = 2)
    z: skip { conv(16, 3, stride = 2); bn } shortcut zeropad(16, stride = 2)
    w: weight(init = 0.5, per_channel = true) { conv(16, 3); bn }
    mix: weight { p: branch { conv(16, 1); bn } q: branch { identity } }
    g: gate(bias = -2) { h: conv(16, 3); relu }
    d: concat { bn; relu; conv(4, 3) }
    grp: group(groups = 2) { conv(4, 1); bn; relu; conv(4, 3); bn; relu; conv(8, 1); bn }
    grc: group(groups = 2, merge = "concat") { conv(3, 1); bn; relu; conv(3, 3) }
    dp: dual(4) { bn; relu; conv(8, 3) } shortcut proj: { bn; relu; conv(6, 1) }
    se: scale { global_avgpool; conv(2, 1, bias = true); relu; conv(10, 1, bias = true); sigmoid }
    s: slice(2, 9)
    tt = in
    ct: conv_transpose(7, 3, stride = 2, padding = 1, output_padding = 1); fb: frozen_bn
    up: upsample(to = tt, mode = "bilinear")
    u2: upsample(2)
    avgpool: global_avgpool; flatten
    fc1: linear(12); bn; relu
    hw: gate { h: linear(12); relu }
    fc: linear(classes, bias = false)
}
"""


@pytest.fixture(scope="module")
def all_ops(tmp_path_factory: pytest.TempPathFactory) -> resdsl.Network:
    path = tmp_path_factory.mktemp("specs") / "all_ops.res"
    path.write_text(ALL_OPS, encoding="utf-8")
    return resdsl.load(str(path))


def small(name: str) -> tuple[int, int, int]:
    return small_shape(name)


def inferred_shapes(model: Any) -> dict[str, list[int | str]]:
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                 data_prop=True)
    return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*inferred.graph.input, *inferred.graph.value_info,
                      *inferred.graph.output]}


def run_onnx(model: Any, x: np.ndarray, tmp: Path) -> np.ndarray:
    path = tmp / "m.onnx"
    path.write_bytes(model.SerializeToString())
    (y,) = session(str(path), threads=1).run(None, {"input": x})
    return np.asarray(y)


# ------------------------------------------------------------------ the table


def test_every_op_has_an_emitter() -> None:
    assert sorted(set(OPS) - set(EMITTERS)) == []
    assert sorted(set(EMITTERS) - set(OPS)) == []


def test_nothing_under_ir_imports_onnx_or_torch() -> None:
    for path in (ROOT / "resdsl" / "ir").rglob("*.py"):
        text = path.read_text("utf-8")
        assert not re.search(r"^\s*(import|from)\s+(onnx|onnxruntime|torch)\b", text, re.M), path


def test_the_lowering_table_imports_no_onnx() -> None:
    code = ("import sys, resdsl.backends.onnx_lowering; "
            "print([m for m in sys.modules if m.split('.')[0] in ('onnx', 'torch')])")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True)
    assert run.stdout.strip() == "[]", run.stderr


# ------------------------------------------------------------------ every spec


@pytest.mark.parametrize("spec", ALL_SPECS, ids=[p.stem for p in ALL_SPECS])
def test_every_spec_passes_the_checker_and_its_shapes_are_resdsls(spec: Path) -> None:
    net = resdsl.load(str(spec), input_shape=small(spec.stem))
    built, _, _ = compile_network(net)
    model = built.proto
    onnx.checker.check_model(model, full_check=True)
    shapes = inferred_shapes(model)
    by_path = {n.path: n for n in net.graph.nodes()}
    # ONNX's inferred shape of every value is resdsl's shape of the node that makes it
    # (an alias, such as dropout, shares its input's value and shape).
    for node in net.graph.nodes():
        if node.op != "input":
            assert shapes[built.values[node.id]] == ["batch", *node.shape], node.path
    # Node names are module paths; helper nodes are PATH/OpType; a named output is an
    # Identity named `output.NAME` at the end (a value may be two outputs).
    outputs = {f"output.{name}" for name in net.graph.outputs}
    for n in model.graph.node:
        if n.name in outputs:
            assert n.op_type == "Identity", n.name
            continue
        assert n.name.split("/", 1)[0] in by_path, n.name
        assert re.fullmatch(r"[\w./<> -]+\.res:\d+", n.doc_string), n.doc_string
    # No clutter: nothing but computation. Some ops need these nodes as their computation
    # (docs/onnx.md): `upsample(to = t)` reads its size with `Shape`s of both inputs, a
    # `reshape` is a Reshape, a `param` is expanded over the batch (Shape, Expand), and a
    # channels-first `layer_norm` reshapes around LayerNormalization.
    needs = {n.path for n in net.graph.nodes()
             if (n.op == "upsample" and len(n.inputs) == 2)
             or n.op in ("reshape", "param", "layer_norm")}
    ops = {n.op_type for n in model.graph.node
           if n.name not in outputs and n.name.split("/", 1)[0] not in needs}
    assert not ops & {"Identity", "Cast", "Reshape", "Constant", "Shape", "Expand"}, ops


def test_initializers_are_the_state_dict_and_the_same_seed_gives_torchs_weights() -> None:
    torch = pytest.importorskip("torch")
    net = resdsl.load(str(SPECS / "resnet20.res"))
    model = net.to_onnx(seed=3)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    state = net.to_torch(seed=3).state_dict()
    expected = {k for k in state if not k.endswith("num_batches_tracked")}
    # Besides the state_dict, only the constants of ops (option A's slice and pad): PATH/what.
    assert {k for k in inits if "/" not in k} == expected
    assert all(k.rpartition("/")[0] in {n.path for n in net.graph.nodes()}
               for k in inits if "/" in k)
    for key in expected:
        assert np.array_equal(inits[key], state[key].numpy()), key
    other = {t.name: t for t in net.to_onnx(seed=4).graph.initializer}
    assert other["conv1.weight"].raw_data != {t.name: t for t in model.graph.initializer}[
        "conv1.weight"].raw_data
    del torch


def test_interface_and_metadata() -> None:
    net = resdsl.load(str(SPECS / "dpn92.res"), classes=10, input_shape=(3, 64, 64))
    model = net.to_onnx()
    assert model.ir_version == onnx.helper.find_min_ir_version_for(
        [onnx.helper.make_opsetid("", 17)]) == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.producer_name == "resdsl" and model.producer_version == resdsl.__version__
    assert model.graph.name == "dpn92"
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, dims) == ("input", ["batch", 3, 64, 64])
    assert out.name == "output"
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 10]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["network"] == "dpn92"
    assert meta["resdsl_version"] == resdsl.__version__
    assert meta["parameters"] == str(net.counts().params)
    assert "classes=10" in meta["network_parameters"] and "k_r=96" in meta["network_parameters"]
    assert meta["input_shape"] == "3×64×64"
    # Traceability: the conv of the first unit's 3x3 layer comes from the spec line of the
    # `conv` inside the block `bn_act_conv`, which `c3x3_b` calls.
    lines = (SPECS / "dpn92.res").read_text("utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith("conv: conv("))
    conv = next(n for n in model.graph.node if n.name == "features.conv2_1.c3x3_b.conv")
    assert conv.doc_string == f"dpn92.res:{line}"
    r50 = resdsl.load(str(SPECS / "resnet50.res"), input_shape=(3, 64, 64)).to_onnx()
    conv2 = next(n for n in r50.graph.node if n.name == "layer2.0.conv2")
    assert conv2.doc_string == "blocks/resnet.res:" + str(
        1 + (SPECS / "blocks" / "resnet.res").read_text().splitlines().index(
            next(line for line in (SPECS / "blocks" / "resnet.res").read_text().splitlines()
                 if "conv2: conv(width, 3" in line)))


def test_batch_normalization_kept_by_default_and_folded_on_request(tmp_path: Path) -> None:
    net = resdsl.load(str(SPECS / "resnet50.res"), input_shape=(3, 64, 64))
    kept, folded = net.to_onnx(), net.to_onnx(fold_bn=True)

    def count(model: Any, op: str) -> int:
        return sum(1 for n in model.graph.node if n.op_type == op)

    assert count(kept, "BatchNormalization") == 53
    assert count(folded, "BatchNormalization") == 0
    assert len(folded.graph.node) == len(kept.graph.node) - 53 == 122
    x = sample_input((3, 64, 64))
    a, b = run_onnx(kept, x, tmp_path), run_onnx(folded, x, tmp_path)
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(a).max())))
    # A network that ends in a folded BN (behind a dropout): the conv makes `output`.
    spec = tmp_path / "tail.res"
    spec.write_text("network tail { input [3, 8, 8]; c: conv(4, 3); b: bn; dropout }\n",
                    "utf-8")
    tail = resdsl.load(str(spec)).to_onnx(fold_bn=True)
    assert [(n.name, n.op_type, list(n.output)) for n in tail.graph.node] == [
        ("c", "Conv", ["output"])]
    assert [o.name for o in tail.graph.output] == ["output"]
    onnx.checker.check_model(tail, full_check=True)


# ------------------------------------------------------------------ the opset range


@pytest.mark.parametrize("opset", [MIN_OPSET, MAX_OPSET])
def test_opset_range_ends(opset: int, all_ops: resdsl.Network, tmp_path: Path) -> None:
    """Both ends of the stated range: valid, ONNX's shapes are resdsl's, and ONNX Runtime
    computes what the PyTorch backend computes, for every op and primitive."""
    assert (MIN_OPSET, MAX_OPSET) == (13, 21)
    torch = pytest.importorskip("torch")
    from resdsl.backends.torch_module import build_module
    from tests.specgen import perturb

    state = perturb(all_ops.init_state(0), seed=1)
    for fold in (False, True):
        model = all_ops.to_onnx(weights=state, opset=opset, fold_bn=fold)
        assert model.opset_import[0].version == opset
        assert model.ir_version == onnx.helper.find_min_ir_version_for(
            [onnx.helper.make_opsetid("", opset)])
        onnx.checker.check_model(model, full_check=True)
        shapes = inferred_shapes(model)
        for node in all_ops.graph.nodes():
            if node.path in shapes:
                assert shapes[node.path] == ["batch", *node.shape], node.path
        x = sample_input(all_ops.input_shape, 3)
        y = run_onnx(model, x, tmp_path)
        with torch.inference_mode():
            ref = build_module(all_ops.graph, state).eval()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(y, ref, rtol=1e-4,
                                   atol=1e-5 * max(1.0, float(np.abs(ref).max())))
    ops = {n.op_type for n in all_ops.to_onnx(opset=opset).graph.node}
    assert ("Gelu" in ops) == (opset >= 20)
    assert ("HardSwish" in ops) == (opset >= 14)


def test_opsets_outside_the_range_are_usage_errors(all_ops: resdsl.Network) -> None:
    for opset in (MIN_OPSET - 1, MAX_OPSET + 1):
        with pytest.raises(resdsl.UsageError, match="opsets 13 to 21"):
            all_ops.to_onnx(opset=opset)
    run = run_cli("compile", "specs/resnet20.res", "--to", "onnx", "--opset", "12", "-o",
                  "/nonexistent/x.onnx")
    assert run.code == 2 and "--opset 12" in run.err


# ------------------------------------------------------------------ files


def test_external_data(tmp_path: Path, all_ops: resdsl.Network) -> None:
    """Over 2 GB the weights go to FILE.<digest>.data (forced here with a small network);
    tests/test_outputs.py checks how the pair is replaced."""
    out = tmp_path / "ext.onnx"
    result = save(all_ops, str(out), external=True, verify=True)
    data = Path(result.paths[1])
    assert result.paths == [str(out), str(data)]
    assert re.fullmatch(r"ext\.onnx\.[0-9a-f]{16}\.data", data.name)
    assert out.stat().st_size < data.stat().st_size
    model = onnx.load(str(out), load_external_data=False)
    external = [t.name for t in model.graph.initializer if t.data_location == t.EXTERNAL]
    assert "u1.conv1.weight" in external and "fc.weight" not in external  # under 1 KiB
    assert result.verification is not None
    inline = all_ops.to_onnx()
    x = sample_input(all_ops.input_shape)
    (y,) = session(str(out)).run(None, {"input": x})
    np.testing.assert_array_equal(y, run_onnx(inline, x, tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ext.onnx", data.name, "m.onnx"]
    assert onnx_lowering.DEFAULT_OPSET == 17


def test_byte_identical_across_processes_folders_and_hash_seeds(tmp_path: Path) -> None:
    """The same spec, options and seed: the same bytes, whatever the process, its working
    folder (the spec given relative or absolute) and PYTHONHASHSEED."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    runs = [
        (ROOT, "specs/dpn92.res", "1", tmp_path / "a.onnx"),
        (other, str(SPECS / "dpn92.res"), "2", tmp_path / "b.onnx"),
        (other, os.path.relpath(SPECS / "dpn92.res", other), "random", tmp_path / "c.onnx"),
    ]
    for cwd, spec, hashseed, out in runs:
        proc = subprocess.run(
            [sys.executable, "-m", "resdsl", "compile", spec, "--to", "onnx", "--seed", "7",
             "-D", "classes=10", "--input", "3x64x64", "-o", str(out)],
            cwd=cwd, capture_output=True, text=True, timeout=300,
            env={**os.environ, "PYTHONHASHSEED": hashseed,
                 "PYTHONPATH": str(ROOT)},
        )
        assert proc.returncode == 0, proc.stderr
    a, b, c = ((tmp_path / f"{n}.onnx").read_bytes() for n in "abc")
    assert a == b == c
    assert len(a) > 1_000_000


def test_a_huge_network_is_refused_fast_without_onnx_or_torch(tmp_path: Path) -> None:
    """10¹² parameters: refused from the graph alone, within 200 MB, importing neither onnx
    nor torch and allocating nothing (its time, which varies with load, is not asserted)."""
    spec = tmp_path / "huge.res"
    spec.write_text("network huge {\n    input [4096]\n"
                    "    repeat 1000 { linear(131072); linear(4096) }\n}\n", encoding="utf-8")
    code = (
        "import re, sys; from resdsl.cli import main; "
        f"code = main(['compile', {str(spec)!r}, '--to', 'onnx', '--verify', '-o', 'x.onnx']); "
        "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', "
        "'onnxruntime')]; print(code, peak, len(heavy))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    code_, rss_kb, heavy = run.stdout.split()
    assert code_ == "1" and heavy == "0"
    assert int(rss_kb) < 200 * 1024
    assert "error[E0701]" in run.stderr and "1,073,876,992,000 parameters" in run.stderr
    assert list(tmp_path.iterdir()) == [spec]


# ------------------------------------------------------------------ the command line


def test_compile_writes_the_default_output_and_reports(tmp_path: Path) -> None:
    spec = str(SPECS / "resnet20.res")
    run = subprocess.run([sys.executable, "-m", "resdsl", "compile", spec, "--to", "onnx",
                          "--verify"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert re.fullmatch(r"wrote resnet20\.onnx: ONNX model of resnet20 \(269,722 parameters; "
                        r"opset 17, \d+ nodes, [\d.]+ MB\)", lines[0]), lines[0]
    assert lines[1].startswith("verified: onnx.checker (full) passed; ONNX Runtime ")
    assert "matches the PyTorch backend" in lines[1]
    assert [p.name for p in tmp_path.iterdir()] == ["resnet20.onnx"]
    onnx.checker.check_model(str(tmp_path / "resnet20.onnx"), full_check=True)


def test_compile_json(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    run = run_cli("compile", "specs/resnet20.res", "--to", "onnx", "--verify", "--fold-bn",
                  "--opset", "21", "-o", str(out), "--format", "json")
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    assert doc["target"] == "onnx" and doc["output"] == str(out)
    assert doc["verify"]["batch"] == 2 and doc["verify"]["max_diff"] < 1e-3
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 21
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)


def test_onnx_options_need_the_onnx_target(tmp_path: Path) -> None:
    for flag in (["--opset", "17"], ["--fold-bn"], ["--verify"]):
        run = run_cli("compile", "specs/resnet20.res", "--to", "python", *flag, "-o",
                      str(tmp_path / "m.py"))
        assert run.code == 2 and "applies to --to onnx only" in run.err


def test_failed_compile_keeps_the_old_file_and_never_overwrites_the_spec(tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous good file")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 3)
    run = run_cli("compile", "specs/resnet20.res", "--to", "onnx", "--weights", str(bad),
                  "-o", str(out))
    assert run.code == 1 and "error[E0602]" in run.err
    assert out.read_bytes() == b"the previous good file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors", "model.onnx"]
    spec = tmp_path / "net.res"
    spec.write_text("network net { input [3, 8, 8]; conv(4, 3) }\n", "utf-8")
    before = spec.read_bytes()
    run = run_cli("compile", str(spec), "--to", "onnx", "-o", str(spec))
    assert run.code == 2 and "refusing to overwrite" in run.err
    assert spec.read_bytes() == before


def test_weights_and_overrides_reach_the_model(tmp_path: Path) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    net = resdsl.load(str(SPECS / "resnet20.res"), classes=7)
    state = {k: v + 1 if v.dtype == np.float32 else v
             for k, v in net.init_state(seed=5).items()}
    path = tmp_path / "w.safetensors"
    safetensors_numpy.save_file(state, str(path))
    out = tmp_path / "m.onnx"
    run = run_cli("compile", "specs/resnet20.res", "--to", "onnx", "-D", "classes=7",
                  "--input", "3x16x16", "--weights", str(path), "-o", str(out))
    assert run.code == 0, run.err
    assert "loaded 73 of 73 tensors" not in run.out  # num_batches_tracked are in the file
    assert f"from {path} by name" in run.out
    model = onnx.load(str(out))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(inits["fc.weight"], state["fc.weight"])
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    assert dims == [3, 16, 16]


# ------------------------------------------------------------------ without torch, onnx, ort


def _no(module: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    code = (f"import sys; sys.modules[{module!r}] = None; from resdsl.cli import main; "
            f"rc = main({argv!r}); "
            "print('torch' in sys.modules and sys.modules['torch'] is not None); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_works_without_torch(tmp_path: Path) -> None:
    """No torch: .safetensors weights load, the model is written and verified in ONNX
    Runtime, and the report says there was no comparison; a .pth file is E0606."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    net = resdsl.load(str(SPECS / "resnet20.res"))
    safetensors_numpy.save_file(net.init_state(seed=1), str(tmp_path / "w.safetensors"))
    run = _no("torch", ["compile", str(SPECS / "resnet20.res"), "--to", "onnx", "--verify",
                        "--weights", "w.safetensors"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "PyTorch is not installed, so there is no comparison" in run.stdout
    assert run.stdout.splitlines()[-1] == "False"
    assert (tmp_path / "resnet20.onnx").exists()
    # A whole archive: the reader checks its structure without torch (a damaged one is
    # E0602 at once), then needs torch to unpickle it.
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(2)}, tmp_path / "w.pth")
    run = _no("torch", ["compile", str(SPECS / "resnet20.res"), "--to", "onnx",
                        "--weights", "w.pth", "-o", "x.onnx"], tmp_path)
    assert run.returncode == 1 and "error[E0606]" in run.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_missing_onnx_is_a_diagnostic(tmp_path: Path) -> None:
    run = _no("onnx", ["compile", str(SPECS / "resnet20.res"), "--to", "onnx"], tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    _golden("E0711_needs_onnx", run.stderr)
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_is_a_diagnostic_for_verify(tmp_path: Path) -> None:
    run = _no("onnxruntime", ["compile", str(SPECS / "resnet20.res"), "--to", "onnx",
                              "--verify"], tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    _golden("E0712_needs_onnxruntime", run.stderr)
    assert list(tmp_path.iterdir()) == []
    run = _no("onnxruntime", ["compile", str(SPECS / "resnet20.res"), "--to", "onnx"],
              tmp_path)
    assert run.returncode == 0, run.stderr  # writing needs no runtime


def test_a_verification_failure_writes_nothing(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong emitter (relu emitted as Neg) is caught by --verify: E0713, no file."""
    pytest.importorskip("torch")
    monkeypatch.setitem(EMITTERS, "relu", lambda c: c.emit("Neg", [c.x[0]]))
    spec = tmp_path / "tiny.res"
    spec.write_text("network tiny { input [4]; relu }\n", "utf-8")
    out = tmp_path / "tiny.onnx"
    out.write_bytes(b"old")
    run = run_cli("compile", str(spec), "--to", "onnx", "--verify", "-o", str(out))
    assert run.code == 1
    _golden("E0713_verification_fails", run.err)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx", "tiny.res"]


# ------------------------------------------------------------------ torch.onnx.export


@pytest.mark.parity
def test_cross_check_with_torch_onnx_export(tmp_path: Path) -> None:
    """The reference exporter, given the PyTorch backend's module, makes a file that ONNX
    Runtime runs to the same outputs as ours."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    net = resdsl.load(str(SPECS / "resnet18.res"), classes=10, input_shape=(3, 32, 32))
    ours = tmp_path / "ours.onnx"
    net.save_onnx(str(ours), seed=2)
    theirs = tmp_path / "theirs.onnx"
    code = (
        "import sys, torch, resdsl; "
        f"net = resdsl.load({str(SPECS / 'resnet18.res')!r}, classes=10, "
        "input_shape=(3, 32, 32)); m = net.to_torch(seed=2).eval(); "
        f"torch.onnx.export(m, (torch.randn(2, 3, 32, 32),), {str(theirs)!r}, "
        "dynamic_shapes=({0: 'batch'},), input_names=['input'], output_names=['output'], "
        "external_data=False, verbose=False)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    x = sample_input((3, 32, 32), 3)
    (a,) = session(str(ours)).run(None, {"input": x})
    (b,) = session(str(theirs)).run(None, {"input": x})
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(b).max())))
    del torch


def test_a_network_that_computes_nothing_is_one_identity(tmp_path: Path) -> None:
    """The only case an Identity node is emitted: the output is the input itself."""
    spec = tmp_path / "nothing.res"
    spec.write_text("network nothing { input [4]; identity; dropout(0.3); flatten }\n", "utf-8")
    model = resdsl.load(str(spec)).to_onnx()
    assert [(n.op_type, list(n.input), list(n.output)) for n in model.graph.node] == [
        ("Identity", ["input"], ["output"])]
    x = sample_input((4,))
    np.testing.assert_array_equal(run_onnx(model, x, tmp_path), x)


def test_locations_in_the_built_in_library(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.res"
    spec.write_text('use "blocks/resnet.res"\nnetwork tiny(classes = 10) {\n'
                    "    input [3, 32, 32]\n    stem\n    layer1: repeat 1 { bottleneck(8) }\n"
                    "    head(classes)\n}\n", "utf-8")
    model = resdsl.load(str(spec)).to_onnx()
    docs = {n.name: n.doc_string for n in model.graph.node}
    assert docs["layer1.0.conv1"].startswith("<resdsl library>/blocks/resnet.res:")
