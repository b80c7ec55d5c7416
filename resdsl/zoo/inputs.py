"""The input each zoo model is published at, where it is not its spec's (224×224).

timm publishes some models at another size (`pretrained_cfg["input_size"]`: resnest200e at
320×320, regnety_2560 at 384×384, resnet10t at 176×176); a zoo name builds its spec at that
size, so `resdsl info timm:resnest200e` reports the MACs timm's model card gives and
`compile` traces the published shape. tests/test_zoo.py checks this table against timm's
`pretrained_cfg` for every row, so it cannot drift from the reference.
"""

from __future__ import annotations

_SIDES: dict[int, tuple[str, ...]] = {
    160: ("resnetrs50", "test_resnet"),
    176: ("resnet10t", "resnet14t"),
    192: ("resnetrs101",),
    256: ("ecaresnet26t", "ecaresnet50t", "ecaresnet200d", "resnet26t", "resnet101d",
          "resnet152d", "resnet200d", "resnetrs152", "resnetrs200", "resnetrs270",
          "seresnet152d", "seresnet200d", "seresnet269d", "resnest101e", "regnetz_040",
          "regnetz_040_h"),
    288: ("resnetrs350", "seresnextaa101d_32x8d"),
    320: ("ecaresnet269d", "resnetrs420", "resnest200e"),
    384: ("seresnextaa201d_32x8d", "regnety_640", "regnety_1280", "regnety_2560"),
    416: ("resnest269e",),
    448: ("resnetv2_50x3_bit", "resnetv2_101x1_bit", "resnetv2_101x3_bit"),
    480: ("resnetv2_152x4_bit",),
}

PUBLISHED_INPUTS: dict[str, tuple[int, int, int]] = {
    f"timm:{name}": (3, side, side) for side, names in _SIDES.items() for name in names
}


def published_input(qualified: str) -> tuple[int, int, int] | None:
    """The input `qualified` (`timm:resnest200e`) is published at, or None for its spec's."""
    return PUBLISHED_INPUTS.get(qualified)
