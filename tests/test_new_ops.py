"""The ops of issue #8: relu6, hardswish, leaky_relu, drop_path, avgpool's count_include_pad
and the internal rescale, in every backend.

Expected values come from the reference implementations: torch.nn.ReLU6, Hardswish,
LeakyReLU and AvgPool2d (PyTorch), and timm.layers.DropPath (timm), holding the same weights.
ONNX Runtime must compute what the PyTorch backend computes (eval) at opsets 13, 17 and 21.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import resdsl  # noqa: E402
from resdsl.diagnostics import SpecError  # noqa: E402
from resdsl.ir.ops import OPS, PER_CHANNEL, USER_OPS  # noqa: E402

NEW_OPS = ("relu6", "hardswish", "leaky_relu", "drop_path", "rescale")


def load(tmp_path: Path, text: str, **params: Any) -> resdsl.Network:
    path = tmp_path / "spec.res"
    path.write_text(text, encoding="utf-8")
    return resdsl.load(str(path), **params)


def codes(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(tmp_path, text)
    return [d.code for d in info.value.diagnostics]


# ------------------------------------------------------------------ the op table


def test_the_ops_are_defined_once_with_their_defaults() -> None:
    assert set(NEW_OPS) <= set(OPS)
    assert set(NEW_OPS) - {"rescale"} <= set(USER_OPS)
    assert "rescale" not in USER_OPS  # only `skip(scale = f)` makes it
    defaults = {op: {a.name: a.default for a in OPS[op].args} for op in NEW_OPS}
    assert defaults["leaky_relu"] == {"negative_slope": 0.01}  # torch.nn.LeakyReLU's
    assert defaults["drop_path"] == {"p": 0.0}  # timm.layers.DropPath's
    assert defaults["relu6"] == defaults["hardswish"] == {}
    assert [a.name for a in OPS["avgpool"].args] == [
        "kernel", "stride", "padding", "ceil_mode", "count_include_pad"]
    assert OPS["avgpool"].args[-1].default is True  # torch.nn.AvgPool2d's
    assert "count_include_pad" not in {a.name for a in OPS["maxpool"].args}
    # Elementwise ops may sit in a group body; drop_path may not (one mask per sample
    # spans every channel, so the folded g branches would be dropped together).
    assert {"relu6", "hardswish", "leaky_relu", "rescale"} <= PER_CHANNEL
    assert "drop_path" not in PER_CHANNEL


@pytest.mark.parametrize("shape", [(6, 5, 7), (10,)])
def test_shape_rules_and_counts(shape: tuple[int, ...]) -> None:
    args = {"relu6": {}, "hardswish": {}, "leaky_relu": {"negative_slope": 0.2},
            "drop_path": {"p": 0.3}, "rescale": {"factor": 0.17}}
    for op, a in args.items():
        o = OPS[op]
        out = o.infer([shape], a)
        assert out == shape
        assert o.state([shape], a, out) == ()
        assert o.params([shape], a, out) == 0
        assert o.macs([shape], a, out) == 0


def test_counts_of_a_network(tmp_path: Path) -> None:
    net = load(tmp_path, """
        network n {
            input [3, 8, 8]
            c: conv(4, 3); relu6; hardswish; leaky_relu; drop_path(0.2)
            a: avgpool(3, stride = 2, padding = 1, count_include_pad = false)
        }
    """)
    assert net.counts().params == 4 * 3 * 9  # the conv's weight alone
    assert net.counts().macs == 4 * 8 * 8 * 3 * 9
    assert net.output_shape == (4, 4, 4)


def test_argument_errors(tmp_path: Path) -> None:
    head = "network n { input [3, 8, 8]; "
    assert codes(tmp_path, head + 'leaky_relu("a") }') == ["E0401"]
    assert codes(tmp_path, head + "leaky_relu(negative_slope = true) }") == ["E0401"]
    assert codes(tmp_path, head + "drop_path(1.5) }") == ["E0408"]
    assert codes(tmp_path, head + "drop_path(-0.1) }") == ["E0408"]
    assert codes(tmp_path, head + 'drop_path("x") }') == ["E0401"]
    assert codes(tmp_path, head + "avgpool(2, count_include_pad = 1) }") == ["E0401"]
    assert codes(tmp_path, head + "relu6(1) }") == ["E0402"]
    # p = 1 is allowed, as in timm: every sample's path is dropped in training.
    assert load(tmp_path, head + "drop_path(1) }").output_shape == (3, 8, 8)


def test_the_drop_path_diagnostic_says_what_p_is(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load(tmp_path, "network n { input [3, 8, 8]\n    drop_path(2) }")
    (d,) = info.value.diagnostics
    assert d.code == "E0408" and "between 0 and 1, not 2" in d.message
    assert d.help is not None and "drop_path(0.1)" in d.help


def test_ops_in_a_group_body(tmp_path: Path) -> None:
    net = load(tmp_path, """
        network n {
            input [4, 6, 6]
            group(groups = 2) { conv(3, 1); bn; relu6; conv(3, 3); hardswish; leaky_relu }
        }
    """)
    assert net.output_shape == (3, 6, 6)
    assert codes(tmp_path, """
        network n { input [4, 6, 6]; group(groups = 2) { conv(3, 1); drop_path(0.1) } }
    """) == ["E0311"]


# ------------------------------------------------------------------ PyTorch: activations


# (spec text, the reference module: PyTorch's own)
ACTIVATIONS: list[tuple[str, Callable[[], Any]]] = [
    ("relu6", lambda: torch.nn.ReLU6()),
    ("hardswish", lambda: torch.nn.Hardswish()),
    ("leaky_relu", lambda: torch.nn.LeakyReLU()),
    ("leaky_relu(0.2)", lambda: torch.nn.LeakyReLU(0.2)),
    ("leaky_relu(negative_slope = -0.3)", lambda: torch.nn.LeakyReLU(-0.3)),
]


def _conv_then(tmp_path: Path, op: str, first: bool) -> tuple[resdsl.Network, Any, Any]:
    """The spec `conv; OP` (OP may run in place on the conv's output) or, with `first`,
    `OP; conv` (OP reads the forward's input, never overwritten); our module and the
    reference nn.Sequential with the same weights."""
    body = f"{op}; c: conv(6, 3, bias = true)" if first else f"c: conv(6, 3, bias = true); {op}"
    net = load(tmp_path, f"network n {{ input [4, 7, 7]; {body} }}")
    ref_op = dict(ACTIVATIONS)[op]()
    conv = torch.nn.Conv2d(4, 6, 3, padding=1, bias=True)
    ref = torch.nn.Sequential(ref_op, conv) if first else torch.nn.Sequential(conv, ref_op)
    model: Any = net.to_torch(seed=3)
    conv.load_state_dict({"weight": model.c.weight.detach(), "bias": model.c.bias.detach()})
    return net, model, ref


@pytest.mark.parametrize("first", [False, True], ids=["after_conv", "on_input"])
@pytest.mark.parametrize("op", [a[0] for a in ACTIVATIONS])
def test_activations_equal_torch_nn(tmp_path: Path, op: str, first: bool) -> None:
    net, model, ref = _conv_then(tmp_path, op, first)
    source = net.to_python()
    # In place exactly where it is safe: on a dead conv output, and for leaky_relu only
    # with a slope autograd can invert from the output (≥ 0).
    assert ("inplace=True" in source) == (not first and "-0.3" not in op)
    # Values on both sides of 0 and beyond 6, where relu6 and hardswish saturate.
    x = 4 * torch.randn(5, 4, 7, 7, generator=torch.Generator().manual_seed(0))
    for train in (False, True):
        model.train(train)
        ref.train(train)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        got, want = model(xa), ref(xb)
        torch.testing.assert_close(got, want)
        # The backward too: an in-place form must give autograd what it needs.
        (got * got).sum().backward()
        (want * want).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad)
        torch.testing.assert_close(model.c.weight.grad, ref[0 if not first else 1].weight.grad)
        model.zero_grad()
        ref.zero_grad()


# ------------------------------------------------------------------ PyTorch: avgpool


POOLS = [(k, s, p, ceil, inc)
         for k in (2, 3) for s in (1, 2) for p in (0, 1) for ceil in (False, True)
         for inc in (True, False)]
POOL_SPEC = """
network n(k = 3, s = 1, pad = 0, ceil = false, inc = true) {
    input [3, 7, 8]
    avgpool(k, stride = s, padding = pad, ceil_mode = ceil, count_include_pad = inc)
}
"""


def _pool_net(tmp_path: Path, case: tuple[int, int, int, bool, bool]) -> resdsl.Network:
    k, s, p, ceil, inc = case
    return load(tmp_path, POOL_SPEC, k=k, s=s, pad=p, ceil=ceil, inc=inc)


@pytest.mark.parametrize("case", POOLS, ids=[f"k{c[0]}s{c[1]}p{c[2]}{'c' * c[3]}"
                                             f"{'i' if c[4] else 'x'}" for c in POOLS])
def test_avgpool_count_include_pad_equals_torch_nn(tmp_path: Path,
                                                   case: tuple[int, int, int, bool, bool]) -> None:
    k, s, p, ceil, inc = case
    net = _pool_net(tmp_path, case)
    ref = torch.nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=inc)
    x = torch.randn(2, 3, 7, 8, generator=torch.Generator().manual_seed(1)) + 3
    want = ref(x)
    assert tuple(want.shape[1:]) == net.output_shape  # resdsl's shape rule
    torch.testing.assert_close(net.to_torch()(x), want)
    assert ("count_include_pad=False" in net.to_python()) == (not inc)


# ------------------------------------------------------------------ PyTorch: drop_path


DROP_SPEC = "network n(p = 0.4) { input [4, 5, 5]; c: conv(6, 3, bias = true); drop_path(p) }"


def _drop_pair(tmp_path: Path, p: float) -> tuple[Any, Any]:
    from timm.layers.drop import DropPath

    net = load(tmp_path, DROP_SPEC, p=p)
    model: Any = net.to_torch(seed=0)
    conv = torch.nn.Conv2d(4, 6, 3, padding=1, bias=True)
    conv.load_state_dict(model.c.state_dict())
    return model, torch.nn.Sequential(conv, DropPath(p))


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_drop_path_equals_timm_under_one_seed(tmp_path: Path, p: float) -> None:
    model, ref = _drop_pair(tmp_path, p)
    x = torch.randn(64, 4, 5, 5, generator=torch.Generator().manual_seed(2))
    for train in (True, False):
        model.train(train)
        ref.train(train)
        for seed in (0, 1):
            torch.manual_seed(seed)
            got = model(x)
            torch.manual_seed(seed)
            want = ref(x)
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_drop_path_masks_whole_samples_and_scales_by_keep(tmp_path: Path) -> None:
    p = 0.5
    model, _ = _drop_pair(tmp_path, p)
    x = torch.randn(200, 4, 5, 5, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        branch = model.c(x)
        torch.manual_seed(0)
        y = model.train()(x)
    dropped = (y == 0).flatten(1).all(1)
    kept = torch.isclose(y, branch / (1 - p)).flatten(1).all(1)
    assert bool((dropped ^ kept).all())  # every sample: all zero, or the branch / keep
    assert 60 < int(dropped.sum()) < 140  # about p of the batch
    # Eval mode, and p = 0 in training: the identity.
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), branch, rtol=0, atol=0)


def test_drop_path_rates_differ_per_block_and_share_a_class(tmp_path: Path) -> None:
    """timm's linearly increasing drop rate: the blocks share one generated class with the
    rate as a constructor parameter; in training, the same seed gives timm's output."""
    from timm.layers.drop import DropPath

    net = load(tmp_path, """
        block unit(p) { skip { conv1: conv(4, 3); bn1: bn; drop_path(p) } }
        network n { input [4, 6, 6]; layers: repeat 3 as i { unit(0.2 * i) } }
    """)
    source = net.to_python()
    assert source.count("class Unit(") == 1 and source.count("def drop_path(") == 1
    assert "import timm" not in source
    model: Any = net.to_torch(seed=0)
    convs, bns = [], []
    for i in range(3):
        conv, bn = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4)
        conv.load_state_dict(model.layers[i].conv1.state_dict())
        bn.load_state_dict(model.layers[i].bn1.state_dict())
        convs.append(conv)
        bns.append(bn)
    drops = [DropPath(0.2 * i) for i in range(3)]
    x = torch.randn(32, 4, 6, 6, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(7)
    got = model.train()(x)
    torch.manual_seed(7)
    want = x
    for conv, bn, drop in zip(convs, bns, drops, strict=True):
        want = drop(bn(conv(want))) + want
    torch.testing.assert_close(got, want)


def test_drop_path_under_torch_compile_and_export(tmp_path: Path) -> None:
    """fullgraph=True raises on a graph break; training mode draws the same masks as eager
    under one seed. torch.export traces eval mode, where drop_path is the identity."""
    torch._dynamo.reset()
    try:
        net = load(tmp_path, """
            network n {
                input [4, 6, 6]
                skip { c: conv(4, 3); b: bn; relu6; c2: conv(4, 3); hardswish; drop_path(0.3) }
                leaky_relu(0.1)
                avgpool(3, stride = 2, padding = 1, ceil_mode = true, count_include_pad = false)
            }
        """)
        x = torch.randn(8, 4, 6, 6, generator=torch.Generator().manual_seed(5))
        eager, model = net.to_torch(seed=0), net.to_torch(seed=0)
        compiled = torch.compile(model, fullgraph=True, backend="eager")
        outs = []
        for run in (eager, compiled):
            torch.manual_seed(0)
            out = run(x)
            out.square().mean().backward()
            outs.append(out.detach())
        torch.testing.assert_close(outs[1], outs[0])
        for (k, a), (_, b) in zip(eager.named_parameters(), model.named_parameters(),
                                  strict=True):
            torch.testing.assert_close(b.grad, a.grad, msg=k)
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(torch.compile(model, fullgraph=True,
                                                     backend="eager")(x), model(x))
        from resdsl.backends.torch_module import export

        program = export(model, net.input_shape)
        x3 = torch.randn(3, 4, 6, 6)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x3), model(x3))
    finally:
        torch._dynamo.reset()


