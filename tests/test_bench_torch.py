"""The PyTorch benchmarks still run: each script once, with tiny settings (resnet18 at a
small input, one or two repeats). Nothing here looks at a timing; a script that crashes,
or stops printing its verdict, fails."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("timm")

# Each run is a subprocess that imports torch, torchvision and timm (seconds each), so one
# run per script: the latency one through torch.compile's eager backend, which takes the
# same path as the default run plus the wrapping.
TINY = {
    "torch_latency.py": ["--quick", "--networks", "resnet18", "--size", "64",
                         "--batches", "1,2", "--repeats", "2", "--warmup", "1",
                         "--compile", "--backend", "eager"],
    "torch_build.py": ["--quick", "--network", "resnet18", "--runs", "1"],
    "torch_memory.py": ["--quick", "--networks", "resnet18", "--size", "64", "--batch", "2",
                        "--forwards", "1"],
}


@pytest.mark.parametrize("script", sorted(TINY))
def test_bench_script_runs(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *TINY[script]],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "the bar" in proc.stdout, proc.stdout
    assert "ratio" in proc.stdout


def test_train_step_bench_runs_and_counts_what_checkpointing_saves() -> None:
    """bench/train_step.py at its tiny settings: both modes print, and the memory a step
    keeps for the backward (a byte count, not a timing) is lower with checkpointing, and
    equal to timm's resnet50 in each mode (the same tensors saved)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train_step.py"), "--quick", "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()
            if line.startswith(("plain", "checkpointed"))}
    plain_saved, checkpointed_saved = float(rows["plain"][-3]), float(rows["checkpointed"][-3])
    assert checkpointed_saved < 0.5 * plain_saved
    assert rows["plain"][-1] == rows["checkpointed"][-1] == "1.000"
