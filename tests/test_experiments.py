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

EXPERIMENTS = ["gradient_flow", "degradation", "lesion", "finetune", "segmentation"]


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


@pytest.mark.usefixtures("torch_state")
def test_segmentation(tmp_path: Path) -> None:
    doc = _run("segmentation", tmp_path)
    history, final = doc["history"], doc["final"]
    assert isinstance(history, dict) and isinstance(final, dict)
    assert len(history["pixel_accuracy"]) == len(history["mean_iou"]) == 5
    assert list(final["iou_per_class"]) == ["background", *(str(d) for d in range(10))]
    # Even the quick run learns something: more pixels right than labelling all of them
    # background, and the background itself found (an untrained net gets neither).
    background = doc["all_background_pixel_accuracy"]
    assert isinstance(background, float) and 45 < background < 65
    assert final["pixel_accuracy"] > background + 2
    assert final["iou_per_class"]["background"] > 50
    assert 0 < final["mean_iou"] <= 100


def test_segmentation_labels_and_metrics() -> None:
    """The labels are the digit + 1 on the ink and 0 elsewhere; IoU leaves out the classes
    absent from both the targets and the predictions."""
    import numpy as np

    from experiments import segmentation as seg

    image = np.zeros((1, 8, 8))
    image[0, 2:6, 3:5] = 16  # a bar of full ink
    resized = seg.resize(image)
    labels = seg.pixel_labels(resized, torch.tensor([7]))
    assert resized.shape == (1, 1, 32, 32) and labels.shape == (1, 32, 32)
    assert set(labels.flatten().tolist()) == {0, 8}
    assert torch.equal(labels[0] == 8, resized[0, 0] > seg.FOREGROUND)
    assert labels[0, 16, 16] == 8 and labels[0, 0, 0] == 0

    target = torch.tensor([[0, 0, 1, 1], [0, 0, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 2, 0]])
    conf = seg.confusion(pred, target)
    assert int(conf.sum()) == 8 and seg.pixel_accuracy(conf) == 6 / 8
    # background: 3 right of 3 + 1 + 1; class 1: 2 of 3; class 2: 1 of 2; 3–10 absent.
    ious = seg.iou_per_class(conf)
    assert ious[:3] == [3 / 5, 2 / 3, 1 / 2] and ious[3:] == [None] * 8
    assert seg.mean_iou(conf) == pytest.approx((3 / 5 + 2 / 3 + 1 / 2) / 3)


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
