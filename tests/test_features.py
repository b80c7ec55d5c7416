"""Backbone features from any spec (#16 item 4): `Network.feature_info`, `Network.features()`
and `--features`, against timm's `features_only=True` (`feature_info` and outputs)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import resdsl
from resdsl.arguments import ArgumentError
from resdsl.diagnostics import SpecError
from tests.conftest import ROOT, SPECS, run_cli

GOLDEN = ROOT / "tests" / "golden" / "compile"

# Every shipped spec's feature points: (module, channels, reduction).
RESNET = [("2", 64, 2), ("layer1", 256, 4), ("layer2", 512, 8), ("layer3", 1024, 16),
          ("layer4", 2048, 32)]
BASIC = [("2", 64, 2), ("layer1", 64, 4), ("layer2", 128, 8), ("layer3", 256, 16),
         ("layer4", 512, 32)]
CIFAR = [("layer1", 16, 1), ("layer2", 32, 2), ("layer3", 64, 4)]
EXPECTED: dict[str, list[tuple[str, int, int]]] = {
    "densenet121": [("features.relu0", 64, 2), ("features.denseblock1", 256, 4),
                    ("features.denseblock2", 512, 8), ("features.denseblock3", 1024, 16),
                    ("1", 1024, 32)],
    "dpn68": [("features.conv1_1", 10, 2), ("features.conv2_3", 144, 4),
              ("features.conv3_4", 320, 8), ("features.conv4_12", 704, 16),
              ("features.conv5_bn_ac", 832, 32)],
    "dpn92": [("features.conv1_1", 64, 2), ("features.conv2_3", 336, 4),
              ("features.conv3_4", 704, 8), ("features.conv4_20", 1552, 16),
              ("features.conv5_bn_ac", 2688, 32)],
    "highway_cifar19": [("conv5", 32, 1), ("conv11", 80, 2), ("26", 100, 4)],
    "inception_resnet_v2": [("conv2d_2b", 64, 2), ("conv2d_4a", 192, 4), ("repeat", 320, 8),
                            ("repeat_1", 1088, 16), ("conv2d_7b", 1536, 32)],
    "mobilenet_v2": [("features.1", 16, 2), ("features.3", 24, 4), ("features.6", 32, 8),
                     ("features.13", 96, 16), ("features.18", 1280, 32)],
    "plain_cifar": CIFAR,
    "preact_resnet1001": [("layer1", 64, 1), ("layer2", 128, 2), ("5", 256, 4)],
    "preact_resnet164": [("layer1", 64, 1), ("layer2", 128, 2), ("5", 256, 4)],
    # timm's stem names since res2net50_26w_4s.res writes timm's ResNet stem (timm_stem).
    "res2net50_26w_4s": [("act1", 64, 2), *RESNET[1:]],
    "resnet101": RESNET,
    "resnet110": CIFAR,
    "resnet152": RESNET,
    "resnet18": BASIC,
    "resnet20": CIFAR,
    "resnet34": BASIC,
    "resnet50": RESNET,
    "resnet50_droppath": RESNET,
    "resnet56": CIFAR,
    "resnetv2_50": [("stem.conv", 64, 2), ("stages.0", 256, 4), ("stages.1", 512, 8),
                    ("stages.2", 1024, 16), ("3", 2048, 32)],
    "resnext50_32x4d": RESNET,
    "rezero_resnet56": CIFAR,
    "seresnet50": RESNET,
    "wide_resnet50_2": RESNET,
    "wrn28_10": [("group0", 160, 1), ("group1", 320, 2), ("5", 640, 4)],
}

# timm 1.0's `create_model(name, features_only=True).feature_info`, where it differs from
# ours in name only: the same tensor under timm's module name. timm's resnets call the stem's
# relu `act1` (torchvision's `relu`; the spec's unnamed statement, path `2`); its DenseNet's
# `norm0`/`norm5` are BatchNormAct2d, BN and ReLU in one module (the spec's `norm0; relu0`
# and `norm5` followed by a top-level relu); its MobileNetV2 groups the blocks by stage.
TIMM_NAME = {"2": "act1", "features.relu0": "features.norm0", "1": "features.norm5",
             "features.1": "blocks.0", "features.3": "blocks.1", "features.6": "blocks.2",
             "features.13": "blocks.4"}
# Where timm takes another tensor, by design (docs/api.md §Backbone features):
# (spec, index) → timm's (module, channels, reduction).
TIMM_DIFFERS = {
    # timm stops before the final BN + ReLU of a pre-activation net (its `norm`, DPN's
    # `conv5_bn_ac`); ours is the last stage at reduction 32, after them.
    ("resnetv2_50", 4): ("stages.3", 2048, 32),
    ("dpn68", 4): ("features.conv5_3", 832, 32),
    ("dpn92", 4): ("features.conv5_3", 2688, 32),
    # timm's EfficientNet family leaves the head's 1x1 conv (320 → 1280) out of the features.
    ("mobilenet_v2", 4): ("blocks.6", 320, 32),
}
TIMM = {"resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50",
        "resnet101": "resnet101", "resnet152": "resnet152",
        "resnext50_32x4d": "resnext50_32x4d", "wide_resnet50_2": "wide_resnet50_2",
        "seresnet50": "seresnet50", "densenet121": "densenet121", "dpn68": "dpn68",
        "dpn92": "dpn92", "res2net50_26w_4s": "res2net50_26w_4s",
        "resnetv2_50": "resnetv2_50", "inception_resnet_v2": "inception_resnet_v2",
        "mobilenet_v2": "mobilenetv2_100"}


def _load(stem: str) -> resdsl.Network:
    return resdsl.load(str(SPECS / f"{stem}.res"))


def _timm_view(stem: str) -> list[tuple[str, int, int]]:
    """Our feature points as timm names them, where it takes the same tensor."""
    ours = [(TIMM_NAME.get(m, m), c, r) for m, c, r in EXPECTED[stem]]
    for (spec, index), theirs in TIMM_DIFFERS.items():
        if spec == stem:
            ours[index] = theirs
    return ours


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_feature_info_of_every_shipped_spec(stem: str) -> None:
    net = _load(stem)
    info = net.feature_info
    assert [(p.module, p.num_chs, p.reduction) for p in info] == EXPECTED[stem]
    assert [p.index for p in info] == list(range(len(info)))
    assert all(p.shape[0] == p.num_chs for p in info)
    # The features network: every point an output, named by its module path, and a
    # state_dict that is the full network's up to the last point (here: all but the head).
    feats = net.features()
    assert list(feats.graph.outputs) == [m for m, _, _ in EXPECTED[stem]]
    assert feats.feature_info == [p for p in feats.feature_info]
    assert [(p.module, p.num_chs, p.reduction) for p in feats.feature_info] == EXPECTED[stem]
    full, cut = list(net.state_shapes()), list(feats.state_shapes())
    assert cut == full[:len(cut)] and len(cut) < len(full)


def test_every_spec_has_features_or_none() -> None:
    """Specs added later (with outputs, upsampling) get feature points without error."""
    for spec in sorted(SPECS.glob("*.res")):
        net = resdsl.load(str(spec))
        if net.feature_info:
            assert net.features().graph.outputs


def test_the_points_end_where_a_decoder_begins() -> None:
    """A dense-prediction spec: its points stop before the first upsampling, and the
    features network's outputs replace the spec's own."""
    net = resdsl.load(str(ROOT / "docs" / "examples" / "two_heads.res"))
    info = [(p.module, p.reduction) for p in net.feature_info]
    assert info == [("backbone.layer1", 1), ("backbone.layer2", 2), ("classifier", 4)]
    assert list(net.features((0, 1)).graph.outputs) == ["backbone.layer1", "backbone.layer2"]


def test_our_feature_info_is_timms_where_it_says_so() -> None:
    """The recorded timm 1.0 feature_info (see the live check below) is ours with the names
    and differences the tables above give: channels and reductions of every other point."""
    assert _timm_view("resnet50") == [("act1", 64, 2), ("layer1", 256, 4),
                                      ("layer2", 512, 8), ("layer3", 1024, 16),
                                      ("layer4", 2048, 32)]
    assert _timm_view("inception_resnet_v2") == EXPECTED["inception_resnet_v2"]


@pytest.mark.parity
@pytest.mark.parametrize("stem", sorted(TIMM))
def test_feature_info_against_timm(stem: str) -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model(TIMM[stem], features_only=True, pretrained=False)
    theirs = [(d["module"], d["num_chs"], d["reduction"])
              for d in model.feature_info.get_dicts()]
    assert theirs == _timm_view(stem)


def test_out_indices_choose_and_cut() -> None:
    net = _load("resnet50")
    feats = net.features(out_indices=(3, 1, -5))  # any order; -5 is 0
    assert list(feats.graph.outputs) == ["2", "layer1", "layer3"]
    assert [p.index for p in feats.feature_info] == [0, 1, 3]
    # Nothing after layer3 is kept: layer4, the pool and the classifier are gone.
    keys = list(feats.state_shapes())
    assert not any(k.startswith(("layer4.", "fc.")) for k in keys)
    assert feats.output_shape == (1024, 14, 14)
    assert net.features([-1]).feature_info[0].module == "layer4"
    assert feats.counts().params < net.counts().params
    # A numpy integer is an index like any other.
    assert net.features(np.array([2], dtype=np.int64)).feature_info[0].module == "layer2"


def test_finding_and_cutting_are_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted, not timed: graph lookups per node stay bounded on a deep network (keeping
    the scopes once asked every kept node about every scope: 37 s at 17,500 nodes)."""
    from resdsl.ir import features as ir_features
    from resdsl.ir.graph import Graph

    graph = resdsl.load(str(SPECS / "resnet20.res"), depth=1202).graph
    calls = 0
    lookup = Graph.node

    def counted(self: Graph, nid: int) -> object:
        nonlocal calls
        calls += 1
        return lookup(self, nid)

    monkeypatch.setattr(Graph, "node", counted)
    points = ir_features.feature_points(graph)
    ir_features.cut(graph, points)
    assert len(points) == 3
    assert calls < 20 * len(graph), (calls, len(graph))


