"""The canonical layout of a .res file (`resdsl fmt`): text → the same spec, laid out one way.

The formatter works on the spec's tokens, read from Lark's parse tree (built with every
token kept, so that each has the rule it belongs to), and on the comments and line breaks
between them, read from the text between consecutive tokens (which holds only white space
and comments). It keeps the user's line breaks, so the choice between `;` and a new line
stays theirs, and decides the rest; docs/language.md §Layout lists the rules:

- indentation: 4 spaces a body level; a continuation line inside `(` or `[` aligns after the
  bracket, or, when the bracket ends its line, is indented 4 more than the bracket's line;
  any other continuation line is indented 4 more than its statement;
- spacing: one space between tokens, none inside brackets, before `,` `;` `:` (a label's)
  and around `.`, none between a name and its `(` or `[`, after a sign, or inside a name
  (`conv{s}_{i + 1}`);
- statements on one line are separated by `;`;
- a body is on one line, or its `{` ends its line and its `}` starts one, and its statement
  and a statement after that `}` start lines;
- a code line longer than 100 columns is broken: between its statements, after the last
  `;` that fits; one statement opens its bodies; else it breaks after the last `,` that
  fits, outermost brackets first;
- a `;` that ends a line, follows `{` or precedes `}` goes; at most one blank line anywhere,
  none after `{` or before `}`; a block, network or def over several lines has a blank line
  before and after it (except beside a `use`);
- comments stay where they are: an own-line comment takes the indentation of the line after
  it, an end-of-line comment goes two spaces after the code, or keeps its column when more
  spaces set it apart (comments aligned in a column stay aligned).

Every run checks its own result (`format_source`): it parses to the same AST, has the same
comments in the same order, and formats to itself; otherwise FormatCheckError, and the
caller leaves the file as it was.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Tree

from resdsl._resources import grammar_path
from resdsl.diagnostics import InternalError, Source, Span, SpecError
from resdsl.syntax import ast
from resdsl.syntax.parser import parse

INDENT = 4
MAX_WIDTH = 100


class FormatCheckError(InternalError):
    """The formatted text would not mean what the original meant (a bug in the formatter):
    the caller must not write it."""


@lru_cache(maxsize=1)
def _token_parser() -> Lark:
    """The language's grammar, parsed keeping every token (`(`, `,`, `;`, ...), so that each
    token of a spec appears in the tree under the rule it belongs to."""
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        keep_all_tokens=True,
        maybe_placeholders=True,
        start="start",
        cache=True,
    )


# ------------------------------------------------------------------ the public entry


def format_source(text: str, path: str = "<text>") -> str:
    """`text` in the canonical layout. A syntax error raises SpecError (as `parse` does); a
    result that fails the formatter's own checks raises FormatCheckError."""
    source = Source(path, text.lstrip("\ufeff"))
    before = parse(source)  # the diagnostics of a broken spec, before anything else
    result, comments = _format(source.text)
    after_source = Source(path, result)
    try:
        after = parse(after_source)
    except SpecError as exc:  # the formatter's fault here, not the user's
        raise FormatCheckError(f"the formatted text does not parse: {exc}") from None
    if ast_shape(before) != ast_shape(after):
        raise FormatCheckError("the formatted text parses to a different AST")
    again, comments_after = _format(result)
    if comments_after != comments:
        raise FormatCheckError("the formatted text does not have the same comments")
    if again != result:
        raise FormatCheckError("formatting the formatted text changes it again")
    return result


def ast_shape(tree: ast.File) -> list[object]:
    """A flat, span-free description of an AST: equal for two texts that mean the same.
    Iterative: an AST may nest deeper than Python's recursion allows."""
    out: list[object] = []
    stack: list[object] = [tree]
    while stack:
        node = stack.pop()
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            out.append(type(node).__name__)
            values = [getattr(node, f.name) for f in dataclasses.fields(node)]
            stack.extend(reversed([v for v in values if not isinstance(v, (Span, Source))]))
        elif isinstance(node, tuple):
            out.append(("(", len(node)))
            stack.extend(reversed(node))
        else:
            out.append((type(node).__name__, node))
    return out


# ------------------------------------------------------------------ tokens and gaps


