"""resdsl.weights: the shared initialiser, checkpoint reading and matching, and the golden
tests of the E06xx diagnostics.

The E06xx diagnostics concern a weights file, not a spec, so their goldens cannot be a bad
spec like those of tests/golden/errors/. Each case below writes a bad weights file (or
state_dict) for the one spec tests/golden/weights/net.res, in a temporary folder that is the
working folder (so messages show a bare file name), and compares the rendered diagnostic
with tests/golden/weights/NAME.txt. RESDSL_UPDATE_GOLDEN=1 rewrites them;
tests/test_golden_errors.py counts them for its every-code-has-a-golden check.
"""

from __future__ import annotations

import builtins
import math
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
import torchvision

import resdsl
from resdsl.arguments import ArgumentError
from resdsl.diagnostics import SpecError, render_all_text
from resdsl.ir.graph import Graph
from resdsl.passes.counts import state_shapes
from resdsl.weights import LoadReport, initial_state, load_state, read_checkpoint
from tests.conftest import ROOT
from tests.helpers import graph_of

GOLDEN = ROOT / "tests" / "golden" / "weights"
NET = GOLDEN / "net.res"
State = dict[str, np.ndarray]


def graph(spec: str, **params: Any) -> Graph:
    return resdsl.load(str(ROOT / spec), **params).graph


def codes(exc: pytest.ExceptionInfo[SpecError]) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


def text(exc: pytest.ExceptionInfo[SpecError]) -> str:
    return render_all_text(exc.value.diagnostics)


def torch_state(sd: dict[str, torch.Tensor]) -> State:
    return {k: v.detach().numpy() for k, v in sd.items()}


@pytest.fixture(scope="module")
def tv_resnet18() -> OrderedDict[str, torch.Tensor]:
    torch.manual_seed(0)
    sd: OrderedDict[str, torch.Tensor] = torchvision.models.resnet18().state_dict()
    # Non-zero statistics, so that a buffer loaded into the wrong key would show.
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            v.fill_(7)
        elif "running" in k:
            v.uniform_(0.5, 1.5)
    return sd


# ------------------------------------------------------------------ initial_state


@pytest.mark.parametrize(
    "spec",
    ["specs/resnet18.res", "specs/resnext50_32x4d.res", "specs/densenet121.res",
     "specs/dpn92.res", "specs/highway_cifar19.res", "specs/rezero_resnet56.res",
     "specs/resnetv2_50.res", "specs/seresnet50.res"],
)
def test_init_has_exactly_the_state_keys(spec: str) -> None:
    g = graph(spec)
    state = initial_state(g)
    shapes = state_shapes(g)
    assert list(state) == list(shapes)
    for key, value in state.items():
        assert value.shape == shapes[key], key
        expected = np.int64 if key.endswith("num_batches_tracked") else np.float32
        assert value.dtype == expected, key
        assert np.isfinite(value).all(), key


def test_init_is_deterministic() -> None:
    g = graph("specs/resnet18.res")
    a, b, c = initial_state(g, 3), initial_state(g, 3), initial_state(g, 4)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    random = [k for k in a if k.endswith("conv1.weight") or k.startswith("fc.")]
    assert random and all(a[k].tobytes() != c[k].tobytes() for k in random)
    assert initial_state(g, 2**64 - 1)["fc.weight"].tobytes() != a["fc.weight"].tobytes()
    # Seeds are 0 to 2**64 - 1, as the API and CLI take them: none wraps onto another.
    with pytest.raises(ArgumentError):
        initial_state(g, -1)
    # Constants do not depend on the seed.
    assert a["bn1.running_var"].tobytes() == c["bn1.running_var"].tobytes()


def test_init_of_a_key_does_not_depend_on_other_layers(tmp_path: Path) -> None:
    # Changing the classifier changes the classifier only.
    small, large = initial_state(graph("specs/resnet18.res", classes=10)), initial_state(
        graph("specs/resnet18.res")
    )
    assert small["fc.weight"].shape == (10, 512)
    for key in small:
        if not key.startswith("fc."):
            assert small[key].tobytes() == large[key].tobytes(), key
    # Inserting a layer in the middle leaves the layers after it as they were.
    before = graph_of(tmp_path, "network n { input [3, 8, 8]\n a: conv(8, 3); b: conv(8, 3) }")
    after = graph_of(
        tmp_path, "network n { input [3, 8, 8]\n a: conv(8, 3); x: conv(8, 1); b: conv(8, 3) }"
    )
    s0, s1 = initial_state(before), initial_state(after)
    assert s0["a.weight"].tobytes() == s1["a.weight"].tobytes()
    assert s0["b.weight"].tobytes() == s1["b.weight"].tobytes()


