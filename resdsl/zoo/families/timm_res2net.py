"""The zoo's rows for timm res2net (see resdsl/zoo/entry.py). Filled by the family's specs."""

from __future__ import annotations

from resdsl.zoo.entry import ZooEntry

ENTRIES: tuple[ZooEntry, ...] = ()
