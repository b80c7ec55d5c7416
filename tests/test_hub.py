"""The standalone class's constructor arguments (`num_classes`, `in_chans`) and the torch.hub
folder (`resdsl compile SPEC --to hub DIR`): loaded with `torch.hub.load(DIR, "resnet50",
source="local")` in a process where resdsl cannot be imported, it matches `to_torch()` with
the same weights, and torchvision's resnet50 whose weights they are.

The torch-only process: `python -S -s` (no site-packages processing, so no editable install
of resdsl) with PYTHONPATH a folder of links to the installed packages but resdsl's; it
asserts that `import resdsl` fails. One such process runs every load (module-scoped).
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from timm.models._manipulate import adapt_input_conv

import resdsl
from resdsl.backends.torch_module import module_class
from tests.conftest import ROOT, SPECS, run_cli
from tests.test_timm_base_specs import randomised

INPUT = (3, 64, 64)

_LOADS = r"""
import sys, torch
try:
    import resdsl
except ModuleNotFoundError:
    pass
else:
    raise SystemExit(f"resdsl is importable: {resdsl!r}")
hub, bare = sys.argv[1], sys.argv[2]
d = torch.load("inputs.pt")
out = {}
torch.set_grad_enabled(False)
hubconf = torch.hub._import_module("hubconf", hub + "/hubconf.py")  # torch.hub.load's way
out["entries"] = [n for n in dir(hubconf) if callable(getattr(hubconf, n)) and n[0] != "_"]
m = torch.hub.load(hub, "resnet50", source="local", pretrained=True).eval()
out["y"], out["state"] = m(d["x"]), m.state_dict()
out["default_fc"] = torch.hub.load(hub, "resnet50", source="local").fc.weight.shape
m = torch.hub.load(hub, "resnet50", source="local", pretrained=True, num_classes=10).eval()
out["y10"], out["state10"] = m(d["x"]), m.state_dict()
out["features10"] = m.forward_features(d["x"])
m = torch.hub.load(hub, "resnet50", source="local", pretrained=True, in_chans=1).eval()
out["y1"], out["conv1"] = m(d["x1"]), m.conv1.weight
m = torch.hub.load(hub, "resnet50", source="local", pretrained=True, num_classes=0).eval()
out["y0"] = m(d["x"])
errors = {}
for name, where, kwargs in [("no weights", bare, {"pretrained": True}),
                            ("drop_path_rate", hub, {"drop_path_rate": 0.1}),
                            ("classes", hub, {"classes": 10})]:
    try:
        torch.hub.load(where, "resnet50", source="local", **kwargs)
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"
out["errors"] = errors
out["modules"] = sorted({k.split(".")[0] for k, v in sys.modules.items() if v is not None}
                        & {"resdsl", "timm", "torchvision", "lark", "networkx"})
