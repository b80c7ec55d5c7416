"""The zoo's rows for timm resnet (see resdsl/zoo/entry.py): the 81 models of
`timm.list_models(module="resnet")` (timm 1.0.31), every one specs/resnet50d.res with the
`-D` values of its constructor in timm/models/resnet.py (blocks/timm_resnet.res is timm's
`ResNet`). Each row states its depth, stem and shortcut; the other values are the spec's
defaults (Bottleneck blocks, planes 64..512, BatchNorm, the max-pool stem, no attention).
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from resdsl.zoo.entry import ZooEntry, timm_entries

SPEC = "resnet50d.res"

# Blocks per stage by depth (timm's `layers`).
L10 = [1, 1, 1, 1]
L18 = [2, 2, 2, 2]
L50 = [3, 4, 6, 3]
L101 = [3, 4, 23, 3]
L152 = [3, 8, 36, 3]
L200 = [3, 24, 36, 3]
L269 = [3, 30, 48, 8]

# The stems and shortcuts of timm's ResNet docstring: "" the 7x7 stem and 1x1 projections
# (torchvision's), "c" the deep stem of 32, 32, 64, "d" it with the average-pooled projection,
# "s" the deep stem of 64, 64, 128, "t" the tiered stem of 24, 32, 64 with the pooled projection.
PLAIN: dict[str, Any] = {"stem_type": "", "stem_width": 64, "avg_down": False}
C: dict[str, Any] = {"stem_type": "deep", "stem_width": 32, "avg_down": False}
D: dict[str, Any] = {"stem_type": "deep", "stem_width": 32, "avg_down": True}
S: dict[str, Any] = {"stem_type": "deep", "stem_width": 64, "avg_down": False}
T: dict[str, Any] = {"stem_type": "deep_tiered", "stem_width": 32, "avg_down": True}

BASIC = ["basic", "basic", "basic", "basic"]
SE: dict[str, Any] = {"attn": "se"}
ECA: dict[str, Any] = {"attn": "eca"}
# ResNet-RS (Bello et al. 2021): the "d" variant, the stem's max pool replaced by a stride-2
# conv, SE of a quarter of the channels.
RS: dict[str, Any] = {**D, "stem_pool": "conv", "attn": "se", "rd_ratio": 0.25}

# The pruned ECA-ResNets' [conv1, conv2, conv3] widths, block by block: timm 1.0.31's
# timm/models/_pruned/ecaresnet{50d,101d}_pruned.txt (Aflalo et al. 2020, "Knapsack Pruning
# with Inner Distillation"). Their stems and ECA kernels are the unpruned network's.
PRUNED_50D = [
    [47, 18, 19], [52, 22, 19], [64, 35, 19],
    [85, 37, 171], [107, 80, 171], [120, 85, 171], [125, 87, 171],
    [198, 126, 818], [255, 232, 818], [256, 233, 818], [253, 235, 818], [256, 225, 818],
    [256, 239, 818],
    [492, 237, 2022], [512, 500, 2022], [512, 490, 2022],
]
PRUNED_101D = [
    [45, 25, 26], [53, 20, 26], [60, 27, 26],
    [81, 24, 142], [93, 49, 142], [102, 54, 142], [122, 78, 142],
    [101, 25, 278], [239, 160, 278], [234, 156, 278], [250, 176, 278], [253, 191, 278],
    [251, 175, 278], [230, 128, 278], [244, 154, 278], [244, 159, 278], [238, 97, 278],
    [244, 149, 278], [253, 181, 278], [245, 119, 278], [255, 216, 278], [256, 201, 278],
    [253, 149, 278], [254, 141, 278], [256, 190, 278], [256, 217, 278], [255, 156, 278],
    [256, 155, 278], [256, 232, 278], [256, 214, 278],
    [499, 289, 2042], [512, 512, 2042], [512, 502, 2042],
]


def _x(cardinality: int, base_width: int) -> dict[str, Any]:
    """ResNeXt's grouped 3x3: `cardinality` groups of `base_width` channels at planes 64."""
    return {"cardinality": cardinality, "base_width": base_width}


