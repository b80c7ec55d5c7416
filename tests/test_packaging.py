"""The wheel carries the grammar and the built-in block library: build it, install it into
a fresh venv, and check a spec that lives outside the repository."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from tests.conftest import ROOT

SPEC = """\
# Uses the built-in library: there is no blocks/ folder beside this file.
use "blocks/resnet.res"
network tiny(classes = 10) {
    input [3, 64, 64]
    stem
    layer1: repeat 2 { bottleneck(16) }
    head(classes)
}
"""


def test_wheel_installs_and_checks_a_spec_outside_the_repo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
    )
    (wheel,) = dist.glob("resdsl-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q", str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "tiny.res").write_text(SPEC, encoding="utf-8")
    run = subprocess.run([bin_dir / "resdsl", "check", "tiny.res"], cwd=work,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("tiny.res: ok (tiny:")
    run = subprocess.run([bin_dir / "python", "-m", "resdsl", "check", "missing.res"], cwd=work,
                         capture_output=True, text=True)
    assert run.returncode == 1 and "error[E0001]" in run.stderr
