"""Lesion study: delete one residual unit of the trained residual-56 at test time (its
branch replaced by zero, the shortcut kept), and one layer of the trained plain-56 (replaced
by the identity); the test error after each deletion. The same for residual-20 and plain-20.

    .venv/bin/python experiments/lesion.py                 # docs/experiments/lesion.*

Claim checked (Veit, Wilber & Belongie 2016, Fig. 3): a residual net behaves like an ensemble
of relatively shallow paths, so deleting any one unit barely changes its error (a
downsampling unit hurts more), while deleting any layer of a plain net breaks it.

The two nets are trained exactly as in degradation.py (same seed, data, optimiser and
budget, so the same weights). Which modules to silence comes from the spec's graph through
the public API (`Network.graph`): every `skip` frame's merge adds its body's output to its
shortcut, so a forward hook on the module that makes the body's output (`layer2.3.bn2`),
returning zeros, deletes the unit and keeps the shortcut; y = relu(0 + x) = x, as x ≥ 0.
A plain layer (conv → bn → relu) is deleted by returning, from its bn, the input its conv
saw (a forward pre-hook keeps it): y = relu(x) = x. Layers that change the shape (the two
stride-2 convs, and the stem) cannot be the identity and are left out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch import nn

from experiments._common import (
    DEGRADATION,
    INPUT,
    QUICK,
    Progress,
    digits,
    environment,
    error_rate,
    label,
    network_spec,
    parser,
    pyplot,
    save_figure,
    setup,
    train_net,
    write_json,
)

# Veit et al.'s comparison at 56 layers, and the same at 20 layers, the depth at which both
# nets train to a low error within degradation.py's budget (at 56 neither does).
NETS = (("residual", 56), ("plain", 56), ("residual", 20), ("plain", 20))
QUICK_NETS = (("residual", 14), ("plain", 14), ("residual", 8), ("plain", 8))


def residual_units(kind: str, depth: int) -> list[tuple[str, str]]:
    """(unit, module that makes its branch's output) for every `skip` of the net, in order."""
    import resdsl

    path, params = network_spec(kind, depth)
    graph = resdsl.load(path, input_shape=INPUT, classes=10, **params).graph
    units = []
    for frame in graph.frames:
        if frame.kind == "primitive" and frame.name == "skip" and frame.output is not None:
            merge = graph.node(frame.output)
            body = graph.node(merge.inputs[0])  # skip's add is (F(x), shortcut)
            units.append((body.path.rsplit(".", 1)[0], body.path))
    return units


def plain_layers(kind: str, depth: int) -> list[tuple[str, str, str]]:
    """(layer, its conv, its bn) for every conv → bn pair that keeps the shape."""
    import resdsl

    path, params = network_spec(kind, depth)
    graph = resdsl.load(path, input_shape=INPUT, classes=10, **params).graph
    layers = []
    for node in graph.nodes():
        if node.op != "conv":
            continue
        users = graph.users(node.id)
        if len(users) != 1 or graph.node(users[0]).op != "bn":
            continue
        bn = graph.node(users[0])
        if graph.node(node.inputs[0]).shape == bn.shape:
            layers.append((node.path, node.path, bn.path))
    return layers


@contextmanager
def zero_output(model: nn.Module, module: str) -> Iterator[None]:
    handle = model.get_submodule(module).register_forward_hook(
        lambda _m, _i, out: torch.zeros_like(out))
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def identity(model: nn.Module, conv: str, bn: str) -> Iterator[None]:
    seen: dict[str, torch.Tensor] = {}

    def keep(_m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        seen["x"] = inputs[0]

    h1 = model.get_submodule(conv).register_forward_pre_hook(keep)
    h2 = model.get_submodule(bn).register_forward_hook(lambda _m, _i, _o: seen["x"])
    try:
        yield
    finally:
        h1.remove()
        h2.remove()


def main(argv: list[str] | None = None) -> None:
    args = parser(__doc__.split("\n\n")[0] if __doc__ else "").parse_args(argv)
    setup(args)
    log = Progress("lesion")
    nets = QUICK_NETS if args.quick else NETS
    config = QUICK if args.quick else DEGRADATION
    data = digits(args.seed, args.quick)
    test = (data.x_test, data.y_test)
    results: dict[str, Any] = {}
    for kind, depth in nets:
        name = label(kind, depth)
        model, history = train_net(kind, depth, data, config, args.seed, log)
        model.eval()
        base = error_rate(model, *test)
        rows: list[dict[str, Any]] = []
        if kind == "residual":
            for unit, module in residual_units(kind, depth):
                with zero_output(model, module):
                    rows.append({"deleted": unit, "test_error": error_rate(model, *test)})
        else:
            for layer, conv, bn in plain_layers(kind, depth):
                with identity(model, conv, bn):
                    rows.append({"deleted": layer, "test_error": error_rate(model, *test)})
        errors = [float(r["test_error"]) for r in rows]
        log(f"{name}: test error {base:.1f} % intact; after deleting one of {len(rows)} "
            f"{'units' if kind == 'residual' else 'layers'}: median "
            f"{sorted(errors)[len(errors) // 2]:.1f} %, worst {max(errors):.1f} %")
        results[name] = {"intact_test_error": base, "train_seconds": round(history.seconds, 1),
                         "final_train_error": history.train_error[-1], "deletions": rows}
    write_json(args.out / "lesion.json",
               {"experiment": "lesion", "nets": [label(k, d) for k, d in nets],
                "config": vars(config) | {"milestones": list(config.milestones)},
                "environment": environment(args), "seconds": round(log.elapsed(), 1),
                "results": results})
    plot(results, nets, args.out / "lesion.png")
    log(f"wrote {args.out / 'lesion.png'} and lesion.json")


def plot(results: dict[str, Any], nets: tuple[tuple[str, int], ...], path: Path) -> None:
    plt = pyplot()
    fig = plt.figure(figsize=(12, 7.5), layout="constrained")
    # One row per depth, residual then plain; bar widths alike across a row.
    rows = fig.subfigures(len(nets) // 2, 1)
    axes = []
    for row, pair in zip(rows, zip(nets[::2], nets[1::2], strict=True), strict=True):
        sizes = [len(results[label(k, d)]["deletions"]) for k, d in pair]
        axes += list(row.subplots(1, 2, sharey=True, width_ratios=sizes))
    for ax, (kind, depth) in zip(axes, nets, strict=True):
        what = "unit" if kind == "residual" else "layer"
        r = results[label(kind, depth)]
        errors = [d["test_error"] for d in r["deletions"]]
        names = [d["deleted"] for d in r["deletions"]]
        ax.bar(range(1, len(errors) + 1), errors, color="#3b6ea8" if kind == "residual"
               else "#c0392b", width=0.8)
        ax.axhline(r["intact_test_error"], color="black", lw=1, ls="--",
                   label=f"intact: {r['intact_test_error']:.1f} %")
        ax.axhline(90, color="grey", lw=1, ls=":", label="chance (90 %)")
        ax.set_title(f"{kind}-{depth}: delete one {what}", fontsize=10)
        ax.set_xlabel(f"deleted {what} (input → output)")
        # Stage boundaries as ticks: the unit/layer names say where each stage starts.
        starts = [i + 1 for i, n in enumerate(names)
                  if i == 0 or n.split(".")[0] != names[i - 1].split(".")[0]]
        ax.set_xticks(starts, [names[i - 1].split(".")[0] for i in starts], fontsize=8)
        ax.legend(fontsize=7, loc="lower right", framealpha=0.95)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_ylim(0, 100)
        if kind == "residual":
            ax.set_ylabel("test error (%)")
    fig.suptitle("Lesion study on the digits: test error after deleting one part at test time",
                 fontsize=10)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
