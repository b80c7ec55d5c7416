"""The rules for the arguments of resdsl's commands and of its Python API, and their error.

Every public entry point checks its arguments here before it uses them: the command line
(`--seed`, `--input`, `--max-params`, `--opset`, `--depth`, `-D`) and the API
(`resdsl.load(input_shape=...)`, `Network.to_torch(seed=...)`, ...) call the same checker for
the same argument, so both accept exactly the same values, and a mistake is reported where it
was made rather than as a TypeError deep inside. Integers are anything `operator.index`
accepts (numpy integers too) but a bool; floats, strings and bools are refused.

A message names the argument as its caller wrote it (`Spelling`): `--seed -1` on the command
line, `seed=-1` in Python, so an API user is never told about a flag.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from resdsl.ir.evaluate import MAX_INT
from resdsl.ir.ops import MAX_DIM, Shape


class UsageError(Exception):
    """A mistake in how resdsl is called rather than in the spec (exit code 2)."""


class ArgumentError(UsageError, TypeError, ValueError):
    """An argument resdsl refuses: of the wrong type or out of its range.

    `argument` is the keyword argument at fault (its API name, `"seed"`), `value` what was
    given. It is a `UsageError`, and also a `TypeError` and a `ValueError`, so code that
    catches either of Python's usual exceptions for a bad argument catches it too.
    """

    def __init__(self, message: str, argument: str = "", value: object = None,
                 code: str | None = None, help: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument
        self.value = value
        # A diagnostic code (E0741) and its help, for the mistakes that have one: the
        # command line shows them as a diagnostic (still exit 2).
        self.code = code
        self.help = help


@dataclass(frozen=True)
class Spelling:
    """How messages name an argument: by its command-line flag, or by its keyword."""

    # keyword → flag on the command line; None for the Python API (the keyword itself).
    flags: Mapping[str, str] | None = None

    @property
    def python(self) -> bool:
        """Whether the caller is the Python API (values are Python objects, None is one)."""
        return self.flags is None

    def name(self, keyword: str) -> str:
        """`--input` or `input_shape`."""
        return keyword if self.flags is None else self.flags.get(keyword, keyword)

    def given(self, keyword: str, value: object) -> str:
        """The argument as the caller wrote it: `--seed -1`, `seed=-1`; `--verify`,
        `verify=True`."""
        if self.flags is None:
            return f"{keyword}={show(value)}"
        if value is True:  # a switch
            return self.name(keyword)
        text = value if isinstance(value, str) else show(value)
        return f"{self.name(keyword)} {shlex.quote(text)}"

    def switch(self, keyword: str, value: bool) -> str:
        """A switch as the caller sets it: `--no-strict`, `strict=False`."""
        setting = f"{keyword}={value!r}"
        return setting if self.flags is None else self.flags.get(setting, setting)

    def usage(self, keyword: str, placeholder: str) -> str:
        """How to pass a value, for a help text: `--max-params N`, `max_params=N`."""
        if self.flags is None:
            return f"{keyword}={placeholder}"
        return f"{self.name(keyword)} {placeholder}"

    def define(self, param: str, text: str) -> str:
        """A network parameter's override: `-D classes=10`, `classes=10`."""
        return f"{param}={text}" if self.flags is None else f"-D {param}={text}"


# The Python API: keyword arguments.
PYTHON = Spelling()
# The command line: the flags of `resdsl compile`, `info`, `draw`, `bench` and `paths`.
COMMAND_LINE = Spelling({
    "input_shape": "--input",
    "network": "--network",
    "seed": "--seed",
    "max_params": "--max-params",
    "opset": "--opset",
    "depth": "--depth",
    "format": "--format",
    "path": "-o",
    "weights": "--weights",
    "verify": "--verify",
    "rename": "--rename",
    "out_indices": "--features",
    # Switches, by the value they set.
    "strict=False": "--no-strict",
    "replace_head=True": "--replace-head",
    "allow_nonfinite=True": "--allow-nonfinite",
})


def show(value: object) -> str:
    """`repr(value)`, cut short: a message never floods, and never fails on what it shows
    (an int of 5,000 digits has no repr, a user's class may raise in its own)."""
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _a_type(value: object) -> str:
    """`None`, `a str`, `an int`: the type of `value` with its article."""
    if value is None:
        return "None"
    name = type(value).__name__
    return ("an " if name[0] in "aeiouAEIOU" else "a ") + name


def _refuse(keyword: str, value: object, spelling: Spelling, rule: str,
            wrong_type: bool = False, hint: str = "") -> ArgumentError:
    """The error for `value`: `seed=None: must be an integer ..., not None`."""
    message = f"{spelling.given(keyword, value)}: must be {rule}"
    if wrong_type:
        message += f", not {_a_type(value)}"
    return ArgumentError(message + (f"; {hint}" if hint else ""), keyword, value)


def _is_bool(value: object) -> bool:
    """True for `True`, `False` and numpy's bools (only present when numpy is imported)."""
    if isinstance(value, bool):
        return True
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.bool_)