def test_init_statistics() -> None:
    state = initial_state(graph("specs/resnext50_32x4d.res"), 1)
    # A plain 3x3 conv: Kaiming normal, fan_out = 512 · 3 · 3.
    w = state["layer4.0.conv2.weight"]
    assert w.shape == (1024, 32, 3, 3)  # grouped: torch's fan_out is still out · kh · kw
    std = math.sqrt(2 / (1024 * 9))
    assert abs(float(w.std()) / std - 1) < 0.01
    assert abs(float(w.mean())) < 0.01 * std
    w = state["layer4.0.conv3.weight"]
    assert abs(float(w.std()) / math.sqrt(2 / 2048) - 1) < 0.01
    # The classifier: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    bound = 1 / math.sqrt(2048)
    fc = state["fc.weight"]
    assert float(np.abs(fc).max()) <= bound
    assert float(np.abs(fc).max()) > 0.999 * bound
    assert abs(float(fc.std()) / (bound / math.sqrt(3)) - 1) < 0.01
    assert float(np.abs(state["fc.bias"]).max()) <= bound
    assert float(state["fc.bias"].std()) > 0.5 * bound / math.sqrt(3)


def test_init_conv_bias_and_gate_bias() -> None:
    state = initial_state(graph("specs/highway_cifar19.res"))
    # A conv's own bias: torch's default U(-b, b), b = 1/sqrt(in/groups · kh · kw).
    bias = state["conv6.bias"]  # 32 → 80 channels, 3x3
    bound = 1 / math.sqrt(32 * 9)
    assert float(np.abs(bias).max()) <= bound
    assert float(np.abs(bias).max()) > 0.5 * bound
    # Every gate's transform bias starts at -2 (the spec's `bias = -2`).
    transform = [k for k in state if k.endswith("transform.bias")]
    assert len(transform) == 14
    assert all((state[k] == -2.0).all() for k in transform)
    assert all(state[k].std() > 0 for k in state if k.endswith("h.bias"))


def test_init_batchnorm_constants() -> None:
    state = initial_state(graph("specs/resnet18.res"))
    assert (state["layer1.0.bn1.weight"] == 1).all()
    assert (state["layer1.0.bn1.bias"] == 0).all()
    assert (state["layer1.0.bn1.running_mean"] == 0).all()
    assert (state["layer1.0.bn1.running_var"] == 1).all()
    nbt = state["layer1.0.bn1.num_batches_tracked"]
    assert nbt.shape == () and nbt.dtype == np.int64 and int(nbt) == 0


def test_init_alpha_and_weighted_sum(tmp_path: Path) -> None:
    state = initial_state(graph("specs/rezero_resnet56.res"))
    alphas = [k for k in state if k.endswith(".alpha")]
    assert len(alphas) == 27
    assert all(state[k].shape == (1,) and state[k][0] == 0.0 for k in alphas)
    state = initial_state(graph("specs/rezero_resnet56.res", alpha=0.25))
    assert all(state[k][0] == 0.25 for k in alphas)
    g = graph_of(tmp_path, """network n {
        input [8, 8, 8]
        mix: weight { a: branch { identity } b: branch { conv(8, 3); bn } }
    }""")
    state = initial_state(g, 5)
    (key,) = [k for k in state if state[k].shape == (2,) and not k.startswith("mix.b.")]
    assert (state[key] == 0).all()


def _zeroed(state: State, other: State) -> set[str]:
    return {k for k in state if state[k].tobytes() != other[k].tobytes()}


def test_zero_init_residual_bottleneck() -> None:
    g = graph("specs/resnet50.res")
    plain, zeroed = initial_state(g, 2), initial_state(g, 2, zero_init_residual=True)
    changed = _zeroed(plain, zeroed)
    bn3 = {k for k in plain if k.endswith(".bn3.weight")}
    assert len(bn3) == 16 and changed == bn3
    assert all((zeroed[k] == 0).all() for k in bn3)
    assert (zeroed["layer1.0.downsample.1.weight"] == 1).all()
    assert (zeroed["layer2.0.bn2.weight"] == 1).all()


def test_zero_init_residual_basic_and_se() -> None:
    g = graph("specs/resnet18.res")
    changed = _zeroed(initial_state(g), initial_state(g, zero_init_residual=True))
    assert changed == {f"layer{s}.{i}.bn2.weight" for s in range(1, 5) for i in range(2)}
    # SE: the body ends in bn3 · σ(...): the walk follows the product's main input.
    g = graph("specs/seresnet50.res")
    changed = _zeroed(initial_state(g), initial_state(g, zero_init_residual=True))
    assert len(changed) == 16 and all(k.endswith(".bn3.weight") for k in changed)


@pytest.mark.parametrize("spec", ["specs/resnetv2_50.res", "specs/rezero_resnet56.res",
                                  "specs/densenet121.res", "specs/highway_cifar19.res"])
