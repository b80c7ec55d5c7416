"""Where the files that ship with resdsl live: the grammar and the built-in block library.

In a wheel they sit inside the package (see `[tool.hatch.build]` in pyproject.toml); in a
source checkout they sit at the repository root, where they are edited.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(packaged: str, in_repo: str) -> Path:
    inside = _PACKAGE / packaged
    return inside if inside.exists() else _PACKAGE.parent / in_repo


def grammar_path() -> Path:
    return _find("grammars/resdsl.lark", "grammars/resdsl.lark")


def library_root() -> Path:
    """The built-in block library: `use "blocks/resnet.res"` falls back to it."""
    return _find("library", "specs")
