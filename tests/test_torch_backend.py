"""The PyTorch backend: the lowering table, the generated module and source, `compile`.

Output parity against torchvision/timm is in test_torch_parity.py; torch.compile, export and
DDP in test_torch_ecosystem.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import resdsl  # noqa: E402
from resdsl.backends.torch_lowering import LOWERINGS  # noqa: E402
from resdsl.backends.torch_source import generate  # noqa: E402
from resdsl.ir.ops import OPS  # noqa: E402
from resdsl.passes.names import RESERVED, is_reserved  # noqa: E402
from tests.conftest import ROOT, SPECS, run_cli, small_shape  # noqa: E402

ALL_SPECS = sorted(SPECS.glob("*.res"))
# A process in which `import resdsl` fails: what the standalone outputs must survive.
NO_RESDSL = "import sys; sys.modules['resdsl'] = None; "


def _python(code: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    run = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                         text=True, env={**os.environ, **(env or {})}, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout


# ------------------------------------------------------------------ the table


def test_every_op_has_a_lowering() -> None:
    assert sorted(set(OPS) - set(LOWERINGS)) == []
    assert sorted(set(LOWERINGS) - set(OPS)) == []


def _module_attributes() -> set[str]:
    """Every attribute an nn.Module has in this torch: its class's (methods, private ones
    included) and each instance's own (`_modules`, `_parameters`, `training`, ...)."""
    module = torch.nn.Module()
    return set(dir(module)) | set(vars(module))


def test_reserved_module_names_cover_this_torch() -> None:
    """RESERVED is written out so that `check` needs no torch; with the `__` rule it must
    cover every attribute of this torch's nn.Module."""
    attributes = _module_attributes()
    assert sorted(n for n in attributes if not is_reserved(n)) == []
    # The rule's two halves: the list holds exactly the names the `__` prefix does not.
    assert not any(n.startswith("__") for n in RESERVED)
    assert {n for n in attributes if not n.startswith("__")} <= RESERVED


def test_check_refuses_every_reserved_name(tmp_path: Path) -> None:
    """Each attribute of nn.Module, as a statement name, is E0703 at `check`: none reaches
    the backend (where `__init__` or `_modules` broke the module)."""
    spec = tmp_path / "n.res"
    for name in sorted(_module_attributes()):
        spec.write_text(f"network n {{\n    input [3, 8, 8]\n    {name}: conv(4, 3)\n}}\n",
                        encoding="utf-8")
        with pytest.raises(resdsl.SpecError) as info:
            resdsl.load(str(spec))
        (diagnostic,) = info.value.diagnostics
        assert diagnostic.code == "E0703" and f"`{name}`" in diagnostic.message, name


# ------------------------------------------------------------------ the module


@pytest.mark.parametrize("spec", ALL_SPECS, ids=[p.stem for p in ALL_SPECS])
def test_module_has_the_graph_state(spec: Path) -> None:
    net = resdsl.load(str(spec))
    model = net.to_torch(seed=0)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == net.state_shapes()
    init = net.init_state(seed=0)
    for key, value in model.state_dict().items():
        assert torch.equal(value, torch.from_numpy(init[key])), key
    assert model.training


def test_the_same_seed_gives_the_same_weights_and_outputs() -> None:
    net = resdsl.load(str(SPECS / "resnet20.res"))
    a, b, c = net.to_torch(seed=1), net.to_torch(seed=1), net.to_torch(seed=2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))
    assert not torch.equal(a.state_dict()["conv1.weight"], c.state_dict()["conv1.weight"])


def test_zero_init_residual_reaches_the_module() -> None:
    model = resdsl.load(str(SPECS / "resnet18.res")).to_torch(zero_init_residual=True)
    state = model.state_dict()
    assert float(state["layer1.0.bn2.weight"].abs().sum()) == 0.0
    assert float(state["layer2.0.downsample.1.weight"].abs().sum()) > 0.0


