"""Output parity of the ONNX backend, run in ONNX Runtime:

1. every spec in specs/ against the PyTorch backend (`Network.to_torch()`'s module in eval
   mode) holding the same weights, with random BN statistics so that eval-mode BN is not
   the identity (small inputs: `tests.conftest.small_shape`);
2. every spec with a PyTorch reference against that reference (torchvision, timm): the
   reference's state_dict, BN randomised, saved to a file (.pth and .safetensors in turn)
   and loaded with `weights=`;
3. the acceptance test: `resdsl compile specs/dpn92.res --to onnx --weights FILE` with a
   timm dpn92 state_dict (random init, saved to a file) matches timm's outputs at 224×224.

Tolerance (DESIGN.md §8): rtol 1e-4, atol 1e-5·max(1, max|y|), and the same argmax.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")

import resdsl  # noqa: E402
from resdsl.backends.torch_module import build_module  # noqa: E402
from resdsl.verify import sample_input, session  # noqa: E402
from tests.conftest import SPECS, run_cli, small_shape  # noqa: E402
from tests.specgen import perturb  # noqa: E402

pytestmark = pytest.mark.parity

ALL_SPECS = sorted(SPECS.glob("*.res"))
CLASSES = 10


def close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert np.isfinite(expected).all(), f"{what}: the reference output is not finite"
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=what)
    assert (actual.argmax(1) == expected.argmax(1)).all(), f"{what}: argmax differs"


def run_file(path: Path, x: np.ndarray) -> np.ndarray:
    (y,) = session(str(path), threads=2).run(None, {"input": x})
    return np.asarray(y)


def shrink_residuals(state: dict[str, Any], factor: float) -> dict[str, Any]:
    """Scale every BN's γ by `factor`: a 1001-layer pre-activation net in eval mode at
    random init doubles its activations unit after unit until they overflow."""
    return {k: v * np.float32(factor) if k.endswith(".weight") and
            k[: -len(".weight")] + ".running_var" in state else v for k, v in state.items()}


# ---------------------------------------------------------------------- 1. the PyTorch backend


@pytest.mark.parametrize("spec", ALL_SPECS, ids=[p.stem for p in ALL_SPECS])
def test_every_spec_matches_the_pytorch_backend(spec: Path, tmp_path: Path) -> None:
    # A backbone without a classifier (resnet50_fpn) has no `classes`.
    params: dict[str, Any] = (
        {"classes": CLASSES} if "classes" in resdsl.load(str(spec)).params else {})
    net = resdsl.load(str(spec), input_shape=small_shape(spec.stem), **params)
    state = perturb(net.init_state(seed=0), seed=1)
    if spec.stem == "preact_resnet1001":
        state = shrink_residuals(state, 0.2)
    out = tmp_path / "m.onnx"
    net.save_onnx(str(out), weights=state)
    x = sample_input(net.input_shape)
    with torch.inference_mode():
        ref = build_module(net.graph, state).eval()(torch.from_numpy(x))
    # Several outputs: the module's OrderedDict, the ONNX model's graph outputs, in order.
    refs = dict(ref) if isinstance(ref, dict) else {"output": ref}
    sess = session(str(out), threads=2)
    assert [o.name for o in sess.get_outputs()] == list(refs)
    for (name, want), got in zip(refs.items(), sess.run(None, {"input": x}), strict=True):
        close(np.asarray(got), want.numpy(), f"{spec.stem} {name}")


# ---------------------------------------------------------------------- 2. the references


def _tv(name: str) -> Callable[[], Any]:
    return lambda: getattr(torchvision.models, name)(num_classes=CLASSES)


def _timm(name: str) -> Callable[[], Any]:
    return lambda: timm.create_model(name, pretrained=False, num_classes=CLASSES)


REFERENCES: dict[str, Callable[[], Any]] = {
    "resnet18": _tv("resnet18"),
    "resnet34": _tv("resnet34"),
    "resnet50": _tv("resnet50"),
    "resnet101": _tv("resnet101"),
    "resnet152": _tv("resnet152"),
    "resnext50_32x4d": _tv("resnext50_32x4d"),
    "wide_resnet50_2": _tv("wide_resnet50_2"),
    "densenet121": _tv("densenet121"),
    "dpn92": _timm("dpn92"),
    "seresnet50": _timm("seresnet50"),
    "resnetv2_50": _timm("resnetv2_50"),
}


def randomised(model: Any, seed: int) -> Any:
    """The model in eval mode with random BN statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.running_mean.shape
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
    return model.eval()


def save_state(model: Any, path: Path) -> None:
    state = model.state_dict()
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)


@pytest.fixture(params=sorted(REFERENCES))
def reference(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any, Path]]:
    name = request.param
    torch.manual_seed(0)
    model = randomised(REFERENCES[name](), seed=1)
    # Half the references go through .safetensors (read without torch), half through .pth.
    suffix = ".safetensors" if sorted(REFERENCES).index(name) % 2 else ".pth"
    path = tmp_path / f"{name}{suffix}"
    save_state(model, path)
    yield name, model, path


def test_every_referenced_spec_matches_its_reference(reference: tuple[str, Any, Path],
                                                      tmp_path: Path) -> None:
    name, model, weights = reference
    shape = (3, 64, 64)
    net = resdsl.load(str(SPECS / f"{name}.res"), input_shape=shape, classes=CLASSES)
    out = tmp_path / "m.onnx"
    result = net.save_onnx(str(out), weights=str(weights))
    assert result.report is not None and result.report.method == "name"
    assert not result.report.missing and not result.report.unexpected
    x = sample_input(net.input_shape)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    close(run_file(out, x), ref, name)


# ---------------------------------------------------------------------- 3. acceptance


def test_dpn92_from_a_timm_checkpoint_matches_timm(tmp_path: Path) -> None:
    """The issue's acceptance test: the command line, timm's dpn92 weights from a file,
    ONNX Runtime, timm's outputs, at DPN-92's own input size."""
    torch.manual_seed(0)
    model = randomised(timm.create_model("dpn92", pretrained=False), seed=2)
    weights = tmp_path / "dpn92.pth"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "dpn92.onnx"
    run = run_cli("compile", "specs/dpn92.res", "--to", "onnx", "--weights", str(weights),
                  "-o", str(out))
    assert run.code == 0, run.err
    assert "loaded 485 of 485 tensors" in run.out or "by name" in run.out
    x = sample_input((3, 224, 224))
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    close(run_file(out, x), ref, "dpn92 at 224×224")
    onnx.checker.check_model(str(out), full_check=True)
