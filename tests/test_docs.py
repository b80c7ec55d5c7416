"""The documentation stays true: every ```res example compiles, every op and primitive is
documented, the limits match the source, and the README's table of specs matches what
`resdsl check` reports.

A ```res block is a complete spec. A first line `# args: ...` adds command-line arguments
(as in tests/golden/errors/). Fragments and expected output go in untagged or ```text blocks.
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from resdsl.cli import main
from resdsl.ir.callgraph import MAX_CALL_DEPTH
from resdsl.ir.elaborate import BODY_STEPS, MAX_DEPTH, MAX_NODES, MAX_PATH, MAX_REPEAT, MAX_STEPS
from resdsl.ir.evaluate import MAX_INT, MAX_LENGTH, MAX_OPERATIONS
from resdsl.ir.ops import MAX_DIM, USER_OPS
from resdsl.ir.primitives import PRIMITIVES
from resdsl.syntax.loader import FILE_TOKENS, MAX_IMPORT_DEPTH, MAX_TOKENS
from resdsl.syntax.parser import MAX_EXPR_DEPTH, MAX_FILE_BYTES, MAX_NESTING
from tests.conftest import ROOT, SPECS

LANGUAGE = ROOT / "docs" / "language.md"
README = ROOT / "README.md"
DOCS = (LANGUAGE, README)

_FENCE = re.compile(r"^```res[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def res_blocks(path: Path) -> list[tuple[int, str]]:
    """Every ```res block of a Markdown file, with the line its fence opens on."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _FENCE.finditer(text)]


EXAMPLES = [(doc, line, body) for doc in DOCS for line, body in res_blocks(doc)]


def _check(spec: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["check", str(spec), *args], out, err)
    return code, out.getvalue(), err.getvalue()


def test_docs_have_examples() -> None:
    assert len(res_blocks(LANGUAGE)) >= 10
    assert res_blocks(README)


@pytest.mark.parametrize(
    ("doc", "line", "body"),
    EXAMPLES,
    ids=[f"{doc.name}:{line}" for doc, line, _ in EXAMPLES],
)
def test_example_compiles(doc: Path, line: int, body: str, tmp_path: Path) -> None:
    first = body.split("\n", 1)[0]
    args = shlex.split(first[len("# args:") :]) if first.startswith("# args:") else []
    spec = tmp_path / "example.res"
    spec.write_text(body, encoding="utf-8")
    code, out, err = _check(spec, *args)
    assert code == 0, f"{doc.name}:{line}: the example does not compile:\n{err}"
    assert "warning[" not in err, f"{doc.name}:{line}: the example has warnings:\n{err}"
    assert ": ok (" in out


def _section(text: str, heading: str) -> str:
    """The text of a `## heading` section, up to the next `## ` heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_every_op_is_documented() -> None:
    ops = _section(LANGUAGE.read_text(encoding="utf-8"), "Ops")
    headings = re.findall(r"^### (.+)$", ops, re.M)
    documented = {name for h in headings for name in re.findall(r"`(\w+)`", h)}
    missing = sorted(set(USER_OPS) - documented)
    assert not missing, f"ops without a `### `name`` heading in docs/language.md: {missing}"


def test_every_primitive_is_documented() -> None:
    prims = _section(LANGUAGE.read_text(encoding="utf-8"), "Primitives")
    headings = {h for h in re.findall(r"^### `(\w+)`$", prims, re.M)}
    # `branch` only exists inside `weight`, and is documented there.
    missing = sorted(p for p in PRIMITIVES if p not in headings and p != "branch")
    assert not missing, f"primitives without a heading in docs/language.md: {missing}"
    assert "`branch`" in _section(LANGUAGE.read_text(encoding="utf-8"), "Primitives")


def test_documented_limits_match_the_source() -> None:
    limits = _section(LANGUAGE.read_text(encoding="utf-8"), "Limits")
    rows = {
        "size of a spec file": f"{MAX_FILE_BYTES:,} bytes",
        "brackets": f"{MAX_NESTING} levels",
        "expression nesting": f"{MAX_EXPR_DEPTH} levels",
        "repeat count": f"{MAX_REPEAT:,}",
        "nodes in the elaborated network": f"{MAX_NODES:,}",
        "tokens in the spec": f"{MAX_TOKENS:,}",
        "tokens in the spec and every": f"counts {FILE_TOKENS} more",
        "steps while elaborating": f"{MAX_STEPS:,}",
        "steps while elaborating: a statement": ("", "one", "two", "three", "four")[BODY_STEPS],
        "operations of expressions": f"{MAX_OPERATIONS:,}",
        "characters in a string": f"{MAX_LENGTH:,}",
        "values in a list": f"{MAX_LENGTH:,}",
        "characters in a module path": f"{MAX_PATH:,}",
        "any dimension": f"{MAX_DIM:,}",
        "any integer value": f"{MAX_INT:,}",
        "blocks calling blocks": f"{MAX_CALL_DEPTH} levels",
        "bodies": f"{MAX_DEPTH} levels",
        "files importing files": f"{MAX_IMPORT_DEPTH} levels",
    }
    for row, value in rows.items():
        line = next((ln for ln in limits.splitlines() if ln.startswith(f"| {row}")), None)
        assert line is not None, f"no limits row for {row!r}"
        assert value in line, f"limits row {row!r} should say {value}: {line}"


