"""The zoo's rows for timm resnetv2 (see resdsl/zoo/entry.py): every model of
`timm.list_models(module="resnetv2")` (timm 1.0.31) is specs/resnetv2_50.res with the
parameters of timm's registration (timm/models/resnetv2.py)."""

from __future__ import annotations

from typing import Any

from resdsl.zoo.entry import ZooEntry, timm_entries

_18 = {"layers": [2, 2, 2, 2], "basic": True}
_34 = {"layers": [3, 4, 6, 3], "basic": True}
_101 = {"layers": [3, 4, 23, 3]}
_152 = {"layers": [3, 8, 36, 3]}
# BiT (Kolesnikov et al. 2020): StdConv2d (eps 1e-8), GroupNormAct (32 groups), the "fixed"
# stem (zero-padded max pool), and a width factor (_create_resnetv2_bit).
_BIT = {"stem_type": "fixed", "norm": "gn", "ws": 1e-8}
# ResNet-D: the deep stem and average-pooled projections (stem_type='deep', avg_down=True).
_D = {"stem_type": "deep", "avg_down": True}

_NAMES: dict[str, dict[str, Any]] = {
    "resnetv2_18": _18,
    "resnetv2_18d": {**_18, **_D},
    "resnetv2_34": _34,
    "resnetv2_34d": {**_34, **_D},
    "resnetv2_50": {},
    "resnetv2_50d": _D,
    "resnetv2_50d_evos": {**_D, "norm": "evos"},
    "resnetv2_50d_frn": {**_D, "norm": "frn"},
    "resnetv2_50d_gn": {**_D, "norm": "gn"},
    "resnetv2_50t": {"stem_type": "tiered", "avg_down": True},
    "resnetv2_101": _101,
    "resnetv2_101d": {**_101, **_D},
    "resnetv2_152": _152,
    "resnetv2_152d": {**_152, **_D},
    "resnetv2_50x1_bit": {**_BIT, "width": 1},
    "resnetv2_50x3_bit": {**_BIT, "width": 3},
    "resnetv2_101x1_bit": {**_101, **_BIT, "width": 1},
    "resnetv2_101x3_bit": {**_101, **_BIT, "width": 3},
    "resnetv2_152x2_bit": {**_152, **_BIT, "width": 2},
    "resnetv2_152x4_bit": {**_152, **_BIT, "width": 4},
}

ENTRIES: tuple[ZooEntry, ...] = timm_entries("resnetv2", "resnetv2_50.res", _NAMES)
