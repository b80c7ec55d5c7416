"""Checking a spec that is not on disk (issue #20 item 1): `resdsl.loads(text, path=...)` and
`resdsl check -` check a source held in memory (an editor's unsaved buffer, a pipe) exactly as
the file would be checked: the same graph, the same diagnostics, every limit of a file, and
`use` resolved from `path`'s folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import resdsl
from resdsl.arguments import ArgumentError
from resdsl.diagnostics import SpecError
from resdsl.syntax.loader import MAX_TOKENS
from resdsl.syntax.parser import MAX_FILE_BYTES
from tests.conftest import ROOT

SPECS = sorted((ROOT / "specs").glob("*.res"))


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_loads_is_load(spec: Path) -> None:
    """Every shipped spec, given as text with its path, is the network its file is."""
    from_file = resdsl.load(spec)
    from_text = resdsl.loads(spec.read_text(encoding="utf-8"), path=spec)
    assert [(n.op, n.path, n.shape, n.args) for n in from_text.graph.nodes()] == \
        [(n.op, n.path, n.shape, n.args) for n in from_file.graph.nodes()]
    assert from_text.counts() == from_file.counts()
    assert from_text.path == str(spec)


def test_the_text_wins_over_the_file_at_path(tmp_path: Path) -> None:
    """An editor's buffer is checked, not the saved file it will replace."""
    spec = tmp_path / "net.res"
    spec.write_text("network n { input [3, 8, 8]; conv(4, 3) }", encoding="utf-8")
    net = resdsl.loads("network n { input [3, 8, 8]; conv(6, 3); relu }", path=spec)
    assert net.output_shape == (6, 8, 8)


def test_use_resolves_from_the_path_s_folder(tmp_path: Path) -> None:
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "mine.res").write_text("block two(c) { conv(c, 3); conv(c, 3) }",
                                                 encoding="utf-8")
    text = 'use "blocks/mine.res"\nnetwork n { input [3, 16, 16]; two(8) }'
    net = resdsl.loads(text, path=tmp_path / "unsaved.res")
    assert net.output_shape == (8, 16, 16)
    assert str(tmp_path / "blocks" / "mine.res") in {str(Path(p).resolve())
                                                     for p in net.files}
    # The built-in library is found from anywhere, as for a file.
    assert resdsl.loads('use "blocks/resnet.res"\nnetwork n { input [3, 32, 32]; stem }',
                        path=tmp_path / "x.res").output_shape == (64, 8, 8)


def test_use_outside_the_folder_is_refused_as_for_a_file(tmp_path: Path) -> None:
    (tmp_path / "lib.res").write_text("block b() { relu }", encoding="utf-8")
    inner = tmp_path / "inner"
    inner.mkdir()
    with pytest.raises(SpecError) as info:
        resdsl.loads('use "../lib.res"\nnetwork n { input [3, 8, 8]; b }', path=inner / "a.res")
    assert info.value.diagnostics[0].code == "E0209"


def test_diagnostics_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        resdsl.loads("network n {\n  input [3, 8, 8]\n  conv(4, 3); rleu\n}",
                     path=tmp_path / "buffer.res")
    d = info.value.diagnostics[0]
    assert d.code == "E0201" and d.primary is not None
    span = d.primary.span
    assert (span.source.path, span.line, span.column) == (str(tmp_path / "buffer.res"), 3, 15)


@pytest.mark.parametrize(("text", "code"), [
    (" " * (MAX_FILE_BYTES + 1), "E0003"),        # a file's size limit
    ("relu " * (MAX_TOKENS + 1), "E0003"),        # the token budget
    ("network n {\x00}", "E0002"),                 # a NUL: binary, not a spec
    ("network n { input [3, 8, 8]; \ud800 }", "E0002"),  # a lone surrogate is not UTF-8
])
def test_every_limit_of_a_file_applies(text: str, code: str) -> None:
    with pytest.raises(SpecError) as info:
        resdsl.loads(text)
    assert info.value.diagnostics[0].code == code


@pytest.mark.parametrize("text", [b"network n {}", None, 3])
def test_text_must_be_a_str(text: object) -> None:
    with pytest.raises(ArgumentError, match="the spec's source"):
        resdsl.loads(text)  # type: ignore[arg-type]


def _check_stdin(text: bytes, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resdsl", "check", *argv], input=text.decode(
        "utf-8", "surrogateescape"), capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_check_dash_reads_standard_input_without_torch() -> None:
    code = (
        "import io, sys; sys.stdin = io.TextIOWrapper(io.BytesIO("
        "b'network n {\\n input [3, 8, 8]\\n conv(4, 3); relu\\n}\\n')); "
        "from resdsl.cli import main; rc = main(['check', '-']); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime')]; "
        "print(rc, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip().endswith("0 []"), out.stdout + out.stderr
    assert "<stdin>: ok (n: 3 nodes, 108 parameters" in out.stdout


def test_check_dash_with_a_filename_resolves_and_reports_there() -> None:
    text = b'use "blocks/resnet.res"\nnetwork n {\n  input [3, 32, 32]\n  stem; rleu\n}\n'
    run = _check_stdin(text, "-", "--stdin-filename", "specs/unsaved.res")
    assert run.returncode == 1
    assert "specs/unsaved.res:4:9" in run.stderr and "did you mean `relu`?" in run.stderr


def test_check_dash_among_files_and_only_once() -> None:
    run = _check_stdin(b"network n { input [3, 8, 8]; relu }", "specs/resnet18.res", "-")
    assert run.returncode == 0, run.stderr
    assert "specs/resnet18.res: ok" in run.stdout and "<stdin>: ok" in run.stdout
    twice = _check_stdin(b"", "-", "-")
    assert twice.returncode == 2 and "may be given once" in twice.stderr


def test_check_dash_refuses_an_endless_stream_after_the_limit() -> None:
    """Standard input is read to one byte past the limit, never to its end."""
    proc = subprocess.run(
        f"head -c {3 * MAX_FILE_BYTES} /dev/zero | {sys.executable} -m resdsl check -",
        shell=True, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    assert f"`<stdin>` is more than {MAX_FILE_BYTES:,} bytes" in proc.stderr
