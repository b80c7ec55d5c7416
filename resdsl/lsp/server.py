"""The language server: pygls wiring of the features in this package.

A buffer is checked on open and on every change. Checks run one at a time on a worker
thread, so that hover and completion answer while one runs; changes that arrive meanwhile
are coalesced into one more check of the newest text when it ends (plus a quiet time of
`debounceMs`, 0 by default): typing never queues a check per keystroke. Hover and inlay
hints read the last analysis that built a graph, so they keep working while the buffer has
errors.

Settings (`initializationOptions`, or `workspace/didChangeConfiguration` under `resdsl`):
`inlayHints` (true), `debounceMs` (0).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from resdsl import __version__
from resdsl.lsp import actions, completion, diagnostics, hover, inlay, navigation
from resdsl.lsp.analysis import Analysis, analyse
from resdsl.lsp.positions import UTF16, column_of, lsp_range, path_to_uri, position, units


@dataclass
class Settings:
    inlay_hints: bool = True
    debounce_ms: float = 0.0

    def update(self, options: Any) -> None:
        if isinstance(options, dict) and isinstance(options.get("resdsl"), dict):
            options = options["resdsl"]
        if not isinstance(options, dict):
            return
        if isinstance(options.get("inlayHints"), bool):
            self.inlay_hints = options["inlayHints"]
        delay = options.get("debounceMs")
        if isinstance(delay, (int, float)) and not isinstance(delay, bool) and delay >= 0:
            self.debounce_ms = float(delay)


@dataclass
class Document:
    uri: str
    path: str
    text: str = ""
    version: int | None = None
    # The newest analysis; the newest that parsed (names, symbols); the newest that built
    # a graph (hover, inlay hints).
    latest: Analysis | None = None
    parsed: Analysis | None = None
    built: Analysis | None = None
    dirty: bool = False
    task: asyncio.Task[None] | None = None
    published: set[str] = field(default_factory=set)


class ResdslServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("resdsl", __version__)
        self.documents: dict[str, Document] = {}
        self.settings = Settings()
        self.workspace_files = navigation.Workspace()
        # One check at a time, whatever the buffer: the compiler's caches are not shared
        # between threads, and two checks at once would only halve each one's speed.
        self.checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resdsl-check")

    @property
    def encoding(self) -> str:
        enc = self.workspace.position_encoding
        return str(getattr(enc, "value", enc) or UTF16)

    # ------------------------------------------------------------ checking

    def changed(self, uri: str) -> None:
        doc = self.documents[uri]
        text_doc = self.workspace.get_text_document(uri)
        doc.text, doc.version = text_doc.source, text_doc.version
        doc.dirty = True
        if doc.task is None:
            doc.task = asyncio.get_running_loop().create_task(self._check(doc))

    async def _check(self, doc: Document) -> None:
        loop = asyncio.get_running_loop()
        try:
            while doc.dirty:
                if self.settings.debounce_ms:
                    await asyncio.sleep(self.settings.debounce_ms / 1000)
                doc.dirty = False
                text, version = doc.text, doc.version
                result = await loop.run_in_executor(self.checker, analyse, doc.path, text,
                                                    version)
                if doc.uri not in self.documents:
                    return
                doc.latest = result
                if result.program is not None:
                    doc.parsed = result
                if result.graphs:
                    doc.built = result
                if not doc.dirty:  # a newer text is coming: its diagnostics will do
                    self.publish(doc, result)
        finally:
            doc.task = None

    def publish(self, doc: Document, result: Analysis) -> None:
        files = diagnostics.by_file(doc.uri, result.diagnostics, self.encoding,
                                    self.uses(doc, result))
        # A file open in the editor has diagnostics of its own, which another buffer's
        # would replace; what is wrong in it shows in that buffer, where it is called.
        files = {uri: items for uri, items in files.items()
                 if uri == doc.uri or uri not in self.documents}
        for uri in doc.published - files.keys():
            files[uri] = []
        for uri, items in files.items():
            self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
                uri=uri, diagnostics=items, version=doc.version if uri == doc.uri else None))
        doc.published = {uri for uri, items in files.items() if items} | {doc.uri}

    def uses(self, doc: Document, result: Analysis) -> dict[str, types.Range]:
        """Each file the buffer imports directly → the range of its `use`: from this check,
        or from the last that parsed when this one could not load the program."""
        analysis = result if result.program is not None else doc.parsed
        if analysis is None or analysis.program is None:
            return {}
        main = analysis.program.main
        out: dict[str, types.Range] = {}
        for use in main.uses:
            file = analysis.program.imports.get((main.source.path, use.path))
            if file is not None:
                out.setdefault(path_to_uri(file.source.path), lsp_range(use.span, self.encoding))
        return out

    # ------------------------------------------------------------ positions

    def place(self, uri: str, pos: types.Position) -> tuple[int, int]:
        """An LSP position in a buffer as a 1-based line and code-point column."""
        lines = self.workspace.get_text_document(uri).lines
        text = lines[pos.line].rstrip("\r\n") if pos.line < len(lines) else ""
        return pos.line + 1, column_of(text, pos.character, self.encoding)

    def location(self, target: navigation.Target) -> types.Location:
        uri = path_to_uri(target.path)
        if target.span is None:
            start = types.Position(0, 0)
            return types.Location(uri, types.Range(start, start))
        return types.Location(uri, lsp_range(target.span, self.encoding))

    def graphs(self) -> Analysis:
        """An analysis that holds the graphs of every open buffer that built: a statement
        of a block library is shown as the specs that use it run it."""
        merged = Analysis("", "", None, [])
        for doc in self.documents.values():
            if doc.built is not None:
                merged.graphs += doc.built.graphs
        return merged


SERVER = ResdslServer()


@SERVER.feature(types.INITIALIZE)
def initialize(ls: ResdslServer, params: types.InitializeParams) -> None:
    ls.settings.update(params.initialization_options)
    roots = [to_fs_path(f.uri) for f in params.workspace_folders or ()]
    if not roots and ls.workspace.root_path:
        roots = [ls.workspace.root_path]
    ls.workspace_files.roots = [Path(os.path.abspath(r)) for r in roots if r]


@SERVER.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(ls: ResdslServer,
                             params: types.DidChangeConfigurationParams) -> None:
    ls.settings.update(params.settings)


@SERVER.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: ResdslServer, params: types.DidOpenTextDocumentParams) -> None:
    uri = params.text_document.uri
    path = to_fs_path(uri) or uri
    ls.documents[uri] = Document(uri, os.path.abspath(path))
    ls.changed(uri)


@SERVER.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: ResdslServer, params: types.DidChangeTextDocumentParams) -> None:
    if params.text_document.uri in ls.documents:
        ls.changed(params.text_document.uri)


@SERVER.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: ResdslServer, params: types.DidSaveTextDocumentParams) -> None:
    """The buffers that import a saved file are checked again: they read it from disk."""
    saved = ls.documents.get(params.text_document.uri)
    if saved is None:
        return
    for doc in list(ls.documents.values()):
        program = doc.latest.program if doc.latest is not None else None
        imports = program.files[1:] if program is not None else []
        if doc is not saved and any(os.path.abspath(f.source.path) == saved.path
                                    for f in imports):
            ls.changed(doc.uri)


@SERVER.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: ResdslServer, params: types.DidCloseTextDocumentParams) -> None:
    doc = ls.documents.pop(params.text_document.uri, None)
    if doc is not None:
        for uri in doc.published:
            ls.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


def _parsed(ls: ResdslServer, uri: str) -> Analysis | None:
    doc = ls.documents.get(uri)
    return doc.parsed if doc is not None else None


def _current(ls: ResdslServer, uri: str, line: int) -> Analysis | None:
    """The buffer's last parse, if its 1-based `line` reads as it did then: while the buffer
    does not parse, what is asked about an unchanged line is still answered, but never from
    a line that has changed since."""
    analysis = _parsed(ls, uri)
    if analysis is None or analysis.file is None:
        return None
    lines = ls.workspace.get_text_document(uri).lines
    now = lines[line - 1].rstrip("\r\n") if line - 1 < len(lines) else ""
    return analysis if analysis.file.source.line(line) == now else None


@SERVER.feature(types.TEXT_DOCUMENT_HOVER)
def on_hover(ls: ResdslServer, params: types.HoverParams) -> types.Hover | None:
    line, column = ls.place(params.text_document.uri, params.position)
    analysis = _current(ls, params.text_document.uri, line)
    if analysis is None:
        return None
    text = hover.hover(analysis, ls.graphs(), line, column)
    if text is None:
        return None
    return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text))


@SERVER.feature(types.TEXT_DOCUMENT_DEFINITION)
def on_definition(ls: ResdslServer,
                  params: types.DefinitionParams) -> list[types.Location] | None:
    line, column = ls.place(params.text_document.uri, params.position)
    analysis = _current(ls, params.text_document.uri, line)
    if analysis is None:
        return None
    return [ls.location(t) for t in navigation.definition(analysis, line, column)] or None


@SERVER.feature(types.TEXT_DOCUMENT_REFERENCES)
async def on_references(ls: ResdslServer,
                        params: types.ReferenceParams) -> list[types.Location] | None:
    line, column = ls.place(params.text_document.uri, params.position)
    analysis = _current(ls, params.text_document.uri, line)
    if analysis is None:
        return None
    # On the checker's thread: it may parse the workspace's files, which takes a while the
    # first time, and the parser is not shared between threads.
    found = await asyncio.get_running_loop().run_in_executor(
        ls.checker, navigation.references, analysis, ls.workspace_files, line, column,
        params.context.include_declaration)
    return [ls.location(t) for t in found] or None


_SYMBOL_KINDS = {
    "network": types.SymbolKind.Class,
    "block": types.SymbolKind.Struct,
    "function": types.SymbolKind.Function,
    "param": types.SymbolKind.Variable,
    "level": types.SymbolKind.Field,
}


def _document_symbol(ls: ResdslServer, sym: navigation.Symbol) -> types.DocumentSymbol:
    return types.DocumentSymbol(
        name=sym.name, kind=_SYMBOL_KINDS[sym.kind], detail=sym.detail or None,
        range=lsp_range(sym.span, ls.encoding),
        selection_range=lsp_range(sym.selection, ls.encoding),
        children=[_document_symbol(ls, c) for c in sym.children] or None)


@SERVER.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def on_document_symbol(ls: ResdslServer,
                       params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
    analysis = _parsed(ls, params.text_document.uri)
    if analysis is None or analysis.file is None:
        return []
    return [_document_symbol(ls, s) for s in navigation.document_symbols(analysis.file)]


@SERVER.feature(types.WORKSPACE_SYMBOL)
async def on_workspace_symbol(
        ls: ResdslServer, params: types.WorkspaceSymbolParams) -> list[types.WorkspaceSymbol]:
    files = [f for d in ls.documents.values() if d.parsed is not None and d.parsed.program
             for f in d.parsed.program.files]
    found = await asyncio.get_running_loop().run_in_executor(
        ls.checker, navigation.workspace_symbols, params.query, files, ls.workspace_files)
    return [
        types.WorkspaceSymbol(
            name=s.name, kind=_SYMBOL_KINDS[s.kind],
            location=types.Location(diagnostics.uri_of(s.span),
                                    lsp_range(s.selection, ls.encoding)),
            container_name=os.path.basename(s.span.source.path))
        for s in found
    ]


_COMPLETION_KINDS = {
    "op": types.CompletionItemKind.Function,
    "primitive": types.CompletionItemKind.Keyword,
    "block": types.CompletionItemKind.Class,
    "function": types.CompletionItemKind.Function,
    "keyword": types.CompletionItemKind.Keyword,
    "argument": types.CompletionItemKind.Property,
    "variable": types.CompletionItemKind.Variable,
    "property": types.CompletionItemKind.Property,
}


@SERVER.feature(types.TEXT_DOCUMENT_COMPLETION,
                types.CompletionOptions(trigger_characters=["(", ",", "."]))
def on_completion(ls: ResdslServer, params: types.CompletionParams) -> types.CompletionList:
    uri = params.text_document.uri
    text = ls.workspace.get_text_document(uri).source
    line, column = ls.place(uri, params.position)
    items = completion.complete(_parsed(ls, uri), text, line, column)
    return types.CompletionList(is_incomplete=False, items=[
        types.CompletionItem(
            label=i.label, kind=_COMPLETION_KINDS.get(i.kind), detail=i.detail or None,
            insert_text=i.insert,
            documentation=(types.MarkupContent(types.MarkupKind.Markdown, i.doc)
                           if i.doc else None))
        for i in items
    ])


@SERVER.feature(types.TEXT_DOCUMENT_INLAY_HINT)
def on_inlay_hint(ls: ResdslServer, params: types.InlayHintParams) -> list[types.InlayHint]:
    if not ls.settings.inlay_hints:
        return []
    analysis = _parsed(ls, params.text_document.uri)
    if analysis is None or analysis.file is None:
        return []
    source = analysis.file.source
    lines = ls.workspace.get_text_document(params.text_document.uri).lines
    found = inlay.hints(analysis, ls.graphs(), params.range.start.line + 1,
                        params.range.end.line + 1)
    # From the last parse: only on the lines that read as they did then.
    return [types.InlayHint(position=position(source, h.line, h.column, ls.encoding),
                            label=h.label, kind=types.InlayHintKind.Type, padding_left=True)
            for h in found
            if h.line - 1 < len(lines) and lines[h.line - 1].rstrip("\r\n") == source.line(h.line)]


@SERVER.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
def on_code_action(ls: ResdslServer,
                   params: types.CodeActionParams) -> list[types.CodeAction] | None:
    uri = params.text_document.uri
    analysis = _parsed(ls, uri)
    lines = ls.workspace.get_text_document(uri).lines
    out: list[types.CodeAction] = []
    for diag in params.context.diagnostics:
        help = diagnostics.help_of(diag)
        if help is None or diag.source != diagnostics.SOURCE:
            continue
        line, column = ls.place(uri, diag.range.start)
        _, end_column = ls.place(uri, diag.range.end)
        if diag.range.end.line != diag.range.start.line:
            end_column = column + 10_000
        text = lines[line - 1].rstrip("\r\n") if line - 1 < len(lines) else ""
        edit = actions.rename(diag.message, help, text, line, column, end_column)
        if edit is None and analysis is not None and diag.code in ("E0301", "E0302"):
            edit = actions.add_shortcut(analysis, help, line, column)
        if edit is None:
            continue
        start = _client_position(ls, lines, edit.line, edit.column)
        end = _client_position(ls, lines, edit.end_line, edit.end_column)
        out.append(types.CodeAction(
            title=edit.title, kind=types.CodeActionKind.QuickFix, diagnostics=[diag],
            is_preferred=True,
            edit=types.WorkspaceEdit(changes={uri: [types.TextEdit(
                types.Range(start, end), edit.text)]})))
    return out or None


@SERVER.feature(types.TEXT_DOCUMENT_FORMATTING)
def on_formatting(ls: ResdslServer,
                  params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
    """`resdsl fmt` of the buffer, as one edit of the whole text; nothing while the buffer
    does not parse (its diagnostics say why) or when it is formatted already. The editor's
    tab size and spacing options are not read: the layout is the language's one."""
    from resdsl.diagnostics import InternalError, SpecError
    from resdsl.syntax.format import format_source

    doc = ls.workspace.get_text_document(params.text_document.uri)
    try:
        text = format_source(doc.source, doc.path)
    except (SpecError, InternalError):
        return None
    if text == doc.source:
        return []
    lines = doc.lines
    end = types.Position(len(lines), 0)
    return [types.TextEdit(types.Range(types.Position(0, 0), end), text)]


def _client_position(ls: ResdslServer, lines: Sequence[str], line: int,
                     column: int) -> types.Position:
    text = lines[line - 1].rstrip("\r\n") if line - 1 < len(lines) else ""
    return types.Position(line - 1, units(text[: column - 1], ls.encoding))


def serve() -> None:
    """Serve on standard input and output until the client says exit."""
    SERVER.start_io()