def test_a_full_checkpoint_loads_into_a_features_network() -> None:
    """Its keys beyond the cut (layer3, the classifier) are set aside, not unexpected."""
    net = _load("resnet20")
    full = net.init_state(seed=3)
    feats = net.features((0, 1))
    state, report = feats.state(seed=0, weights=full)
    assert report is not None
    assert set(state) == set(feats.state_shapes())
    assert all(np.array_equal(state[k], full[k]) for k in state)
    # A key the features network needs is still required.
    partial = {k: v for k, v in full.items() if k != "conv1.weight"}
    with pytest.raises(SpecError, match=r"missing"):
        feats.state(weights=partial)


def test_bad_indices_are_argument_errors_with_codes() -> None:
    net = _load("resnet20")
    with pytest.raises(ArgumentError) as out_of_range:
        net.features((0, 3))
    assert out_of_range.value.code == "E0741" and out_of_range.value.argument == "out_indices"
    assert str(out_of_range.value).startswith("out_indices=(0, 3): index 3 is out of range")
    with pytest.raises(ArgumentError) as twice:
        net.features([1, -2])
    assert twice.value.code == "E0742"
    assert "1 and -2 both name feature point 1 (`layer2`)" in str(twice.value)
    for bad in ("1,2", 1, [1.0], [True], [], object()):
        with pytest.raises(ArgumentError, match=r"^out_indices="):
            net.features(bad)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="already its features"):
        net.features().features()


