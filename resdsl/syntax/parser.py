"""Text → AST. The grammar is `grammars/resdsl.lark`; Lark parses it LALR(1) and calls the
`_ToAst` transformer, which walks the tree without recursion, so a hostile input cannot
overflow the Python stack.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from resdsl._resources import grammar_path
from resdsl.diagnostics import Label, Source, Span, SpecError, error, fail
from resdsl.syntax import ast

# Limits that keep hostile input from exhausting time or memory; docs/language.md lists them.
MAX_FILE_BYTES = 1 << 20
MAX_NESTING = 64
MAX_EXPR_DEPTH = 100

_PRETTY_TERMINALS = {
    "NAME": "a name",
    "NAME_LBRACE": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "COMP_OP": "a comparison",
    "ADD_OP": "`+` or `-`",
    "MUL_OP": "`*`, `/`, `//` or `%`",
    "POW_OP": "`**`",
    "$END": "end of file",
}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        # `expr` is a second entry point, for the values of `-D NAME=VALUE`.
        start=["start", "expr"],
        # Lark keeps the built LALR tables in the temp folder, keyed by the grammar's hash:
        # building them costs about 0.25 s, loading them a few milliseconds.
        cache=True,
    )


def decode(path: str, data: bytes) -> Source:
    """Bytes → Source, refusing binary garbage and oversized files with a diagnostic."""
    if len(data) > MAX_FILE_BYTES:
        raise fail(
            "E0003",
            f"`{path}` is {len(data):,} bytes; specs are limited to {MAX_FILE_BYTES:,}",
            None,
            help="split the spec into block libraries imported with `use`",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = Source(path, data[: exc.start].decode("utf-8"))
        raise fail(
            "E0002",
            f"`{path}` is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            good.span(len(good.text), len(good.text)),  # exc.start counts bytes
            "the text stops being UTF-8 here",
            help="a .res spec is a UTF-8 text file; check that this is the file you meant",
        ) from None
    if "\x00" in text:
        offset = text.index("\x00")
        src = Source(path, text)
        raise fail(
            "E0002",
            f"`{path}` contains a NUL byte, so it is binary, not a spec",
            src.span(offset, offset + 1),
            "NUL byte here",
            help="a .res spec is a UTF-8 text file; check that this is the file you meant",
        )
    return Source(path, text.lstrip("\ufeff"))


def parse(source: Source) -> ast.File:
    """Parse one source into its AST, or raise SpecError with a syntax diagnostic."""
    _check_nesting(source)
    try:
        tree = _ToAst(source).transform(_parser().parse(source.text, start="start"))
    except UnexpectedInput as exc:
        raise SpecError([_syntax_error(source, exc)]) from None
    except VisitError as wrapped:
        inner = wrapped.orig_exc
        if not isinstance(inner, _DepthError):
            raise inner from None
        raise fail(
            "E0004",
            f"expression nested more than {MAX_EXPR_DEPTH} operations deep",
            inner.span,
            "too deep",
            help="split the expression into several bindings (`a = ...; b = a + ...`)",
        ) from None
    uses, blocks, networks, functions = [], [], [], []
    for item in tree.children:
        if isinstance(item, ast.Use):
            uses.append(item)
        elif isinstance(item, ast.Function):
            functions.append(item)
        elif item.kind == "block":
            blocks.append(item)
        else:
            networks.append(item)
    return ast.File(source, tuple(uses), tuple(blocks), tuple(networks), tuple(functions))


def parse_expression(text: str, origin: str) -> ast.Expr:
    """Parse a lone expression, as given to `-D NAME=VALUE`; nothing may follow it."""
    source = Source(origin, text)
    _check_nesting(source)
    try:
        expr: ast.Expr = _ToAst(source).transform(_parser().parse(text, start="expr"))
    except UnexpectedInput as exc:
        raise SpecError([_syntax_error(source, exc)]) from None
    except VisitError as wrapped:
        inner = wrapped.orig_exc
        if not isinstance(inner, _DepthError):
            raise inner from None  # a SpecError of the value itself (a too-long number)
        raise fail("E0004", f"expression nested more than {MAX_EXPR_DEPTH} operations deep",
                   inner.span, "too deep") from None
    return expr


def _check_nesting(source: Source) -> None:
    """Brackets nested past MAX_NESTING are refused before parsing."""
    depth = 0
    for match in _BRACKETS_OUTSIDE_TEXT.finditer(source.text):
        ch = match.group()
        if ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                i = match.start()
                raise fail(
                    "E0004",
                    f"brackets nested more than {MAX_NESTING} levels deep",
                    source.span(i, i + 1),
                    "too deep",
                    help="flatten the spec: define a block for the inner part",
                )
        elif ch in ")]}":
            depth = max(0, depth - 1)


# Comments and strings are matched whole, so that brackets inside them are not counted.
_BRACKETS_OUTSIDE_TEXT = re.compile(r'#[^\n]*|"[^"\n]*"?|[()\[\]{}]')


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    pretty = _PRETTY_TERMINALS.get(token.type)
    if pretty and token.type in ("NAME", "INT", "FLOAT", "STRING"):
        return f"{pretty.split(' ', 1)[1]} `{token}`"
    return f"`{token}`"


_OPERATORS = {"ADD_OP", "MUL_OP", "POW_OP", "COMP_OP", "AND", "OR", "IF", "DOT", "LSQB"}
_STATEMENT_STARTS = {"REPEAT", "SKIP", "WEIGHT", "GATE", "CONCAT", "GROUP", "DUAL", "SCALE"}
_EXPRESSION_STARTS = {"INT", "FLOAT", "NAME", "LPAR", "LSQB", "TRUE", "FALSE", "IN", "STRING"}


def _expected(names: set[str]) -> str:
    """The expected terminals, said briefly: statement starters and operators are summarised."""
    names = set(names)
    pretty: list[str] = []
    if names >= _STATEMENT_STARTS:
        pretty.append("a statement")
        names -= _STATEMENT_STARTS | {
            "NAME", "INPUT", "OUTPUT", "BRANCH", "SEMICOLON", "INT", "LBRACE", "NAME_LBRACE"}
    elif names >= _EXPRESSION_STARTS:
        pretty.append("an expression")
        names -= _EXPRESSION_STARTS | {"NOT", "ADD_OP"}
    if names - _OPERATORS - {"$END"}:
        names -= _OPERATORS
    terms = {t.name: t for t in _parser().terminals}
    for name in sorted(names):
        if name in _PRETTY_TERMINALS:
            pretty.append(_PRETTY_TERMINALS[name])
        elif name in terms and terms[name].pattern.type == "str":
            pretty.append(f"`{terms[name].pattern.value}`")
        else:
            pretty.append(name.lower())
    pretty = sorted(set(pretty), key=lambda s: (not s.startswith("`"), s))
    if len(pretty) > 6:
        pretty = [*pretty[:6], "..."]
    if not pretty:
        return "nothing more"
    if len(pretty) == 1:
        return pretty[0]
    return ", ".join(pretty[:-1]) + " or " + pretty[-1]


def _syntax_error(source: Source, exc: UnexpectedInput) -> Any:
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        tok = exc.token
        start = tok.start_pos or 0
        span = source.span(start, start + len(str(tok)))
        accepts: Collection[str] = exc.accepts or exc.expected
        hint = _syntax_help(source, tok, accepts)
        brackets = _Brackets(source.text, start)
        if brackets.open and (tok.type in _DEFINITION_STARTS or brackets.definition):
            # A definition inside a body: a bracket above was never closed, and the mistake
            # is there, not here.
            opened = brackets.open[-1]
            return error(
                "E0101",
                f"unexpected {_describe(tok)}: a `{opened.char}` above is never closed",
                span,
                f"expected {_expected(set(accepts))}",
                secondary=brackets.labels(source),
                help=brackets.help(source, f"line {span.line}") if opened.char == "{" else hint,
            )
        return error(
            "E0101",
            f"unexpected {_describe(tok)}",
            span,
            f"expected {_expected(set(accepts))}",
            help=hint,
        )
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = source.text[pos]
        operator = next((op for op in _FOREIGN_OPERATORS if source.text.startswith(op, pos)),
                        None)
        if operator is not None:
            word = _FOREIGN_OPERATORS[operator]
            span = source.span(pos, pos + len(operator))
            return error(
                "E0102",
                f"unexpected `{operator}`: the boolean {word} is written `{word}`",
                span,
                f"write `{word}`",
                help=_with_word(source.line(span.line), span.column - 1, operator, word),
            )
        return error(
            "E0102",
            f"unexpected character `{ch}`",
            source.span(pos, pos + 1),
            "not part of the language here",
            help=_CHARACTER_HELP.get(ch, "names are letters, digits and `_`; comments start "
                                     "with `#`; docs/language.md has the syntax"),
        )
    end = len(source.text.rstrip())
    expected: Collection[str] = getattr(exc, "expected", None) or ()
    if isinstance(exc, UnexpectedToken):
        expected = exc.accepts or exc.expected
    brackets = _Brackets(source.text, len(source.text))
    closing = [_CLOSER[b.char] for b in reversed(brackets.open)]
    if brackets.misfit is not None or closing == ["}"]:
        close_hint: str | None = brackets.help(source, "the end of the file")
    elif len(closing) == 1:
        opening = "([{"[")]}".index(closing[0])]
        close_hint = f"a `{closing[0]}` is missing: every `{opening}` needs its `{closing[0]}`"
    elif closing:
        listed = " and ".join(f"`{c}`" for c in closing)
        close_hint = f"{listed} are missing, in that order: every bracket needs its closing one"
    else:
        close_hint = None
    return error(
        "E0103",
        "unexpected end of file",
        source.span(end, end),
        f"expected {_expected(set(expected))}" if expected else "the spec stops here",
        secondary=brackets.labels(source),
        help=close_hint,
    )


_DEFINITION_STARTS = {"BLOCK", "NETWORK", "DEF", "USE"}
_CLOSER = {"(": ")", "[": "]", "{": "}"}
# Characters the lexer refuses, as other languages use them.
_CHARACTER_HELP = {
    "'": "strings use double quotes: \"blocks/resnet.res\"",
    "$": "a name is used as it is, without `$`: `width`, not `$width`",
}
# What separates statements on a line: `;`, and a body's braces (a `{` glued to a name opens
# an interpolation, not a body).
_STATEMENT_START = re.compile(r";|(?:^|(?<=\s))\{")
_STATEMENT_END = re.compile(r"[;}]")
# Other languages' boolean operators (`!=` is a comparison, so a lone `!` only gets here),
# longest first.
_FOREIGN_OPERATORS = {"&&": "and", "||": "or", "&": "and", "|": "or", "!": "not"}


def _with_word(line: str, column: int, operator: str, word: str) -> str:
    """The help for `a && b`: the statement with the operator written as the language does.
    The statement is the line, cut at a `;` or at the braces of a body around it."""
    before = _STATEMENT_START.split(line[:column])[-1].strip()
    after = _STATEMENT_END.split(line[column + len(operator) :], maxsplit=1)[0].strip()
    fixed = f"{before} {word} {after}".strip()
    shown = f"`{fixed}`" if len(fixed) <= 80 else f"`... {word} ...`"
    return (f"write {shown}: conditions combine with `and`, `or` and `not`"
            + ("; `!=` is not-equal" if word == "not" else ""))


class _Bracket(NamedTuple):
    offset: int
    char: str
    indent: int | None  # of the bracket's line, for a `{` or `}`


class _Brackets:
    """The brackets of a text up to `end`: those still open there (outermost first), and a
    guess, from indentation, at which `{` lacks its `}`.

    A `}` that starts its line usually lines up with the line of the `{` it closes. When it
    lines up instead with an enclosing `{` that stays open, it was probably meant for that
    one, and the `{` it did close is the one missing its `}` (`misfit`: that pair)."""

    def __init__(self, text: str, end: int) -> None:
        self.open: list[_Bracket] = []
        uneven: list[tuple[_Bracket, _Bracket]] = []  # `{ }` pairs indented differently
        line = _Lines(text)
        for match in _BRACKETS_OUTSIDE_TEXT.finditer(text, 0, end):
            ch = match.group()
            if ch in "([{":
                at = match.start()
                self.open.append(_Bracket(at, ch, line.indent(at) if ch == "{" else None))
            elif ch in ")]}" and self.open and _CLOSER[self.open[-1].char] == ch:
                opener = self.open.pop()
                if ch == "}" and line.starts(at := match.start()):
                    closer = _Bracket(at, ch, line.indent(at))
                    if closer.indent != opener.indent:
                        uneven.append((opener, closer))
        self.misfit: tuple[_Bracket, _Bracket] | None = None
        # A definition that starts a line after the open `{`: the parser reads `network n`
        # there as two calls, so the body most likely ends before it.
        self.definition: tuple[int, str] | None = None
        if self.open and self.open[-1].char == "{":
            unclosed = self.open[-1]
            self.misfit = next(
                ((o, c) for o, c in uneven
                 if o.offset > unclosed.offset and c.indent == unclosed.indent),
                None,
            )
            found = _DEFINITION_LINE.search(text, unclosed.offset)
            if found and found.start() < end:
                self.definition = (found.start(), found.group("keyword"))

    def labels(self, source: Source) -> tuple[Label, ...]:
        """The innermost open bracket; with a misfit, also the `{` that likely lacks its `}`
        and the `}` that closed it instead."""
        if not self.open:
            return ()
        unclosed = self.open[-1]
        if self.misfit is None and self.definition is None:
            return (Label(_one(source, unclosed), f"this `{unclosed.char}` is never closed"),)
        if self.misfit is None:
            assert self.definition is not None
            at, keyword = self.definition
            return (
                Label(_one(source, unclosed), "this `{` is never closed"),
                Label(source.span(at, at + len(keyword)),
                      f"so this `{keyword}` is read as a statement of its body"),
            )
        opener, closer = self.misfit
        return (
            Label(_one(source, unclosed), "this `{` is never closed"),
            Label(_one(source, opener), "the missing `}` is more likely this one's"),
            Label(_one(source, closer),
                  f"this `}}` closes the `{{` of line {_line(source, opener)}, but it lines up "
                  f"with line {_line(source, unclosed)}"),
        )

    def help(self, source: Source, where: str) -> str:
        """Where the missing `}` goes; `where` is what comes after the open `{`'s body."""
        if self.misfit is not None:
            opener, closer = self.misfit
            return (f"add the `}}` that closes the `{{` of line {_line(source, opener)} where "
                    f"its body ends, before line {_line(source, closer)}")
        if self.definition is not None:
            where = f"line {source.position(self.definition[0])[0]}"
        return (f"add the `}}` that closes the `{{` of line {_line(source, self.open[-1])} "
                f"where its body ends, before {where}")


