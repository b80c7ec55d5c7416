"""The zoo's rows for timm resnest (see resdsl/zoo/entry.py): specs/resnest50d_4s2x40d.res with
the builder arguments of timm/models/resnest.py (layers, stem_width, base_width, cardinality,
block_args' radix and avd_first; every model has the deep stem, avg_down and avd)."""

from __future__ import annotations

from typing import Any

from resdsl.zoo.entry import ZooEntry, timm_entries

# ResNeSt-50d's split attention (radix 2, one group of 64, the pool after it) at any depth.
_2S1X64 = {"radix": 2, "cardinality": 1, "base_width": 64, "avd_first": False}


def _2s1x64(layers: list[int], stem_width: int = 32) -> dict[str, Any]:
    return {**_2S1X64, "layers": layers, "stem_width": stem_width}


ENTRIES: tuple[ZooEntry, ...] = timm_entries("resnest", "resnest50d_4s2x40d.res", {
    "resnest14d": _2s1x64([1, 1, 1, 1]),
    "resnest26d": _2s1x64([2, 2, 2, 2]),
    "resnest50d": _2s1x64([3, 4, 6, 3]),
    "resnest50d_1s4x24d": {"radix": 1, "cardinality": 4, "base_width": 24},
    "resnest50d_4s2x40d": {},
    "resnest101e": _2s1x64([3, 4, 23, 3], 64),
    "resnest200e": _2s1x64([3, 24, 36, 3], 64),
    "resnest269e": _2s1x64([3, 30, 48, 8], 64),
})