def test_zero_init_residual_leaves_other_units_alone(spec: str) -> None:
    # Pre-activation bodies end in a conv; `weight` units have α; the rest have no skip.
    g = graph(spec)
    assert not _zeroed(initial_state(g), initial_state(g, zero_init_residual=True))


def test_zero_init_residual_ignores_a_bn_before_the_unit(tmp_path: Path) -> None:
    # The body `{ relu }` leads back out of the unit to bn1, which the shortcut uses too.
    g = graph_of(tmp_path, "network n { input [8, 8, 8]\n c: conv(8, 3); b: bn\n"
                           " skip { relu } }")
    assert not _zeroed(initial_state(g), initial_state(g, zero_init_residual=True))


# ------------------------------------------------------------------ read_checkpoint


def test_safetensors_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors: State = {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f64": rng.standard_normal(5),
        "f16": rng.standard_normal((2, 2)).astype(np.float16),
        "i64": np.array(7, dtype=np.int64),
        "i32": np.arange(3, dtype=np.int32),
        "i8": np.array([-1, 2], dtype=np.int8),
        "u8": np.array([255], dtype=np.uint8),
        "bool": np.array([True, False]),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    path = tmp_path / "w.safetensors"
    safetensors.numpy.save_file(tensors, str(path))
    read = read_checkpoint(str(path))
    assert set(read) == set(tensors)
    for k, v in tensors.items():
        assert read[k].dtype == v.dtype and read[k].shape == v.shape, k
        assert np.array_equal(read[k], v), k
        assert read[k].flags.writeable and read[k].flags.aligned


def test_safetensors_unaligned_data(tmp_path: Path) -> None:
    # A float32 tensor placed one byte into the data, after a uint8 one: read correctly and
    # copied to an aligned array.
    values = np.array([1.5, -2.25], dtype="<f4")
    header = (b'{"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
              b'"f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}')
    path = tmp_path / "odd.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\x07" + values.tobytes())
    read = read_checkpoint(str(path))
    assert list(read) == ["u", "f"]
    assert read["u"].tolist() == [7] and read["f"].tolist() == [1.5, -2.25]
    assert read["f"].flags.aligned and read["f"].dtype == np.float32


def test_safetensors_bf16_and_f16_from_torch(tmp_path: Path) -> None:
    g = graph_of(tmp_path, "network n { input [3, 4, 4]\n c: conv(4, 3); b: bn }")
    sd = {k: torch.from_numpy(v) for k, v in initial_state(g, 9).items()}
    sd["c.weight"] = sd["c.weight"].to(torch.bfloat16)
    sd["b.running_var"] = (sd["b.running_var"] + 0.123).to(torch.float16)
    path = tmp_path / "w.safetensors"
    safetensors.torch.save_file(sd, str(path))
    read = read_checkpoint(path)
    assert read["c.weight"].dtype == np.float32
    assert np.array_equal(read["c.weight"], sd["c.weight"].float().numpy())
    assert read["b.running_var"].dtype == np.float16
    loaded, report = load_state(g, path)
    assert report.method == "name" and len(report.matched) == 6
    assert report.converted == ("c.weight", "b.running_var")
    assert loaded["b.running_var"].dtype == np.float32
    assert np.array_equal(loaded["b.running_var"], sd["b.running_var"].float().numpy())
    assert loaded["b.num_batches_tracked"].dtype == np.int64


def test_pth_round_trip_and_wrappers(tmp_path: Path) -> None:
    sd = OrderedDict(a=torch.randn(2, 3), b=torch.arange(4), c=torch.randn(3).to(torch.bfloat16))
    for name, obj in {
        "plain": sd,
        "wrapped": {"state_dict": sd, "epoch": 3, "optimizer": {"lr": 0.1}},
        "model": {"model": sd, "args": ["x"]},
        "nested": {"model": {"state_dict": sd}},
        "ddp": {"model_state_dict": OrderedDict((f"module.{k}", v) for k, v in sd.items())},
        "module": {"module": sd},
    }.items():
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path)
        read = read_checkpoint(str(path))
        assert list(read) == ["a", "b", "c"], name
        assert np.array_equal(read["a"], sd["a"].numpy())
        assert read["b"].dtype == np.int64
        assert read["c"].dtype == np.float32
        assert np.array_equal(read["c"], sd["c"].float().numpy())
    # The prefix is only removed when every key has it.
    torch.save({"module.a": sd["a"], "b": sd["b"]}, tmp_path / "mixed.pt")
    assert list(read_checkpoint(str(tmp_path / "mixed.pt"))) == ["module.a", "b"]


def test_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "payload": RunsCode()}, path)
    with pytest.raises(SpecError) as exc:
        read_checkpoint(str(path))
    assert codes(exc) == ["E0607"]
    assert "tests.test_weights._mark" in text(exc)
    assert not RAN, "loading a checkpoint ran code from it"


