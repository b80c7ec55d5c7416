"""The ops' and primitives' entries of docs/language.md, in short, for hover.

The wheel ships the package, not docs/, so the entries are extracted at build time into
`_opdocs.py` by `scripts/lsp_docs.py` (tests/test_lsp.py checks that it is current); this
module holds the extraction, so that the script and the test share it.
"""

from __future__ import annotations

import re

# The sections whose `### `name`` headings document ops and primitives.
SECTIONS = ("## Ops", "## Primitives")
_HEADING = re.compile(r"^### (.*)$")
_NAME = re.compile(r"`([a-z_0-9]+)`")
# An entry's prose is cut after this many characters, at a sentence's end.
MAX_PROSE = 500


def _short(prose: str) -> str:
    if len(prose) <= MAX_PROSE:
        return prose
    cut = prose.rfind(". ", 0, MAX_PROSE)
    return prose[: cut + 1] if cut > 0 else prose[:MAX_PROSE] + "…"


def _entry(lines: list[str]) -> str:
    """A section's usage (its signature line or `text` block) and its first paragraph."""
    usage: list[str] = []
    prose: list[str] = []
    i = 0
    while i < len(lines) and not prose:
        line = lines[i]
        if line.startswith("```"):
            fence = [line]
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                fence.append(lines[i])
                i += 1
            fence.append("```")
            if fence[0] == "```text" and not usage:
                usage = ["```res", *fence[1:]]
        elif line.startswith("`") and line.endswith("`") and not usage and not prose:
            usage = ["```res", line.strip("`"), "```"]
        elif line.strip():
            while i < len(lines) and lines[i].strip():
                prose.append(lines[i].strip())
                i += 1
        i += 1
    text = "\n".join(usage)
    if prose:
        text += ("\n\n" if text else "") + _short(" ".join(prose))
    return text


def extract(markdown: str) -> dict[str, str]:
    """Name → its entry in short (markdown), for every op and primitive documented."""
    entries: dict[str, str] = {}
    section = ""
    names: list[str] = []
    body: list[str] = []

    def flush() -> None:
        if names:
            entry = _entry(body)
            for name in names:
                entries[name] = entry

    for line in markdown.splitlines():
        if line.startswith("## "):
            flush()
            names, body = [], []
            section = line.strip()
            continue
        heading = _HEADING.match(line)
        if heading is not None:
            flush()
            names = _NAME.findall(heading.group(1)) if section in SECTIONS else []
            body = []
            continue
        body.append(line)
    flush()
    return entries
