"""timm's ResNetV2 family (resdsl/zoo/families/timm_resnetv2.py) against timm 1.0.31, the
reference of every number here (timm/models/resnetv2.py, instantiated):

1. every row: the spec with the row's parameters has the timm model's state_dict keys in
   timm's order, with their shapes, its parameter count, and the conv MACs of its forward at
   224x224 (forward hooks as tests/test_parity.py counts them, torchvision's convention); the
   reference is built and run on the meta device (no tensors allocated: the BiT models reach
   936M parameters), and ours is counted statically;
2. a sample covering each unit (bottleneck, basic), stem ("", deep, tiered, fixed), norm (BN,
   GroupNorm, EvoNorm S0, FRN) and conv (plain, weight-standardised): in eval mode, with
   timm's weights copied in after every norm's affine parameters and statistics are
   randomised, PyTorch's and ONNX Runtime's outputs at 64x64.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resdsl
from resdsl.zoo.entry import ZooEntry
from resdsl.zoo.families.timm_resnetv2 import ENTRIES

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

ROWS = {e.name: e for e in ENTRIES}
CLASSES = 10
SMALL = (3, 64, 64)
# One model of each kind of unit, stem, norm and conv (see the module's docstring).
SAMPLE = ("resnetv2_18d", "resnetv2_50", "resnetv2_50t", "resnetv2_50d_gn", "resnetv2_50d_evos",
          "resnetv2_50d_frn", "resnetv2_50x1_bit")


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small inputs on a shared machine: a second thread mostly waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(entry: ZooEntry, **extra: Any) -> resdsl.Network:
    return resdsl.load(str(entry.spec_path()), **entry.params, **extra)


def test_the_family_is_timms() -> None:
    """One row per model timm registers in the module, and no other."""
    assert sorted(ROWS) == sorted(timm.list_models(module="resnetv2"))
    assert {(e.source, e.family, e.spec) for e in ENTRIES} == {
        ("timm", "resnetv2", "resnetv2_50.res")}


def meta_macs(model: Any, shape: tuple[int, ...]) -> int:
    """Conv multiply-accumulates of one forward pass on the meta device, counted by forward
    hooks as tests/test_parity.py's `reference_macs` counts them (timm's StdConv2d is an
    nn.Conv2d; the family has no nn.Linear: its classifier is a 1x1 conv)."""
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    total = 0

    def hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape, device="meta"))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name", sorted(ROWS))
def test_state_dict_params_and_macs_are_timms(name: str) -> None:
    net = load(ROWS[name])
    with torch.device("meta"):
        ref = timm.create_model(name, pretrained=False)
    theirs = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert list(net.state_shapes().items()) == theirs  # keys in order, with their shapes
    assert net.counts().params == sum(p.numel() for p in ref.parameters())
    assert net.counts().macs == meta_macs(ref, net.input_shape)


# ---------------------------------------------------------------------- outputs


def randomised(model: Any, seed: int) -> Any:
    """The model in eval mode with every norm's affine parameters (and EvoNorm's `v`, FRN's
    `tau`) and BN's running statistics random, so that no norm is the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and not name.startswith("head."):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen) if name.endswith(
                    ("weight", ".v")) else 0.1 * torch.randn(p.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.running_mean.shape
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
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


@pytest.fixture(scope="module", params=SAMPLE)
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    name = request.param
    torch.manual_seed(0)
    model = randomised(timm.create_model(name, pretrained=False, num_classes=CLASSES), seed=1)
    net = load(ROWS[name], input_shape=SMALL, classes=CLASSES)
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
    from resdsl.verify import session

    path = tmp_path / f"{pair.name}.onnx"
    pair.net.save_onnx(str(path), weights=pair.state)
    (actual,) = session(str(path), threads=2).run(None, {"input": pair.x})
    close(np.asarray(actual), pair.expected, f"{pair.name} (ONNX Runtime)")
