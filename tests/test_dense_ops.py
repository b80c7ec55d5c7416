"""The dense-prediction ops of issue 16: `upsample`, `conv_transpose` and `frozen_bn`, in every
backend, and the tensor arguments `upsample(to = t)` introduced for them.

Expected values come from the references themselves: `F.interpolate`, `nn.ConvTranspose2d`
and torchvision's `FrozenBatchNorm2d`, holding the same weights. Each op runs in the in-memory
module, in the standalone source (`--to python`) executed on its own, and in ONNX Runtime
(opsets 13, 17 and 21).
"""

from __future__ import annotations

import ast as pyast
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
F = torch.nn.functional

import resdsl  # noqa: E402
from resdsl.backends.onnx_lowering import torch_nearest_index  # noqa: E402
from resdsl.backends.torch_module import build_module  # noqa: E402
from resdsl.backends.torch_source import generate  # noqa: E402
from resdsl.diagnostics import SpecError  # noqa: E402
from resdsl.ir.ops import OPS, PER_CHANNEL, USER_OPS, ArgType  # noqa: E402
from resdsl.verify import session  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

DENSE_OPS = ("upsample", "conv_transpose", "frozen_bn")
OPSETS = (13, 17, 21)


def load(tmp_path: Path, text: str, **params: Any) -> resdsl.Network:
    path = tmp_path / "spec.res"
    path.write_text(text, encoding="utf-8")
    return resdsl.load(str(path), **params)


def codes(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(tmp_path, text)
    return [d.code for d in info.value.diagnostics]


def standalone(net: resdsl.Network) -> Any:
    """The network's class from its `--to python` source, executed on its own."""
    generated = generate(net.graph)
    namespace: dict[str, Any] = {}
    exec(compile(generated.source, "standalone.py", "exec"), namespace)
    return namespace[generated.class_name]


def onnx_run(net: resdsl.Network, state: dict[str, np.ndarray], x: np.ndarray, tmp_path: Path,
             opset: int, fold_bn: bool = False) -> tuple[np.ndarray, set[str]]:
    """ONNX Runtime's output for `x`, and the model's op types."""
    import onnx

    model = net.to_onnx(weights=state, opset=opset, fold_bn=fold_bn)
    onnx.checker.check_model(model, full_check=True)
    # ONNX's strict shape inference gives resdsl's shape for every value (a Resize's
    # output too, whose batch axis inference alone loses).
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                 data_prop=True)
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output]}
    for node in net.graph.nodes():
        if node.path in shapes:
            assert shapes[node.path] == ["batch", *node.shape], node.path
    path = tmp_path / f"m{opset}.onnx"
    path.write_bytes(model.SerializeToString())
    (y,) = session(str(path), threads=1).run(None, {"input": x})
    return np.asarray(y), {n.op_type for n in model.graph.node}


def randomised(net: resdsl.Network, seed: int = 0) -> dict[str, np.ndarray]:
    """The initial state with every float tensor random (norm statistics positive), so that
    no op hides behind an identity initialisation."""
    rng = np.random.default_rng(seed)
    state = net.init_state(seed)
    for key, value in state.items():
        if value.dtype != np.float32:
            continue
        if key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
        else:
            state[key] = (0.5 * rng.standard_normal(value.shape)).astype(np.float32)
    return state


# ------------------------------------------------------------------ the op table


def test_the_ops_are_defined_with_pytorchs_signatures() -> None:
    assert set(DENSE_OPS) <= set(USER_OPS)
    ct = OPS["conv_transpose"].args
    # nn.ConvTranspose2d's arguments after in_channels, in its order and with its defaults
    # (padding_mode aside: zeros only, as for `conv`).
    sig = inspect.signature(torch.nn.ConvTranspose2d.__init__).parameters
    names = [n for n in sig if n not in ("self", "in_channels", "padding_mode", "device",
                                         "dtype")]
    assert [a.name for a in ct] == ["out", "kernel", *names[2:]]
    assert names[:2] == ["out_channels", "kernel_size"]
    for a in ct[2:]:
        assert a.default == sig[a.name].default, a.name
    assert {a.name: a.default for a in OPS["frozen_bn"].args} == {"eps": 1e-5}
    up = {a.name: a for a in OPS["upsample"].args}
    assert list(up) == ["scale", "mode", "align_corners", "to"]
    assert up["mode"].choices == ("nearest", "bilinear") and up["mode"].default == "nearest"
    assert up["to"].type is ArgType.TENSOR
    # frozen_bn acts per channel, so a `group` body may hold it; the others may not.
    assert "frozen_bn" in PER_CHANNEL
    assert not {"upsample", "conv_transpose"} & PER_CHANNEL


