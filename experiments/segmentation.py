"""Segmentation: a small residual U-Net (experiments/unet_digits.res) labels every pixel of the
digits, resized to 32×32, as background or its digit's class; pixel accuracy and mean IoU on
the test set per epoch, and example predictions.

    .venv/bin/python experiments/segmentation.py           # docs/experiments/segmentation.*

What it shows: the dense-prediction language (upsampling, concatenation of an encoder's
tensors in the decoder, a per-pixel classifier) trains through the public API like the
classifiers do. The task: each 8×8 digit (values 0–16) is resized to 32×32 with bilinear
interpolation (`F.interpolate`, align_corners=False); a pixel whose resized value is above
FOREGROUND (4, a quarter of the ink scale) is foreground and labelled its digit's class + 1,
every other pixel background, 0. So a net must find the strokes (near the input's threshold)
and name the digit at every stroke pixel (the whole image's class), 11 classes in all.
Adam, per-pixel cross-entropy, a fixed seed for the split, the weights and the batches.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from torch import nn

from experiments._common import (
    Progress,
    environment,
    parser,
    pyplot,
    save_figure,
    setup,
    write_json,
)

SPEC = Path(__file__).resolve().parent / "unet_digits.res"
SIZE = 32
# A resized pixel above this value (of 0–16) is ink. A quarter of the scale: the bilinear
# resize spreads each stroke over its neighbours, and below 4 it is mostly that blur.
FOREGROUND = 4.0
CLASSES = 11  # background and the digits 0–9
NAMES = ["background", *(str(d) for d in range(10))]


@dataclass
class Config:
    """The budget: Adam with its default betas, batches of `batch` images, the learning rate
    `lr` annealed to 0 on a cosine over the run (so the last epochs settle rather than jump
    about, as they do at a constant rate)."""

    epochs: int = 8
    batch: int = 32
    lr: float = 5e-3
    width: int = 8  # the U-Net's first stage (the spec's default); then 2, 4, 8 times as many
    # --quick: this many training and test images, and a narrower net.
    images: int | None = None


FULL = Config()
QUICK = Config(epochs=5, batch=8, lr=1e-2, width=4, images=128)


@dataclass
class SegData:
    """Inputs (N, 1, 32, 32), standardised with the training set's mean and deviation, and
    labels (N, 32, 32) in 0..10."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def resize(images: np.ndarray) -> torch.Tensor:
    """8×8 digits (N, 8, 8) → (N, 1, 32, 32), bilinear, values still on the 0–16 scale."""
    x = torch.from_numpy(images.astype(np.float32))[:, None]
    return nn.functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear",
                                     align_corners=False)


def pixel_labels(resized: torch.Tensor, digit: torch.Tensor) -> torch.Tensor:
    """(N, 1, 32, 32) resized images and their (N,) digits → (N, 32, 32) labels: digit + 1
    where the pixel is ink (above FOREGROUND), 0 elsewhere."""
    ink = resized[:, 0] > FOREGROUND
    return torch.where(ink, digit[:, None, None] + 1, torch.zeros_like(digit)[:, None, None])