torch.save(out, "out.pt")
"""


def torch_only_path(where: Path) -> str:
    """A folder of links to every installed package but resdsl (and its editable install):
    the PYTHONPATH of a process that has PyTorch and not resdsl."""
    site = Path(sysconfig.get_paths()["purelib"])
    where.mkdir()
    for entry in site.iterdir():
        if entry.name.startswith(("resdsl", "_editable_impl_resdsl")) or entry.suffix == ".pth":
            continue
        (where / entry.name).symlink_to(entry)
    return str(where)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """torchvision 0.29.1's resnet50 with random weights and BatchNorm statistics, its
    checkpoint, the two hub folders (with and without weights) and what the torch-only
    process loaded from them."""
    tmp = tmp_path_factory.mktemp("hub")
    torch.manual_seed(0)
    ref = randomised(torchvision.models.resnet50(), seed=1)
    weights = tmp / "ref.pth"
    torch.save(ref.state_dict(), weights)
    hub, bare = tmp / "r50hub", tmp / "bare"
    run = run_cli("compile", "specs/resnet50.res", "--to", "hub", str(hub), "--weights",
                  str(weights))
    assert run.code == 0, run.err
    assert run.out.startswith(f"wrote {hub}: torch.hub folder of resnet50"), run.out
    run = run_cli("compile", "specs/resnet50.res", "--to", "hub", "-o", str(bare))
    assert run.code == 0, run.err
    gen = torch.Generator().manual_seed(2)
    x, x1 = torch.randn(2, *INPUT, generator=gen), torch.randn(2, 1, *INPUT[1:], generator=gen)
    torch.save({"x": x, "x1": x1}, tmp / "inputs.pt")
    env = {**os.environ, "PYTHONPATH": torch_only_path(tmp / "site"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-S", "-s", "-c", _LOADS, str(hub), str(bare)],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return {"ref": ref, "weights": weights, "hub": hub, "x": x, "x1": x1,
            "out": torch.load(tmp / "out.pt")}


@pytest.mark.parity
def test_hub_folder_loads_without_resdsl_and_matches_to_torch(reference: dict[str, Any]
                                                              ) -> None:
    out, x = reference["out"], reference["x"]
    assert out["entries"] == ["resnet50"] and out["modules"] == []
    ours = resdsl.load(str(SPECS / "resnet50.res")).to_torch(
        weights=str(reference["weights"])).eval()
    with torch.no_grad():
        expected, torchvisions = ours(x), reference["ref"](x)
    # The same source and the same weights: the same numbers.
    torch.testing.assert_close(out["y"], expected, rtol=0, atol=0)
    assert list(out["state"]) == list(ours.state_dict())
    for key, value in ours.state_dict().items():
        assert torch.equal(out["state"][key], value), key
    torch.testing.assert_close(out["y"], torchvisions, rtol=1e-4, atol=1e-5)
    assert out["default_fc"] == (1000, 2048)


def test_hub_num_classes_gives_a_new_classifier(reference: dict[str, Any]) -> None:
    out, ref = reference["out"], reference["ref"]
    state, checkpoint = out["state10"], ref.state_dict()
    assert out["y10"].shape == (2, 10)
    assert state["fc.weight"].shape == (10, 2048) and state["fc.bias"].shape == (10,)
    assert list(state) == list(checkpoint)
    for key, value in checkpoint.items():
        if not key.startswith("fc."):
            assert torch.equal(state[key], value), key
    # The spec's initialiser of a linear (resdsl.weights.init): U(-b, b), b = 1/sqrt(in).
    bound = 1 / math.sqrt(2048)
    for key in ("fc.weight", "fc.bias"):
        assert 0 < float(state[key].abs().max()) <= bound, key
    with torch.no_grad():
        features = torch.nn.Sequential(*list(ref.children())[:-2])(reference["x"])
    torch.testing.assert_close(out["features10"], features, rtol=1e-4, atol=1e-5)
    # num_classes=0: no classifier, the pooled features (timm's convention).
    torch.testing.assert_close(out["y0"], features.mean((2, 3)), rtol=1e-4, atol=1e-5)


def test_hub_in_chans_adapts_the_first_conv_as_timm(reference: dict[str, Any]) -> None:
    out, ref = reference["out"], reference["ref"]
    # timm 1.0.31's adapt_input_conv: the expected weights for 1 channel.
    expected = adapt_input_conv(1, ref.conv1.weight.detach())
    assert torch.equal(out["conv1"], expected)
    gray = torchvision.models.resnet50()
    gray.load_state_dict(ref.state_dict())
    gray.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    with torch.no_grad():
        gray.conv1.weight.copy_(expected)
        torch.testing.assert_close(out["y1"], gray.eval()(reference["x1"]), rtol=1e-4,
                                   atol=1e-5)


def test_hub_refuses_clearly(reference: dict[str, Any]) -> None:
    errors = reference["out"]["errors"]
    assert errors["no weights"].startswith("RuntimeError: resnet50(pretrained=True): this hub "
                                           "folder has no weights")
    assert "--weights FILE" in errors["no weights"]
    assert errors["drop_path_rate"].startswith("TypeError: resnet50() got drop_path_rate, "
                                               "which this hub folder cannot honour")
    assert "takes pretrained, num_classes, in_chans only" in errors["drop_path_rate"]
    assert "classes is a parameter of the spec" in errors["classes"]
    assert "-D NAME=VALUE" in errors["classes"]


# ------------------------------------------------------------------ the folder


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "__pycache__")


def test_hub_folder_is_rewritten_whole(tmp_path: Path) -> None:
    """A second write replaces the folder's files: the new ones are named by their contents,
    hubconf.py is written last and the earlier ones are removed after it."""
    folder = tmp_path / "hub"
    for seed in (1, 2):
        weights = tmp_path / f"w{seed}.pth"
        torch.save(resdsl.load(str(SPECS / "resnet20.res")).to_torch(seed=seed).state_dict(),
                   weights)
        run = run_cli("compile", "specs/resnet20.res", "--to", "hub", str(folder),
                      "--weights", str(weights))
        assert run.code == 0, run.err
    files = _files(folder)
    assert len(files) == 3 and files[0] == "hubconf.py", files
    hubconf = (folder / "hubconf.py").read_text(encoding="utf-8")
    (source,) = (f for f in files if f.endswith(".py") and f != "hubconf.py")
    (checkpoint,) = (f for f in files if f.endswith(".pth"))
    assert f"_SOURCE = {source!r}" in hubconf and f"_WEIGHTS = {checkpoint!r}" in hubconf
    state = torch.load(folder / checkpoint)
    assert torch.equal(state["conv1.weight"], torch.load(tmp_path / "w2.pth")["conv1.weight"])
    # Without weights: the checkpoint goes too.
    assert run_cli("compile", "specs/resnet20.res", "--to", "hub", str(folder)).code == 0
    assert _files(folder) == ["hubconf.py", source]


def test_hub_refuses_folders_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x", encoding="utf-8")
    run = run_cli("compile", "specs/resnet20.res", "--to", "hub", str(tmp_path / "mine"))
    assert run.code == 2 and "no hubconf.py that resdsl wrote" in run.err
    assert _files(tmp_path / "mine") == ["notes.txt"]
    (tmp_path / "file").write_text("x", encoding="utf-8")
    run = run_cli("compile", "specs/resnet20.res", "--to", "hub", str(tmp_path / "file"))
    assert run.code == 2 and "it is a file" in run.err
    run = run_cli("compile", "specs/resnet20.res", "--to", "hub", str(tmp_path / "a"), "-o",
                  str(tmp_path / "b"))
    assert run.code == 2 and "two outputs" in run.err
    run = run_cli("compile", "specs/resnet20.res", "--to", "hub", str(tmp_path / "a"), "extra")
    assert run.code == 2 and "unrecognized arguments" in run.err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_hub_without_weights_needs_no_torch(tmp_path: Path) -> None:
    argv = ["compile", "specs/resnet20.res", "--to", "hub", str(tmp_path / "h")]
    code = ("import sys; sys.modules['torch'] = None; from resdsl.cli import main; "
            f"sys.exit(main({argv!r}))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert _files(tmp_path / "h")[0] == "hubconf.py"


# ------------------------------------------------------------------ the class's arguments


def test_the_class_takes_num_classes_and_in_chans() -> None:
    """The defaults build the spec's network; other values change the classifier and the
    first conv only, initialised as the spec initialises them (resdsl.weights.init: a
    linear U(-1/sqrt(in), 1/sqrt(in)); a conv Kaiming normal, fan out)."""
    net = resdsl.load(str(SPECS / "resnet50.res"), input_shape=INPUT)
    cls: Any = module_class(net.graph)
    default, changed = cls(), cls(num_classes=10, in_chans=5)
    assert list(default.state_dict()) == list(net.state_shapes())
    shapes = {k: tuple(v.shape) for k, v in changed.state_dict().items()}
    assert shapes == {**net.state_shapes(), "conv1.weight": (64, 5, 7, 7),
                      "fc.weight": (10, 2048), "fc.bias": (10,)}
    assert changed.num_classes == 10 and changed(torch.randn(1, 5, *INPUT[1:])).shape == (1, 10)
    std = float(changed.conv1.weight.detach().std())
    assert abs(std - math.sqrt(2 / (64 * 7 * 7))) < 0.05 * std
    assert isinstance(cls(num_classes=0).fc, torch.nn.Identity)
    # Pickling (torch.save, deepcopy, multiprocessing) rebuilds it with its arguments.
    copied = pickle.loads(pickle.dumps(changed))
    assert copied.in_chans == 5 and copied.num_classes == 10
    for key, value in changed.state_dict().items():
        assert torch.equal(copied.state_dict()[key], value), key
    with pytest.raises(ValueError, match="in_chans=0"):
        cls(in_chans=0)


def test_a_network_without_a_head_takes_in_chans_only() -> None:
    """resnet50_fpn returns a dict of maps: no classifier to resize; its input is read by
    its first conv alone, so in_chans works."""
    net = resdsl.load(str(SPECS / "resnet50_fpn.res"), input_shape=INPUT)
    model = module_class(net.graph)(in_chans=1).eval()
    with pytest.raises(TypeError):
        module_class(net.graph)(num_classes=10)
    assert set(model(torch.randn(1, 1, *INPUT[1:]))) == set(net.graph.outputs)


@pytest.mark.parametrize("fail_on", ["pth", "hubconf.py"])
def test_a_failed_write_keeps_the_folder_that_was_there(tmp_path: Path, fail_on: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails (a full disk) while the checkpoint or hubconf.py is written leaves
    the earlier hubconf.py and every file it reads as they were; a new folder is not made."""
    from resdsl.backends import torch_hub

    net = resdsl.load(str(SPECS / "resnet20.res"))
    weights = []
    for seed in (1, 2):
        weights.append(tmp_path / f"w{seed}.pth")
        torch.save(net.to_torch(seed=seed).state_dict(), weights[-1])
    folder = tmp_path / "hub"
    net.save_hub(folder, weights=str(weights[0]))
    before = {name: (folder / name).read_bytes() for name in _files(folder)}
    real = torch_hub.write_atomic  # type: ignore[attr-defined]

    def failing(path: str, write: Any, inputs: Any = (), mode: Any = None) -> None:
        if path.endswith(fail_on):
            raise resdsl.UsageError(f"cannot write `{path}`: no space left on device")
        real(path, write, inputs, mode)

    monkeypatch.setattr(torch_hub, "write_atomic", failing)
    for target in (folder, tmp_path / "new"):
        with pytest.raises(resdsl.UsageError, match="no space left"):
            net.save_hub(target, weights=str(weights[1]))
    assert {name: (folder / name).read_bytes() for name in before} == before
    hubconf = before["hubconf.py"].decode("utf-8")
    assert all(f"{name!r}" in hubconf for name in before if name != "hubconf.py")
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub", "w1.pth", "w2.pth"]
