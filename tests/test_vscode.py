"""The VS Code extension in editors/vscode/ (docs/editors.md).

Always: every keyword of grammars/resdsl.lark, every op a spec may call, every primitive,
join of named tensors and built-in function has its pattern in the TextMate grammar, and no
pattern names a word the language does not have. With Node 20+ and the extension's npm
packages: the annotated test files pass vscode-tmgrammar-test; over every shipped spec, each
token the TextMate grammar gives agrees with the one Lark's lexer gives (keywords, ops,
names, numbers, strings, comments); the client's node tests pass (against the real server,
and under a stand-in for VS Code's API); and the `.vsix` builds.

The npm packages come from editors/vscode/node_modules when a developer has run `npm ci`
there; otherwise `npm ci` installs them into a copy of the extension in a temporary folder
(from the npm cache when it has them), so that the repository gets no new files. Without
node or npm, or when `npm ci` cannot reach the packages, those tests skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lark import Lark, Token
from lark.exceptions import LarkError
from lark.lexer import PatternStr

from resdsl._resources import grammar_path
from resdsl.ir.evaluate import FUNCTIONS
from resdsl.ir.ops import USER_OPS
from resdsl.ir.primitives import JOINS, PRIMITIVES
from tests import specgen

ROOT = Path(__file__).resolve().parent.parent
EXTENSION = ROOT / "editors" / "vscode"
TM_GRAMMAR = EXTENSION / "syntaxes" / "resdsl.tmLanguage.json"
ANNOTATED = sorted((EXTENSION / "test").glob("*.test.res"))
# The shipped specs and the docs' example file: the text the grammar must get right.
SPEC_FILES = sorted((ROOT / "specs").rglob("*.res")) + sorted((ROOT / "docs").rglob("*.res"))


def _tm() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TM_GRAMMAR.read_text(encoding="utf-8"))
    return data


def _regexes(rule: Any) -> Iterator[str]:
    """Every `match` and `begin` regex in a rule and the rules inside it."""
    if isinstance(rule, dict):
        for key in ("match", "begin"):
            if isinstance(rule.get(key), str):
                yield rule[key]
        for value in rule.values():
            yield from _regexes(value)
    elif isinstance(rule, list):
        for item in rule:
            yield from _regexes(item)


# A word the grammar recognises: `\bword\b`, or one of an alternation `\b(?:a|b)\b`, `\b(a|b)`.
_WORDS = re.compile(r"\\b\((?:\?:)?([a-z0-9_|]+)\)|\\b([a-z][a-z0-9_]*)\\b")


def _words(repository_key: str) -> set[str]:
    words: set[str] = set()
    for regex in _regexes(_tm()["repository"][repository_key]):
        for group, single in _WORDS.findall(regex):
            words.update((group or single).split("|"))
    return words


def _lark_keywords() -> set[str]:
    """The words that grammars/resdsl.lark writes as literals: `block`, `if`, `skip`, ..."""
    parser = Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr")
    return {t.pattern.value for t in parser.terminals
            if isinstance(t.pattern, PatternStr) and t.pattern.value.isidentifier()}


def test_grammar_names_every_keyword_of_the_language() -> None:
    keywords = _lark_keywords()
    assert {"block", "network", "def", "repeat", "skip", "shortcut", "in"} <= keywords
    covered = _words("keyword") | _words("primitive") | _words("definition")
    assert keywords - covered == set(), "keywords of resdsl.lark the TextMate grammar misses"
    assert covered - keywords == set(), "words the TextMate grammar takes for keywords"


def test_grammar_names_exactly_the_ops_primitives_joins_and_functions() -> None:
    # Exact sets: an op added to the registry (or removed) changes the highlighting too. The
    # registry's internal ops (`add`, `highway`, ...) are not callable, so not highlighted.
    assert _words("op") == set(USER_OPS)
    assert _words("primitive") == set(PRIMITIVES)
    assert _words("builtin") == set(FUNCTIONS)
    assert _words("join") == set(JOINS)


def test_grammar_declares_its_language() -> None:
    package = json.loads((EXTENSION / "package.json").read_text(encoding="utf-8"))
    (language,) = package["contributes"]["languages"]
    (grammar,) = package["contributes"]["grammars"]
    assert language["extensions"] == [".res"]
    assert grammar["scopeName"] == _tm()["scopeName"] == "source.resdsl"
    assert (EXTENSION / grammar["path"]).resolve() == TM_GRAMMAR
    config = json.loads((EXTENSION / language["configuration"]).read_text(encoding="utf-8"))
    assert config["comments"] == {"lineComment": "#"}
    # The server's settings (resdsl/lsp/server.py) under the names VS Code sends them by.
    settings = package["contributes"]["configuration"]["properties"]
    assert {"resdsl.inlayHints", "resdsl.debounceMs", "resdsl.pythonPath",
            "resdsl.server.path"} <= set(settings)


# --- With node and the extension's npm packages ---------------------------------------------


def _node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    found = re.match(r"v(\d+)\.", out.stdout.strip())
    return int(found.group(1)) if found else None


def _installed(folder: Path) -> bool:
    bins = folder / "node_modules" / ".bin"
    return all((bins / name).exists() for name in ("vsce", "vscode-tmgrammar-test"))


@pytest.fixture(scope="module")
def extension(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the extension with its npm packages installed (see the module's doc)."""
    major = _node_major()
    if major is None:
        pytest.skip("node is not installed")
    if major < 20:
        pytest.skip(f"node {major} is too old for @vscode/vsce 3.9 (it needs 20+)")
    if _installed(EXTENSION):
        return EXTENSION
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    copy = tmp_path_factory.mktemp("vscode") / "extension"
    shutil.copytree(EXTENSION, copy, ignore=shutil.ignore_patterns("node_modules", "*.vsix"))
    done = subprocess.run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"],
                          cwd=copy, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not _installed(copy):
        pytest.skip(f"`npm ci` failed (offline with an empty npm cache?): {done.stderr[-500:]}")
    return copy


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)


