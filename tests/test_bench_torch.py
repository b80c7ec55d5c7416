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
