"""The command line: output, formats and exit codes (0 ok, 1 spec errors, 2 usage, 3 bug)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import resdsl.pipeline
from tests.conftest import ROOT, run_cli


def test_info_reports_the_reference_numbers() -> None:
    run = run_cli("info", "specs/resnet50.res")
    assert run.code == 0 and run.err == ""
    assert "25,557,032 parameters, 4.089 GMACs" in run.out
    assert "  layer1.0  bottleneck" in run.out


def test_info_json_and_depth() -> None:
    run = run_cli("info", "specs/dpn92.res", "--format", "json", "--depth", "1")
    doc = json.loads(run.out)
    assert (doc["params"], round(doc["macs"] / 1e9, 3)) == (37_668_392, 6.502)
    assert [r["path"] for r in doc["rows"]] == ["features", "1", "classifier", "3"]
    assert doc["output"] == [1000]


def test_check_several_specs_with_overrides() -> None:
    run = run_cli("check", "specs/resnet18.res", "specs/resnet20.res", "-D", "classes=7")
    assert run.code == 0
    assert run.out.count(": ok (") == 2


def test_check_json_lists_diagnostics(tmp_path: Path) -> None:
    bad = tmp_path / "bad.res"
    bad.write_text("network n { input [3, 8, 8]; skip { conv(4, 3) } }\n", "utf-8")
    run = run_cli("check", str(bad), "--format", "json")
    assert run.code == 1 and run.err == ""
    (diag,) = json.loads(run.out)
    assert diag["code"] == "E0301" and diag["line"] == 1 and diag["column"] == 30
    assert "shortcut" in diag["help"]


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "specs/resnet50.res", "-D", "clases=10"],
        ["info", "specs/resnet50.res", "--input", "3x224"],
        ["check", "specs/resnet50.res", "-D", "classes"],
        ["check", "specs/resnet50.res", "-D", "classes=[1,"],
        ["check", "specs/resnet50.res", "--network", "resnet5"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    run = run_cli(*argv)
    assert run.code == 2
    assert "Traceback" not in run.err


def test_internal_errors_exit_3_and_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(resdsl.pipeline, "verify_shapes", broken)
    run = run_cli("check", "specs/resnet18.res")
    assert run.code == 3
    assert "internal error: this is a bug in resdsl" in run.err


def test_python_dash_m_and_no_torch_on_the_check_path() -> None:
    code = (
        "import sys; from resdsl.cli import main; "
        "rc = main(['info', 'specs/dpn92.res']); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime')]; "
        "print(rc, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip().endswith("0 []"), out.stdout + out.stderr
    proc = subprocess.run([sys.executable, "-m", "resdsl", "--version"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.startswith("resdsl ")


def test_a_capitalised_boolean_in_a_define_says_how_to_write_it() -> None:
    """Issue #15 item 18: `-D bias=True` names the spelling, as `bias = True` in a spec does."""
    run = run_cli("check", "specs/resnet50.res", "-D", "classes=True")
    assert run.code == 2
    assert "`True` is not a value (write `true`" in run.err