# ------------------------------------------------------------------ rescale (internal)


# rescale is internal (user = False): `skip(scale = f) { F }` makes add(rescale(F), S).
RESCALE_SPEC = """
network n {
    input [4, 6, 6]
    c0: conv(4, 3); b0: bn
    skip(scale = 0.17) { c: conv(4, 3); b: bn }
}
"""


@pytest.mark.parametrize("inplace", [True, False])
def test_rescale_in_torch(tmp_path: Path, inplace: bool) -> None:
    spec = RESCALE_SPEC if inplace else RESCALE_SPEC.replace("b: bn }", "b: bn; relu }")
    net = load(tmp_path, spec)
    assert [n.args for n in net.graph.nodes() if n.op == "rescale"] == [{"factor": 0.17}]
    source = net.to_python()
    # After a bn, whose output autograd does not keep, the product overwrites it.
    assert ("*= 0.17" in source) == inplace
    assert (" * 0.17" in source) == (not inplace)
    model: Any = net.to_torch(seed=0)
    x = torch.randn(3, 4, 6, 6, generator=torch.Generator().manual_seed(6))
    for train in (True, False):
        model.train(train)
        xa = x.clone().requires_grad_()
        got = model(xa)
        s = model.b0(model.c0(xa))
        f = model.b(model.c(s))
        want = 0.17 * (torch.relu(f) if not inplace else f) + s
        torch.testing.assert_close(got, want)
        (ga,) = torch.autograd.grad(got.sum(), xa)
        (gb,) = torch.autograd.grad(want.sum(), xa)
        torch.testing.assert_close(ga, gb)


