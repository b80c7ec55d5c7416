"""Reference specs of issue 17 (item 3) written with the tensor ops and the attention library,
against timm 1.0.31, the reference implementation of every number here: `convnext_tiny`
(specs/blocks/convnext.res), `gcresnext26ts` (global context in byobnet's bottleneck) and
`sebotnet33ts_256` (SE bottlenecks and BoTNet's self-attention blocks).

1. each spec's parameter count is timm 1.0.31's figure, instantiated (no timm needed);
2. each spec has exactly the timm model's state_dict keys in timm's order, with their shapes;
3. its multiply-accumulates equal those of the timm model's forward pass at the spec's own
   input, counted by forward hooks (torchvision's convention) with a linear layer counted at
   every position it is applied to (ConvNeXt's MLP is channels-last `nn.Linear`), plus the
   matmuls no hook sees (written out next to each model);
4. in eval mode, with the timm model's weights copied in (every norm's statistics and affine
   parameters, the layer scales and the zero-initialised global context output conv randomised
   first, so that no branch hides behind an identity), the PyTorch module and the ONNX model
   in ONNX Runtime give timm's outputs on a small input.

Each reference is built once per module (the fixtures are module-scoped).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resdsl
from tests.conftest import ROOT, SPECS

CLASSES = 10
SMALL = (3, 64, 64)

# The shipped specs and the parameter counts of timm 1.0.31's models, instantiated.
PUBLISHED: dict[str, int] = {
    "convnext_tiny": 28_589_128,
    "gcresnext26ts": 10_476_600,
    "sebotnet33ts_256": 13_701_984,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameters_are_timms_figure(name: str) -> None:
    assert resdsl.load(str(SPECS / f"{name}.res")).counts().params == PUBLISHED[name]


def test_check_and_draw_never_import_torch() -> None:
    code = (
        "import sys, resdsl; from resdsl.cli import main; "
        f"rc = main(['check', *[f'specs/{{n}}.res' for n in {sorted(PUBLISHED)!r}]]); "
        "resdsl.load('specs/sebotnet33ts_256.res').draw(format='dot'); "
        "print(rc, [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime')])"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.stdout.strip().endswith("0 []"), run.stdout + run.stderr


def test_the_drawing_of_sebotnet33ts_256_shows_its_attention() -> None:
    """At blocks depth (`resdsl draw`'s default) each of the four self-attention blocks is a
    frame drawing BoTNet's dataflow: its four matrix products (q·k, the two relative logits,
    the attention times v), the softmax and the two relative position tables; each of the six
    bottlenecks shows its squeeze-and-excitation as a `scale`."""
    dot = resdsl.load(str(SPECS / "sebotnet33ts_256.res")).draw(format="dot").dot
    assert dot.count("<B>byob_self_attn</B>") == 4
    assert dot.count('tooltip="matrix product"') == 4 * 4
    assert dot.count("softmax, axis -1") == 4
    assert len(re.findall(r"param \d+×128", dot)) == 2 * 2  # stage 3: 2·16 − 1 and 2·8 − 1
    assert dot.count('tooltip="scale"') == 6


torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small inputs on a shared machine: a second thread mostly waits (tests/test_wrappers.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def global_context_matmuls(m: Any, x: Any) -> int:
    """timm's GlobalContext pools its context as a matmul, (C × HW) · (HW × 1)."""
    _, c, h, w = x.shape
    return int(c * h * w)


def bottleneck_attn_matmuls(m: Any, x: Any) -> int:
    """timm's BottleneckAttn, per head over the n = H·W positions: q · k (n × d_qk · n), the
    attention times v (n × n · d_v), and rel_logits_1d's q · table along each axis (n ×
    d_qk · (2W − 1), n × d_qk · (2H − 1))."""
    _, _, h, w = x.shape
    n, dqk, dv = h * w, m.dim_head_qk, m.dim_head_v
    return int(m.num_heads * (n * n * (dqk + dv) + n * dqk * (2 * w - 1 + 2 * h - 1)))


@dataclass(frozen=True)
class Case:
    """A spec, timm's model name, timm's constructor arguments for the small input, and the
    modules whose matmuls no conv or linear hook sees, with their multiply-accumulates for
    the module's input."""

    spec: str
    model: str
    small: dict[str, Any] = field(default_factory=dict)
    matmuls: dict[str, Callable[[Any, Any], int]] = field(default_factory=dict)

    def load(self, **extra: Any) -> resdsl.Network:
        return resdsl.load(str(SPECS / f"{self.spec}.res"), **extra)

    def reference(self, **extra: Any) -> Any:
        return timm.create_model(self.model, pretrained=False, **extra)