def _golden(name: str, text: str) -> None:
    expected = GOLDEN / f"{name}.txt"
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        expected.write_text(text, encoding="utf-8")
    assert text == expected.read_text(encoding="utf-8")


def test_bad_indices_on_the_command_line_are_usage_errors() -> None:
    run = run_cli("info", "specs/resnet20.res", "--features", "0,5")
    assert run.code == 2 and run.out == ""
    _golden("E0741_feature_index_out_of_range", run.err)
    run = run_cli("compile", "specs/resnet20.res", "--to", "python", "--features=-1,2",
                  "-o", "tests/golden/compile/never_written.py")
    assert run.code == 2 and not (GOLDEN / "never_written.py").exists()
    _golden("E0742_feature_index_twice", run.err)
    # `--features SPEC` takes the spec for the indices: said so, not "SPEC is required".
    run = run_cli("info", "--features", "specs/resnet20.res")
    assert run.code == 2 and "a bare --features takes every point" in run.err
    run = run_cli("check", "specs/resnet20.res", "--features", "one")
    assert run.code == 2 and "Traceback" not in run.err


def test_compile_says_which_features_it_wrote(tmp_path: Path) -> None:
    out = tmp_path / "r20.py"
    run = run_cli("compile", "specs/resnet20.res", "--to", "python", "--features", "0,2",
                  "-o", str(out))
    assert run.code == 0, run.err
    assert run.out.startswith(f"wrote {out}: standalone PyTorch source of resnet20's "
                              "features layer1, layer3 (269,072 parameters)")
    source = out.read_text("utf-8")
    assert '("layer1", ' in source and '("layer3", ' in source and "self.fc" not in source


def test_no_feature_maps() -> None:
    mlp = "tests/golden/errors/E0740_no_feature_maps.res"
    with pytest.raises(SpecError) as caught:
        resdsl.load(str(ROOT / mlp)).features()
    assert caught.value.diagnostics[0].code == "E0740"
    assert resdsl.load(str(ROOT / mlp)).feature_info == []


