"""Draw the gallery: every spec in specs/ at blocks depth, a few at stages and layers depth,
as PNGs in docs/gallery/, and write docs/gallery.md around them.

    .venv/bin/python scripts/gallery.py

It renders with graphviz-pure (`pip install -e '.[draw]'`), which writes the same bytes on
every platform, so a re-run changes an image only when the diagram changed. The dpn92
diagram is also written as SVG (docs/gallery/dpn92.svg) for the README.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import resdsl  # noqa: E402
from resdsl.backends.dot_draw import draw_graph  # noqa: E402
from resdsl.backends.dot_source import Depth, Settings  # noqa: E402

GALLERY = ROOT / "docs" / "gallery"
PAGE = ROOT / "docs" / "gallery.md"
# The README's order; specs added later come after, by name.
ORDER = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
    "wide_resnet50_2", "densenet121", "dpn92", "seresnet50", "resnetv2_50", "resnet20",
    "resnet56", "resnet110", "preact_resnet164", "preact_resnet1001", "wrn28_10",
    "highway_cifar19", "rezero_resnet56",
]
# (spec, depth, options, why): the other depths, and the flagship left to right.
EXTRAS: list[tuple[str, Depth, dict[str, bool], str]] = [
    ("resnet50", "stages", {}, "one box per stage"),
    ("densenet121", "stages", {}, "one box per dense block and transition"),
    ("dpn92", "stages", {}, "the four dual-path stages"),
    ("resnet20", "layers", {}, "every op, repeated blocks still folded; the parameter-free "
     "zero-pad shortcut (option A)"),
    ("highway_cifar19", "layers", {}, "the gate's derived transform conv, σ, T and 1−T"),
]


def _specs() -> list[str]:
    names = sorted(p.stem for p in (ROOT / "specs").glob("*.res"))
    return [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]


def _draw(name: str, depth: Depth, lr: bool, fmt: str = "png") -> str:
    net = resdsl.load(str(ROOT / "specs" / f"{name}.res"))
    suffix = "" if depth == "blocks" and not lr else f"_{depth}" + ("_lr" if lr else "")
    file = f"{name}{suffix}.{fmt}"
    drawing = draw_graph(net.graph, Settings(depth=depth, lr=lr), fmt, renderer="graphviz-pure")
    (GALLERY / file).write_bytes(drawing.data)
    print(f"docs/gallery/{file}: {len(drawing.data):,} bytes ({drawing.renderer})")
    return file


def _table(cells: list[tuple[str, str, str]], columns: int = 3) -> list[str]:
    """Images side by side, `columns` to a row: name, thumbnail (a link to the image),
    command."""
    rows = ["| " + " | ".join([""] * columns) + " |", "|" + "---|" * columns]
    for i in range(0, len(cells), columns):
        row = []
        for title, file, caption in cells[i:i + columns]:
            row.append(f"**{title}**<br>{caption}<br>"
                       f"<a href=\"gallery/{file}\"><img src=\"gallery/{file}\" "
                       f"alt=\"{title}\" width=\"260\"></a>")
        row += [""] * (columns - len(row))
        rows.append("| " + " | ".join(row) + " |")
    return [*rows, ""]


def _command(name: str, depth: Depth, lr: bool) -> str:
    flags = ("" if depth == "blocks" else f" --depth {depth}") + (" --lr" if lr else "")
    return f"resdsl draw specs/{name}.res{flags}"


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    GALLERY.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Gallery",
        "",
        "Every spec in [`specs/`](../specs/) as `resdsl draw` draws it (see",
        "[cli.md](cli.md#resdsl-draw)), at blocks depth: a cluster per stage and per block,",
        "consecutive identical blocks folded as ×N, each run of plain layers in one box as a",
        "paper's table writes it, shortcuts written on their dashed edges, `C×H×W` where the",
        "shape changes. Then a few at the other depths. Drawn by",
        "[`scripts/gallery.py`](../scripts/gallery.py) with graphviz-pure; re-run it after",
        "changing a spec or the diagram.",
        "",
        "| look | primitive |",
        "|---|---|",
        "| `+` with a dashed blue edge | `skip`: the shortcut, labelled when it projects "
        "(\"1×1 conv, 512, s2 · BN\"); dotted orange: the zero-pad shortcut (option A) |",
        "| `+` with α on the edge | `weight`: the learnable α and its initial value |",
        "| `σ`, then T and 1−T into a `+` | `gate` (highway) |",
        "| a thick teal bus | `concat`: each layer's output joins the bus, O(n) edges |",
        "| a double box, \"32 branches\" | `group`, per-branch layers (lowered to grouped "
        "conv) |",
        "| `+ ‖`, blue and green edges | `dual`: residual path (add) and dense path (concat) |",
        "| `×` fed by a dotted red path | `scale`: the attention path (squeeze-and-excitation) |",
        "",
        "## At blocks depth",
        "",
    ]
    lines += ["Click an image for its full size.", ""]
    lines += _table([(name, _draw(name, "blocks", False), f"`{_command(name, 'blocks', False)}`")
                     for name in _specs()])
    lines += ["## At other depths", ""]
    extras = []
    for name, depth, options, why in EXTRAS:
        lr = options.get("lr", False)
        extras.append((f"{name} at {depth} depth", _draw(name, depth, lr),
                       f"`{_command(name, depth, lr)}`: {why}"))
    lines += _table(extras)
    _draw("dpn92", "blocks", False, "svg")
    PAGE.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