@dataclass
class _Tok:
    """A token of the spec, with what its place in the tree says about its layout."""

    text: str
    type: str
    rule: str  # the rule whose child it is
    start: int
    end: int
    statement_start: bool = False  # the first token of an item, a statement or a `return`
    body: bool = False  # a `{` or `}` of a body
    interp_open: bool = False  # `layer{` or the `{` of an interpolation
    interp_close: bool = False
    mate: int = -1  # the index of the matching bracket


@dataclass
class _Gap:
    """What lies between two tokens: comments, and the line breaks around them.
    `newlines[k]` is the number of line ends before comment k (the last: after the last
    comment); 0 before a comment puts it at the end of the code's line."""

    # (text, column): the column of an end-of-line comment set apart to be aligned, else -1
    comments: list[tuple[str, int]] = field(default_factory=list)
    newlines: list[int] = field(default_factory=lambda: [0])


_COMMENT = re.compile(r"#[^\n]*")


def _tokens(text: str) -> list[_Tok]:
    """The tokens of the spec in order, each with its rule, from the full parse tree."""
    tree = _token_parser().parse(text)
    toks: list[_Tok] = []
    starts: set[int] = set()  # the start offsets of statements
    stack: list[tuple[Any, str]] = [(tree, "start")]
    while stack:
        node, rule = stack.pop()
        if node is None:
            continue
        if isinstance(node, Token):
            toks.append(_Tok(str(node), node.type, rule, node.start_pos or 0,
                             node.end_pos or 0))
            continue
        assert isinstance(node, Tree)
        data = str(node.data)
        if data in ("start", "body", "function"):
            for child in node.children:
                if _starts_statement(data, child):
                    first = _first_token(child)
                    if first is not None:
                        starts.add(first.start_pos or 0)
        stack.extend((child, data) for child in reversed(node.children))
    for tok in toks:
        tok.statement_start = tok.start in starts
        tok.body = tok.type in ("LBRACE", "RBRACE") and tok.rule in ("body", "function")
        tok.interp_open = tok.type == "NAME_LBRACE" or (tok.type == "LBRACE"
                                                        and tok.rule == "interp")
        tok.interp_close = tok.type == "RBRACE" and tok.rule in ("interp", "name", "segment")
    _pair_brackets(toks)
    return toks


def _starts_statement(rule: str, child: Any) -> bool:
    """Whether `child` of a `start`, `body` or `function` node is an item or statement."""
    if isinstance(child, Token):
        return child.type == "RETURN"
    if not isinstance(child, Tree):
        return False
    return rule != "function" or str(child.data) == "binding"


def _first_token(node: Any) -> Token | None:
    while isinstance(node, Tree):
        node = next((c for c in node.children if c is not None), None)
    return node if isinstance(node, Token) else None


def _gaps(text: str, toks: list[_Tok]) -> list[_Gap]:
    """gaps[i]: what lies before token i; gaps[len(toks)]: what follows the last one."""
    gaps: list[_Gap] = []
    ends = [0, *(t.end for t in toks)]
    begins = [*(t.start for t in toks), len(text)]
    for lo, hi in zip(ends, begins, strict=True):
        gap = _Gap()
        at = lo
        for match in _COMMENT.finditer(text, lo, hi):
            gap.newlines[-1] += text.count("\n", at, match.start())
            gap.comments.append((match.group().rstrip(), _aligned_column(text, match.start())))
            gap.newlines.append(0)
            at = match.end()
        gap.newlines[-1] += text.count("\n", at, hi)
        gaps.append(gap)
    return gaps


def _aligned_column(text: str, at: int) -> int:
    """The column of the comment at `at` when more than two spaces (or a tab) set it apart
    from the code before it, as comments aligned in a column are; else -1."""
    pad = at
    while pad > 0 and text[pad - 1] in " \t":
        pad -= 1
    if at - pad <= 2 and "\t" not in text[pad:at]:
        return -1
    return at - (text.rfind("\n", 0, at) + 1)


# ------------------------------------------------------------------ layout


