"""A small reader of the .safetensors format, with numpy alone.

The format: an 8-byte little-endian header length N, N bytes of a JSON object mapping each
tensor's name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data that
follows the header; an optional "__metadata__" entry holds strings), then the raw
little-endian data, every byte of it in exactly one tensor. Reading it ourselves keeps
`.safetensors` loading free of torch and of the safetensors package, and lets every
inconsistency of a truncated, corrupt or crafted file become a diagnostic instead of an
exception.

The header is read and checked in full before any data is touched: its length from the
first 8 bytes, its size and number of values bounded before it is parsed, every entry's
dtype, rank, dimensions and offsets checked against the file's size, the tensors checked to
tile the data without gaps or overlaps. Only then are the arrays made, as views of a buffer
the caller supplies (a memory map of the file), so nothing is copied or read ahead.
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

import numpy as np

from resdsl.weights._diag import shown

# Every dtype a checkpoint of this kind plausibly holds. BF16 has no numpy dtype: it is read
# as uint16 and widened to float32 (bfloat16 is the top half of a float32).
DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

# The safetensors package refuses headers above 100 MB; a larger length means a corrupt file.
MAX_HEADER = 100_000_000
# JSON values in a header (counted as commas and opening brackets, before parsing). A parsed
# value costs up to about a hundred bytes and a few microseconds, so this bounds parsing a
# hostile 100 MB header of `[[],[],...]` to about 50 MB and half a second. A real header has
# seven a tensor: this admits 70,000 tensors, twice those of the largest network the front
# end's node limit admits (a CIFAR ResNet of 49,000 nodes: 36,000 tensors).
MAX_VALUES = 500_000
# Numbers in a header are dimensions and offsets, below 2**64: 20 digits. Python would refuse
# to convert more than 4,300 digits, with a ValueError.
MAX_DIGITS = 20
# numpy 1.x arrays have at most 32 dimensions (numpy 2: 64); weights have at most 5.
MAX_RANK = 32
_ITEMSIZE = {code: dtype.itemsize for code, dtype in DTYPES.items()}
# The most bytes numpy lets an array describe, zero-sized or not (its non-zero dimensions
# multiplied, times the item size, must fit an intp).
_MAX_BYTES = int(np.iinfo(np.intp).max)


class FormatError(Exception):
    """The bytes are not a valid .safetensors file; the message says why."""


class Entry(NamedTuple):
    """One tensor of the header, checked: where its bytes are in the data. Entries sort in
    the order of their data."""

    begin: int
    end: int
    name: str
    dtype: str
    shape: tuple[int, ...]


def looks_like(head: bytes, size: int) -> bool:
    """Whether a file of `size` bytes starting with `head` (at least 9 bytes) is plausibly
    .safetensors."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= min(MAX_HEADER, size - 8) and head[8:9] == b"{"


def header_length(first: bytes, size: int) -> int:
    """The header's length, from the file's first 8 bytes, checked against its size."""
    if size < 8 or len(first) < 8:
        raise FormatError(f"it is {size} bytes long, too short to hold a header")
    n = int.from_bytes(first[:8], "little")
    if n > MAX_HEADER:
        raise FormatError(
            f"its header claims {n:,} bytes; headers are limited to {MAX_HEADER:,}"
        )
    if 8 + n > size:
        raise FormatError(
            f"its header claims {n:,} bytes, but the file has {size - 8:,} after the "
            "length field"
        )
    return n


def parse_header(raw: bytes, data_len: int) -> list[Entry]:
    """The tensors the header `raw` describes, in the order of their data, each checked
    against the format and against the `data_len` bytes of data that follow the header."""
    header = _json(raw)
    if not isinstance(header, dict):
        raise FormatError(f"its header is a JSON {_json_kind(header)}, not an object")
    entries = sorted(_entry(name, info) for name, info in header.items()
                     if name != "__metadata__")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict):
        raise FormatError(f"its `__metadata__` is a JSON {_json_kind(metadata)}, not an object")
    _check_tiling(entries, data_len)
    return entries


def arrays(entries: list[Entry], data: Any) -> tuple[dict[str, np.ndarray], list[str]]:
    """The tensors of checked `entries` as arrays over `data` (a buffer of the data section:
    a memory map, so that they are views and nothing is read until it is used), and the
    names of those stored as BF16 (returned widened to float32)."""
    tensors: dict[str, np.ndarray] = {}
    bf16: list[str] = []
    for e in entries:
        dtype = DTYPES[e.dtype]
        count = math.prod(e.shape)
        if count == 0:
            array = np.empty(e.shape, dtype=dtype)
        else:
            array = np.frombuffer(data, dtype=dtype, count=count, offset=e.begin).reshape(e.shape)
        if e.dtype == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
            bf16.append(e.name)
        elif not (array.dtype.isnative and array.flags.aligned):
            # A big-endian host, or a tensor placed after one of odd size: copy it to a
            # native, aligned array (torch.from_numpy and fast numpy paths want that).
            array = array.astype(dtype.newbyteorder("="))
        tensors[e.name] = array
    return tensors, bf16


