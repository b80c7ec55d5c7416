"""specs/resnet50_fpn.res and specs/unet_resnet34.res against their references (#16 item 6).

- resnet50_fpn: torchvision's `resnet_fpn_backbone(backbone_name="resnet50", weights=None,
  trainable_layers=5)`, a BackboneWithFPN (FrozenBatchNorm2d in the body, an OrderedDict of
  the outputs `0`-`3` and `pool`); `-D depth=18` is the same with "resnet18".
- unet_resnet34: segmentation_models_pytorch 0.6.0's `Unet("resnet34", encoder_weights=None)`.

For each: the state_dict keys in order with their shapes, the parameter count (the reference's
and the published figure), the conv and linear MACs as tests/test_parity.py counts them on the
reference, and eval-mode outputs, every one, equal to the reference's with its weights copied
in, from the PyTorch module and from ONNX Runtime. The references are built once per module,
their norms randomised (a fresh norm is the identity in eval mode and would hide a misplaced
one); inputs are 64×64 (the U-Net needs a multiple of 32). `resdsl info` and `resdsl draw`
show every output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
smp = pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("onnxruntime")

import resdsl  # noqa: E402
from resdsl.passes.counts import totals  # noqa: E402
from resdsl.verify import sample_input, session  # noqa: E402
from tests.conftest import SPECS, run_cli  # noqa: E402
from tests.test_onnx_parity import randomised  # noqa: E402
from tests.test_parity import reference_macs  # noqa: E402

FrozenBatchNorm2d = torchvision.ops.misc.FrozenBatchNorm2d
resnet_fpn_backbone = torchvision.models.detection.backbone_utils.resnet_fpn_backbone

SHAPE = (3, 64, 64)
FPN_OUTPUTS = ["0", "1", "2", "3", "pool"]


@dataclass(frozen=True)
class Case:
    spec: str
    make: Callable[[], Any]
    published: int  # parameters, from the source named where the case is defined
    outputs: list[str]  # the output names, in order; one unnamed output is ["output"]
    defines: dict[str, Any] = field(default_factory=dict)


CASES = {
    # Published figures: issue 16 item 6, from instantiating torchvision 0.29.1 and smp 0.6.0
    # (BackboneWithFPN and Unet count no FrozenBatchNorm2d buffer as a parameter).
    "resnet50_fpn": Case(
        "resnet50_fpn",
        lambda: resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=5),
        26_799_296, FPN_OUTPUTS),
    "resnet18_fpn": Case(
        "resnet50_fpn",
        lambda: resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5),
        13_774_016, FPN_OUTPUTS, {"depth": 18}),
    "unet_resnet34": Case(
        "unet_resnet34", lambda: smp.Unet("resnet34", encoder_weights=None),
        24_436_369, ["output"]),
}


def randomised_norms(model: Any, seed: int) -> Any:
    """`randomised` (BatchNorm statistics and affine parameters) and the same for every
    FrozenBatchNorm2d, whose four tensors are all buffers; in eval mode."""
    randomised(model, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, FrozenBatchNorm2d):
                c = m.running_mean.shape
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
    return model.eval()


class Pair:
    """A case's reference (eval mode, norms randomised), the spec at SHAPE, and what both
    give, each computed once."""

    def __init__(self, case: Case) -> None:
        self.case = case
        torch.manual_seed(0)
        self.ref = randomised_norms(case.make(), seed=1)
        self.net = resdsl.load(str(SPECS / f"{case.spec}.res"), input_shape=SHAPE,
                               **case.defines)
        self.x = sample_input(SHAPE)

    @cached_property
    def model(self) -> Any:
        """The generated PyTorch module with the reference's state_dict (strict), eval mode."""
        return self.net.to_torch(weights=dict(self.ref.state_dict())).eval()

    @cached_property
    def expected(self) -> list[np.ndarray]:
        """The reference's outputs, in order."""
        with torch.inference_mode():
            out = self.ref(torch.from_numpy(self.x))
        if not isinstance(out, dict):
            return [out.numpy()]
        assert list(out) == self.case.outputs
        return [v.numpy() for v in out.values()]


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    yield Pair(CASES[request.param])


def close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """As tests/test_onnx_parity.py compares: rtol 1e-4, atol 1e-5 scaled by the reference's
    magnitude (random weights in eval mode reach large activations)."""
    assert np.isfinite(expected).all(), f"{what}: the reference output is not finite"
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=what)


# ---------------------------------------------------------------------- structure and counts


def test_state_dict_keys_in_order_and_shapes(pair: Pair) -> None:
    want = [(k, tuple(v.shape)) for k, v in pair.ref.state_dict().items()]
    assert list(pair.net.state_shapes().items()) == want
    # The generated module registers them in the same order (load_state_dict does not care;
    # a user reading both state_dicts side by side does).
    ours = pair.model.state_dict()
    assert [(k, tuple(v.shape)) for k, v in ours.items()] == want