def integer(value: object, keyword: str, spelling: Spelling, low: int,
            high: int | None = None, rule: str | None = None) -> int:
    """`value` as an int from `low` to `high` (no upper bound when None). Accepts ints and
    numpy integers (`operator.index`); refuses bools, floats (even 1e6: NaN would pass as
    a float where a count is meant) and strings."""
    if rule is None:
        rule = (f"an integer of at least {low:,}" if high is None
                else f"an integer from {low:,} to {high:,}")
    if _is_bool(value):
        raise _refuse(keyword, value, spelling, rule, wrong_type=True)
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        hint = ""
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            hint = f"write {int(value):_}"
        raise _refuse(keyword, value, spelling, rule, wrong_type=True, hint=hint) from None
    if number < low or (high is not None and number > high):
        raise _refuse(keyword, value, spelling, rule)
    return number


# Seeds are 64-bit: the initialiser seeds numpy's SeedSequence with one 64-bit word, so a
# larger seed would silently give the weights of a smaller one.
MAX_SEED = 2**64 - 1


def seed(value: object, spelling: Spelling = PYTHON) -> int:
    """The seed of the initial weights: 0 to 2**64 - 1."""
    return integer(value, "seed", spelling, 0, MAX_SEED,
                   f"an integer from 0 to 2**64 - 1 ({MAX_SEED:,})")


def max_params(value: object, spelling: Spelling = PYTHON) -> int | None:
    """The size guard's limit: None for the default, else an integer of at least 0 (NaN or
    a string would turn the guard off or crash it)."""
    if value is None:
        return None
    default = "or None for the default" if spelling.python else "default"
    return integer(value, "max_params", spelling, 0,
                   rule=f"an integer of at least 0 ({default} 2,000,000,000)")


def opset(value: object, spelling: Spelling = PYTHON) -> int | None:
    """The ONNX opset: None for the default, else one resdsl emits."""
    from resdsl.backends.onnx_lowering import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

    if value is None:
        return None
    return integer(value, "opset", spelling, MIN_OPSET, MAX_OPSET,
                   f"one of the opsets {MIN_OPSET} to {MAX_OPSET} that resdsl emits "
                   f"(default {DEFAULT_OPSET})")


def depth(value: object, spelling: Spelling = PYTHON) -> int:
    """How many levels of the module hierarchy `info` shows: at least 1."""
    return integer(value, "depth", spelling, 1)


def flag(value: object, keyword: str, spelling: Spelling = PYTHON) -> bool:
    """A yes/no option: `True` or `False` only (`strict="no"` would be true)."""
    if not _is_bool(value):
        raise _refuse(keyword, value, spelling, "True or False", wrong_type=True)
    return bool(value)