# `network`, `block`, `def` or `use` at the start of a line, followed by what follows each.
_DEFINITION_LINE = re.compile(
    r'^(?P<keyword>network|block|def|use)(?:[ \t]+[A-Za-z_]|(?<=use)[ \t]*")', re.M)


class _Lines:
    """The indentation of the line at an offset, for offsets asked in increasing order: each
    line is measured once, so a file of one long line costs linear time, not quadratic."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.start = 0  # of the current line
        self.scanned = 0  # offsets below this are on the current line or before
        self.first = self._first_nonblank(0)

    def _first_nonblank(self, start: int) -> int:
        match = _BLANKS.match(self.text, start)
        return match.end() if match else start

    def _move(self, offset: int) -> None:
        newline = self.text.rfind("\n", self.scanned, offset)
        if newline >= 0:
            self.start = newline + 1
            self.first = self._first_nonblank(self.start)
        self.scanned = offset

    def indent(self, offset: int) -> int:
        """The indentation of `offset`'s line (a tab counts 4)."""
        self._move(offset)
        return len(self.text[self.start : self.first].expandtabs(4))

    def starts(self, offset: int) -> bool:
        """Whether only blanks come before `offset` on its line."""
        self._move(offset)
        return offset == self.first


_BLANKS = re.compile(r"[ \t]*")