def test_annotated_scopes(extension: Path) -> None:
    assert len(ANNOTATED) >= 3
    done = _run([str(extension / "node_modules" / ".bin" / "vscode-tmgrammar-test"),
                 "-g", "syntaxes/resdsl.tmLanguage.json",
                 *(str(f.relative_to(EXTENSION)) for f in ANNOTATED)], extension)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert done.stdout.count("run successfuly") == len(ANNOTATED)


# What the TextMate grammar must call each token Lark's lexer sees, by token type: the scope
# (a prefix) that one of the token's scopes must start with. NAME depends on its context
# (`_name_scope`); a name in a label is `entity.name.label` whatever its type.
_SCOPES: dict[str, str | tuple[str, ...]] = {
    "COMMENT": "comment.line.number-sign", "STRING": "string.quoted.double",
    "INT": "constant.numeric.integer", "FLOAT": "constant.numeric.float",
    "COMP_OP": "keyword.operator.comparison", "ADD_OP": "keyword.operator.arithmetic",
    "MUL_OP": "keyword.operator.arithmetic", "POW_OP": "keyword.operator.arithmetic",
    "EQUAL": "keyword.operator.assignment", "USE": "keyword.control.import",
    "BLOCK": "storage.type.block", "NETWORK": "storage.type.network",
    "DEF": "storage.type.function", "INPUT": "keyword.other.input",
    "OUTPUT": "keyword.other.output", "SHORTCUT": "keyword.other.clause",
    "TRANSFORM": "keyword.other.clause", "TRUE": "constant.language.boolean",
    "FALSE": "constant.language.boolean", "IN": "variable.language.in",
    "IF": "keyword.control", "ELSE": "keyword.control", "REPEAT": "keyword.control",
    "AS": "keyword.control", "RETURN": "keyword.control", "AND": "keyword.operator.logical",
    "OR": "keyword.operator.logical", "NOT": "keyword.operator.logical",
    "SEMICOLON": "punctuation.terminator.statement", "COMMA": "punctuation.separator.comma",
    "COLON": "punctuation.separator.label", "LSQB": "punctuation.section.brackets.begin",
    "RSQB": "punctuation.section.brackets.end", "DOT": "punctuation.accessor",
    "NAME_LBRACE": "entity.name.label.interpolated",
    **{name.upper(): "keyword.other.primitive" for name in PRIMITIVES},
}
# A name that is none of the above must not look like one.
_NOT_A_PLAIN_NAME = ("keyword.", "support.", "storage.", "constant.", "string.", "comment.",
                     "entity.name.function", "entity.name.type")

