"""Reading checkpoints into numpy: `.safetensors` with resdsl's own reader, PyTorch files
(`.pth`, `.pt`, `.bin`, `.ckpt`) with `torch.load(weights_only=True)`.

A weights file is input from anywhere, like a spec, and is read the same way: its type and
size come from `stat` before it is opened (a folder, FIFO or device is refused without
blocking), and nothing is read whole before it is checked. A `.safetensors` file's header is
read and checked on its own, then its data is mapped, not copied: the arrays are views of a
private memory map, read from disk as they are used. A PyTorch zip archive (what torch.save
writes) is checked from its end and its directory (_torchzip.py: cut short, a directory or a
pickle too large), then mapped by torch.load(mmap=True); only the legacy format is read as
a stream. So a refusal costs the header, whatever the file's size.

torch is imported only for PyTorch files and for torch tensors handed in directly, so that
`.safetensors` weights load on a machine without torch. A PyTorch file is a pickle, and
unpickling runs code: `weights_only=True` makes torch refuse anything but tensors and plain
containers, so a checkpoint can never execute code here, and the refusal says what was
refused (E0607).

Every way a file can be wrong (missing, unreadable, empty, truncated, not a checkpoint, not a
mapping of names to tensors) is an E06xx diagnostic, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import pickle
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resdsl.syntax.loader import _kind as file_kind
from resdsl.weights import _pickle_scan, _safetensors, _torchzip
from resdsl.weights._diag import fail, shown

# Training scripts wrap the state_dict: {"state_dict": ..., "epoch": ..., "optimizer": ...}.
# When a file holds several state_dicts (timm's "state_dict" and "state_dict_ema"), the one
# under the first of these names is taken.
WRAPPERS = ("state_dict", "model", "model_state_dict", "module")
# Wrappers may nest ({"model": {"state_dict": ...}}); this many levels are looked into.
MAX_NESTING = 4
# Prefixes a wrapper module adds to every key: DataParallel and DistributedDataParallel's
# `module.`, torch.compile's `_orig_mod.`.
PREFIXES = ("module.", "_orig_mod.")
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
# torch.save writes a zip archive; the legacy format (and plain pickles) start with PROTO.
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"
# The bytes read first: enough to tell the format and to quote a text file's first line.
_HEAD = 256
_READ_HELP = "check the path; weights are .safetensors or PyTorch .pth/.pt/.bin files"
_FORMAT_HELP = "resdsl reads .safetensors files and PyTorch checkpoints saved with torch.save"
_NO_TORCH_NOTE = "a .pth/.pt/.bin file is a PyTorch pickle; only torch.load can read it safely"
_CONVERT = "convert the checkpoint to .safetensors, which resdsl reads without torch"
# How an import that ran out of memory words it, in its message.
_NO_MEMORY = ("failed to map segment", "cannot allocate memory", "out of memory")


@dataclass
class Checkpoint:
    """Tensors read from a file or taken from a mapping, before they meet a network."""

    source: str
    tensors: dict[str, np.ndarray]
    # Keys widened to float32 while reading, because numpy has no such dtype (bfloat16).
    widened: list[str] = field(default_factory=list)
    # Whether the key order is the network's module order, which matching by structure
    # needs: true of a state_dict and of torch.save, not of .safetensors (sorted by dtype
    # and name when saved).
    ordered: bool = True
    # The keys of the wrapping dicts the state_dict was taken from ({"net": ...}: ("net",)).
    entry: tuple[str, ...] = ()
    # The prefix removed from every key (`module.` of DistributedDataParallel), or "".
    prefix: str = ""
    # Each renamed key's name in the file (rename=...), for messages.
    original: dict[str, str] = field(default_factory=dict)

    def name_in_file(self, key: str) -> str:
        return self.original.get(key, key)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The tensors of a `.safetensors` or PyTorch checkpoint as numpy arrays, by key.

    bfloat16 tensors come back as float32 (numpy has no bfloat16); other dtypes are kept.
    The arrays of a `.safetensors` file are views of a private memory map of it (writable;
    writing them never changes the file). A training checkpoint's state_dict is taken from
    its wrapping dict (see `normalise`) and a DDP "module." prefix removed.
    Raises SpecError (E0601, E0602, E0606, E0607, E0610) when the file cannot be read as a
    checkpoint.
    """
    return read(path).tensors


