"""A training step of the compiled ResNet-50 against timm's `resnet50`, with and without
gradient checkpointing, side by side in one run (issue #19's bars).

What: one step (forward, cross-entropy loss, backward, SGD with momentum) of batch 16 at
160×160, training mode, of `resdsl.load("specs/resnet50.res").to_torch()` and of
`timm.create_model("resnet50")`, each as is and with `set_grad_checkpointing()` (ours
recomputes each block in the backward pass and updates BatchNorm's statistics once; timm's
`checkpoint_seq` checkpoints each block too). Per model and mode: the median time of a step
and the peak memory of one step above the memory held before it (weights, gradients,
optimiser state and the batch).

How: each model gets W warm-up steps, then the timed steps; the models alternate (ours,
timm, timm, ours, ...) over R rounds of S steps, and the median step over all of them is
reported. On CUDA each step is timed between `torch.cuda.synchronize()` calls and its peak
is `torch.cuda.max_memory_allocated()` after `reset_peak_memory_stats()`; on the CPU the peak
is Linux's peak RSS (VmHWM, reset through /proc/self/clear_refs as bench/torch_memory.py
does) above the RSS before the step, in a process whose allocator returns large blocks to the
system when they are freed (bench/torch_memory.py's MALLOC_ENV; the script re-executes itself
with it). Beside it, `saved MiB`: the bytes of the tensors the
forward pass keeps for the backward (`torch.autograd.graph.saved_tensors_hooks`, each storage
once), what checkpointing exists to cut; a count, the same on any machine under any load.

Bars (issue #19): with checkpointing on both sides, time(ours) ≤ 1.05 · time(timm) and
peak(ours) ≤ 1.0 · peak(timm); without, time(ours) ≤ 1.03 · time(timm).

Run: `.venv/bin/python bench/train_step.py` (CUDA when available); `--quick` runs tiny
settings (batch 2 at 64×64, 1 round of 2 steps) to check that it works. It prints; it
asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

# The peak-RSS counter and the allocator setting are torch_memory.py's.
from torch_memory import MALLOC_ENV, _reset_peak, _status_kib  # noqa: E402

BARS = {"plain": (1.03, None), "checkpointed": (1.05, 1.0)}
MIB = 1024 * 1024


@dataclass
class Result:
    times: list[float]
    peaks: list[int]
    saved: int = 0

    @property
    def time(self) -> float:
        return statistics.median(self.times)

    @property
    def peak(self) -> int:
        return int(statistics.median(self.peaks))


def build(impl: str, size: int, checkpointed: bool, device: Any) -> Any:
    import timm

    import resdsl

    model: Any
    if impl == "resdsl":
        model = resdsl.load(str(ROOT / "specs" / "resnet50.res"),
                            input_shape=(3, size, size)).to_torch(seed=0)
    else:
        model = timm.create_model("resnet50", pretrained=False)
    model.set_grad_checkpointing(checkpointed)
    return model.to(device).train()


def peak_counter(device: Any) -> tuple[Callable[[], None], Callable[[], int]]:
    """(start, read): the peak memory of what runs between them, in bytes."""
    import torch

    if device.type == "cuda":
        base = [0]

        def start() -> None:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base[0] = torch.cuda.memory_allocated()

        def read() -> int:
            torch.cuda.synchronize()
            return int(torch.cuda.max_memory_allocated() - base[0])

        return start, read
    rss = [0]

    def start_cpu() -> None:
        _reset_peak()
        rss[0] = _status_kib("VmRSS")

    def read_cpu() -> int:
        return (_status_kib("VmHWM") - rss[0]) * 1024

    return start_cpu, read_cpu


def saved_bytes(step: Callable[[], None]) -> int:
    """The bytes of the tensors autograd saves for the backward during `step`'s forward,
    each storage counted once (a tensor saved by two ops, or a view, is one buffer)."""
    import torch

    storages: dict[int, int] = {}

    def pack(t: Any) -> Any:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(storages.values())


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def run(args: argparse.Namespace) -> dict[str, dict[str, Result]]:
    import torch

    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()
    start, read = peak_counter(device)
    out: dict[str, dict[str, Result]] = {}
    for mode in ("plain", "checkpointed"):
        models = {impl: build(impl, args.size, mode == "checkpointed", device)
                  for impl in ("resdsl", "timm")}
        optims = {impl: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
                  for impl, m in models.items()}

        def step(impl: str, models: dict[str, Any] = models,
                 optims: dict[str, Any] = optims) -> None:
            optims[impl].zero_grad(set_to_none=True)
            loss_fn(models[impl](x), y).backward()
            optims[impl].step()

        for impl in models:
            for _ in range(args.warmup):
                step(impl)
        results = {impl: Result([], []) for impl in models}
        for impl in models:
            results[impl].saved = saved_bytes(functools.partial(step, impl))
        for r in range(args.rounds):
            order = ("resdsl", "timm") if r % 2 == 0 else ("timm", "resdsl")
            for impl in order:
                for _ in range(args.steps):
                    sync(device)
                    t0 = time.perf_counter()
                    step(impl)
                    sync(device)
                    results[impl].times.append(time.perf_counter() - t0)
                start()
                step(impl)
                results[impl].peaks.append(read())
        out[mode] = results
        del models, optims
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def report(out: dict[str, dict[str, Result]], args: argparse.Namespace) -> str:
    lines = [f"resnet50 training step, batch {args.batch} at {args.size}×{args.size}, "
             f"{args.device}, {args.rounds}×{args.steps} steps per model",
             f"{'mode':<13} {'ours ms':>9} {'timm ms':>9} {'ratio':>6} {'bar':>6} "
             f"{'ours MiB':>9} {'timm MiB':>9} {'ratio':>6} {'bar':>6} "
             f"{'ours saved':>10} {'timm saved':>10} {'ratio':>6}"]
    for mode, results in out.items():
        ours, theirs = results["resdsl"], results["timm"]
        time_bar, mem_bar = BARS[mode]
        t_ratio = ours.time / theirs.time
        m_ratio = ours.peak / theirs.peak if theirs.peak else float("nan")
        lines.append(
            f"{mode:<13} {ours.time * 1e3:9.2f} {theirs.time * 1e3:9.2f} {t_ratio:6.3f} "
            f"{time_bar:6.2f} {ours.peak / MIB:9.1f} {theirs.peak / MIB:9.1f} {m_ratio:6.3f} "
            f"{'' if mem_bar is None else f'{mem_bar:.2f}':>6} "
            f"{ours.saved / MIB:10.1f} {theirs.saved / MIB:10.1f} "
            f"{ours.saved / theirs.saved:6.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help="batch 2 at 64×64, 1 warm-up, 2 rounds of 1 step: a smoke run")
    args = parser.parse_args(argv)
    if args.device == "cpu" and argv is None and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        # glibc keeps freed blocks for reuse, so the RSS would hold the last step's memory
        # and the peak above it would be noise: large blocks through mmap go back to the
        # system when freed (bench/torch_memory.py's setting), and the peak RSS is the
        # step's own.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})
    if args.quick:
        args.batch, args.size, args.warmup, args.rounds, args.steps = 2, 64, 1, 2, 1
    print(report(run(args), args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