def _format(text: str) -> tuple[str, list[str]]:
    """The text in the canonical layout, and its comments in order."""
    toks = _tokens(text)
    gaps = _gaps(text, toks)
    comments = [c for g in gaps for c, _ in g.comments]
    # The tokens after which a line break is added for a line too long, by source offset
    # (the indices of tokens change as `;`s go).
    breaks: set[int] = set()
    while True:
        newlines = _line_breaks(toks, gaps, breaks)
        lonely = {i for i, tok in enumerate(toks)
                  if tok.type == "SEMICOLON" and _separates_nothing(i, toks, gaps, newlines)}
        if lonely:
            toks, gaps = _without(toks, gaps, lonely)
            continue
        unseparated = [i for i, tok in enumerate(toks)
                       if tok.statement_start and i > 0 and not any(newlines[i])
                       and toks[i - 1].type not in ("SEMICOLON", "LBRACE")]
        if unseparated:
            toks, gaps = _with_semicolons(toks, gaps, unseparated)
            continue
        lines, where, columns = _emit(toks, gaps, newlines)
        more = _long_line_breaks(toks, where, columns, newlines)
        if not more:
            return "".join(line + "\n" for line in lines), comments
        # A break after a `;` is kept as one before it: the `;` then goes.
        breaks |= {toks[i - 1 if toks[i].type == "SEMICOLON" else i].start for i in more}


def _separates_nothing(i: int, toks: list[_Tok], gaps: list[_Gap],
                       newlines: list[list[int]]) -> bool:
    """Whether the `;` at i separates nothing on its line: it is next to a line break or a
    comment, after `{` or another `;`, before `}`, or at either end."""
    if gaps[i].comments or gaps[i + 1].comments or any(newlines[i]) or any(newlines[i + 1]):
        return True
    if i == 0 or i + 1 == len(toks):
        return True
    return toks[i - 1].type in ("LBRACE", "SEMICOLON") or toks[i + 1].type in ("RBRACE",
                                                                               "SEMICOLON")


def _without(toks: list[_Tok], gaps: list[_Gap], drop: set[int]
             ) -> tuple[list[_Tok], list[_Gap]]:
    """The tokens but those at `drop`; the gaps around a dropped token merge."""
    kept: list[_Tok] = []
    merged: list[_Gap] = [_Gap(list(gaps[0].comments), list(gaps[0].newlines))]
    for i, tok in enumerate(toks):
        after = gaps[i + 1]
        if i in drop:
            last = merged[-1]
            last.comments.extend(after.comments)
            last.newlines[-1] += after.newlines[0]
            last.newlines.extend(after.newlines[1:])
            continue
        kept.append(tok)
        merged.append(_Gap(list(after.comments), list(after.newlines)))
    _pair_brackets(kept)
    return kept, merged


def _with_semicolons(toks: list[_Tok], gaps: list[_Gap], before: list[int]
                     ) -> tuple[list[_Tok], list[_Gap]]:
    """A `;` before each token at `before` (a statement that follows another on its line):
    the gap before the token goes before the `;`."""
    at = set(before)
    out: list[_Tok] = []
    out_gaps: list[_Gap] = []
    for i, tok in enumerate(toks):
        out_gaps.append(gaps[i])
        if i in at:
            # Not in the source: an offset no source token has, for the `breaks` set.
            out.append(_Tok(";", "SEMICOLON", "body", -1 - tok.start, -1 - tok.start))
            out_gaps.append(_Gap())
        out.append(tok)
    out_gaps.append(gaps[len(toks)])
    _pair_brackets(out)
    return out, out_gaps


def _pair_brackets(toks: list[_Tok]) -> None:
    """Set each bracket's `mate`, the index of the bracket that closes or opens it."""
    opened: list[int] = []
    for i, tok in enumerate(toks):
        if tok.type in ("LPAR", "LSQB", "LBRACE", "NAME_LBRACE"):
            opened.append(i)
        elif tok.type in ("RPAR", "RSQB", "RBRACE"):
            j = opened.pop()
            toks[j].mate, tok.mate = i, j


