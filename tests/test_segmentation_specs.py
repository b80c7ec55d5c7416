"""torchvision's segmentation models as specs (issue 16, item 6): specs/fcn_resnet50.res and
specs/deeplabv3_resnet50.res, on specs/blocks/segmentation.res (the dilated ResNet backbone,
FCNHead, ASPP, DeepLabHead).

Each spec and `-D` variant against the reference built with `weights=None,
weights_backbone=None` (torchvision 0.29):

- without building weights (the reference on the meta device): the state_dict keys in order
  with their shapes, the parameters against the reference's and the published figure, the conv
  multiply-accumulates at the spec's 520×520 against the reference's forward hooks (the
  convention of tests/test_parity.py's `reference_macs`, and of torchvision's published
  GFLOPS), every conv's hyperparameters (stride, padding, dilation: the dilated stages and
  ASPP's rates, which keys and counts cannot show), and the outputs' names and shapes;
- with the `parity` marker, at 64×64 (layer4 at 8×8, so the pooling branch of ASPP upsamples
  from 1×1 to 8×8, and the backbone's dilations 2 and 4 reach real pixels): every output of
  the model in eval mode, the reference's weights loaded by name with random BN statistics
  and affine parameters, in PyTorch (`Network.to_torch`) and in ONNX Runtime (the ONNX backend).
"""

from __future__ import annotations

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

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from torchvision.models import segmentation  # noqa: E402

from resdsl.backends.torch_module import module_class  # noqa: E402
from tests.test_parity import reference_macs  # noqa: E402
from tests.test_torch_parity import close, perturb  # noqa: E402

SHAPE = (3, 520, 520)  # the specs' input: torchvision's eval size for these models
SMALL = (3, 64, 64)  # the parity input
RESNET101 = [3, 4, 23, 3]


@dataclass(frozen=True)
class Variant:
    spec: str  # file in specs/
    make: Callable[..., Any]  # torchvision's builder
    aux: bool  # aux_loss: the builder's argument and the spec's `-D aux_loss`
    params: int  # the published parameter count
    gmacs: float | None = None  # the published GMACs (at 520×520), where there is one
    defines: dict[str, Any] = field(default_factory=dict)  # other network parameters (-D)

    def reference(self, **extra: Any) -> Any:
        return self.make(weights=None, weights_backbone=None, aux_loss=self.aux, **extra)

    def load(self, **extra: Any) -> resdsl.Network:
        return resdsl.load(str(SPECS / f"{self.spec}.res"), aux_loss=self.aux, **self.defines,
                           **extra)


