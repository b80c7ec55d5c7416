"""Gradient flow at initialisation: plain and residual CIFAR-layout nets of 20, 56, 110 and
1202 layers, the norm of each layer's weight gradient after one backward pass.

    .venv/bin/python experiments/gradient_flow.py          # docs/experiments/gradient_flow.*

Claim checked: residual connections keep the gradient alive at depth, so that 1000-layer
networks train (He et al. 2015, sections 3.1 and 4.2); a plain net's gradient vanishes or
explodes with depth. Each net starts from resdsl's seeded initialiser (Kaiming normal, BN
at 1 and 0), sees the same batch of 64 training digits in training mode (BN uses the batch's
statistics), and one cross-entropy backward pass in float64 gives ‖∂L/∂W‖₂ for every
conv and linear weight, input to output.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch import nn

from experiments._common import (
    Progress,
    build,
    digits,
    environment,
    label,
    parser,
    pyplot,
    save_figure,
    setup,
    write_json,
)

DEPTHS = (20, 56, 110, 1202)
QUICK_DEPTHS = (8, 14)
KINDS = ("plain", "residual")


def layer_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, object]]:
    """One forward and backward pass in float64; each conv and linear weight's gradient and
    weight norm, in module order (input to output). float64 because plain-1202's gradient
    reaches ~1e77 at its first layers, past float32's 3.4e38 (it comes out NaN in float32)."""
    model.double().train()
    x = x.double()
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()  # type: ignore[no-untyped-call]
    rows: list[dict[str, object]] = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight.grad is not None:
            rows.append({"layer": name,
                         "grad_norm": float(module.weight.grad.norm()),
                         "weight_norm": float(module.weight.detach().norm())})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--batch", type=int, default=64, help="images in the one batch (default 64)")
    args = p.parse_args(argv)
    setup(args)
    log = Progress("gradient_flow")
    depths = QUICK_DEPTHS if args.quick else DEPTHS
    batch = 8 if args.quick else args.batch
    data = digits(args.seed, args.quick)
    x, y = data.x_train[:batch], data.y_train[:batch]
    results: dict[str, list[dict[str, object]]] = {}
    for kind in KINDS:
        for depth in depths:
            name = label(kind, depth)
            model = build(kind, depth, classes=10, seed=args.seed)
            rows = layer_gradients(model, x, y)
            results[name] = rows
            first, last = rows[0]["grad_norm"], rows[-2]["grad_norm"]
            log(f"{name}: {len(rows)} weighted layers, ‖∂L/∂W‖ first conv {first:.3g}, last "
                f"conv {last:.3g}")
            del model
    summary = {}
    for name, rows in results.items():
        norms = [float(r["grad_norm"]) for r in rows]  # type: ignore[arg-type]
        convs = norms[:-1]  # the last row is the classifier
        summary[name] = {"layers": len(rows), "first_conv": convs[0], "last_conv": convs[-1],
                         "min": min(convs), "max": max(convs),
                         "first_over_last": convs[0] / convs[-1]}
    write_json(args.out / "gradient_flow.json",
               {"experiment": "gradient_flow", "batch": batch, "depths": list(depths),
                "environment": environment(args), "seconds": round(log.elapsed(), 1),
                "summary": summary, "layers": results})
    plot(results, depths, batch, args.out / "gradient_flow.png")
    log(f"wrote {args.out / 'gradient_flow.png'} and gradient_flow.json")


def plot(results: dict[str, list[dict[str, object]]], depths: tuple[int, ...], batch: int,
         path: Path) -> None:
    plt = pyplot()
    # Each panel its own scale: the plain nets span 75 decades, the residual ones 3.
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a"]
    for ax, kind in zip(axes, KINDS, strict=True):
        for depth, colour in zip(depths, colours, strict=False):
            rows = results[label(kind, depth)]
            norms = [float(r["grad_norm"]) for r in rows]  # type: ignore[arg-type]
            # Relative depth on x: the four nets share one axis, input at 0, output at 1.
            xs = [(i + 1) / len(norms) for i in range(len(norms))]
            ax.plot(xs, norms, marker="." if depth <= 56 else None, lw=1, color=colour,
                    label=f"{depth} layers")
        ax.set_yscale("log")
        ax.set_title(f"{kind} nets at initialisation")
        ax.set_xlabel("layer (fraction of the depth, input → output)")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes:
        ax.set_ylabel("‖∂L/∂W‖₂ of the layer's weight")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Gradient norm per layer after one backward pass (digits, batch of {batch})",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
