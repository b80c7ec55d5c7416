"""The rest of the residual family (issue #8) against its reference implementations.

Each spec, and each `-D` variant of a spec, is compared with the reference model built with
`pretrained=False` (timm 1.0.31, torchvision 0.29):

- counts: parameters exactly (resdsl's `counts()` against the reference's parameters, and
  against the published figure, its source named in the table), and the conv and linear
  multiply-accumulates of one forward pass at the spec's input size (through the reference's
  forward hooks, tests/test_parity.py's `reference_macs`);
- state_dict keys and shapes, in the reference's order;
- with the `parity` marker: outputs and gradients, with the reference's weights (BN statistics
  perturbed) loaded into `Network.to_torch()` by name (`strict=True`), in eval mode and for one
  training step (tests/test_torch_parity.py's helpers). Inputs are small: 64x64 for the
  ResNets, DPNs and MobileNetV2 (size-agnostic references), 75x75 for Inception-ResNet-v2 (the
  smallest input its unpadded stem and reduction blocks accept), batch 2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import resdsl
from tests.conftest import SPECS

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")

from tests.test_parity import reference_macs  # noqa: E402
from tests.test_torch_parity import (  # noqa: E402
    CLASSES,
    Case,
    ModuleReference,
    check_eval,
    check_train,
    make_case,
    ours_for,
    sample,
)

IMAGENET = (3, 224, 224)
INCEPTION = (3, 299, 299)


def _tv(name: str, **kwargs: Any) -> Callable[..., Any]:
    return lambda **extra: getattr(torchvision.models, name)(**kwargs, **extra)


def _timm(name: str, **kwargs: Any) -> Callable[..., Any]:
    return lambda **extra: timm.create_model(name, pretrained=False, **kwargs, **extra)


@dataclass(frozen=True)
class Family:
    spec: str  # file in specs/
    make: Callable[..., Any]  # the reference model; keyword arguments such as num_classes
    params: int | None  # the published parameter count (None: no published figure)
    gmacs: float | None = None  # the published GMACs, where there is one
    defines: dict[str, Any] = field(default_factory=dict)  # network parameters (-D)
    shape: tuple[int, int, int] = IMAGENET  # the spec's input, where MACs are counted
    small: tuple[int, int, int] = (3, 64, 64)  # the parity input
    parity: bool = True  # compare outputs and gradients (`parity` marker)


DPN98 = {"k_r": 160, "groups": 40, "k_sec": [3, 6, 20, 3], "inc_sec": [16, 32, 32, 128],
         "init": 96}
DPN107 = {"k_r": 200, "groups": 50, "k_sec": [4, 8, 20, 3], "inc_sec": [20, 64, 64, 128],
          "init": 128}
DPN131 = {"k_r": 160, "groups": 40, "k_sec": [4, 8, 28, 3], "inc_sec": [16, 32, 32, 128],
          "init": 128}

# Published figures: issue #8's parameter counts (timm 1.0.31, instantiated: inception_resnet_v2,
# res2net50_26w_4s, dpn68, dpn98, dpn107, dpn131); torchvision's `Weights.meta` (num_params,
# _ops) for resnext101_32x8d, resnext101_64x4d, mobilenet_v2 and resnet50 (whose keys and counts
# timm's resnet50 shares, drop path or not). The DPN builder arguments are timm's dpn.py
# (dpn98/dpn107/dpn131: k_r, groups, k_sec, inc_sec, num_init_features), the ResNeXt ones
# torchvision's resnet.py (layers, groups, width_per_group), the Res2Net ones timm's
# res2net.py (layers, base_width, scale), MobileNetV2's width_mult torchvision's. Where no
# count is published (other widths and Res2Nets) the reference's own count is checked.
FAMILY: dict[str, Family] = {
    "inception_resnet_v2": Family("inception_resnet_v2", _timm("inception_resnet_v2"),
                                  55_843_464, shape=INCEPTION, small=(3, 75, 75)),
    "res2net50_26w_4s": Family("res2net50_26w_4s", _timm("res2net50_26w_4s"), 25_699_120),
    "res2net50_48w_2s": Family("res2net50_26w_4s", _timm("res2net50_48w_2s"), None,
                               defines={"base_width": 48, "scale": 2}),
    "res2net50_14w_8s": Family("res2net50_26w_4s", _timm("res2net50_14w_8s"), None,
                               defines={"base_width": 14, "scale": 8}),
    "res2net50_26w_6s": Family("res2net50_26w_4s", _timm("res2net50_26w_6s"), None,
                               defines={"scale": 6}, parity=False),
    "res2net101_26w_4s": Family("res2net50_26w_4s", _timm("res2net101_26w_4s"), None,
                                defines={"layers": [3, 4, 23, 3]}, parity=False),
    "mobilenet_v2": Family("mobilenet_v2", _tv("mobilenet_v2"), 3_504_872, 0.301),
    "mobilenet_v2_0.5": Family("mobilenet_v2", _tv("mobilenet_v2", width_mult=0.5), None,
                               defines={"width_mult": 0.5}),
    "mobilenet_v2_0.75": Family("mobilenet_v2", _tv("mobilenet_v2", width_mult=0.75), None,
                                defines={"width_mult": 0.75}),
    "mobilenet_v2_1.4": Family("mobilenet_v2", _tv("mobilenet_v2", width_mult=1.4), None,
                               defines={"width_mult": 1.4}),
    "dpn68": Family("dpn68", _timm("dpn68"), 12_611_602),
    "dpn98": Family("dpn92", _timm("dpn98"), 61_570_728, defines=DPN98),
    "dpn107": Family("dpn92", _timm("dpn107"), 86_917_800, defines=DPN107),
    "dpn131": Family("dpn92", _timm("dpn131"), 79_254_504, defines=DPN131),
    "resnext101_32x8d": Family("resnext50_32x4d", _tv("resnext101_32x8d"), 88_791_336, 16.414,
                               defines={"layers": [3, 4, 23, 3], "width": 8}),
    "resnext101_64x4d": Family("resnext50_32x4d", _tv("resnext101_64x4d"), 83_455_272, 15.46,
                               defines={"layers": [3, 4, 23, 3], "groups": 64}),
    "resnet50_droppath": Family("resnet50_droppath", _timm("resnet50", drop_path_rate=0.05),
                                25_557_032, 4.089),
}

# Parity cases: the family (less two Res2Net variants that add nothing new to the unit), and
# stochastic depth at a rate where the masks matter (a block of ResNet-50 with
# drop_path_rate = 0.5 drops each sample with probability up to 0.5).
PARITY: dict[str, Family] = {
    **{name: family for name, family in FAMILY.items() if family.parity},
    "resnet50_droppath_0.5": Family("resnet50_droppath", _timm("resnet50", drop_path_rate=0.5),
                                    None, defines={"drop_path_rate": 0.5}),
}


def _load(family: Family, **extra: Any) -> Any:
    return resdsl.load(str(SPECS / f"{family.spec}.res"), **family.defines, **extra)


@pytest.fixture(scope="module", params=sorted(FAMILY))
def pair(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    family = FAMILY[request.param]
    torch.manual_seed(0)
    return request.param, _load(family), family.make()


def test_parameter_count(pair: tuple[str, Any, Any]) -> None:
    name, net, model = pair
    ref = sum(p.numel() for p in model.parameters())
    assert net.counts().params == ref
    if FAMILY[name].params is not None:
        assert ref == FAMILY[name].params


def test_macs(pair: tuple[str, Any, Any]) -> None:
    name, net, model = pair
    family = FAMILY[name]
    assert net.input_shape == family.shape
    macs = net.counts().macs
    assert macs == reference_macs(model, family.shape)
    if family.gmacs is not None:
        assert round(macs / 1e9, 3) == family.gmacs


def test_state_dict_keys_and_shapes(pair: tuple[str, Any, Any]) -> None:
    """Every key with its shape, from the graph (no module built). Their order is the
    module's: `test_family_state_dict_order` checks it on the PyTorch module."""
    _, net, model = pair
    ref = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ours = net.state_shapes()
    assert sorted(set(ref) - set(ours)) == []
    assert sorted(set(ours) - set(ref)) == []
    assert {k: v for k, v in ours.items() if v != ref[k]} == {}


