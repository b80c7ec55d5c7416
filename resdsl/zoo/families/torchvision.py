"""The zoo's rows for torchvision's residual classifiers (see resdsl/zoo/entry.py): its
resnets, resnexts and wide resnets (`torchvision.models.get_model(name)`), written by the
specs that ship with resdsl. ResNeXt-101 and Wide ResNet-101-2 are resnext50_32x4d.res with
its depth, cardinality and width (`d = planes * width // 64`: one group of 128 per 64 planes
is the wide bottleneck, with torchvision's keys); the regnets are in torchvision_regnet.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resdsl.zoo.entry import ZooEntry

_RESNET101 = [3, 4, 23, 3]


def _row(name: str, spec: str, params: Mapping[str, Any] | None = None) -> ZooEntry:
    return ZooEntry(name, "torchvision", "torchvision", spec, dict(params or {}))


ENTRIES: tuple[ZooEntry, ...] = (
    _row("resnet18", "resnet18.res"),
    _row("resnet34", "resnet34.res"),
    _row("resnet50", "resnet50.res"),
    _row("resnet101", "resnet101.res"),
    _row("resnet152", "resnet152.res"),
    _row("resnext50_32x4d", "resnext50_32x4d.res"),
    _row("resnext101_32x8d", "resnext50_32x4d.res", {"layers": _RESNET101, "width": 8}),
    _row("resnext101_64x4d", "resnext50_32x4d.res", {"layers": _RESNET101, "groups": 64}),
    _row("wide_resnet50_2", "wide_resnet50_2.res"),
    _row("wide_resnet101_2", "resnext50_32x4d.res",
         {"layers": _RESNET101, "groups": 1, "width": 128}),
)
