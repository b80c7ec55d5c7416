"""The zoo's rows for timm res2net (see resdsl/zoo/entry.py): specs/res2net50_26w_4s.res with
the builder arguments of timm/models/res2net.py (layers, base_width, block_args' scale,
cardinality; res2net50d/101d: stem_type 'deep', stem_width 32, avg_down)."""

from __future__ import annotations

from resdsl.zoo.entry import ZooEntry, timm_entries

_D = {"stem_type": "deep", "stem_width": 32, "avg_down": True}
_101 = {"layers": [3, 4, 23, 3]}

ENTRIES: tuple[ZooEntry, ...] = timm_entries("res2net", "res2net50_26w_4s.res", {
    "res2net50_14w_8s": {"base_width": 14, "scale": 8},
    "res2net50_26w_4s": {},
    "res2net50_26w_6s": {"scale": 6},
    "res2net50_26w_8s": {"scale": 8},
    "res2net50_48w_2s": {"base_width": 48, "scale": 2},
    "res2net50d": _D,
    "res2net101_26w_4s": _101,
    "res2net101d": {**_101, **_D},
    "res2next50": {"base_width": 4, "cardinality": 8},
})
