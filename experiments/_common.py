"""What the experiments share: the digits data, the networks from specs/, one training loop,
evaluation, progress lines and the output files.

The data is scikit-learn's handwritten digits (`load_digits`: 1,797 images of 8×8 pixels with
values 0–16, shipped inside the package, so nothing is downloaded). The networks are the
CIFAR-layout specs (He et al. 2015, section 4.2) with `--input 1x8x8`: three stages of
16/32/64 filters at 8×8, 4×4 and 2×2. Everything is deterministic from the seed: the split,
the initial weights (resdsl's seeded initialiser), the batch order and the torch ops (CPU,
deterministic algorithms, a fixed thread count).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
# Figures and numbers go where docs/experiments.md shows them.
DEFAULT_OUT = ROOT / "docs" / "experiments"
INPUT = (1, 8, 8)


def spec(name: str) -> str:
    return str(SPECS / f"{name}.res")


# The networks of the experiments: the residual nets are the shipped ResNet specs, the plain
# ones specs/plain_cifar.res, which is the same net with the skips removed.
def network_spec(kind: str, depth: int) -> tuple[str, dict[str, Any]]:
    """(spec path, parameters) of the plain or residual CIFAR net of `depth` layers."""
    if kind == "plain":
        return spec("plain_cifar"), {"depth": depth}
    return spec("resnet20"), {"depth": depth}


def label(kind: str, depth: int) -> str:
    return f"{kind}-{depth}"


def build(kind: str, depth: int, classes: int, seed: int, **weights: Any) -> nn.Module:
    """The network as a torch module, from its spec, through the public API."""
    import resdsl

    path, params = network_spec(kind, depth)
    net = resdsl.load(path, input_shape=INPUT, classes=classes, **params)
    return net.to_torch(seed=seed, **weights)


# ------------------------------------------------------------------ setup and output


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seed", type=int, default=0, help="seed of the split, weights and batches")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="folder for the figure and the numbers (default docs/experiments)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny configuration (small nets, a few batches) that checks the "
                   "script runs; its numbers mean nothing")
    return p


def setup(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    # Bitwise-repeatable runs: deterministic kernels (CPU ones all are) and no TF32.
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)


class Progress:
    """Progress lines on stderr, with the time since the start."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, message: str) -> None:
        print(f"[{self.name} {self.elapsed():6.1f} s] {message}", file=sys.stderr, flush=True)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def save_figure(fig: Any, path: Path) -> None:
    """Write the figure and close it. No creation date in the file: the same numbers give the
    same bytes."""
    fig.savefig(path, dpi=110, metadata={"Software": None})
    pyplot().close(fig)


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


# ------------------------------------------------------------------ data


@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def digits(seed: int, quick: bool = False, test_fraction: float = 0.3) -> Split:
    """The digits, split in a stratified way into train and test by `seed`, standardised
    with the training set's mean and deviation, as (N, 1, 8, 8) float tensors; `quick`
    keeps 100 of each."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.images.astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction,
                                              random_state=seed, stratify=y)
    mean, std = float(x_tr.mean()), float(x_tr.std())
    keep = 100 if quick else None
    return Split(*(torch.from_numpy(a[:keep]) for a in (
        ((x_tr - mean) / std)[:, None], y_tr, ((x_te - mean) / std)[:, None], y_te)))


def subset(x: torch.Tensor, y: torch.Tensor, classes: Sequence[int],
           per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples of `classes`, relabelled 0..len(classes)-1, at most `per_class` of each
    (the first ones, which the seeded split already shuffled)."""
    keep: list[int] = []
    for c in classes:
        idx = torch.nonzero(y == c).flatten().tolist()
        keep += idx[:per_class] if per_class is not None else idx
    keep.sort()
    index = torch.tensor(keep, dtype=torch.long)
    relabel = torch.full((int(y.max()) + 1,), -1, dtype=torch.long)
    relabel[torch.tensor(list(classes))] = torch.arange(len(classes))
    return x[index], relabel[y[index]]


# ------------------------------------------------------------------ training


@dataclass
class TrainConfig:
    """One optimiser and budget for every network of an experiment: He et al.'s CIFAR
    recipe (SGD, batches of 128, momentum 0.9, weight decay 1e-4, learning rate 0.1 divided
    by 10 at 50 % and 75 % of training), with a budget in epochs of the digits."""

    epochs: int = 12
    batch: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (0.5, 0.75)
    # --quick: stop each epoch after this many batches.
    max_batches: int | None = None


@dataclass
class History:
    train_error: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


@torch.no_grad()
def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    """Top-1 error in %, in eval mode (BN's running statistics)."""
    was = model.training
    model.eval()
    wrong = 0
    for i in range(0, len(x), batch):
        wrong += int((model(x[i:i + batch]).argmax(1) != y[i:i + batch]).sum())
    model.train(was)
    return 100.0 * wrong / max(len(x), 1)


def train(
    model: nn.Module,
    train_xy: tuple[torch.Tensor, torch.Tensor],
    test_xy: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    seed: int,
    log: Callable[[str], None],
    name: str,
) -> History:
    """Train with `config`, measuring training and test error after every epoch."""
    x, y = train_xy
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(x) // config.batch)
    if config.max_batches is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_batches)
    total = steps_per_epoch * config.epochs
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, [int(m * total) for m in config.milestones], gamma=0.1)
    history = History()
    start = time.perf_counter()
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(x), generator=gen)
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * config.batch:(step + 1) * config.batch]
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            losses.append(loss.item())
        history.train_loss.append(float(np.mean(losses)))
        history.train_error.append(error_rate(model, x, y))
        history.test_error.append(error_rate(model, *test_xy))
        log(f"{name} epoch {epoch + 1}/{config.epochs}: loss {history.train_loss[-1]:.3f}, "
            f"train error {history.train_error[-1]:.1f} %, test error "
            f"{history.test_error[-1]:.1f} %")
    history.seconds = time.perf_counter() - start
    return history


def history_json(h: History) -> dict[str, Any]:
    return {k: (round(v, 3) if isinstance(v, float) else [round(e, 4) for e in v])
            for k, v in asdict(h).items()}


def environment(args: argparse.Namespace) -> dict[str, Any]:
    """What a reader needs to repeat the run."""
    return {"seed": args.seed, "threads": args.threads, "quick": args.quick,
            "torch": torch.__version__, "cpus": os.cpu_count()}


# The degradation experiment's budget; the lesion study trains the same nets with it.
DEGRADATION = TrainConfig(epochs=12, batch=128)
QUICK = TrainConfig(epochs=2, batch=16, max_batches=2)


def train_net(kind: str, depth: int, data: Split, config: TrainConfig, seed: int,
              log: Callable[[str], None], classes: int = 10) -> tuple[nn.Module, History]:
    """Build the plain or residual net of `depth` layers and train it on `data`."""
    model = build(kind, depth, classes=classes, seed=seed)
    history = train(model, (data.x_train, data.y_train), (data.x_test, data.y_test), config,
                    seed, log, label(kind, depth))
    return model, history
