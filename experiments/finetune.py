"""Fine-tuning: train resnet20 on the digits 0–4, save its weights, then fine-tune it on the
digits 5–9 with a new 5-way classifier, against the same net trained from scratch with the
same optimiser and budget; test error per epoch, with 20 training images per class and
with all of them.

    .venv/bin/python experiments/finetune.py               # docs/experiments/finetune.*

Claim checked: pretrained networks fine-tune to a new task with little data, better than
training from scratch. The source net is specs/resnet20.res as it is (10 outputs) trained on
0–4 and saved as a .pth file; the target net is the same spec with `classes = 5` loaded with
`weights=` that file and `replace_head=True`, so every tensor but the classifier comes from
the source (`resdsl.load(spec, classes=5).to_torch(weights=..., replace_head=True)`, the
API form of `-D classes=5 --weights FILE --replace-head`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from experiments._common import (
    INPUT,
    QUICK,
    History,
    Progress,
    TrainConfig,
    digits,
    environment,
    history_json,
    parser,
    pyplot,
    save_figure,
    setup,
    spec,
    subset,
    train,
    write_json,
)

SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
PRETRAIN = TrainConfig(epochs=12, batch=64)
FINETUNE = TrainConfig(epochs=15, batch=32)
# The two amounts of target data: 20 images per class, and the whole training split.
REGIMES: dict[str, int | None] = {"20 per class": 20, "all": None}


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--save-weights", type=Path, metavar="FILE",
                   help="keep the pretrained .pth here (default: a temporary folder)")
    args = p.parse_args(argv)
    setup(args)
    log = Progress("finetune")
    import resdsl

    data = digits(args.seed, args.quick)
    depth = 8 if args.quick else 20
    pre_config = QUICK if args.quick else PRETRAIN
    ft_config = QUICK if args.quick else FINETUNE
    src_train = subset(data.x_train, data.y_train, SOURCE)
    src_test = subset(data.x_test, data.y_test, SOURCE)
    tgt_test = subset(data.x_test, data.y_test, TARGET)

    # 1. The source task: the spec as shipped, 10 outputs, trained on 0–4.
    source = resdsl.load(spec("resnet20"), input_shape=INPUT, depth=depth)
    model = source.to_torch(seed=args.seed)
    log(f"pretraining {source.name} (depth {depth}) on digits 0–4: "
        f"{len(src_train[0])} images")
    pre = train(model, src_train, src_test, pre_config, args.seed, log, "pretrain 0–4")
    results: dict[str, Any] = {"pretrain": history_json(pre)}
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.save_weights or Path(tmp) / "resnet20_digits0-4.pth"
        torch.save(model.state_dict(), weights)
        log(f"saved the pretrained weights to {weights}")
        # 2. The target task: classes = 5, the classifier re-initialised, the rest loaded.
        target = resdsl.load(spec("resnet20"), input_shape=INPUT, depth=depth, classes=5)
        _, report = target.state(seed=args.seed, weights=str(weights), replace_head=True)
        assert report is not None
        log(report.summary())
        results["load_report"] = report.summary()
        curves: dict[str, dict[str, History]] = {}
        for regime, per_class in REGIMES.items():
            tgt_train = subset(data.x_train, data.y_train, TARGET, per_class)
            if args.quick and per_class is None:
                continue
            curves[regime] = {}
            for start in ("fine-tuned", "from scratch"):
                net = (target.to_torch(seed=args.seed, weights=str(weights), replace_head=True)
                       if start == "fine-tuned" else target.to_torch(seed=args.seed))
                log(f"{regime} ({len(tgt_train[0])} images), {start}")
                curves[regime][start] = train(net, tgt_train, tgt_test, ft_config, args.seed,
                                              log, f"{regime}, {start}")
    final = {regime: {start: {"final_test_error": h.test_error[-1],
                              "best_test_error": min(h.test_error),
                              "first_epoch_test_error": h.test_error[0]}
                      for start, h in c.items()} for regime, c in curves.items()}
    write_json(args.out / "finetune.json",
               {"experiment": "finetune", "depth": depth,
                "pretrain_config": vars(pre_config) | {"milestones":
                                                      list(pre_config.milestones)},
                "finetune_config": vars(ft_config) | {"milestones": list(ft_config.milestones)},
                "source_train_images": len(src_train[0]), "target_test_images":
                len(tgt_test[0]), "environment": environment(args),
                "seconds": round(log.elapsed(), 1), "pretrain_test_error": pre.test_error[-1],
                "final": final,
                "curves": {r: {s: history_json(h) for s, h in c.items()}
                           for r, c in curves.items()}} | results)
    plot(curves, args.out / "finetune.png")
    for regime, f in final.items():
        log(f"{regime}: final test error fine-tuned {f['fine-tuned']['final_test_error']:.1f} "
            f"%, from scratch {f['from scratch']['final_test_error']:.1f} %")
    log(f"wrote {args.out / 'finetune.png'} and finetune.json")


def plot(curves: dict[str, dict[str, History]], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4), sharey=True,
                             squeeze=False)
    colours = {"fine-tuned": "#1b9e77", "from scratch": "#7570b3"}
    for ax, (regime, c) in zip(axes[0], curves.items(), strict=True):
        for start, h in c.items():
            epochs = range(1, len(h.test_error) + 1)
            ax.plot(epochs, h.train_error, "--", lw=1, color=colours[start])
            ax.plot(epochs, h.test_error, "-", lw=2.2, color=colours[start], label=start)
        ax.set_title(f"digits 5–9, {regime} for training")
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(title="dashed: train, bold: test", fontsize=8, title_fontsize=8)
    axes[0][0].set_ylabel("error (%)")
    axes[0][0].set_ylim(bottom=0)
    fig.suptitle("resnet20 pretrained on digits 0–4, fine-tuned on 5–9 with a new head, "
                 "vs from scratch (same optimiser and budget)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
