"""Diagnostics about weights files (codes E06xx).

A weights problem lies in a checkpoint, not in the spec's text, so these diagnostics have no
span; the file's path is in the message instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from resdsl.diagnostics import SpecError, error
from resdsl.diagnostics.diagnostic import Diagnostic

# Lists of keys in messages stop after this many, then say how many more there are.
SHOWN = 8
# A name from a file is shown up to this many characters.
NAME_CHARS = 80


def diag(code: str, message: str, help: str | None = None, notes: Sequence[str] = ()) -> Diagnostic:
    return error(code, message, None, help=help, notes=tuple(notes))


def fail(code: str, message: str, help: str | None = None, notes: Sequence[str] = ()) -> SpecError:
    """`raise fail(...)`: one weights diagnostic."""
    return SpecError([diag(code, message, help, notes)])


def shown(name: str) -> str:
    """A name read from a file, safe to print: control characters (a terminal's escape
    sequences) escaped, and cut to NAME_CHARS characters with `…`."""
    if not name.isprintable():
        name = name.encode("unicode_escape").decode("ascii")
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def listing(items: Sequence[str], count: int = SHOWN) -> str:
    """`a, b, c and 5 more`: the first `count` items of a long list, each `shown`."""
    head = ", ".join(shown(item) for item in items[:count])
    rest = len(items) - count
    return f"{head} and {rest} more" if rest > 0 else head


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
