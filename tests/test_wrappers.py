"""torchvision's child-module wrappers on the generated modules (issue 16, item 5).

`IntermediateLayerGetter` (and `BackboneWithFPN`, which wraps a backbone's `body` with it)
runs a module's children in the order they are registered and nothing else;
`create_feature_extractor` traces the forward with FX. On every module resdsl generates, the
in-memory `to_torch()` module and the standalone source of `--to python` alike, both must give
the tensors the model's own forward computes, which forward hooks record.

Each recorded tensor is a copy taken when its module returns: a later in-place op (a
`ReLU(inplace=True)`, as torchvision's) changes the tensor afterwards, in the model's forward
as in the wrappers. So each IntermediateLayerGetter is asked for one child (it then stops
there, as the forward's own tensor was at that point), and the FX extractor gets a copy
inserted after each node it returns.

Which modules the getter applies to: the root, and every generated class whose forward is a
chain (each line `x = self.child(x)`). A root that is not a chain says in its docstring up to
which child the getter is right; the getter is checked up to that child, and a test below
shows that it is wrong after it.

The default run covers small networks; `-m parity` every shipped spec, torchvision's
BackboneWithFPN over resnet50 and resnet18, and the issue's example at 224×224.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from torchvision.models._utils import IntermediateLayerGetter  # noqa: E402
from torchvision.models.detection.backbone_utils import (  # noqa: E402
    BackboneWithFPN,
    resnet_fpn_backbone,
)
from torchvision.models.feature_extraction import create_feature_extractor  # noqa: E402

import resdsl  # noqa: E402
from resdsl.backends.torch_module import module_class  # noqa: E402
from resdsl.backends.torch_source import generate  # noqa: E402
from tests.conftest import SPECS, run_cli, small_shape  # noqa: E402
from tests.test_torch_ecosystem import calibrated  # noqa: E402
from tests.test_torch_parity import close, perturb  # noqa: E402

Tensor = Any
ALL_SPECS = sorted(p.stem for p in SPECS.glob("*.res"))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """The inputs are small: a second thread only waits for the first, and on a loaded
    machine each parallel region can wait milliseconds for it (as in tests/specgen.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------- the two modules


def standalone(net: resdsl.Network, folder: Path) -> Any:
    """The network's class from its `--to python` source, imported from a file."""
    name = f"standalone_{net.name}_{len(list(folder.iterdir()))}"
    path = folder / f"{name}.py"
    path.write_text(net.to_python(), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return getattr(module, generate(net.graph).class_name)


# Too deep for random BN statistics: 333 units overflow float32 to inf and NaN in eval mode,
# and NaN equals nothing. Their statistics are a batch's (tests/test_torch_ecosystem.py).
CALIBRATED = {"preact_resnet1001"}


def both(net: resdsl.Network, folder: Path, seed: int = 0) -> dict[str, Any]:
    """The in-memory module and the standalone source's, in eval mode with the same
    weights and random BN statistics (a fresh BN is the identity in eval mode)."""
    model = net.to_torch(seed=seed)
    perturb(model.state_dict(), seed)
    if net.name in CALIBRATED:
        calibrated(model, torch.randn(4, *net.input_shape,
                                      generator=torch.Generator().manual_seed(seed)))
    source = standalone(net, folder)()
    source.load_state_dict(model.state_dict(), strict=True)
    # Stateless modules hold no state: the keys are the graph's, in its order.
    assert list(model.state_dict()) == list(source.state_dict()) == list(net.state_shapes())
    return {"to_torch": model.eval(), "source": source.eval()}


# ---------------------------------------------------------------------- the model's own tensors


def recorded(model: Any, x: Tensor, inputs: set[str]) -> tuple[dict[str, Tensor],
                                                                 dict[str, Tensor]]:
    """Every module's output in the model's own forward, and the input of the modules in
    `inputs`, each copied when it is seen. Every module that runs runs once."""
    outs: dict[str, Tensor] = {}
    ins: dict[str, Tensor] = {}
    calls: Counter[str] = Counter()
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def after(m: Any, args: Any, out: Any, name: str = name) -> None:
            calls[name] += 1
            outs[name] = out.detach().clone()

        def before(m: Any, args: Any, name: str = name) -> None:
            ins[name] = args[0].detach().clone()

        handles.append(module.register_forward_hook(after))
        if name in inputs:
            handles.append(module.register_forward_pre_hook(before))
    try:
        with torch.no_grad():
            outs[""] = model(x)
    finally:
        for handle in handles:
            handle.remove()
    assert set(calls.values()) <= {1}, calls.most_common(3)
    final = outs[""]  # a tensor, or the OrderedDict of a network with named outputs
    for y in final.values() if isinstance(final, dict) else [final]:
        assert bool(torch.isfinite(y).all())  # NaN would equal nothing
    ins[""] = x
    return outs, ins


def chain_classes(source: str) -> set[str]:
    """The generated classes whose forward is a chain of child calls: every line but the
    return is `x = self.CHILD(x)` (`self.layer1[0]`, `getattr(self, "0")` included)."""
    out = set()
    for cls in ast.parse(source).body:
        if not isinstance(cls, ast.ClassDef):
            continue
        forward = next((f for f in cls.body if isinstance(f, ast.FunctionDef)
                        and f.name == "forward"), None)
        if forward is None:  # timm's protocol's base class (and its exception)
            continue
        *steps, last = forward.body
        if steps and isinstance(last, ast.Return) and all(
            isinstance(s, ast.Assign) and ast.unparse(s.targets[0]) == "x"
            and isinstance(s.value, ast.Call) and [ast.unparse(a) for a in s.value.args] == ["x"]
            and re.fullmatch(r"self\.\w+|getattr\(self, '\w+'\)", ast.unparse(s.value.func))
            for s in steps
        ):
            out.add(cls.name)
    return out


def getter_reach(model: Any) -> list[str]:
    """The root's children that IntermediateLayerGetter computes rightly: all of them, or
    those up to the one the docstring names where the root's forward is not a chain."""
    children = [name for name, _ in model.named_children()]
    doc = " ".join((model.__doc__ or "").split())
    if "which is not this forward from its first step" in doc:
        return []
    note = re.search(r"this forward up to `([^`]+)` only", doc)
    if note is None:
        assert "IntermediateLayerGetter" not in (model.__doc__ or "")
        return children
    return children[: children.index(note.group(1)) + 1]


def check_getter(model: Any, x: Tensor, source: str) -> int:
    """IntermediateLayerGetter over each child of the root and of every chain class gives
    the child's output in the model's forward (from the input that module gets there).
    Returns how many getters ran."""
    classes = chain_classes(source)
    chains = {name: m for name, m in model.named_modules()
              if name and type(m).__name__ in classes}
    outs, ins = recorded(model, x, set(chains))
    ran = 0
    for parent, module, reach in [("", model, getter_reach(model)),
                                  *((n, m, [c for c, _ in m.named_children()])
                                    for n, m in chains.items())]:
        for child in reach:
            key = f"{parent}.{child}" if parent else child
            with torch.no_grad():
                got = IntermediateLayerGetter(module, {child: "f"})(ins[parent])["f"]
            assert torch.equal(got, outs[key]), key
            ran += 1
    return ran


def check_fx(model: Any, x: Tensor, depth: int | None = None) -> int:
    """create_feature_extractor over every module that runs (down to `depth` dots) gives
    its output. Names of one depth at a time: the extractor gives a graph node to one name
    only, and a module's last node is often its last child's too (`layer1`, `layer1.2`)."""
    outs, _ = recorded(model, x, set())
    names = [n for n in outs if n and (depth is None or n.count(".") <= depth)]
    for depth in sorted({n.count(".") for n in names}):
        level = [n for n in names if n.count(".") == depth]
        # Eval mode only: the train-mode graph (dropout, drop_path) need not be the same.
        extractor = create_feature_extractor(model, return_nodes={n: n for n in level},
                                             suppress_diff_warning=True)
        copy_when_made(extractor)
        with torch.no_grad():
            got = extractor(x)
        assert sorted(got) == sorted(level)
        for name in level:
            assert torch.equal(got[name], outs[name]), name
    return len(names)


def copy_when_made(module: Any) -> None:
    """Make an FX graph module return a copy of each output made when its node runs, as
    the hooks record it (a later in-place node would change the tensor)."""
    graph = module.graph
    output = next(n for n in graph.nodes if n.op == "output")
    copies = {}
    for name, node in output.args[0].items():
        with graph.inserting_after(node):
            copies[name] = graph.call_function(torch.clone, (node,))
    output.args = (copies,)
    module.recompile()


# torchvision's FX tracer names each node by scanning every name before it (quadratic in
# the graph): on preact_resnet1001 one extractor takes about a minute on 2 cores. Its FX check
# stops at its units (`layer1.0`); what is inside them is preact_resnet164's classes, which
# are checked to their last module.
FX_DEPTH = {"preact_resnet1001": 1}


def check_all(net: resdsl.Network, folder: Path) -> None:
    source = net.to_python()
    x = torch.randn(1, *net.input_shape, generator=torch.Generator().manual_seed(1))
    for kind, model in both(net, folder).items():
        # None ran only where the root's docstring says not to use the getter and no
        # generated class is a chain (resnet50_fpn, unet_resnet34: the root's first step is
        # inside `body` or `encoder`, and every block has a join).
        assert check_getter(model, x, source) > 0 or not getter_reach(model), kind
        assert check_fx(model, x, FX_DEPTH.get(net.name)) > 0, kind


# ---------------------------------------------------------------------- default run


def test_resnet_root_children_are_torchvisions() -> None:
    """The stem's relu and max pool are the root's children, where torchvision has them
    (the issue: IntermediateLayerGetter skipped them and gave layer1 at twice the size)."""
    with torch.device("meta"):
        ours = module_class(resdsl.load(str(SPECS / "resnet50.res")).graph)()
        ref = torchvision.models.resnet50()
    names = [n for n, _ in ref.named_children()]
    assert [n for n, _ in ours.named_children()] == [*names[:-1], "flatten", names[-1]]
    for name in ("conv1", "bn1", "relu", "maxpool", "fc"):
        assert repr(getattr(ours, name)) == repr(getattr(ref, name)), name
    assert type(ours.avgpool) is type(ref.avgpool)
    assert list(ours.state_dict()) == list(ref.state_dict())


def test_mobilenet_features_are_torchvisions() -> None:
    """A chain of numbered children is an nn.Sequential with its activation in it, as
    torchvision's Conv2dNormActivation (`features.0.2` is a ReLU6)."""
    with torch.device("meta"):
        ours = module_class(resdsl.load(str(SPECS / "mobilenet_v2.res")).graph)()
        ref = torchvision.models.mobilenet_v2()
    theirs = {n: m for n, m in ref.named_modules() if not list(m.children())}
    mine = dict(ours.named_modules())
    for name, module in theirs.items():
        assert type(mine[name]) is type(module), name
    assert repr(mine["features.0.2"]) == "ReLU6(inplace=True)"


def test_stateless_modules_are_named_by_the_spec(tmp_path: Path) -> None:
    """A named statement keeps its name; an unnamed op takes its op's, with a suffix once
    taken (here by a statement named `relu`), numbered as classes are (`relu2`, not
    `relu_1`, which create_feature_extractor would rename); a numbered chain keeps the numbers."""
    spec = tmp_path / "n.res"
    spec.write_text("""network n() {
    input [3, 8, 8]
    conv1: conv(4, 3); relu
    relu: conv(4, 3); relu
    pool: maxpool(2)
    body: { conv(4, 3); bn; relu }
    global_avgpool; flatten
    fc: linear(2)
}
""", encoding="utf-8")
    net = resdsl.load(str(spec))
    with torch.device("meta"):
        model = module_class(net.graph)()
    assert [(n, type(m).__name__) for n, m in model.named_children()] == [
        ("conv1", "Conv2d"), ("relu2", "ReLU"), ("relu", "Conv2d"), ("relu3", "ReLU"),
        ("pool", "MaxPool2d"), ("body", "Sequential"), ("global_avgpool", "AdaptiveAvgPool2d"),
        ("flatten", "Flatten"), ("fc", "Linear")]
    assert [type(m).__name__ for m in model.get_submodule("body").children()] == [
        "Conv2d", "BatchNorm2d", "ReLU"]
    assert "self.relu2 = nn.ReLU(inplace=True)" in net.to_python()
    check_all(net, tmp_path)


def test_wrappers_give_the_models_own_tensors_small(tmp_path: Path) -> None:
    """The parity run's check on one small network (at 16×16, to keep the default run
    short): every spec is in the parity run."""
    check_all(resdsl.load(str(SPECS / "resnet20.res"), input_shape=(3, 16, 16)), tmp_path)


EVERY_MODULE = """network every_module() {
    input [3, 9, 9]
    c1: conv(8, 3); b1: bn
    relu; relu6; hardswish; leaky_relu(0.2); leaky_relu(-0.1); sigmoid; tanh; silu; gelu
    identity; dropout(0.2)
    m1: maxpool(2, ceil_mode = true)
    a1: avgpool(3, stride = 1, padding = 1, count_include_pad = false)
    a2: avgpool(2)
    up1: upsample(2, mode = "bilinear", align_corners = true)
    up2: upsample(scale = 2, mode = "bilinear")
    upsample(2)
    global_avgpool; flatten
    fc: linear(4)
}
"""


def test_every_module_form_computes_its_op(tmp_path: Path) -> None:
    """Each stateless op that has an nn module is one in a chain, and computes the op: the
    module and the standalone source equal ONNX Runtime on the ONNX backend's model (which
    shares no code with them), and the wrappers are right. `identity` is no module: it runs
    nothing."""
    pytest.importorskip("onnxruntime")
    from tests.specgen import compare

    spec = tmp_path / "every_module.res"
    spec.write_text(EVERY_MODULE, encoding="utf-8")
    net = resdsl.load(str(spec))
    with torch.device("meta"):
        model = module_class(net.graph)()
    assert [type(m).__name__ for m in model.children()] == [
        "Conv2d", "BatchNorm2d", "ReLU", "ReLU6", "Hardswish", "LeakyReLU", "LeakyReLU",
        "Sigmoid", "Tanh", "SiLU", "GELU", "Dropout", "MaxPool2d", "AvgPool2d", "AvgPool2d",
        "Upsample", "Upsample", "Upsample", "AdaptiveAvgPool2d", "Flatten", "Linear"]
    assert repr(model.relu) == "ReLU(inplace=True)"  # it overwrites the BN's output
    assert repr(model.leaky_relu2) == "LeakyReLU(negative_slope=-0.1)"  # never in place
    outcome = compare(spec, 0)
    assert outcome.ok, outcome
    check_all(net, tmp_path)


NOT_A_CHAIN = """network joined() {
    input [3, 16, 16]
    conv1: conv(8, 3); bn1: bn; relu
    pool: maxpool(2)
    t = in
    body: conv(8, 3); bn2: bn; relu
    add(in, t)
    relu
    head: conv(4, 1)
    global_avgpool; flatten
}
"""


def test_a_root_that_is_not_a_chain_says_how_far_the_getter_is_right(tmp_path: Path) -> None:
    """A join at the root: no registration order makes IntermediateLayerGetter compute it.
    The generated class says up to which child the getter is right (the chain before the
    join, whose stateless ops are modules still); the getter is right there and wrong after
    it, which is why the docstring says so; FX and hooks see every module."""
    spec = tmp_path / "joined.res"
    spec.write_text(NOT_A_CHAIN, encoding="utf-8")
    net = resdsl.load(str(spec))
    source = net.to_python()
    assert "up to `relu2` only: an unnamed `add` reads 2 tensors" in " ".join(source.split())
    check_all(net, tmp_path)
    model = both(net, tmp_path)["to_torch"]
    children = [n for n, _ in model.named_children()]
    assert getter_reach(model) == children[: children.index("relu2") + 1]
    x = torch.randn(2, *net.input_shape)
    outs, _ = recorded(model, x, set())
    with torch.no_grad():
        after = IntermediateLayerGetter(model, {"head": "f"})(x)["f"]
    assert not torch.allclose(after, outs["head"])  # the skip is missing


def test_a_level_read_from_outside_is_named_as_the_reason(tmp_path: Path) -> None:
    """A backbone whose inner tensor feeds an aux head (`backbone.c3`) is a holder without a
    forward of its own: the root runs its layers, and the docstring says so, naming the
    layer, not "an unnamed conv"."""
    spec = tmp_path / "held.res"
    spec.write_text("""
network held {
    input [3, 16, 16]
    backbone: { conv1: conv(4, 3); relu; c3 = in; conv2: conv(4, 3) }
    output out
    backbone.c3
    aux: conv(4, 1)
    output aux
}
""", encoding="utf-8")
    doc = " ".join(resdsl.load(str(spec)).to_python().split())
    assert ("not this forward from its first step: `backbone.conv1` (conv) runs inside "
            "`backbone`, a holder of modules without a forward of its own") in doc


# ---------------------------------------------------------------------- parity run


@pytest.mark.parity
@pytest.mark.parametrize("spec", ALL_SPECS)
def test_wrappers_give_the_models_own_tensors(spec: str, tmp_path: Path) -> None:
    check_all(resdsl.load(str(SPECS / f"{spec}.res"), input_shape=small_shape(spec)), tmp_path)


@pytest.mark.parity
@pytest.mark.parametrize("spec", ["resnet50", "resnet18"])
def test_backbone_with_fpn_equals_torchvisions(spec: str, tmp_path: Path) -> None:
    """BackboneWithFPN over our module gives the outputs it gives over torchvision's resnet
    holding the same weights (the body's, BN statistics random, and the FPN's): exactly, and
    those of torchvision's resnet_fpn_backbone, whose body has FrozenBatchNorm2d (x·scale +
    shift, not (x − mean)/σ·w + b: equal up to rounding)."""
    net = resdsl.load(str(SPECS / f"{spec}.res"), input_shape=small_shape(spec))
    stage2 = 256 if spec == "resnet50" else 64  # resnet_fpn_backbone's in_channels_stage2
    in_channels = [stage2 * 2 ** (i - 1) for i in (1, 2, 3, 4)]
    layers = {f"layer{i + 1}": str(i) for i in range(4)}
    frozen = resnet_fpn_backbone(backbone_name=spec, weights=None, trainable_layers=5).eval()
    body = getattr(torchvision.models, spec)().eval()
    ref = BackboneWithFPN(body, layers, in_channels, 256).eval()
    ref.fpn.load_state_dict(frozen.fpn.state_dict(), strict=True)
    x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(2))
    for kind, model in both(net, tmp_path, seed=3).items():
        body.load_state_dict(model.state_dict(), strict=True)
        # FrozenBatchNorm2d drops num_batches_tracked; the getter keeps no head.
        frozen.body.load_state_dict(
            {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")})
        ours = BackboneWithFPN(model, layers, in_channels, 256).eval()
        ours.fpn.load_state_dict(frozen.fpn.state_dict(), strict=True)
        assert ours.out_channels == frozen.out_channels == 256
        with torch.no_grad():
            got, want, near = ours(x), ref(x), frozen(x)
        assert list(got) == list(want) == list(near) == ["0", "1", "2", "3", "pool"]
        for key in want:
            assert torch.equal(got[key], want[key]), (kind, key)
            close(got[key], near[key], f"{kind} {key}")


@pytest.mark.parity
def test_the_issues_example(tmp_path: Path) -> None:
    """IntermediateLayerGetter on resnet50 (compiled with the CLI, and from to_torch())
    gives torchvision's layer1 features: shape (1, 256, 56, 56), and its values."""
    run = run_cli("compile", "specs/resnet50.res", "--to", "python", "-o",
                  str(tmp_path / "r50.py"))
    assert run.code == 0, run.err
    spec = importlib.util.spec_from_file_location("r50_issue16", tmp_path / "r50.py")
    assert spec is not None and spec.loader is not None
    r50 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(r50)
    torch.manual_seed(0)
    ref = torchvision.models.resnet50().eval()
    perturb(ref.state_dict(), 0)
    x = torch.randn(1, 3, 224, 224)
    layers = {f"layer{i}": f"f{i}" for i in range(1, 5)}
    with torch.no_grad():
        want = IntermediateLayerGetter(ref, layers)(x)
        for model in (r50.Resnet50(), resdsl.load(str(SPECS / "resnet50.res")).to_torch()):
            model.eval().load_state_dict(ref.state_dict())
            got = IntermediateLayerGetter(model, layers)(x)
            assert got["f1"].shape == (1, 256, 56, 56)
            for key in want:
                assert torch.equal(got[key], want[key]), key