# ---------------------------------------------------------------------- structure beyond keys


def test_inception_resnet_v2_scales_are_constants() -> None:
    """Block35 ×10 (0.17), Block17 ×20 (0.10) and Block8 ×9 (0.20) scale their branch by a
    constant, a `rescale` node with no parameter (no α); the final Block8 (scale 1.0, no ReLU)
    needs none."""
    net = _load(FAMILY["inception_resnet_v2"])
    assert not [k for k in net.state_shapes() if k.endswith("alpha")]
    factors = [n.args["factor"] for n in net.graph.nodes() if n.op == "rescale"]
    assert factors == [0.17] * 10 + [0.10] * 20 + [0.20] * 9
    model = timm.create_model("inception_resnet_v2", pretrained=False)
    blocks = [*model.repeat, *model.repeat_1, *model.repeat_2, model.block8]
    assert factors == [b.scale for b in blocks if b.scale != 1.0]
    assert model.block8.scale == 1.0 and model.block8.relu is None
    assert [n.op for n in net.graph.nodes() if n.path.startswith("block8.")][-1] == "add"


def test_resnet50_droppath_rates_are_timms() -> None:
    """timm's make_blocks: block j of 16 gets drop_path_rate · j / 15 (linear decay rule; the
    first block none), a DropPath module named `drop_path` after bn3."""
    for rate in (0.05, 0.2):
        net = _load(FAMILY["resnet50_droppath"], drop_path_rate=rate)
        ours = [(n.path, n.args["p"]) for n in net.graph.nodes() if n.op == "drop_path"]
        model = timm.create_model("resnet50", pretrained=False, drop_path_rate=rate)
        ref = [(name, m.drop_prob) for name, m in model.named_modules()
               if isinstance(m, timm.layers.DropPath)]
        assert len(ref) == 15
        assert ours == ref


