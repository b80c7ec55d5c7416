"""The zoo's family tables, in the order the zoo lists them: timm's residual core by module
(`timm.list_models(module=M)`), then torchvision's residual classifiers."""

from __future__ import annotations

from resdsl.zoo.entry import ZooEntry
from resdsl.zoo.families import (
    timm_densenet,
    timm_dpn,
    timm_regnet,
    timm_res2net,
    timm_resnest,
    timm_resnet,
    timm_resnetv2,
    timm_sknet,
    torchvision,
    torchvision_regnet,
)

FAMILIES: tuple[tuple[str, tuple[ZooEntry, ...]], ...] = (
    ("resnet", timm_resnet.ENTRIES),
    ("resnetv2", timm_resnetv2.ENTRIES),
    ("res2net", timm_res2net.ENTRIES),
    ("resnest", timm_resnest.ENTRIES),
    ("sknet", timm_sknet.ENTRIES),
    ("dpn", timm_dpn.ENTRIES),
    ("densenet", timm_densenet.ENTRIES),
    ("regnet", timm_regnet.ENTRIES),
    ("torchvision", torchvision.ENTRIES + torchvision_regnet.ENTRIES),
)