def test_bad_files(tmp_path: Path) -> None:
    def error(name: str, data: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(SpecError) as exc:
            read_checkpoint(str(path))
        assert len(exc.value.diagnostics) == 1
        return f"{exc.value.diagnostics[0].code}: {exc.value.diagnostics[0].message}"

    good = tmp_path / "good.safetensors"
    safetensors.numpy.save_file({"a": np.zeros(100, np.float32)}, str(good))
    data = good.read_bytes()
    assert "truncated" in error("cut.safetensors", data[:-10])
    assert "E0602" in error("cut2.safetensors", data[:20])
    assert "E0602" in error("tiny.safetensors", data[:5])
    assert "not JSON" in error("json.safetensors", data[:8] + b"}" + data[9:])
    header = data[8 : 8 + int.from_bytes(data[:8], "little")]
    assert "E0602" in error("dtype.safetensors", data.replace(header, header.replace(
        b'"F32"', b'"C64"')))
    assert "needs 400 bytes" in error("offsets.safetensors", data.replace(header, header.replace(
        b"[0,400]", b"[0,396]")))
    assert "empty" in error("empty.pth", b"")
    assert "not a PyTorch checkpoint" in error("text.pth", b"hello world\n")
    assert "not a valid .safetensors" in error("text.safetensors", b"hello world, long text\n")
    assert "neither .safetensors nor a PyTorch file" in error("weights.npz", b"hello world\n")
    torch.save({"a": torch.zeros(1000)}, tmp_path / "ok.pth")
    pth = (tmp_path / "ok.pth").read_bytes()
    assert "truncated PyTorch checkpoint" in error("cut.pth", pth[: len(pth) // 2])
    # An unknown suffix is recognised by content.
    (tmp_path / "w.weights").write_bytes(data)
    assert list(read_checkpoint(str(tmp_path / "w.weights"))) == ["a"]
    (tmp_path / "w2.weights").write_bytes(pth)
    assert list(read_checkpoint(str(tmp_path / "w2.weights"))) == ["a"]


def test_unreadable_paths(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.safetensors", tmp_path):
        with pytest.raises(SpecError) as exc:
            read_checkpoint(str(path))
        assert codes(exc) == ["E0601"]
        assert str(path) in exc.value.diagnostics[0].message


def test_not_a_state_dict(tmp_path: Path) -> None:
    cases: dict[str, object] = {
        "list": [torch.zeros(1)],
        "value": {"a": torch.zeros(1), "epoch": 3},
        "config": {"a": torch.zeros(1), "config": {"lr": 0.1}},
        "key": {1: torch.zeros(1)},
    }
    for name, obj in cases.items():
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path)
        with pytest.raises(SpecError) as exc:
            read_checkpoint(str(path))
        assert codes(exc) == ["E0602"], name
    with pytest.raises(SpecError) as exc:
        load_state(graph("specs/resnet18.res"), {"a": [1.0, 2.0]})
    assert codes(exc) == ["E0602"]


def test_needs_torch_only_for_pytorch_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    torch.save({"a": torch.zeros(2)}, tmp_path / "w.pth")
    safetensors.numpy.save_file({"a": np.ones(2, np.float32)}, str(tmp_path / "w.safetensors"))
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    with pytest.raises(SpecError) as exc:
        read_checkpoint(str(tmp_path / "w.pth"))
    assert codes(exc) == ["E0606"]
    assert "pip install torch" in text(exc)
    assert read_checkpoint(str(tmp_path / "w.safetensors"))["a"].tolist() == [1.0, 1.0]


def test_safetensors_and_numpy_never_import_torch(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    safetensors.numpy.save_file({"fc.weight": np.ones((3, 2), np.float32)}, str(path))
    code = f"""
import sys
import numpy as np
from resdsl.weights import load_state, read_checkpoint
shapes = {{"fc.weight": (3, 2), "fc.bias": (3,)}}
out, report = load_state(shapes, {str(path)!r}, strict=False)
assert report.missing == ("fc.bias",), report
out, report = load_state(shapes, {{"fc.weight": np.zeros((3, 2)), "fc.bias": np.zeros(3)}})
assert report.converted == ("fc.weight", "fc.bias"), report
assert "torch" not in sys.modules, "torch was imported"
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# ------------------------------------------------------------------ load_state


def test_torchvision_resnet18_loads_by_name(tv_resnet18: OrderedDict[str, torch.Tensor],
                                            tmp_path: Path) -> None:
    g = graph("specs/resnet18.res")
    expected = torch_state(tv_resnet18)
    for weights in (tv_resnet18, tmp_path / "r18.pth", tmp_path / "r18.safetensors"):
        if isinstance(weights, Path) and weights.suffix == ".pth":
            torch.save(tv_resnet18, weights)
        elif isinstance(weights, Path):
            safetensors.torch.save_file(tv_resnet18, str(weights))
        loaded, report = load_state(g, weights)
        assert report.method == "name"
        assert report.matched == tuple(state_shapes(g))
        assert not (report.missing or report.unexpected or report.reinitialised)
        assert not report.converted
        assert list(loaded) == list(state_shapes(g))
        for k, v in expected.items():
            assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k], v), k
    assert report.summary() == "loaded 122 of 122 tensors from " + str(weights) + " by name"


def test_loads_by_structure(tv_resnet18: OrderedDict[str, torch.Tensor]) -> None:
    g = graph("specs/resnet18.res")
    renamed = OrderedDict((f"p{i}", v) for i, v in enumerate(tv_resnet18.values()))
    by_structure, report = load_state(g, renamed)
    by_name, _ = load_state(g, tv_resnet18)
    assert report.method == "structure"
    assert report.matched == tuple(state_shapes(g))
    assert list(by_structure) == list(by_name)
    assert all(np.array_equal(by_structure[k], by_name[k]) for k in by_name)
    assert "by structure" in report.summary()
    # Without num_batches_tracked in the file: the rest pairs, the counters start at 0.
    no_nbt = OrderedDict((f"q{i}", v) for i, (k, v) in enumerate(tv_resnet18.items())
                         if not k.endswith("num_batches_tracked"))
    loaded, report = load_state(g, no_nbt)
    assert report.method == "structure" and len(report.missing) == 20
    assert all(k.endswith("num_batches_tracked") for k in report.missing)
    assert all(np.array_equal(loaded[k], by_name[k]) for k in loaded)
    assert "20 num_batches_tracked counters not in the file start at 0" in report.summary()


def test_structure_needs_equal_counts_and_shapes(
    tv_resnet18: OrderedDict[str, torch.Tensor], tmp_path: Path
) -> None:
    g = graph("specs/resnet18.res")
    items = [(f"p{i}", v) for i, v in enumerate(tv_resnet18.values())]
    with pytest.raises(SpecError) as exc:
        load_state(g, OrderedDict(items[:-1]))
    assert codes(exc) == ["E0603"] and "the file has 101 tensors and the network 102" in text(exc)
    swapped = OrderedDict([items[1], items[0], *items[2:]])  # bn1.weight before conv1.weight
    with pytest.raises(SpecError) as exc:
        load_state(g, swapped)
    assert codes(exc) == ["E0604"] and "conv1.weight (the file's p1)" in text(exc)
    # A .safetensors file is sorted by name: never matched by structure.
    safetensors.torch.save_file(dict(items), str(tmp_path / "p.safetensors"))
    with pytest.raises(SpecError) as exc:
        load_state(g, tmp_path / "p.safetensors")
    assert codes(exc) == ["E0603"] and "sorted by dtype and name" in text(exc)


def test_strict_and_not_strict(tv_resnet18: OrderedDict[str, torch.Tensor]) -> None:
    g = graph("specs/resnet18.res")
    sd = OrderedDict(tv_resnet18)
    del sd["layer1.0.conv1.weight"]
    sd["extra.weight"] = torch.zeros(3)
    with pytest.raises(SpecError) as exc:
        load_state(g, sd)
    assert codes(exc) == ["E0603"]
    message = text(exc)
    assert "missing from the file: layer1.0.conv1.weight" in message
    assert "in the file but not in the network: extra.weight" in message
    loaded, report = load_state(g, sd, strict=False)
    assert report.missing == ("layer1.0.conv1.weight",)
    assert report.unexpected == ("extra.weight",)
    assert "layer1.0.conv1.weight" not in loaded and "extra.weight" not in loaded
    assert len(report.matched) == 121
    # A shape mismatch is an error even when not strict.
    sd["layer1.0.bn1.bias"] = torch.zeros(3)
    with pytest.raises(SpecError) as exc:
        load_state(g, sd, strict=False)
    assert codes(exc) == ["E0604"]
    assert "layer1.0.bn1.bias: 3 in the file, 64 here" in text(exc)


def test_long_key_lists_are_cut(tv_resnet18: OrderedDict[str, torch.Tensor]) -> None:
    sd = OrderedDict((k, v) for k, v in tv_resnet18.items() if not k.startswith("layer4"))
    with pytest.raises(SpecError) as exc:
        load_state(graph("specs/resnet18.res"), sd)
    (note,) = exc.value.diagnostics[0].notes
    assert note.startswith("missing from the file: layer4.0.conv1.weight, ")
    assert note.endswith(" and 17 more") and note.count(",") == 7


def test_old_checkpoints_without_counters(tv_resnet18: OrderedDict[str, torch.Tensor]) -> None:
    sd = OrderedDict((k, v) for k, v in tv_resnet18.items()
                     if not k.endswith("num_batches_tracked"))
    loaded, report = load_state(graph("specs/resnet18.res"), sd)
    assert report.method == "name" and len(report.missing) == 20 and len(report.matched) == 102
    assert not any(k.endswith("num_batches_tracked") for k in loaded)


def test_replace_head(tv_resnet18: OrderedDict[str, torch.Tensor]) -> None:
    g = resdsl.load(str(ROOT / "specs/resnet18.res"), classes=10).graph
    with pytest.raises(SpecError) as exc:
        load_state(g, tv_resnet18)
    assert codes(exc) == ["E0604"] and "replace_head=True" in text(exc)
    loaded, report = load_state(g, tv_resnet18, replace_head=True)
    assert report.reinitialised == ("fc.weight", "fc.bias")
    assert "fc.weight" not in loaded and "fc.bias" not in loaded
    assert len(loaded) == len(report.matched) == 120
    assert report.summary() == (
        "loaded 120 of 122 tensors from the given state_dict by name; re-initialised the head "
        "fc.weight, fc.bias (its shape differs: 1000×512 in the file, 10×512 here)"
    )
    # A head missing from the file (a backbone checkpoint) is re-initialised too.
    backbone = OrderedDict((k, v) for k, v in tv_resnet18.items() if not k.startswith("fc."))
    _, report = load_state(g, backbone, replace_head=True)
    assert report.reinitialised == ("fc.weight", "fc.bias") and not report.missing
    # A mismatch elsewhere is still an error.
    sd = OrderedDict(tv_resnet18)
    sd["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    with pytest.raises(SpecError) as exc:
        load_state(g, sd, replace_head=True)
    assert codes(exc) == ["E0604"] and "fc.weight" not in text(exc)
    # The head is the last layer with learnable state, here a 1x1 conv (densenet-like).
    h = graph_of_text("network n { input [3, 8, 8]\n a: conv(4, 3); b: bn\n"
                      " head: conv(5, 1, bias = true); global_avgpool; flatten }")
    sd_h = initial_state(h)
    sd_h["head.weight"] = np.zeros((7, 4, 1, 1), np.float32)
    sd_h["head.bias"] = np.zeros(7, np.float32)
    _, report = load_state(h, sd_h, replace_head=True)
    assert report.reinitialised == ("head.weight", "head.bias")


def graph_of_text(spec: str) -> Graph:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return graph_of(Path(tmp), spec)


def test_state_shapes_mapping_as_the_network(tv_resnet18: OrderedDict[str, torch.Tensor]
                                             ) -> None:
    # `Network.load_weights` passes the key → shape mapping; its head is the last module.
    shapes = state_shapes(graph("specs/resnet18.res", classes=10))
    loaded, report = load_state(shapes, tv_resnet18, replace_head=True)
    assert report.reinitialised == ("fc.weight", "fc.bias") and len(loaded) == 120
    with pytest.raises(SpecError) as exc:
        load_state(shapes, {k: v.float() for k, v in tv_resnet18.items()})
    assert codes(exc) == ["E0604", "E0605"]  # counters as floats, and the head's shape


def test_dtypes() -> None:
    g = graph_of_text("network n { input [3, 4, 4]\n c: conv(4, 3); b: bn }")
    state = initial_state(g, 1)
    mixed = dict(state)
    mixed["c.weight"] = state["c.weight"].astype(np.float64)
    mixed["b.weight"] = state["b.weight"].astype(np.float16)
    mixed["b.num_batches_tracked"] = np.array(5, dtype=np.int32)
    loaded, report = load_state(g, mixed)
    assert report.converted == ("c.weight", "b.weight")
    assert all(v.dtype == np.float32 for k, v in loaded.items() if "num_batches" not in k)
    assert loaded["b.num_batches_tracked"].dtype == np.int64
    assert int(loaded["b.num_batches_tracked"]) == 5
    assert np.array_equal(loaded["c.weight"], state["c.weight"])
    # The result never shares memory with the caller's arrays.
    assert not any(np.shares_memory(loaded[k], mixed[k]) for k in loaded)
    assert "converted 2 to float32: c.weight, b.weight" in report.summary()
    bad = dict(state)
    bad["c.weight"] = state["c.weight"].astype(np.int32)
    bad["b.num_batches_tracked"] = np.array(1.0)
    with pytest.raises(SpecError) as exc:
        load_state(g, bad)
    assert codes(exc) == ["E0605"]
    assert exc.value.diagnostics[0].notes == (
        "c.weight is int32; it must be a float",
        "b.num_batches_tracked is float64; a counter must be an integer",
    )


def test_report_is_a_frozen_record() -> None:
    report = LoadReport("w.pth", "name", ("a",), ("b",), ("c",), (), ())
    with pytest.raises(AttributeError):
        report.method = "structure"  # type: ignore[misc]
    assert report.summary() == (
        "loaded 1 of 2 tensors from w.pth by name; 1 tensor not in the file keeps its "
        "initial value: b; ignored 1 not in the network: c"
    )


# ------------------------------------------------------------------ goldens (E06xx)

RAN: list[bool] = []


def _mark() -> None:
    RAN.append(True)


class RunsCode:
    """Unpickling this calls `_mark`: what a malicious checkpoint would do."""

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return (_mark, ())


class CallsSystem:
    """Unpickling this runs a shell command (`touch pwned`): a malicious checkpoint."""

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return (os.system, ("touch pwned",))


Case = Callable[[Graph, pytest.MonkeyPatch], object]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return register


def net_state(classes: int = 10) -> State:
    return initial_state(resdsl.load(str(NET), classes=classes).graph, 1)


@case("E0601_missing_file")
def _missing(g: Graph, mp: pytest.MonkeyPatch) -> object:
    return load_state(g, "weights.safetensors")


@case("E0602_truncated_safetensors")
def _truncated(g: Graph, mp: pytest.MonkeyPatch) -> object:
    safetensors.numpy.save_file(net_state(), "net.safetensors")
    data = Path("net.safetensors").read_bytes()
    Path("net.safetensors").write_bytes(data[: len(data) - 100])
    return load_state(g, "net.safetensors")


@case("E0602_git_lfs_pointer")
def _lfs(g: Graph, mp: pytest.MonkeyPatch) -> object:
    Path("net.pth").write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        "size 46830571\n"
    )
    return load_state(g, "net.pth")


@case("E0602_truncated_pth")
def _truncated_pth(g: Graph, mp: pytest.MonkeyPatch) -> object:
    # Found from the end of the zip archive, before torch is asked.
    torch.save({k: torch.from_numpy(v) for k, v in net_state().items()}, "net.pth")
    data = Path("net.pth").read_bytes()
    Path("net.pth").write_bytes(data[: len(data) // 2])
    return load_state(g, "net.pth")


@case("E0602_corrupt_pth")
def _corrupt_pth(g: Graph, mp: pytest.MonkeyPatch) -> object:
    # A damaged pickle (a byte changed in a key): its record's checksum no longer matches.
    torch.save({k: torch.from_numpy(v) for k, v in net_state().items()}, "net.pth")
    data = Path("net.pth").read_bytes()
    Path("net.pth").write_bytes(data.replace(b"conv1.weight", b"conv1.weigh\xff", 1))
    return load_state(g, "net.pth")


@case("E0602_legacy_pickle_too_large")
def _legacy_too_large(g: Graph, mp: pytest.MonkeyPatch) -> object:
    # The legacy format (_use_new_zipfile_serialization=False) gives its pickle no size: this
    # one, a list of 600,000 small ints, is refused from its first MB, before torch reads it.
    start: tuple[object, ...] = (0x1950A86A20F9469CFC6C, 1001, {})  # magic, version, sizes
    header = b"".join(pickle.dumps(v, protocol=2) for v in start)
    Path("net.pth").write_bytes(header + b"\x80\x02]q\x00(" + b"K\x01" * 600_000 + b"e.")
    return load_state(g, "net.pth")


@case("E0602_storage_size_lie")
def _storage_lie(g: Graph, mp: pytest.MonkeyPatch) -> object:
    # The pickle declares a storage larger than the archive's record of it.
    torch.save({k: torch.from_numpy(v) for k, v in net_state().items()}, "net.pth")
    with zipfile.ZipFile("net.pth") as old:
        records = [(i.filename, old.read(i)) for i in old.infolist()]
    with zipfile.ZipFile("net.pth", "w") as new:
        for name, data in records:
            new.writestr(name, data[:-40] if name.endswith("/data/0") else data)
    return load_state(g, "net.pth")


@case("E0602_damaged_zip_directory")
def _damaged_directory(g: Graph, mp: pytest.MonkeyPatch) -> object:
    torch.save({k: torch.from_numpy(v) for k, v in net_state().items()}, "net.pth")
    data = Path("net.pth").read_bytes()
    Path("net.pth").write_bytes(data.replace(b"PK\x01\x02", b"PK\x00\x00", 1))
    return load_state(g, "net.pth")


@case("E0602_hostile_header")
def _hostile_header(g: Graph, mp: pytest.MonkeyPatch) -> object:
    header = b'{"fc.bias":{"dtype":"F32","shape":[10],"data_offsets":[0,' + b"9" * 5000 + b"]}}"
    Path("net.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(40))
    return load_state(g, "net.safetensors")


@case("E0602_several_state_dicts")
def _several(g: Graph, mp: pytest.MonkeyPatch) -> object:
    sd = {k: torch.from_numpy(v) for k, v in net_state().items()}
    torch.save({"student": sd, "teacher": sd, "epoch": 90}, "net.pth")
    return load_state(g, "net.pth")


@case("E0607_pickled_object")
def _pickled(g: Graph, mp: pytest.MonkeyPatch) -> object:
    torch.save({"state_dict": {"fc.bias": torch.zeros(10)}, "hook": RunsCode()}, "net.pth")
    return load_state(g, "net.pth")


@case("E0607_calls_os_system")
def _os_system(g: Graph, mp: pytest.MonkeyPatch) -> object:
    torch.save({"state_dict": {"fc.bias": torch.zeros(10)}, "hook": CallsSystem()}, "net.pth")
    try:
        return load_state(g, "net.pth")
    finally:
        assert not Path("pwned").exists(), "loading a checkpoint ran os.system"


@case("E0608_nan_weights")
def _nan(g: Graph, mp: pytest.MonkeyPatch) -> object:
    state = net_state()
    state["unit.conv2.weight"][0, 0, :2] = np.nan
    state["fc.bias"][3] = np.inf
    safetensors.numpy.save_file(state, "net.safetensors")
    return load_state(g, "net.safetensors")


@case("E0609_rename_collision")
def _collision(g: Graph, mp: pytest.MonkeyPatch) -> object:
    safetensors.numpy.save_file(net_state(), "net.safetensors")
    return load_state(g, "net.safetensors", rename={r"bn\d": "bn"})


@case("E0602_not_a_state_dict")
def _list(g: Graph, mp: pytest.MonkeyPatch) -> object:
    torch.save([torch.from_numpy(v) for v in net_state().values()], "net.pth")
    return load_state(g, "net.pth")


@case("E0603_missing_and_unexpected")
def _keys(g: Graph, mp: pytest.MonkeyPatch) -> object:
    state = net_state()
    state["classifier.weight"] = state.pop("fc.weight")
    state["classifier.bias"] = state.pop("fc.bias")
    safetensors.numpy.save_file(state, "net.safetensors")
    return load_state(g, "net.safetensors")


@case("E0603_renamed_part")
def _renamed_part(g: Graph, mp: pytest.MonkeyPatch) -> object:
    # The checkpoint calls the residual unit `block`: too few names match, and a
    # .safetensors file cannot be matched by structure; the help gives the rename.
    state = {k.replace("unit.", "block."): v for k, v in net_state().items()}
    safetensors.numpy.save_file(state, "net.safetensors")
    return load_state(g, "net.safetensors")


@case("E0603_no_structure")
def _structure(g: Graph, mp: pytest.MonkeyPatch) -> object:
    state = {f"features.{i}": v for i, v in enumerate(net_state().values())}
    del state["features.0"]
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, "net.pth")
    return load_state(g, "net.pth")


@case("E0604_classes")
def _classes(g: Graph, mp: pytest.MonkeyPatch) -> object:
    safetensors.numpy.save_file(net_state(classes=1000), "net.safetensors")
    return load_state(g, "net.safetensors")


@case("E0605_integer_weights")
def _dtype(g: Graph, mp: pytest.MonkeyPatch) -> object:
    state = net_state()
    state["conv1.weight"] = (state["conv1.weight"] * 100).astype(np.int8)
    safetensors.numpy.save_file(state, "net.safetensors")
    return load_state(g, "net.safetensors")


@case("E0606_needs_torch")
def _no_torch(g: Graph, mp: pytest.MonkeyPatch) -> object:
    torch.save({k: torch.from_numpy(v) for k, v in net_state().items()}, "net.pth")
    mp.setitem(sys.modules, "torch", None)  # as if torch were not installed
    return load_state(g, "net.pth")


@case("E0610_torch_import_fails")
def _torch_fails(g: Graph, mp: pytest.MonkeyPatch) -> object:
    torch.save({k: torch.from_numpy(v) for k, v in net_state().items()}, "net.pth")
    real = builtins.__import__

    def no_memory(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch":  # what `import torch` raises under `ulimit -v 300000`
            raise ImportError("libtorch_cpu.so: failed to map segment from shared object")
        return real(name, *args, **kwargs)

    mp.setattr(builtins, "__import__", no_memory)
    return load_state(g, "net.pth")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = resdsl.load(str(NET)).graph
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as exc:
        CASES[name](g, monkeypatch)
    rendered = render_all_text(exc.value.diagnostics)
    expected = GOLDEN / f"{name}.txt"
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        expected.write_text(rendered, encoding="utf-8")
    assert rendered == expected.read_text(encoding="utf-8")
    assert [d.code for d in exc.value.diagnostics] == [name.split("_", 1)[0]]
    assert not RAN


def test_every_weights_golden_has_a_case() -> None:
    assert {p.stem for p in GOLDEN.glob("*.txt")} == set(CASES)
    assert [p.name for p in GOLDEN.glob("*.res")] == ["net.res"]
