"""The connection primitives: their arguments and which clauses each one takes.

The semantics (DESIGN.md §2) live in `elaborate.py`, which lowers each primitive to graph
nodes; this table is what the static checks and the docs need to know about them.
"""

from __future__ import annotations

from dataclasses import dataclass

from resdsl.ir.ops import ArgSpec, ArgType


@dataclass(frozen=True)
class Primitive:
    name: str
    args: tuple[ArgSpec, ...] = ()
    shortcut: bool = False
    transform: bool = False
    summary: str = ""


PRIMITIVES: dict[str, Primitive] = {
    p.name: p
    for p in (
        Primitive(
            "skip",
            (ArgSpec("scale", ArgType.FLOAT, 1.0),),
            shortcut=True,
            summary="y = F(x) + S(x)",
        ),
        Primitive(
            "weight",
            (ArgSpec("init", ArgType.FLOAT, 0.0), ArgSpec("per_channel", ArgType.BOOL, False)),
            shortcut=True,
            summary="y = S(x) + α·F(x); with branches, y = Σ softmax(w)_i · B_i(x)",
        ),
        Primitive(
            "gate",
            (ArgSpec("bias", ArgType.FLOAT, -2.0),),
            transform=True,
            summary="y = T(x)·H(x) + (1 − T(x))·x, T = σ(W_T x + b_T)",
        ),
        Primitive("concat", summary="y = [x, F(x)]"),
        Primitive(
            "group",
            (
                ArgSpec("groups", ArgType.POS_INT),
                ArgSpec("merge", ArgType.STR, "sum", ("sum", "concat")),
            ),
            summary="g branches of F, merged by sum or concat (lowered to grouped conv)",
        ),
        Primitive(
            "dual",
            (ArgSpec("r", ArgType.POS_INT),),
            shortcut=True,
            summary="y = [S[:R] + F[:R], S[R:], F[R:]]",
        ),
        Primitive("scale", summary="y = x · F(x), F(x) broadcast over H, W"),
        Primitive("branch", summary="one branch of a multi-branch `weight`, `skip` or `concat`"),
    )
}

# The joins of named tensors (`add(a, b)`, `cat(a, b)`, `mul(x, f)`, `sub(a, b)`,
# `matmul(a, b)`): the spec's name and the graph op it makes; they take tensors, or lists of
# tensors, as arguments.
JOINS: dict[str, str] = {"add": "add", "cat": "concat", "mul": "mul", "sub": "sub",
                         "matmul": "matmul"}
# The joins of exactly two tensors, and what the two are, for the message of a wrong count.
BINARY_JOINS: dict[str, str] = {
    "mul": "`mul(x, f)` scales x by f, broadcast over H and W",
    "sub": "`sub(a, b)` is a − b, b broadcast over a",
    "matmul": "`matmul(a, b)` multiplies the matrices of the last two axes, a's rows by b's "
    "columns",
}
