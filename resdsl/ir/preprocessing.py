"""How a network's input is prepared, from the network's own parameters: timm's
`pretrained_cfg` fields `mean`, `std`, `crop_pct` and `interpolation`.

A spec states them as network parameters of those names,

    network vit_like(classes = 1000, mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5],
                     crop_pct = 0.9, interpolation = "bicubic") { ... }

and `-D crop_pct=1.0` overrides them as any parameter. A network without them takes timm's
ImageNet defaults (ir/protocol.py). They describe the data, not the graph: no op reads them;
the timm protocol (`pretrained_cfg`) and the hub entry point report them.
"""

from __future__ import annotations

from collections.abc import Mapping

from resdsl.diagnostics import fail
from resdsl.ir.ops.base import Value, fmt_value
from resdsl.syntax import ast

FIELDS = ("mean", "std", "crop_pct", "interpolation")
# timm's resize interpolations (timm/data/transforms.py `str_to_interp_mode`'s names).
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "box", "hamming", "lanczos", "random")

Preprocessing = dict[str, float | str | tuple[float, ...]]


def _number(v: Value) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def preprocessing(net: ast.Definition, params: Mapping[str, Value],
                  channels: int) -> Preprocessing:
    """The fields the network's parameters give, checked (E0508 for a value timm's data
    pipeline cannot use: a mean or std that is not 1 or `channels` numbers, a std of 0, a
    crop_pct outside (0, 1], an interpolation timm does not name)."""
    found: Preprocessing = {}
    for name in FIELDS:
        if name not in params:
            continue
        value = params[name]
        problem = _problem(name, value, channels)
        if problem is not None:
            span = next(p.span for p in net.params if p.name == name)
            raise fail("E0508", f"network parameter `{name}` = {fmt_value(value)}: {problem}",
                       span, f"timm's pretrained_cfg field `{name}`",
                       help=_HELP[name])
        found[name] = _plain(value)
    return found


def _plain(value: Value) -> float | str | tuple[float, ...]:
    """A checked field as pretrained_cfg holds it: floats, a tuple of floats, a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return tuple(float(v) for v in value if isinstance(v, (int, float)))
    assert isinstance(value, (int, float))
    return float(value)


def _problem(name: str, value: Value, channels: int) -> str | None:
    if name in ("mean", "std"):
        if not (isinstance(value, tuple) and len(value) in (1, channels)
                and all(_number(v) for v in value)):
            return f"expected a list of 1 or {channels} numbers (one per input channel)"
        if name == "std" and any(v == 0 for v in value):  # type: ignore[union-attr]
            return "a standard deviation of 0 divides by zero"
        return None
    if name == "crop_pct":
        if not (_number(value) and 0 < value <= 1):  # type: ignore[operator]
            return "expected a number in (0, 1]"
        return None
    if value not in INTERPOLATIONS:
        return f"expected one of {', '.join(repr(i) for i in INTERPOLATIONS)}"
    return None


_HELP = {
    "mean": "the per-channel mean the inputs are normalised with, e.g. [0.485, 0.456, 0.406]",
    "std": "the per-channel standard deviation, e.g. [0.229, 0.224, 0.225]",
    "crop_pct": "the center crop's share of the resized image, e.g. 0.875",
    "interpolation": 'the resize filter, e.g. "bilinear" or "bicubic"',
}
