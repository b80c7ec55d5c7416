"""Reading checkpoints into numpy: `.safetensors` with resdsl's own reader, PyTorch files
(`.pth`, `.pt`, `.bin`, `.ckpt`) with `torch.load(weights_only=True)`.

torch is imported only for PyTorch files and for torch tensors handed in directly, so that
`.safetensors` weights load on a machine without torch. A PyTorch file is a pickle, and
unpickling runs code: `weights_only=True` makes torch refuse anything but tensors and plain
containers, so a checkpoint can never execute code here.

Every way a file can be wrong (missing, unreadable, empty, truncated, not a checkpoint, not a
mapping of names to tensors) is an E06xx diagnostic, never a traceback.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resdsl.weights import _safetensors
from resdsl.weights._diag import fail

# Training scripts wrap the state_dict: {"state_dict": ..., "epoch": ..., "optimizer": ...}.
WRAPPERS = ("state_dict", "model", "model_state_dict", "module")
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
# torch.save writes a zip archive; the legacy format (and plain pickles) start with PROTO.
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"
_READ_HELP = "check the path; weights are .safetensors or PyTorch .pth/.pt/.bin files"
_FORMAT_HELP = "resdsl reads .safetensors files and PyTorch checkpoints saved with torch.save"


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


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The tensors of a `.safetensors` or PyTorch checkpoint as numpy arrays, by key.

    bfloat16 tensors come back as float32 (numpy has no bfloat16); other dtypes are kept.
    A wrapping dict ({"state_dict": ...}) is unwrapped and a DDP "module." prefix removed.
    Raises SpecError (E0601, E0602, E0606) when the file cannot be read as a checkpoint.
    """
    return read(path).tensors


def read(path: str | os.PathLike[str]) -> Checkpoint:
    src = os.fspath(path)
    buf = _read_bytes(src)
    if not buf:
        raise fail("E0602", f"the weights file `{src}` is empty", _FORMAT_HELP)
    suffix = os.path.splitext(src)[1].lower()
    if suffix == ".safetensors" or (
        suffix not in TORCH_SUFFIXES and _safetensors.looks_like(bytes(buf[:9]), len(buf))
    ):
        return _read_safetensors(src, buf)
    if suffix in TORCH_SUFFIXES or buf.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        return _read_torch(src, buf)
    raise fail(
        "E0602",
        f"`{src}` is not a checkpoint: it is neither .safetensors nor a PyTorch file",
        _FORMAT_HELP,
        _text_note(buf),
    )


def _read_bytes(src: str) -> bytearray:
    # One read into a bytearray: the arrays of a .safetensors file are views of it (and
    # writable, which torch.from_numpy wants), and torch.load reads the same bytes.
    try:
        with open(src, "rb") as f:
            buf = bytearray(os.fstat(f.fileno()).st_size)
            got = f.readinto(buf)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise fail("E0601", f"cannot read the weights file `{src}`: {reason}", _READ_HELP) from None
    del buf[got:]
    return buf


def _text_note(buf: bytearray) -> tuple[str, ...]:
    """A note quoting the start of a file that is text: the usual wrong file (a README, an
    HTML error page saved in place of the download, a Git LFS pointer)."""
    head = bytes(buf[:200]).split(b"\n", 1)[0][:60]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ()
    if not text.strip() or not text.isprintable():
        return ()
    return (f"it starts with the text `{text.strip()}`",)


def _read_safetensors(src: str, buf: bytearray) -> Checkpoint:
    try:
        tensors, bf16 = _safetensors.parse(buf)
    except _safetensors.FormatError as exc:
        raise fail(
            "E0602",
            f"`{src}` is not a valid .safetensors file: {exc}",
            "the file is corrupt or was cut short (an interrupted download?); fetch it again",
            _text_note(buf),
        ) from None
    return Checkpoint(src, tensors, bf16, ordered=False)


def _read_torch(src: str, buf: bytearray) -> Checkpoint:
    if not buf.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        raise fail(
            "E0602",
            f"`{src}` is not a PyTorch checkpoint: it is neither a zip archive nor a pickle",
            _FORMAT_HELP,
            _text_note(buf),
        )
    torch = _import_torch(src)
    try:
        obj = torch.load(io.BytesIO(buf), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if refused is None:
            raise _corrupt(src, exc) from None
        raise fail(
            "E0602",
            f"`{src}` holds Python objects besides tensors, and resdsl does not unpickle them",
            "save only the state_dict: `torch.save(model.state_dict(), path)`, or convert the "
            "file to .safetensors",
            (f"torch.load(weights_only=True) refused `{refused[1]}`: loading it would run "
             "code from the file",),
        ) from None
    except Exception as exc:  # torch reports a damaged file with many exception types
        raise _corrupt(src, exc) from None
    return normalise(obj, src)


def _corrupt(src: str, exc: BaseException) -> Exception:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return fail(
        "E0602",
        f"`{src}` is a corrupt or truncated PyTorch checkpoint",
        "fetch or save the file again",
        (f"torch.load says: {first[:160]}",),
    )


def _import_torch(src: str) -> Any:
    try:
        import torch
    except ImportError:
        raise fail(
            "E0606",
            f"reading `{src}` needs PyTorch, which is not installed",
            "`pip install torch`, or convert the checkpoint to .safetensors, which resdsl "
            "reads without torch",
            ("a .pth/.pt/.bin file is a PyTorch pickle; only torch.load can read it safely",),
        ) from None
    return torch


def normalise(obj: object, source: str) -> Checkpoint:
    """A state_dict from whatever a checkpoint holds: unwrap {"state_dict": ...} and the like,
    drop a DDP "module." prefix, convert torch tensors to numpy."""
    for _ in range(len(WRAPPERS)):  # wrappers may nest: {"model": {"state_dict": ...}}
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
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
            raise fail("E0602", f"`{source}` is not a state_dict: it has a key {key!r}, "
                       "not a name", "a state_dict maps names (strings) to tensors")
        array, was_widened = _to_numpy(value, key, source)
        tensors[key] = array
        if was_widened:
            widened.append(key)
    if tensors and all(k.startswith("module.") for k in tensors):
        # Saved from a DistributedDataParallel or DataParallel wrapper.
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
        widened = [k[len("module."):] for k in widened]
    return Checkpoint(source, tensors, widened)


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
    nested = isinstance(value, Mapping)
    raise fail(
        "E0602",
        f"`{source}` is not a state_dict: `{key}` holds {what}, not a tensor",
        f"if the weights are inside `{key}`, pass that mapping itself" if nested
        else "a state_dict maps names to tensors; save `model.state_dict()`",
        (f"resdsl unwraps {', '.join(repr(w) for w in WRAPPERS)} itself",) if nested else (),
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
            f"`{source}`: tensor `{key}` ({t.dtype}, {t.layout}) has no numpy equivalent",
            "save dense float tensors: `{k: v.to_dense().float() for k, v in sd.items()}`",
        ) from None
