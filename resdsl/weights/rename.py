"""Renaming a checkpoint's keys before they are matched: `rename=` and `--rename`.

A rule is a regular expression and its replacement, applied with `re.sub` to every key of the
file; the rules apply one after the other, in order, like mmengine's `revise_keys`. A mapping
{"shortcut": "downsample"} is the same rules in its order. Renaming is for a checkpoint whose
names differ from the spec's in part (`shortcut` for `downsample`, a `backbone.` prefix):
after it, the keys match by name.

When they do not, `suggest` looks for the renaming the diagnostic can propose: one part of the
dotted names that differs between the keys the file lacks and those it has in excess.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

from resdsl.weights._diag import fail, shown

# What `rename=` takes: {pattern: replacement}, or (pattern, replacement) pairs in order.
Rename: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
Rule: TypeAlias = tuple[re.Pattern[str], str]

# `suggest` compares at most this many keys of each side (it is quadratic).
_SUGGEST_KEYS = 300
_HELP = ("rename takes {pattern: replacement} or a list of (pattern, replacement) pairs: "
         "Python regular expressions and re.sub replacements")


def rules(rename: Rename | None) -> tuple[Rule, ...]:
    """`rename` checked and compiled; a mistake is an E0609 diagnostic naming the rule."""
    if rename is None:
        return ()
    if isinstance(rename, (str, bytes)):
        raise fail("E0609", f"rename is a {type(rename).__name__}, not a list of rules",
                   _HELP + ": rename={\"shortcut\": \"downsample\"}")
    pairs = list(rename.items()) if isinstance(rename, Mapping) else list(rename)
    out: list[Rule] = []
    for pair in pairs:
        if (not isinstance(pair, tuple | list) or len(pair) != 2
                or not all(isinstance(p, str) for p in pair)):
            raise fail("E0609", f"the rename rule {shown(repr(pair))} is not a (pattern, "
                       "replacement) pair of strings", _HELP)
        out.append(compile_rule(*pair))
    return tuple(out)


def compile_rule(pattern: str, replacement: str) -> Rule:
    """One rule, its pattern and its replacement checked; a mistake is E0609."""
    try:
        return _compiled(pattern, replacement), replacement
    except ValueError as exc:
        raise fail("E0609", f"the rename rule `{shown(pattern)}` → `{shown(replacement)}` "
                   f"is invalid: {exc}", _HELP) from None


def parse_rule(text: str) -> tuple[str, str]:
    """`PATTERN=REPLACEMENT` (the command line's form), split at the last `=` (a pattern
    may hold one, as in a lookahead `(?=...)`). ValueError says what is wrong."""
    pattern, sep, replacement = text.rpartition("=")
    if not sep or not pattern:
        raise ValueError(f"takes PATTERN=REPLACEMENT, not `{text}`")
    try:
        _compiled(pattern, replacement)
    except ValueError as exc:
        raise ValueError(f"`{text}` is not a valid rule: {exc}") from None
    return pattern, replacement


def _compiled(pattern: str, replacement: str) -> re.Pattern[str]:
    """The pattern compiled, its replacement checked against it (a group the pattern lacks,
    `\\3`, is an error of the replacement); ValueError when either is invalid."""
    try:
        compiled = re.compile(pattern)
        compiled.sub(replacement, "")  # compiles the replacement, whether or not it matches
    except (re.error, IndexError) as exc:
        raise ValueError(str(exc)) from None
    return compiled


def apply(keys: Iterable[str], compiled: Sequence[Rule], source: str) -> dict[str, str]:
    """Each key's new name (the keys renaming leaves as they were included), in the keys'
    order. Two keys renamed to one name are an E0609 diagnostic."""
    new: dict[str, str] = {}
    seen: dict[str, str] = {}
    for key in keys:
        name = key
        for pattern, replacement in compiled:
            name = pattern.sub(replacement, name)
        if name in seen:
            raise fail(
                "E0609",
                f"renaming the keys of `{source}` gives `{shown(seen[name])}` and "
                f"`{shown(key)}` the same name `{shown(name)}`",
                "make the patterns more specific, e.g. anchored with `^` and `\\.`",
            )
        seen[name] = key
        new[key] = name
    return new


def suggest(missing: Sequence[str], unexpected: Sequence[str]) -> tuple[str, str] | None:
    """The renaming of one part of the dotted names that turns most of the file's
    `unexpected` keys into `missing` ones (`shortcut` → `downsample`), or None. Numbers and
    the last part (`weight`, `bias`) are never renamed: they differ between real keys."""
    wanted = set(missing)
    votes: Counter[tuple[str, str]] = Counter()
    ours = [m.split(".") for m in missing[:_SUGGEST_KEYS]]
    for key in unexpected[:_SUGGEST_KEYS]:
        theirs = key.split(".")
        for parts in ours:
            if len(parts) != len(theirs):
                continue
            differ = [i for i, (a, b) in enumerate(zip(theirs, parts, strict=True)) if a != b]
            if len(differ) == 1 and differ[0] < len(parts) - 1:
                a, b = theirs[differ[0]], parts[differ[0]]
                if not (a.isdigit() or b.isdigit()):
                    votes[a, b] += 1
    for (old, new), _ in votes.most_common(3):
        fixed = sum(_rename_part(k, old, new) in wanted for k in unexpected)
        if fixed:
            return old, new
    return None


def _rename_part(key: str, old: str, new: str) -> str:
    return ".".join(new if part == old else part for part in key.split("."))


def pattern_for(old: str, keys: Iterable[str]) -> str:
    """A pattern that matches the dotted part `old` of `keys`: the plain word when it
    occurs in them only as a whole part, else the word anchored at the dots."""
    plain = all(key.count(old) == key.split(".").count(old) for key in keys)
    return old if plain else rf"(?<![^.]){re.escape(old)}(?![^.])"
