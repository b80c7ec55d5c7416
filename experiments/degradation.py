"""The degradation problem: plain-20, plain-56, residual-20 and residual-56 trained on the
digits with one optimiser and budget; training and test error per epoch.

    .venv/bin/python experiments/degradation.py            # docs/experiments/degradation.*

Claim checked (He et al. 2015, Fig. 1 and Fig. 6): the deeper plain net has the higher
training error (not overfitting: it fits the training set worse), while the deeper residual
net has the lower error. The plain nets are specs/plain_cifar.res, which is the ResNet spec
without its skips; the residual nets are specs/resnet20.res with `depth`. All four nets
start from resdsl's seeded weights and see the same batches in the same order.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments._common import (
    DEGRADATION,
    QUICK,
    History,
    Progress,
    digits,
    environment,
    history_json,
    label,
    parser,
    pyplot,
    save_figure,
    setup,
    train_net,
    write_json,
)

DEPTHS = (20, 56)
QUICK_DEPTHS = (8, 14)
KINDS = ("plain", "residual")


def main(argv: list[str] | None = None) -> None:
    args = parser(__doc__.split("\n\n")[0] if __doc__ else "").parse_args(argv)
    setup(args)
    log = Progress("degradation")
    depths = QUICK_DEPTHS if args.quick else DEPTHS
    config = QUICK if args.quick else DEGRADATION
    data = digits(args.seed, args.quick)
    log(f"digits: {len(data.x_train)} training and {len(data.x_test)} test images; "
        f"{config.epochs} epochs of batch {config.batch}")
    histories: dict[str, History] = {}
    params: dict[str, int] = {}
    for kind in KINDS:
        for depth in depths:
            model, history = train_net(kind, depth, data, config, args.seed, log)
            histories[label(kind, depth)] = history
            params[label(kind, depth)] = sum(p.numel() for p in model.parameters())
    final = {name: {"train_error": h.train_error[-1], "test_error": h.test_error[-1],
                    "best_test_error": min(h.test_error), "seconds": round(h.seconds, 1),
                    "params": params[name]}
             for name, h in histories.items()}
    write_json(args.out / "degradation.json",
               {"experiment": "degradation", "config": vars(config) | {"milestones":
                                                                    list(config.milestones)},
                "train_images": len(data.x_train), "test_images": len(data.x_test),
                "environment": environment(args), "seconds": round(log.elapsed(), 1),
                "final": final,
                "histories": {n: history_json(h) for n, h in histories.items()}})
    plot(histories, depths, args.out / "degradation.png")
    for name, f in final.items():
        log(f"{name}: final train error {f['train_error']:.1f} %, test error "
            f"{f['test_error']:.1f} %")
    log(f"wrote {args.out / 'degradation.png'} and degradation.json")


def plot(histories: dict[str, History], depths: tuple[int, ...], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    colours = {depths[0]: "#d95f02", depths[1]: "#1b5e9e"}
    for ax, kind in zip(axes, KINDS, strict=True):
        for depth in depths:
            h = histories[label(kind, depth)]
            epochs = range(1, len(h.test_error) + 1)
            # He et al.'s convention: thin dashed training error, bold test error.
            ax.plot(epochs, h.train_error, "--", lw=1, color=colours[depth])
            ax.plot(epochs, h.test_error, "-", lw=2.2, color=colours[depth],
                    label=f"{kind}-{depth}")
        ax.set_title(f"{kind} nets")
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(title="dashed: train, bold: test", fontsize=8, title_fontsize=8)
    axes[0].set_ylabel("error (%)")
    axes[0].set_ylim(bottom=0)
    fig.suptitle("Digits (8×8), CIFAR-layout nets: one optimiser and budget for all four",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