def _line_breaks(toks: list[_Tok], gaps: list[_Gap], breaks: set[int]) -> list[list[int]]:
    """The line ends of each gap in the output (the `newlines` of each gap, decided)."""
    n = len(toks)
    newlines = [list(g.newlines) for g in gaps]
    interp = 0
    for i in range(n + 1):
        nl = newlines[i]
        for k in range(1, len(nl)):
            nl[k] = max(1, min(nl[k], 2))  # a comment ends its line
        nl[0] = min(nl[0], 2)
        prev = toks[i - 1] if i > 0 else None
        tok = toks[i] if i < n else None
        if prev is None:
            nl[0] = 0  # nothing before the file's first token or comment
        if tok is None:
            nl[-1] = 1 if n or gaps[i].comments else 0  # one line end closes the file
        if prev is not None and prev.interp_open:
            interp += 1
        if tok is not None and tok.interp_close:
            interp -= 1
        if len(nl) == 1 and prev is not None and tok is not None:
            if interp > 0 or tok.interp_close or _glued_name(prev, tok):
                nl[0] = 0  # a name is written in one piece
            elif tok.body and tok.type == "LBRACE" and not tok.statement_start:
                nl[0] = 0  # a body opens on the line of its statement
            elif tok.body and tok.mate == i - 1:
                nl[0] = 0  # an empty body is `{ }`
            if prev.start in breaks:
                nl[0] = max(nl[0], 1)
        if prev is not None and prev.body and prev.type == "LBRACE":
            nl[0] = min(nl[0], 1)  # no blank line after `{`
        if tok is not None and tok.body and tok.type == "RBRACE":
            nl[-1] = min(nl[-1], 1)  # nor before `}`
    # A body that spans lines has its `{` end a line and its `}` start one; its statement
    # starts a line, and so does a statement after the `}` (a `;` between them goes).
    has_break = [0] * (n + 2)  # prefix counts of gaps holding a line end
    for i in range(n + 1):
        has_break[i + 1] = has_break[i] + (1 if any(newlines[i]) else 0)
    owners = _statements_of_bodies(toks)
    for i, tok in enumerate(toks):
        spans_lines = tok.mate > i + 1 and has_break[tok.mate + 1] > has_break[i + 1]
        if tok.body and tok.type == "LBRACE" and spans_lines:
            after, before = newlines[i + 1], newlines[tok.mate]
            after[-1] = max(after[-1], 1)
            before[-1] = max(before[-1], 1)
            owner = owners[i]
            if owner > 0:
                newlines[owner][-1] = max(newlines[owner][-1], 1)
            follower = tok.mate + 1
            if follower < n and toks[follower].type == "SEMICOLON":
                follower += 1
            if follower < n and toks[follower].statement_start:
                newlines[follower][-1] = max(newlines[follower][-1], 1)
    _top_level_spacing(toks, newlines)
    return newlines


def _statements_of_bodies(toks: list[_Tok]) -> dict[int, int]:
    """For each body's `{`, the first token of the statement or definition it belongs to."""
    owners: dict[int, int] = {}
    current: list[int] = [-1]  # per body level: the statement being read
    for i, tok in enumerate(toks):
        if tok.statement_start:
            current[-1] = i
        if tok.body and tok.type == "LBRACE":
            owners[i] = current[-1]
            current.append(-1)
        elif tok.body and tok.type == "RBRACE":
            current.pop()
    return owners


def _glued_name(prev: _Tok, tok: _Tok) -> bool:
    """Whether `prev` and `tok` are parts of one name (`conv{s}_x`, `layer{`, `.{i}`)."""
    if prev.interp_open or tok.interp_close:
        return True
    if prev.interp_close and tok.rule in ("name", "segment"):
        return True
    return tok.interp_open and tok.type == "LBRACE"


def _top_level_spacing(toks: list[_Tok], newlines: list[list[int]]) -> None:
    """Each top-level item starts a line; a definition over several lines has a blank line
    before and after it (above the comments that lead into it), except beside a `use`."""
    items: list[tuple[int, int]] = []  # (first, last) token of each item
    depth = 0
    for i, tok in enumerate(toks):
        if depth == 0 and tok.statement_start:
            items.append((i, i))
        if tok.type in ("LPAR", "LSQB", "LBRACE", "NAME_LBRACE"):
            depth += 1
        elif tok.type in ("RPAR", "RSQB", "RBRACE"):
            depth -= 1
        if items:
            items[-1] = (items[-1][0], i)

    def multiline(item: tuple[int, int]) -> bool:
        first, last = item
        return toks[first].type != "USE" and any(
            any(newlines[g]) for g in range(first + 1, last + 1))

    for a, b in itertools.pairwise(items):
        nl = newlines[b[0]]
        nl[-1] = max(nl[-1], 1)
        if toks[a[0]].type == "USE" or toks[b[0]].type == "USE":
            continue
        if not (multiline(a) or multiline(b)):
            continue
        k = len(nl) - 1  # the line end above the comments that lead into the item
        while k > 0 and nl[k] == 1 and nl[k - 1] >= 1:
            k -= 1
        nl[k] = 2


