"""The zoo's timm ResNets (resdsl/zoo/families/timm_resnet.py: specs/resnet50d.res with `-D`
values) against timm 1.0.31's timm/models/resnet.py, every expected number from timm's own
model:

1. the rows are exactly `timm.list_models(module="resnet")`, the 81 names;
2. for every row: the state_dict keys in order with their shapes, the parameter count, and the
   multiply-accumulates at 64×64 (conv and linear, counted by forward hooks as
   tests/test_parity.py counts them, plus ECA's 1-D convs as tests/test_attention_specs.py
   adds them), the reference built on the meta device (resnext101_32x32d has 468 million
   parameters: nothing is allocated on either side);
3. for a sample covering each block, stem, pool, norm and attention kind: eval outputs at
   64×64 with timm's weights copied in (every BatchNorm's and GroupNorm's statistics and affine
   parameters randomised first, so that none is the identity), in PyTorch and in ONNX Runtime,
   and the MACs of the real forward pass. Rows over 100 million parameters (senet154) and the
   deep ones enter the sample with one block per stage: `layers` overridden on both sides,
   timm building the model with its registered arguments and that override;
4. blocks/timm_layers.res's `blur_pool` gives timm's BlurPool2d at even and odd sizes.
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
from resdsl.zoo.families.timm_resnet import ENTRIES

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from tests.test_timm_base_specs import close  # noqa: E402

ROWS: dict[str, ZooEntry] = {e.name: e for e in ENTRIES}
SMALL = (3, 64, 64)
CLASSES = 10
ONE_BLOCK = {"layers": [1, 1, 1, 1]}

# Each kind once: BasicBlock and Bottleneck stages mixed with narrow planes (test_resnet);
# BlurPool2d in the 7x7 stem and a BasicBlock (resnetblur18); pruned widths with ECA keeping the
# unpruned kernels (ecaresnet50d_pruned); GroupNorm (resnet50_gn); the 2x2 average-pool
# anti-aliasing in the deep stem and a BasicBlock (resnetaa34d) and in a grouped Bottleneck with
# SE (seresnextaa101d_32x8d); ResNet-RS's conv stem pool and quarter-width SE (resnetrs50);
# SENet-154's half-width first 1x1 and 3x3 projections (senet154); the tiered stem with ECA
# (ecaresnet26t at full depth is tests/test_attention_specs.py's).
SAMPLE: dict[str, dict[str, Any]] = {
    "test_resnet": {},
    "resnetblur18": {},
    "ecaresnet50d_pruned": {},
    "resnet50_gn": ONE_BLOCK,
    "resnetaa34d": ONE_BLOCK,
    "seresnextaa101d_32x8d": ONE_BLOCK,
    "resnetrs50": ONE_BLOCK,
    "senet154": ONE_BLOCK,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(name: str, **extra: Any) -> resdsl.Network:
    entry = ROWS[name]
    return resdsl.load(str(entry.spec_path()), **{**entry.params, **extra})


def reference(name: str, **kwargs: Any) -> Any:
    """timm's model; a `layers` override goes to timm's ResNet as a tuple, as timm writes it."""
    if "layers" in kwargs:
        kwargs["layers"] = tuple(kwargs["layers"])
    return timm.create_model(name, pretrained=False, **kwargs)


def hooked_macs(model: Any, shape: tuple[int, ...], device: str = "cpu") -> int:
    """Conv and linear multiply-accumulates of one forward pass, tests/test_parity.py's
    `reference_macs` convention, with nn.Conv1d (ECA) counted as `out · in/groups · k` per output
    position and the input made on the model's device (the meta device for every row)."""
    total = 0

    def conv_hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * int(np.prod(m.kernel_size))

    def linear_hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        total += m.in_features * m.out_features

    handles = []
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape, device=device))
    for h in handles:
        h.remove()
    return total


def test_rows_are_timms_resnet_module() -> None:
    assert sorted(ROWS) == sorted(timm.list_models(module="resnet"))
    assert len(ENTRIES) == len(ROWS) == 81
    assert {(e.source, e.family, e.spec) for e in ENTRIES} == {("timm", "resnet", "resnet50d.res")}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_row_is_timms(name: str) -> None:
    """Keys in order with shapes, parameters and MACs at 64×64; timm's model on the meta
    device, ours never allocated (static counts)."""
    net = load(name, input_shape=SMALL)
    with torch.device("meta"):
        ref = reference(name)
    theirs = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert list(net.state_shapes().items()) == theirs
    assert net.counts().params == sum(p.numel() for p in ref.parameters())
    assert net.counts().macs == hooked_macs(ref, SMALL, device="meta")


# ---------------------------------------------------------------------- outputs


def randomised(model: Any, seed: int) -> Any:
    """The model in eval mode with random norm statistics and affine parameters: BatchNorm's
    (tests/test_timm_base_specs.py's `randomised`) and GroupNorm's affine ones."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.running_mean.shape
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
            if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm)):
                c = m.weight.shape
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
    return model.eval()


@dataclass
class Pair:
    name: str
    net: resdsl.Network
    macs: int
    state: dict[str, Any]
    x: np.ndarray
    expected: np.ndarray


@pytest.fixture(scope="module", params=sorted(SAMPLE))
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    name = request.param
    torch.manual_seed(0)
    model = randomised(reference(name, num_classes=CLASSES, **SAMPLE[name]), seed=1)
    net = load(name, classes=CLASSES, input_shape=SMALL, **SAMPLE[name])
    x = np.random.default_rng(0).standard_normal((2, *SMALL), dtype=np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    yield Pair(name, net, hooked_macs(model, SMALL), state, x, expected)


@pytest.mark.parity
def test_sample_macs_are_timms(pair: Pair) -> None:
    assert pair.net.counts().macs == pair.macs


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
    (actual,) = session(str(path), threads=1).run(None, {"input": pair.x})
    close(np.asarray(actual), pair.expected, f"{pair.name} (ONNX Runtime)")


# ---------------------------------------------------------------------- blur_pool


@pytest.mark.parametrize(("h", "w"), [(2, 2), (7, 9), (16, 15)])
def test_blur_pool_is_timms(tmp_path: Path, h: int, w: int) -> None:
    """Two 2×2 means equal timm's reflect-padded 3×3 binomial blur at stride 2, edges included."""
    from timm.layers.blur_pool import BlurPool2d

    spec = tmp_path / "blur.res"
    spec.write_text('use "blocks/timm_layers.res"\nnetwork blur() {\n'
                    f"    input [4, {h}, {w}]\n    aa: blur_pool\n}}\n", encoding="utf-8")
    net = resdsl.load(str(spec))
    assert net.counts().params == 0 and net.state_shapes() == {}
    x = torch.randn(2, 4, h, w, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected, actual = BlurPool2d(4, stride=2)(x), net.to_torch().eval()(x)
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)