CASES: dict[str, Case] = {
    "convnext_tiny": Case("convnext_tiny", "convnext_tiny"),
    "gcresnext26ts": Case("gcresnext26ts", "gcresnext26ts",
                          matmuls={"GlobalContext": global_context_matmuls}),
    # timm's model is made for one input size (its relative position tables); img_size=64
    # makes it for the small input, as `input_shape` does the spec.
    "sebotnet33ts_256": Case("sebotnet33ts_256", "sebotnet33ts_256", {"img_size": SMALL[1]},
                             matmuls={"BottleneckAttn": bottleneck_attn_matmuls}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_is_timms(name: str) -> None:
    case = CASES[name]
    net, ref = case.load(), case.reference()
    theirs = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert list(net.state_shapes().items()) == theirs  # keys in order, with their shapes
    assert net.counts().params == sum(p.numel() for p in ref.parameters())


def reference_macs(model: Any, shape: tuple[int, ...],
                   matmuls: dict[str, Callable[[Any, Any], int]]) -> int:
    """Conv and linear multiply-accumulates of one forward pass of `model`, as
    tests/test_parity.py counts them, but a linear layer at every position it is applied to
    (its output's elements times its input features); plus the matmuls inside the modules
    of `matmuls` (by class name), which no hook sees: resdsl counts a matmul's MACs."""
    total = 0

    def matmul_hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        total += matmuls[type(m).__name__](m, inputs[0])

    def conv_hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        total += out[0].numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif type(m).__name__ in matmuls:
            handles.append(m.register_forward_hook(matmul_hook))
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parity
@pytest.mark.parametrize("name", sorted(CASES))
def test_macs_are_timms(name: str) -> None:
    """At the spec's own input: the README's figure."""
    case = CASES[name]
    net = case.load()
    assert net.counts().macs == reference_macs(case.reference(), net.input_shape, case.matmuls)


# ---------------------------------------------------------------------- outputs


def randomised(model: Any, seed: int) -> Any:
    """The model in eval mode with random norm statistics and affine parameters, layer scales,
    global context's zero-initialised output conv and BoTNet's relative position tables (at
    std 1), so that no branch is an identity or vanishes."""
    gen = torch.Generator().manual_seed(seed)

    def rand(t: Any, low: float, high: float) -> None:
        t.copy_(low + (high - low) * torch.rand(t.shape, generator=gen))

    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                rand(m.running_var, 0.5, 2.0)
            if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm,
                              torch.nn.GroupNorm)):
                rand(m.weight, 0.5, 1.5)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            if name.endswith("mlp_add.fc2"):  # GlobalContext zero-initialises it
                m.weight.copy_(0.1 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            gamma = getattr(m, "gamma", None)
            if isinstance(gamma, torch.nn.Parameter):  # ConvNeXt's layer scale
                rand(gamma, 0.5, 1.5)
            if name.endswith("pos_embed"):  # BoTNet's tables start at std d^-½: the relative
                for table in (m.height_rel, m.width_rel):  # logits would barely show
                    table.copy_(torch.randn(table.shape, generator=gen))
    return model.eval()


def close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """tests/test_onnx_parity.py's tolerance: rtol 1e-4, atol 1e-5·max(1, max|y|), argmax."""
    assert np.isfinite(expected).all(), f"{what}: timm's output is not finite"
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=what)
    assert (actual.argmax(1) == expected.argmax(1)).all(), f"{what}: argmax differs"


@dataclass
class Pair:
    name: str
    net: resdsl.Network
    state: dict[str, Any]
    x: np.ndarray
    expected: np.ndarray


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    case = CASES[request.param]
    torch.manual_seed(0)
    model = randomised(case.reference(num_classes=CLASSES, **case.small), seed=1)
    net = case.load(input_shape=SMALL, classes=CLASSES)
    x = np.random.default_rng(0).standard_normal((2, *SMALL), dtype=np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    yield Pair(case.model, net, state, x, expected)


@pytest.mark.parity
def test_torch_outputs_are_timms(pair: Pair) -> None:
    module = pair.net.to_torch(weights=pair.state).eval()
    with torch.inference_mode():
        actual = module(torch.from_numpy(pair.x)).numpy()
    close(actual, pair.expected, f"{pair.name} (PyTorch)")


@pytest.mark.parity
def test_onnx_outputs_are_timms(pair: Pair, tmp_path: Path) -> None:
    from resdsl.verify import session

    path = tmp_path / f"{pair.name}.onnx"
    pair.net.save_onnx(str(path), weights=pair.state)
    (actual,) = session(str(path), threads=2).run(None, {"input": pair.x})
    close(np.asarray(actual), pair.expected, f"{pair.name} (ONNX Runtime)")


# ---------------------------------------------------------------------- the generated module


def test_a_numbered_sequence_with_a_channels_first_norm_is_timms(tmp_path: Path) -> None:
    """ConvNeXt's stem, `stem: { conv(...); layer_norm }`, is numbered as an nn.Sequential,
    but its layer norm (timm's LayerNorm2d) moves the channels last and back around
    nn.LayerNorm: the generated `stem` runs it in a forward of its own, in memory and in the
    standalone source (it was an nn.Sequential calling nn.LayerNorm on C×H×W, which fails)."""
    from timm.layers.norm import LayerNorm2d

    from tests.test_dense_ops import standalone

    spec = tmp_path / "stem.res"
    spec.write_text("network stem() {\n    input [3, 16, 16]\n"
                    "    stem: { conv(8, 4, stride = 4, padding = 0, bias = true); "
                    "layer_norm(eps = 1e-6) }\n}\n", encoding="utf-8")
    net = resdsl.load(str(spec))
    ref = torch.nn.Module()
    ref.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, stride=4), LayerNorm2d(8, eps=1e-6))
    state = randomised(ref, seed=2).state_dict()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = ref.stem(x)
        for module in (net.to_torch(weights=state), standalone(net)()):
            module.load_state_dict(state)
            torch.testing.assert_close(module.eval()(x), expected, rtol=1e-5, atol=1e-6)