def _emit(toks: list[_Tok], gaps: list[_Gap], newlines: list[list[int]]
          ) -> tuple[list[str], list[tuple[int, int, int]], list[int]]:
    """The output lines; where each token went: (line, start column, end column); and for
    each token, the column of a line that would start after it (in `(` or `[`, or a body)."""
    lines: list[str] = []
    line = ""
    where: list[tuple[int, int, int]] = []
    columns: list[int] = []
    # The open brackets: (token index, indentation of the lines inside, of the closer).
    open_: list[tuple[int, int, int]] = []
    n = len(toks)
    line_indent = 0

    def body_depth() -> int:
        return sum(1 for j, _, _ in open_ if toks[j].body)

    def indent_for(i: int) -> int:
        """The indentation of a line that starts with token i."""
        tok = toks[i] if i < n else None
        if tok is None:
            return 0
        if tok.type in ("RPAR", "RSQB", "RBRACE") and open_ and open_[-1][0] == tok.mate:
            return open_[-1][2]
        if open_ and not toks[open_[-1][0]].body:
            return open_[-1][1]
        base = INDENT * body_depth()
        return base if tok.statement_start else base + INDENT

    def comment_indent(i: int) -> int:
        tok = toks[i] if i < n else None
        if tok is not None and tok.type in ("RBRACE", "RPAR", "RSQB") and open_:
            return open_[-1][1]
        return indent_for(i)

    def new_lines(count: int) -> None:
        nonlocal line
        lines.append(line.rstrip())
        lines.extend([""] * (count - 1))
        line = ""

    for i in range(n + 1):
        gap, nl = gaps[i], newlines[i]
        for k, (comment, column) in enumerate(gap.comments):
            if nl[k] == 0 and line.strip():
                code = line.rstrip()
                line = code + " " * max(2, column - len(code)) + comment
            else:
                if nl[k] or line:
                    new_lines(max(nl[k], 1))
                line = " " * comment_indent(i) + comment
        if i == n:
            if line or nl[-1]:
                new_lines(1)
            break
        tok = toks[i]
        if nl[-1] or gap.comments:
            if line or i > 0:
                new_lines(max(nl[-1], 1))
            line_indent = indent_for(i)
            line = " " * line_indent
        elif i > 0 and not _glued(toks[i - 1], tok):
            line += " "
        start = len(line)
        line += tok.text
        where.append((len(lines), start, len(line)))
        columns.append(open_[-1][1] if open_ else 0)
        if tok.type in ("RPAR", "RSQB", "RBRACE") and open_ and open_[-1][0] == tok.mate:
            open_.pop()
        elif tok.type in ("LPAR", "LSQB", "LBRACE", "NAME_LBRACE"):
            if tok.body:
                inner = INDENT * (body_depth() + 1)
                open_.append((i, inner, inner - INDENT))
            elif tok.interp_open:
                open_.append((i, line_indent, line_indent))
            elif newlines[i + 1][0] or gaps[i + 1].comments:  # the bracket ends its line
                open_.append((i, line_indent + INDENT, line_indent))
            else:
                open_.append((i, len(line), start))
    return lines, where, columns


def _glued(prev: _Tok, tok: _Tok) -> bool:
    """Whether two tokens on one line are written with no space between them."""
    if _glued_name(prev, tok):
        return True
    if prev.type in ("LPAR", "LSQB") or tok.type in ("RPAR", "RSQB", "COMMA", "SEMICOLON"):
        return True
    if tok.type == "COLON" or prev.type == "DOT" or tok.type == "DOT":
        return True
    if tok.type == "LPAR" and tok.rule in ("args", "params"):
        return True  # `conv(`, `block b(`
    if tok.type == "LSQB" and tok.rule in ("index", "element"):
        return True  # `t[0]`
    return prev.type == "ADD_OP" and prev.rule == "unary"  # `-1`