_comments: list[Token] = []


def _keep_comment(token: Token) -> Token:
    _comments.append(token)
    return token


_PARSER = Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", keep_all_tokens=True,
               lexer_callbacks={"COMMENT": _keep_comment})


def _lark_tokens(text: str) -> tuple[list[Token], list[Token]]:
    """The tokens of a parse (each typed as the contextual lexer typed it: `scale` is SCALE
    before a body, NAME as a parameter), and the comments."""
    _comments.clear()
    tree = _PARSER.parse(text, start="start")
    tokens = sorted(tree.scan_values(lambda v: isinstance(v, Token)), key=_line_column)
    return tokens, list(_comments)


def _line_column(token: Token) -> tuple[int, int]:
    """The token's 1-based line and column (Lark sets them: positions are on)."""
    assert token.line is not None and token.column is not None
    return token.line, token.column


def _name_scope(tokens: list[Token], i: int, lists: list[str]) -> str | None:
    prev = tokens[i - 1] if i else None
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    name = tokens[i].value
    if prev is not None and prev.type in ("BLOCK", "NETWORK"):
        return f"entity.name.type.{prev.value}"
    if prev is not None and prev.type == "DEF":
        return "entity.name.function"
    if lists and lists[-1] == "params" and prev is not None and prev.type in ("LPAR", "COMMA"):
        return "variable.parameter"
    if after is not None and after.type == "EQUAL":
        return "variable.parameter.keyword" if lists else "variable.other.assignment"
    if name in USER_OPS:
        return "support.function.op"
    if after is not None and after.type == "LPAR":
        return ("support.function.builtin" if name in FUNCTIONS
                else "support.function.join" if name in JOINS
                else "entity.name.function.call")
    if prev is not None and prev.type == "DOT":
        return "variable.other.member"
    return None


def _expected_scopes(tokens: list[Token]) -> list[str | tuple[str, ...] | None]:
    expected: list[str | tuple[str, ...] | None] = [None] * len(tokens)
    labelled: set[int] = set()
    # A label: the names, numbers, keywords and dots glued together before a `:`.
    for i, token in enumerate(tokens):
        if token.type != "COLON":
            continue
        j = i - 1
        while j >= 0 and (tokens[j].type in ("NAME", "INT", "DOT")
                          or (tokens[j].type != "NAME" and tokens[j].value.isidentifier())):
            labelled.add(j)
            # `inner_blocks.{i}.0:`: the dot after an interpolation is an accessor.
            expected[j] = (("entity.name.label", "punctuation.accessor")
                           if tokens[j].type == "DOT" else "entity.name.label")
            if j == 0 or tokens[j - 1].end_pos != tokens[j].start_pos:
                break
            j -= 1
    lists: list[str] = []  # open parentheses: a definition's parameters or arguments
    braces: list[bool] = []  # open braces: an interpolation, or a body
    for i, token in enumerate(tokens):
        prev = tokens[i - 1] if i else None
        if i in labelled:
            continue
        if token.type == "LPAR":
            params = i >= 2 and tokens[i - 1].type == "NAME" and tokens[i - 2].type in (
                "BLOCK", "NETWORK", "DEF")
            lists.append("params" if params else "args")
            expected[i] = f"punctuation.section.{'parameters' if params else 'arguments'}.begin"
        elif token.type == "RPAR":
            kind = lists.pop() if lists else "args"
            expected[i] = ("punctuation.section.parameters.end" if kind == "params"
                           else "punctuation.section.arguments.end")
        elif token.type in ("LBRACE", "NAME_LBRACE"):
            # `{` glued to a name, a dot or an interpolation interpolates; else it opens a body.
            interp = token.type == "NAME_LBRACE" or (
                prev is not None and prev.end_pos == token.start_pos
                and prev.type in ("DOT", "NAME", "INT", "RBRACE"))
            braces.append(interp)
            expected[i] = _SCOPES["NAME_LBRACE"] if token.type == "NAME_LBRACE" else (
                "punctuation.section.interpolation.begin" if interp
                else "punctuation.section.block.begin")
        elif token.type == "RBRACE":
            interp = braces.pop() if braces else False
            expected[i] = ("punctuation.section.interpolation.end" if interp
                           else "punctuation.section.block.end")
        elif token.type == "NAME":
            expected[i] = _name_scope(tokens, i, lists)
        else:
            expected[i] = _SCOPES[token.type]
    return expected


