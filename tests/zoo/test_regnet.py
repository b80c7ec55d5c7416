"""The zoo's RegNets against their references: the 36 models of timm 1.0.31's
timm/models/regnet.py (`timm.list_models(module="regnet")`, specs/regnety_032.res) and
torchvision 0.29.1's 15 RegNets (specs/regnet_y_3_2gf.res), every number from the library's
own model:

1. the rows are exactly the libraries' RegNets;
2. for every row: the state_dict keys in order with their shapes, the parameter count and the
   conv and linear MACs at 64×64 (tests/test_parity.py's hooks), the reference built on the
   meta device (regnety_2560 has 1.28 billion parameters; nothing is allocated on either side);
3. for a sample covering each block, stem, norm and width rule (X, Y with SE, GroupNorm and
   SiLU, pre-activation V with the "avg" shortcut, Z, torchvision's names): eval outputs at
   64×64 with the reference's weights copied in, every norm's statistics and affine parameters
   randomised first, in PyTorch and in ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resdsl
from resdsl.zoo.entry import ZooEntry
from resdsl.zoo.families.timm_regnet import ENTRIES as TIMM_ROWS
from resdsl.zoo.families.torchvision_regnet import ENTRIES as TV_ROWS
from tests.conftest import SPECS

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

from torchvision.models.regnet import BlockParams  # noqa: E402

ROWS: dict[str, ZooEntry] = {e.name: e for e in TIMM_ROWS + TV_ROWS}
SMALL = (3, 64, 64)
CLASSES = 10
# One row of each kind: X, Y (SE), GroupNorm + SiLU, V (pre-activation, "avg" shortcut), Z
# (inverted bottleneck, no projecting shortcut, final ConvNormAct), torchvision's names.
SAMPLE = ["regnetx_002", "regnety_002", "regnety_040_sgn", "regnetv_064", "regnetz_005",
          "regnet_y_400mf"]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="module")
def widths_on_cpu() -> Iterator[None]:
    """torchvision computes its RegNet widths with tensors on the default device, which the
    meta device cannot read back: that computation alone runs on the CPU (the model's modules
    are still made on the meta device)."""
    original = BlockParams.from_init_params.__func__  # type: ignore[attr-defined]

    def on_cpu(cls: type, *args: Any, **kwargs: Any) -> Any:
        with torch.device("cpu"):
            return original(cls, *args, **kwargs)

    BlockParams.from_init_params = classmethod(on_cpu)  # type: ignore[method-assign,assignment]
    yield
    BlockParams.from_init_params = classmethod(original)  # type: ignore[method-assign,assignment]


def reference(entry: ZooEntry, **kwargs: Any) -> Any:
    if entry.source == "timm":
        return timm.create_model(entry.name, pretrained=False, **kwargs)
    return torchvision.models.get_model(entry.name, **kwargs)


def load(entry: ZooEntry, **extra: Any) -> resdsl.Network:
    return resdsl.load(str(entry.spec_path()), **entry.params, **extra)


def reference_macs(model: Any, shape: tuple[int, ...]) -> int:
    from tests.test_parity import reference_macs as count

    return int(count(model, shape))


def test_rows_are_the_libraries_regnets() -> None:
    assert sorted(e.name for e in TIMM_ROWS) == sorted(timm.list_models(module="regnet"))
    theirs = [n for n in torchvision.models.list_models(module=torchvision.models)
              if n.startswith("regnet")]
    assert sorted(e.name for e in TV_ROWS) == sorted(theirs)
    assert len(theirs) == 15


@pytest.mark.parametrize(("spec", "model"), [("regnety_032", "regnety_032"),
                                             ("regnet_y_3_2gf", "regnet_y_3_2gf")])
def test_shipped_spec_is_its_row(spec: str, model: str) -> None:
    """A shipped spec's defaults are its row's parameters: the same network."""
    shipped, row = resdsl.load(str(SPECS / f"{spec}.res")), load(ROWS[model])
    assert shipped.state_shapes() == row.state_shapes()
    assert shipped.counts() == row.counts()


@pytest.mark.parametrize("name", list(ROWS))
def test_keys_params_macs_are_the_references(name: str) -> None:
    entry = ROWS[name]
    net = load(entry, input_shape=SMALL)
    with torch.device("meta"):
        ref = reference(entry)
        macs = reference_macs(ref, SMALL)
    theirs = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert list(net.state_shapes().items()) == theirs  # keys in order, with their shapes
    assert net.counts().params == sum(p.numel() for p in ref.parameters())
    assert net.counts().macs == macs


@pytest.mark.parametrize("name", ["regnety_032", "regnetv_064", "regnetz_005",
                                  "regnet_y_3_2gf"])
def test_every_residual_block_is_one_residual_join(name: str) -> None:
    """One residual join per block (torchvision's `proj` comes first in its keys, so its sum
    is written as skip's two branches); the Z variant has none where the shape changes, that
    is at the first block of each of its four stages."""
    from timm.models.regnet import model_cfgs

    entry = ROWS[name]
    cfg = model_cfgs[name if entry.source == "timm" else "regnety_032"]
    expected = cfg.depth - (4 if cfg.downsample is None else 0)
    assert load(entry).paths().joins == {"skip": expected}


# ---------------------------------------------------------------------- outputs


def randomised(model: Any, seed: int) -> Any:
    """The model in eval mode with random BN statistics and BN and GroupNorm affine
    parameters, so that no norm is the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm)):
                c = m.weight.shape
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                    m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
    return model.eval()


def close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """tests/test_onnx_parity.py's tolerance: rtol 1e-4, atol 1e-5·max(1, max|y|), argmax."""
    assert np.isfinite(expected).all(), f"{what}: the reference's output is not finite"
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=what)
    assert (actual.argmax(1) == expected.argmax(1)).all(), f"{what}: argmax differs"


@dataclass
class Pair:
    name: str
    net: resdsl.Network
    state: dict[str, Any]
    x: np.ndarray
    expected: np.ndarray


@pytest.fixture(scope="module", params=SAMPLE)
def pair(request: pytest.FixtureRequest) -> Pair:
    entry = ROWS[request.param]
    torch.manual_seed(0)
    model = randomised(reference(entry, num_classes=CLASSES), seed=1)
    x = np.random.default_rng(0).standard_normal((2, *SMALL), dtype=np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Pair(entry.name, load(entry, input_shape=SMALL, classes=CLASSES), state, x, expected)


@pytest.mark.parity
def test_torch_outputs_are_the_references(pair: Pair) -> None:
    module = pair.net.to_torch(weights=pair.state).eval()
    with torch.inference_mode():
        actual = module(torch.from_numpy(pair.x)).numpy()
    close(actual, pair.expected, f"{pair.name} (PyTorch)")


@pytest.mark.parity
def test_onnx_outputs_are_the_references(pair: Pair, tmp_path: Path) -> None:
    from resdsl.verify import session

    path = tmp_path / f"{pair.name}.onnx"
    pair.net.save_onnx(str(path), weights=pair.state)
    (actual,) = session(str(path), threads=1).run(None, {"input": pair.x})
    close(np.asarray(actual), pair.expected, f"{pair.name} (ONNX Runtime)")