# ------------------------------------------------------------------------- the header


def _json(raw: bytes) -> object:
    """The header's JSON, bounded before it is parsed: its number of values, the digits of
    its numbers, its keys each given once."""
    values = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
    if values > MAX_VALUES:
        raise FormatError(
            f"its header holds about {values:,} JSON values; resdsl reads at most "
            f"{MAX_VALUES:,}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("its header is not UTF-8 text") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_int=_bounded_int,
                          parse_constant=_no_constant)
    except RecursionError:
        raise FormatError("its header is not JSON: it is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"its header is not JSON: {exc.msg} at byte {exc.pos + 8:,} of "
                          "the file") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON allows a key twice (the last wins); the format does not, and a tensor named twice
    # would be read from whichever entry came last.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise FormatError(f"its header names `{shown(key)}` twice")
            seen.add(key)
    return out


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise FormatError(
            f"its header holds a {len(digits.lstrip('-')):,}-digit number; dimensions and "
            "offsets have at most 20"
        )
    return int(digits)


def _no_constant(name: str) -> object:
    raise FormatError(f"its header holds `{name}`, which is not JSON")


def _json_kind(value: object) -> str:
    kinds = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _entry(name: str, info: object) -> Entry:
    """Check one header entry on its own: dtype, rank, dimensions, offsets and their size.
    A header may hold a hundred thousand entries: the common case is one expression, and
    `_refuse` finds what is wrong with the others."""
    if type(info) is dict:
        code, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        size = _ITEMSIZE.get(code) if type(code) is str else None
        if (size is not None and type(shape) is list and len(shape) <= MAX_RANK
                and all(type(d) is int and d >= 0 for d in shape)
                and type(offsets) is list and len(offsets) == 2
                and type(offsets[0]) is int and type(offsets[1]) is int
                and 0 <= offsets[0] <= offsets[1]):
            count = math.prod(shape)
            # A tensor with data fits numpy, as its bytes fit the file; an empty one may
            # not ([2**70, 0]): numpy multiplies its non-zero dimensions.
            if (count * size == offsets[1] - offsets[0]
                    and (count or math.prod(d for d in shape if d) * size <= _MAX_BYTES)):
                return Entry(offsets[0], offsets[1], name, str(code), tuple(shape))
    raise _refuse(name, info)


def _refuse(name: str, info: object) -> FormatError:
    """What is wrong with the header entry `info` of tensor `name`, that `_entry` refused."""
    label = f"tensor `{shown(name)}`"
    if not isinstance(info, dict):
        return FormatError(f"its header entry for `{shown(name)}` is not an object")
    code, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(code, str):
        return FormatError(f"{label} has no dtype")
    if code not in DTYPES:
        known = ", ".join(DTYPES)
        return FormatError(f"{label} has dtype {shown(code)}; resdsl reads {known}")
    if not isinstance(shape, list) or not all(_natural(d) for d in shape):
        return FormatError(f"{label} has an invalid shape {shown(repr(shape))}")
    if len(shape) > MAX_RANK:
        return FormatError(f"{label} has {len(shape)} dimensions; resdsl reads at most "
                           f"{MAX_RANK}")
    itemsize = DTYPES[code].itemsize
    if math.prod(d for d in shape if d) * itemsize > _MAX_BYTES:
        return FormatError(f"{label} has the shape {shape}, too large for any array")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_natural(o) for o in offsets) or offsets[0] > offsets[1]):
        return FormatError(f"{label} has invalid data offsets {shown(repr(offsets))}")
    begin, end = offsets
    need = math.prod(shape) * itemsize
    return FormatError(
        f"{label} ({code} {shape}) needs {need:,} bytes, but its offsets give {end - begin:,}"
    )


def _check_tiling(entries: list[Entry], data_len: int) -> None:
    """The tensors, in the order of their data, cover it exactly: each begins where the one
    before ends, the first at 0, the last at the end of the file (as the format requires,
    so that no byte is read twice or hidden between tensors)."""
    at, last = 0, None
    for e in entries:
        if e.end > data_len:
            raise FormatError(
                f"tensor `{shown(e.name)}` ends at byte {e.end:,} of the data, but the data "
                f"has only {data_len:,} bytes: the file is truncated"
            )
        if e.begin > at:
            raise FormatError(f"the data has a gap: bytes {at:,} to {e.begin:,} are in no "
                              "tensor")
        if e.begin < at and last is not None:
            raise FormatError(f"tensors `{shown(last.name)}` and `{shown(e.name)}` overlap "
                              "in the data")
        at, last = e.end, e
    if at < data_len:
        raise FormatError(f"the data has {data_len - at:,} bytes after the last tensor's end")


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
