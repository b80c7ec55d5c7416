"""Evaluating expressions: arithmetic on ints, floats, bools, strings and lists, plus `in`.

Values are plain Python values; lists are tuples so that they can sit in frozen node
arguments. Integers are bounded (MAX_INT) so that a hostile spec cannot make the compiler
spend its time on enormous numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from resdsl.diagnostics import SpecError, fail
from resdsl.ir.ops import Shape, Value, a_type, fmt_value, type_name
from resdsl.syntax import ast

MAX_INT = 2**63 - 1
FUNCTIONS = ("abs", "int", "len", "max", "min")
IN_ATTRIBUTES = ("c", "h", "w")

Env = Mapping[str, Value]


def _number(v: Value) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(v: Value, node: ast.Expr) -> Value:
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
        raise fail("E0404", f"number too large: {v:.3e}", node.span, f"limit is {MAX_INT:,}")
    if isinstance(v, float) and not math.isfinite(v):
        raise fail("E0404", "number too large (not finite)", node.span, "overflows")
    return v


def _type_error(node: ast.Expr, op: str, *values: Value) -> SpecError:
    kinds = " and ".join(a_type(v) for v in values)
    return fail("E0401", f"`{op}` cannot take {kinds}", node.span, f"{kinds} here")


def _arith(node: ast.Binary, a: Value, b: Value) -> Value:
    op = node.op
    if op == "+" and isinstance(a, (str, tuple)) and type(a) is type(b):
        return a + b  # type: ignore[operator]
    if not (_number(a) and _number(b)):
        raise _type_error(node, op, a, b)
    x: float = a  # type: ignore[assignment]
    y: float = b  # type: ignore[assignment]
    if op in ("/", "//", "%") and y == 0:
        raise fail("E0405", "division by zero", node.span, "the divisor is 0")
    if op == "+":
        return _check(x + y, node)
    if op == "-":
        return _check(x - y, node)
    if op == "*":
        return _check(x * y, node)
    if op == "/":
        return _check(x / y, node)
    if op == "//":
        return _check(x // y, node)
    if op == "%":
        return x % y
    # `**`: refuse before computing a result that would be enormous.
    if abs(x) > 1 and y > 0 and y * math.log2(abs(x)) > 63:
        raise fail("E0404", f"{x} ** {y} is too large", node.span, f"limit is {MAX_INT:,}")
    if x == 0 and y < 0:
        raise fail("E0405", "division by zero", node.span, f"0 ** {y:g} is 1 / 0 ** {-y:g}")
    if x < 0 and not float(y).is_integer():
        raise fail("E0408", f"({x:g}) ** {y:g} is not a real number", node.span,
                   "a negative number to a fractional power")
    try:
        return _check(x**y, node)
    except OverflowError:
        raise fail("E0404", "number out of range", node.span, "here") from None


def _compare(node: ast.Binary, a: Value, b: Value) -> bool:
    op = node.op
    if op == "==":
        return (a == b and type_name(a) == type_name(b)) or (_number(a) and _number(b) and a == b)
    if op == "!=":
        return not _compare(ast.Binary("==", node.left, node.right, node.span), a, b)
    if not (_number(a) and _number(b)):
        raise _type_error(node, op, a, b)
    x: float = a  # type: ignore[assignment]
    y: float = b  # type: ignore[assignment]
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def _bool(v: Value, node: ast.Expr, what: str) -> bool:
    if not isinstance(v, bool):
        raise fail(
            "E0401",
            f"{what} must be `true` or `false`, not {a_type(v)}",
            node.span,
            f"this is {fmt_value(v)}",
            help="compare explicitly, e.g. `x != 0`",
        )
    return v


class Evaluator:
    """Evaluates expressions against variables and the current input shape."""

    def __init__(self) -> None:
        self._dispatch: dict[type, Callable[[ast.Expr, Env, Shape | None], Value]] = {
            ast.Literal: self._literal,
            ast.Var: self._var,
            ast.In: self._in,
            ast.Attr: self._attr,
            ast.Index: self._index,
            ast.ListExpr: self._list,
            ast.Unary: self._unary,
            ast.Binary: self._binary,
            ast.Cond: self._cond,
            ast.FuncCall: self._func,
        }

    def __call__(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        return self._dispatch[type(node)](node, env, shape)

    def condition(self, node: ast.Expr, env: Env, shape: Shape | None, what: str) -> bool:
        return _bool(self(node, env, shape), node, what)

    def _literal(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.Literal)
        return _check(node.value, node)

    def _var(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.Var)
        return env[node.name]  # the static checks guarantee every variable is defined

    def _in(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        raise fail(
            "E0401",
            "`in` is the incoming tensor, not a value",
            node.span,
            "use `in.c`, `in.h` or `in.w`",
        )

    def _attr(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.Attr) and isinstance(node.obj, ast.In)
        if shape is None:
            raise fail(
                "E0212",
                "`in` has no value before the network's `input`",
                node.span,
                "nothing flows in yet",
                help="move this after the `input` statement",
            )
        axis = IN_ATTRIBUTES.index(node.name)
        if axis >= len(shape):
            raise fail(
                "E0308",
                f"`in.{node.name}` does not exist: the input here is flat ({shape[0]})",
                node.span,
                "after `flatten` only `in.c` exists",
            )
        return shape[axis]

    def _index(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.Index)
        seq = self(node.obj, env, shape)
        i = self(node.index, env, shape)
        if not isinstance(seq, (tuple, str)):
            raise fail("E0401", f"cannot index {a_type(seq)}", node.obj.span, "not a list")
        if not isinstance(i, int) or isinstance(i, bool):
            raise fail(
                "E0401", f"an index must be an integer, not {a_type(i)}", node.index.span
            )
        if not -len(seq) <= i < len(seq):
            raise fail(
                "E0407",
                f"index {i} is out of range for a list of {len(seq)}",
                node.index.span,
                f"valid indices are 0 to {len(seq) - 1}",
            )
        return seq[i]

    def _list(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.ListExpr)
        return tuple(self(item, env, shape) for item in node.items)

    def _unary(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.Unary)
        v = self(node.operand, env, shape)
        if node.op == "not":
            return not _bool(v, node.operand, "the operand of `not`")
        if not _number(v):
            raise _type_error(node, node.op, v)
        return -v if node.op == "-" else v  # type: ignore[operator]

    def _binary(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.Binary)
        if node.op in ("and", "or"):
            left = _bool(self(node.left, env, shape), node.left, f"an operand of `{node.op}`")
            if left == (node.op == "or"):
                return left
            return _bool(self(node.right, env, shape), node.right, f"an operand of `{node.op}`")
        a = self(node.left, env, shape)
        b = self(node.right, env, shape)
        if node.op in ("==", "!=", "<", "<=", ">", ">="):
            return _compare(node, a, b)
        return _arith(node, a, b)

    def _cond(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.Cond)
        if self.condition(node.test, env, shape, "a condition"):
            return self(node.then, env, shape)
        return self(node.orelse, env, shape)

    def _func(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.FuncCall)
        if any(a.name is not None for a in node.args):
            raise fail("E0402", f"`{node.name}` takes no keyword arguments", node.span)
        args = [self(a.value, env, shape) for a in node.args]
        name = node.name
        if name in ("min", "max"):
            items = args[0] if len(args) == 1 and isinstance(args[0], tuple) else tuple(args)
            if not items:
                raise fail("E0402", f"`{name}` needs at least one value", node.span)
            if not all(_number(v) for v in items):
                raise fail("E0401", f"`{name}` takes numbers", node.span, "not all numbers")
            return min(items) if name == "min" else max(items)  # type: ignore[type-var]
        if len(args) != 1:
            raise fail("E0402", f"`{name}` takes one argument, not {len(args)}", node.span)
        (v,) = args
        if name == "len":
            if not isinstance(v, (tuple, str)):
                raise fail("E0401", f"`len` takes a list, not {a_type(v)}", node.span)
            return len(v)
        if not _number(v):
            raise fail("E0401", f"`{name}` takes a number, not {a_type(v)}", node.span)
        return _check(abs(v) if name == "abs" else int(v), node)  # type: ignore[arg-type]
