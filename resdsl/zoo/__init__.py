"""The zoo: published residual networks by name (`timm:resnet50d`, `tv:resnet50`).

Each family's rows live in `resdsl/zoo/families/<family>.py` as a tuple `ENTRIES` of
`ZooEntry`; `entries()` gathers them in a fixed order.
"""

from __future__ import annotations

from resdsl.zoo.entry import ZooEntry

__all__ = ["ZooEntry"]
