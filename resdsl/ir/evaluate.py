"""Evaluating expressions: arithmetic on ints, floats, bools, strings and lists, plus `in`.

Values are plain Python values; lists are tuples so that they can sit in frozen node
arguments. Integers are bounded (MAX_INT) so that a hostile spec cannot make the compiler
spend its time on enormous numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace

from resdsl.diagnostics import Span, SpecError, fail
from resdsl.ir.ops import Shape, Tensor, Value, a_type, fmt_shape, fmt_value, type_name
from resdsl.syntax import ast

MAX_INT = 2**63 - 1
# A string holds at most MAX_LENGTH characters; a list at most MAX_LENGTH values, counting
# itself, the values of the lists inside it (each time they appear: `[a, a]` counts `a`
# twice) and the characters of its strings. Checked before a value is built, so that
# doubling a string or a list forty times is refused at the first step past the limit, and
# so that comparing or printing any value costs at most MAX_LENGTH steps.
MAX_LENGTH = 10_000
# Operations one evaluator may run: every expression evaluated counts one, and so does each
# value walked to measure, compare or scan a list. User functions that call each other
# several times multiply their work; this bounds it (docs/language.md §Limits).
MAX_OPERATIONS = 400_000
FUNCTIONS = ("abs", "ceil", "exp", "floor", "int", "len", "log", "log2", "max", "min", "round",
             "sqrt")
# User functions calling user functions; each level is one Python call.
MAX_FUNCTION_DEPTH = 100
IN_ATTRIBUTES = ("c", "h", "w")

Env = Mapping[str, Value]


# The functions of one number from `math`; `ceil` and `floor` give integers (ECA's kernel
# size is `int(abs((log2(c) + 1) / 2))`, made odd).
_MATH: dict[str, Callable[[float], float | int]] = {
    "ceil": math.ceil, "exp": math.exp, "floor": math.floor, "log": math.log,
    "log2": math.log2, "sqrt": math.sqrt,
}


def _math(name: str, v: int | float, node: ast.Expr) -> Value:
    """`log`, `log2`, `sqrt` of a number outside their domain are E0408; `exp` of a large
    one is E0404, as any number that overflows."""
    if name in ("log", "log2") and v <= 0:
        raise fail("E0408", f"`{name}` takes a positive number, not {fmt_value(v)}", node.span,
                   "not positive")
    if name == "sqrt" and v < 0:
        raise fail("E0408", f"`sqrt` takes a number of at least 0, not {fmt_value(v)}",
                   node.span, "negative")
    try:
        result = _MATH[name](v)
    except OverflowError:
        raise fail("E0404", f"`{name}({fmt_value(v)})` is too large (not finite)", node.span,
                   "overflows") from None
    return _check(result, node)


def _number(v: Value) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(v: Value, node: ast.Expr) -> Value:
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
        raise fail("E0404", f"number too large: {v:.3e}", node.span, f"limit is {MAX_INT:,}")
    if isinstance(v, float) and not math.isfinite(v):
        raise fail("E0404", "number too large (not finite)", node.span, "overflows")
    return v


def _size(value: Value, limit: int = MAX_LENGTH) -> int:
    """What `value` counts against MAX_LENGTH (see there); counting stops past `limit`, so
    measuring costs at most about `limit` steps whatever the value."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, tuple):
        return 1
    total = 0
    stack: list[Value] = [value]
    while stack and total <= limit:
        v = stack.pop()
        if isinstance(v, tuple):
            total += 1
            stack.extend(v)
        else:
            total += max(1, len(v)) if isinstance(v, str) else 1
    return total


def _too_long(node: ast.Expr, chars: int | None) -> SpecError:
    """A string of `chars` characters, or a list (None), that would pass MAX_LENGTH."""
    held = (
        f"list would hold more than {MAX_LENGTH:,} values"
        if chars is None
        else f"string would hold {chars:,} characters"
    )
    return fail(
        "E0404",
        f"this {held}; the limit is {MAX_LENGTH:,}",
        node.span,
        "too long",
        help="values are for sizes and names; a list counts the values of the lists inside it",
    )


