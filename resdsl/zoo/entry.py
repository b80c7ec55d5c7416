"""One row of the zoo: a published model's name, the spec that writes it and its parameters.

The zoo maps the names of timm's residual core (`timm.list_models(module=M)`) and
torchvision's residual classifiers to specs that ship with resdsl (under `specs/`, the
built-in library). Nothing here imports torch or timm: the table is data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resdsl._resources import library_root


@dataclass(frozen=True)
class ZooEntry:
    """`name` as its library spells it (`resnet50d`); `source` is `"timm"` or
    `"torchvision"`; `spec` is a path under `specs/` (`"resnet50d.res"`); `params` are the
    network parameters that make the spec this model, as `resdsl.load`'s keyword arguments
    (the `-D` values, as Python values); `family` is timm's module (`"resnet"`, `"regnet"`)
    or `"torchvision"`."""

    name: str
    source: str
    family: str
    spec: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        """The name with its library, as the CLI and `resdsl.load` take it: `timm:resnet50d`,
        `tv:resnet50`."""
        return f"{'tv' if self.source == 'torchvision' else self.source}:{self.name}"

    def spec_path(self) -> Path:
        return library_root() / self.spec


def timm_entries(family: str, spec: str, names: Mapping[str, Mapping[str, Any]]
                 ) -> tuple[ZooEntry, ...]:
    """The rows of one timm family written by one spec: `{name: params}`."""
    return tuple(ZooEntry(name, "timm", family, spec, dict(params))
                 for name, params in names.items())