def test_block_instances_share_classes() -> None:
    """Blocks of one structure are one class with their numbers as parameters, as in
    torchvision: ResNet-50 has two bottleneck classes (with and without a projection)."""
    model = resdsl.load(str(SPECS / "resnet50.res")).to_torch()
    names = {type(m).__name__ for m in model.modules()}
    assert names == {"Resnet50", "Bottleneck", "Bottleneck2", "Sequential", "Conv2d",
                     "BatchNorm2d", "Linear", "ReLU", "MaxPool2d", "AdaptiveAvgPool2d",
                     "Flatten"}


def test_relu_and_add_run_in_place_only_where_safe() -> None:
    source = resdsl.load(str(SPECS / "resnet18.res")).to_python()
    assert "torch.relu_(" in source and " += " in source
    # highway: H's relu output is read twice (by T·H and (1 − T)·x is x): never overwritten
    highway = resdsl.load(str(SPECS / "highway_cifar19.res")).to_python()
    assert "+= " not in highway


def test_gradients_flow_in_train_mode_with_in_place_ops() -> None:
    """Autograd raises if an in-place op overwrote a tensor a backward needs."""
    for name in ("resnet18", "densenet121", "dpn92", "highway_cifar19", "rezero_resnet56",
                 "seresnet50", "preact_resnet164"):
        net = resdsl.load(str(SPECS / f"{name}.res"), input_shape=_small(name))
        model = net.to_torch(seed=0)
        model(torch.randn(2, *net.input_shape)).square().mean().backward()
        assert all(p.grad is not None for p in model.parameters()), name


def _small(name: str) -> tuple[int, int, int]:
    return small_shape(name)


# ------------------------------------------------------------------ generated source


def test_generated_source_is_deterministic_across_processes() -> None:
    code = ("import resdsl; print(resdsl.load('specs/dpn92.res').to_python()); "
            "print(resdsl.load('specs/densenet121.res').to_python())")
    a = _python(code, ROOT, {"PYTHONHASHSEED": "1"})
    b = _python(code, ROOT, {"PYTHONHASHSEED": "2"})
    assert a == b and "class DualUnit" in a


def test_generation_needs_no_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None; import resdsl; "
            "print(len(resdsl.load('specs/resnet50.res').to_python()))")
    assert int(_python(code, ROOT)) > 1000


def test_compiled_resnet50_source_matches_torchvision_without_resdsl(tmp_path: Path) -> None:
    """The issue's acceptance: compile to Python, then in a process where resdsl cannot be
    imported, load a torchvision resnet50 state_dict strictly and match its outputs."""
    run = run_cli("compile", "specs/resnet50.res", "--to", "python", "-o",
                  str(tmp_path / "r50.py"))
    assert run.code == 0, run.err
    torch.manual_seed(0)
    ref = torchvision.models.resnet50().eval()
    # Non-trivial BN statistics, so that eval-mode BN is not the identity.
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = ref(x)
    torch.save({"state_dict": ref.state_dict(), "x": x, "y": expected}, tmp_path / "ref.pt")
    out = _python(
        NO_RESDSL + "import torch, r50; d = torch.load('ref.pt'); "
        "m = r50.Resnet50().eval(); m.load_state_dict(d['state_dict'], strict=True); "
        "y = m(d['x']); torch.testing.assert_close(y, d['y'], rtol=1e-4, atol=1e-5); "
        "assert (y.argmax(1) == d['y'].argmax(1)).all(); "
        "print(sorted(k.split('.')[0] for k, v in sys.modules.items() if v is not None and "
        "k.split('.')[0] in ('resdsl', 'torchvision', 'timm', 'lark', 'networkx')))",
        tmp_path,
    )
    assert out.strip() == "[]"


@pytest.mark.parametrize("spec", ["dpn92", "highway_cifar19", "rezero_resnet56",
                                  "preact_resnet164", "resnet20"])
