"""The attention-free timm base networks (specs/blocks/timm_resnet.res, specs/blocks/byobnet.res)
against timm 1.0.31, the reference implementation of every number here:

1. each spec's parameter count is the figure timm 1.0.31 gives when instantiated (no timm
   needed to check it);
2. each spec, and each `-D` variant that names another timm model, has exactly the timm
   model's state_dict keys in timm's order, with its shapes and parameter count;
3. its multiply-accumulates equal the conv and linear MACs of the timm model's forward pass,
   counted by forward hooks as tests/test_parity.py counts them (torchvision's convention): at
   the spec's own input for the shipped specs, at 64×64 for the variants;
4. in eval mode, with the timm model's weights copied in (BN statistics and affine parameters
   randomised first, so that no BN is the identity), the PyTorch module and the ONNX model in
   ONNX Runtime give timm's outputs at 64×64 (the networks are size-agnostic).

Each reference is built once per module (the fixtures are module-scoped).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resdsl
from tests.conftest import SPECS

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from timm.models.byobnet import ByoBlockCfg  # noqa: E402

CLASSES = 10
SMALL = (3, 64, 64)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small inputs on a shared machine: a second thread mostly waits (tests/test_wrappers.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Case:
    """A spec, the `-D` parameters that make it the timm model, and timm's constructor
    arguments (beyond the model name)."""

    spec: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def load(self, **extra: Any) -> resdsl.Network:
        return resdsl.load(str(SPECS / f"{self.spec}.res"), **self.params, **extra)

    def reference(self, **extra: Any) -> Any:
        return timm.create_model(self.model, pretrained=False, **self.kwargs, **extra)


# The shipped specs, and the parameter counts of timm 1.0.31's models, instantiated.
PUBLISHED: dict[str, int] = {
    "resnet26t": 16_011_872,
    "resnet50d": 25_576_264,
    "resnext26ts": 10_297_952,
}
SHIPPED = {name: Case(name, name) for name in PUBLISHED}

# Variants by `-D` (each another timm model): the other stems, ResNeXt widths, SE, and
# byobnet's resnet33ts (no max pool in the stem: conv3 strides; a final 1x1 conv) and its
# "avg" shortcut (DownsampleAvg, timm's cfg overlaid with `downsample='avg'`).
VARIANTS: dict[str, Case] = {
    "resnet50": Case("resnet50d", "resnet50",
                     {"stem_type": "", "stem_width": 64, "avg_down": False}),
    "resnext50d_32x4d": Case("resnet50d", "resnext50d_32x4d",
                             {"cardinality": 32, "base_width": 4}),
    "seresnet50t": Case("resnet50d", "seresnet50t", {"stem_type": "deep_tiered", "attn": "se"}),
    "seresnext26t_32x4d": Case("resnet26t", "seresnext26t_32x4d",
                               {"cardinality": 32, "base_width": 4, "attn": "se"}),
    "resnet33ts": Case("resnext26ts", "resnet33ts",
                       {"depths": [2, 3, 3, 2], "channels": [256, 512, 1536, 1536], "gs": 0,
                        "stem_pool": "", "num_features": 1280}),
    "resnext26ts_avg_down": Case("resnext26ts", "resnext26ts", {"downsample": "avg"},
                                 {"downsample": "avg"}),
    # sebotnet33ts_256's backbone with bottlenecks for its self-attention blocks and no SE:
    # its last stage's bottleneck ratio differs (br per stage, timm's ByoBlockCfg).
    "sebotnet33ts_bottlenecks": Case(
        "resnext26ts", "resnet33ts",
        {"depths": [2, 3, 3, 2], "channels": [256, 512, 1024, 1536], "gs": 0,
         "br": [0.25, 0.25, 0.25, 0.333], "stem_pool": "", "num_features": 1280},
        {"blocks": tuple(ByoBlockCfg(type="bottle", d=d, c=c, s=s, gs=0, br=br) for d, c, s, br
                         in [(2, 256, 1, 0.25), (3, 512, 2, 0.25), (3, 1024, 2, 0.25),
                             (2, 1536, 2, 0.333)])}),
}
ALL = {**SHIPPED, **VARIANTS}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameters_are_timms_figure(name: str) -> None:
    assert SHIPPED[name].load().counts().params == PUBLISHED[name]


@pytest.mark.parametrize("name", sorted(ALL))
def test_state_dict_is_timms(name: str) -> None:
    case = ALL[name]
    net, ref = case.load(), case.reference()
    theirs = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert list(net.state_shapes().items()) == theirs  # keys in order, with their shapes
    assert net.counts().params == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize(("name", "units"), [("resnet26t", 8), ("resnet50d", 16),
                                            ("resnext26ts", 8)])
def test_every_unit_is_one_residual_join(name: str, units: int) -> None:
    """byobnet's shortcut comes first in timm's keys, so its sum is written as skip's
    branches: still one residual join per unit, projecting ones included (as a plain `add`
    of two computed tensors it would not be one)."""
    assert SHIPPED[name].load().paths().joins == {"skip": units}


def reference_macs(model: Any, shape: tuple[int, ...]) -> int:
    """Conv and linear multiply-accumulates of one forward pass (tests/test_parity.py)."""
    from tests.test_parity import reference_macs as count

    return int(count(model, shape))


@pytest.mark.parity
@pytest.mark.parametrize("name", sorted(ALL))
def test_macs_are_timms(name: str) -> None:
    """The shipped specs at their own input (the README's figure), the variants at 64×64."""
    case = ALL[name]
    net = case.load() if name in SHIPPED else case.load(input_shape=SMALL)
    assert net.counts().macs == reference_macs(case.reference(), net.input_shape)


# ---------------------------------------------------------------------- outputs


def randomised(model: Any, seed: int) -> Any:
    """The model in eval mode with random BN statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.running_mean.shape
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
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


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    case = SHIPPED[request.param]
    torch.manual_seed(0)
    model = randomised(case.reference(num_classes=CLASSES), seed=1)
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


# ---------------------------------------------------------------------- timm_layers.res


@pytest.mark.parametrize(
    ("kernel", "stride", "dilation", "act"),
    [(1, 2, 1, ""), (3, 1, 1, "relu"), (3, 2, 1, "silu"), (3, 2, 2, "relu"), (5, 1, 3, "silu")],
)
def test_conv_norm_act_is_timms(tmp_path: Path, kernel: int, stride: int, dilation: int,
                                act: str) -> None:
    """timm's ConvNormAct (SK's dilated paths among them): keys, padding, activation."""
    from timm.layers.conv_bn_act import ConvNormAct

    spec = tmp_path / "cna.res"
    spec.write_text(
        'use "blocks/timm_layers.res"\n'
        "network cna() {\n    input [8, 9, 9]\n"
        f'    layer: conv_norm_act(16, {kernel}, stride = {stride}, dilation = {dilation}, '
        f'act = "{act}")\n}}\n', encoding="utf-8")
    net = resdsl.load(str(spec))
    ref = ConvNormAct(8, 16, kernel, stride=stride, dilation=dilation,
                      apply_act=bool(act), act_layer=act or "relu")
    state = {f"layer.{k}": v for k, v in randomised(ref, seed=3).state_dict().items()}
    assert net.state_shapes() == {k: tuple(v.shape) for k, v in state.items()}
    x = torch.randn(2, 8, 9, 9, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        expected, actual = ref(x), net.to_torch(weights=state).eval()(x)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
