"""Parity with the reference implementations, instantiated here with random weights.

For each spec, the graph must have exactly the reference model's state_dict keys and
shapes (the names are the contract with PyTorch), the same parameter count, and the same
multiply-accumulate count, which the reference model yields through forward hooks on its
Conv2d and Linear layers (the convention behind torchvision's published GFLOPS). The
published figures (DESIGN.md §7, from torchvision's `Weights.meta` and timm) are checked too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")

from resdsl.passes.counts import state_shapes, totals  # noqa: E402
from resdsl.pipeline import Options, build  # noqa: E402
from tests.conftest import SPECS  # noqa: E402

# spec → (reference constructor, published params, published GMACs). Published figures:
# torchvision `Weights.meta` (num_params, _ops) for torchvision models; timm's dpn92 count
# from instantiating timm 1.0.31 and its GMACs as DESIGN.md §7 states them.
REFERENCES: dict[str, tuple[Callable[[], Any], int, float]] = {
    "resnet18": (lambda: torchvision.models.resnet18(), 11_689_512, 1.814),
    "resnet34": (lambda: torchvision.models.resnet34(), 21_797_672, 3.664),
    "resnet50": (lambda: torchvision.models.resnet50(), 25_557_032, 4.089),
    "resnet101": (lambda: torchvision.models.resnet101(), 44_549_160, 7.801),
    "resnet152": (lambda: torchvision.models.resnet152(), 60_192_808, 11.514),
    "resnext50_32x4d": (lambda: torchvision.models.resnext50_32x4d(), 25_028_904, 4.230),
    "densenet121": (lambda: torchvision.models.densenet121(), 7_978_856, 2.834),
    "dpn92": (lambda: timm.create_model("dpn92", pretrained=False), 37_668_392, 6.502),
    # Params: torchvision `Weights.meta` (wide_resnet50_2) and timm 1.0.31 instantiated
    # (shared/reference/models.md §3, §4c, §8); GMACs as DESIGN.md §7 states them (SE's 1x1
    # convs are conv MACs too).
    "wide_resnet50_2": (lambda: torchvision.models.wide_resnet50_2(), 68_883_240, 11.398),
    "seresnet50": (lambda: timm.create_model("seresnet50", pretrained=False), 28_088_024, 4.092),
    "resnetv2_50": (lambda: timm.create_model("resnetv2_50", pretrained=False), 25_549_352, 4.089),
}


def reference_macs(model: Any, shape: tuple[int, ...]) -> int:
    """Conv and linear multiply-accumulates of one forward pass of `model`."""
    total = 0

    def conv_hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        total += m.in_features * m.out_features

    handles = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return total


@pytest.fixture(scope="module", params=sorted(REFERENCES))
def pair(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    name = request.param
    make = REFERENCES[name][0]
    torch.manual_seed(0)
    return name, build(str(SPECS / f"{name}.res")).graph, make()


def test_state_dict_keys_and_shapes(pair: tuple[str, Any, Any]) -> None:
    _, graph, model = pair
    ref = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ours = state_shapes(graph)
    assert sorted(set(ref) - set(ours)) == []
    assert sorted(set(ours) - set(ref)) == []
    assert {k: v for k, v in ours.items() if v != ref[k]} == {}


def test_parameter_count(pair: tuple[str, Any, Any]) -> None:
    name, graph, model = pair
    ref = sum(p.numel() for p in model.parameters())
    assert totals(graph).params == ref == REFERENCES[name][1]


def test_macs(pair: tuple[str, Any, Any]) -> None:
    name, graph, model = pair
    ours = totals(graph).macs
    assert ours == reference_macs(model, (3, 224, 224))
    assert round(ours / 1e9, 3) == REFERENCES[name][2]


def test_overrides_change_the_head() -> None:
    """`-D classes=10` and `--input 3x160x160` reach the reference model's shapes."""
    options = Options(defines={"classes": "10"}, input_shape=(3, 160, 160))
    graph = build(str(SPECS / "resnet50.res"), options).graph
    model = torchvision.models.resnet50(num_classes=10)
    assert state_shapes(graph)["fc.weight"] == tuple(model.fc.weight.shape) == (10, 2048)
    assert totals(graph).macs == reference_macs(model, (3, 160, 160))


# He et al. 2015, Table 6 (CIFAR-10, option A): exact counts computed from the layer list,
# shared/reference/models.md §1 (269,722 / 853,018 / 1,727,962; paper: 0.27M / 0.85M / 1.7M),
# and MACs at 32x32 from the same section (40.6M, 125.5M, 252.9M).
@pytest.mark.parametrize(
    ("name", "params", "mmacs"),
    [("resnet20", 269_722, 40.6), ("resnet56", 853_018, 125.5), ("resnet110", 1_727_962, 252.9)],
)
def test_cifar_resnets(name: str, params: int, mmacs: float) -> None:
    t = totals(build(str(SPECS / f"{name}.res")).graph)
    assert t.params == params
    assert round(t.macs / 1e6, 1) == mmacs


def test_cifar_depth_override() -> None:
    """ResNet-1202 is resnet20.res with `-D depth=1202` (models.md §1: 19,421,274)."""
    graph = build(str(SPECS / "resnet20.res"), Options(defines={"depth": "1202"})).graph
    assert totals(graph).params == 19_421_274


# DenseNet-169/201/161 are densenet121.res with other network parameters (torchvision's
# densenet.py builder arguments); published figures from torchvision's Weights.meta.
DENSENET_VARIANTS = {
    "densenet169": ({"blocks": "[6, 12, 32, 32]"}, 14_149_480, 3.360),
    "densenet201": ({"blocks": "[6, 12, 48, 32]"}, 20_013_928, 4.291),
    "densenet161": ({"growth": "48", "init": "96", "blocks": "[6, 12, 36, 24]"}, 28_681_000, 7.728),
}


@pytest.mark.parametrize("name", sorted(DENSENET_VARIANTS))
def test_densenet_variants_by_overrides(name: str) -> None:
    defines, params, gmacs = DENSENET_VARIANTS[name]
    graph = build(str(SPECS / "densenet121.res"), Options(defines=defines)).graph
    model = getattr(torchvision.models, name)()
    ref = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert state_shapes(graph) == ref
    t = totals(graph)
    assert t.params == sum(p.numel() for p in model.parameters()) == params
    assert t.macs == reference_macs(model, (3, 224, 224))
    assert round(t.macs / 1e9, 3) == gmacs