def read(path: str | os.PathLike[str]) -> Checkpoint:
    src = os.fspath(path)
    with _opened(src) as (fd, size):
        head = _read_at(src, fd, 0, min(size, _HEAD))
        if not head:
            raise fail("E0602", f"the weights file `{src}` is empty", _FORMAT_HELP)
        suffix = os.path.splitext(src)[1].lower()
        if suffix == ".safetensors" or (
            suffix not in TORCH_SUFFIXES and _safetensors.looks_like(head, size)
        ):
            return _read_safetensors(src, fd, size, head)
        if suffix in TORCH_SUFFIXES or head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
            return _read_torch(src, fd, size, head)
    raise fail(
        "E0602",
        f"`{src}` is not a checkpoint: it is neither .safetensors nor a PyTorch file",
        _FORMAT_HELP,
        _text_note(head),
    )


# ------------------------------------------------------------------------- the file


def _cannot_read(src: str, reason: str) -> Exception:
    return fail("E0601", f"cannot read the weights file `{src}`: {reason}", _READ_HELP)


@contextlib.contextmanager
def _opened(src: str) -> Iterator[tuple[int, int]]:
    """The file at `src` opened for reading, and its size, as specs are opened
    (`resdsl.syntax.loader.read_limited`): a folder, FIFO, device or socket is refused from
    `stat` before it is opened, so that nothing blocks on a FIFO or reads a device forever."""
    try:
        kind = file_kind(os.stat(src).st_mode)
        if kind is not None:
            raise _cannot_read(src, kind)
        # O_NONBLOCK: if the path became a FIFO since the stat, opening it does not wait for
        # a writer; the fstat below then refuses it. Reading a regular file ignores it.
        fd = os.open(src, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _cannot_read(src, exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        kind = file_kind(info.st_mode)
        if kind is not None:
            raise _cannot_read(src, kind)
        yield fd, info.st_size
    finally:
        os.close(fd)


def _read_at(src: str, fd: int, offset: int, count: int) -> bytes:
    """Up to `count` bytes at `offset`; fewer only where the file ends."""
    chunks: list[bytes] = []
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        while count > 0:
            chunk = os.read(fd, min(count, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            count -= len(chunk)
    except OSError as exc:
        raise _cannot_read(src, exc.strerror or str(exc)) from None
    return b"".join(chunks)


def _map(src: str, fd: int, size: int, offset: int) -> Any:
    """The file's bytes from `offset` on, as a buffer: a private (copy-on-write) memory map,
    so that arrays over it are writable, read from disk as they are used, and never write
    to the file; a read copy where the file system cannot be mapped."""
    if offset >= size:
        return b""
    try:
        mapped = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        try:
            return bytearray(_read_at(src, fd, offset, size - offset))
        except MemoryError:
            raise _cannot_read(src, f"its {size - offset:,} bytes of data do not fit in "
                               "memory") from None
    return memoryview(mapped)[offset:]


def _text_note(head: bytes) -> tuple[str, ...]:
    """A note quoting the start of a file that is text: the usual wrong file (a README, an
    HTML error page saved in place of the download, a Git LFS pointer)."""
    first = head[:200].split(b"\n", 1)[0][:60]
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        return ()
    if not text.strip() or not text.isprintable():
        return ()
    return (f"it starts with the text `{text.strip()}`",)


# ------------------------------------------------------------------------- .safetensors


def _read_safetensors(src: str, fd: int, size: int, head: bytes) -> Checkpoint:
    try:
        n = _safetensors.header_length(head[:8], size)
        raw = _read_at(src, fd, 8, n)
        if len(raw) < n:  # the file shrank since it was sized
            raise _safetensors.FormatError("it ends inside its header: the file is truncated")
        entries = _safetensors.parse_header(raw, size - 8 - n)
    except _safetensors.FormatError as exc:
        raise fail(
            "E0602",
            f"`{src}` is not a valid .safetensors file: {exc}",
            "the file is corrupt or was cut short (an interrupted download?); fetch it again",
            # (A pickle's first byte, 0x80, can start a header length: only a zip is told.)
            ("it is a zip archive, as torch.save writes: if it is a PyTorch checkpoint, name "
             "it .pth",) if head.startswith(_ZIP_MAGIC) else _text_note(head),
        ) from None
    tensors, bf16 = _safetensors.arrays(entries, _map(src, fd, size, 8 + n))
    return Checkpoint(src, tensors, bf16, ordered=False)


# ------------------------------------------------------------------------- PyTorch files


def _read_torch(src: str, fd: int, size: int, head: bytes) -> Checkpoint:
    if not head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        raise fail(
            "E0602",
            f"`{src}` is not a PyTorch checkpoint: it is neither a zip archive nor a pickle",
            _FORMAT_HELP,
            _text_note(head),
        )
    zipped = head.startswith(_ZIP_MAGIC)
    _scan_torch(src, fd, size, zipped)
    torch = _import_torch(src)
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols and TorchScript; what matters is in the
            # error, or in the state_dict.
            warnings.simplefilter("ignore")
            if zipped:
                # A zip archive is mapped: its storages are views of the file. torch opens
                # the path itself, which _opened has checked is a regular file.
                obj = torch.load(src, map_location="cpu", weights_only=True, mmap=True)
            else:
                with os.fdopen(os.dup(fd), "rb") as f:
                    f.seek(0)
                    obj = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refused(src, str(exc)) or _corrupt(src, exc) from None
    except MemoryError:
        raise _cannot_read(src, "its tensors do not fit in memory") from None
    except Exception as exc:  # torch reports a damaged file with many exception types
        if "TorchScript" in str(exc):
            raise _torchscript(src) from None
        raise _corrupt(src, exc) from None
    return normalise(obj, src)


def _scan_torch(src: str, fd: int, size: int, zipped: bool) -> None:
    """Check a PyTorch file before torch reads it (_torchzip, _pickle_scan): a zip archive
    from its end, its directory and its pickle; the legacy format from its pickles, in its
    first MAX_PICKLE bytes. Nothing else of the file is read, and torch is not imported."""
    try:
        if zipped:
            with os.fdopen(os.dup(fd), "rb") as f:
                archive = _torchzip.check(f, size)
            _pickle_scan.scan_archive(archive.pickle, archive.records)
        else:
            head = _read_at(src, fd, 0, min(size, _pickle_scan.MAX_PICKLE))
            _pickle_scan.scan_legacy(head, size)
    except _pickle_scan.Damaged as exc:
        raise fail("E0602", f"`{src}` {exc.reason}", exc.help) from None
    except _pickle_scan.GlobalRefused as exc:
        raise _global_refused(src, exc.name, exc.module, by_torch=False) from None
    except _pickle_scan.InstructionRefused as exc:
        raise _instruction_refused(src, exc.opcode) from None
    except _torchzip.TorchScript:
        raise _torchscript(src) from None
    except OSError as exc:
        raise _cannot_read(src, exc.strerror or str(exc)) from None


def _torchscript(src: str) -> Exception:
    return fail(
        "E0602",
        f"`{src}` is a TorchScript archive (torch.jit.save), not a state_dict",
        "save its state_dict where torch is installed: "
        f"`torch.save(torch.jit.load({src!r}).state_dict(), \"weights.pth\")`",
    )


# torch.load(weights_only=True) words its refusals in the message of an UnpicklingError,
# after "Weights only load failed" (torch 2.4 to 2.14); these patterns name what it refused.
_REFUSAL = "Weights only load failed"
_BLOCKED = re.compile(r"GLOBAL (\S+) whose module (\S+) is blocked")
_NOT_ALLOWED = re.compile(r"(?:Unsupported global: )?GLOBAL (\S+) was not an allowed global")
_OPCODE = re.compile(r"Unsupported operand (\d+)")
_DOCS = re.compile(r"\s*Check the documentation of torch\.load.*", re.S)


def _refused(src: str, message: str) -> Exception | None:
    """The diagnostic of torch.load(weights_only=True)'s refusal to unpickle something
    (E0607), or None when `message` is not such a refusal (a damaged pickle). The scan
    refuses the same things first (_pickle_scan); torch's own refusal is what is left when
    the installed torch allows less than the scan (an older torch, a newer dtype)."""
    if _REFUSAL not in message:
        return None
    blocked = _BLOCKED.search(message)
    if blocked is not None:
        return _global_refused(src, blocked[1], blocked[2], by_torch=True)
    allowed = _NOT_ALLOWED.search(message)
    if allowed is not None:
        return _global_refused(src, allowed[1], None, by_torch=True)
    core = _DOCS.sub("", message).split("WeightsUnpickler error:")[-1].strip()
    core = core.split("\n\n")[-1].strip() or core
    opcode = _OPCODE.fullmatch(core)
    if opcode:
        return _instruction_refused(src, int(opcode[1]))
    return fail(
        "E0607",
        f"`{src}` holds a pickle that torch.load(weights_only=True) refuses to load",
        _PICKLE_HELP,
        (f"torch.load says: {_sentence(core)}",),
    )


_PICKLE_HELP = ("fetch the file again, or save only the state_dict with torch.save "
                "(`torch.save(model.state_dict(), path)`), or convert it to .safetensors")


def _global_refused(src: str, name: str, blocked: str | None, by_torch: bool) -> Exception:
    """E0607 for a global the pickle names and loading refuses: one of a module torch blocks
    outright (`blocked`: os, sys...), which only an attack names, or one that is not on
    torch's allowlist. `by_torch`: torch.load refused it, rather than resdsl's scan."""
    who = ("torch.load(weights_only=True) refused" if by_torch
           else "resdsl refused, before torch read the file,")
    if blocked is not None:
        return fail(
            "E0607",
            f"`{src}` would call `{shown(name)}` when it is loaded; resdsl refused it",
            "do not load this file with weights_only=False, which would make that call: "
            "take the checkpoint from a source you trust, as .safetensors if you can",
            (f"{who} the global `{shown(name)}`: its module `{shown(blocked)}` is blocked "
             "by torch.load(weights_only=True), since it runs commands or changes the process; "
             "a checkpoint has no use for it",),
        )
    return fail(
        "E0607",
        f"`{src}` holds Python objects besides tensors, and resdsl does not unpickle them",
        "save only the state_dict: `torch.save(model.state_dict(), path)`, or convert the "
        "file to .safetensors; if you trust the file, load it with "
        "torch.load(weights_only=False) yourself and pass its state_dict",
        (f"{who} `{shown(name)}`, which torch.load(weights_only=True) does not allow: "
         "loading it could run code from the file",),
    )


def _instruction_refused(src: str, opcode: int) -> Exception:
    """E0607 for a pickle instruction torch's weights_only unpickler does not run."""
    import pickletools

    names = {op.code: op.name for op in pickletools.opcodes}
    name = f" ({names[chr(opcode)]})" if 0 <= opcode < 256 and chr(opcode) in names else ""
    return fail(
        "E0607",
        f"`{src}` holds a pickle that torch.load(weights_only=True) refuses to load",
        _PICKLE_HELP,
        (f"torch.load(weights_only=True) does not run the pickle instruction {opcode}{name}, "
         "which torch.save never writes: the file is damaged, or was written by pickle.dump",),
    )


def _corrupt(src: str, exc: BaseException) -> Exception:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return fail(
        "E0602",
        f"`{src}` is a corrupt or truncated PyTorch checkpoint",
        "fetch or save the file again",
        (f"torch.load says: {_sentence(first)}",),
    )


def _sentence(text: str, limit: int = 200) -> str:
    """The first sentence of a library's message (the rest is advice for its own users),
    cut at a word, marked with `…`, only when that sentence is longer than `limit`."""
    text = " ".join(text.split())
    match = re.match(r".+?[.!?](?=\s|$)", text)
    sentence = match[0] if match else text
    if len(sentence) <= limit:
        return sentence
    return sentence[:limit].rsplit(" ", 1)[0] + " …"


def _import_torch(src: str) -> Any:
    """torch, or E0606 when it is not installed; E0610 when it is but fails to import
    (out of memory, a broken install, a missing library), which installing would not fix."""
    try:
        import torch
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise _broken_torch(src, exc) from None
        raise fail(
            "E0606",
            f"reading `{src}` needs PyTorch, which is not installed",
            f"`pip install torch`, or {_CONVERT}",
            (_NO_TORCH_NOTE,),
        ) from None
    except Exception as exc:  # MemoryError, OSError, a failed import inside torch
        raise _broken_torch(src, exc) from None
    return torch


def out_of_memory(exc: BaseException) -> bool:
    """Whether an import failed for lack of memory: a MemoryError, or the dynamic loader
    unable to map torch's libraries (ENOMEM, "failed to map segment from shared object")."""
    if isinstance(exc, MemoryError) or getattr(exc, "errno", None) == errno.ENOMEM:
        return True
    return any(sign in str(exc).lower() for sign in _NO_MEMORY)


def _broken_torch(src: str, exc: BaseException) -> Exception:
    reason = (str(exc).strip().splitlines() or [""])[0]
    what = f"{type(exc).__name__}: {_sentence(reason)}" if reason else type(exc).__name__
    if out_of_memory(exc):
        help = ("importing torch ran out of memory (it maps hundreds of MB of libraries): run "
                f"with more memory (a higher `ulimit -v` or container limit), or {_CONVERT}")
    else:
        help = f"repair the installation (`pip install --force-reinstall torch`), or {_CONVERT}"
    return fail(
        "E0610",
        f"reading `{src}` needs PyTorch, which is installed but failed to import",
        help,
        (f"`import torch` raised {what}", _NO_TORCH_NOTE),
    )


# ------------------------------------------------------------------------- state_dicts


def normalise(obj: object, source: str) -> Checkpoint:
    """A state_dict from whatever a checkpoint holds, converted to numpy.

    A training checkpoint wraps the state_dict in a dict with other entries
    ({"net": state_dict, "acc": 93.1, "epoch": 200}); the state_dict is the entry that is a
    mapping of names to tensors, when there is exactly one, or else the one named
    "state_dict", "model", "model_state_dict" or "module" (in that order); wrappers may nest.
    A prefix every key has (`module.` of DataParallel, `_orig_mod.` of torch.compile) is
    removed. The checkpoint records which entry and prefix, for the report."""
    obj, entry = _unwrap(obj, source)
    if not isinstance(obj, Mapping):
        raise fail(
            "E0602",
            f"`{source}` holds a {type(obj).__name__}, not a state_dict",
            "a checkpoint is a mapping of names to tensors: save `model.state_dict()`",
        )
    tensors: dict[str, np.ndarray] = {}
    widened: list[str] = []
    for key, value in obj.items():
        if not isinstance(key, str):
            raise fail("E0602", f"`{source}` is not a state_dict: it has a key "
                       f"{shown(repr(key))}, not a name", "a state_dict maps names (strings) "
                       "to tensors")
        array, was_widened = _to_numpy(value, key, source)
        tensors[key] = array
        if was_widened:
            widened.append(key)
    prefix = ""
    while tensors:
        strip = next((p for p in PREFIXES if all(k.startswith(p) for k in tensors)), None)
        if strip is None:
            break
        tensors = {k[len(strip):]: v for k, v in tensors.items()}
        widened = [k[len(strip):] for k in widened]
        prefix += strip
    return Checkpoint(source, tensors, widened, entry=entry, prefix=prefix)


def _is_tensor(value: object) -> bool:
    if isinstance(value, (np.ndarray, np.generic)):
        return True
    torch = sys.modules.get("torch")  # a torch tensor exists only once torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def _is_state_dict(value: object) -> bool:
    return (isinstance(value, Mapping) and len(value) > 0
            and all(isinstance(k, str) and _is_tensor(v) for k, v in value.items()))


class _Search:
    """Which mappings are, or hold, state_dicts, each answer kept by the mapping's identity:
    a pickle shares what it memoises, so a few kB can hold four levels of a thousand keys
    that all lead to one dict, which a plain search would visit 10¹² times."""

    def __init__(self) -> None:
        self.is_state_dict: dict[int, bool] = {}
        self.holds: dict[tuple[int, int], bool] = {}

    def state_dict(self, value: object) -> bool:
        if not isinstance(value, Mapping):
            return False
        known = self.is_state_dict.get(id(value))
        if known is None:
            known = self.is_state_dict[id(value)] = _is_state_dict(value)
        return known

    def holds_state_dict(self, value: object, depth: int) -> bool:
        if depth <= 0 or not isinstance(value, Mapping):
            return False
        key = (id(value), depth)
        if key not in self.holds:
            self.holds[key] = False  # a mapping that holds itself adds nothing
            self.holds[key] = any(self.state_dict(v) or self.holds_state_dict(v, depth - 1)
                                  for v in value.values())
        return self.holds[key]


def _unwrap(obj: object, source: str) -> tuple[object, tuple[str, ...]]:
    """The state_dict inside a training checkpoint's wrapping dicts, and the keys that lead
    to it; `obj` itself when it is not such a wrapper."""
    entry: list[str] = []
    search = _Search()
    while (isinstance(obj, Mapping) and not search.state_dict(obj)
           and len(entry) < MAX_NESTING):
        left = MAX_NESTING - len(entry) - 1
        named = [k for k in obj if isinstance(k, str)]
        found = ([k for k in named if search.state_dict(obj[k])]
                 or [k for k in named if search.holds_state_dict(obj[k], left)])
        if not found:
            break
        if len(found) > 1:
            preferred = [w for w in WRAPPERS if w in found]
            if not preferred:
                raise _several(source, entry, found)
            found = preferred
        entry.append(found[0])
        obj = obj[found[0]]
    return obj, tuple(entry)


def _several(source: str, entry: list[str], found: list[str]) -> Exception:
    where = "".join(f"[{k!r}]" for k in entry)
    names = ", ".join(f"`{shown(k)}`" for k in found)
    pick = f"{where}[{found[0]!r}]"
    return fail(
        "E0602",
        f"`{source}` holds several state_dicts: {names}",
        f"pick one and save it on its own, e.g. `torch.save(torch.load({source!r}, "
        f"weights_only=True){pick}, \"weights.pth\")`, or pass it as weights= in Python",
        (f"resdsl takes the one named {', '.join(repr(w) for w in WRAPPERS)} (in that "
         "order), or the only one",),
    )


def _to_numpy(value: object, key: str, source: str) -> tuple[np.ndarray, bool]:
    """`value` as a numpy array, and whether it was widened to float32."""
    if isinstance(value, np.ndarray):
        return value, False
    if isinstance(value, np.generic):
        return np.asarray(value), False
    # Only a torch object can be a torch tensor: checking the module first keeps torch
    # unimported for numpy state_dicts.
    if type(value).__module__.startswith("torch"):
        converted = _torch_to_numpy(value, key, source)
        if converted is not None:
            return converted
    what = "a mapping" if isinstance(value, Mapping) else f"a {type(value).__name__}"
    raise fail(
        "E0602",
        f"`{source}` is not a state_dict: `{shown(key)}` holds {what}, not a tensor",
        "a state_dict maps names to tensors; save `model.state_dict()`",
        ("resdsl takes the state_dict from a wrapping dict when one of its entries is a "
         "mapping of names to tensors",) if isinstance(value, Mapping) else (),
    )


def _torch_to_numpy(value: object, key: str, source: str) -> tuple[np.ndarray, bool] | None:
    """None when `value` is some other torch object (a device, a dtype)."""
    import torch

    if not isinstance(value, torch.Tensor):
        return None
    t = value.detach().cpu()
    widened = t.is_floating_point() and t.dtype not in (torch.float16, torch.float32,
                                                        torch.float64)
    if widened:
        t = t.float()  # bfloat16 and the float8 types have no numpy dtype
    try:
        return t.resolve_conj().resolve_neg().numpy(), widened
    except (RuntimeError, TypeError):  # sparse, quantized and meta tensors
        raise fail(
            "E0602",
            f"`{source}`: tensor `{shown(key)}` ({t.dtype}, {t.layout}) has no numpy "
            "equivalent",
            "save dense float tensors: `{k: v.to_dense().float() for k, v in sd.items()}`",
        ) from None
