"""Shared test helpers: run the CLI in-process from the repository root."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# One intra-op thread for PyTorch in the tests and the processes they start. Each test's
# forwards are small, and on a loaded machine (a shared CI runner) PyTorch's default of one
# thread per core makes its threads wait for each other: a preact_resnet1001 forward took 36 s
# with the default and 0.56 s with one thread while other work ran. Set before torch is
# imported (no test module imports it before this file runs); an explicit setting wins.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from resdsl.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_cli(*argv: str) -> Run:
    """`resdsl ARGV...` in this process, from the repository root."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        code = main(list(argv), out, err)
    finally:
        os.chdir(old)
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture
def in_root() -> Iterator[Path]:
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        yield ROOT
    finally:
        os.chdir(old)


# Inputs small enough to keep every spec's forward to milliseconds: a spec's own input up to
# 64×64. Inception-ResNet-v2 needs at least 75×75 (its valid convolutions and stride-2
# reductions; timm refuses smaller inputs too).
SMALL_SIDE = 64
MIN_SIDE = {"inception_resnet_v2": 75}


def small_shape(stem: str) -> tuple[int, int, int]:
    """The input shape the backend tests use for spec `stem`."""
    from resdsl.api import load

    c, *hw = load(str(SPECS / f"{stem}.res")).input_shape
    side = MIN_SIDE.get(stem, SMALL_SIDE)
    if all(d <= side for d in hw):
        return (c, hw[0], hw[1])
    return (c, side, side)