def _long_line_breaks(toks: list[_Tok], where: list[tuple[int, int, int]],
                      columns: list[int], newlines: list[list[int]]) -> set[int]:
    """Line breaks for the code lines past MAX_WIDTH, as the tokens they go after. Such a
    line breaks between its statements (after the last `;` that fits, and so on); one
    statement opens the bodies on it (those in no other); a line with neither breaks after
    commas or before an `else` inside brackets, each time at the last that fits of the
    outermost brackets (or the first, when none fits). Empty when no line can be broken."""
    on_line: dict[int, list[int]] = {}
    for i, (row, _, _) in enumerate(where):
        on_line.setdefault(row, []).append(i)
    depth, openers = _bracket_depths(toks)
    found: set[int] = set()
    for members in on_line.values():
        if where[members[-1]][2] <= MAX_WIDTH:
            continue
        bodies: list[int] = []  # the outermost bodies on the line, whole
        separators: set[int] = set()  # the `;` between the line's statements
        for i in members:
            tok = toks[i]
            inside = bool(bodies) and toks[bodies[-1]].mate > i
            if tok.type == "SEMICOLON" and not inside:
                separators.add(i)
            if (tok.body and tok.type == "LBRACE" and tok.mate > i + 1 and not inside
                    and where[tok.mate][0] == where[i][0]):
                bodies.append(i)
        if separators - {members[-1]}:
            found |= _fill(members, separators, toks, where, columns, None)
        elif bodies:
            for i in bodies:
                found |= {i, toks[i].mate - 1}
        else:
            commas = {i for i in members if toks[i].type == "COMMA" and depth[i] > 0}
            # Before an `else` inside brackets too: a chain of conditionals has no comma of
            # its own, and breaking in the lists it picks from splits a list.
            elses = {members[p - 1] for p in range(1, len(members))
                     if toks[members[p]].type == "ELSE" and depth[members[p]] > 0}
            found |= _fill(members, commas | elses, toks, where, columns, (depth, openers))
    return found


def _fill(members: list[int], allowed: set[int], toks: list[_Tok],
          where: list[tuple[int, int, int]], columns: list[int],
          brackets: tuple[list[int], list[int]] | None) -> set[int]:
    """The tokens of `allowed` (`;` or `,`) after which one long line breaks, chosen in one
    pass: each time the last that fits (for commas, of the outermost brackets), or the first
    when none fits; the rest of the line moves to where its next line starts (`shift`: by
    how much), for commas just after their bracket when it opened on the line."""
    position = {i: p for p, i in enumerate(members)}
    starts: list[int] = [0]  # the first position of each piece of the line
    shifts: list[int] = [0]  # and how far it moves
    shift, begin = 0, 0
    chosen: set[int] = set()
    while where[members[-1]][2] + shift > MAX_WIDTH:
        best = first = None
        for p in range(begin, len(members) - 1):
            i = members[p]
            if i not in allowed:
                continue
            if first is None:
                first = p
            if where[i][2] + shift > MAX_WIDTH:
                break  # the ones further on are further out
            if best is None or brackets is None or (brackets[0][i]
                                                    <= brackets[0][members[best]]):
                best = p
        pick = best if best is not None else first
        if pick is None:
            break
        token = members[pick]
        chosen.add(token)
        column = columns[token]
        opener = brackets[1][token] if brackets is not None else -1
        if opener in position:  # opened on this line, before the comma: align after it
            piece = bisect.bisect_right(starts, position[opener]) - 1
            column = where[opener][2] + shifts[piece]
        begin = pick + 1
        shift = column - where[members[begin]][1]
        starts.append(begin)
        shifts.append(shift)
    return chosen


def _bracket_depths(toks: list[_Tok]) -> tuple[list[int], list[int]]:
    """For each token, how many `(` and `[` are open around it (-1 inside a name's
    interpolation), and the innermost of them (-1 when none)."""
    depths: list[int] = []
    openers: list[int] = []
    stack: list[int] = []
    interp = 0
    for i, tok in enumerate(toks):
        if tok.interp_close:
            interp -= 1
        if tok.type in ("RPAR", "RSQB"):
            stack.pop()
        depths.append(-1 if interp else len(stack))
        openers.append(stack[-1] if stack else -1)
        if tok.type in ("LPAR", "LSQB"):
            stack.append(i)
        if tok.interp_open:
            interp += 1
    return depths, openers


def comments_of(text: str) -> Iterator[str]:
    """The comments of a spec, in order (for tests and the checks)."""
    toks = _tokens(text)
    for gap in _gaps(text, toks):
        for comment, _ in gap.comments:
            yield comment