def _line(source: Source, bracket: _Bracket) -> int:
    return source.position(bracket.offset)[0]


def _one(source: Source, bracket: _Bracket) -> Span:
    return source.span(bracket.offset, bracket.offset + 1)


def _syntax_help(source: Source, tok: Token, expected: Any) -> str | None:
    exp = set(expected)
    start = tok.start_pos or 0
    before = source.text[:start].rstrip()
    # The token starts a new line: what the line above left open is the likelier mistake.
    on_new_line = "\n" in source.text[len(before) : start]
    for closer, name in ((")", "RPAR"), ("]", "RSQB")):
        if on_new_line and name in exp and tok.type not in ("INT", "FLOAT", "STRING"):
            more = " (or a `,`, if the list goes on)" if tok.type == "NAME" else ""
            return f"a `{closer}` is missing at the end of the line above{more}"
    if "COMMA" in exp and tok.type in ("INT", "FLOAT", "NAME", "STRING"):
        return "separate list items with `,`" if "RSQB" in exp else "separate arguments with `,`"
    if tok.type == "EQUAL" and "COLON" in exp:
        return "name a layer with `:` (`conv1: conv(64, 3)`); `=` binds a value"
    if tok.type == "LBRACE" and before.endswith("="):
        return "name a sequence with `:` (`stage: { ... }`); `=` binds a value"
    if str(tok) == "//":
        return "comments start with `#`, not `//`"
    if _GLUED_BRACE.search(before[-300:]):
        return (
            "a name glued to `{` starts an interpolated name (`layer{i}: ...`); for a call "
            "followed by an unnamed sequence, put a space or `;` between them: `relu { ... }`"
        )
    if tok.type == "IF" and "shortcut" in before.rsplit("\n", 1)[-1]:
        return (
            "the guard after a `shortcut` clause is the clause's; to guard the whole primitive "
            "as well, put it in a sequence or a block and guard that"
        )
    if tok.type == "COLON":
        return "a name comes before `:` at the start of a statement (`conv1: conv(64, 3)`)"
    if exp <= {"BLOCK", "NETWORK", "USE", "DEF", "$END"}:
        return (
            "only `use`, `block`, `def` and `network` stand at the top level; statements go "
            "inside a `{ }` (is there a `}` too many above?)"
        )
    return None


