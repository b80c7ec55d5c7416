"""A bounded pre-scan of every pickle resdsl hands to torch.load.

torch.load(weights_only=True) calls only the functions on its allowlist, so a checkpoint can
never run code; but it is not bounded. Its unpickler is written in Python (1 to 3 µs an
instruction, and each instruction may build an object), the zip format's pickle may be as
large as its archive says, and the legacy format (`_use_new_zipfile_serialization=False`, and
plain pickles) is read as a stream with no size at all: a crafted pickle would cost seconds to
minutes and gigabytes before torch refused it. So every pickle is scanned first, within the
limits below, and only one that passes is given to torch:

1. A window of the file, at most MAX_PICKLE bytes, is read; the pickle must end (STOP) inside
   it. A lexer walks its instructions: each must be one that torch's weights_only unpickler
   runs (anything else is refused by number, E0607: BINBYTES8 claiming 4 GB is refused before
   anything is allocated), each length must stay inside the window, a memo index inside the
   window's size, and the instructions that build a container or make a call are counted
   against MAX_OBJECTS. A global is checked as soon as it is read.
2. CPython's own unpickler (C, 30 to 100 times faster than torch's) then runs the pickle, with
   `find_class` resolving only the globals torch allows a state_dict to inert stand-ins (E0607
   names anything else, with torch's wording), and `persistent_load` checking each storage
   record: its shape, and the size it declares against what the file holds (an archive's
   record of that storage; for the legacy format, the bytes after the pickles, summed), so
   that a size that lies is refused before torch allocates it.

The lexer comes first because CPython's unpickler is not bounded either: a 9-byte pickle
`LONG_BINPUT 2**28` makes it allocate and zero a 4 GB memo, and BINBYTES8 reserves whatever
size it claims before reading. After the lexer, the C pass sees only instructions torch runs,
lengths the window holds, and memo indices below its size.

Refusals are exceptions: Damaged (E0602: malformed, truncated, too large, or sizes that lie),
GlobalRefused and InstructionRefused (E0607). resdsl.weights.io words them.
"""

from __future__ import annotations

import io
import pickle
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from resdsl.weights._diag import shown

# The pickle bytes resdsl reads: a zip archive's data.pkl, or the legacy format's pickles
# together. A state_dict pickles in 84 to 155 bytes a tensor (torchvision's resnet152, 932
# tensors: 79 kB; timm's hrnet_w64, 1,956 tensors: 230 kB; with Adam's state, 460 kB), so
# 1 MB is 6,500 to 12,000 tensors. torch.load takes about 2 s of CPU for a 1 MB state_dict
# on a busy machine (load 5 on 2 cores; bench/checkpoint_limits.py), most of the 5 s contract.
MAX_PICKLE = 1_000_000
# Containers and calls the pickle may make (MARK, the EMPTY_* and TUPLE* instructions,
# REDUCE, NEWOBJ, BINPERSID): a state_dict makes 9.5 to 10 a tensor, so 100,000 is 10,000
# tensors (timm's hrnet_w64 with its EMA and Adam's state, 6,900 tensors, makes 66,000).
# torch.load's time grows with the tensors, and a pickle of nothing but containers (a
# million empty sets) costs its unpickler 3.3 s a MB and 230 MB: this bounds both.
MAX_OBJECTS = 100_000

# torch.save's legacy format starts with these two pickles (torch/serialization.py).
MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

_CUT = "the file was cut short (an interrupted download or save?): fetch or save it again"
_DAMAGED = "the file is damaged: fetch or save it again"
_TOO_LARGE_HELP = ("a state_dict pickles in about 100 bytes a tensor: this file holds something "
                   "else, or is crafted; if you trust it, convert it to .safetensors where torch "
                   "is installed")


class Damaged(Exception):
    """A checkpoint refused as malformed, truncated, too large or inconsistent (E0602);
    `reason` follows the file's name in the message."""

    def __init__(self, reason: str, help: str = _DAMAGED) -> None:
        super().__init__(reason, help)
        self.reason, self.help = reason, help


