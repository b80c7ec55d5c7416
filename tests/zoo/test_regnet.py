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

from pathlib import Path

import pytest

import resdsl
from resdsl.zoo.entry import ZooEntry
from resdsl.zoo.families.timm_regnet import ENTRIES as TIMM_ROWS
from resdsl.zoo.families.torchvision_regnet import ENTRIES as TV_ROWS
from tests.conftest import SPECS

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

from tests.zoo.harness import (  # noqa: E402
    Pair,
    assert_matches_meta_reference,
    assert_onnx_outputs,
    assert_torch_outputs,
    load,
    make_pair,
)

ROWS: dict[str, ZooEntry] = {e.name: e for e in TIMM_ROWS + TV_ROWS}
# One row of each kind: X, Y (SE), GroupNorm + SiLU, V (pre-activation, "avg" shortcut), Z
# (inverted bottleneck, no projecting shortcut, final ConvNormAct), torchvision's names.
SAMPLE = ["regnetx_002", "regnety_002", "regnety_040_sgn", "regnetv_064", "regnetz_005",
          "regnet_y_400mf"]


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
    assert_matches_meta_reference(ROWS[name])


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


@pytest.fixture(scope="module", params=SAMPLE)
def pair(request: pytest.FixtureRequest) -> Pair:
    return make_pair(ROWS[request.param])


@pytest.mark.parity
def test_torch_outputs_are_the_references(pair: Pair) -> None:
    assert_torch_outputs(pair)


@pytest.mark.parity
def test_onnx_outputs_are_the_references(pair: Pair, tmp_path: Path) -> None:
    assert_onnx_outputs(pair, tmp_path)