def test_no_op_family_imports_another() -> None:
    """resdsl/ir/ops/: each family module imports only `base` (and the registry gathers
    them)."""
    folder = ROOT / "resdsl" / "ir" / "ops"
    families = {p.stem for p in folder.glob("*.py")} - {"__init__", "base", "registry"}
    assert {"conv", "norm", "pool", "elementwise", "tensor", "join", "resample"} <= families
    for name in families:
        tree = pyast.parse((folder / f"{name}.py").read_text("utf-8"))
        imported = {n.module for n in pyast.walk(tree)
                    if isinstance(n, pyast.ImportFrom) and n.module
                    and n.module.startswith("resdsl")}
        assert imported <= {"resdsl.ir.ops.base"}, (name, imported)


# ------------------------------------------------------------------ shapes and counts


CONV_T: list[tuple[str, dict[str, Any], tuple[int, int, int]]] = [
    # (spec arguments, nn.ConvTranspose2d keyword arguments, input C×H×W)
    ("6, 3, stride = 2, padding = 1, output_padding = 1",
     {"out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1},
     (4, 5, 7)),
    ("8, [2, 3], stride = [2, 1], padding = [0, 1], output_padding = [1, 0], groups = 2, "
     "bias = false",
     {"out_channels": 8, "kernel_size": (2, 3), "stride": (2, 1), "padding": (0, 1),
      "output_padding": (1, 0), "groups": 2, "bias": False}, (4, 5, 6)),
    # output_padding below the dilation, not the stride: within the padding, and beyond it
    # (rows that hold the bias alone), with and without a bias.
    ("4, 3, padding = 2, output_padding = 1, dilation = 2",
     {"out_channels": 4, "kernel_size": 3, "padding": 2, "output_padding": 1, "dilation": 2},
     (4, 6, 6)),
    ("4, 3, stride = [1, 2], output_padding = [2, 1], dilation = 3",
     {"out_channels": 4, "kernel_size": 3, "stride": (1, 2), "output_padding": (2, 1),
      "dilation": 3}, (4, 5, 6)),
    ("4, 3, output_padding = 1, dilation = 2, bias = false",
     {"out_channels": 4, "kernel_size": 3, "output_padding": 1, "dilation": 2, "bias": False},
     (4, 5, 6)),
    ("6, 4, stride = 3, groups = 3, dilation = [1, 2], output_padding = [2, 1]",
     {"out_channels": 6, "kernel_size": 4, "stride": 3, "groups": 3, "dilation": (1, 2),
      "output_padding": (2, 1)}, (3, 4, 5)),
    ("5, 2, stride = 2", {"out_channels": 5, "kernel_size": 2, "stride": 2}, (4, 3, 3)),
]


def _conv_t_net(tmp_path: Path, case: int) -> tuple[resdsl.Network, Any]:
    args, kwargs, (c, h, w) = CONV_T[case]
    net = load(tmp_path, f"network n {{ input [{c}, {h}, {w}]; up: conv_transpose({args}) }}")
    return net, torch.nn.ConvTranspose2d(c, **kwargs)


@pytest.mark.parametrize("case", range(len(CONV_T)))
def test_conv_transpose_shape_state_and_macs(tmp_path: Path, case: int) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    net, ref = _conv_t_net(tmp_path, case)
    c, h, w = net.input_shape
    x = torch.randn(1, c, h, w)
    with FlopCounterMode(display=False) as counter:
        y = ref(x)
    assert net.output_shape == tuple(y.shape[1:])  # PyTorch's output-size rule
    assert net.state_shapes() == {f"up.{k}": tuple(v.shape) for k, v in ref.state_dict().items()}
    assert net.counts().params == sum(p.numel() for p in ref.parameters())
    # By hand: in · (out / groups) · kh · kw per input pixel. torch's counter agrees
    # (2 flops per multiply-accumulate; the bias is not counted).
    kh, kw = ref.kernel_size
    macs = c * (ref.out_channels // ref.groups) * kh * kw * h * w
    assert net.counts().macs == macs == counter.get_total_flops() // 2


def test_counts_of_a_network_by_hand(tmp_path: Path) -> None:
    net = load(tmp_path, """
        network n {
            input [3, 8, 8]
            img = in
            c: conv(4, 3, stride = 2); fb: frozen_bn; relu           # 4×4×4
            t: conv_transpose(6, 2, stride = 2)                      # 6×8×8
            u: upsample(2, mode = "bilinear")                        # 6×16×16
            d: upsample(to = img)                                    # 6×8×8
        }
    """)
    assert net.output_shape == (6, 8, 8)
    conv, conv_t = 4 * 3 * 9, 4 * 6 * 4 + 6
    assert net.counts().params == conv + conv_t  # frozen_bn: buffers only
    # The conv per output pixel, the transposed conv per input pixel, upsampling nothing.
    assert net.counts().macs == 4 * 4 * 4 * 3 * 9 + 4 * 6 * 2 * 2 * 4 * 4
    rows = {r.path: r for r in net.info(depth=1)}
    assert rows["fb"].params == rows["u"].macs == rows["d"].macs == 0
    assert net.state_shapes()["fb.running_var"] == (4,)
    assert "fb.num_batches_tracked" not in net.state_shapes()


# ------------------------------------------------------------------ upsample against F.interpolate


# (name, spec, the reference: input → expected, in PyTorch)
def _modes() -> list[tuple[str, str, dict[str, Any]]]:
    return [("nearest", 'mode = "nearest"', {"mode": "nearest"}),
            ("bilinear", 'mode = "bilinear"', {"mode": "bilinear", "align_corners": False}),
            ("bilinear_ac", 'mode = "bilinear", align_corners = true',
             {"mode": "bilinear", "align_corners": True})]


def _to(size: int, out: int, make: str, spec: str) -> str:
    """A network that upsamples its input (size×size) to the size of the tensor `make` makes
    from it (out×out); upsample reads the input itself, so ONNX's output compares exactly."""
    return (f"network n {{ input [3, {size}, {size}]; x = in; {make}; t = in; x; "
            f"up: upsample(to = t, {spec}) }}")


UPSAMPLE_CASES: list[tuple[str, str, Any]] = []
for _mode, _spec, _kw in _modes():
    for _s in (2, 3):
        UPSAMPLE_CASES.append((
            f"{_mode}_scale{_s}",
            f"network n {{ input [3, 5, 6]; up: upsample({_s}, {_spec}) }}",
            lambda x, s=_s, kw=_kw: F.interpolate(x, scale_factor=s, **kw)))
    UPSAMPLE_CASES += [
        # 7×7 → 20×20, not a whole multiple.
        (f"{_mode}_7_to_20", _to(7, 20, "conv_transpose(1, 14)", _spec),
         lambda x, kw=_kw: F.interpolate(x, size=(20, 20), **kw)),
        # 1×1 → 9×9: DeepLab's ASPP pooling branch, back to the size of the features.
        (f"{_mode}_1_to_9", _to(1, 9, "conv_transpose(1, 9)", _spec),
         lambda x, kw=_kw: F.interpolate(x, size=(9, 9), **kw)),
        # 5×5 → 1×1: an output of size 1, where ONNX's pytorch_half_pixel is not PyTorch's.
        (f"{_mode}_5_to_1", _to(5, 1, "global_avgpool", _spec),
         lambda x, kw=_kw: F.interpolate(x, size=(1, 1), **kw)),
    ]
UPSAMPLE_CASES += [
    # Nearest where PyTorch's float32 source index is not the exact one: 2 → 82 reads row 0
    # for row 41 (to a size), and a factor of 41 does the same (both: Gathers in ONNX).
    ("nearest_2_to_82", _to(2, 82, "conv_transpose(1, 81)", 'mode = "nearest"'),
     lambda x: F.interpolate(x, size=(82, 82), mode="nearest")),
    ("nearest_scale41", "network n { input [3, 2, 3]; up: upsample(41) }",
     lambda x: F.interpolate(x, scale_factor=41, mode="nearest")),
    # Down to a size PyTorch reaches exactly and ONNX Runtime's Resize does not (14 → 2).
    ("nearest_14_to_2", _to(14, 2, "avgpool(7)", 'mode = "nearest"'),
     lambda x: F.interpolate(x, size=(2, 2), mode="nearest")),
    # A whole multiple that both round exactly: Resize to the sizes.
    ("nearest_7_to_21", _to(7, 21, "conv_transpose(1, 15)", 'mode = "nearest"'),
     lambda x: F.interpolate(x, size=(21, 21), mode="nearest")),
]


# Nearest cases that ONNX's Resize cannot reproduce: not a whole multiple (7 → 20), or
# PyTorch's float32 index is not the exact one (82 rows from 2, a factor of 41, 2 rows from 14).
GATHERED = {"nearest_7_to_20", "nearest_5_to_1", "nearest_2_to_82", "nearest_scale41",
            "nearest_14_to_2"}


@pytest.mark.parametrize("case", UPSAMPLE_CASES, ids=[c[0] for c in UPSAMPLE_CASES])
def test_upsample_equals_f_interpolate(tmp_path: Path, case: tuple[str, str, Any]) -> None:
    name, spec, reference = case
    net = load(tmp_path, spec)
    x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(0))
    want = reference(x)
    assert net.output_shape == tuple(want.shape[1:])
    exact = {"rtol": 0, "atol": 0} if name.startswith("nearest") else {}
    state = net.init_state(0)
    with torch.no_grad():
        torch.testing.assert_close(build_module(net.graph, state)(x), want, **exact)
        torch.testing.assert_close(standalone(net)()(x), want, **exact)
    for opset in OPSETS:
        y, ops = onnx_run(net, state, x.numpy(), tmp_path, opset)
        if name.startswith("nearest"):
            np.testing.assert_array_equal(y, want.numpy())  # the very rows PyTorch reads
        else:
            np.testing.assert_allclose(y, want.numpy(), rtol=1e-5, atol=1e-5)
        assert ("Resize" in ops) == (name not in GATHERED), (name, ops)


def test_nearest_index_is_pytorchs(tmp_path: Path) -> None:
    """onnx_lowering.torch_nearest_index reproduces ATen's float32 index, rounding and all,
    over many sizes (the rows each output row reads, read back from F.interpolate)."""
    for size in (1, 2, 3, 7, 14, 41):
        rows = torch.arange(size, dtype=torch.float32).reshape(1, 1, size, 1)
        for out in (1, 2, 5, 9, 20, 28, 82, 123):
            got = F.interpolate(rows, size=(out, 1), mode="nearest").flatten().long().numpy()
            np.testing.assert_array_equal(torch_nearest_index(size, out, None), got)
        for scale in (2, 3, 41, 47):
            got = F.interpolate(rows, scale_factor=(scale, 1), mode="nearest")
            np.testing.assert_array_equal(torch_nearest_index(size, size * scale, scale),
                                          got.flatten().long().numpy())


def test_upsample_to_reads_the_size_at_run_time(tmp_path: Path) -> None:
    """Compiled at 3×20×20, the module runs at 3×33×45 and gives F.interpolate's output at
    that size, like torchvision's FCN; the generated line reads `x.shape[-2:]`."""
    net = load(tmp_path, """
        network n {
            input [3, 20, 20]
            img = in
            c: conv(4, 3, stride = 4, bias = true)
            up: upsample(to = img, mode = "bilinear")
        }
    """)
    source = net.to_python()
    assert 'F.interpolate(x1, size=x.shape[-2:], mode="bilinear", align_corners=False)' in source
    model: Any = net.to_torch(seed=1).eval()
    x = torch.randn(2, 3, 33, 45)
    with torch.no_grad():
        y = model(x)
        want = F.interpolate(model.c(x), size=(33, 45), mode="bilinear", align_corners=False)
    assert tuple(y.shape) == (2, 4, 33, 45)
    torch.testing.assert_close(y, want, rtol=0, atol=0)


def test_upsample_under_fx_and_export(tmp_path: Path) -> None:
    """The run-time size traces: FX (what create_feature_extractor uses) and torch.export."""
    from torch.fx import symbolic_trace

    from resdsl.backends.torch_module import export

    net = load(tmp_path, """
        network n {
            input [3, 16, 16]
            img = in
            c: conv(4, 3, stride = 2); f: frozen_bn; relu
            t: conv_transpose(4, 2, stride = 2)
            up: upsample(to = img, mode = "bilinear", align_corners = true)
        }
    """)
    model = build_module(net.graph, randomised(net)).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        want = model(x)
        torch.testing.assert_close(symbolic_trace(model)(x), want)
        program: Any = export(model, net.input_shape)
        torch.testing.assert_close(program.module()(x), want)


# ------------------------------------------------------------------ conv_transpose


@pytest.mark.parametrize("case", range(len(CONV_T)))
def test_conv_transpose_equals_nn_conv_transpose2d(tmp_path: Path, case: int) -> None:
    net, ref = _conv_t_net(tmp_path, case)
    state = {f"up.{k}": v.detach().numpy() for k, v in ref.state_dict().items()}
    x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(case))
    with torch.no_grad():
        want = ref(x)
        torch.testing.assert_close(build_module(net.graph, state)(x), want, rtol=0, atol=0)
        model = standalone(net)()
        model.load_state_dict({f"up.{k}": v for k, v in ref.state_dict().items()})
        torch.testing.assert_close(model(x), want, rtol=0, atol=0)
    for opset in OPSETS:
        y, ops = onnx_run(net, state, x.numpy(), tmp_path, opset)
        assert "ConvTranspose" in ops
        np.testing.assert_allclose(y, want.numpy(), rtol=1e-4, atol=1e-5)