# ------------------------------------------------------------------ README

QUICK_START = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[onnx,draw]' && mkdir -p out && "
    ".venv/bin/resdsl compile specs/dpn92.res --to onnx --verify -o out/dpn92.onnx && "
    ".venv/bin/resdsl draw specs/dpn92.res -o out/dpn92.svg",
    "./scripts/test",
)


def test_readme_quick_start_is_the_contract() -> None:
    """The two Quick start commands are what users and CI run: they must not drift."""
    quick = _section(README.read_text(encoding="utf-8"), "Quick start")
    blocks = re.findall(r"^```sh\n(.*?)\n```$", quick, re.M | re.S)
    assert blocks == list(QUICK_START)


def test_the_quick_start_writes_only_where_git_ignores() -> None:
    """The quick start runs in a clone: every file it writes (`-o`, else the network's name
    in the root) must be ignored, or `git status` shows 150 MB of model after it."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    written = []
    for command in QUICK_START[0].split(" && "):
        words = command.split()
        if not words[0].endswith("resdsl"):
            continue
        if "-o" in words:
            written.append(words[words.index("-o") + 1])
        else:  # the default: NETWORK.onnx, NETWORK.svg in the current folder
            written.append("dpn92." + ("onnx" if "onnx" in words else "svg"))
    assert len(written) == 2
    # The external data a larger model would write beside it, and a staging folder.
    written += [written[0] + ".0123456789abcdef.data", "out/.dpn92.onnx.abcd_123.tmp/output"]
    for path in written:
        check = subprocess.run([git, "check-ignore", "-q", "--no-index", path], cwd=ROOT)
        assert check.returncode == 0, f"the quick start writes {path}, which git does not ignore"


# | [`specs/x.res`](specs/x.res) `-D a=1` | Network | 1,234 | 0.567 | reference: 1,234 · 0.567 |
_ROW = re.compile(
    r"^\| \[`(specs/[\w/]+\.res)`\]\([^)]*\)(?: `([^`]*)`)? \| [^|]* \| ([\d,]+) \| ([\d.]+) \|"
    r" ([^|]*) \|$",
    re.M,
)


def readme_rows() -> list[tuple[str, str, int, str, str]]:
    text = README.read_text(encoding="utf-8")
    return [
        (m[1], m[2] or "", int(m[3].replace(",", "")), m[4], m[5].strip())
        for m in _ROW.finditer(text)
    ]


def test_readme_lists_every_shipped_spec() -> None:
    listed = {spec for spec, args, *_ in readme_rows() if not args}
    shipped = {p.relative_to(ROOT).as_posix() for p in SPECS.glob("*.res")}
    missing = sorted(shipped - listed)
    assert not missing, (
        f"add these specs to the README's table, with the numbers `resdsl check` gives: {missing}"
    )
    gone = sorted(listed - shipped)
    assert not gone, f"the README lists specs that do not exist: {gone}"


@pytest.mark.parametrize(
    ("spec", "args", "params", "gmacs", "reference"),
    readme_rows(),
    ids=[f"{spec} {args}".strip() for spec, args, *_ in readme_rows()],
)
def test_readme_numbers(spec: str, args: str, params: int, gmacs: str, reference: str) -> None:
    code, out, err = _check(ROOT / spec, *shlex.split(args))
    assert code == 0, err
    m = re.search(r"ok \(\w+: \d+ nodes, ([\d,]+) parameters, ([\d.]+) GMACs\)", out)
    assert m is not None, out
    assert int(m[1].replace(",", "")) == params, f"{spec}: resdsl counts {m[1]} parameters"
    assert m[2] == gmacs, f"{spec}: resdsl counts {m[2]} GMACs"
    # A reference cell "source: params · GMACs" (GMACs optional) must agree with the row.
    ref = re.search(r": ([\d,]+)(?: · ([\d.]+))?$", reference)
    if ref is not None:
        assert int(ref[1].replace(",", "")) == params, f"{spec}: reference is {ref[1]}"
        assert ref[2] is None or ref[2] == gmacs, f"{spec}: reference is {ref[2]} GMACs"