def not_a_tensor(name: str, value: Value, span: Span, help: str) -> SpecError:
    """E0401 for a name used as a tensor that holds a value."""
    return fail("E0401", f"`{name}` is {a_type(value)}, not a tensor", span,
                f"this is {fmt_value(value)}", help=help)


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


def level_path(node: ast.Attr, env: Env) -> str | None:
    """`body.layer2.c` as text when its first name is no variable: a path through levels
    (the static checks made sure it is one), else None."""
    names: list[str] = []
    obj: ast.Expr = node
    while isinstance(obj, ast.Attr):
        names.append(obj.name)
        obj = obj.obj
    if not isinstance(obj, ast.Var) or obj.name in env:
        return None
    return ".".join([obj.name, *reversed(names)])


class Evaluator:
    """Evaluates expressions against variables and the current input shape."""

    def __init__(self, functions: Mapping[str, ast.Function] | None = None) -> None:
        self.functions = functions or {}
        self._calls = 0  # user functions being evaluated, one inside the other
        self.operations = 0  # bounded by MAX_OPERATIONS
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
        self.operations += 1
        if self.operations > MAX_OPERATIONS:
            raise self._too_much_work(node)
        return self._dispatch[type(node)](node, env, shape)

    def _spend(self, node: ast.Expr, operations: int) -> None:
        """Count work beyond one operation per expression: walking or scanning a list."""
        self.operations += operations
        if self.operations > MAX_OPERATIONS:
            raise self._too_much_work(node)

    @staticmethod
    def _too_much_work(node: ast.Expr) -> SpecError:
        return fail(
            "E0503",
            f"the spec's expressions run more than {MAX_OPERATIONS:,} operations",
            node.span,
            "the limit is reached here",
            help="a function that calls another twice doubles its work at each level; "
            "check the functions and the repeat counts",
        )

    def _sized(self, node: ast.Expr, value: Value, limit: int = MAX_LENGTH) -> int:
        """`_size(value)`, its walk counted as work."""
        size = _size(value, limit)
        if isinstance(value, tuple):
            self._spend(node, size)
        return size

    def condition(self, node: ast.Expr, env: Env, shape: Shape | None, what: str) -> bool:
        return _bool(self(node, env, shape), node, what)

    def _literal(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.Literal)
        if isinstance(node.value, str) and len(node.value) > MAX_LENGTH:
            raise _too_long(node, len(node.value))
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
        assert isinstance(node, ast.Attr)
        path = level_path(node, env)
        if path is not None:
            # `body.c3`: a tensor named inside the level `body`, kept under `.body.c3`.
            if "." + path in env:
                return env["." + path]
            owner = level_path(node.obj, env) if isinstance(node.obj, ast.Attr) else None
            if owner is not None and "." + owner in env:
                value = env["." + owner]
                assert isinstance(value, Tensor)
                shape = value.shape  # `body.c3.c`: its size
            else:
                level = path.split(".", 1)[0]
                raise fail(
                    "E0231",
                    f"the level `{level}` has no tensor `{path.split('.', 1)[1]}` here",
                    node.span,
                    "its guard was false, so the level did not run",
                    help="read the tensor under the same condition as the level "
                    "(`... if COND`), or name it outside the level",
                )
        elif isinstance(node.obj, ast.Var):
            # `t.c`: the size of a named tensor.
            value = env[node.obj.name]
            if not isinstance(value, Tensor):
                raise not_a_tensor(node.obj.name, value, node.obj.span,
                                   f"`.{node.name}` reads a size of `in` or of a tensor named "
                                   f"with `{node.obj.name} = in`")
            shape = value.shape
        elif shape is None:
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
        if axis > 0 and len(shape) != 3:
            # A height and width are a feature map's; the sizes of another rank (heads ×
            # positions × dim after `reshape`) have no names.
            raise fail(
                "E0308",
                f"`in.{node.name}` does not exist: the input here is {fmt_shape(shape)}, not "
                "a feature map C×H×W",
                node.span,
                f"a tensor of {len(shape)} axes",
                help="`.c` is the first size of any tensor; `.h` and `.w` are a feature "
                "map's: keep the sizes in bindings before the `reshape`",
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
        items = tuple(self(item, env, shape) for item in node.items)
        size = 1
        for item in items:
            size += self._sized(node, item, MAX_LENGTH - size)
            if size > MAX_LENGTH:
                raise _too_long(node, None)
        return items

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
            if isinstance(a, tuple) and isinstance(b, tuple):
                self._sized(node, a)  # comparing walks the lists
            return _compare(node, a, b)
        if node.op == "+" and isinstance(a, str) and isinstance(b, str):
            if len(a) + len(b) > MAX_LENGTH:
                raise _too_long(node, len(a) + len(b))
        elif (
            node.op == "+"
            and isinstance(a, tuple)
            and isinstance(b, tuple)
            # Measured before `+` builds it; the two lists become one (one less list counts).
            and self._sized(node, a) + self._sized(node, b) - 1 > MAX_LENGTH
        ):
            raise _too_long(node, None)
        return _arith(node, a, b)

    def _cond(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.Cond)
        if self.condition(node.test, env, shape, "a condition"):
            return self(node.then, env, shape)
        return self(node.orelse, env, shape)

    def _func(self, node: ast.Expr, env: Env, shape: Shape | None) -> Value:
        assert isinstance(node, ast.FuncCall)
        fn = self.functions.get(node.name)
        if fn is not None:
            return self._user_function(fn, node, env, shape)
        if any(a.name is not None for a in node.args):
            raise fail("E0402", f"`{node.name}` takes no keyword arguments", node.span)
        args = [self(a.value, env, shape) for a in node.args]
        name = node.name
        if name in ("min", "max"):
            items = args[0] if len(args) == 1 and isinstance(args[0], tuple) else tuple(args)
            self._spend(node, len(items))
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
        assert isinstance(v, (int, float))
        if name == "abs":
            return _check(abs(v), node)
        if name in _MATH:
            return _math(name, v, node)
        # `round` rounds half to even, as Python's (and so torchvision's `int(round(x))`).
        return _check(round(v) if name == "round" else int(v), node)

    def arguments(
        self, params: tuple[ast.Param, ...], args: tuple[ast.Arg, ...], env: Env,
        shape: Shape | None,
    ) -> dict[str, Value]:
        """The values a call of a block or a function passes, positional then keyword,
        evaluated where the call is (the static checks matched them to the parameters)."""
        given: dict[str, Value] = {}
        for param, arg in zip(params, (a for a in args if a.name is None), strict=False):
            given[param.name] = self(arg.value, env, shape)
        for arg in args:
            if arg.name is not None:
                given[arg.name] = self(arg.value, env, shape)
        return given

    def with_defaults(
        self, params: tuple[ast.Param, ...], given: Mapping[str, Value], shape: Shape | None
    ) -> dict[str, Value]:
        """Every parameter bound: the given values, and the defaults of the others evaluated
        in order in the callee's scope (`shape`: a block's input; None in a function)."""
        bound: dict[str, Value] = {}
        for param in params:
            if param.name in given:
                bound[param.name] = given[param.name]
            else:
                assert param.default is not None
                bound[param.name] = self(param.default, bound, shape)
        return bound

    def _user_function(
        self, fn: ast.Function, node: ast.FuncCall, env: Env, shape: Shape | None
    ) -> Value:
        """Bind the arguments (the static checks matched them to the parameters), then run
        the bindings and the result in the function's own scope, where `in` does not exist."""
        given = self.arguments(fn.params, node.args, env, shape)
        if self._calls >= MAX_FUNCTION_DEPTH:
            raise fail("E0004", f"functions call each other more than {MAX_FUNCTION_DEPTH} "
                       "levels deep", node.span, "too deep")
        self._calls += 1  # the nesting depth: one level per call being evaluated
        try:
            local = self.with_defaults(fn.params, given, None)
            for binding in fn.bindings:
                local[binding.name] = self(binding.value, local, None)
            return self(fn.result, local, None)
        except SpecError as exc:
            note = f"in function `{fn.name}`, called at {node.span}"
            for i, d in enumerate(exc.diagnostics):
                if note not in d.notes:
                    exc.diagnostics[i] = replace(d, notes=(*d.notes, note))
            raise
        finally:
            self._calls -= 1
