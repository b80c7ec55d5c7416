"""The ONNX benchmarks and `resdsl bench` still run: each with tiny settings (resnet18, a
few runs). Nothing here looks at a timing; a script that crashes, or stops printing its
verdict, fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SPECS

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

TINY = {
    "onnx_difftest.py": ["--count", "3", "--start", "7000"],
    "onnx_compile.py": ["--quick", "--networks", "resnet18"],
    "onnx_latency.py": ["--networks", "resnet18", "--batches", "1", "--runs", "2",
                        "--runs-large", "1", "--rounds", "1", "--warmup", "1"],
}


@pytest.mark.parametrize("script", sorted(TINY))
def test_bench_script_runs(script: str) -> None:
    if script != "onnx_difftest.py":
        pytest.importorskip("onnxscript")  # torch.onnx.export needs it
        pytest.importorskip("torchvision")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *TINY[script]],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "the bar" in proc.stdout, proc.stdout
    if script == "onnx_difftest.py":
        assert "3 match, 0 mismatch" in proc.stdout, proc.stdout


def test_resdsl_bench(tmp_path: Path) -> None:
    """`resdsl bench`: both frameworks in their own processes, a table, JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "resdsl", "bench", str(SPECS / "resnet20.res"), "--input",
            "3x16x16", "--threads", "1", "--batch", "2", "--warmup", "1"]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("resnet20 (") and "batch 2, 1 thread;" in lines[0]
    assert "20 timed runs of each" in lines[0]
    assert lines[2].split() == ["backend", "median", "ms", "min", "ms", "setup", "s"]
    assert lines[3].startswith("ONNX Runtime ") and lines[4].startswith("PyTorch ")
    assert "ONNX Runtime / PyTorch eager (medians):" in proc.stdout
    assert "[2/3] ONNX Runtime" in proc.stderr and "[3/3] PyTorch eager" in proc.stderr
    proc = subprocess.run([*argv, "--format", "json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=env)
    doc = json.loads(proc.stdout)
    assert [len(r["times_ms"]) for r in doc["results"]] == [20, 20]
    assert list(tmp_path.iterdir()) == []  # the model lived in a temporary folder
    run = subprocess.run([*argv, "--runs", "5"], cwd=tmp_path, capture_output=True, text=True,
                         env=env)
    assert run.returncode == 2 and "--runs must be at least 20" in run.stderr