ROWS: dict[str, dict[str, Any]] = {
    # ResNet: BasicBlock for 10t, 18, 34; Bottleneck otherwise
    "resnet10t": {"layers": L10, **T, "block": BASIC},
    "resnet14t": {"layers": L10, **T},
    "resnet18": {"layers": L18, **PLAIN, "block": BASIC},
    "resnet18d": {"layers": L18, **D, "block": BASIC},
    "resnet26": {"layers": L18, **PLAIN},
    "resnet26d": {"layers": L18, **D},
    "resnet26t": {"layers": L18, **T},
    "resnet34": {"layers": L50, **PLAIN, "block": BASIC},
    "resnet34d": {"layers": L50, **D, "block": BASIC},
    "resnet50": {"layers": L50, **PLAIN},
    "resnet50c": {"layers": L50, **C},
    "resnet50d": {"layers": L50, **D},
    "resnet50s": {"layers": L50, **S},
    "resnet50t": {"layers": L50, **T},
    "resnet50_gn": {"layers": L50, **PLAIN, "norm": "gn"},
    "resnet101": {"layers": L101, **PLAIN},
    "resnet101c": {"layers": L101, **C},
    "resnet101d": {"layers": L101, **D},
    "resnet101s": {"layers": L101, **S},
    "resnet152": {"layers": L152, **PLAIN},
    "resnet152c": {"layers": L152, **C},
    "resnet152d": {"layers": L152, **D},
    "resnet152s": {"layers": L152, **S},
    "resnet200": {"layers": L200, **PLAIN},
    "resnet200d": {"layers": L200, **D},
    "wide_resnet50_2": {"layers": L50, **PLAIN, "base_width": 128},
    "wide_resnet101_2": {"layers": L101, **PLAIN, "base_width": 128},
    # ResNeXt
    "resnext50_32x4d": {"layers": L50, **PLAIN, **_x(32, 4)},
    "resnext50d_32x4d": {"layers": L50, **D, **_x(32, 4)},
    "resnext101_32x4d": {"layers": L101, **PLAIN, **_x(32, 4)},
    "resnext101_32x8d": {"layers": L101, **PLAIN, **_x(32, 8)},
    "resnext101_32x16d": {"layers": L101, **PLAIN, **_x(32, 16)},
    "resnext101_32x32d": {"layers": L101, **PLAIN, **_x(32, 32)},
    "resnext101_64x4d": {"layers": L101, **PLAIN, **_x(64, 4)},
    # ECA
    "ecaresnet26t": {"layers": L18, **T, **ECA},
    "ecaresnet50d": {"layers": L50, **D, **ECA},
    "ecaresnet50d_pruned": {"layers": L50, **D, **ECA, "pruned": PRUNED_50D},
    "ecaresnet50t": {"layers": L50, **T, **ECA},
    "ecaresnet101d": {"layers": L101, **D, **ECA},
    "ecaresnet101d_pruned": {"layers": L101, **D, **ECA, "pruned": PRUNED_101D},
    "ecaresnet200d": {"layers": L200, **D, **ECA},
    "ecaresnet269d": {"layers": L269, **D, **ECA},
    # timm passes stem_width=32 with the 7x7 stem, which is 64 wide whatever it says
    "ecaresnetlight": {"layers": [1, 1, 11, 3], "stem_type": "", "stem_width": 32,
                       "avg_down": True, **ECA},
    "ecaresnext26t_32x4d": {"layers": L18, **T, **_x(32, 4), **ECA},
    "ecaresnext50t_32x4d": {"layers": L50, **T, **_x(32, 4), **ECA},
    # SE
    "seresnet18": {"layers": L18, **PLAIN, "block": BASIC, **SE},
    "seresnet34": {"layers": L50, **PLAIN, "block": BASIC, **SE},
    "seresnet50": {"layers": L50, **PLAIN, **SE},
    "seresnet50t": {"layers": L50, **T, **SE},
    "seresnet101": {"layers": L101, **PLAIN, **SE},
    "seresnet152": {"layers": L152, **PLAIN, **SE},
    "seresnet152d": {"layers": L152, **D, **SE},
    "seresnet200d": {"layers": L200, **D, **SE},
    "seresnet269d": {"layers": L269, **D, **SE},
    "seresnext26d_32x4d": {"layers": L18, **D, **_x(32, 4), **SE},
    "seresnext26t_32x4d": {"layers": L18, **T, **_x(32, 4), **SE},
    "seresnext50_32x4d": {"layers": L50, **PLAIN, **_x(32, 4), **SE},
    "seresnext101_32x4d": {"layers": L101, **PLAIN, **_x(32, 4), **SE},
    "seresnext101_32x8d": {"layers": L101, **PLAIN, **_x(32, 8), **SE},
    "seresnext101d_32x8d": {"layers": L101, **D, **_x(32, 8), **SE},
    "seresnext101_64x4d": {"layers": L101, **PLAIN, **_x(64, 4), **SE},
    # SENet-154 (Hu et al. 2018) as timm's resnet.py builds it: the deep stem of 64, 64, 128,
    # the first 1x1 of each block at half width, 3x3 projection convs at stride 2
    "senet154": {"layers": L152, **S, **_x(64, 4), **SE, "reduce_first": 2, "down_kernel": 3},
    # anti-aliasing (Zhang 2019): a 2x2 average pool, or timm's BlurPool2d, takes the stride
    "resnetaa34d": {"layers": L50, **D, "block": BASIC, "aa": "avg"},
    "resnetaa50": {"layers": L50, **PLAIN, "aa": "avg"},
    "resnetaa50d": {"layers": L50, **D, "aa": "avg"},
    "resnetaa101d": {"layers": L101, **D, "aa": "avg"},
    "seresnetaa50d": {"layers": L50, **D, "aa": "avg", **SE},
    "seresnextaa101d_32x8d": {"layers": L101, **D, **_x(32, 8), "aa": "avg", **SE},
    "seresnextaa201d_32x8d": {"layers": [3, 24, 36, 4], "stem_type": "deep", "stem_width": 64,
                              "avg_down": True, **_x(32, 8), "aa": "avg", **SE},
    "resnetblur18": {"layers": L18, **PLAIN, "block": BASIC, "aa": "blur"},
    "resnetblur50": {"layers": L50, **PLAIN, "aa": "blur"},
    "resnetblur50d": {"layers": L50, **D, "aa": "blur"},
    "resnetblur101d": {"layers": L101, **D, "aa": "blur"},
    # ResNet-RS
    "resnetrs50": {"layers": L50, **RS},
    "resnetrs101": {"layers": L101, **RS},
    "resnetrs152": {"layers": L152, **RS},
    "resnetrs200": {"layers": L200, **RS},
    "resnetrs270": {"layers": [4, 29, 53, 4], **RS},
    "resnetrs350": {"layers": [4, 36, 72, 4], **RS},
    "resnetrs420": {"layers": [4, 44, 87, 4], **RS},
    # timm's smallest test model: a Bottleneck stage between BasicBlock ones, narrow planes
    "test_resnet": {"layers": L10, "stem_type": "deep", "stem_width": 16, "avg_down": True,
                    "block": ["basic", "basic", "bottleneck", "basic"],
                    "channels": [32, 48, 48, 96]},
}

# Each row its own copy of the shared lists (the depths, BASIC), so that no row can change another.
ENTRIES: tuple[ZooEntry, ...] = timm_entries(
    "resnet", SPEC, {name: deepcopy(params) for name, params in sorted(ROWS.items())})
