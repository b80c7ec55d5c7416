"""A grammar-aware generator of specs: random derivations of `grammars/resdsl.lark`.

The grammar is read from the file each time, so the generator follows it as it changes:
Lark compiles it (EBNF expanded into plain rules) and each rule's expansions are derived at
random, with a depth budget past which the shortest derivation is taken. Terminals given as
strings are written as they are; regex terminals are drawn from pools of likely values
(names of ops, blocks and variables, small and hostile numbers, strings), keeping those the
regex accepts, so a new terminal needs no change here unless no pool value fits it.

Half of the specs are whole files derived from `start`; the other half put generated blocks,
functions and statements into a network with an input, so that elaboration runs too.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from lark import Lark
from lark.grammar import NonTerminal, Rule, Symbol

from resdsl._resources import grammar_path
from resdsl.ir.ops import USER_OPS

BLOCK_NAMES = ("b0", "b1", "b2")
FUNCTION_NAMES = ("f0", "f1")
VARIABLES = ("x", "y", "i", "n", "c", "t", "k")
BUILTINS = ("abs", "int", "len", "max", "min", "round", "add", "cat", "mul")
NUMBERS = (
    "0", "1", "1", "2", "2", "3", "4", "8", "16", "32", "64", "7",
    "100000", "99999", "2147483648", "9223372036854775808", "1_000", "10",
)
FLOATS = ("0.5", "2.5", "1e9", "1e308", "1e-3", "0.0", "1.5e3")
STRINGS = ('"a"', '"concat"', '"sum"', '"blocks/resnet.res"', '"x"', '""', '"conv_1"', '"a.b"')
OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "//", "*", "/", "%", "**")
NAME_BRACES = ("layer{", "b{", "conv{", "x{")


def _pool() -> tuple[str, ...]:
    names = (*USER_OPS, *BLOCK_NAMES, *FUNCTION_NAMES, *VARIABLES, *BUILTINS)
    return (*names, *NUMBERS, *FLOATS, *STRINGS, *OPERATORS, *NAME_BRACES, "# note", "a" * 40)


class Generator:
    """Random specs from the grammar. `max_tokens` bounds a spec's length."""

    def __init__(self, rng: random.Random, max_tokens: int = 400, max_depth: int = 14) -> None:
        self.rng = rng
        self.max_tokens = max_tokens
        self.max_depth = max_depth
        self.rules, self.patterns, self.strings = _compiled(grammar_path().read_text("utf-8"))
        height = _heights(self.rules)
        # Each nonterminal's expansions of least height: taken past the depth budget, and
        # more often the deeper a derivation is, so that expressions stay short.
        self.shortest: dict[str, list[list[Symbol]]] = {}
        for name, options in self.rules.items():
            costs = [max((height.get(s.name, 0) for s in e if not s.is_term), default=0)
                     for e in options]
            self.shortest[name] = [e for e, c in zip(options, costs, strict=True)
                                   if c == min(costs)]
        self.pool = _pool()
        self._fits: dict[str, tuple[str, ...]] = {}

    # ------------------------------------------------------------------ derivation

    def derive(self, symbol: str) -> list[str]:
        """The tokens of one random derivation of `symbol`."""
        out: list[str] = []
        # An explicit stack: a derivation can nest deeper than Python's recursion allows.
        stack: list[tuple[str, int, bool]] = [(symbol, 0, False)]
        while stack:
            name, depth, is_term = stack.pop()
            if is_term:
                out.append(self.terminal(name, out[-1] if out else ""))
                continue
            expansion = self._choose(name, depth, len(out))
            for sym in reversed(expansion):
                stack.append((sym.name, depth + 1, sym.is_term))
        return out

    def _choose(self, name: str, depth: int, produced: int) -> list[Symbol]:
        if (
            depth >= self.max_depth
            or produced >= self.max_tokens
            or self.rng.random() < depth / self.max_depth
        ):
            return self.rng.choice(self.shortest[name])
        return self.rng.choice(self.rules[name])

    # ------------------------------------------------------------------ terminals

    def terminal(self, name: str, previous: str) -> str:
        if name in self.strings:
            return self.strings[name]
        if name == "NAME":
            if previous == "block":
                return self.rng.choice(BLOCK_NAMES)
            if previous == "def":
                return self.rng.choice(FUNCTION_NAMES)
            if previous == "network":
                return "net"
        fits = self._fits.get(name)
        if fits is None:
            regex = re.compile(self.patterns[name])
            fits = self._fits[name] = tuple(v for v in self.pool if regex.fullmatch(v))
        if not fits:
            raise ValueError(f"no pool value fits terminal {name} ({self.patterns[name]})")
        return self.rng.choice(fits)

    # ------------------------------------------------------------------ specs

    def spec(self) -> str:
        """One generated spec."""
        if self.rng.random() < 0.5:
            return self._text(self.derive("start"))
        parts: list[str] = []
        for _ in range(self.rng.randint(0, 3)):
            parts.append(self._text(self.derive("block")))
        if "function" in self.rules and self.rng.random() < 0.3:
            parts.append(self._text(self.derive("function")))
        stmts = [self._text(self.derive("_stmt")) for _ in range(self.rng.randint(1, 8))]
        params = self.rng.choice(["", "(n = 2, c = 16)", "(n = 100000)", "(x = [1, 2])"])
        shape = self.rng.choice(["[3, 16, 16]", "[3, 8, 8]", "[16]", "[3, 224, 224]"])
        body = "\n    ".join(stmts)
        parts.append(f"network net{params} {{\n    input {shape}\n    {body}\n}}")
        return "\n".join(parts) + "\n"

    def _text(self, tokens: list[str]) -> str:
        out: list[str] = []
        for tok in tokens:
            out.append(tok)
            out.append("\n" if tok in ("}", ";") and self.rng.random() < 0.7 else " ")
        return "".join(out).strip()


@lru_cache(maxsize=4)
def _compiled(
    grammar: str,
) -> tuple[dict[str, list[list[Symbol]]], dict[str, str], dict[str, str]]:
    lark = Lark(grammar, parser="lalr", start=["start", "expr"])
    rules: dict[str, list[list[Symbol]]] = {}
    rule: Rule
    for rule in lark.rules:
        origin: NonTerminal = rule.origin
        rules.setdefault(origin.name, []).append(list(rule.expansion))
    patterns: dict[str, str] = {}
    strings: dict[str, str] = {}
    for term in lark.terminals:
        if term.pattern.type == "str":
            strings[term.name] = term.pattern.value
        else:
            patterns[term.name] = term.pattern.to_regexp()
    return rules, patterns, strings


def _heights(rules: dict[str, list[list[Symbol]]]) -> dict[str, int]:
    """The least derivation height of each nonterminal (a fixpoint), for stopping."""
    height: dict[str, int] = {}
    changed = True
    while changed:
        changed = False
        for name, expansions in rules.items():
            for exp in expansions:
                subs = [s for s in exp if not s.is_term]
                if all(s.name in height for s in subs):
                    h = 1 + max((height[s.name] for s in subs), default=0)
                    if h < height.get(name, 1 << 30):
                        height[name] = h
                        changed = True
    return height
