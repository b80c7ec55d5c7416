"""The zoo's rows for torchvision's 15 RegNets (torchvision 0.29.1, models/regnet.py), all
written by specs/regnet_y_3_2gf.res: each row's parameters are the arguments its builder
passes to BlockParams.from_init_params (see resdsl/zoo/entry.py)."""

from __future__ import annotations

from typing import Any

from resdsl.zoo.entry import ZooEntry

SPEC = "regnet_y_3_2gf.res"


def _params(depth: int, w_0: int, w_a: float, w_m: float, group_width: int,
            se_ratio: float) -> dict[str, Any]:
    return {"depth": depth, "w_0": w_0, "w_a": w_a, "w_m": w_m, "group_width": group_width,
            "se_ratio": se_ratio}


_ROWS: dict[str, dict[str, Any]] = {
    # RegNet-Y: SE of a quarter of the block's input width
    "regnet_y_400mf": _params(16, 48, 27.89, 2.09, 8, 0.25),
    "regnet_y_800mf": _params(14, 56, 38.84, 2.4, 16, 0.25),
    "regnet_y_1_6gf": _params(27, 48, 20.71, 2.65, 24, 0.25),
    "regnet_y_3_2gf": _params(21, 80, 42.63, 2.66, 24, 0.25),
    "regnet_y_8gf": _params(17, 192, 76.82, 2.19, 56, 0.25),
    "regnet_y_16gf": _params(18, 200, 106.23, 2.48, 112, 0.25),
    "regnet_y_32gf": _params(20, 232, 115.89, 2.53, 232, 0.25),
    "regnet_y_128gf": _params(27, 456, 160.83, 2.52, 264, 0.25),
    # RegNet-X: no SE
    "regnet_x_400mf": _params(22, 24, 24.48, 2.54, 16, 0.0),
    "regnet_x_800mf": _params(16, 56, 35.73, 2.28, 16, 0.0),
    "regnet_x_1_6gf": _params(18, 80, 34.01, 2.25, 24, 0.0),
    "regnet_x_3_2gf": _params(25, 88, 26.31, 2.25, 48, 0.0),
    "regnet_x_8gf": _params(23, 80, 49.56, 2.88, 120, 0.0),
    "regnet_x_16gf": _params(22, 216, 55.59, 2.1, 128, 0.0),
    "regnet_x_32gf": _params(23, 320, 69.86, 2.0, 168, 0.0),
}

ENTRIES: tuple[ZooEntry, ...] = tuple(
    ZooEntry(name, "torchvision", "torchvision", SPEC, params) for name, params in _ROWS.items())