def test_info_reports_each_feature_output() -> None:
    run = run_cli("info", "specs/resnet50.res", "--features", "1,2,3", "--depth", "1")
    assert run.code == 0, run.err
    table = run.out.split("3 feature outputs (timm's feature_info):\n", 1)[1]
    assert table.splitlines()[:4] == [
        "index  module  channels  reduction  shape",
        "    1  layer1       256          4  256×56×56",
        "    2  layer2       512          8  512×28×28",
        "    3  layer3      1024         16  1024×14×14",
    ]
    import json

    doc = json.loads(run_cli("info", "specs/resnet50.res", "--features", "--format",
                             "json").out)
    assert [(f["module"], f["num_chs"], f["reduction"]) for f in doc["features"]] == RESNET
    assert [o["name"] for o in doc["outputs"]] == [m for m, _, _ in RESNET]
    assert json.loads(run_cli("info", "specs/resnet50.res", "--format", "json").out)[
        "features"] is None


def test_the_cli_doc_shows_the_current_output() -> None:
    """docs/cli.md's `--features` transcripts are what the command prints."""
    doc = (ROOT / "docs" / "cli.md").read_text("utf-8")
    shown = re.findall(r"^```text\n\$ resdsl ([^\n]*--features[^\n]*)\n(.*?)^```$", doc,
                       re.M | re.S)
    assert len(shown) == 2
    for argv, block in shown:
        run = run_cli(*shlex.split(argv))
        assert run.out + run.err == block, argv


def test_check_and_info_with_features_never_import_torch() -> None:
    code = (
        "import sys; from resdsl.cli import main; "
        "rc = main(['info', 'specs/dpn92.res', '--features', '1,2']) + "
        "main(['check', 'specs/densenet121.res', '--features']); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime')]; "
        "print(rc, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.strip().endswith("0 []"), out.stdout + out.stderr


def test_onnx_has_one_output_per_feature() -> None:
    pytest.importorskip("onnx")
    feats = _load("resnet20").features()
    proto = feats.to_onnx(seed=0)
    outputs = [(o.name, [d.dim_value for d in o.type.tensor_type.shape.dim][1:])
               for o in proto.graph.output]
    assert outputs == [("layer1", [16, 32, 32]), ("layer2", [32, 16, 16]),
                       ("layer3", [64, 8, 8])]


def test_onnx_runtime_matches_pytorch_on_every_feature(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    feats = _load("resnet20").features((0, 2))
    result = feats.save_onnx(tmp_path / "f.onnx", seed=1, verify=True)
    assert result.verification is not None
    assert "all 2 outputs" in result.verification.summary()


def test_draw_shows_each_feature_output() -> None:
    dot = _load("resnet20").features((1, 2)).draw(format="dot").dot
    assert re.findall(r'label="output (\w+)"', dot) == ["layer2", "layer3"]
    full = _load("resnet20").draw(format="dot").dot
    assert "linear" in full and "linear" not in dot  # the head is cut off


@pytest.fixture(scope="module")
def timm_resnet50() -> tuple[object, dict[str, object]]:
    timm = pytest.importorskip("timm")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    full = timm.create_model("resnet50", pretrained=False).eval()
    # Non-trivial BN statistics, so that a wrong BN would show.
    for m in full.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return full, full.state_dict()


@pytest.mark.parity
@pytest.mark.parametrize("out_indices", [None, (-1,)])
def test_outputs_equal_timms_features_only(
    timm_resnet50: tuple[object, dict[str, object]], out_indices: tuple[int, ...] | None
) -> None:
    timm = pytest.importorskip("timm")
    torch = pytest.importorskip("torch")
    _, state = timm_resnet50
    kwargs = {} if out_indices is None else {"out_indices": out_indices}
    ref = timm.create_model("resnet50", pretrained=False, features_only=True, **kwargs).eval()
    ref.load_state_dict({k: v for k, v in state.items() if k in ref.state_dict()})
    feats = _load("resnet50").features(out_indices)
    ours = feats.to_torch(weights=state).eval()  # the full checkpoint, strict
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = ours(x), ref(x)
    assert list(got) == [p.module for p in feats.feature_info]
    assert len(got) == len(want)
    for a, b in zip(got.values(), want, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # The state_dict is the prefix of the full one that the features need.
    keys = list(ours.state_dict())
    assert keys == [k for k in state if k in set(keys)]
    assert keys == list(state)[:len(keys)]