def test_rescale_feeds_zero_init_residual(tmp_path: Path) -> None:
    net = load(tmp_path, RESCALE_SPEC)
    state = net.init_state(0, zero_init_residual=True)
    assert not state["b.weight"].any() and state["b0.weight"].all()


# ------------------------------------------------------------------ ONNX


ONNX_SPEC = """
network n {
    input [4, 9, 9]
    c1: conv(8, 3, bias = true); relu6
    c2: conv(8, 3); hardswish
    c3: conv(8, 3); leaky_relu(0.2); drop_path(0.3)
    leaky_relu
    skip(scale = 0.17) { c4: conv(8, 3); b4: bn; dropout(0.1) }
    a1: avgpool(3, stride = 2, padding = 1, ceil_mode = true, count_include_pad = false)
    a2: avgpool(2, stride = 1, padding = 1, count_include_pad = false)
    hardswish; relu6
}
"""


def _onnx_net(tmp_path: Path) -> resdsl.Network:
    return load(tmp_path, ONNX_SPEC)


@pytest.mark.parametrize("opset", [13, 14, 17, 21])
def test_onnx_runtime_equals_the_torch_backend(tmp_path: Path, opset: int) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from resdsl.backends.torch_module import build_module
    from resdsl.verify import sample_input, session
    from tests.specgen import perturb

    net = _onnx_net(tmp_path)
    state = perturb(net.init_state(0), seed=1)
    model = net.to_onnx(weights=state, opset=opset)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                 data_prop=True)
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output]}
    for node in net.graph.nodes():
        if node.path in shapes:
            assert shapes[node.path] == ["batch", *node.shape], node.path

    x = 3 * sample_input(net.input_shape, 3)
    file = tmp_path / "m.onnx"
    file.write_bytes(model.SerializeToString())
    (y,) = session(str(file), threads=1).run(None, {"input": x})
    with torch.inference_mode():
        ref = build_module(net.graph, state).eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max())))

    nodes = {n.name: n for n in model.graph.node}
    ops = [n.op_type for n in model.graph.node]
    path = {op: [n.path for n in net.graph.nodes() if n.op == op] for op in NEW_OPS}
    # relu6 is a Clip with its bounds as float32 scalar inputs (opset ≥ 11).
    clip = nodes[path["relu6"][0]]
    assert clip.op_type == "Clip"
    bounds = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert [float(bounds[n]) for n in clip.input[1:]] == [0.0, 6.0]
    # hardswish: HardSwish from opset 14, else x · HardSigmoid(x; 1/6, 0.5).
    assert ("HardSwish" in ops) == (opset >= 14)
    assert ("HardSigmoid" in ops) == (opset < 14)
    if opset < 14:
        sig = next(n for n in model.graph.node if n.op_type == "HardSigmoid")
        attrs = {a.name: a.f for a in sig.attribute}
        assert attrs == pytest.approx({"alpha": 1 / 6, "beta": 0.5})
    slopes = [a.f for n in model.graph.node if n.op_type == "LeakyRelu" for a in n.attribute]
    assert slopes == pytest.approx([0.2, 0.01])
    # drop_path is the identity at inference: no node.
    assert path["drop_path"][0] not in nodes
    # rescale: a Mul by a float32 scalar.
    mul = nodes[path["rescale"][0]]
    assert mul.op_type == "Mul"
    factor = bounds[mul.input[1]]
    assert factor.dtype == np.float32 and factor.shape == () and float(factor) == np.float32(0.17)
    # count_include_pad=false: AveragePool's default (0), with the ceil-mode end as padding.
    pools = [n for n in model.graph.node if n.op_type == "AveragePool"]
    assert len(pools) == 2 and "Pad" not in ops
    for pool in pools:
        attrs = {a.name: a for a in pool.attribute}
        assert "count_include_pad" not in attrs or attrs["count_include_pad"].i == 0