def test_standalone_source_equals_the_module(spec: str, tmp_path: Path) -> None:
    net = resdsl.load(str(SPECS / f"{spec}.res"))
    (tmp_path / "model.py").write_text(net.to_python(), encoding="utf-8")
    model = net.to_torch(seed=3).eval()
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        y = model(x)
    torch.save({"sd": model.state_dict(), "x": x, "y": y}, tmp_path / "ref.pt")
    cls = generate(net.graph).class_name
    _python(
        NO_RESDSL + f"import torch, model; d = torch.load('ref.pt'); m = model.{cls}().eval(); "
        "m.load_state_dict(d['sd'], strict=True); "
        "torch.testing.assert_close(m(d['x']), d['y'], rtol=0, atol=0)",
        tmp_path,
    )


GOLDEN_SOURCES = ["resnet50", "dpn92", "res2net50_26w_4s"]


@pytest.mark.parametrize("spec", GOLDEN_SOURCES)
def test_generated_source_is_the_golden(spec: str) -> None:
    """The source stays as plain as torchvision's: any change to what the generator writes
    for these networks shows as a diff of tests/golden/compile/NAME.py.txt (the version in
    its first line aside). RESDSL_UPDATE_GOLDEN=1 rewrites them; review the diff."""
    source = resdsl.load(str(SPECS / f"{spec}.res")).to_python()
    source = source.replace(f"generated by resdsl {resdsl.__version__}.", "generated by resdsl.")
    golden = ROOT / "tests" / "golden" / "compile" / f"{spec}.py.txt"
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        golden.write_text(source, encoding="utf-8")
    assert source == golden.read_text(encoding="utf-8")