def _mismatches(path: Path, tm: dict[str, Any]) -> list[str]:
    tokens, comments = _lark_tokens(path.read_text(encoding="utf-8"))
    checks = list(zip(tokens, _expected_scopes(tokens), strict=True))
    checks += [(c, _SCOPES["COMMENT"]) for c in comments]
    found = []
    for token, want in checks:
        row, column = _line_column(token)
        (scopes,) = [s for start, end, s in tm["lines"][row - 1] if start <= column - 1 < end]
        if want is None:
            ok = not scopes[-1].startswith(_NOT_A_PLAIN_NAME)
        else:
            ok = any(s.startswith(want) for s in scopes)
        if not ok:
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            found.append(f"{shown}:{row}:{column}: "
                         f"{token.type} {token.value!r}: want {want or 'a plain name'}, "
                         f"got {' '.join(scopes[1:])}")
    return found


def _parses(path: Path) -> bool:
    try:
        _lark_tokens(path.read_text(encoding="utf-8"))
    except (LarkError, UnicodeDecodeError):  # the golden files of bad input
        return False
    return True


def test_tokens_agree_with_lark_over_every_spec(extension: Path, tmp_path: Path) -> None:
    # The shipped specs; then odd corners: the golden error files that parse, and random
    # valid specs from the differential tests' generator (every op, with its keywords).
    odd = [f for f in sorted((ROOT / "tests").rglob("*.res")) if _parses(f)]
    assert len(SPEC_FILES) > 40 and len(odd) > 100
    generated = []
    for seed in range(20):
        generated.append(tmp_path / f"generated{seed}.res")
        generated[-1].write_text(specgen.generate(seed), encoding="utf-8")
    files = SPEC_FILES + ANNOTATED + odd + generated
    done = _run(["node", str(extension / "test" / "tokens.js"), *map(str, files)], extension)
    assert done.returncode == 0, done.stderr[-2000:]
    dumps = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["file"] for d in dumps] == list(map(str, files))
    runaway = [d["file"] for d in dumps if d["open"]]
    assert runaway == [], "a parameter or argument list never closes"
    mismatches = [m for path, tm in zip(files, dumps, strict=True) for m in _mismatches(path, tm)]
    assert mismatches == [], "\n".join(mismatches[:30])


def test_client_finds_and_starts_the_server(extension: Path) -> None:
    """node --test over the client: its command line and messages (test/server.test.js,
    which starts the real server with this Python, this checkout first on its path) and its
    activation under a stand-in `vscode` module (test/extension.test.js)."""
    pytest.importorskip("pygls")
    env = {**os.environ, "RESDSL_TEST_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = _run(["node", "--test", "test/server.test.js", "test/extension.test.js"], extension,
                env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"^# pass 10$", done.stdout, re.M), done.stdout[-2000:]


def test_vsix_builds(extension: Path, tmp_path: Path) -> None:
    vsix = tmp_path / "resdsl.vsix"
    # Offline: the npm that vsce asks for the runtime dependencies may not use the network.
    done = _run([str(extension / "node_modules" / ".bin" / "vsce"), "package", "--skip-license",
                 "--allow-missing-repository", "--out", str(vsix)], extension,
                env={**os.environ, "npm_config_offline": "true"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
    assert {"extension/package.json", "extension/language-configuration.json",
            "extension/syntaxes/resdsl.tmLanguage.json", "extension/src/extension.js",
            "extension/src/server.js",
            "extension/node_modules/vscode-languageclient/package.json"} <= names
    # The runtime dependency goes in; the tests and the build tools stay out.
    assert not [n for n in names if n.startswith(("extension/test/",
                                                  "extension/node_modules/@vscode/vsce/",
                                                  "extension/node_modules/vscode-tmgrammar-test/"))]
    assert manifest["contributes"]["languages"][0]["id"] == "resdsl"
    assert not list(EXTENSION.glob("*.vsix"))