class GlobalRefused(Exception):
    """The pickle names a global that torch.load(weights_only=True) does not allow (E0607);
    `module` is set when the module is one torch blocks outright (os, sys...)."""

    def __init__(self, name: str, module: str | None) -> None:
        super().__init__(name, module)
        self.name, self.module = name, module


class InstructionRefused(Exception):
    """The pickle holds an instruction torch's weights_only unpickler does not run (E0607)."""

    def __init__(self, opcode: int) -> None:
        super().__init__(opcode)
        self.opcode = opcode


def too_large(size: str) -> Damaged:
    """`size` is "of 9,000,000 bytes" or "of more than 1,000,000 bytes"."""
    return Damaged(f"holds a pickle {size}; resdsl reads PyTorch checkpoints whose pickle is "
                   f"at most {MAX_PICKLE:,} bytes (about {MAX_PICKLE // 100:,} tensors)",
                   _TOO_LARGE_HELP)


# ------------------------------------------------------------------------- the globals

# torch's weights_only allowlist (torch/_weights_only_unpickler.py, _get_allowed_globals, as
# of torch 2.14; tests/test_checkpoints.py compares it with the installed torch's). Legacy
# storage types, with the size of their element.
_STORAGE_ITEMSIZE = {
    "Double": 8, "Float": 4, "Half": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1, "Byte": 1,
    "Bool": 1, "BFloat16": 2, "ComplexDouble": 16, "ComplexFloat": 8,
}
_QUANTIZED_ITEMSIZE = {"QInt8": 1, "QInt32": 4, "QUInt8": 1, "QUInt4x2": 1, "QUInt2x4": 1}
_TENSOR_TYPES = ("Double", "Float", "Half", "Long", "Int", "Short", "Char", "Byte", "Bool",
                 "BFloat16")
_SPARSE_TYPES = ("BFloat16", "Byte", "Char", "Double", "Float", "Half", "Int", "Long", "Short")
_DTYPES = (
    "bool", "float16", "float32", "float64", "bfloat16", "complex32", "complex64", "complex128",
    "bcomplex32", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "qint8", "qint32", "quint8", "quint4x2", "quint2x4", "bits8", "bits16", "bits1x8",
    "bits2x4", "bits4x2", "float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz",
    "float8_e8m0fnu", "float4_e2m1fn_x2",
    *(f"{kind}int{bits}" for kind in ("", "u") for bits in range(1, 8)),
)
_REBUILDS = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
             "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
             "_rebuild_meta_tensor_no_storage", "_rebuild_nested_tensor",
             "_rebuild_wrapper_subclass", "_rebuild_device_tensor_from_numpy",
             "_rebuild_device_tensor_from_cpu_tensor")
_OTHERS = ("torch.Size", "torch.Tensor", "torch.device", "torch.nn.parameter.Parameter",
           "torch.serialization._get_layout", "torch._tensor._rebuild_from_type_v2",
           "torch.storage.TypedStorage", "torch.per_tensor_affine",
           "torch.per_tensor_symmetric", "torch.per_channel_affine",
           "torch.per_channel_symmetric", "torch.per_channel_affine_float_qparams",
           "_codecs.encode", "builtins.bytearray")
# Modules torch refuses even when a user allows their globals: what a malicious pickle calls.
BLOCKED_MODULES = ("sys", "os", "posix", "nt")


class _Stub:
    """What an allowed global stands for in the scan: called (REDUCE), instantiated (NEWOBJ)
    or given state (BUILD), it does nothing and holds nothing."""

    __slots__ = ()

    def __new__(cls, *args: object, **kwargs: object) -> _Stub:
        return object.__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


@dataclass(frozen=True)
class _StorageType:
    """A storage class named in a storage record: the size of its element."""

    name: str
    itemsize: int