@pytest.mark.parametrize("opset", [13, 21])
def test_onnx_avgpool_count_include_pad_every_case(tmp_path: Path, opset: int) -> None:
    """Every kernel, stride, padding, ceil mode and count_include_pad combination of the
    PyTorch test above: ONNX Runtime gives torch.nn.AvgPool2d's values and shape."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from resdsl.verify import session

    x = (torch.randn(2, 3, 7, 8, generator=torch.Generator().manual_seed(1)) + 3).numpy()
    for case in POOLS:
        k, s, p, ceil, inc = case
        net = _pool_net(tmp_path, case)
        model = net.to_onnx(opset=opset)
        onnx.checker.check_model(model, full_check=True)
        path = tmp_path / "p.onnx"
        path.write_bytes(model.SerializeToString())
        (y,) = session(str(path), threads=1).run(None, {"input": x})
        ref = torch.nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=inc)(
            torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6, err_msg=str(case))


# ------------------------------------------------------------------ the diagram


def test_dot_looks(tmp_path: Path) -> None:
    net = _onnx_net(tmp_path)
    dot = net.draw(format="dot", depth="layers").dot
    for text in ("ReLU6", "h-swish", "LeakyReLU 0.2", "LeakyReLU 0.01", "drop path 0.3",
                 "3×3 avgpool, s2"):
        assert text in dot, text
    # rescale is written on the residual edge, like a weighted residual's α.
    assert "× 0.17" in dot
    assert "label=<× 0.17" not in dot  # no box of its own


# ------------------------------------------------------------------ the generated source


def test_generated_source_is_standalone_and_clean(tmp_path: Path) -> None:
    """drop_path's function is in the file: it runs, in training too, with neither resdsl
    nor timm importable, and the linter finds nothing but long lines."""
    net = _onnx_net(tmp_path)
    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "model.py").write_text(net.to_python(), encoding="utf-8")
    ruff = Path(sys.executable).parent / "ruff"
    run = subprocess.run([str(ruff), "check", "--isolated", "--select", "E,F,W,B", "--ignore",
                          "E501", str(folder)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
    code = ("import sys; sys.modules['resdsl'] = None; sys.modules['timm'] = None; "
            "import torch, model; m = model.N(); torch.manual_seed(0); "
            "y = m.train()(torch.randn(2, 4, 9, 9)); print(tuple(y.shape))")
    run = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str((2, *net.output_shape))