# `relu{ conv(8, 1) }`: a name glued to `{`, read as the start of an interpolated name.
_GLUED_BRACE = re.compile(r"(?:^|[\s;{}])[A-Za-z_]\w*\{[^{}:]*(?:\}\s*)?$")

_N = TypeVar("_N")


class _DepthError(Exception):
    def __init__(self, span: Span) -> None:
        self.span = span


def _tok_span(source: Source, tok: Token) -> Span:
    start = tok.start_pos or 0
    return source.span(start, start + len(str(tok)))


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive[Any, Any]):
    """Builds the AST bottom-up from Lark's parse tree."""

    def __init__(self, source: Source) -> None:
        super().__init__(visit_tokens=False)
        self.source = source
        self._depth: dict[int, int] = {}

    def _span(self, meta: Any) -> Span:
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    def _deep(self, node: _N, *children: Any) -> _N:
        depth = 1 + max((self._depth.get(id(c), 0) for c in children), default=0)
        if depth > MAX_EXPR_DEPTH:
            raise _DepthError(node.span)  # type: ignore[attr-defined]
        self._depth[id(node)] = depth
        return node

    # ------------------------------------------------------------ definitions
    def start(self, meta: Any, items: list[Any]) -> Any:
        return _Items(items)

    def use(self, meta: Any, c: list[Any]) -> ast.Use:
        return ast.Use(str(c[0])[1:-1], self._span(meta))

    def _definition(self, kind: str, meta: Any, c: list[Any]) -> ast.Definition:
        name, params, body = c
        return ast.Definition(
            kind,
            str(name),
            params or (),
            body,
            self._span(meta),
            _tok_span(self.source, name),
        )

    def block(self, meta: Any, c: list[Any]) -> ast.Definition:
        return self._definition("block", meta, c)

    def network(self, meta: Any, c: list[Any]) -> ast.Definition:
        return self._definition("network", meta, c)

    def function(self, meta: Any, c: list[Any]) -> ast.Function:
        name, params, *bindings, result = c
        return ast.Function(
            str(name),
            params or (),
            tuple(b for b in bindings if isinstance(b, ast.Binding)),
            result,
            self._span(meta),
            _tok_span(self.source, name),
        )

    def params(self, meta: Any, c: list[Any]) -> tuple[ast.Param, ...]:
        return tuple(p for p in c if p is not None)

    def param(self, meta: Any, c: list[Any]) -> ast.Param:
        return ast.Param(str(c[0]), c[1], self._span(meta))

    def body(self, meta: Any, c: list[Any]) -> tuple[Any, ...]:
        return tuple(s for s in c if s is not None)

    # ------------------------------------------------------------ statements
    def binding(self, meta: Any, c: list[Any]) -> ast.Binding:
        return ast.Binding(str(c[0]), c[1], self._span(meta), _tok_span(self.source, c[0]))

    def input_stmt(self, meta: Any, c: list[Any]) -> ast.InputStmt:
        return ast.InputStmt(c[0], self._span(meta))

    def output_stmt(self, meta: Any, c: list[Any]) -> ast.OutputStmt:
        name, value, guard = c
        return ast.OutputStmt(name[0], name[1], value, guard, self._span(meta))

    def output_name(self, meta: Any, c: list[Any]) -> tuple[str, Span]:
        """`out`, `0` or `"pool"`: an output's name is text (torchvision's FPN has `"0"`)."""
        tok: Token = c[0]
        text = str(tok)[1:-1] if tok.type == "STRING" else str(tok)
        return text, _tok_span(self.source, tok)

    def call_stmt(self, meta: Any, c: list[Any]) -> ast.CallStmt:
        return ast.CallStmt(c[0], c[1], c[2], self._span(meta))

    def element_stmt(self, meta: Any, c: list[Any]) -> ast.ElementStmt:
        label, name, *elements, guard = c
        value: ast.Expr = ast.Var(str(name), _tok_span(self.source, name))
        for index, span in elements:
            value = self._deep(ast.Index(value, index, value.span.to(span)), value, index)
        assert isinstance(value, ast.Index)
        return ast.ElementStmt(label, value, guard, self._span(meta))

    def element(self, meta: Any, c: list[Any]) -> tuple[ast.Expr, Span]:
        """`[i]` of `t[i]`: the index, and the span that ends at the `]`."""
        return c[0], self._span(meta)

    def seq_stmt(self, meta: Any, c: list[Any]) -> ast.SeqStmt:
        return ast.SeqStmt(c[0], c[1], c[2], self._span(meta))

    def repeat_stmt(self, meta: Any, c: list[Any]) -> ast.RepeatStmt:
        label, count, var, body, guard = c
        var_span = _tok_span(self.source, var) if var is not None else None
        return ast.RepeatStmt(
            label,
            count,
            str(var) if var is not None else None,
            body,
            self._span(meta),
            var_span,
            guard,
        )

    def primitive_stmt(self, meta: Any, c: list[Any]) -> ast.PrimitiveStmt:
        label, kind, args, body, *rest = c
        # Either a guard, or the (possibly absent) shortcut and transform clauses.
        guard = rest[0] if len(rest) == 1 else None
        shortcut, transform = (rest[0], rest[1]) if len(rest) == 2 else (None, None)
        return ast.PrimitiveStmt(
            label,
            str(kind),
            args or (),
            body,
            shortcut,
            transform,
            self._span(meta),
            _tok_span(self.source, kind),
            guard,
        )

    def primitive(self, meta: Any, c: list[Any]) -> Token:
        tok: Token = c[0]
        return tok

    def keyword(self, meta: Any, c: list[Any]) -> Token:
        tok: Token = c[0]
        return tok

    def _clause(self, keyword: str, meta: Any, c: list[Any]) -> ast.Clause:
        label, target = c[0], c[1]
        guard = c[2] if len(c) > 2 else None
        call = target if isinstance(target, ast.Call) else None
        body = target if isinstance(target, tuple) else None
        return ast.Clause(keyword, label, call, body, guard, self._span(meta))

    def shortcut_clause(self, meta: Any, c: list[Any]) -> ast.Clause:
        return self._clause("shortcut", meta, c)

    def transform_clause(self, meta: Any, c: list[Any]) -> ast.Clause:
        return self._clause("transform", meta, c)

    def dotted(self, meta: Any, c: list[Any]) -> list[ast.Name]:
        """`a.b.c` (of a label or a path): its parts, in order."""
        if len(c) == 1:
            return [c[0]]
        parts: list[ast.Name] = c[0]
        return [*parts, c[1]]

    def path_stmt(self, meta: Any, c: list[Any]) -> ast.PathStmt:
        label, levels, name, *elements, guard = c
        parts: list[ast.Name] = levels
        root = parts[0]
        for part in parts:
            if len(part.parts) != 1 or not isinstance(part.parts[0], str):
                raise fail(
                    "E0230",
                    "a path to a tensor names its levels as they are written",
                    part.span,
                    "a computed name",
                    help="a level whose name is computed (`layer{i}`) shares no tensors: name "
                    "the level plainly, or name the tensor outside it",
                )
        value: ast.Expr = ast.Var(str(root.parts[0]), root.span)
        steps = [(str(p.parts[0]), p.span) for p in parts[1:]]
        for text, span in [*steps, (str(name), _tok_span(self.source, name))]:
            value = self._deep(ast.Attr(value, text, value.span.to(span)), value)
        for index, span in elements:
            value = self._deep(ast.Index(value, index, value.span.to(span)), value, index)
        return ast.PathStmt(label, value, guard, self._span(meta))

    def label(self, meta: Any, c: list[Any]) -> ast.Name:
        if isinstance(c[0], Token):  # a keyword used as a name: `gate: sigmoid`, `repeat: ...`
            return ast.Name((str(c[0]),), _tok_span(self.source, c[0]))
        c = c[0]
        if len(c) == 1:
            name: ast.Name = c[0]
            return name
        # A dotted label `convs.{i}`: one name whose text holds the `.` between levels.
        pieces: list[Any] = []
        for i, part in enumerate(c):
            if i:
                pieces.append(".")
            pieces.extend(part.parts)
        return ast.Name(_joined(pieces), c[0].span.to(c[-1].span))

    def name(self, meta: Any, c: list[Any]) -> ast.Name:
        pieces = [part for part in c if part is not None]
        if pieces and isinstance(pieces[0], Token) and pieces[0].type == "NAME_LBRACE":
            pieces[0] = str(pieces[0])[:-1]  # `layer{`: the brace opens the interpolation
        return ast.Name(_joined(pieces), self._span(meta))

    def segment(self, meta: Any, c: list[Any]) -> ast.Name:
        if len(c) == 1 and isinstance(c[0], ast.Name):
            name: ast.Name = c[0]
            return name
        return self.name(meta, c)

    def interp(self, meta: Any, c: list[Any]) -> Any:
        return c[0]

    def call(self, meta: Any, c: list[Any]) -> ast.Call:
        return ast.Call(str(c[0]), c[1] or (), self._span(meta), _tok_span(self.source, c[0]))

    def args(self, meta: Any, c: list[Any]) -> tuple[ast.Arg, ...]:
        return tuple(a for a in c if a is not None)

    def arg(self, meta: Any, c: list[Any]) -> ast.Arg:
        return ast.Arg(None, c[0], self._span(meta))

    def kwarg(self, meta: Any, c: list[Any]) -> ast.Arg:
        return ast.Arg(str(c[0]), c[1], self._span(meta))

    def guard(self, meta: Any, c: list[Any]) -> Any:
        return c[0]

    # ------------------------------------------------------------ expressions
    def cond(self, meta: Any, c: list[Any]) -> ast.Cond:
        return self._deep(ast.Cond(c[0], c[1], c[2], self._span(meta)), *c)

    def _binop(self, op: str, meta: Any, left: Any, right: Any) -> ast.Binary:
        return self._deep(ast.Binary(op, left, right, self._span(meta)), left, right)

    def or_(self, meta: Any, c: list[Any]) -> ast.Binary:
        return self._binop("or", meta, c[0], c[1])

    def and_(self, meta: Any, c: list[Any]) -> ast.Binary:
        return self._binop("and", meta, c[0], c[1])

    def not_(self, meta: Any, c: list[Any]) -> ast.Unary:
        return self._deep(ast.Unary("not", c[0], self._span(meta)), c[0])

    def compare(self, meta: Any, c: list[Any]) -> ast.Binary:
        return self._binop(str(c[1]), meta, c[0], c[2])

    def binary(self, meta: Any, c: list[Any]) -> ast.Binary:
        return self._binop(str(c[1]), meta, c[0], c[2])

    def unary(self, meta: Any, c: list[Any]) -> ast.Unary:
        return self._deep(ast.Unary(str(c[0]), c[1], self._span(meta)), c[1])

    def index(self, meta: Any, c: list[Any]) -> ast.Index:
        return self._deep(ast.Index(c[0], c[1], self._span(meta)), c[0], c[1])

    def attr(self, meta: Any, c: list[Any]) -> ast.Attr:
        return self._deep(ast.Attr(c[0], str(c[1]), self._span(meta)), c[0])

    def int_(self, meta: Any, c: list[Any]) -> ast.Literal:
        digits = str(c[0]).replace("_", "")
        # A literal is above every limit (2**63 − 1) past 19 digits, which evaluating it
        # reports; past 300, converting it would cost time quadratic in its length (Python
        # refuses past 4,300 digits), and it could not be shown as a float, so stop here.
        if len(digits.lstrip("0")) > 300:
            raise fail("E0404", f"number too large: {len(digits):,} digits", self._span(meta),
                       "limit is 9,223,372,036,854,775,807")
        return ast.Literal(int(digits), self._span(meta))

    def float_(self, meta: Any, c: list[Any]) -> ast.Literal:
        return ast.Literal(float(str(c[0]).replace("_", "")), self._span(meta))

    def string(self, meta: Any, c: list[Any]) -> ast.Literal:
        return ast.Literal(str(c[0])[1:-1], self._span(meta))

    def true(self, meta: Any, c: list[Any]) -> ast.Literal:
        return ast.Literal(True, self._span(meta))

    def false(self, meta: Any, c: list[Any]) -> ast.Literal:
        return ast.Literal(False, self._span(meta))

    def in_(self, meta: Any, c: list[Any]) -> ast.In:
        return ast.In(self._span(meta))

    def var(self, meta: Any, c: list[Any]) -> ast.Var:
        return ast.Var(str(c[0]), self._span(meta))

    def func(self, meta: Any, c: list[Any]) -> ast.FuncCall:
        args = c[1] or ()
        node = ast.FuncCall(str(c[0]), args, self._span(meta), _tok_span(self.source, c[0]))
        return self._deep(node, *(a.value for a in args))

    def list_(self, meta: Any, c: list[Any]) -> ast.ListExpr:
        items = tuple(x for x in c if x is not None)
        return self._deep(ast.ListExpr(items, self._span(meta)), *items)


def _joined(pieces: list[Any]) -> tuple[str | ast.Expr, ...]:
    """Name parts with adjacent text merged: ("conv", Expr, "_", "x") → ("conv", Expr, "_x")."""
    parts: list[str | ast.Expr] = []
    for piece in pieces:
        if piece is None:
            continue
        if isinstance(piece, (Token, str)):
            if parts and isinstance(parts[-1], str):
                parts[-1] += str(piece)
            else:
                parts.append(str(piece))
        else:
            parts.append(piece)
    return tuple(parts)


class _Items:
    def __init__(self, children: list[Any]) -> None:
        self.children = children