def _storage_types() -> dict[str, _StorageType]:
    types = {f"torch.{kind}Storage": _StorageType(kind, size)
             for kind, size in (_STORAGE_ITEMSIZE | _QUANTIZED_ITEMSIZE).items()}
    types |= {f"torch.cuda.{kind}Storage": _StorageType(kind, size)
              for kind, size in _STORAGE_ITEMSIZE.items()}
    # The dtypes torch added after the legacy types are saved as bytes (UntypedStorage).
    types["torch.storage.UntypedStorage"] = _StorageType("Untyped", 1)
    return types


def _stand_ins() -> dict[str, object]:
    """Each allowed global, by its full name, and what stands for it in the scan: the
    containers themselves (inert), a storage type, or a stub."""
    names = [*_OTHERS, *(f"torch.{d}" for d in _DTYPES),
             *(f"torch._utils.{r}" for r in _REBUILDS)]
    for module in ("torch", "torch.cuda"):
        names += [f"{module}.{t}Tensor" for t in _TENSOR_TYPES]
        names += [f"{module}.sparse.{t}Tensor" for t in _SPARSE_TYPES]
    allowed: dict[str, object] = dict.fromkeys(names, _Stub)
    allowed |= _storage_types()
    allowed |= {"collections.OrderedDict": OrderedDict, "collections.Counter": Counter,
                "builtins.set": set, "builtins.complex": complex}
    return allowed


ALLOWED = _stand_ins()


def resolve(module: str, name: str) -> object:
    """The stand-in of the global `module.name`, named as torch names it (Python 2's names
    mapped to Python 3's); GlobalRefused when torch.load(weights_only=True) would refuse it."""
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    full = f"{module}.{name}"
    if module in BLOCKED_MODULES:
        raise GlobalRefused(full, module)
    try:
        return ALLOWED[full]
    except KeyError:
        raise GlobalRefused(full, None) from None


# ------------------------------------------------------------------------- the lexer

# The instructions torch's weights_only unpickler runs (torch/_weights_only_unpickler.py, the
# branches of Unpickler.load), by the bytes of argument each takes.
_FIXED = {
    0: b"\x81Rbaestu(\x85\x86\x87N\x89\x88)]}\x8fQ",
    1: b"Khq\x80",
    2: b"M",
    4: b"Jjr",
    8: b"G",
}
_COUNTED = -1  # a length (1 or 4 bytes), then that many bytes
_LINES = -2  # GLOBAL: module and name, each ending with a newline
_STOP = -3
_REFUSED = -4
_ARGUMENT = [_REFUSED] * 256
for _size, _ops in _FIXED.items():
    for _op in _ops:
        _ARGUMENT[_op] = _size
_ARGUMENT[ord("X")] = _ARGUMENT[ord("U")] = _ARGUMENT[0x8A] = _COUNTED
_ARGUMENT[ord("c")] = _LINES
_ARGUMENT[ord(".")] = _STOP
# The instructions that make a container or a call, which MAX_OBJECTS counts.
_MAKES = bytes(1 if op in b"(]}\x8ft\x85\x86\x87R\x81Q" else 0 for op in range(256))
_LONG_BINPUT = ord("r")
_MAX_LINE = 1_000  # a module's or a global's name


