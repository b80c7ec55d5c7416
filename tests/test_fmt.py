"""`resdsl fmt` and `resdsl.syntax.format`: the canonical layout (docs/language.md §Layout),
its safety checks (same AST, same comments, idempotent), and the command.

Corpora: every spec in specs/, every ```res block of the docs, the fuzzer's findings and a
fixed sample of its generated specs and mutants; each formats with its checks passing.
"""

from __future__ import annotations

import os
import random
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from resdsl.diagnostics import Source, SpecError
from resdsl.syntax import format as fmt_module
from resdsl.syntax import parse
from resdsl.syntax.format import FormatCheckError, ast_shape, comments_of, format_source
from tests.conftest import ROOT, SPECS, run_cli

_FENCE = re.compile(r"^```res[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def _doc_examples() -> list[tuple[str, str]]:
    out = []
    for doc in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        for i, match in enumerate(_FENCE.finditer(doc.read_text("utf-8"))):
            out.append((f"{doc.name}#{i}", match.group(1)))
    return out


def _fuzz_corpus() -> list[tuple[str, str]]:
    """The fuzzer's findings, and a fixed sample of its generated specs and mutants that
    parse (the others are syntax errors, which fmt leaves alone)."""
    from tests.fuzz.generate import Generator
    from tests.fuzz.mutate import Mutator

    out = [(p.name, p.read_text("utf-8"))
           for p in sorted((ROOT / "tests" / "fuzz" / "findings").glob("*.res"))]
    rng = random.Random(20)
    generator, mutator = Generator(rng), Mutator(rng)
    texts = [(f"generated#{i}", generator.spec()) for i in range(40)]
    mutants = [mutator.spec() for _ in range(40)]
    texts += [(f"mutant#{i}: {origin}", text) for i, (origin, text) in enumerate(mutants)]
    for name, text in texts:
        try:
            parse(Source(name, text))
        except SpecError:
            continue
        out.append((name, text))
    return out


SPEC_FILES = sorted(SPECS.rglob("*.res")) + sorted((ROOT / "docs").rglob("*.res"))
DOC_EXAMPLES = _doc_examples()


def _assert_safe(text: str, name: str) -> str:
    """Format, and check by hand what format_source checks itself."""
    result = format_source(text, name)
    assert ast_shape(parse(Source(name, result))) == ast_shape(parse(Source(name, text)))
    assert list(comments_of(result)) == [c.rstrip() for c in comments_of(text)]
    assert format_source(result, name) == result
    return result


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_specs_format_safely(path: Path) -> None:
    _assert_safe(path.read_text("utf-8"), str(path))


@pytest.mark.parametrize(("name", "text"), DOC_EXAMPLES, ids=[n for n, _ in DOC_EXAMPLES])
def test_doc_examples_format_safely(name: str, text: str) -> None:
    _assert_safe(text, name)


def test_fuzz_corpus_formats_safely() -> None:
    """format_source checks each result itself (same AST, same comments, idempotent)."""
    corpus = _fuzz_corpus()
    assert len(corpus) > 10  # the sample is not all syntax errors
    for name, text in corpus:
        result = format_source(text, name)
        assert list(comments_of(result)) == [c.rstrip() for c in comments_of(text)]


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_whitespace_scrambled_specs_format_safely(path: Path) -> None:
    """A spec with its white space replaced at random (a space, a line break, blank lines, a
    tab): still formatted with its checks passing; with only the spaces within lines
    replaced, to the same text (only line breaks, and the columns of end-of-line comments,
    are the user's)."""
    rng = random.Random(path.name)
    space = re.compile(r'("[^"\n]*")|([ \t]+)')
    any_space = re.compile(r'(#[^\n]*\n?)|("[^"\n]*")|([ \t\n]+)')
    text = path.read_text("utf-8")
    spaced = "".join(
        line if "#" in line else space.sub(lambda m: m.group(1) or rng.choice(
            [" ", "  ", "\t", "   "]), line) for line in text.splitlines(keepends=True))
    assert format_source(spaced) == format_source(text)
    scrambled = any_space.sub(lambda m: m.group(0) if not m.group(3)
                              else rng.choice([" ", "\n", "  \n\n\n  ", "\t"]), text)
    format_source(scrambled, str(path))  # raises if a check fails


# ------------------------------------------------------------------ the layout rules


GOLDEN = [
    (  # spacing, indentation, `;` that separate nothing, a blank line around definitions
        'use "blocks/resnet.res"\n'
        "def  f ( a,b=2 ){c=a*b;return c+-1;}\n"
        "block   b1(x , y=[1,2 ,3])\n"
        "{\n"
        "  conv( x ,3,stride=y[0]) ; bn ;relu;\n"
        "skip {conv{x}_a :conv(x,1)  ;  bn} shortcut proj:  project(x, 1) if x!=1 and "
        "not(y [0]>1)\n"
        "}\n"
        "network n(classes=10) { input [3,32,32]\n"
        "  stem ; head(classes)\n"
        "\n\n\n"
        "}\n",
        'use "blocks/resnet.res"\n'
        "def f(a, b = 2) { c = a * b; return c + -1 }\n"
        "\n"
        "block b1(x, y = [1, 2, 3]) {\n"
        "    conv(x, 3, stride = y[0]); bn; relu\n"
        "    skip { conv{x}_a: conv(x, 1); bn } shortcut proj: project(x, 1) if x != 1 and "
        "not (y[0] > 1)\n"
        "}\n"
        "\n"
        "network n(classes = 10) {\n"
        "    input [3, 32, 32]\n"
        "    stem; head(classes)\n"
        "}\n",
    ),
    (  # comments: own-line ones take their line's indentation; end-of-line ones stay,
       # two spaces after the code, or in their column when set apart to be aligned; the
       # leading comment of a definition stays with it
        "# header\n"
        "block a() { relu } # after a one-line block\n"
        "# about b\n"
        "block b() {\n"
        "        # first\n"
        "  relu # short\n"
        "  x = in                 # aligned\n"
        "  conv(8, 1)             # aligned\n"
        "    # last\n"
        "}\n",
        "# header\n"
        "block a() { relu }  # after a one-line block\n"
        "\n"
        "# about b\n"
        "block b() {\n"
        "    # first\n"
        "    relu  # short\n"
        "    x = in               # aligned\n"
        "    conv(8, 1)           # aligned\n"
        "    # last\n"
        "}\n",
    ),
    (  # a body over several lines has its `{` end a line and its `}` start one; a statement
       # after such a `}` starts a line
        "network n { input [3, 8, 8]\n"
        "    a: { conv(8, 3)\n"
        "         bn }; relu\n"
        "}\n",
        "network n {\n"
        "    input [3, 8, 8]\n"
        "    a: {\n"
        "        conv(8, 3)\n"
        "        bn\n"
        "    }\n"
        "    relu\n"
        "}\n",
    ),
    (  # a long line: a one-line body opens; a long call breaks after the last `,` that
       # fits, outermost brackets first, and the rest aligns after its `(`
        "network n(classes = 10, widths = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, "
        "32768, 65536], depth = 3) {\n"
        "    input [3, 32, 32]\n"
        "    a: { conv(8, 3); bn; relu; conv(8, 3); bn; relu; conv(8, 3); bn; relu; conv(8, 3); "
        "bn; relu; relu }\n"
        "    c: a_block_with_a_long_name(argument_number_one, argument_number_two, "
        "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], key = value_a)\n"
        "}\n",
        "network n(classes = 10, widths = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, "
        "32768, 65536],\n"
        "          depth = 3) {\n"
        "    input [3, 32, 32]\n"
        "    a: {\n"
        "        conv(8, 3); bn; relu; conv(8, 3); bn; relu; conv(8, 3); bn; relu; conv(8, 3); "
        "bn; relu; relu\n"
        "    }\n"
        "    c: a_block_with_a_long_name(argument_number_one, argument_number_two,\n"
        "                                [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], key = value_a)\n"
        "}\n",
    ),
    (  # a bracket that ends its line: the lines inside are indented 4 more; blank lines
       # after `{` and before `}` go; an empty body is `{ }`; CRLF, tabs and a BOM go
        "\ufeffnetwork n(\r\n\tclasses = 10,\r\n\tdepth = 3\r\n) {\r\n\r\n\tinput [3, 8, 8]\r\n"
        "\tx: {\r\n}\r\n\r\n}\r\n",
        "network n(\n    classes = 10,\n    depth = 3\n) {\n    input [3, 8, 8]\n    x: { }\n}\n",
    ),
]


GOLDEN += [
    (  # statements on one line are separated by `;`; one whose body spans lines starts its
       # own line; a long line breaks between its statements first
        "network n { input [3,8,8] relu conv(8, 1)\n"
        "    stem: conv(8, 3) layer1: repeat 2 { conv(8, 3)\n"
        "        bn }\n"
        "    a1: conv(8, 3, stride = 1, padding = 1); a2: conv(8, 3, stride = 1, padding = 1); "
        "a3: conv(8, 3, stride = 1, padding = 1); bn\n"
        "}\n",
        "network n {\n"
        "    input [3, 8, 8]; relu; conv(8, 1)\n"
        "    stem: conv(8, 3)\n"
        "    layer1: repeat 2 {\n"
        "        conv(8, 3)\n"
        "        bn\n"
        "    }\n"
        "    a1: conv(8, 3, stride = 1, padding = 1); a2: conv(8, 3, stride = 1, padding = 1)\n"
        "    a3: conv(8, 3, stride = 1, padding = 1); bn\n"
        "}\n",
    ),
]


@pytest.mark.parametrize(("text", "expected"), GOLDEN, ids=["spacing", "comments", "bodies",
                                                           "long-lines", "hanging", "statements"])
def test_layout(text: str, expected: str) -> None:
    assert format_source(text) == expected
    assert format_source(expected) == expected


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_specs_written_on_few_lines_come_back_short(path: Path) -> None:
    """A spec with every line break that a comment does not need replaced by a space: its
    long lines are broken (between statements, by opening bodies, after commas) until no
    code line is past 100 columns."""
    joined = re.sub(r'(#[^\n]*\n)|("[^"\n]*")|([ \t\n]+)',
                    lambda m: m.group(0) if not m.group(3) else " ", path.read_text("utf-8"))
    result = format_source(joined, str(path))
    code = [re.sub(r"\s*#.*", "", line) for line in result.splitlines()]
    assert max(len(line) for line in code) <= fmt_module.MAX_WIDTH


def test_a_long_chain_of_conditionals_breaks_before_else_not_inside_a_list() -> None:
    """A conditional chain has no comma of its own: it breaks before an `else`, aligned
    after its bracket, and the lists it picks from stay whole (specs/blocks/resnet.res)."""
    text = ("def stage_blocks(depth) { return ([2, 2, 2, 2] if depth == 18 else [3, 4, 6, 3] "
            "if depth == 34 or depth == 50 else [3, 4, 23, 3] if depth == 101 else [3, 8, 36, "
            "3] if depth == 152 else []) }\n")
    assert format_source(text) == (
        "def stage_blocks(depth) {\n"
        "    return ([2, 2, 2, 2] if depth == 18 else [3, 4, 6, 3] if depth == 34 or depth == 50\n"
        "            else [3, 4, 23, 3] if depth == 101 else [3, 8, 36, 3] if depth == 152"
        " else [])\n}\n")


def test_language_md_layout_example() -> None:
    """docs/language.md §Layout shows a spec before and after: the after is fmt's."""
    doc = (ROOT / "docs" / "language.md").read_text("utf-8")
    section = doc[doc.index("## Layout"):doc.index("## Limits")]
    before = re.search(r"```text\n(.*?)```", section, re.S)
    after = re.search(r"```res\n(.*?)```", section, re.S)
    assert before is not None and after is not None
    assert format_source(before.group(1)) == after.group(1)


def test_interpolated_names_are_written_in_one_piece() -> None:
    text = "network n { input [3, 8, 8]\n repeat 2 as i { conv{ i+1 }_x : conv(8, 1)\n" \
           " convs . { i } : relu } }\n"
    assert format_source(text) == (
        "network n {\n    input [3, 8, 8]\n    repeat 2 as i {\n        conv{i + 1}_x: conv(8, 1)\n"
        "        convs.{i}: relu\n    }\n}\n")


def test_a_call_before_a_sequence_is_never_glued_to_it() -> None:
    """`relu {` is a call and a sequence, `relu{` the start of an interpolated name: the two
    statements are kept apart, by `;` as any two on a line."""
    assert format_source("network n { input [3, 8, 8]; relu   { conv(8, 1) } }") == \
        "network n { input [3, 8, 8]; relu; { conv(8, 1) } }\n"


# ------------------------------------------------------------------ the safety checks


@pytest.mark.parametrize("broken", ["comment", "meaning", "unstable"])
def test_checks_refuse_a_broken_formatter(broken: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = fmt_module._format
    calls = []

    def wrong(text: str) -> tuple[str, list[str]]:
        result, comments = real(text)
        calls.append(text)
        if broken == "comment":
            result = result.replace("# a comment", "# another")
        elif broken == "meaning":
            result = result.replace("conv(8, 1)", "conv(8, 3)")
        elif len(calls) == 1:
            result += "\n"
        return result, comments

    monkeypatch.setattr(fmt_module, "_format", wrong)
    with pytest.raises(FormatCheckError):
        format_source("network n { input [3, 8, 8]  # a comment\n conv(8, 1) }\n")


# ------------------------------------------------------------------ the command


UGLY = "network n { input [3,8,8]\n  conv(8,1) }\n"
PRETTY = "network n {\n    input [3, 8, 8]\n    conv(8, 1)\n}\n"


def _tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    ugly, pretty = tmp_path / "sub" / "ugly.res", tmp_path / "pretty.res"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    (tmp_path / ".hidden" / "skipped.res").write_text(UGLY)
    (tmp_path / "notes.txt").write_text(UGLY)
    return ugly, pretty, tmp_path / ".hidden" / "skipped.res"


def test_fmt_rewrites_folders_in_place_keeping_the_mode(tmp_path: Path) -> None:
    ugly, pretty, hidden = _tree(tmp_path)
    ugly.chmod(0o640)
    before = pretty.stat().st_mtime_ns
    run = run_cli("fmt", str(tmp_path))
    assert run.code == 0, run.err
    assert ugly.read_text() == PRETTY
    assert stat.S_IMODE(ugly.stat().st_mode) == 0o640
    assert pretty.stat().st_mtime_ns == before  # a formatted file is not touched
    assert hidden.read_text() == UGLY and (tmp_path / "notes.txt").read_text() == UGLY
    assert f"reformatted {ugly}" in run.err
    assert "1 file reformatted, 1 file left unchanged" in run.err
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # no staging left


def test_fmt_check_lists_and_writes_nothing(tmp_path: Path) -> None:
    ugly, pretty, _ = _tree(tmp_path)
    run = run_cli("fmt", "--check", str(tmp_path))
    assert run.code == 1
    assert f"would reformat {ugly}" in run.err and str(pretty) not in run.err
    assert ugly.read_text() == UGLY
    assert run_cli("fmt", "--check", str(pretty)).code == 0


def test_fmt_diff(tmp_path: Path) -> None:
    ugly, pretty, _ = _tree(tmp_path)
    run = run_cli("fmt", "--diff", str(ugly), str(pretty))
    assert run.code == 1
    assert f"--- {ugly} (original)" in run.out and "+    conv(8, 1)" in run.out
    assert "-  conv(8,1) }" in run.out
    assert ugly.read_text() == UGLY
    clean = run_cli("fmt", "--diff", str(pretty))
    assert (clean.code, clean.out, clean.err) == (0, "", "")


def test_fmt_leaves_a_file_with_a_syntax_error_alone(tmp_path: Path) -> None:
    bad = tmp_path / "bad.res"
    bad.write_text("network n { input [3,8,8]; conv(1,1 }\n")
    good = tmp_path / "good.res"
    good.write_text(UGLY)
    run = run_cli("fmt", str(bad), str(good))
    assert run.code == 1
    assert "error[E0101]" in run.err and f"{bad}:1:37" in run.err
    assert bad.read_text() == "network n { input [3,8,8]; conv(1,1 }\n"
    assert good.read_text() == PRETTY  # the other files are still formatted


def test_fmt_refuses_when_its_checks_fail(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A formatter bug is E9000, exit 3, and the file stays as it was."""
    spec = tmp_path / "a.res"
    spec.write_text(UGLY)
    real = fmt_module._format
    monkeypatch.setattr(fmt_module, "_format",
                        lambda text: (real(text)[0].replace("8, 1", "8, 2"), real(text)[1]))
    run = run_cli("fmt", str(spec))
    assert run.code == 3
    assert "error[E9000]: internal error" in run.err and "different AST" in run.err
    assert spec.read_text() == UGLY


def test_fmt_missing_file_and_usage(tmp_path: Path) -> None:
    run = run_cli("fmt", str(tmp_path / "missing.res"))
    assert run.code == 1 and "E0001" in run.err
    assert run_cli("fmt", "-", "-").code == 2
    assert run_cli("fmt").code == 2


def _stdin(*args: str, text: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "resdsl", "fmt", *args], input=text,
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_fmt_standard_input() -> None:
    run = _stdin("-", text=UGLY)
    assert (run.returncode, run.stdout) == (0, PRETTY), run.stderr
    check = _stdin("--check", "-", text=UGLY)
    assert (check.returncode, check.stdout) == (1, "")
    assert "would reformat <stdin>" in check.stderr
    bad = _stdin("--stdin-filename", "mine.res", "-", text="network n {")
    assert bad.returncode == 1 and "mine.res:1:" in bad.stderr and bad.stdout == ""


def test_fmt_does_not_import_torch(tmp_path: Path) -> None:
    spec = tmp_path / "a.res"
    spec.write_text(UGLY)
    code = ("import sys; from resdsl.cli import main; "
            f"rc = main(['fmt', {str(spec)!r}]); print(rc, 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert run.stdout.split() == ["0", "False"], run.stderr


def test_specs_are_formatted() -> None:
    """The shipped specs are kept in the canonical layout (`resdsl fmt --check specs/`)."""
    run = run_cli("fmt", "--check", "specs", "docs/examples")
    assert run.code == 0, run.err