def choice(value: object, keyword: str, choices: Sequence[str],
           spelling: Spelling = PYTHON) -> str:
    """One of `choices`."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise _refuse(keyword, value, spelling, f"one of {listed}",
                      wrong_type=not isinstance(value, str))
    return value


def path(value: object, keyword: str = "path", spelling: Spelling = PYTHON) -> str:
    """A file path: a str or an `os.PathLike` giving one, without a NUL character."""
    rule = "a file path (a str or an os.PathLike)"
    if isinstance(value, bytes):
        raise _refuse(keyword, value, spelling, rule, wrong_type=True,
                      hint="decode it with os.fsdecode")
    if not isinstance(value, (str, os.PathLike)):
        raise _refuse(keyword, value, spelling, rule, wrong_type=True)
    try:
        text = os.fspath(value)
    except TypeError:
        raise _refuse(keyword, value, spelling, rule, wrong_type=True) from None
    if not isinstance(text, str):
        raise _refuse(keyword, value, spelling, rule, wrong_type=True)
    if "\0" in text:
        raise _refuse(keyword, value, spelling, "a file path without a NUL character")
    return text


def source(value: object) -> str:
    """A spec's source text: a str (an editor's buffer), never bytes or a file object."""
    if isinstance(value, bytes):
        raise _refuse("text", value, PYTHON, "the spec's source (a str)", wrong_type=True,
                      hint="decode it (`data.decode('utf-8')`), or pass the file's path to "
                      "resdsl.load")
    if not isinstance(value, str):
        raise _refuse("text", value, PYTHON, "the spec's source (a str)", wrong_type=True,
                      hint="for a file, use resdsl.load(path)")
    return value


def network(value: object, spelling: Spelling = PYTHON) -> str | None:
    """Which network of the spec: None (the only one) or its name."""
    if value is None or isinstance(value, str):
        return value
    raise _refuse("network", value, spelling,
                  "the name of a network in the spec (a str), or None for its only one",
                  wrong_type=True)


def weights(value: object, spelling: Spelling = PYTHON) -> str | Mapping[str, Any] | None:
    """A checkpoint: None, its path, or a state_dict (a mapping of names to tensors)."""
    if value is None or isinstance(value, Mapping):
        return value
    if isinstance(value, (str, os.PathLike, bytes)):
        return path(value, "weights", spelling)
    raise _refuse("weights", value, spelling,
                  "a checkpoint's path (.pth, .pt, .bin, .safetensors), a state_dict "
                  "(a mapping of names to tensors), or None", wrong_type=True)


def out_indices(value: object, spelling: Spelling = PYTHON) -> tuple[int, ...] | None:
    """Which feature points a features network returns (timm's `out_indices`): None for
    all, else integers (negative ones count from the last), in Python a list or tuple, on
    the command line the text `1,2,3`. Their range and repeats are checked against the
    network's points (`resdsl.features`)."""
    if spelling.python:
        rule = "a list or tuple of integers, or None for every feature point"
    else:
        rule = "indices separated by commas, e.g. 1,2,3 or -1 (none: every feature point)"
    if value is None:
        return None
    if isinstance(value, str) and not spelling.python:
        parts = [p.strip() for p in value.split(",")]
        if not all(p.lstrip("-").isascii() and p.lstrip("-").isdigit() and p.count("-") <= 1
                   and len(p) <= 12 for p in parts):
            raise _refuse("out_indices", value, spelling, rule,
                          hint="a bare --features takes every point: put it after the spec")
        return tuple(int(p) for p in parts)
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        one = not _is_bool(value) and isinstance(value, numbers.Integral)
        raise _refuse("out_indices", value, spelling, rule, wrong_type=True,
                      hint=f"for one feature write ({value},)" if one else "")
    items = tuple(value)  # a list, a tuple, a numpy array, a range
    if not items:
        raise _refuse("out_indices", value, spelling, rule + ", at least one")
    return tuple(integer(i, "out_indices", spelling, -MAX_INT, MAX_INT,
                         "a list or tuple of integers") for i in items)


_SIZES = f"sizes from 1 to {MAX_DIM:,}"


def input_shape(value: object, spelling: Spelling = PYTHON) -> Shape | None:
    """The input shape: None (the spec's), the text `CxHxW` or `C` (`3x224x224`, `3×224×224`,
    `784`), or in Python a tuple or list of 3 or 1 integers. Every size is 1 to MAX_DIM."""
    if spelling.python:
        rule = f'(C, H, W) or (C,) with {_SIZES}, or the text "CxHxW" or "C"'
    else:
        rule = f"CxHxW or C with {_SIZES}, e.g. 3x224x224"
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.lower().replace("×", "x").split("x")]
        # ASCII digits only, and no more of them than MAX_DIM has: int() would also take
        # "+3", "3_0" and other digits, and refuses 5,000 of them with a ValueError.
        if len(parts) not in (1, 3) or not all(
            p.isascii() and p.isdigit() and len(p) <= len(str(MAX_DIM)) for p in parts
        ):
            raise _refuse("input_shape", value, spelling, rule)
        dims: tuple[int, ...] = tuple(int(p) for p in parts)
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        if len(value) not in (1, 3):
            raise _refuse("input_shape", value, spelling, rule)
        try:
            dims = tuple(integer(d, "input_shape", spelling, 1, MAX_DIM) for d in value)
        except ArgumentError:
            raise _refuse("input_shape", value, spelling, rule) from None
    else:
        vector = isinstance(value, int) and not _is_bool(value)
        hint = f"for a vector input write ({value},)" if vector else ""
        raise _refuse("input_shape", value, spelling, rule, wrong_type=True, hint=hint)
    if not all(1 <= d <= MAX_DIM for d in dims):
        raise _refuse("input_shape", value, spelling, rule)
    return dims


# Nested lists deeper than this are refused before they are written out (the spec parser
# refuses deep nesting anyway; this keeps a self-containing list from recursing forever).
_MAX_NESTING = 32


def parameter_text(name: str, value: object, nesting: int = 0) -> str:
    """A Python value for a network parameter (`load(classes=10)`) as the spec text that
    `-D NAME=VALUE` takes, so both go through the same parser and checks: bools, integers
    (numpy's too), finite floats, strings, and lists or tuples of them."""
    rule = ("a bool, an integer, a finite float, a string without double quotes or line "
            "breaks, or a list of them")
    if nesting > _MAX_NESTING:
        raise _refuse(name, value, PYTHON, f"a list nested at most {_MAX_NESTING} deep")
    if _is_bool(value):
        return "true" if value else "false"
    if isinstance(value, str):
        if '"' in value or "\n" in value or "\r" in value:
            raise _refuse(name, value, PYTHON, rule)
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(parameter_text(name, v, nesting + 1) for v in value) + "]"
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        pass
    else:
        if abs(number) > MAX_INT:
            raise _refuse(name, value, PYTHON, f"an integer from {-MAX_INT:,} to {MAX_INT:,}")
        return str(number)
    if isinstance(value, numbers.Real):  # float, numpy's floats, Fraction
        real = float(value)
        if not math.isfinite(real):
            raise _refuse(name, value, PYTHON, rule)
        return repr(real)
    raise _refuse(name, value, PYTHON, rule, wrong_type=True)