@dataclass
class _Window:
    """The bytes read of a pickle and what follows it; `whole` when they reach the end of the
    pickle's record (an archive) or of the file, so that running out is a truncated file, not
    a pickle too large."""

    data: bytes
    whole: bool
    objects: int = 0

    def beyond(self) -> Damaged:
        if self.whole:
            return Damaged("is a truncated PyTorch checkpoint: its pickle is cut short", _CUT)
        return too_large(f"of more than {MAX_PICKLE:,} bytes")

    def walk(self, start: int) -> int:
        """Check the pickle at `start`, instruction by instruction (see the module's
        docstring); where it ends."""
        data, argument, makes = self.data, _ARGUMENT, _MAKES
        end, objects, at = len(data), self.objects, start
        while at < end:
            op = data[at]
            size = argument[op]
            at += 1
            objects += makes[op]
            if size >= 0:
                if op == _LONG_BINPUT and int.from_bytes(data[at : at + 4], "little") > end:
                    raise Damaged("is a corrupt PyTorch checkpoint: its pickle stores an object "
                                  "at a memo index beyond its size")
                at += size
            elif size == _COUNTED:
                width = 4 if op == 0x58 else 1  # BINUNICODE has a 4-byte length
                at += width + int.from_bytes(data[at : at + width], "little")
            elif size == _LINES:
                at = self._global(at)
            elif size == _STOP:
                self._count(objects)
                return at
            else:
                raise InstructionRefused(op)
        self._count(objects)
        raise self.beyond()

    def _count(self, objects: int) -> None:
        self.objects = objects
        if objects > MAX_OBJECTS:
            raise Damaged(f"is not a checkpoint resdsl reads: its pickle makes more than "
                          f"{MAX_OBJECTS:,} containers and calls, where a state_dict makes 9 a "
                          f"tensor", _TOO_LARGE_HELP)

    def _global(self, at: int) -> int:
        """Check GLOBAL's module and name (resolve); where they end."""
        lines = []
        for _ in range(2):
            newline = self.data.find(b"\n", at, at + _MAX_LINE)
            if newline < 0:
                if len(self.data) - at < _MAX_LINE:
                    raise self.beyond()
                raise Damaged("is a corrupt PyTorch checkpoint: its pickle names a global "
                              f"longer than {_MAX_LINE:,} characters")
            lines.append(self.data[at:newline])
            at = newline + 1
        try:
            module, name = (line.decode("utf-8") for line in lines)
        except UnicodeDecodeError:
            raise Damaged("is a corrupt PyTorch checkpoint: its pickle names a global that is "
                          "not UTF-8") from None
        resolve(module, name)
        return at


# ------------------------------------------------------------------------- the C pass


@dataclass
class _Storages:
    """The storage records of a pickle: each is checked, and its size in bytes kept by key.
    An archive holds each storage as a record of its own (`records`, sizes by key); the
    legacy format's records carry a sixth field, a view."""

    records: Mapping[str, int] | None
    sizes: dict[str, int] = field(default_factory=dict)

    def declare(self, pid: object) -> object:
        fields = 5 if self.records is not None else 6
        if type(pid) is not tuple or not pid:
            raise _bad_record(f"a persistent id of type {type(pid).__name__}, not a storage "
                              "record")
        if _text(pid[0]) != "storage":
            raise _bad_record(f"a persistent record of kind {_kind(pid[0])}; a checkpoint "
                              "holds only storages")
        if len(pid) != fields:
            raise _bad_record(f"a storage record of {len(pid)} fields, where torch.save writes "
                              f"{fields}")
        _, storage_type, named, location, numel = pid[:5]
        key = _text(named)
        if (not isinstance(storage_type, _StorageType) or key is None
                or _text(location) is None or type(numel) is not int or not 0 <= numel < 2**62):
            raise _bad_record("a malformed storage record")
        nbytes = numel * storage_type.itemsize
        if self.records is None:
            self._view(pid[5], numel)
        elif key not in self.records:
            raise Damaged(f"is a corrupt PyTorch checkpoint: its pickle refers to storage "
                          f"`{shown(key)}`, which its archive lacks")
        elif nbytes > self.records[key]:
            raise Damaged(f"is a corrupt PyTorch checkpoint: storage `{shown(key)}` declares "
                          f"{nbytes:,} bytes, but its archive holds {self.records[key]:,}")
        if self.sizes.setdefault(key, nbytes) != nbytes:
            raise Damaged(f"is a corrupt PyTorch checkpoint: storage `{shown(key)}` is "
                          "declared twice, with different sizes")
        return _Stub()

    @staticmethod
    def _view(view: object, numel: int) -> None:
        if view is None:
            return
        if (type(view) is not tuple or len(view) != 3 or _text(view[0]) is None
                or not all(type(n) is int and n >= 0 for n in view[1:])
                or view[1] + view[2] > numel):
            raise _bad_record("a malformed view of a storage")


