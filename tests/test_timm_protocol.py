"""timm's model protocol on generated networks, and `resdsl.timm`'s registration with
`timm.create_model`.

The conformance checks are written from what timm 1.0.31's own tests/test_models.py checks of
every timm model (`test_model_forward`, `test_model_backward`, `test_model_default_cfgs`,
`test_model_forward_features`, `test_model_forward_intermediates`), none of its code vendored,
and run for every shipped spec through `timm.create_model` at a small input (64×64, 32×32 for
the CIFAR networks, 96×96 for Inception-ResNet-v2's unpadded stem). The expected values come
from timm: its models' `feature_info` and `forward_intermediates` with their weights copied
in (norms randomised), its `param_groups_layer_decay`, its `checkpoint_seq` (which updates
BatchNorm's statistics twice per step: the flaw `set_grad_checkpointing` avoids).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import resdsl
from resdsl.arguments import ArgumentError
from resdsl.ir.protocol import NoProtocol, protocol
from tests.conftest import SPECS

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from timm.models._features import FeatureGetterNet  # noqa: E402

import resdsl.timm as rtimm  # noqa: E402
from tests.test_attention_specs_byob import randomised  # noqa: E402

CLASSES = 5
# The networks without a classifier head (segmentation, detection): no protocol.
DENSE = ("deeplabv3_resnet50", "fcn_resnet50", "resnet50_fpn", "unet_resnet34")
ALL = sorted(p.stem for p in SPECS.glob("*.res"))
CLASSIFIERS = [s for s in ALL if s not in DENSE]
# timm's test_model_default_cfgs reads these fields of every model's pretrained_cfg.
CFG_FIELDS = ("input_size", "pool_size", "first_conv", "classifier", "mean", "std",
              "crop_pct", "interpolation", "num_classes")


# Checked in training mode (deterministic: no dropout), where eval mode's fresh statistics
# (mean 0, variance 1) do not normalise: 333 pre-activation residual additions overflow.
TRAIN_MODE = ("preact_resnet1001",)


def size(spec: str) -> int:
    """The small input side a spec is checked at: 32 (1×1 at stride 32) where its head is
    still its head there, else 64; 96 for Inception-ResNet-v2, whose unpadded stem needs at
    least 75."""
    if spec == "inception_resnet_v2":
        return 96
    try:  # at 32, a 2×2 pool of a 2×2 map is a global pool: DenseNet's head would begin there
        protocol(resdsl.load(str(SPECS / f"{spec}.res"), input_shape=(3, 32, 32)).graph)
    except NoProtocol:
        return 64
    return 32


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def registered() -> list[str]:
    return rtimm.register_folder(SPECS)


def test_register_folder_registers_every_classifier(registered: list[str]) -> None:
    assert registered == [f"resdsl_{s}" for s in CLASSIFIERS]
    assert set(registered) <= set(timm.list_models("resdsl_*"))
    # timm's own models keep their names: resnet50 is still timm's class.
    assert type(timm.create_model("resnet18")).__module__.startswith("timm.")


# ---------------------------------------------------------------------- conformance


def hooked(model: Any, x: Any) -> list[Any]:
    """The feature points' tensors as forward hooks on their modules see them in the
    model's own forward."""
    seen: dict[int, Any] = {}
    handles = [model.get_submodule(info["module"]).register_forward_hook(
        lambda _m, _i, out, k=k: seen.setdefault(k, out))
        for k, info in enumerate(model.feature_info)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return [seen[k] for k in range(len(model.feature_info))]


@pytest.mark.parametrize("spec", CLASSIFIERS)
def test_timm_conformance(spec: str, registered: list[str]) -> None:
    name = f"resdsl_{spec}"
    side = size(spec)
    model = timm.create_model(name, num_classes=CLASSES, img_size=side)
    model.train(spec in TRAIN_MODE)
    points = resdsl.load(str(SPECS / f"{spec}.res"), input_shape=(3, side, side)).feature_info
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    cfg = model.pretrained_cfg
    # default_cfg: the fields, first_conv and classifier naming weights of the state_dict.
    assert set(CFG_FIELDS) <= set(cfg) and model.default_cfg is cfg
    assert cfg["input_size"] == (3, side, side) and cfg["num_classes"] == CLASSES
    state = model.state_dict()
    assert state[cfg["first_conv"] + ".weight"].shape[1] == 3
    assert state[cfg["classifier"] + ".weight"].shape[0] == CLASSES
    assert model.get_classifier() is model.get_submodule(cfg["classifier"])
    assert len(cfg["mean"]) == len(cfg["std"]) == 3
    with torch.no_grad():
        out = model(x)
        features = model.forward_features(x)
        pre = model.forward_head(features, pre_logits=True)
        assert out.shape == (2, CLASSES) and torch.isfinite(out).all()
        assert features.shape == (2, model.num_features, *cfg["pool_size"])
        assert torch.equal(model.forward_head(features), out)
        assert pre.shape == (2, model.head_hidden_size)
        # forward_intermediates: the forward's own tensors, at feature_info's channels and
        # reductions, the final one forward_features'.
        final, taken = model.forward_intermediates(x)
        assert torch.equal(final, features)
        seen = hooked(model, x)
        assert len(taken) == len(seen) == len(model.feature_info)
        for t, s, info in zip(taken, seen, model.feature_info, strict=True):
            assert torch.equal(t, s), info
            assert t.shape[1] == info["num_chs"]
            assert t.shape[1:] == points[info["index"]].shape  # the graph's shape
            if spec != "inception_resnet_v2":  # unpadded convs: 96 → 45, 21, 9, 4
                assert side // t.shape[-1] == info["reduction"], info
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [torch.equal(a, b) for a, b in zip(last_two, taken[-2:], strict=True)] == [True] * 2
        early, first = model.forward_intermediates(x, indices=[0], stop_early=True)
        assert torch.equal(first[0], taken[0]) and torch.equal(early, taken[0])
        # reset_classifier: 0 gives the pooled (pre-logits) features, (0, "") the unpooled.
        model.reset_classifier(0)
        assert torch.equal(model(x), pre) and model.num_classes == 0
        model.reset_classifier(0, "")
        assert torch.equal(model(x), features)
        model.reset_classifier(3, cfg_pool(model))
        assert model(x).shape == (2, 3) and model.num_classes == 3
    # backward: every parameter gets a gradient.
    model.train()
    model(x).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    # features_only: timm's FeatureGetterNet over the model gives its intermediates.
    model.train(spec in TRAIN_MODE)
    with torch.no_grad():
        expected = model.forward_intermediates(x, intermediates_only=True)
        getter = FeatureGetterNet(model, out_indices=tuple(range(len(model.feature_info))))
        got = getter(x)
    assert getter.feature_info.channels() == [t.shape[1] for t in got]
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def cfg_pool(model: Any) -> str:
    return str(model.timm_spec["global_pool"])


@pytest.mark.parametrize("spec", ["resnet50", "densenet121", "mobilenet_v2", "dpn68",
                                  "convnext_tiny", "inception_resnet_v2", "preact_resnet164"])
def test_features_only_matches_the_cut_network(spec: str, registered: list[str]) -> None:
    """features_only (timm's FeatureGetterNet over forward_intermediates, the unneeded
    stages pruned) gives what resdsl's own cut network (`Network.features`, another code
    path) gives with the same weights (the seeded initial ones: each key draws its own)."""
    side = size(spec)
    indices = (1, 2) if spec != "preact_resnet164" else (0, 1)
    model = timm.create_model(f"resdsl_{spec}", features_only=True, out_indices=indices,
                              img_size=side).eval()
    full = resdsl.load(str(SPECS / f"{spec}.res"), input_shape=(3, side, side))
    cut = full.features(indices)
    reference = cut.to_torch(seed=0).eval()
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model(x)
        expected = list(reference(x).values())
    assert model.feature_info.channels() == [p.num_chs for p in cut.feature_info]
    assert model.feature_info.reduction() == [p.reduction for p in cut.feature_info]
    assert len(got) == len(expected) == 2
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # Pruned: no weight beyond the last point (nor the head) is left.
    assert sum(p.numel() for p in model.parameters()) == cut.counts().params


# ---------------------------------------------------------------------- against timm's models

# Specs and their timm counterparts (same architecture; timm 1.0.31's feature_info). Where
# the module names differ, the spec's comes first, then timm's: torchvision's names (`relu`,
# where timm says `act1`), DenseNet's stem relu (timm's `norm0` is a BatchNormAct2d), DPN's
# final bn-act (timm takes `conv5_3` and applies it in forward_features), byobnet's
# `final_conv` (an nn.Identity in timm's gcresnext26ts and resnext26ts, so the spec has no
# node there), ResNet-v2's final norm-act (timm names the stage before it and applies its
# `norm` in forward_features).
COUNTERPARTS = {
    "resnet50": ("resnet50", {"relu": "act1"}),
    "resnet50d": ("resnet50d", {}),
    "resnet26t": ("resnet26t", {}),
    "ecaresnet26t": ("ecaresnet26t", {}),
    "resnext26ts": ("resnext26ts", {"stages.3": "final_conv"}),
    "gcresnext26ts": ("gcresnext26ts", {"stages.3": "final_conv"}),
    "sebotnet33ts_256": ("sebotnet33ts_256", {}),
    "convnext_tiny": ("convnext_tiny", {}),
    "resnetv2_50": ("resnetv2_50", {"relu": "stages.3"}),
    "densenet121": ("densenet121", {"features.relu0": "features.norm0",
                                    "relu": "features.norm5"}),
    "dpn68": ("dpn68", {"features.conv5_bn_ac": "features.conv5_3"}),
    "inception_resnet_v2": ("inception_resnet_v2", {}),
    "res2net50_26w_4s": ("res2net50_26w_4s", {"relu": "act1"}),
    "resnest50d_4s2x40d": ("resnest50d_4s2x40d", {}),
    "skresnext50_32x4d": ("skresnext50_32x4d", {"relu": "act1"}),
    "seresnet50": ("seresnet50", {"relu": "act1"}),
    "resnext50_32x4d": ("resnext50_32x4d", {"relu": "act1"}),
    "wide_resnet50_2": ("wide_resnet50_2", {"relu": "act1"}),
    "resnet18": ("resnet18", {"relu": "act1"}),
}


@pytest.mark.parametrize("spec", sorted(COUNTERPARTS))
def test_feature_info_is_timms(spec: str) -> None:
    name, renamed = COUNTERPARTS[spec]
    ours = timm_info(resdsl.load(str(SPECS / f"{spec}.res")).to_python(), renamed)
    theirs = [(d["module"], d["num_chs"], d["reduction"])
              for d in timm.create_model(name, pretrained=False).feature_info]
    assert ours == theirs


def timm_info(source: str, renamed: dict[str, str]) -> list[tuple[str, int, int]]:
    """The generated class's feature_info, module names mapped to timm's."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    root: Any = next(v for v in namespace.values()
                     if isinstance(v, type) and getattr(v, "timm_spec", None))
    return [(renamed.get(d["module"], d["module"]), d["num_chs"], d["reduction"])
            for d in root.timm_spec["feature_info"]]


@pytest.mark.parity
@pytest.mark.parametrize("spec", ["resnet50d", "convnext_tiny", "gcresnext26ts",
                                  "sebotnet33ts_256"])
def test_forward_intermediates_match_timms(spec: str) -> None:
    """With timm's weights copied in (norms randomised), forward_intermediates gives timm's
    intermediates, and its final features timm's."""
    side = 64 if spec != "sebotnet33ts_256" else 256
    reference = randomised(timm.create_model(spec, pretrained=False, num_classes=CLASSES,
                                             img_size=side) if spec == "sebotnet33ts_256"
                           else timm.create_model(spec, pretrained=False,
                                                  num_classes=CLASSES), seed=0)
    net = resdsl.load(str(SPECS / f"{spec}.res"), classes=CLASSES,
                      input_shape=(3, side, side))
    model: Any = net.to_torch(weights=reference.state_dict()).eval()
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        final, taken = model.forward_intermediates(x)
        ref_final, ref_taken = reference.forward_intermediates(x)
    assert len(taken) == len(ref_taken)
    for a, b in zip([*taken, final], [*ref_taken, ref_final], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * max(1.0, b.abs().max().item()))


# ---------------------------------------------------------------------- checkpointing


def bytes_saved(model: Any, x: Any) -> tuple[Any, int]:
    """The output, and the bytes of the tensors autograd saves for the backward pass (a
    checkpointed block saves its input only: its own are recomputed)."""
    total = 0

    def pack(t: Any) -> Any:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    return out, total


@pytest.mark.parametrize("spec", ["resnet50_droppath", "densenet121", "mobilenet_v2"])
def test_grad_checkpointing_keeps_the_step(spec: str) -> None:
    """One training step (forward, backward) with checkpointing gives the step without:
    outputs, gradients, BatchNorm running statistics updated once (num_batches_tracked 1),
    drop path's random draws (resnet50_droppath at rate 0.2) the same; with fewer bytes saved
    for backward."""
    params: dict[str, Any] = {"drop_path_rate": 0.2} if spec == "resnet50_droppath" else {}
    net = resdsl.load(str(SPECS / f"{spec}.res"), classes=CLASSES, input_shape=(3, 64, 64),
                      **params)
    plain: Any = net.to_torch(seed=0).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.set_grad_checkpointing()
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    out, plain_bytes = bytes_saved(plain, x)
    out.square().mean().backward()
    torch.manual_seed(0)
    out_c, checkpointed_bytes = bytes_saved(checkpointed, x)
    out_c.square().mean().backward()
    assert torch.equal(out, out_c)
    grads = dict(checkpointed.named_parameters())
    for key, p in plain.named_parameters():
        torch.testing.assert_close(grads[key].grad, p.grad, rtol=1e-5, atol=1e-6)
    buffers = dict(checkpointed.named_buffers())
    for key, b in plain.named_buffers():
        assert torch.equal(buffers[key], b), key
        if key.endswith("num_batches_tracked"):
            assert int(b) == 1
    assert checkpointed_bytes < 0.6 * plain_bytes


def test_timms_checkpoint_seq_counts_batchnorm_twice() -> None:
    """The flaw the test above would catch: timm's checkpoint_seq over the same stage
    re-runs BatchNorm's forward in training mode, which updates its statistics again."""
    from timm.models._manipulate import checkpoint_seq

    net = resdsl.load(str(SPECS / "resnet18.res"), classes=CLASSES, input_shape=(3, 64, 64))
    model: Any = net.to_torch(seed=0).train()
    x = torch.randn(2, 64, 16, 16, requires_grad=True)
    checkpoint_seq(model.layer1, x).sum().backward()
    assert int(model.layer1[0].bn1.num_batches_tracked) == 2


# ---------------------------------------------------------------------- layer decay


def test_group_matcher_drives_timms_layer_decay() -> None:
    from timm.optim._param_groups import param_groups_layer_decay

    model: Any = resdsl.load(str(SPECS / "resnet50.res"), classes=CLASSES,
                        input_shape=(3, 64, 64)).to_torch()
    groups = param_groups_layer_decay(model, weight_decay=0.0, layer_decay=0.5)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert sum(len(g["params"]) for g in groups) == len(named) == len(scale)
    # timm's resnet50 (fine): stem, 16 blocks, head: 18 layers, decay 0.5 per layer.
    assert scale[id(named["conv1.weight"])] == 0.5 ** 17
    assert scale[id(named["layer1.0.conv1.weight"])] == 0.5 ** 16
    assert scale[id(named["layer4.2.bn3.bias"])] == 0.5
    assert scale[id(named["fc.weight"])] == 1.0
    coarse = model.group_matcher(coarse=True)
    assert [pattern for pattern, _ in coarse["blocks"]] == [
        rf"^(?:layer{i})(?:\.|$)" for i in range(1, 5)]


# ---------------------------------------------------------------------- registration


def test_create_model_maps_keyword_arguments(registered: list[str]) -> None:
    model = timm.create_model("resdsl_resnet50_droppath", num_classes=10, in_chans=1,
                              drop_path_rate=0.1, img_size=64)
    assert model.fc.out_features == 10 and model.conv1.in_channels == 1
    assert model.pretrained_cfg["input_size"] == (1, 64, 64)
    # timm's rule (timm/models/resnet.py): block j of 16 drops with 0.1 * j / 15.
    assert model.layer4[2].drop_path_p == pytest.approx(0.1)
    assert model.layer1[1].drop_path_p == pytest.approx(0.1 / 15)
    features = timm.create_model("resdsl_resnet50", num_classes=10, in_chans=1,
                                 features_only=True, out_indices=(1, 2, 3), img_size=64)
    outs = features(torch.randn(2, 1, 64, 64))
    assert [o.shape[1] for o in outs] == features.feature_info.channels() == [256, 512, 1024]
    headless = timm.create_model("resdsl_resnet18", num_classes=0, img_size=64)
    assert headless(torch.randn(1, 3, 64, 64)).shape == (1, 512)
    # a network parameter by its own name
    assert len(timm.create_model("resdsl_resnet20", depth=8).layer1) == 1


def test_register_zoo_names_timms_models_by_their_names() -> None:
    """`register_zoo(PATTERN)` registers the zoo's names that `resdsl zoo PATTERN` lists:
    `timm.create_model("resdsl_timm_resnet18d")` is timm's resnet18d written by a spec (its
    state_dict keys and shapes, in timm's order), with timm's keyword arguments."""
    names = rtimm.register_zoo("*resnet18*")
    assert names == ["resdsl_timm_resnet18", "resdsl_timm_resnet18d", "resdsl_timm_seresnet18",
                     "resdsl_timm_skresnet18", "resdsl_tv_resnet18"]
    ours = timm.create_model("resdsl_timm_resnet18d", num_classes=10, img_size=64)
    with torch.device("meta"):
        theirs = timm.create_model("resnet18d", num_classes=10)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()]
    assert ours(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert timm.create_model("resdsl_tv_resnet18").fc.out_features == 1000


def test_pretrained_cfg_takes_the_networks_preprocessing_parameters(tmp_path: Path) -> None:
    """A network's parameters named as timm's pretrained_cfg fields (mean, std, crop_pct,
    interpolation) are its pretrained_cfg, in the module and in the standalone source, and
    -D changes them; without them, timm's ImageNet defaults (timm/models/resnet.py `_cfg`)."""
    spec = tmp_path / "pp.res"
    spec.write_text(
        'network pp(classes = 10, mean = [0.5], std = [0.25, 0.5, 0.75], crop_pct = 0.9,\n'
        '           interpolation = "bicubic") {\n'
        "    input [3, 32, 32]\n    conv(8, 3); bn; relu; global_avgpool; flatten\n"
        "    fc: linear(classes)\n}\n", encoding="utf-8")
    net = resdsl.load(str(spec))
    cfg = pretrained_cfg(net.to_torch())
    assert (cfg["mean"], cfg["std"]) == ((0.5, 0.5, 0.5), (0.25, 0.5, 0.75))
    assert (cfg["crop_pct"], cfg["interpolation"]) == (0.9, "bicubic")
    namespace: dict[str, Any] = {}
    exec(compile(net.to_python(), "pp.py", "exec"), namespace)
    assert pretrained_cfg(namespace["Pp"]()) == cfg
    assert pretrained_cfg(resdsl.load(str(spec), crop_pct=1.0).to_torch())["crop_pct"] == 1.0
    default = pretrained_cfg(resdsl.load(str(SPECS / "resnet18.res")).to_torch())
    assert (default["mean"], default["std"], default["crop_pct"], default["interpolation"]) == (
        (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 0.875, "bilinear")


def pretrained_cfg(model: Any) -> dict[str, Any]:
    return dict(model.pretrained_cfg)


def test_create_model_loads_a_checkpoint_and_hooks_features(registered: list[str],
                                                            tmp_path: Path) -> None:
    """timm's checkpoint_path loads into the model; feature_cls="hook" (timm's
    FeatureHookNet, hooks on the whole forward) gives forward_intermediates' tensors."""
    source: Any = timm.create_model("resdsl_resnet20", seed=3).eval()
    torch.save(source.state_dict(), tmp_path / "r20.pth")
    loaded = timm.create_model("resdsl_resnet20", checkpoint_path=str(tmp_path / "r20.pth"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), source(x))
        hooked_net = timm.create_model("resdsl_resnet20", seed=3, features_only=True,
                                       feature_cls="hook", out_indices=(0, 2)).eval()
        expected = source.forward_intermediates(x, indices=[0, 2], intermediates_only=True)
        got = hooked_net(x)
    assert [torch.equal(a, b) for a, b in zip(got, expected, strict=True)] == [True, True]


@pytest.mark.parametrize("kwargs, says", [
    ({"pretrained": True}, "no pretrained weights"),
    ({"drop_path_rate": 0.1}, "has no parameter `drop_path_rate`"),
    ({"drop_rate": 0.2}, "has no parameter `drop_rate`"),
    ({"qux": 1}, "has no parameter `qux`"),
    ({"features_only": True, "out_indices": (5,)}, "index 5 is out of range"),
    ({"features_only": True, "feature_cls": "list"}, "feature_cls='list'"),
    ({"global_pool": "max"}, "pools with 'avg' only"),
    ({"img_size": 32, "name": "resdsl_densenet121"}, "at input 3×32×32"),
])
def test_create_model_refuses_what_the_spec_cannot_honour(
        kwargs: dict[str, Any], says: str, registered: list[str]) -> None:
    kwargs = {"name": "resdsl_resnet18", "img_size": 64, **kwargs}
    with pytest.raises((ArgumentError, ValueError), match=None) as info:
        timm.create_model(kwargs.pop("name"), **kwargs)
    assert says in str(info.value)


def test_register_refuses_timms_own_names_and_dense_networks() -> None:
    with pytest.raises(ArgumentError, match="timm already has a model `resnet50`"):
        rtimm.register(SPECS / "resnet50.res", "resnet50")
    for spec in DENSE:
        with pytest.raises(ArgumentError, match="not a classifier"):
            rtimm.register(SPECS / f"{spec}.res")
        with pytest.raises(NoProtocol):
            protocol(resdsl.load(str(SPECS / f"{spec}.res")).graph)


def test_register_overrides_pretrained_cfg(tmp_path: Path) -> None:
    name = rtimm.register(SPECS / "resnet20.res", "resdsl_test_cifar",
                          pretrained_cfg={"mean": (0.49, 0.48, 0.45), "crop_pct": 1.0})
    model = timm.create_model(name)
    assert model.pretrained_cfg["mean"] == (0.49, 0.48, 0.45)
    assert model.pretrained_cfg["crop_pct"] == 1.0
    assert timm.models.get_pretrained_cfg(name).crop_pct == 1.0


# ---------------------------------------------------------------------- standalone source


def test_standalone_source_carries_the_protocol() -> None:
    """The file `compile --to python` writes has the protocol without resdsl: a pickled
    and deep-copied model keeps its reset head."""
    net = resdsl.load(str(SPECS / "resnet20.res"))
    source = net.to_python()
    assert "resdsl" not in source.split('"""', 2)[2].replace("generated by resdsl", "")
    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    model = namespace["Resnet20"]()
    model.load_state_dict(net.to_torch(seed=0).state_dict())
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.forward_head(model.forward_features(x)), model(x))
    live: Any = net.to_torch(seed=0)
    live.reset_classifier(4)
    clone = copy.deepcopy(live)
    assert clone.num_classes == 4 and clone.fc.out_features == 4


def test_reset_classifier_initialises_as_the_spec() -> None:
    """The new head draws from the spec's initialiser's distributions (resdsl/weights/
    init.py): a linear's weight and bias U(±1/√in); a 1×1 conv's weight N(0, 2/out) (Kaiming,
    fan out), its bias U(±1/√in)."""
    model: Any = resdsl.load(str(SPECS / "resnet18.res"), input_shape=(3, 32, 32)).to_torch()
    model.reset_classifier(300)
    bound = 1 / 512 ** 0.5
    for t in (model.fc.weight, model.fc.bias):
        assert 0.95 * bound < float(t.detach().abs().max()) <= bound
    dpn: Any = resdsl.load(str(SPECS / "dpn68.res"), input_shape=(3, 32, 32)).to_torch()
    dpn.reset_classifier(400)
    std = float(dpn.classifier.weight.detach().std())
    assert dpn.classifier.weight.shape == (400, 832, 1, 1)
    assert abs(std - (2 / 400) ** 0.5) < 0.05 * (2 / 400) ** 0.5
    assert float(dpn.classifier.bias.detach().abs().max()) <= 1 / 832 ** 0.5
