"""The zoo's rows for timm sknet (see resdsl/zoo/entry.py): specs/skresnext50_32x4d.res with
the builder arguments of timm/models/sknet.py (block, layers, cardinality, base_width,
sk_kwargs' rd_ratio, rd_divisor and split_input; skresnet50d: stem_type 'deep', stem_width 32,
avg_down). SelectiveKernel's defaults where sk_kwargs leaves them: rd_ratio 1/16, divisor 8."""

from __future__ import annotations

from resdsl.zoo.entry import ZooEntry, timm_entries

_BASIC = {"basic": True, "rd_ratio": 1 / 8, "rd_divisor": 16, "split_input": True}
_SK50 = {"cardinality": 1, "base_width": 64, "rd_ratio": 1 / 16, "rd_divisor": 8,
         "split_input": True}

ENTRIES: tuple[ZooEntry, ...] = timm_entries("sknet", "skresnext50_32x4d.res", {
    "skresnet18": {**_BASIC, "layers": [2, 2, 2, 2]},
    "skresnet34": {**_BASIC, "layers": [3, 4, 6, 3]},
    "skresnet50": _SK50,
    "skresnet50d": {**_SK50, "stem_type": "deep", "stem_width": 32, "avg_down": True},
    "skresnext50_32x4d": {},
})