def _bad_record(what: str) -> Damaged:
    return Damaged(f"is a corrupt PyTorch checkpoint: its pickle holds {what}")


def _text(value: object) -> str | None:
    """A field torch decodes as ASCII when it is bytes (torch's _maybe_decode_ascii)."""
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _kind(value: object) -> str:
    text = _text(value)
    return f"`{shown(text)}`" if text is not None else f"of type {type(value).__name__}"


class _Unpickler(pickle.Unpickler):
    """CPython's unpickler with torch's allowlist: stand-ins for globals, checked storages."""

    def __init__(self, data: bytes, storages: _Storages) -> None:
        # torch.load unpickles Python 2 strings as UTF-8, as here.
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self.storages = storages

    def find_class(self, module: str, name: str) -> object:
        return resolve(module, name)

    def persistent_load(self, pid: object) -> object:
        return self.storages.declare(pid)


def _unpickle(window: _Window, start: int, storages: _Storages) -> tuple[object, int]:
    """The pickle at `start`, its globals stand-ins, and where it ends."""
    end = window.walk(start)
    try:
        return _Unpickler(window.data[start:end], storages).load(), end
    except (Damaged, GlobalRefused, InstructionRefused):
        raise
    except Exception as exc:  # a stack underflow, a missing memo entry, a bad UTF-8 string...
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise Damaged(f"is a corrupt PyTorch checkpoint: its pickle is damaged ({detail[:200]})"
                      ) from None


# ------------------------------------------------------------------------- the formats


def scan_archive(pickled: bytes, records: Mapping[str, int]) -> None:
    """Check a zip archive's data.pkl (at most MAX_PICKLE bytes), whose storages are the
    archive's records `records` (their sizes, by key)."""
    _unpickle(_Window(pickled, whole=True), 0, _Storages(records))


def scan_legacy(head: bytes, size: int) -> None:
    """Check the legacy format's pickles, of which `head` holds the file's first bytes (at
    most MAX_PICKLE) of its `size`: its magic number, its version, a dict of the saving
    system's sizes, the object, and the keys of its storages, whose data follows, each a
    64-bit count of elements, then the elements. The storages' declared sizes must fit in
    what follows the pickles."""
    window = _Window(head, whole=len(head) >= size)
    storages = _Storages(None)
    magic, at = _unpickle(window, 0, storages)
    if type(magic) is not int or magic != MAGIC_NUMBER:
        raise Damaged("is a pickle, but not a PyTorch checkpoint: it does not start with the "
                      "magic number torch.save writes",
                      "resdsl reads checkpoints saved with torch.save, and .safetensors files; "
                      "a file written by pickle.dump is neither")
    version, at = _unpickle(window, at, storages)
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise Damaged(f"is a corrupt PyTorch checkpoint: its legacy format's version is "
                      f"{shown(repr(version))}, not {PROTOCOL_VERSION}")
    for _ in range(2):  # the saving system's sizes, then the state_dict
        _, at = _unpickle(window, at, storages)
    keys, at = _unpickle(window, at, storages)
    if type(keys) is not list or not all(type(k) is str for k in keys):
        raise _bad_record("a list of storage keys that is not a list of names")
    _check_storages(storages.sizes, keys, size - at)


def _check_storages(sizes: dict[str, int], keys: list[str], left: int) -> None:
    """The legacy format's storage data: each key the pickle declares, once, and in total
    no more bytes than the `left` bytes the file holds after its pickles."""
    listed = set(keys)
    if len(listed) != len(keys) or listed != sizes.keys():
        missing = sorted(sizes.keys() - listed) or sorted(listed - sizes.keys())
        what = f"storage `{shown(missing[0])}`" if missing else "a storage twice"
        raise Damaged(f"is a corrupt PyTorch checkpoint: its list of storages does not match "
                      f"its pickle ({what})")
    needed = sum(8 + n for n in sizes.values())
    if needed > left:
        raise Damaged(f"is a truncated PyTorch checkpoint: its storages declare {needed:,} "
                      f"bytes, but {left:,} follow its pickles", _CUT)
