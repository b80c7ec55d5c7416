"""Golden tests: every bad spec in tests/golden/errors/ gives exactly its expected message.

Each `NAME.res` beside `NAME.txt` is checked with `resdsl check NAME.res`; the rendered
diagnostics (stderr) must equal NAME.txt and the exit code must be 1 (0 for a spec that only
has warnings). A first line `# args: ...` adds command-line arguments. Files that other specs
import live in subfolders. Set RESDSL_UPDATE_GOLDEN=1 to rewrite the .txt files after a
deliberate change of wording, then review the diff.

Two codes cannot be a committed spec: E0001 (the file cannot be read) and E0003 (the file is
over 1 MiB). Their tests below make the situation on the fly and compare with
tests/golden/errors/special/NAME.txt, which RESDSL_UPDATE_GOLDEN=1 rewrites too.
The E06xx codes are about weights files, not specs: tests/test_weights.py makes each bad
file on the fly and compares with tests/golden/weights/NAME.txt; they count here too. The
E07xx codes come from `resdsl compile`: tests/golden/compile/NAME.res is compiled with its
`# args:` (E0702, PyTorch missing, is made on the fly in tests/test_torch_backend.py).
docs/errors.md documents every code and shows the current output of one of its goldens.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from resdsl.diagnostics.codes import CODES
from tests.conftest import ROOT, Run, run_cli

GOLDEN = ROOT / "tests" / "golden" / "errors"
SPECIAL = GOLDEN / "special"
WEIGHTS = ROOT / "tests" / "golden" / "weights"
# Mistakes only `resdsl compile` finds: each NAME.res is compiled with its `# args:`.
COMPILE = ROOT / "tests" / "golden" / "compile"
COMPILE_CASES = sorted(COMPILE.glob("*.res"))
CASES = sorted(GOLDEN.glob("*.res"))
ERROR_INDEX = ROOT / "docs" / "errors.md"
_CODE_LINE = re.compile(r"^(?:error|warning)\[(\w+)\]", re.M)


def _args(spec: Path) -> list[str]:
    first = spec.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    return shlex.split(first[len("# args:") :]) if first.startswith("# args:") else []


def _run_golden(command: str, spec: Path) -> Run:
    """`resdsl COMMAND SPEC ARGS...`, its stderr compared with SPEC's .txt."""
    run = run_cli(command, spec.relative_to(ROOT).as_posix(), *_args(spec))
    expected_file = spec.with_suffix(".txt")
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        expected_file.write_text(run.err, encoding="utf-8")
    assert run.err == expected_file.read_text(encoding="utf-8")
    assert "Traceback" not in run.err
    return run


@pytest.mark.parametrize("spec", CASES, ids=[c.stem for c in CASES])
def test_golden(spec: Path) -> None:
    run = _run_golden("check", spec)
    codes = set(re.findall(r"^(error|warning)\[(\w+)\]", run.err, re.M))
    assert codes, "a golden spec must produce a diagnostic"
    only_warnings = all(kind == "warning" for kind, _ in codes)
    assert run.code == (0 if only_warnings else 1)


@pytest.mark.parametrize("spec", COMPILE_CASES, ids=[c.stem for c in COMPILE_CASES])
def test_compile_golden(spec: Path) -> None:
    pytest.importorskip("torch")
    assert _run_golden("compile", spec).code == 1
    assert not list(COMPILE.glob("never_written*"))


def _compare_special(name: str, text: str) -> None:
    expected_file = SPECIAL / f"{name}.txt"
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        expected_file.write_text(text, encoding="utf-8")
    assert text == expected_file.read_text(encoding="utf-8")


def test_missing_file() -> None:
    run = run_cli("check", "tests/golden/errors/no_such_spec.res")
    assert run.code == 1
    _compare_special("E0001_missing_file", run.err)


def test_directory_instead_of_file() -> None:
    run = run_cli("check", "tests/golden/errors/lib")
    assert run.code == 1
    _compare_special("E0001_directory", run.err)


def test_missing_file_among_several() -> None:
    """`check` goes on after a file it cannot read and reports the next one too."""
    run = run_cli("check", "tests/golden/errors/no_such_spec.res", "specs/resnet20.res")
    assert run.code == 1
    assert run.err.startswith("error[E0001]: cannot read `tests/golden/errors/no_such_spec.res`")
    assert "specs/resnet20.res: ok" in run.out


def test_file_too_large(tmp_path: Path) -> None:
    spec = tmp_path / "huge.res"
    head = b"network net {\n    input [3, 32, 32]\n    conv(16, 3)\n}\n"
    filler = b"# " + b"x" * 97 + b"\n"
    spec.write_bytes(head + filler * (1_100_000 // len(filler)))
    run = run_cli("check", str(spec))
    assert run.code == 1
    _compare_special("E0003_file_too_large", run.err.replace(str(spec), "huge.res"))


def test_every_code_has_a_golden() -> None:
    covered: set[str] = set()
    for txt in [*GOLDEN.glob("*.txt"), *SPECIAL.glob("*.txt"), *WEIGHTS.glob("*.txt"),
                *COMPILE.glob("*.txt")]:
        covered |= set(_CODE_LINE.findall(txt.read_text("utf-8")))
    missing = sorted(set(CODES) - covered)
    assert not missing, f"codes without a golden test: {missing}"
    unknown = sorted(covered - set(CODES))
    assert not unknown, f"goldens show codes that codes.py does not list: {unknown}"


def test_goldens_are_paired() -> None:
    """Every case has its expected output and every expected output its case."""
    specs = {p.stem for p in GOLDEN.glob("*.res")}
    texts = {p.stem for p in GOLDEN.glob("*.txt")}
    assert specs == texts, f"unpaired: {sorted(specs ^ texts)}"
    for spec in specs:
        code = spec.split("_", 1)[0]
        assert code in CODES, f"{spec}.res is not named after a code"
        expected = (GOLDEN / f"{spec}.txt").read_text("utf-8")
        assert code in _CODE_LINE.findall(expected), f"{spec}.res does not report {code}"


def test_every_code_is_documented() -> None:
    """docs/errors.md has a `## CODE: summary` section for every code, in the order of
    codes.py, and each section shows a golden's current output for that code."""
    text = ERROR_INDEX.read_text("utf-8")
    sections = re.split(r"^## (?=[EW]\d{4}: )", text, flags=re.M)[1:]
    documented = [section[:5] for section in sections]
    missing = sorted(set(CODES) - set(documented))
    assert not missing, f"codes without a `## CODE: ...` heading in docs/errors.md: {missing}"
    assert documented == list(CODES), "docs/errors.md lists the codes out of order or twice"
    goldens = {
        p.read_text("utf-8")
        for p in [*GOLDEN.glob("*.txt"), *SPECIAL.glob("*.txt"), *WEIGHTS.glob("*.txt"),
                *COMPILE.glob("*.txt")]
    }
    for code, section in zip(documented, sections, strict=True):
        assert section.startswith(f"{code}: {CODES[code]}\n"), f"{code}: heading differs"
        shown = [b + "\n" for b in re.findall(r"^```text\n(.*?)\n```$", section, re.M | re.S)]
        assert any(b in goldens and _CODE_LINE.findall(b)[:1] == [code] for b in shown), (
            f"the {code} section of docs/errors.md shows no current golden output for {code}"
        )
