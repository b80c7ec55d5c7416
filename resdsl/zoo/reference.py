"""The checker: a zoo row against the published model it names (timm's or torchvision's).

`check(entry, outputs=True)` compares, in this order, and stops at the first difference:

1. the state_dict: every key, in order, with its shape;
2. the parameter count;
3. the MACs at the row's input (the one it is published at): conv (2-D and 1-D) and linear
   multiply-accumulates counted by forward hooks on the reference (torchvision's convention,
   as tests/test_parity.py `reference_macs` and tests/test_attention_specs.py `conv1d_macs`),
   against resdsl's static count;
4. with `outputs`, for a model of at most `MAX_OUTPUT_PARAMS` parameters: eval-mode outputs
   in PyTorch, the reference's weights copied into the spec's module after every norm's
   affine parameters and running statistics and every layer scale are randomised (the
   initial values, ones and zeros, would hide a swapped scale or shift), at the smallest
   square input the model accepts, within tests/test_timm_base_specs.py `close`'s
   tolerance (rtol 1e-4, atol 1e-5·max(1, max|y|), and the same argmax).

The reference is built on the meta device (no memory, no time) for 1-3, and for real only
for 4; a model above `MAX_OUTPUT_PARAMS` is never allocated, on either side (resdsl counts
without tensors). torch, timm and torchvision are imported inside the functions: importing
this module costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resdsl.ir.ops import Shape, fmt_shape
from resdsl.zoo.entry import ZooEntry

if TYPE_CHECKING:
    import numpy as np

    from resdsl.api import Network

# Above this many parameters a model is checked statically only (keys, shapes, parameters,
# MACs on the meta device): its outputs would cost gigabytes and minutes (regnety_2560 has
# 1.28 billion parameters).
MAX_OUTPUT_PARAMS = 100_000_000
# The square input sides tried, smallest first, for the output comparison.
SIDES = (32, 64, 96, 128, 160, 192, 224, 256, 288, 320)
# Rows whose outputs are ill-conditioned at a smaller side, and the side to start from.
# FilterResponseNorm divides each channel by its root mean square over the map's positions:
# on the 1×1 map a 32×32 input leaves, that is x / √(x² + ε), a step at 0, so the last bit
# of a float flips an output (timm's own float32 forward differs from float64 there).
MIN_SIDE = {"timm:resnetv2_50d_frn": 64}
# tests/test_timm_base_specs.py `close`: relative and (scaled) absolute tolerance.
RTOL, ATOL = 1e-4, 1e-5
BATCH = 2
EXACT, NOT_EXACT = "exact", "not exact"


@dataclass
class CheckResult:
    """What `check` found: `status` is `"exact"` or `"not exact"`, `reason` the first
    difference (empty when exact); the figures are the reference's, None where not
    reached."""

    entry: ZooEntry
    status: str = NOT_EXACT
    reason: str = ""
    params: int | None = None
    macs: int | None = None
    # The output comparison: the input side, the largest absolute difference and the scale
    # of the reference's outputs (max |y|); None when not compared.
    side: int | None = None
    max_abs_diff: float | None = None
    output_scale: float | None = None
    outputs_checked: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.status == EXACT

    def as_json(self) -> dict[str, Any]:
        return {"name": self.entry.qualified, "status": self.status, "reason": self.reason,
                "params": self.params, "macs": self.macs, "side": self.side,
                "max_abs_diff": self.max_abs_diff, "outputs_checked": self.outputs_checked}


class _Mismatch(Exception):
    """The first difference found: the check stops there."""


def create(entry: ZooEntry, meta: bool = False, **kwargs: Any) -> Any:
    """The published model of `entry`, untrained (no download): `timm.create_model(name)`
    or `torchvision.models.get_model(name)`, on the meta device when `meta`."""
    import torch

    with torch.device("meta") if meta else _nothing():
        if entry.source == "timm":
            import timm

            return timm.create_model(entry.name, pretrained=False, **kwargs)
        if entry.source == "torchvision":
            import torchvision

            with _regnet_widths_on_cpu() if meta else _nothing():
                return torchvision.models.get_model(entry.name, weights=None, **kwargs)
    raise ValueError(f"{entry.qualified}: unknown source `{entry.source}`")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def _regnet_widths_on_cpu() -> Iterator[None]:
    """torchvision computes its RegNets' widths with tensors on the default device and reads
    them back, which the meta device cannot: that computation alone runs on the CPU (the
    modules are still made on the meta device), as tests/zoo/test_regnet.py does."""
    import torch
    from torchvision.models.regnet import BlockParams

    original = BlockParams.__dict__["from_init_params"]

    def on_cpu(cls: type, *args: Any, **kwargs: Any) -> Any:
        with torch.device("cpu"):
            return original.__func__(cls, *args, **kwargs)

    BlockParams.from_init_params = classmethod(on_cpu)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        BlockParams.from_init_params = original  # type: ignore[method-assign]


def reference_macs(model: Any, shape: Shape) -> int:
    """Conv and linear multiply-accumulates of one forward pass of `model` on one input of
    `shape`, on the model's device (meta tensors have shapes, which is all a count needs):
    tests/test_parity.py `reference_macs`'s hooks, and tests/test_attention_specs.py's for
    the 1-D convs (ECA), which resdsl counts too."""
    import torch

    total = 0

    def conv_hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def conv1d_hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0]

    def linear_hook(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total
        total += m.in_features * m.out_features

    handles = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Conv1d):  # ECA's (tests/test_attention_specs.py)
            handles.append(m.register_forward_hook(conv1d_hook))
        elif isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    device = _device(model)
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return total


def default_input(model: Any) -> Shape:
    """The input a timm model is published at (its `pretrained_cfg`'s `input_size`, the one
    its GMACs are given for); 3×224×224 for torchvision's classifiers (their weights'
    transforms crop 224×224)."""
    cfg = getattr(model, "pretrained_cfg", None)
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    return tuple(int(d) for d in size) if size else (3, 224, 224)


def _device(model: Any) -> Any:
    for tensor in model.state_dict().values():
        return tensor.device
    import torch

    return torch.device("cpu")


# Parameters of a norm that multiply (their initial ones would hide a swap); the others
# (bias, FRN's tau) shift.
_MULTIPLIERS = {"weight", "v", "gamma", "scale"}


def randomise(model: Any, seed: int) -> Any:
    """`model` in eval mode with every norm's affine parameters and running statistics and
    every layer scale random (tests/test_timm_base_specs.py `randomised`, extended to every
    norm and `gamma`-like scale): a module whose class name has `Norm` in it (BatchNorm,
    GroupNorm, LayerNorm, timm's norm-act layers, EvoNorm, FilterResponseNorm) and every
    parameter named `gamma` or under a `layer_scale`."""
    import torch

    gen = torch.Generator().manual_seed(seed)

    def fill(t: Any, multiplier: bool) -> None:
        shape = t.shape
        value = (0.5 + torch.rand(shape, generator=gen) if multiplier
                 else 0.1 * torch.randn(shape, generator=gen))
        t.copy_(value.to(t.dtype))

    with torch.no_grad():
        for _, module in model.named_modules():
            if "Norm" not in type(module).__name__:
                continue
            for pname, p in module.named_parameters(recurse=False):
                fill(p, pname in _MULTIPLIERS)
            for bname, b in module.named_buffers(recurse=False):
                if bname == "running_mean":
                    fill(b, False)
                elif bname == "running_var":
                    b.copy_(0.5 + 1.5 * torch.rand(b.shape, generator=gen))
        for pname, p in model.named_parameters():
            leaf = pname.rsplit(".", 1)[-1]
            if leaf == "gamma" or "layer_scale" in pname:
                fill(p, True)
    return model.eval()


def _compare_state(net: Network, reference: Mapping[str, Any]) -> None:
    ours = list(net.state_shapes().items())
    theirs = [(k, tuple(v.shape)) for k, v in reference.items()]
    if ours == theirs:
        return
    missing = [k for k, _ in theirs if k not in dict(ours)]
    extra = [k for k, _ in ours if k not in dict(theirs)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first `{missing[0]}`)")
        if extra:
            parts.append(f"{len(extra)} unexpected (first `{extra[0]}`)")
        raise _Mismatch(f"state_dict keys: {len(ours)} vs the reference's {len(theirs)}, "
                        + ", ".join(parts))
    for i, ((k1, s1), (k2, s2)) in enumerate(zip(ours, theirs, strict=True)):
        if k1 != k2:
            raise _Mismatch(f"state_dict key {i} is `{k1}`, the reference's `{k2}` (same "
                            "keys, another order)")
        if s1 != s2:
            raise _Mismatch(f"`{k1}` has shape {fmt_shape(s1)}, the reference's "
                            f"{fmt_shape(s2)}")


def _load(entry: ZooEntry, **kwargs: Any) -> Network:
    """The row's network: its own spec and parameters (not a lookup of its name, so that a
    row is checked before it is in the table), at its published input."""
    import resdsl
    from resdsl.zoo.inputs import published_input

    kwargs.setdefault("input_shape", published_input(entry.qualified))
    return resdsl.load(entry.spec_path(), **{**entry.params, **kwargs})


def check(entry: ZooEntry, outputs: bool = True, seed: int = 1) -> CheckResult:
    """`entry` against its published model (see the module's doc); never raises for a
    mismatch or a failure on either side: the result says what went wrong."""
    start = time.perf_counter()
    result = CheckResult(entry)
    try:
        _check(entry, outputs, seed, result)
        result.status = EXACT
    except _Mismatch as exc:
        result.reason = str(exc)
    except Exception as exc:  # a spec that fails, a reference that cannot be built
        result.reason = _failure(exc)
    result.seconds = time.perf_counter() - start
    return result


def _failure(exc: BaseException) -> str:
    from resdsl.diagnostics import SpecError

    if isinstance(exc, SpecError) and exc.diagnostics:
        d = exc.diagnostics[0]
        return f"the spec fails: error[{d.code}]: {d.message}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _check(entry: ZooEntry, outputs: bool, seed: int, result: CheckResult) -> None:
    try:
        net = _load(entry)
    except Exception as exc:
        raise _Mismatch(_failure(exc)) from None
    try:
        meta = create(entry, meta=True)
    except Exception as exc:
        raise _Mismatch(f"the reference cannot be built: {_failure(exc)}") from None
    result.params = sum(p.numel() for p in meta.parameters())
    default = default_input(meta)
    if default != tuple(net.input_shape):
        result.notes.append(f"the spec's input is {fmt_shape(net.input_shape)}, the "
                            f"reference's default {fmt_shape(default)}")
    _compare_state(net, meta.state_dict())
    ours = net.counts()
    if ours.params != result.params:
        raise _Mismatch(f"{ours.params:,} parameters, the reference's {result.params:,}")
    result.macs = _macs(entry, meta, net.input_shape, result.params)
    if ours.macs != result.macs:
        raise _Mismatch(f"{ours.macs:,} MACs at {fmt_shape(net.input_shape)}, the "
                        f"reference's {result.macs:,}")
    if not outputs:
        return
    if result.params > MAX_OUTPUT_PARAMS:
        result.notes.append(f"outputs not compared: over {MAX_OUTPUT_PARAMS:,} parameters")
        return
    _compare_outputs(entry, meta, net, seed, result)


def _macs(entry: ZooEntry, meta: Any, shape: Shape, params: int) -> int:
    try:
        return reference_macs(meta, shape)
    except Exception:
        # An op that meta tensors do not support: count on the real model when it is small.
        if params > MAX_OUTPUT_PARAMS:
            raise
        return reference_macs(create(entry), shape)


def smallest_side(meta: Any, net: Network, entry: ZooEntry) -> int:
    """The smallest side of `SIDES` that both the reference (its forward on the meta
    device) and the spec (its shape checks) accept."""
    import torch

    from resdsl.diagnostics import SpecError

    channels = net.input_shape[0]
    for side in (s for s in SIDES if s >= MIN_SIDE.get(entry.qualified, 0)):
        try:
            with torch.no_grad():
                meta(torch.zeros(1, channels, side, side, device="meta"))
        except Exception:
            continue
        try:
            _load(entry, input_shape=(channels, side, side))
        except SpecError:
            continue
        return side
    raise _Mismatch(f"no input side of {SIDES[0]} to {SIDES[-1]} that both accept")


def _compare_outputs(entry: ZooEntry, meta: Any, net: Network, seed: int,
                     result: CheckResult) -> None:
    import numpy as np
    import torch

    side = smallest_side(meta.eval(), net, entry)
    del meta
    torch.manual_seed(0)
    reference = randomise(create(entry), seed)
    shape = (net.input_shape[0], side, side)
    x = np.random.default_rng(seed).standard_normal((BATCH, *shape), dtype=np.float32)
    with torch.inference_mode():
        expected = reference(torch.from_numpy(x)).numpy()
    state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    del reference
    model = _load(entry, input_shape=shape).to_torch(weights=state).eval()
    with torch.inference_mode():
        actual = model(torch.from_numpy(x)).numpy()
    result.side, result.outputs_checked = side, True
    verdict = compare(actual, expected)
    result.max_abs_diff, result.output_scale = verdict.max_abs_diff, verdict.scale
    if not verdict.ok:
        raise _Mismatch(f"outputs at {fmt_shape(shape)}: {verdict.reason}")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    max_abs_diff: float
    scale: float
    reason: str = ""


def compare(actual: np.ndarray, expected: np.ndarray) -> Verdict:
    """tests/test_timm_base_specs.py `close`: |a - e| ≤ atol·max(1, max|e|) + rtol·|e|
    everywhere, and the same argmax per sample."""
    import numpy as np

    if actual.shape != expected.shape:
        return Verdict(False, float("inf"), 0.0,
                       f"shape {actual.shape}, the reference's {expected.shape}")
    if not np.isfinite(expected).all():
        return Verdict(False, float("inf"), 0.0, "the reference's output is not finite")
    scale = max(1.0, float(np.abs(expected).max()))
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    worst = float(diff.max()) if diff.size else 0.0
    if not np.isfinite(actual).all():
        return Verdict(False, float("inf"), scale, "ours is not finite")
    if not (diff <= ATOL * scale + RTOL * np.abs(expected)).all():
        return Verdict(False, worst, scale,
                       f"max |difference| {worst:.3g} (outputs up to {scale:.3g})")
    if expected.ndim == 2 and (actual.argmax(1) != expected.argmax(1)).any():
        return Verdict(False, worst, scale, "the argmax differs")
    return Verdict(True, worst, scale)
