"""Output parity of `Network.to_torch()` against reference implementations.

Every expected value here comes from a reference implementation, never from resdsl:

1. the specs with a PyTorch reference (torchvision, timm): the reference is built at random
   init, its BN running statistics and affine parameters are perturbed (a fresh BN is the
   identity in eval mode, which would hide a misplaced BN), and its state_dict is loaded into
   the resdsl module with `strict=True`;
2. the specs without one: a reference written below in plain torch from the paper's equations
   (`Ref` holds its tensors under the state_dict keys the equations' layers would have, with
   the shapes the equations give them), loaded the same way;
3. `group`: the grouped-conv lowering against the unlowered aggregated form, g separate
   branches built by hand from slices of the grouped module's weights (ResNeXt's equivalence,
   Xie et al. 2017, Fig. 3).

Each pair is compared in eval mode (outputs and argmax) and in train mode (one forward and
backward of the same loss: outputs, the gradient of every parameter by name, and the BN
running statistics afterwards). Inputs are small (64x64 for ImageNet nets, whose references
are size-agnostic; 32x32 or less for CIFAR nets) and the batch is 2, to keep CPU time modest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import resdsl
from tests.conftest import SPECS

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")
F = torch.nn.functional

pytestmark = pytest.mark.parity

Tensor = Any  # torch is untyped for mypy here (pyproject's overrides)

CLASSES = 10
BATCH = 2
RTOL = 1e-4
ATOL = 1e-5


# ---------------------------------------------------------------------- comparison helpers


def close(actual: Tensor, expected: Tensor, what: str) -> None:
    """rtol 1e-4, and atol 1e-5 scaled by the reference's magnitude (deep nets at random init
    in eval mode reach large activations; gradients vary by orders of magnitude)."""
    scale = max(1.0, float(expected.detach().abs().max())) if expected.numel() else 1.0
    torch.testing.assert_close(
        actual.detach(), expected.detach(), rtol=RTOL, atol=ATOL * scale,
        msg=lambda m: f"{what}: {m}",
    )


class Reference:
    """A reference implementation: a forward, and its tensors by state_dict key."""

    def __call__(self, x: Tensor, training: bool) -> Tensor:
        raise NotImplementedError

    def state(self) -> dict[str, Tensor]:
        """Every parameter and buffer, live (writing to them changes the reference)."""
        raise NotImplementedError

    def parameters(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def load(self, state: Mapping[str, Tensor]) -> None:
        raise NotImplementedError


class ModuleReference(Reference):
    """A torchvision or timm model."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, x: Tensor, training: bool) -> Tensor:
        self.model.train(training)
        return self.model(x)

    def state(self) -> dict[str, Tensor]:
        return dict(self.model.state_dict())

    def parameters(self) -> dict[str, Tensor]:
        return dict(self.model.named_parameters())

    def load(self, state: Mapping[str, Tensor]) -> None:
        self.model.load_state_dict(state, strict=True)
        self.model.zero_grad(set_to_none=True)


