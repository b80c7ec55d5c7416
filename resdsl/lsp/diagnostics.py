"""resdsl's diagnostics as LSP diagnostics, grouped by the file they point into."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from lsprotocol import types

from resdsl.diagnostics import Diagnostic, Severity, Span
from resdsl.lsp.positions import UTF16, lsp_range, path_to_uri

SOURCE = "resdsl"
# The context notes of elaboration: "in `layer1.0` (basic), called at specs/x.res:7:29",
# "in iteration 2 of the repeat at specs/x.res:6:5".
_AT = re.compile(r" at (?P<path>.+):(?P<line>\d+):(?P<column>\d+)$")
_START = types.Range(types.Position(0, 0), types.Position(0, 0))


def uri_of(span: Span) -> str:
    # Imported files are named relative to the working folder, as `resdsl check` shows them.
    return path_to_uri(span.source.path)


def _note_location(note: str) -> types.Location | None:
    m = _AT.search(note)
    if m is None:
        return None
    line, column = int(m["line"]) - 1, int(m["column"]) - 1
    # The note says where in characters; these locations are near enough for a jump.
    pos = types.Position(line, column)
    return types.Location(path_to_uri(m["path"]), types.Range(pos, pos))


def convert(d: Diagnostic, encoding: str = UTF16) -> types.Diagnostic:
    """One diagnostic: its code, its range, the primary label, notes and help in the message
    (every client shows the message), secondary labels and "called at" notes as related
    information, and the help again in `data` for the code actions."""
    lines = [d.message]
    if d.primary is not None and d.primary.message:
        lines[0] += f": {d.primary.message}"
    related: list[types.DiagnosticRelatedInformation] = []
    for label in d.secondary:
        related.append(types.DiagnosticRelatedInformation(
            types.Location(uri_of(label.span), lsp_range(label.span, encoding)),
            label.message or "here"))
    for note in d.notes:
        lines.append(f"note: {note}")
        where = _note_location(note)
        if where is not None:
            related.append(types.DiagnosticRelatedInformation(where, note))
    if d.help:
        lines.append(f"help: {d.help}")
    return types.Diagnostic(
        range=lsp_range(d.primary.span, encoding) if d.primary is not None else _START,
        message="\n".join(lines),
        severity=(types.DiagnosticSeverity.Error if d.severity is Severity.ERROR
                  else types.DiagnosticSeverity.Warning),
        code=d.code,
        source=SOURCE,
        related_information=related or None,
        data={"help": d.help} if d.help else None,
    )


def help_of(diag: types.Diagnostic) -> str | None:
    """The help of a diagnostic this server published, as a client sends it back: from its
    `data`, or from its message's `help:` line for a client that drops `data`."""
    help = diag.data.get("help") if isinstance(diag.data, dict) else None
    if isinstance(help, str):
        return help
    lines = [ln for ln in diag.message.split("\n") if ln.startswith("help: ")]
    return lines[-1][len("help: "):] if lines else None


def by_file(main_uri: str, diagnostics: Sequence[Diagnostic], encoding: str = UTF16,
            uses: Mapping[str, types.Range] | None = None) -> dict[str, list[types.Diagnostic]]:
    """Each file's diagnostics, the buffer's always present (empty clears it). A problem in
    an imported file is also shown in the buffer, where it is called from (its related
    information), else at the `use` that imports the file (`uses`: file URI → range), else
    at the top, so that the buffer being edited never looks clean when it does not build."""
    out: dict[str, list[types.Diagnostic]] = {main_uri: []}
    for d in diagnostics:
        lsp = convert(d, encoding)
        uri = uri_of(d.primary.span) if d.primary is not None else main_uri
        out.setdefault(uri, []).append(lsp)
        if uri != main_uri:
            here = next((r.location.range for r in lsp.related_information or ()
                         if r.location.uri == main_uri), (uses or {}).get(uri, _START))
            where = d.primary.span if d.primary is not None else None
            out[main_uri].append(types.Diagnostic(
                range=here, message=f"in {where}: {lsp.message}" if where else lsp.message,
                severity=lsp.severity, code=lsp.code, source=SOURCE,
                related_information=[types.DiagnosticRelatedInformation(
                    types.Location(uri, lsp.range), d.message)],
                data=None))
    return out
