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


def diag(code: str, message: str, help: str | None = None, notes: Sequence[str] = ()) -> Diagnostic:
    return error(code, message, None, help=help, notes=tuple(notes))


def fail(code: str, message: str, help: str | None = None, notes: Sequence[str] = ()) -> SpecError:
    """`raise fail(...)`: one weights diagnostic."""
    return SpecError([diag(code, message, help, notes)])


def listing(items: Sequence[str], shown: int = SHOWN) -> str:
    """`a, b, c and 5 more`: the first `shown` items of a long list."""
    head = ", ".join(items[:shown])
    rest = len(items) - shown
    return f"{head} and {rest} more" if rest > 0 else head


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
