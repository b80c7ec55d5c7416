"""The zoo's rows for timm regnet (see resdsl/zoo/entry.py): the 36 models of timm 1.0.31's
timm/models/regnet.py, all written by specs/regnety_032.res. Each row's parameters are its
`model_cfgs` entry (timm's RegNetCfg) in the spec's names: `act` is `act_layer`, `gn_size` the
group size of regnety_040_sgn's GroupNormAct, `downsample` "" is timm's None."""

from __future__ import annotations

from typing import Any

from resdsl.zoo.entry import ZooEntry, timm_entries

SPEC = "regnety_032.res"


def _cfg(depth: int, w0: int, wa: float, wm: float, group_size: int, **more: Any
         ) -> dict[str, Any]:
    """A RegNetCfg's fields: the four width rules' numbers, then what differs from X."""
    return {"depth": depth, "w0": w0, "wa": wa, "wm": wm, "group_size": group_size,
            "se_ratio": 0.0, **more}


def _y(depth: int, w0: int, wa: float, wm: float, group_size: int, **more: Any
       ) -> dict[str, Any]:
    """RegNet-Y: X with SE (se_ratio 0.25)."""
    return _cfg(depth, w0, wa, wm, group_size, **{"se_ratio": 0.25, **more})


_TV = {"group_min_ratio": 0.9}  # torchvision's width rounding (the _tv weights)
_Z = {"bottle_ratio": 4.0, "downsample": "", "linear_out": True, "act": "silu"}

ENTRIES: tuple[ZooEntry, ...] = timm_entries("regnet", SPEC, {
    # RegNet-X (timm's model_cfgs, in its order)
    "regnetx_002": _cfg(13, 24, 36.44, 2.49, 8),
    "regnetx_004": _cfg(22, 24, 24.48, 2.54, 16),
    "regnetx_004_tv": _cfg(22, 24, 24.48, 2.54, 16, **_TV),
    "regnetx_006": _cfg(16, 48, 36.97, 2.24, 24),
    "regnetx_008": _cfg(16, 56, 35.73, 2.28, 16),
    "regnetx_016": _cfg(18, 80, 34.01, 2.25, 24),
    "regnetx_032": _cfg(25, 88, 26.31, 2.25, 48),
    "regnetx_040": _cfg(23, 96, 38.65, 2.43, 40),
    "regnetx_064": _cfg(17, 184, 60.83, 2.07, 56),
    "regnetx_080": _cfg(23, 80, 49.56, 2.88, 120),
    "regnetx_120": _cfg(19, 168, 73.36, 2.37, 112),
    "regnetx_160": _cfg(22, 216, 55.59, 2.1, 128),
    "regnetx_320": _cfg(23, 320, 69.86, 2.0, 168),
    # RegNet-Y
    "regnety_002": _y(13, 24, 36.44, 2.49, 8),
    "regnety_004": _y(16, 48, 27.89, 2.09, 8),
    "regnety_006": _y(15, 48, 32.54, 2.32, 16),
    "regnety_008": _y(14, 56, 38.84, 2.4, 16),
    "regnety_008_tv": _y(14, 56, 38.84, 2.4, 16, **_TV),
    "regnety_016": _y(27, 48, 20.71, 2.65, 24),
    "regnety_032": _y(21, 80, 42.63, 2.66, 24),
    "regnety_040": _y(22, 96, 31.41, 2.24, 64),
    "regnety_064": _y(25, 112, 33.22, 2.27, 72),
    "regnety_080": _y(17, 192, 76.82, 2.19, 56),
    "regnety_080_tv": _y(17, 192, 76.82, 2.19, 56, **_TV),
    "regnety_120": _y(19, 168, 73.36, 2.37, 112),
    "regnety_160": _y(18, 200, 106.23, 2.48, 112),
    "regnety_320": _y(20, 232, 115.89, 2.53, 232),
    "regnety_640": _y(20, 352, 147.48, 2.4, 328),
    "regnety_1280": _y(27, 456, 160.83, 2.52, 264),
    "regnety_2560": _y(27, 640, 230.83, 2.53, 373),
    # Experimental: GroupNormAct(group_size=16) for every norm, SiLU
    "regnety_040_sgn": _y(22, 96, 31.41, 2.24, 64, act="silu", gn_size=16),
    # RegNet-V: the pre-activation Y
    "regnetv_040": _y(22, 96, 31.41, 2.24, 64, preact=True, act="silu"),
    "regnetv_064": _y(25, 112, 33.22, 2.27, 72, preact=True, act="silu", downsample="avg"),
    # RegNet-Z: inverted bottlenecks (br 4), residual only where the shape holds, no final act
    "regnetz_005": _y(21, 16, 10.7, 2.51, 4, num_features=1024, **_Z),
    "regnetz_040": _y(28, 48, 14.5, 2.226, 8, **_Z),
    "regnetz_040_h": _y(28, 48, 14.5, 2.226, 8, num_features=1536, **_Z),
})