def test_conv_transpose_starts_like_pytorch(tmp_path: Path) -> None:
    """The initial weights follow nn.ConvTranspose2d's default: U(±1/√fan_in), where
    fan_in = out/groups · kh · kw (the weight's dim 1 on)."""
    net = load(tmp_path, "network n { input [8, 4, 4]; up: conv_transpose(12, 3, groups = 2) }")
    state = net.init_state(0)
    bound = 1 / np.sqrt(6 * 9)
    for key in ("up.weight", "up.bias"):
        assert np.abs(state[key]).max() <= bound and np.abs(state[key]).max() > 0.8 * bound


# ------------------------------------------------------------------ frozen_bn


FROZEN_SPEC = """
network n(eps = 0.00001) {
    input [6, 5, 5]
    c: conv(8, 3, bias = true)
    fb: frozen_bn(eps = eps)
    relu
}
"""


@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.5])
def test_frozen_bn_equals_torchvisions(tmp_path: Path, eps: float) -> None:
    from torchvision.ops.misc import FrozenBatchNorm2d

    net = load(tmp_path, FROZEN_SPEC, eps=eps)
    state = randomised(net, seed=3)
    ref_bn = FrozenBatchNorm2d(8, eps=eps)
    ref_bn.load_state_dict({k[3:]: torch.from_numpy(v) for k, v in state.items()
                            if k.startswith("fb.")})
    conv = torch.nn.Conv2d(6, 8, 3, padding=1)
    conv.load_state_dict({k[2:]: torch.from_numpy(v) for k, v in state.items()
                          if k.startswith("c.")})
    ref = torch.nn.Sequential(conv, ref_bn, torch.nn.ReLU())
    # torchvision's keys, and all four of frozen_bn's tensors are buffers.
    assert list(net.state_shapes()) == [
        *(f"c.{k}" for k in conv.state_dict()), *(f"fb.{k}" for k in ref_bn.state_dict())]
    x = torch.randn(4, 6, 5, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref(x)
        for model in (build_module(net.graph, state), standalone(net)()):
            model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
            assert [k for k, _ in model.named_parameters()] == ["c.weight", "c.bias"]
            assert [k for k, _ in model.named_buffers()] == [
                "fb.weight", "fb.bias", "fb.running_mean", "fb.running_var"]
            # Frozen: training mode computes the same.
            for train in (True, False):
                torch.testing.assert_close(model.train(train)(x), want, rtol=0, atol=0)
    for opset in OPSETS:
        for fold in (False, True):
            y, ops = onnx_run(net, state, x.numpy(), tmp_path, opset, fold_bn=fold)
            # --fold-bn folds it into the conv before it, as it folds `bn`.
            assert ("BatchNormalization" in ops) == (not fold)
            np.testing.assert_allclose(y, want.numpy(), rtol=1e-4, atol=1e-5)


def test_frozen_bn_loads_a_batchnorm_checkpoint(tmp_path: Path) -> None:
    """As torchvision's does: a BatchNorm2d state_dict's num_batches_tracked is dropped."""
    net = load(tmp_path, "network n { input [4, 3, 3]; fb: frozen_bn }")
    model: Any = net.to_torch()
    bn = torch.nn.BatchNorm2d(4)
    bn.running_var.fill_(3.0)
    model.fb.load_state_dict(bn.state_dict())
    assert float(model.fb.running_var[0]) == 3.0
    assert "FrozenBatchNorm2d(4, eps=1e-05)" in repr(model)  # torchvision's repr


def test_frozen_bn_class_is_defined_once_and_needs_only_torch(tmp_path: Path) -> None:
    """The generated file defines FrozenBatchNorm2d once, before the classes that use it,
    and runs with neither resdsl nor torchvision importable; its linter finds nothing."""
    net = load(tmp_path, """
        block unit(c) { skip { conv1: conv(c, 3); bn1: frozen_bn; relu; conv2: conv(c, 3)
                               bn2: frozen_bn } relu }
        network n { input [4, 6, 6]; layer: repeat 2 { unit(4) }; up: upsample(2) }
    """)
    source = net.to_python()
    assert source.count("class FrozenBatchNorm2d(") == 1
    assert source.index("class FrozenBatchNorm2d(") < source.index("class Unit(")
    assert "import torchvision" not in source and "from torchvision" not in source
    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "model.py").write_text(source, encoding="utf-8")
    ruff = Path(sys.executable).parent / "ruff"
    run = subprocess.run([str(ruff), "check", "--isolated", "--select", "E,F,W,B", "--ignore",
                          "E501", str(folder)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
    code = ("import sys; sys.modules['resdsl'] = None; sys.modules['torchvision'] = None; "
            "import torch, model; m = model.N(); "
            "print(tuple(m(torch.randn(2, 4, 6, 6)).shape), len(list(m.parameters())))")
    run = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["(2,", "4,", "12,", "12)", "4"]  # the four conv weights


def test_a_block_named_like_the_helper_class_gets_another_name(tmp_path: Path) -> None:
    net = load(tmp_path, """
        block frozen_batch_norm2d(c) { conv1: conv(c, 3); bn1: frozen_bn }
        network n { input [4, 6, 6]; a: frozen_batch_norm2d(4) }
    """)
    source = net.to_python()
    assert "class FrozenBatchNorm2d2(nn.Module)" in source
    assert source.count("class FrozenBatchNorm2d(nn.Module)") == 1
    model = net.to_torch(seed=0).eval()
    other = standalone(net)().eval()
    other.load_state_dict(model.state_dict())
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(other(x), model(x))


# ------------------------------------------------------------------ everything together


ALL_DENSE = """
network dense(classes = 5) {
    input [3, 14, 14]
    img = in
    c1: conv(8, 3, stride = 2); b1: frozen_bn; relu
    f = in
    c2: conv(8, 3, stride = 2); bn; relu
    up: conv_transpose(6, 3, stride = 2, padding = 1, output_padding = 1)
    u1: upsample(to = f, mode = "bilinear")
    u2: upsample(2)
    head: conv(classes, 1, bias = true)
    out: upsample(to = img, mode = "bilinear", align_corners = true)
}
"""


def test_a_dense_network_in_every_backend(tmp_path: Path) -> None:
    net = load(tmp_path, ALL_DENSE)
    state = randomised(net, seed=2)
    model = build_module(net.graph, state).eval()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == net.state_shapes()
    x = torch.randn(2, 3, 14, 14, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = model(x)
        other = standalone(net)()
        other.load_state_dict(model.state_dict())
        torch.testing.assert_close(other.eval()(x), want, rtol=0, atol=0)
    for opset in OPSETS:
        y, _ = onnx_run(net, state, x.numpy(), tmp_path, opset)
        np.testing.assert_allclose(y, want.numpy(), rtol=1e-4, atol=1e-5)
    # `resdsl paths`: the size references carry no path; the chain is one.
    assert net.paths().total == 1


def test_the_diagram_draws_a_size_reference_as_a_dotted_edge(tmp_path: Path) -> None:
    net = load(tmp_path, ALL_DENSE)
    text = net.draw(format="dot").dot
    assert "transposed conv, 6, s2, p1, op1" in text
    assert "upsample to 14×14, bilinear, align corners" in text and "FrozenBN" in text
    size_edges = [ln for ln in text.splitlines() if 'label="size' in ln]
    assert len(size_edges) == 2 and all('style="dotted"' in ln for ln in size_edges)


# ------------------------------------------------------------------ misuse


def test_misuse_diagnostics(tmp_path: Path) -> None:
    head = "network n { input [4, 8, 8]; "
    assert codes(tmp_path, head + 'upsample(2, mode = "bicubic") }') == ["E0408"]
    assert codes(tmp_path, head + "upsample(2, align_corners = false) }") == ["E0315"]
    assert codes(tmp_path, head + "upsample(2, align_corners = 1) }") == ["E0401"]
    assert codes(tmp_path, head + "upsample(to = 3) }") == ["E0401"]
    assert codes(tmp_path, head + "upsample(0) }") == ["E0408"]
    assert codes(tmp_path, head + "upsample(-2) }") == ["E0408"]
    assert codes(tmp_path, head + "upsample(2.5) }") == ["E0403"]
    assert codes(tmp_path, head + "upsample }") == ["E0402"]
    assert codes(tmp_path, head + "t = in; upsample(2, to = t) }") == ["E0315"]
    assert codes(tmp_path, head + "flatten; upsample(2) }") == ["E0308"]
    # `in` is the flowing tensor, not a value; a list of tensors is not one tensor.
    assert codes(tmp_path, head + "upsample(to = in) }") == ["E0401"]
    assert codes(tmp_path, head + "repeat 2 { conv(4, 3); t = in }; upsample(to = t) }") == [
        "E0401"]
    assert load(tmp_path, head + "repeat 2 { conv(4, 3); t = in }; upsample(to = t[0]) }"
                ).output_shape == (4, 8, 8)
    assert codes(tmp_path, head + "upsample(to = nowhere) }") == ["E0202"]
    assert codes(tmp_path, head + "conv_transpose(4, 3, stride = 2, output_padding = 2) }") == [
        "E0408"]
    assert codes(tmp_path, head + "conv_transpose(4, 3, output_padding = 1) }") == ["E0408"]
    assert codes(tmp_path, head + "conv_transpose(6, 3, groups = 4) }") == ["E0304"]
    assert codes(tmp_path, head + "conv_transpose(4, 1, padding = 8) }") == ["E0307"]
    assert codes(tmp_path, head + "flatten; conv_transpose(4, 2) }") == ["E0308"]
    assert codes(tmp_path, head + "frozen_bn(eps = -1) }") == ["E0408"]
    assert codes(tmp_path, head + "flatten; frozen_bn }") == ["E0308"]
    # In a `group` body: frozen_bn acts per channel; the others cannot be lowered.
    assert load(tmp_path, head + "group(groups = 2) { conv(4, 1); frozen_bn; relu } }"
                ).output_shape == (4, 8, 8)
    assert codes(tmp_path, head + "group(groups = 2) { conv(4, 1); upsample(2) } }") == [
        "E0311"]
    assert codes(tmp_path, head + "group(groups = 2) { conv(4, 1); conv_transpose(4, 2) } }"
                 ) == ["E0311"]


def test_the_misuse_messages_point_at_the_argument(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load(tmp_path, "network n { input [4, 8, 8]\n    t = in\n    upsample(2, to = t) }")
    (d,) = info.value.diagnostics
    assert d.primary is not None and d.primary.span.text == "to = t"
    with pytest.raises(SpecError) as info:
        load(tmp_path, "network n { input [4, 8, 8]\n    conv_transpose(4, 3, 2, 0, 3) }")
    (d,) = info.value.diagnostics
    assert d.primary is not None and d.primary.span.text == "3"  # output_padding, positional
    assert "stride (2) or its dilation (1)" in d.message
