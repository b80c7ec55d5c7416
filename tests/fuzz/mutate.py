"""A mutator over real specs: the shipped ones (`specs/`, `specs/blocks/`) and every ```res
example in the docs. Each case applies one to three edits to one seed: delete, duplicate or
move a slice, swap lines, put a hostile number or another name of the file in place of a
token, splice in a piece of another seed, wrap a line in a big repeat, or insert a stray
character. The seeds mostly pass the checks, so their mutants reach elaboration.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_RES_BLOCK = re.compile(r"^```res\n(.*?)^```", re.M | re.S)
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9_.eE]*|\"[^\"\n]*\"|\S")
HOSTILE_NUMBERS = (
    "0", "-1", "1", "3", "100000", "99999", "65536", "2147483647", "2147483648",
    "9223372036854775807", "9223372036854775808", "10 ** 18", "2 ** 62", "1e308", "0.5",
    "-0", "1_0", "(1)",
)
STRAY = ("\t", "\r", "\u00a0", "é", "\ufeff", "\\", "'", "$", "\x00", "{", "}", "(", ")", "#")


@lru_cache(maxsize=1)
def seeds() -> tuple[tuple[str, str], ...]:
    """(origin, text) of every seed: shipped specs, block libraries and docs examples."""
    out: list[tuple[str, str]] = []
    for path in sorted((ROOT / "specs").rglob("*.res")):
        out.append((path.relative_to(ROOT).as_posix(), path.read_text("utf-8")))
    for doc in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        for i, match in enumerate(_RES_BLOCK.finditer(doc.read_text("utf-8"))):
            out.append((f"{doc.relative_to(ROOT).as_posix()}#{i}", match.group(1)))
    return tuple(out)


class Mutator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seeds = seeds()

    def spec(self) -> tuple[str, str]:
        """(description, text) of one mutant."""
        origin, text = self.rng.choice(self.seeds)
        done = []
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            edit = self.rng.choice(_EDITS)
            text = edit(self, text)
            done.append(edit.__name__.strip("_"))
        return f"{origin} [{', '.join(done)}]", text

    # ------------------------------------------------------------------ helpers

    def _slice(self, text: str, longest: int = 40) -> tuple[int, int]:
        i = self.rng.randint(0, len(text))
        return i, min(len(text), i + self.rng.randint(0, longest))

    def _tokens(self, text: str, pattern: str | None = None) -> list[re.Match[str]]:
        found = list(_TOKEN.finditer(text))
        if pattern is not None:
            found = [m for m in found if re.fullmatch(pattern, m.group())]
        return found


def _delete(m: Mutator, text: str) -> str:
    i, j = m._slice(text)
    return text[:i] + text[j:]


def _duplicate(m: Mutator, text: str) -> str:
    i, j = m._slice(text)
    return text[:j] + text[i:j] * m.rng.choice((1, 2, 8)) + text[j:]


def _move(m: Mutator, text: str) -> str:
    i, j = m._slice(text)
    piece, rest = text[i:j], text[:i] + text[j:]
    k = m.rng.randint(0, len(rest))
    return rest[:k] + piece + rest[k:]


def _swap_lines(m: Mutator, text: str) -> str:
    lines = text.split("\n")
    a, b = m.rng.randrange(len(lines)), m.rng.randrange(len(lines))
    lines[a], lines[b] = lines[b], lines[a]
    return "\n".join(lines)


def _number(m: Mutator, text: str) -> str:
    found = m._tokens(text, r"[0-9][0-9_]*")
    if not found:
        return text
    t = m.rng.choice(found)
    return text[: t.start()] + m.rng.choice(HOSTILE_NUMBERS) + text[t.end() :]


def _rename(m: Mutator, text: str) -> str:
    found = m._tokens(text, r"[A-Za-z_][A-Za-z0-9_]*")
    if len(found) < 2:
        return text
    t, other = m.rng.choice(found), m.rng.choice(found)
    return text[: t.start()] + other.group() + text[t.end() :]


def _splice(m: Mutator, text: str) -> str:
    _, donor = m.rng.choice(m.seeds)
    i, j = m._slice(donor, 200)
    k = m.rng.randint(0, len(text))
    return text[:k] + donor[i:j] + text[k:]


def _repeat(m: Mutator, text: str) -> str:
    """Wrap one line in a repeat, or make a repeat's count big."""
    counts = m._tokens(text, r"repeat")
    if counts and m.rng.random() < 0.5:
        t = m.rng.choice(counts)
        n = m.rng.choice(("100000", "99999", "50000", "1000"))
        return text[: t.end()] + f" {n} + 0 *" + text[t.end() :]
    lines = text.split("\n")
    k = m.rng.randrange(len(lines))
    n = m.rng.choice(("2", "100", "1000", "30000", "100000"))
    lines[k] = f"repeat {n} {{ {lines[k]} }}"
    return "\n".join(lines)


def _stray(m: Mutator, text: str) -> str:
    k = m.rng.randint(0, len(text))
    return text[:k] + m.rng.choice(STRAY) + text[k:]


_EDITS = (_delete, _duplicate, _move, _swap_lines, _number, _number, _rename, _rename,
          _splice, _repeat, _stray)