def test_generated_source_passes_ruff(tmp_path: Path) -> None:
    """The source reads like hand-written code: the linter finds nothing but long lines."""
    ruff = Path(sys.executable).parent / "ruff"
    for spec in ("resnet50", "dpn92", "densenet121", "highway_cifar19"):
        path = tmp_path / f"{spec}.py"
        path.write_text(resdsl.load(str(SPECS / f"{spec}.res")).to_python(), encoding="utf-8")
    run = subprocess.run([str(ruff), "check", "--isolated", "--select", "E,F,W,B", "--ignore",
                          "E501", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout


# ------------------------------------------------------------------ compile


def test_compile_torch_archive_loads_without_resdsl(tmp_path: Path) -> None:
    out = tmp_path / "r20.pt2"
    run = run_cli("compile", "specs/resnet20.res", "--to", "torch", "--seed", "4", "-o", str(out))
    assert run.code == 0, run.err
    assert f"wrote {out}" in run.out
    model = resdsl.load(str(SPECS / "resnet20.res")).to_torch(seed=4).eval()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        torch.save({"x": x, "y": model(x)}, tmp_path / "ref.pt")
    _python(
        NO_RESDSL + "import torch; d = torch.load('ref.pt'); "
        "m = torch.export.load('r20.pt2').module(); "
        "torch.testing.assert_close(m(d['x']), d['y'], rtol=1e-5, atol=1e-6); "
        "m(d['x'][:3])",  # the batch is dynamic
        tmp_path,
    )


def test_compile_default_output_is_the_network_name(tmp_path: Path) -> None:
    spec = str(SPECS / "resnet20.res")
    run = subprocess.run([sys.executable, "-m", "resdsl", "compile", spec, "--to", "python"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "resnet20.py").read_text("utf-8").startswith('"""resnet20: generated')


def test_compile_refuses_to_overwrite_its_inputs(tmp_path: Path) -> None:
    spec = tmp_path / "net.res"
    lib = tmp_path / "lib.res"
    lib.write_text("block unit(c) { conv(c, 3); bn; relu }\n", encoding="utf-8")
    spec.write_text('use "lib.res"\nnetwork net { input [3, 8, 8]; unit(4) }\n', "utf-8")
    before = (spec.read_bytes(), lib.read_bytes())
    for target in (spec, lib):
        run = run_cli("compile", str(spec), "--to", "python", "-o", str(target))
        assert run.code == 2 and "refusing to overwrite" in run.err
    assert (spec.read_bytes(), lib.read_bytes()) == before


def test_failed_compile_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "model.pt2"
    out.write_bytes(b"the previous good file")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 3)
    run = run_cli("compile", "specs/resnet20.res", "--to", "torch", "--weights", str(bad),
                  "-o", str(out))
    assert run.code == 1 and "error[E06" in run.err
    assert out.read_bytes() == b"the previous good file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors", "model.pt2"]


def test_python_target_refuses_weights(tmp_path: Path) -> None:
    run = run_cli("compile", "specs/resnet20.res", "--to", "python", "--weights", "w.pth",
                  "-o", str(tmp_path / "m.py"))
    assert run.code == 2 and "writes code, not weights" in run.err


def test_a_huge_network_is_refused_before_torch_is_imported(tmp_path: Path) -> None:
    """10¹² parameters: refused from the graph alone, without importing torch (which alone
    takes more than the 200 MB allowed) or allocating anything."""
    spec = tmp_path / "huge.res"
    spec.write_text("network huge {\n    input [4096]\n"
                    "    repeat 1000 { linear(131072); linear(4096) }\n}\n", encoding="utf-8")
    code = (
        "import re, sys; from resdsl.cli import main; "
        f"code = main(['compile', {str(spec)!r}, '--to', 'torch', '-o', 'x.pt2']); "
        # VmHWM: this process's peak RSS (ru_maxrss would include the parent's, from fork).
        "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
        "print(code, peak, 'torch' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    code_, rss_kb, torch_loaded = run.stdout.split()
    assert code_ == "1" and torch_loaded == "False"
    assert int(rss_kb) < 200 * 1024
    # 1000 × (4096·131072 + 131072 + 131072·4096 + 4096) weights and biases
    assert 1000 * (4096 * 131072 + 131072 + 131072 * 4096 + 4096) == 1_073_876_992_000
    assert "error[E0701]" in run.stderr and "1,073,876,992,000 parameters" in run.stderr
    assert not (tmp_path / "x.pt2").exists()


def test_missing_torch_is_a_diagnostic(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['torch'] = None; from resdsl.cli import main; "
            "sys.exit(main(['compile', 'specs/resnet20.res', '--to', 'torch', '-o', "
            f"{str(tmp_path / 'm.pt2')!r}]))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 1
    assert "error[E0702]" in run.stderr and "pip install resdsl[torch]" in run.stderr
    assert "Traceback" not in run.stderr
    golden = ROOT / "tests" / "golden" / "compile" / "E0702_needs_torch.txt"
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        golden.write_text(run.stderr, encoding="utf-8")
    assert run.stderr == golden.read_text(encoding="utf-8")


def test_a_torch_that_fails_to_import_is_not_called_missing(tmp_path: Path) -> None:
    """Issue #15 item 6: torch installed but unable to load (here its libraries cannot be
    mapped, as under a tight `ulimit -v`) is E0610 with a memory help, not E0702's `pip
    install`."""
    code = ("import sys\n"
            "class Fail:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch':\n"
            "            raise OSError('libtorch_cpu.so: failed to map segment from shared "
            "object')\n"
            "sys.meta_path.insert(0, Fail())\n"
            "from resdsl.cli import main\n"
            "sys.exit(main(['compile', 'specs/resnet20.res', '--to', 'torch', '-o', "
            f"{str(tmp_path / 'm.pt2')!r}]))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 1, run.stderr
    assert "error[E0610]" in run.stderr and "E0702" not in run.stderr
    assert "ran out of memory" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "m.pt2").exists()


def test_reserved_module_name_is_a_diagnostic(tmp_path: Path) -> None:
    spec = tmp_path / "bad.res"
    spec.write_text("network bad {\n    input [3, 8, 8]\n    forward: conv(4, 3)\n}\n", "utf-8")
    run = run_cli("compile", str(spec), "--to", "python", "-o", str(tmp_path / "m.py"))
    assert run.code == 1 and "error[E0703]" in run.err and "bad.res:3:5" in run.err