def test_parameter_count(pair: Pair) -> None:
    ref = sum(p.numel() for p in pair.ref.parameters())
    assert totals(pair.net.graph).params == ref == pair.case.published


def test_macs(pair: Pair) -> None:
    assert totals(pair.net.graph).macs == reference_macs(pair.ref, SHAPE)


@pytest.mark.parametrize(
    ("spec", "depth", "make"),
    [
        ("resnet50_fpn", 34, lambda: resnet_fpn_backbone(
            backbone_name="resnet34", weights=None, trainable_layers=5)),
        ("resnet50_fpn", 101, lambda: resnet_fpn_backbone(
            backbone_name="resnet101", weights=None, trainable_layers=5)),
        ("unet_resnet34", 18, lambda: smp.Unet("resnet18", encoder_weights=None)),
        ("unet_resnet34", 50, lambda: smp.Unet("resnet50", encoder_weights=None)),
    ],
)
def test_other_depths_by_define(spec: str, depth: int, make: Callable[[], Any]) -> None:
    """The `-D depth=N` the specs' comments offer: keys, shapes and parameters of the
    reference of that depth (basic blocks below 50, bottlenecks from 50)."""
    ref = make()
    net = resdsl.load(str(SPECS / f"{spec}.res"), input_shape=SHAPE, depth=depth)
    assert list(net.state_shapes().items()) == [
        (k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert net.counts().params == sum(p.numel() for p in ref.parameters())


def test_an_unknown_depth_is_an_error() -> None:
    run = run_cli("check", "specs/resnet50_fpn.res", "-D", "depth=20")
    assert run.code == 1
    assert "error[E0407]" in run.err and "resnet50_fpn.res:" in run.err


# ---------------------------------------------------------------------- outputs


@pytest.mark.parity
def test_eval_outputs_equal_the_reference_in_pytorch(pair: Pair) -> None:
    with torch.inference_mode():
        out = pair.model(torch.from_numpy(pair.x))
    if pair.case.outputs == ["output"]:
        assert isinstance(out, torch.Tensor)
        got = [out.numpy()]
    else:
        assert list(out) == pair.case.outputs  # an OrderedDict, as BackboneWithFPN's
        got = [v.numpy() for v in out.values()]
    for name, a, b in zip(pair.case.outputs, got, pair.expected, strict=True):
        assert a.shape == b.shape, name
        close(a, b, f"{pair.case.spec} output {name}")


@pytest.mark.parity
def test_eval_outputs_equal_the_reference_in_onnx_runtime(pair: Pair, tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    state = {k: v.numpy() for k, v in pair.ref.state_dict().items()}
    result = pair.net.save_onnx(str(path), weights=state)
    assert result.report is not None
    assert not result.report.missing and not result.report.unexpected
    sess = session(str(path), threads=2)
    assert [o.name for o in sess.get_outputs()] == pair.case.outputs
    got = sess.run(None, {"input": pair.x})
    for name, a, b in zip(pair.case.outputs, got, pair.expected, strict=True):
        assert a.shape == b.shape, name
        close(np.asarray(a), b, f"{pair.case.spec} output {name} (ONNX Runtime)")


# ---------------------------------------------------------------------- info and draw

# The outputs at the specs' own 224×224 input: FPN levels at strides 4 to 64, the U-Net's
# mask at the input's size.
FPN_SHAPES = ["256×56×56", "256×28×28", "256×14×14", "256×7×7", "256×4×4"]


def test_info_lists_every_fpn_output() -> None:
    run = run_cli("info", "specs/resnet50_fpn.res")
    assert run.code == 0, run.err
    assert "5 outputs" in run.out
    for name, shape in zip(FPN_OUTPUTS, FPN_SHAPES, strict=True):
        assert re.search(rf"^{name}\s+{shape}\s+[\d,]+\s+[\d.]+ [KMG]?$", run.out, re.M), name


def test_info_shows_the_unet_output() -> None:
    run = run_cli("info", "specs/unet_resnet34.res")
    assert run.code == 0, run.err
    assert re.search(r"^total\s+1×224×224\s+24,436,369\s", run.out, re.M)


@pytest.mark.parametrize(
    ("spec", "boxes"),
    [
        ("resnet50_fpn", dict(zip(FPN_OUTPUTS, FPN_SHAPES, strict=True))),
        ("unet_resnet34", {"": "1×224×224"}),
    ],
)
def test_draw_has_every_output(spec: str, boxes: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / f"{spec}.dot"
    run = run_cli("draw", f"specs/{spec}.res", "--format", "dot", "-o", str(out))
    assert run.code == 0, run.err
    dot = out.read_text(encoding="utf-8")
    for name, shape in boxes.items():
        label = f"output {name}".strip()
        node = re.search(rf'^\s*(\w+) \[label="{label}"', dot, re.M)
        assert node is not None, label
        assert re.search(rf'-> {node[1]} \[label="{shape}"\]', dot), label
