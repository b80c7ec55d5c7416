"""Build small networks from inline spec text."""

from __future__ import annotations

from pathlib import Path

from resdsl.ir.graph import Graph, Node
from resdsl.pipeline import Options, Result, build


def build_text(tmp_path: Path, text: str, options: Options | None = None,
               name: str = "spec.res") -> Result:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return build(str(path), options)


def graph_of(tmp_path: Path, text: str, options: Options | None = None) -> Graph:
    return build_text(tmp_path, text, options).graph


def by_path(graph: Graph) -> dict[str, Node]:
    return {n.path: n for n in graph.nodes()}
