"""What every zoo family test does with a row, written once: build the row's network, check
its keys, parameters and MACs against the reference on the meta device, and compare eval
outputs with the reference's weights copied in, in PyTorch and in ONNX Runtime.

The reference side is resdsl/zoo/reference.py's, the checker `bench/zoo_coverage.py` runs on
every name: the same model constructor (`create`), the same norm randomisation (`randomise`:
every norm's affine parameters and running statistics and every layer scale, so that no
branch hides behind an identity), the same MAC hooks (`reference_macs`, torchvision's
convention plus the 1-D convs) and the same tolerance (`compare`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resdsl
from resdsl.zoo.entry import ZooEntry

torch = pytest.importorskip("torch")

from resdsl.zoo.reference import compare, create, randomise, reference_macs  # noqa: E402

CLASSES = 10
SMALL = (3, 64, 64)


def load(entry: ZooEntry, **extra: Any) -> resdsl.Network:
    """The row's network from its own spec and parameters (not by name: a row is tested
    before the table gathers it), with `extra` parameters on top."""
    return resdsl.load(str(entry.spec_path()), **{**entry.params, **extra})


def assert_matches_meta_reference(entry: ZooEntry, shape: tuple[int, ...] = SMALL,
                                  **extra: Any) -> None:
    """State_dict keys in order with their shapes, parameters and MACs at `shape`, against
    the reference built on the meta device (nothing is allocated on either side: the big
    rows have over a billion parameters)."""
    net = load(entry, input_shape=shape, **extra)
    ref = create(entry, meta=True, **extra)
    theirs = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert list(net.state_shapes().items()) == theirs  # keys in order, with their shapes
    assert net.counts().params == sum(p.numel() for p in ref.parameters())
    assert net.counts().macs == reference_macs(ref, shape)


@dataclass(frozen=True)
class Pair:
    """A row's network beside its reference's outputs on one input, with the reference's
    (randomised) weights to copy in, and its MACs of the real forward pass."""

    name: str
    net: resdsl.Network
    state: dict[str, Any]
    x: np.ndarray
    expected: np.ndarray
    macs: int


def make_pair(entry: ZooEntry, shape: tuple[int, ...] = SMALL, **extra: Any) -> Pair:
    """`entry` and its reference with `CLASSES` classes and `extra` parameters on both sides
    (`layers` for a deep row's one-block-a-stage sample), the reference randomised."""
    torch.manual_seed(0)
    model = randomise(create(entry, num_classes=CLASSES, **extra), seed=1)
    net = load(entry, input_shape=shape, classes=CLASSES, **extra)
    x = np.random.default_rng(0).standard_normal((2, *shape), dtype=np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Pair(entry.name, net, state, x, expected, reference_macs(model, shape))


def close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """The checker's tolerance: rtol 1e-4, atol 1e-5·max(1, max|y|), the same argmax."""
    verdict = compare(actual, expected)
    assert verdict.ok, f"{what}: {verdict.reason}"


def assert_torch_outputs(pair: Pair) -> None:
    module = pair.net.to_torch(weights=pair.state).eval()
    with torch.inference_mode():
        actual = module(torch.from_numpy(pair.x)).numpy()
    close(actual, pair.expected, f"{pair.name} (PyTorch)")


def assert_onnx_outputs(pair: Pair, tmp_path: Path) -> None:
    from resdsl.verify import session

    path = tmp_path / f"{pair.name}.onnx"
    pair.net.save_onnx(str(path), weights=pair.state)
    (actual,) = session(str(path), threads=1).run(None, {"input": pair.x})
    close(np.asarray(actual), pair.expected, f"{pair.name} (ONNX Runtime)")
