"""A small reader of the .safetensors format, with numpy alone.

The format: an 8-byte little-endian header length N, N bytes of a JSON object mapping each
tensor's name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data that
follows the header; an optional "__metadata__" entry holds strings), then the raw
little-endian data. Reading it ourselves keeps `.safetensors` loading free of torch and of the
safetensors package, and lets every inconsistency of a truncated or corrupt file become a
diagnostic instead of an exception.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

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


class FormatError(Exception):
    """The bytes are not a valid .safetensors file; the message says why."""


def looks_like(head: bytes, size: int) -> bool:
    """Whether a file starting with `head` (at least 9 bytes) is plausibly .safetensors."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= min(MAX_HEADER, size - 8) and head[8:9] == b"{"


def parse(buf: bytearray) -> tuple[dict[str, np.ndarray], list[str]]:
    """The tensors of a .safetensors file held in `buf`, in the order of their data, and the
    names of those stored as BF16 (returned widened to float32).

    The arrays are views of `buf` where alignment allows, so a large file is not copied."""
    if len(buf) < 8:
        raise FormatError(f"it is {len(buf)} bytes long, too short to hold a header")
    n = int.from_bytes(buf[:8], "little")
    if n > MAX_HEADER or 8 + n > len(buf):
        raise FormatError(
            f"its header claims {n:,} bytes, but the file has {len(buf) - 8:,} after the "
            "length field"
        )
    try:
        header = json.loads(bytes(buf[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise FormatError("its header is not JSON") from None
    if not isinstance(header, dict):
        raise FormatError("its header is not a JSON object")
    data = memoryview(buf)[8 + n :]
    entries = sorted(
        ((name, _entry(name, info, len(data))) for name, info in header.items()
         if name != "__metadata__"),
        key=lambda item: item[1][2],
    )
    tensors: dict[str, np.ndarray] = {}
    bf16: list[str] = []
    for name, (code, shape, begin) in entries:
        dtype = DTYPES[code]
        count = math.prod(shape)
        if count == 0:
            array = np.empty(shape, dtype=dtype)
        else:
            array = np.frombuffer(data, dtype=dtype, count=count, offset=begin).reshape(shape)
        if code == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
            bf16.append(name)
        elif not (array.dtype.isnative and array.flags.aligned):
            # A big-endian host, or a tensor placed after one of odd size: copy it to a
            # native, aligned array (torch.from_numpy and fast numpy paths want that).
            array = array.astype(dtype.newbyteorder("="))
        tensors[name] = array
    return tensors, bf16


def _entry(name: str, info: object, data_len: int) -> tuple[str, tuple[int, ...], int]:
    """Check one header entry against the data; returns (dtype code, shape, data begin)."""
    if not isinstance(info, dict):
        raise FormatError(f"its header entry for `{name}` is not an object")
    code, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(code, str):
        raise FormatError(f"tensor `{name}` has no dtype")
    if code not in DTYPES:
        known = ", ".join(DTYPES)
        raise FormatError(f"tensor `{name}` has dtype {code}; resdsl reads {known}")
    if not isinstance(shape, list) or not all(_natural(d) for d in shape):
        raise FormatError(f"tensor `{name}` has an invalid shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_natural(o) for o in offsets) or offsets[0] > offsets[1]):
        raise FormatError(f"tensor `{name}` has invalid data offsets {offsets!r}")
    begin, end = offsets
    need = math.prod(shape) * DTYPES[code].itemsize
    if end - begin != need:
        raise FormatError(
            f"tensor `{name}` ({code} {shape}) needs {need:,} bytes, but its offsets give "
            f"{end - begin:,}"
        )
    if end > data_len:
        raise FormatError(
            f"tensor `{name}` ends at byte {end:,} of the data, but the data has only "
            f"{data_len:,} bytes: the file is truncated"
        )
    return code, tuple(shape), begin


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