class Ref(Reference):
    """A reference written in plain torch (functional ops), from a paper's equations.

    Its tensors live in one dict under the state_dict keys the equations' layers would have.
    A tensor is created on first use with the shape the equation gives (conv weights
    N(0, 2/fan_in), linear weights N(0, 1/in), biases N(0, 0.1²), identity BN), or, when the
    dict already holds it, checked to have that shape. BN is Ioffe & Szegedy's, with
    PyTorch's defaults (momentum 0.1, eps 1e-5, num_batches_tracked counting the training
    forwards)."""

    def __init__(self, forward: Callable[[Ref, Tensor], Tensor], seed: int = 0) -> None:
        self.forward = forward
        self.gen = torch.Generator().manual_seed(seed)
        self.tensors: dict[str, Tensor] = {}
        self.training = False

    # -- Reference

    def __call__(self, x: Tensor, training: bool) -> Tensor:
        self.training = training
        return self.forward(self, x)

    def state(self) -> dict[str, Tensor]:
        return dict(self.tensors)

    def parameters(self) -> dict[str, Tensor]:
        return {k: v for k, v in self.tensors.items() if v.requires_grad}

    def load(self, state: Mapping[str, Tensor]) -> None:
        assert sorted(state) == sorted(self.tensors)
        with torch.no_grad():
            for key, value in state.items():
                self.tensors[key].copy_(value)
        for t in self.tensors.values():
            t.grad = None

    # -- building blocks

    def tensor(self, key: str, shape: tuple[int, ...], fill: Callable[[], Tensor],
               param: bool = True) -> Tensor:
        t = self.tensors.get(key)
        if t is None:
            t = fill()
            if param:
                t.requires_grad_(True)
            self.tensors[key] = t
        assert tuple(t.shape) == shape, f"{key}: {tuple(t.shape)} != the equation's {shape}"
        return t

    def randn(self, shape: tuple[int, ...], std: float) -> Callable[[], Tensor]:
        return lambda: torch.randn(shape, generator=self.gen) * std

    def conv(self, name: str, x: Tensor, out: int, k: int, stride: int = 1, groups: int = 1,
             bias: bool = False) -> Tensor:
        """A k×k convolution with "same" padding k // 2."""
        c = x.shape[1]
        shape = (out, c // groups, k, k)
        w = self.tensor(f"{name}.weight", shape, self.randn(shape, math.sqrt(2 / (c * k * k))))
        b = self.tensor(f"{name}.bias", (out,), self.randn((out,), 0.1)) if bias else None
        return F.conv2d(x, w, b, stride, k // 2, 1, groups)

    def linear(self, name: str, x: Tensor, out: int) -> Tensor:
        c = x.shape[1]
        w = self.tensor(f"{name}.weight", (out, c), self.randn((out, c), math.sqrt(1 / c)))
        b = self.tensor(f"{name}.bias", (out,), self.randn((out,), 0.1))
        return F.linear(x, w, b)

    def bn(self, name: str, x: Tensor) -> Tensor:
        c = (x.shape[1],)
        w = self.tensor(f"{name}.weight", c, lambda: torch.ones(c))
        b = self.tensor(f"{name}.bias", c, lambda: torch.zeros(c))
        mean = self.tensor(f"{name}.running_mean", c, lambda: torch.zeros(c), param=False)
        var = self.tensor(f"{name}.running_var", c, lambda: torch.ones(c), param=False)
        count = self.tensor(f"{name}.num_batches_tracked", (),
                            lambda: torch.tensor(0, dtype=torch.long), param=False)
        if self.training:
            count.add_(1)
        return F.batch_norm(x, mean, var, w, b, self.training, 0.1, 1e-5)

    def dropout(self, x: Tensor, p: float) -> Tensor:
        return F.dropout(x, p, self.training)


def perturb(state: Mapping[str, Tensor], seed: int) -> None:
    """Random BN statistics and affine parameters, in place: running_mean ~ N(0, 0.1²),
    running_var ~ U(0.5, 2), weight ~ U(0.5, 1.5), bias ~ N(0, 0.1²)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key in state:
            if not key.endswith(".running_mean"):
                continue
            bn = key[: -len(".running_mean")]
            c = state[key].shape
            state[key].copy_(0.1 * torch.randn(c, generator=gen))
            state[f"{bn}.running_var"].copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
            if f"{bn}.weight" in state:
                state[f"{bn}.weight"].copy_(0.5 + torch.rand(c, generator=gen))
                state[f"{bn}.bias"].copy_(0.1 * torch.randn(c, generator=gen))


@dataclass
class Case:
    """A resdsl module and its reference, holding the same weights after `reset()`."""

    name: str
    ref: Reference
    ours: Any
    snapshot: dict[str, Tensor]
    x: Tensor

    def reset(self) -> None:
        self.ref.load(self.snapshot)
        self.ours.load_state_dict(self.snapshot, strict=True)
        self.ours.zero_grad(set_to_none=True)


def make_case(name: str, ref: Reference, ours: Any, x: Tensor) -> Case:
    """Perturb the reference's BN, then copy all its weights into `ours` (strict)."""
    perturb(ref.state(), seed=1)
    snapshot = {k: v.detach().clone() for k, v in ref.state().items()}
    case = Case(name, ref, ours, snapshot, x)
    case.reset()
    return case


def check_eval(case: Case) -> None:
    case.reset()
    case.ours.eval()
    with torch.no_grad():
        expected = case.ref(case.x, training=False)
        actual = case.ours(case.x)
    assert torch.isfinite(expected).all()
    close(actual, expected, f"{case.name} eval output")
    assert torch.equal(actual.argmax(1), expected.argmax(1))


def _seeded(fn: Callable[[], Tensor]) -> Tensor:
    """The same dropout masks for both models: the same RNG state, the same draws in order."""
    with torch.random.fork_rng():
        torch.manual_seed(1234)
        return fn()


def check_train(case: Case) -> None:
    case.reset()
    case.ours.train()
    expected = _seeded(lambda: case.ref(case.x, training=True))
    actual = _seeded(lambda: case.ours(case.x))
    close(actual, expected, f"{case.name} train output")
    weights = torch.randn(expected.shape, generator=torch.Generator().manual_seed(2))
    (expected * weights).sum().backward()
    (actual * weights).sum().backward()

    ref_params, our_params = case.ref.parameters(), dict(case.ours.named_parameters())
    assert sorted(our_params) == sorted(ref_params)
    for name, p in ref_params.items():
        assert p.grad is not None and our_params[name].grad is not None, name
        close(our_params[name].grad, p.grad, f"{case.name} grad of {name}")

    ref_state, our_state = case.ref.state(), case.ours.state_dict()
    buffers = [k for k in our_state if k not in our_params]
    assert sorted(buffers) == sorted(k for k in ref_state if k not in ref_params)
    for key in buffers:
        if key.endswith("num_batches_tracked"):
            assert int(our_state[key]) == int(ref_state[key]) == 1, key
        else:
            close(our_state[key], ref_state[key], f"{case.name} {key} after one step")


def ours_for(spec: str | Path, input_shape: tuple[int, int, int], **params: Any) -> Any:
    return resdsl.load(str(spec), input_shape=input_shape, **params).to_torch(seed=0)


def sample(shape: tuple[int, int, int], seed: int = 0) -> Tensor:
    return torch.randn((BATCH, *shape), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------- 1. torchvision, timm

IMAGENET = (3, 64, 64)


def _tv(name: str) -> Callable[[], Any]:
    return lambda: getattr(torchvision.models, name)(num_classes=CLASSES)


def _timm(name: str) -> Callable[[], Any]:
    return lambda: timm.create_model(name, pretrained=False, num_classes=CLASSES)


# name → (spec, network parameters, reference constructor). DenseNet-169/201/161 are
# densenet121.res with torchvision's densenet.py builder arguments (growth_rate,
# num_init_features, block_config), as in tests/test_parity.py's DENSENET_VARIANTS.
LIBRARY: dict[str, tuple[str, dict[str, Any], Callable[[], Any]]] = {
    "resnet18": ("resnet18", {}, _tv("resnet18")),
    "resnet34": ("resnet34", {}, _tv("resnet34")),
    "resnet50": ("resnet50", {}, _tv("resnet50")),
    "resnet101": ("resnet101", {}, _tv("resnet101")),
    "resnet152": ("resnet152", {}, _tv("resnet152")),
    "resnext50_32x4d": ("resnext50_32x4d", {}, _tv("resnext50_32x4d")),
    "wide_resnet50_2": ("wide_resnet50_2", {}, _tv("wide_resnet50_2")),
    "densenet121": ("densenet121", {}, _tv("densenet121")),
    "densenet169": ("densenet121", {"blocks": [6, 12, 32, 32]}, _tv("densenet169")),
    "densenet201": ("densenet121", {"blocks": [6, 12, 48, 32]}, _tv("densenet201")),
    "densenet161": ("densenet121", {"growth": 48, "init": 96, "blocks": [6, 12, 36, 24]},
                    _tv("densenet161")),
    "dpn92": ("dpn92", {}, _timm("dpn92")),
    "seresnet50": ("seresnet50", {}, _timm("seresnet50")),
    "resnetv2_50": ("resnetv2_50", {}, _timm("resnetv2_50")),
}


@pytest.fixture(scope="module", params=sorted(LIBRARY))
def library(request: pytest.FixtureRequest) -> Iterator[Case]:
    name = request.param
    spec, params, make = LIBRARY[name]
    torch.manual_seed(0)
    ref = ModuleReference(make())
    ours = ours_for(SPECS / f"{spec}.res", IMAGENET, classes=CLASSES, **params)
    yield make_case(name, ref, ours, sample(IMAGENET))


def test_library_eval(library: Case) -> None:
    check_eval(library)


def test_library_train(library: Case) -> None:
    check_train(library)


# ---------------------------------------------------------------------- 2. paper references

relu = F.relu


def option_a(x: Tensor, out: int, stride: int) -> Tensor:
    """He et al. 2015, §4.2 option A: the identity, subsampled by the stride, with zero
    channels appended for the increased dimensions (no parameters)."""
    sub = x[:, :, ::stride, ::stride]
    zeros = torch.zeros(sub.shape[0], out - sub.shape[1], *sub.shape[2:], dtype=sub.dtype)
    return torch.cat([sub, zeros], 1)


def cifar_resnet(depth: int) -> Callable[[Ref, Tensor], Tensor]:
    """He et al. 2015, §4.2: 3x3 conv, then 3 stages of n = (depth − 2)/6 basic units
    y = relu(F(x) + x) with F = conv-BN-ReLU-conv-BN, 16/32/64 filters, the first unit of
    stages 2 and 3 striding by 2 with an option-A shortcut; global average pool, fc."""

    def forward(r: Ref, x: Tensor) -> Tensor:
        n = (depth - 2) // 6
        h = relu(r.bn("bn1", r.conv("conv1", x, 16, 3)))
        for s, planes in enumerate((16, 32, 64), 1):
            for i in range(n):
                stride, p = (2 if s > 1 and i == 0 else 1), f"layer{s}.{i}"
                f = relu(r.bn(f"{p}.bn1", r.conv(f"{p}.conv1", h, planes, 3, stride)))
                f = r.bn(f"{p}.bn2", r.conv(f"{p}.conv2", f, planes, 3))
                h = relu(f + option_a(h, planes, stride))
        return r.linear("fc", h.mean((2, 3)), CLASSES)

    return forward


def preact_resnet(depth: int) -> Callable[[Ref, Tensor], Tensor]:
    """He et al. 2016 ("Identity Mappings"), the CIFAR bottleneck net of the authors'
    resnet-pre-act.lua: x_{l+1} = x_l + F(x_l) with full pre-activation
    F = conv1x1(relu(bn(·))) → BN-ReLU-conv3x3 → BN-ReLU-conv1x1 (widths out/4, out/4, out).
    A unit that increases dimensions pre-activates once, p = relu(bn(x)), and both paths
    read p: y = W_s·p + F'(p), with W_s a plain 1x1 conv and the stride on the first 1x1
    conv. 9n + 2 layers, stages of 64/128/256 channels; BN-ReLU, pool and fc at the end."""

    def forward(r: Ref, x: Tensor) -> Tensor:
        n = (depth - 2) // 9
        h = r.conv("conv1", x, 16, 3)
        for s, (out, first_stride) in enumerate(((64, 1), (128, 2), (256, 2)), 1):
            for i in range(n):
                stride, p = (first_stride if i == 0 else 1), f"layer{s}.{i}"
                pre = relu(r.bn(f"{p}.bn1", h))
                f = r.conv(f"{p}.conv1", pre, out // 4, 1, stride)
                f = r.conv(f"{p}.conv2", relu(r.bn(f"{p}.bn2", f)), out // 4, 3)
                f = r.conv(f"{p}.conv3", relu(r.bn(f"{p}.bn3", f)), out, 1)
                # Each stage's first unit increases dimensions: its projection reads `pre`.
                shortcut = r.conv(f"{p}.shortcut", pre, out, 1, stride) if i == 0 else h
                h = shortcut + f
        h = relu(r.bn("bn", h))
        return r.linear("fc", h.mean((2, 3)), CLASSES)

    return forward


def wide_resnet(depth: int, k: int, drop: float) -> Callable[[Ref, Tensor], Tensor]:
    """Zagoruyko & Komodakis 2016, the authors' pytorch/resnet.py: conv0, three groups of
    n = (depth − 4)/6 blocks of width 16k/32k/64k (strides 1/2/2):
    o1 = relu(bn0(x)); y = conv0(o1); o2 = dropout(relu(bn1(y))); z = conv1(o2);
    out = z + (convdim(o1) if the width changes else x); then relu(bn(·)), 8x8 avg pool, fc."""

    def forward(r: Ref, x: Tensor) -> Tensor:
        n = (depth - 4) // 6
        h = r.conv("conv0", x, 16, 3)
        for g, (width, first_stride) in enumerate(((16 * k, 1), (32 * k, 2), (64 * k, 2))):
            for i in range(n):
                stride, p = (first_stride if i == 0 else 1), f"group{g}.block{i}"
                o1 = relu(r.bn(f"{p}.bn0", h))
                y = r.conv(f"{p}.conv0", o1, width, 3, stride)
                o2 = r.dropout(relu(r.bn(f"{p}.bn1", y)), drop)
                z = r.conv(f"{p}.conv1", o2, width, 3)
                project = h.shape[1] != width
                h = z + (r.conv(f"{p}.convdim", o1, width, 1, stride) if project else h)
        o = F.avg_pool2d(relu(r.bn("bn", h)), 8, 1, 0)
        return r.linear("fc", o.flatten(1), CLASSES)

    return forward


def highway_cifar19(drop: float) -> Callable[[Ref, Tensor], Tensor]:
    """Srivastava, Greff & Schmidhuber 2015, the authors' cifar10-19layers prototxt. A highway
    layer is y = T·H + (1 − T)·x with H = relu(W_H x + b_H), T = σ(W_T x + b_T), both 3x3
    convs with biases."""

    def highway(r: Ref, name: str, x: Tensor) -> Tensor:
        c = x.shape[1]
        h = relu(r.conv(f"{name}.h", x, c, 3, bias=True))
        t = torch.sigmoid(r.conv(f"{name}.transform", x, c, 3, bias=True))
        return t * h + (1 - t) * x

    def forward(r: Ref, x: Tensor) -> Tensor:
        h = r.dropout(x, drop)
        for first, last, width in ((1, 5, 32), (6, 11, 80), (12, 17, 128)):
            if first > 1:
                h = r.dropout(F.max_pool2d(h, 2, 2), drop)
            h = relu(r.conv(f"conv{first}", h, width, 3, bias=True))
            for i in range(first + 1, last + 1):
                h = highway(r, f"conv{i}", h)
        h = relu(r.conv("conv18", h, 100, 1, bias=True))
        h = r.dropout(F.avg_pool2d(h, 8), drop)
        return r.linear("ip2", h.flatten(1), CLASSES)

    return forward


def rezero_resnet(depth: int) -> Callable[[Ref, Tensor], Tensor]:
    """Weighted residual / ReZero (Shen & Zeng 2016; Bachlechner et al. 2020) on He et al.'s
    CIFAR ResNet: y = S(x) + α·F(x), F = conv-BN-ReLU-conv-BN-ReLU, one scalar α per unit,
    nothing after the add, S the identity or option A."""

    def forward(r: Ref, x: Tensor) -> Tensor:
        n = (depth - 2) // 6
        h = relu(r.bn("bn1", r.conv("conv1", x, 16, 3)))
        for s, planes in enumerate((16, 32, 64), 1):
            for i in range(n):
                stride, p = (2 if s > 1 and i == 0 else 1), f"layer{s}.{i}"
                f = relu(r.bn(f"{p}.bn1", r.conv(f"{p}.conv1", h, planes, 3, stride)))
                f = relu(r.bn(f"{p}.bn2", r.conv(f"{p}.conv2", f, planes, 3)))
                alpha = r.tensor(f"{p}.alpha", (1,), r.randn((1,), 0.5))
                h = option_a(h, planes, stride) + alpha * f
        return r.linear("fc", h.mean((2, 3)), CLASSES)

    return forward


WEIGHTED = """
network weighted(classes = 10) {
    input [3, 16, 16]
    conv1: conv(16, 3); bn1: bn; relu
    unit: weight(init = 0.5, per_channel = true) {
        conv1: conv(16, 3); bn1: bn; relu
        conv2: conv(16, 3); bn2: bn
    }
    mix: weight {
        a: branch { conv: conv(16, 3); bn: bn; relu }
        b: branch { conv: conv(16, 1, bias = true) }
        branch { identity }
    }
    avgpool: global_avgpool; flatten
    fc: linear(classes)
}
"""


def weighted(r: Ref, x: Tensor) -> Tensor:
    """docs/language.md, `weight`: y = x + α ⊙ F(x) with one α per channel (C×1×1), and the
    multi-branch form y = Σ_i softmax(w)_i · B_i(x)."""
    h = relu(r.bn("bn1", r.conv("conv1", x, 16, 3)))
    f = relu(r.bn("unit.bn1", r.conv("unit.conv1", h, 16, 3)))
    f = r.bn("unit.bn2", r.conv("unit.conv2", f, 16, 3))
    h = h + r.tensor("unit.alpha", (16, 1, 1), r.randn((16, 1, 1), 0.5)) * f
    branches = [
        relu(r.bn("mix.a.bn", r.conv("mix.a.conv", h, 16, 3))),
        r.conv("mix.b.conv", h, 16, 1, bias=True),
        h,
    ]
    w = torch.softmax(r.tensor("mix.weight", (3,), r.randn((3,), 1.0)), 0)
    h = sum(w[i] * b for i, b in enumerate(branches))
    return r.linear("fc", h.mean((2, 3)), CLASSES)


CIFAR = (3, 32, 32)

# name → (spec, network parameters, input shape, reference forward). WRN is made small
# (depth 16: two blocks per group, so identity blocks too; k = 2) with the paper's dropout.
PAPERS: dict[str, tuple[str, dict[str, Any], tuple[int, int, int],
                        Callable[[Ref, Tensor], Tensor]]] = {
    "resnet20": ("resnet20.res", {}, CIFAR, cifar_resnet(20)),
    "preact_resnet164": ("preact_resnet164.res", {}, CIFAR, preact_resnet(164)),
    "wrn16_2_dropout": ("wrn28_10.res", {"depth": 16, "k": 2, "drop": 0.3}, CIFAR,
                        wide_resnet(16, 2, 0.3)),
    "highway_cifar19": ("highway_cifar19.res", {}, CIFAR, highway_cifar19(0.2)),
    "rezero_resnet56": ("rezero_resnet56.res", {}, CIFAR, rezero_resnet(56)),
    "weighted": ("<tmp>", {}, (3, 16, 16), weighted),
}


@pytest.fixture(scope="module")
def weighted_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("specs") / "weighted.res"
    path.write_text(WEIGHTED)
    return path


@pytest.fixture(scope="module", params=sorted(PAPERS))
def paper(request: pytest.FixtureRequest, weighted_spec: Path) -> Iterator[Case]:
    name = request.param
    spec, params, shape, forward = PAPERS[name]
    path = weighted_spec if spec == "<tmp>" else SPECS / spec
    ours = ours_for(path, shape, classes=CLASSES, **params)
    ref = Ref(forward)
    x = sample(shape)
    with torch.no_grad():
        ref(x, training=False)  # creates the reference's tensors
    yield make_case(name, ref, ours, x)


def test_paper_eval(paper: Case) -> None:
    check_eval(paper)


def test_paper_train(paper: Case) -> None:
    check_train(paper)


def test_wrn_params() -> None:
    """The spec's network parameters, which the small WRN above overrides."""
    assert dict(resdsl.load(str(SPECS / "wrn28_10.res")).params) == {
        "classes": 10, "depth": 28, "k": 10, "drop": 0.0}


def test_highway_transform_bias_starts_at_minus_2() -> None:
    """The authors' prototxt: every transform gate's bias filler is the constant −2."""
    state = ours_for(SPECS / "highway_cifar19.res", CIFAR).state_dict()
    biases = {k: v for k, v in state.items() if k.endswith(".transform.bias")}
    assert len(biases) == 14
    for key, value in biases.items():
        assert torch.equal(value, torch.full_like(value, -2.0)), key
    assert not torch.equal(state["conv2.h.bias"], torch.full_like(state["conv2.h.bias"], -2.0))


def test_weight_initial_values(weighted_spec: Path) -> None:
    """docs/language.md, `weight`: α starts at `init`; the branch weights start at 0 (equal
    softmax weights)."""
    state = ours_for(weighted_spec, (3, 16, 16)).state_dict()
    assert torch.equal(state["unit.alpha"], torch.full((16, 1, 1), 0.5))
    assert torch.equal(state["mix.weight"], torch.zeros(3))


def test_rezero_starts_as_the_shortcut() -> None:
    """ReZero at init (α = 0): every unit is exactly its shortcut, y = S(x), with S the
    identity or option A (He et al. 2015)."""
    model = ours_for(SPECS / "rezero_resnet56.res", CIFAR).eval()
    alphas = {k: v for k, v in model.state_dict().items() if k.endswith(".alpha")}
    assert len(alphas) == 27 and all(torch.equal(a, torch.zeros(1)) for a in alphas.values())
    h = sample((16, 32, 32), seed=3)
    with torch.no_grad():
        for s, planes in enumerate((16, 32, 64), 1):
            for i in range(9):
                stride = 2 if s > 1 and i == 0 else 1
                y = model.get_submodule(f"layer{s}.{i}")(h)
                assert torch.equal(y, option_a(h, planes, stride)), f"layer{s}.{i}"
                h = y


# ---------------------------------------------------------------------- 3. group lowering

GROUP = """
network grouped() {{
    input [{cin}, 8, 8]
    g: group(groups = {g}, merge = "{merge}") {{
        conv1: conv({d}, 1); bn1: bn; relu
        conv2: conv({d}, 3, stride = {stride}, groups = {gb}); bn2: bn; relu
        conv3: conv({c}, 1, bias = true)
        {tail}
    }}
}}
"""


@dataclass(frozen=True)
class Group:
    g: int  # branches
    cin: int
    d: int  # each branch's width
    gb: int  # groups of each branch's 3x3 conv
    c: int  # each branch's output channels
    stride: int = 1
    merge: str = "sum"
    bn3: bool = False  # end the body with a BN (so the sum is a `group_sum`, not folded)

    def spec(self) -> str:
        return GROUP.format(cin=self.cin, g=self.g, merge=self.merge, d=self.d,
                            stride=self.stride, gb=self.gb, c=self.c,
                            tail="bn3: bn" if self.bn3 else "")


GROUPS = {
    "sum_folded": Group(g=4, cin=12, d=8, gb=1, c=32),
    "sum_grouped_branches": Group(g=4, cin=12, d=8, gb=2, c=32, stride=2),
    "sum_group_sum": Group(g=4, cin=12, d=8, gb=1, c=32, bn3=True),
    "concat": Group(g=4, cin=12, d=8, gb=2, c=16, merge="concat"),
    "concat_bn": Group(g=3, cin=12, d=8, gb=1, c=16, merge="concat", bn3=True),
    "resnext_32x4d": Group(g=32, cin=64, d=4, gb=1, c=64, stride=2),
}


def branch_state(grouped: Mapping[str, Tensor], grp: Group, seed: int) -> dict[str, Tensor]:
    """Branch i's weights, sliced out of the lowered module (resdsl/ir/elaborate.py,
    `_lower_in_group` and `_group`):
    - conv1, the branches' first convs stacked: output rows [i·d, (i+1)·d);
    - conv2, grouped g·gb ways: output rows [i·d, (i+1)·d) are branch i's gb-grouped conv;
    - BN over the stacked channels: channels [i·C, (i+1)·C);
    - conv3 folded by a sum (no BN after it): Σ_i W_i y_i is one conv over the stacked y, so
      branch i's weight is input columns [i·d, (i+1)·d); its bias is the sum of the branch
      biases, split here at random into g parts;
    - conv3 otherwise, grouped g ways: output rows [i·c, (i+1)·c)."""
    g, d, c = grp.g, grp.d, grp.c
    folded = grp.merge == "sum" and not grp.bn3
    gen = torch.Generator().manual_seed(seed)
    bias = grouped["g.conv3.bias"]
    parts = [0.1 * torch.randn(bias.shape, generator=gen) for _ in range(g - 1)]
    parts.append(bias - sum(parts))
    out: dict[str, Tensor] = {}
    for i in range(g):
        p, rows_d, rows_c = f"branch{i}", slice(i * d, (i + 1) * d), slice(i * c, (i + 1) * c)
        out[f"{p}.conv1.weight"] = grouped["g.conv1.weight"][rows_d]
        out[f"{p}.conv2.weight"] = grouped["g.conv2.weight"][rows_d]
        for bn, rows in (("bn1", rows_d), ("bn2", rows_d), ("bn3", rows_c)):
            if bn == "bn3" and not grp.bn3:
                continue
            for stat in ("weight", "bias", "running_mean", "running_var"):
                out[f"{p}.{bn}.{stat}"] = grouped[f"g.{bn}.{stat}"][rows]
            out[f"{p}.{bn}.num_batches_tracked"] = grouped[f"g.{bn}.num_batches_tracked"]
        if folded:
            out[f"{p}.conv3.weight"] = grouped["g.conv3.weight"][:, rows_d]
            out[f"{p}.conv3.bias"] = parts[i]
        else:
            out[f"{p}.conv3.weight"] = grouped["g.conv3.weight"][rows_c]
            out[f"{p}.conv3.bias"] = grouped["g.conv3.bias"][rows_c]
    return {k: v.detach().clone() for k, v in out.items()}


def aggregated(grp: Group) -> Callable[[Ref, Tensor], Tensor]:
    """Xie et al. 2017, eq. 3 / Fig. 3a: y = Σ_i T_i(x) (or [T_1(x), ..., T_g(x)] for concat),
    each T_i a separate conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1(-BN) applied to all of x."""

    def forward(r: Ref, x: Tensor) -> Tensor:
        outs = []
        for i in range(grp.g):
            p = f"branch{i}"
            y = relu(r.bn(f"{p}.bn1", r.conv(f"{p}.conv1", x, grp.d, 1)))
            y = relu(r.bn(f"{p}.bn2",
                          r.conv(f"{p}.conv2", y, grp.d, 3, grp.stride, groups=grp.gb)))
            y = r.conv(f"{p}.conv3", y, grp.c, 1, bias=True)
            outs.append(r.bn(f"{p}.bn3", y) if grp.bn3 else y)
        return sum(outs[1:], outs[0]) if grp.merge == "sum" else torch.cat(outs, 1)

    return forward


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_group_equals_aggregated_branches(name: str, tmp_path: Path) -> None:
    grp = GROUPS[name]
    spec = tmp_path / "grouped.res"
    spec.write_text(grp.spec())
    ours = ours_for(spec, (grp.cin, 8, 8))
    state = ours.state_dict()
    perturb(state, seed=5)  # in place: eval-mode BN that is not the identity
    ref = Ref(aggregated(grp))
    ref.tensors = branch_state(state, grp, seed=6)
    for key, value in ref.tensors.items():
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            value.requires_grad_(True)
    x = sample((grp.cin, 8, 8), seed=7)
    out_c = grp.c if grp.merge == "sum" else grp.g * grp.c
    for training in (False, True):
        ours.train(training)
        with torch.no_grad():
            expected = ref(x, training=training)
            actual = ours(x)
        assert actual.shape == expected.shape == (BATCH, out_c, 8 // grp.stride, 8 // grp.stride)
        close(actual, expected, f"group {name} ({'train' if training else 'eval'})")
