"""Every experiment in experiments/ runs, in its tiny `--quick` configuration (small nets, a
few batches of a 100-image subset), and writes its figure and its numbers. The numbers of a
quick run mean nothing; the point is that no script rots. The full runs are in
docs/experiments.md.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXPERIMENTS = ["gradient_flow", "degradation", "lesion", "finetune"]


@pytest.fixture
def torch_state() -> Iterator[None]:
    """The scripts set torch's thread count and deterministic mode for the process; put
    them back so that the rest of the suite runs as before."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _run(name: str, out: Path) -> dict[str, object]:
    module = importlib.import_module(f"experiments.{name}")
    module.main(["--quick", "--out", str(out), "--threads", "1"])
    assert (out / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    doc: dict[str, object] = json.loads((out / f"{name}.json").read_text("utf-8"))
    assert doc["experiment"] == name
    return doc


@pytest.mark.usefixtures("torch_state")
def test_gradient_flow(tmp_path: Path) -> None:
    doc = _run("gradient_flow", tmp_path)
    layers = doc["layers"]
    assert isinstance(layers, dict)
    assert sorted(layers) == ["plain-14", "plain-8", "residual-14", "residual-8"]
    # A net of depth d has d weighted layers: d − 1 convs and the classifier.
    assert [len(layers[f"plain-{d}"]) for d in (8, 14)] == [8, 14]


@pytest.mark.usefixtures("torch_state")
def test_degradation(tmp_path: Path) -> None:
    doc = _run("degradation", tmp_path)
    histories = doc["histories"]
    assert isinstance(histories, dict) and len(histories) == 4
    for h in histories.values():
        assert len(h["train_error"]) == len(h["test_error"]) == 2


@pytest.mark.usefixtures("torch_state")
def test_lesion(tmp_path: Path) -> None:
    doc = _run("lesion", tmp_path)
    results = doc["results"]
    assert isinstance(results, dict)
    # residual-14 has 2 units per stage; plain-14 has 12 unit layers, 2 of which stride.
    assert len(results["residual-14"]["deletions"]) == 6
    assert len(results["plain-14"]["deletions"]) == 10
    assert len(results["residual-8"]["deletions"]) == 3
    assert len(results["plain-8"]["deletions"]) == 4


@pytest.mark.usefixtures("torch_state")
def test_finetune(tmp_path: Path) -> None:
    doc = _run("finetune", tmp_path)
    assert "re-initialised the head fc.weight, fc.bias" in str(doc["load_report"])
    final = doc["final"]
    assert isinstance(final, dict)
    assert set(final["20 per class"]) == {"fine-tuned", "from scratch"}


def test_deleting_is_the_identity() -> None:
    """The lesion hooks do what they claim, on an untrained net: a residual unit with its
    branch silenced passes its input through, and so does a plain layer's conv → bn."""
    from experiments import lesion
    from experiments._common import build

    x = torch.randn(2, 1, 8, 8)
    seen: dict[str, Any] = {}

    model = build("residual", 8, classes=10, seed=0).eval()
    (unit, branch_end), = lesion.residual_units("residual", 8)[:1]
    assert (unit, branch_end) == ("layer1.0", "layer1.0.bn2")
    model.get_submodule(unit).register_forward_hook(lambda _m, i, o: seen.update(x=i[0], y=o))
    with torch.no_grad(), lesion.zero_output(model, branch_end):
        model(x)
    assert torch.equal(seen["x"], seen["y"])

    model = build("plain", 8, classes=10, seed=0).eval()
    layer, conv, bn = lesion.plain_layers("plain", 8)[0]
    assert (layer, conv, bn) == ("layer1.0.conv1", "layer1.0.conv1", "layer1.0.bn1")
    model.get_submodule(conv).register_forward_pre_hook(lambda _m, i: seen.update(x=i[0]))
    with torch.no_grad(), lesion.identity(model, conv, bn):
        # Registered after the lesion's hook, so it sees what the bn now gives.
        model.get_submodule(bn).register_forward_hook(lambda _m, _i, o: seen.update(y=o))
        model(x)
    assert torch.equal(seen["x"], seen["y"])
