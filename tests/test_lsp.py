"""`resdsl lsp` end to end: pytest-lsp starts the real server over stdio and talks to it as
an editor would. One server serves the module; each test opens its own buffer (unsaved
text at a path inside specs/, so that `use "blocks/..."` resolves to the shipped blocks)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest_lsp = pytest.importorskip("pytest_lsp")
from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

from resdsl.lsp import opdocs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
# The async tests share the module's server, and so its event loop.
ON_SERVER = pytest.mark.asyncio(loop_scope="module")

RESNET = """\
# ResNet-18 as in specs/resnet18.res, with the stem written out.
use "blocks/basic.res"
network small(classes = 1000) {
    input [3, 224, 224]
    conv1: conv(64, 7, stride = 2)
    bn1: bn; relu
    maxpool: maxpool(3, stride = 2, padding = 1)
    layer1: repeat 2 { basic(64) }
    layer2: repeat 2 as i { basic(128, stride = 2 if i == 0 else 1) }
    head(classes)
}
"""

_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest_lsp.fixture(  # type: ignore[untyped-decorator,misc]
    config=ClientServerConfig(server_command=[sys.executable, "-m", "resdsl", "lsp"],
                              server_env=_ENV),
    scope="module",
)
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        workspace_folders=[types.WorkspaceFolder(SPECS.as_uri(), "specs")],
    ))
    yield
    await lsp_client.shutdown_session()


_count = 0


async def _open(client: LanguageClient, text: str) -> tuple[str, list[types.Diagnostic]]:
    """Open `text` as a new unsaved buffer in specs/; its first diagnostics."""
    global _count
    _count += 1
    uri = (SPECS / f"_lsp_test_{_count}.res").as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="resdsl", version=1, text=text)))
    return uri, await _diagnostics(client, uri)


async def _diagnostics(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    """The next diagnostics published for `uri` after the requests just sent. Read from the
    client's record of every publication (pytest-lsp's `client.diagnostics`, a new list per
    publication), not by waiting for the next notification: a publication for `uri` that
    arrives while the test is between two waits (after another file's) would be missed, and
    the test would hang until its timeout."""
    before = client.diagnostics.get(uri)
    deadline = asyncio.get_running_loop().time() + 60
    while client.diagnostics.get(uri) is before:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no diagnostics published for {uri} within 60 s")
        await asyncio.sleep(0.01)
    return list(client.diagnostics[uri])


def _at(line: int, character: int) -> types.Position:
    return types.Position(line, character)


def _doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri)


async def _hover(client: LanguageClient, uri: str, line: int, character: int) -> str:
    result = await client.text_document_hover_async(
        types.HoverParams(text_document=_doc(uri), position=_at(line, character)))
    assert result is not None
    assert isinstance(result.contents, types.MarkupContent)
    return result.contents.value


@ON_SERVER
async def test_diagnostics_on_open_and_change(client: LanguageClient) -> None:
    uri, diags = await _open(client, RESNET)
    assert diags == []
    broken = RESNET.replace("basic(64)", "basci(64)")
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=2, uri=uri),
        [types.TextDocumentContentChangeWholeDocument(broken)]))
    diags = await _diagnostics(client, uri)
    assert [d.code for d in diags] == ["E0201"]
    assert diags[0].range == types.Range(_at(7, 23), _at(7, 28))
    assert "did you mean `basic`?" in diags[0].message
    assert diags[0].severity == types.DiagnosticSeverity.Error
    # An incremental change that fixes it clears the diagnostics.
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=3, uri=uri),
        [types.TextDocumentContentChangePartial(range=types.Range(_at(7, 23), _at(7, 28)),
                                                text="basic")]))
    assert await _diagnostics(client, uri) == []


@ON_SERVER
async def test_diagnostic_inside_a_block_points_where_it_is_called(
        client: LanguageClient) -> None:
    text = ("block twice(c) { skip { conv(c * 2, 3); bn } }\n"
            "network n() {\n    input [8, 16, 16]\n    t: twice(8)\n}\n")
    _, diags = await _open(client, text)
    assert [d.code for d in diags] == ["E0301"]
    assert diags[0].range.start == _at(0, 17)
    related = diags[0].related_information or []
    assert [(r.location.range.start.line, r.location.range.start.character)
            for r in related if "called at" in r.message] == [(3, 7)]
    assert "help: add a projection shortcut" in diags[0].message


@ON_SERVER
async def test_utf16_columns(client: LanguageClient) -> None:
    # `𝔁` is two UTF-16 code units: the error's columns after it move by two, not one.
    text = 'network n(s = "𝔁𝔁") {\n    input [3, 8, 8]\n    conv(4, 3, strde = 1)\n}\n'
    text = text.replace("    conv(4", '    x = "𝔁"; conv(4')
    _, diags = await _open(client, text)
    diags = [d for d in diags if d.severity == types.DiagnosticSeverity.Error]
    assert [d.code for d in diags] == ["E0203"]
    line = text.split("\n")[2]
    start = line.index("strde")
    assert diags[0].range.start == _at(2, start + 1)  # one character before is 2 units
    assert diags[0].range.end == _at(2, start + 1 + len("strde = 1"))


@ON_SERVER
async def test_hover_shows_shape_params_and_module_path(client: LanguageClient) -> None:
    uri, _ = await _open(client, RESNET)
    text = await _hover(client, uri, 4, 12)  # conv1: conv(64, 7, stride = 2)
    assert "64×112×112" in text
    assert "9,408 parameters" in text
    assert "module `conv1`" in text
    assert "A 2-D convolution" in text  # the op's entry in docs/language.md
    text = await _hover(client, uri, 7, 25)  # basic(64) inside layer1: two instances
    assert "`layer1.0`" in text and "`layer1.1`" in text
    assert "block basic(planes, stride = 1, frozen = false)" in text
    text = await _hover(client, uri, 2, 20)  # classes = 1000
    assert "-D classes=VALUE" in text


@ON_SERVER
async def test_hover_keeps_the_last_graph_while_the_buffer_has_errors(
        client: LanguageClient) -> None:
    uri, _ = await _open(client, RESNET)
    broken = RESNET.replace("head(classes)", "head(classes, 3)")
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=2, uri=uri),
        [types.TextDocumentContentChangeWholeDocument(broken)]))
    assert await _diagnostics(client, uri) != []
    assert "64×112×112" in await _hover(client, uri, 4, 12)
    # A syntax error: the last parse answers for the lines that have not changed.
    unparsable = RESNET.replace("basic(64) }", "basic(64, }")
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=3, uri=uri),
        [types.TextDocumentContentChangeWholeDocument(unparsable)]))
    assert [d.code for d in await _diagnostics(client, uri)] == ["E0101"]
    assert "64×112×112" in await _hover(client, uri, 4, 12)
    changed = await client.text_document_hover_async(
        types.HoverParams(text_document=_doc(uri), position=_at(7, 25)))
    assert changed is None
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=_doc(uri), range=types.Range(_at(0, 0), _at(11, 0))))
    lines = {h.position.line for h in hints or []}
    assert 4 in lines and 7 not in lines


@ON_SERVER
async def test_definition_jumps_into_the_block_library(client: LanguageClient) -> None:
    uri, _ = await _open(client, RESNET)
    found = await client.text_document_definition_async(
        types.DefinitionParams(text_document=_doc(uri), position=_at(7, 25)))
    assert isinstance(found, list) and len(found) == 1
    assert found[0].uri == (SPECS / "blocks" / "basic.res").as_uri()
    lines = (SPECS / "blocks" / "basic.res").read_text().split("\n")
    start = found[0].range.start
    assert lines[start.line][start.character:].startswith("basic(")
    # A `use` goes to the file; a parameter's use to the parameter.
    found = await client.text_document_definition_async(
        types.DefinitionParams(text_document=_doc(uri), position=_at(1, 8)))
    assert isinstance(found, list) and found[0].uri == (SPECS / "blocks" / "basic.res").as_uri()
    found = await client.text_document_definition_async(
        types.DefinitionParams(text_document=_doc(uri), position=_at(9, 10)))
    assert isinstance(found, list) and found[0].range.start == _at(2, 14)


@ON_SERVER
async def test_references(client: LanguageClient) -> None:
    uri, _ = await _open(client, RESNET)
    found = await client.text_document_references_async(types.ReferenceParams(
        text_document=_doc(uri), position=_at(8, 53),
        context=types.ReferenceContext(include_declaration=True)))
    assert found is not None
    # `i` of `repeat 2 as i`: its definition and its use.
    assert sorted((r.range.start.line, r.range.start.character) for r in found) == [
        (8, 24), (8, 53)]
    found = await client.text_document_references_async(types.ReferenceParams(
        text_document=_doc(uri), position=_at(7, 25),
        context=types.ReferenceContext(include_declaration=False)))
    assert found is not None
    # `basic` is called in this buffer and by the shipped specs of the workspace.
    uris = {r.uri for r in found}
    assert uri in uris and (SPECS / "resnet18.res").as_uri() in uris


@ON_SERVER
async def test_symbols(client: LanguageClient) -> None:
    uri, _ = await _open(client, RESNET)
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=_doc(uri)))
    assert symbols is not None
    assert [(s.name, s.kind) for s in symbols] == [("small", types.SymbolKind.Class)]
    top = symbols[0]
    assert isinstance(top, types.DocumentSymbol)
    assert [c.name for c in top.children or []][:3] == ["classes", "conv1", "bn1"]
    found = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="bottleneck"))
    assert found is not None
    assert any(s.name == "bottleneck" and isinstance(s.location, types.Location)
               and s.location.uri.endswith("blocks/resnet.res") for s in found)


@ON_SERVER
async def test_completion(client: LanguageClient) -> None:
    uri, _ = await _open(client, RESNET)
    # Inside `conv(64, 7, ` on the conv1 line: the keyword arguments with their defaults.
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=_doc(uri), position=_at(4, 22)))
    assert isinstance(result, types.CompletionList)
    by_label = {i.label: i for i in result.items}
    assert "stride" in by_label and by_label["stride"].insert_text == "stride = "
    assert by_label["groups"].detail is not None and "= 1" in by_label["groups"].detail
    # At a statement's start: ops, primitives, blocks of the imported library, the
    # network's parameters.
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=_doc(uri), position=_at(9, 4)))
    assert isinstance(result, types.CompletionList)
    labels = {i.label for i in result.items}
    assert {"conv", "bn", "skip", "basic", "classes", "layer1"} <= labels
    classes = next(i for i in result.items if i.label == "classes")
    assert classes.detail is not None and "-D classes" in classes.detail


@ON_SERVER
async def test_inlay_hints(client: LanguageClient) -> None:
    uri, _ = await _open(client, RESNET)
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=_doc(uri), range=types.Range(_at(0, 0), _at(11, 0))))
    assert hints is not None
    by_line = {h.position.line: h.label for h in hints}
    assert by_line[4] == " → 64×112×112"
    assert by_line[6] == " → 64×56×56"
    assert by_line[9] == " → 1000"
    assert hints[0].position.character > 0


@ON_SERVER
async def test_formatting_is_resdsl_fmt(client: LanguageClient) -> None:
    """textDocument/formatting gives `resdsl fmt`'s text as one edit; a formatted buffer gets
    no edit, and one that does not parse gets none either."""
    from resdsl.syntax.format import format_source

    messy = "network n {\n  input [3, 8, 8]\n  c1 : conv( 4,3 ) ;relu   # act\n}\n"
    uri, _ = await _open(client, messy)
    options = types.FormattingOptions(tab_size=2, insert_spaces=True)
    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(text_document=_doc(uri), options=options))
    assert edits is not None and len(edits) == 1
    assert edits[0].new_text == format_source(messy) != messy
    assert edits[0].range.start == _at(0, 0)
    tidy, _ = await _open(client, format_source(messy))
    none = await client.text_document_formatting_async(
        types.DocumentFormattingParams(text_document=_doc(tidy), options=options))
    assert none is not None and len(none) == 0
    broken, _ = await _open(client, "network n { input [3, 8, 8]; conv(4, 3 }\n")
    assert await client.text_document_formatting_async(
        types.DocumentFormattingParams(text_document=_doc(broken), options=options)) is None


@ON_SERVER
async def test_code_action_fixes_a_typo(client: LanguageClient) -> None:
    uri, diags = await _open(client, RESNET.replace("stride = 2)", "strides = 2)"))
    assert [d.code for d in diags] == ["E0203"]
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=_doc(uri), range=diags[0].range,
        context=types.CodeActionContext(diagnostics=diags)))
    assert actions is not None and len(actions) == 1
    action = actions[0]
    assert isinstance(action, types.CodeAction) and action.edit is not None
    assert action.edit.changes is not None
    (edit,) = action.edit.changes[uri]
    assert edit.new_text == "stride"
    assert edit.range == types.Range(_at(4, 23), _at(4, 30))
    # A client that does not send `data` back gets the same fix, from the message.
    bare = [types.Diagnostic(range=d.range, message=d.message, code=d.code, source=d.source)
            for d in diags]
    again = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=_doc(uri), range=diags[0].range,
        context=types.CodeActionContext(diagnostics=bare)))
    assert again is not None and [a.title for a in again] == [action.title]


@ON_SERVER
async def test_code_action_adds_the_projection_shortcut(client: LanguageClient) -> None:
    text = ("network n() {\n    input [8, 16, 16]\n    skip { conv(16, 3, stride = 2); bn }\n"
            "}\n")
    uri, diags = await _open(client, text)
    assert [d.code for d in diags] == ["E0301"]
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=_doc(uri), range=diags[0].range,
        context=types.CodeActionContext(diagnostics=diags)))
    assert actions is not None and len(actions) == 1
    action = actions[0]
    assert isinstance(action, types.CodeAction) and action.edit and action.edit.changes
    (edit,) = action.edit.changes[uri]
    assert edit.range.start == edit.range.end == _at(2, 40)
    fixed = text.replace("bn }\n", "bn }" + edit.new_text + "\n", 1)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=2, uri=uri),
        [types.TextDocumentContentChangeWholeDocument(fixed)]))
    assert await _diagnostics(client, uri) == []


def test_op_docs_are_current() -> None:
    """resdsl/lsp/_opdocs.py is what scripts/lsp_docs.py makes of docs/language.md."""
    from resdsl.lsp._opdocs import DOCS

    expected = opdocs.extract((ROOT / "docs" / "language.md").read_text(encoding="utf-8"))
    assert expected == DOCS, "run scripts/lsp_docs.py"
    assert {"conv", "bn", "skip", "dual", "upsample"} <= DOCS.keys()


def test_the_server_never_imports_torch() -> None:
    code = """
import sys
from resdsl.cli import _parser
assert _parser().parse_args(["lsp", "--stdio"]).command == "lsp"
from resdsl.lsp import server
from resdsl.lsp.analysis import analyse
a = analyse("specs/resnet18.res", open("specs/resnet18.res").read())
assert a.graphs and not a.diagnostics, a.diagnostics
assert "torch" not in sys.modules, "torch was imported"
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_ENV, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_without_pygls_it_says_how_to_install_it() -> None:
    code = """
import sys
sys.modules["pygls"] = None  # `import pygls` now fails
from resdsl.cli import main
sys.exit(main(["lsp"]))
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_ENV, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "pip install 'resdsl[lsp]'" in run.stderr
    assert "Traceback" not in run.stderr


def test_latency_bench_runs() -> None:
    """bench/lsp_latency.py still runs (two edits); nothing here looks at a timing."""
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "lsp_latency.py"), "--edits",
                          "2"], cwd=ROOT, env=_ENV, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "didChange → publishDiagnostics" in run.stdout and "the bar" in run.stdout


@ON_SERVER
async def test_changes_during_a_check_are_checked_together(client: LanguageClient) -> None:
    """Ten changes sent at once: the first starts a check, the nine that arrive during it
    make one more check of the newest text, not nine."""
    text = (SPECS / "dpn92.res").read_text(encoding="utf-8")
    uri, diags = await _open(client, text)
    assert diags == []
    for version in range(2, 12):
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=version, uri=uri),
            [types.TextDocumentContentChangeWholeDocument(
                text.replace("classes = 1000", f"classes = {1000 + version}"))]))
    versions: list[int | None] = []
    while not versions or versions[-1] != 11:
        params = await asyncio.wait_for(
            client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 60)
        if params.uri == uri:
            assert not params.diagnostics
            versions.append(params.version)
    assert len(versions) < 10, versions


@ON_SERVER
async def test_inlay_hints_can_be_turned_off(client: LanguageClient) -> None:
    uri, _ = await _open(client, RESNET)
    params = types.InlayHintParams(text_document=_doc(uri),
                                   range=types.Range(_at(0, 0), _at(11, 0)))
    assert await client.text_document_inlay_hint_async(params)
    for enabled in (False, True):
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
            settings={"resdsl": {"inlayHints": enabled}}))
        hints = await client.text_document_inlay_hint_async(params)
        assert bool(hints) is enabled


@ON_SERVER
async def test_saving_a_library_checks_the_buffers_that_use_it(
        client: LanguageClient, tmp_path: Path) -> None:
    lib = tmp_path / "lib.res"
    lib.write_text("block unit(c) { conv(c, 3); bn; relu }\n", encoding="utf-8")
    main = ('use "lib.res"\nnetwork n() {\n    input [3, 8, 8]\n    unit(4)\n}\n')
    uri = (tmp_path / "main.res").as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="resdsl", version=1, text=main)))
    assert await _diagnostics(client, uri) == []
    broken = "block unit(c) { conv(c, 3, strde = 1); bn; relu }\n"
    lib.write_text(broken, encoding="utf-8")
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=lib.as_uri(), language_id="resdsl", version=1,
                               text=broken)))
    client.text_document_did_save(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(lib.as_uri())))
    diags = await _diagnostics(client, uri)
    assert [d.code for d in diags] == ["E0203"]
    # A static check, not an error where it is called: at the `use` that imports it.
    assert diags[0].range == types.Range(_at(0, 0), _at(0, 13))
    assert diags[0].related_information
    assert diags[0].related_information[0].location.uri == lib.as_uri()


def test_a_call_is_a_block_even_where_a_level_has_its_name() -> None:
    """`head: head(3)`: the call is the block (elaboration prefers it), a bare `t` after
    `t = in` is the tensor."""
    from resdsl.lsp.analysis import analyse
    from resdsl.lsp.navigation import definition

    text = ("block head(c) { linear(c) }\nnetwork n() {\n    input [8]\n    t = in\n"
            "    head: head(3)\n    t\n    head(3)\n}\n")
    a = analyse(str(SPECS / "_lsp_unit.res"), text)
    assert [d.code for d in a.diagnostics if d.is_error] == ["E0504"]
    (block,) = definition(a, 5, 12)
    assert block.span is not None and (block.span.line, block.span.column) == (1, 7)
    (tensor,) = definition(a, 6, 5)
    assert tensor.span is not None and (tensor.span.line, tensor.span.column) == (4, 5)