def segmentation_data(seed: int, images: int | None = None,
                      test_fraction: float = 0.3) -> SegData:
    """The digits split as the other experiments split them (stratified, by `seed`), resized
    and labelled; `images` keeps that many of each split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(data.images, data.target.astype(np.int64),
                                              test_size=test_fraction, random_state=seed,
                                              stratify=data.target)
    big_tr, big_te = resize(x_tr[:images]), resize(x_te[:images])
    lab_tr = pixel_labels(big_tr, torch.from_numpy(y_tr[:images]))
    lab_te = pixel_labels(big_te, torch.from_numpy(y_te[:images]))
    mean, std = float(big_tr.mean()), float(big_tr.std())
    return SegData((big_tr - mean) / std, lab_tr, (big_te - mean) / std, lab_te)


# ------------------------------------------------------------------ metrics


def confusion(pred: torch.Tensor, target: torch.Tensor, classes: int = CLASSES) -> torch.Tensor:
    """The (classes, classes) count of pixels by (target, prediction)."""
    index = target.flatten() * classes + pred.flatten()
    return torch.bincount(index, minlength=classes * classes).reshape(classes, classes)


def iou_per_class(conf: torch.Tensor) -> list[float | None]:
    """IoU_c = TP / (TP + FP + FN) for each class c; None for a class absent from both the
    targets and the predictions (TP + FP + FN = 0), which the mean leaves out."""
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    return [float(t) / float(u) if u > 0 else None for t, u in zip(tp, union, strict=True)]


def mean_iou(conf: torch.Tensor) -> float:
    """The mean of the IoUs of the classes present in the targets or the predictions."""
    present = [v for v in iou_per_class(conf) if v is not None]
    return sum(present) / len(present) if present else float("nan")


def pixel_accuracy(conf: torch.Tensor) -> float:
    return float(conf.diag().sum()) / max(float(conf.sum()), 1.0)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """(N, 32, 32) predicted classes, in eval mode (BN's running statistics)."""
    was = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
    model.train(was)
    return out


# ------------------------------------------------------------------ training


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    pixel_accuracy: list[float] = field(default_factory=list)
    mean_iou: list[float] = field(default_factory=list)


def train(model: nn.Module, data: SegData, config: Config, seed: int,
          log: Progress) -> tuple[History, torch.Tensor]:
    """Adam on the per-pixel cross-entropy; test pixel accuracy and mIoU after every epoch.
    Returns the history and the last epoch's test confusion matrix."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps = -(-len(data.x_train) // config.batch) * config.epochs
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    history = History()
    conf = torch.zeros(CLASSES, CLASSES, dtype=torch.long)
    x, y = data.x_train, data.y_train
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        losses = []
        for i in range(0, len(x), config.batch):
            idx = order[i:i + config.batch]
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            losses.append(loss.item())
        conf = confusion(predict(model, data.x_test), data.y_test)
        history.train_loss.append(float(np.mean(losses)))
        history.pixel_accuracy.append(100.0 * pixel_accuracy(conf))
        history.mean_iou.append(100.0 * mean_iou(conf))
        log(f"epoch {epoch + 1}/{config.epochs}: loss {history.train_loss[-1]:.3f}, test "
            f"pixel accuracy {history.pixel_accuracy[-1]:.1f} %, mIoU "
            f"{history.mean_iou[-1]:.1f} %")
    return history, conf


def main(argv: list[str] | None = None) -> None:
    args = parser(__doc__.split("\n\n")[0] if __doc__ else "").parse_args(argv)
    setup(args)
    log = Progress("segmentation")
    import resdsl

    config = QUICK if args.quick else FULL
    data = segmentation_data(args.seed, config.images)
    net = resdsl.load(str(SPEC), classes=CLASSES, width=config.width)
    model = net.to_torch(seed=args.seed)
    params = sum(p.numel() for p in model.parameters())
    background = 100.0 * float((data.y_test == 0).float().mean())
    log(f"{net.name} (width {config.width}, {params:,} parameters): "
        f"{len(data.x_train)} training and {len(data.x_test)} test images of {SIZE}×{SIZE}; "
        f"{config.epochs} epochs of batch {config.batch}; all-background pixel accuracy "
        f"{background:.1f} %")
    history, conf = train(model, data, config, args.seed, log)
    ious = iou_per_class(conf)
    doc: dict[str, Any] = {
        "experiment": "segmentation", "spec": SPEC.relative_to(SPEC.parent.parent).as_posix(),
        "config": vars(config), "params": params, "foreground_threshold": FOREGROUND,
        "train_images": len(data.x_train), "test_images": len(data.x_test),
        "environment": environment(args), "seconds": round(log.elapsed(), 1),
        "all_background_pixel_accuracy": round(background, 2),
        "final": {"pixel_accuracy": round(history.pixel_accuracy[-1], 2),
                  "mean_iou": round(history.mean_iou[-1], 2),
                  "iou_per_class": {name: (round(100.0 * v, 2) if v is not None else None)
                                    for name, v in zip(NAMES, ious, strict=True)}},
        "history": {"train_loss": [round(v, 4) for v in history.train_loss],
                    "pixel_accuracy": [round(v, 2) for v in history.pixel_accuracy],
                    "mean_iou": [round(v, 2) for v in history.mean_iou]}}
    pred = predict(model, data.x_test)
    typical, worst = example_indices(data.y_test, pred)
    doc["worst_examples"] = [
        {"test_index": int(i), "digit": int(digit_of(data.y_test[i:i + 1])[0]),
         "pixel_accuracy": round(100.0 * float(image_accuracy(pred[i:i + 1],
                                                              data.y_test[i:i + 1])[0]), 2)}
        for i in worst]
    write_json(args.out / "segmentation.json", doc)
    plot(history, data, pred, typical, worst, args.out / "segmentation.png")
    log(f"final: pixel accuracy {history.pixel_accuracy[-1]:.1f} % (all background: "
        f"{background:.1f} %), mIoU {history.mean_iou[-1]:.1f} %")
    log(f"wrote {args.out / 'segmentation.png'} and segmentation.json")


# ------------------------------------------------------------------ figure


def digit_of(labels: torch.Tensor) -> torch.Tensor:
    """Each label map's digit, from its ink (its one class above background)."""
    return labels.flatten(1).max(1).values - 1


def image_accuracy(pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each image's share of pixels predicted right."""
    return (pred == labels).float().mean((1, 2))


def example_indices(labels: torch.Tensor, pred: torch.Tensor, typical: int = 6,
                    worst: int = 4) -> tuple[list[int], list[int]]:
    """What the figure shows: the first test image of each of the digits 0..typical-1 (of
    those a --quick subset holds), and the `worst` test images by pixel accuracy, worst
    first."""
    digit = digit_of(labels)
    firsts = [int(torch.nonzero(digit == d)[0]) for d in range(typical)
              if bool((digit == d).any())]
    order = torch.sort(image_accuracy(pred, labels), stable=True).indices
    return firsts, [int(i) for i in order[:worst]]


def colormap() -> Any:
    """Background light grey, the ten digits tab10's colours."""
    from matplotlib.colors import ListedColormap

    plt = pyplot()
    return ListedColormap(["#eeeeee", *plt.get_cmap("tab10").colors], name="digits11")


def plot(history: History, data: SegData, pred: torch.Tensor, typical: list[int],
         worst: list[int], path: Path) -> None:
    from matplotlib.patches import Patch

    plt = pyplot()
    cmap = colormap()
    examples = typical + worst
    fig = plt.figure(figsize=(12, 4.4))
    # The curves, a gap, the typical examples, a narrower gap, the worst ones.
    ratios = [1.2, 1.2, 1.2, 0.3] + [1.0] * len(typical) + [0.25] + [1.0] * len(worst)
    grid = fig.add_gridspec(3, len(ratios), width_ratios=ratios)
    columns = [4 + c for c in range(len(typical))] + [5 + len(typical) + c
                                                      for c in range(len(worst))]
    curves = fig.add_subplot(grid[:, :3])
    epochs = range(1, len(history.pixel_accuracy) + 1)
    curves.plot(epochs, history.pixel_accuracy, "-o", lw=2, color="#1b9e77",
                label="pixel accuracy")
    curves.plot(epochs, history.mean_iou, "-s", lw=2, color="#7570b3", label="mean IoU")
    curves.set_xlabel("epoch")
    curves.set_ylabel("test set (%)")
    curves.set_ylim(0, 100)
    curves.grid(True, alpha=0.3)
    curves.legend(loc="lower right", fontsize=9)
    curves.set_title("test pixel accuracy and mIoU", fontsize=10)
    accuracy = image_accuracy(pred[examples], data.y_test[examples])
    rows = [("input", data.x_test[examples, 0]), ("truth", data.y_test[examples]),
            ("prediction", pred[examples])]
    for r, (title, images) in enumerate(rows):
        for c, column in enumerate(columns):
            ax = fig.add_subplot(grid[r, column])
            if title == "input":
                ax.imshow(images[c].numpy(), cmap="gray_r")
                ax.set_title(("first " if c < len(typical) else "worst ") +
                             f"{int(digit_of(data.y_test[examples[c]][None])[0])}",
                             fontsize=8)
            else:
                ax.imshow(images[c].numpy(), cmap=cmap, vmin=-0.5, vmax=CLASSES - 0.5,
                          interpolation="nearest")
            if title == "prediction":
                ax.set_xlabel(f"{100 * float(accuracy[c]):.0f} %", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=9)
    fig.legend(handles=[Patch(color=cmap(k), label=name) for k, name in enumerate(NAMES)],
               loc="lower center", ncol=CLASSES, fontsize=8, frameon=False,
               bbox_to_anchor=(0.62, 0.0))
    fig.suptitle("Residual U-Net (experiments/unet_digits.res) on the test digits at 32×32: "
                 "each pixel background or its digit (below each prediction: its pixel "
                 "accuracy)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(fig, path)


if __name__ == "__main__":
    main()