# Published figures: issue 16's parameter counts (aux_loss=False, and deeplabv3_resnet101 with
# aux_loss=True), and torchvision's `Weights.meta` (num_params, _ops) of the
# COCO_WITH_VOC_LABELS_V1 weights, which are the aux_loss=True models: FCN_ResNet50 35,322,218 ·
# 152.717, DeepLabV3_ResNet50 42,004,074 · 178.722, DeepLabV3_ResNet101 60,996,202 · 258.743.
VARIANTS: dict[str, Variant] = {
    "fcn_resnet50": Variant("fcn_resnet50", segmentation.fcn_resnet50, False, 32_957_013),
    "fcn_resnet50_aux": Variant("fcn_resnet50", segmentation.fcn_resnet50, True, 35_322_218,
                                152.717),
    "deeplabv3_resnet50": Variant("deeplabv3_resnet50", segmentation.deeplabv3_resnet50, False,
                                  39_638_869),
    "deeplabv3_resnet50_aux": Variant("deeplabv3_resnet50", segmentation.deeplabv3_resnet50,
                                      True, 42_004_074, 178.722),
    "deeplabv3_resnet101_aux": Variant("deeplabv3_resnet50", segmentation.deeplabv3_resnet101,
                                       True, 60_996_202, 258.743, {"layers": RESNET101}),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def pair(request: pytest.FixtureRequest) -> tuple[Variant, resdsl.Network, Any]:
    """The spec's network (its graph) and the reference on the meta device: no weights."""
    variant = VARIANTS[request.param]
    with torch.device("meta"):
        model = variant.reference()
    return variant, variant.load(), model.eval()


def test_state_dict_keys_in_order_and_shapes(pair: tuple[Variant, resdsl.Network, Any]) -> None:
    """torchvision's keys (IntermediateLayerGetter keeps no avgpool or fc), in its order."""
    _, net, model = pair
    ref = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert list(net.state_shapes().items()) == ref


def test_parameter_count(pair: tuple[Variant, resdsl.Network, Any]) -> None:
    variant, net, model = pair
    assert net.counts().params == sum(p.numel() for p in model.parameters()) == variant.params


def test_macs(pair: tuple[Variant, resdsl.Network, Any]) -> None:
    variant, net, model = pair
    assert net.input_shape == SHAPE
    with torch.device("meta"):  # the hooks need the output shapes only
        ref = reference_macs(model, SHAPE)
    assert net.counts().macs == ref
    if variant.gmacs is not None:
        assert round(ref / 1e9, 3) == variant.gmacs


def _conv_args(module: Any) -> dict[str, Any]:
    return {name: (type(m).__name__, m.in_channels, m.out_channels, m.kernel_size, m.stride,
                   m.padding, m.dilation, m.groups, m.bias is not None)
            for name, m in module.named_modules() if isinstance(m, torch.nn.Conv2d)}


def test_every_conv_is_the_references(pair: tuple[Variant, resdsl.Network, Any]) -> None:
    """Stride, padding and dilation of every conv: layer3 and layer4 dilated (the first block
    of each with the previous stage's dilation, and a stride-1 downsample), ASPP's rates."""
    _, net, model = pair
    with torch.device("meta"):
        ours = module_class(net.graph)()
    assert _conv_args(ours) == _conv_args(model)
    dilations = {n: d for n, (*_, d, _g, _b) in _conv_args(model).items()}
    assert dilations["backbone.layer3.0.conv2"] == (1, 1)
    assert dilations["backbone.layer3.1.conv2"] == dilations["backbone.layer4.0.conv2"] == (2, 2)
    assert dilations["backbone.layer4.1.conv2"] == (4, 4)


def test_outputs_are_named_and_at_the_input_size(
    pair: tuple[Variant, resdsl.Network, Any],
) -> None:
    """`out` (and `aux` with aux_loss), each 21 classes at the input's height and width, at
    the spec's size and another (the upsampling reads the input's size)."""
    variant, net, _ = pair
    names = ["out", "aux"] if variant.aux else ["out"]
    for shape in (SHAPE, (3, 96, 80)):
        graph = net.graph if shape == SHAPE else variant.load(input_shape=shape).graph
        assert [(name, graph.node(node).shape) for name, node in graph.results()] == [
            (name, (21, *shape[1:])) for name in names]


def test_check_and_info_never_import_torch() -> None:
    code = (
        "import sys; from resdsl.cli import main; "
        "rc = [main(['check', 'specs/fcn_resnet50.res', 'specs/deeplabv3_resnet50.res']), "
        "main(['info', 'specs/deeplabv3_resnet50.res', '-D', 'aux_loss=true']), "
        "main(['info', 'specs/fcn_resnet50.res', '-D', 'aux_loss=true'])]; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime')]; "
        "print(rc, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip().endswith("[0, 0, 0] []"), out.stdout + out.stderr
    assert "aux     21×520×520  10,908,501" in out.stdout  # info lists the aux output


# ---------------------------------------------------------------------- output parity


@dataclass
class Case:
    variant: Variant
    ref: Any  # torchvision's model, eval mode, BN randomised
    ours: Any  # Network.to_torch() with the reference's weights, eval mode
    onnx: Path  # the ONNX backend's model with the same weights
    x: Any
    want: dict[str, Any]  # the reference's outputs on x


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[Case]:
    variant = VARIANTS[request.param]
    torch.manual_seed(0)
    ref = variant.reference().eval()
    perturb(ref.state_dict(), seed=1)
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    net = variant.load(input_shape=SMALL)
    ours = net.to_torch(weights=state).eval()
    onnx = tmp_path_factory.mktemp(request.param) / "model.onnx"
    net.save_onnx(onnx, weights=state)
    x = torch.randn(1, *SMALL, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = ref(x)
    yield Case(variant, ref, ours, onnx, x, want)


@pytest.mark.parity
def test_state_dict_order_of_the_module(case: Case) -> None:
    assert list(case.ours.state_dict()) == list(case.ref.state_dict())


@pytest.mark.parity
def test_eval_outputs_equal_torchvisions(case: Case) -> None:
    with torch.no_grad():
        got = case.ours(case.x)
    assert list(got) == list(case.want) == (["out", "aux"] if case.variant.aux else ["out"])
    for name, want in case.want.items():
        close(got[name], want, name)


@pytest.mark.parity
def test_onnx_runtime_outputs_equal_torchvisions(case: Case) -> None:
    from resdsl.verify import session

    run = session(str(case.onnx), threads=2)
    assert [o.name for o in run.get_outputs()] == (["out", "aux"] if case.variant.aux
                                                  else ["out"])
    got = run.run(None, {"input": case.x.numpy()})
    for (name, want), y in zip(case.want.items(), got, strict=True):
        close(torch.from_numpy(np.asarray(y)), want, f"ONNX Runtime {name}")
