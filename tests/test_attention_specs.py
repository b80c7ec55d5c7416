"""The reference specs of issue 17 (item 3) written with the attention library
(specs/blocks/attention.res) against timm 1.0.31, as tests/test_timm_base_specs.py checks the
attention-free ones:

1. each spec's parameter count is timm's figure for the model, instantiated;
2. its state_dict keys are timm's, in timm's order, with timm's shapes;
3. its multiply-accumulates are the timm model's conv and linear MACs, counted by forward hooks
   (tests/test_parity.py), plus its 1-D convs' (ECA's conv1d counts out · in/groups · k, which
   the Conv2d/Linear hooks do not see): at the spec's own input;
4. in eval mode, with timm's weights copied in (BN statistics and affine parameters randomised
   first), the PyTorch module and the ONNX model in ONNX Runtime give timm's outputs, at 64×64;
5. the same for `-D` variants that are other timm models (ecaresnet50d, ecaresnetlight,
   resnest50d), their MACs at 64×64.

timm registers no CBAM model: the reference is timm's ResNet with Bottleneck blocks and
`block_args=dict(attn_layer="cbam")`, built here. Each reference is built once per module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resdsl
from tests.conftest import SPECS

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from tests.test_timm_base_specs import close, randomised, reference_macs  # noqa: E402

CLASSES = 10
SMALL = (3, 64, 64)


def cbam_resnet50(**kwargs: Any) -> Any:
    from timm.models.resnet import Bottleneck, ResNet

    make: Any = ResNet  # timm annotates `block` as an instance, though it takes the class
    return make(block=Bottleneck, layers=(3, 4, 6, 3), block_args=dict(attn_layer="cbam"),
                **kwargs)


def registered(name: str) -> Callable[..., Any]:
    return functools.partial(timm.create_model, name, pretrained=False)


# The specs, timm 1.0.31's parameter counts (instantiated) and how timm builds each.
PUBLISHED: dict[str, int] = {
    "ecaresnet26t": 16_011_916,
    "skresnext50_32x4d": 27_479_784,
    "resnest50d_4s2x40d": 30_417_592,
    "cbam_resnet50": 28_073_576,
}
MAKE: dict[str, Callable[..., Any]] = {
    "ecaresnet26t": registered("ecaresnet26t"),
    "skresnext50_32x4d": registered("skresnext50_32x4d"),
    "resnest50d_4s2x40d": registered("resnest50d_4s2x40d"),
    "cbam_resnet50": cbam_resnet50,
}


# Variants by `-D`, each another timm model: ECA on ResNet-50-D and on timm's light ResNet
# (the 7x7 stem), and ResNeSt-50-D (radix 2, one group of 64, the pool after the split
# attention: the same keys as with it before, so only the outputs and MACs tell them apart).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ecaresnet50d": ("resnet50d", {"attn": "eca"}),
    "ecaresnetlight": ("resnet50d", {"layers": [1, 1, 11, 3], "stem_type": "", "attn": "eca"}),
    "resnest50d": ("resnest50d_4s2x40d", {"radix": 2, "cardinality": 1, "base_width": 64,
                                          "avd_first": False}),
}
MAKE.update({name: registered(name) for name in VARIANTS})
ALL = sorted([*PUBLISHED, *VARIANTS])


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    reference.cache_clear()  # the references live as long as this module's tests


def load(name: str, **params: Any) -> resdsl.Network:
    spec, variant = VARIANTS.get(name, (name, {}))
    return resdsl.load(str(SPECS / f"{spec}.res"), **variant, **params)


@functools.cache
def reference(name: str) -> Any:
    """timm's model with 1,000 classes, built once (keys, parameters, MACs)."""
    torch.manual_seed(0)
    return MAKE[name]().eval()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameters_are_timms_figure(name: str) -> None:
    assert load(name).counts().params == PUBLISHED[name]


@pytest.mark.parity
@pytest.mark.parametrize("name", ALL)
def test_state_dict_is_timms(name: str) -> None:
    net, ref = load(name), reference(name)
    theirs = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert list(net.state_shapes().items()) == theirs  # keys in order, with shapes
    assert net.counts().params == sum(p.numel() for p in ref.parameters())


def conv1d_macs(model: Any, shape: tuple[int, ...]) -> int:
    """The 1-D convs' multiply-accumulates (ECA), which reference_macs does not count."""
    total = 0

    def hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv1d)]
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parity
@pytest.mark.parametrize("name", ALL)
def test_macs_are_timms(name: str) -> None:
    """The shipped specs at their own input (the README's figure), the variants at 64×64."""
    net = load(name) if name in PUBLISHED else load(name, input_shape=SMALL)
    ref = reference(name)
    want = reference_macs(ref, net.input_shape) + conv1d_macs(ref, net.input_shape)
    assert net.counts().macs == want


def test_eca_macs_are_counted() -> None:
    """ECA's conv1d counts C · k per block: the only MACs ecaresnet26t adds to resnet26t."""
    taps = {256: 5, 512: 5, 1024: 5, 2048: 7}
    extra = sum(2 * c * k for c, k in taps.items())
    assert load("ecaresnet26t").counts().macs == load("resnet26t").counts().macs + extra


# ---------------------------------------------------------------------- outputs


@dataclass
class Pair:
    name: str
    net: resdsl.Network
    state: dict[str, Any]
    x: np.ndarray
    expected: np.ndarray


@pytest.fixture(scope="module", params=ALL)
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    name = request.param
    torch.manual_seed(0)
    model = randomised(MAKE[name](num_classes=CLASSES), seed=1)
    net = load(name, input_shape=SMALL, classes=CLASSES)
    x = np.random.default_rng(0).standard_normal((2, *SMALL), dtype=np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    yield Pair(name, net, state, x, expected)


@pytest.mark.parity
def test_torch_outputs_are_timms(pair: Pair) -> None:
    module = pair.net.to_torch(weights=pair.state).eval()
    with torch.inference_mode():
        actual = module(torch.from_numpy(pair.x)).numpy()
    close(actual, pair.expected, f"{pair.name} (PyTorch)")


@pytest.mark.parity
def test_onnx_outputs_are_timms(pair: Pair, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from resdsl.verify import session

    path = tmp_path / f"{pair.name}.onnx"
    pair.net.save_onnx(str(path), weights=pair.state)
    (actual,) = session(str(path), threads=2).run(None, {"input": pair.x})
    close(np.asarray(actual), pair.expected, f"{pair.name} (ONNX Runtime)")