def test_mobilenet_v2_residuals_where_the_shape_allows() -> None:
    """torchvision's use_res_connect (stride 1, same width): 10 of the 17 blocks add."""
    net = _load(FAMILY["mobilenet_v2"])
    adds = sorted({n.path.split(".")[1] for n in net.graph.nodes() if n.op == "add"}, key=int)
    model = torchvision.models.mobilenet_v2()
    ref = [str(i) for i, m in enumerate(model.features)
           if getattr(m, "use_res_connect", False)]
    assert adds == ref and len(ref) == 10


# ---------------------------------------------------------------------- output parity


@pytest.fixture(scope="module", params=sorted(PARITY))
def family(request: pytest.FixtureRequest) -> Iterator[Case]:
    name = request.param
    fam = PARITY[name]
    torch.manual_seed(0)
    ref = ModuleReference(fam.make(num_classes=CLASSES))
    ours = ours_for(SPECS / f"{fam.spec}.res", fam.small, classes=CLASSES, **fam.defines)
    yield make_case(name, ref, ours, sample(fam.small))


@pytest.mark.parity
def test_family_state_dict_order(family: Case) -> None:
    """The module's state_dict lists the reference's keys in the reference's order."""
    assert list(family.ours.state_dict()) == list(family.ref.state())


@pytest.mark.parity
def test_family_eval(family: Case) -> None:
    check_eval(family)


@pytest.mark.parity
def test_family_train(family: Case) -> None:
    check_train(family)
