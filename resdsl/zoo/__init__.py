"""The zoo: published residual networks by name (`timm:resnet50d`, `tv:resnet50`).

Each family's rows live in `resdsl/zoo/families/<family>.py` as a tuple `ENTRIES` of
`ZooEntry`; `entries()` gathers them in a fixed order. `lookup(name)` finds one row, and
`resolve(spec, defines)` is what every spec path goes through (`resdsl.pipeline.build`): a
zoo name becomes its spec's path, and its row's parameters come before the caller's.

Nothing here imports torch or timm: the table is data; `resdsl.zoo.reference` builds the
published models to check the rows against them.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Mapping

from resdsl.arguments import ArgumentError, parameter_text
from resdsl.zoo.entry import ZooEntry

__all__ = ["ZooEntry", "by_family", "entries", "is_zoo_name", "lookup", "resolve"]

# The libraries a zoo name starts with, and the one each stands for (`torchvision:` is the
# long spelling of `tv:`).
SOURCES = {"timm": "timm", "tv": "torchvision", "torchvision": "torchvision"}
_NAME = re.compile(r"^(timm|tv|torchvision):([^/\\]*)$")
# The code of an unknown zoo name (resdsl/diagnostics/codes.py).
UNKNOWN_NAME = "E0005"


def entries() -> tuple[ZooEntry, ...]:
    """Every row, family by family in `resdsl.zoo.families.FAMILIES`'s order."""
    from resdsl.zoo.families import FAMILIES

    return tuple(entry for _, rows in FAMILIES for entry in rows)


def by_family() -> tuple[tuple[str, tuple[ZooEntry, ...]], ...]:
    """The family tables: (family, rows), in the zoo's order. (Not `families`: importing the
    subpackage `resdsl.zoo.families` rebinds that attribute of this package to the module.)"""
    from resdsl.zoo.families import FAMILIES

    return FAMILIES


def is_zoo_name(spec: str) -> bool:
    """Whether `spec` is a zoo name (`timm:NAME`, `tv:NAME`, `torchvision:NAME`) rather than
    a file path. A file whose name starts so is reached as `./timm:...`."""
    return _NAME.match(spec) is not None


def _index() -> dict[str, ZooEntry]:
    return {entry.qualified: entry for entry in entries()}


def lookup(name: str) -> ZooEntry:
    """The row of `name` (`timm:resnet50d`, `tv:resnet50`, `torchvision:resnet50`); an
    `ArgumentError` with code E0005 and a did-you-mean for a name the zoo lacks."""
    match = _NAME.match(name)
    index = _index()
    if match is not None:
        source, model = SOURCES[match.group(1)], match.group(2)
        qualified = f"{'tv' if source == 'torchvision' else source}:{model}"
        if qualified in index:
            return index[qualified]
    raise ArgumentError(f"the zoo has no model `{name}`", "path", name, code=UNKNOWN_NAME,
                        help=_suggestion(name, index))


def _suggestion(name: str, index: Mapping[str, ZooEntry]) -> str:
    """`did you mean `timm:resnet50d`?`, from the qualified names and, for a name of the
    other library (`timm:resnet50` when only `tv:resnet50` is written), its row there."""
    model = name.partition(":")[2]
    same_model = [q for q, entry in index.items() if entry.name == model]
    close = same_model or difflib.get_close_matches(name, list(index), n=1, cutoff=0.8)
    listing = "`resdsl zoo` lists the names"
    if not close:
        return listing
    return f"did you mean `{close[0]}`? {listing}"


def resolve(spec: str, defines: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """`spec` and the `-D` overrides (spec text) to build: for a zoo name, its row's spec
    path and its parameters, overridden by `defines`; anything else unchanged."""
    if not is_zoo_name(spec):
        return spec, dict(defines)
    entry = lookup(spec)
    row = {name: parameter_text(name, value) for name, value in entry.params.items()}
    return str(entry.spec_path()), {**row, **defines}


def defines_text(entry: ZooEntry) -> str:
    """The row's parameters as the command line takes them, one shell word each:
    `-D layers=[3,4,23,3] -D width=8` (a string value is quoted for the shell)."""
    words = []
    for name, value in entry.params.items():
        text = _compact(value) if isinstance(value, (list, tuple)) else parameter_text(name, value)
        words.append(f"-D {shlex.quote(f'{name}={text}')}")
    return " ".join(words)


def _compact(value: object) -> str:
    """A list without spaces: `[3,4,23,3]`, `[[1,2],[3]]`."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    return parameter_text("value", value)
