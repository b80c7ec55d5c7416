"""What is checked of a torch.save zip archive before torch.load reads it.

torch.load trusts the archive: a file cut short fails deep in its zip reader with messages
such as "[Errno 22] Invalid argument", and its pickle is run by a Python unpickler at about a
microsecond an instruction, each of which may add an object: a 10 MB pickle of references
costs 9 s and 500 MB. So, from the end of the file and its directory alone (never the data):

- the archive ends with its end record (a file cut short does not);
- its directory, whose size the end record gives, is at most MAX_DIRECTORY bytes (zipfile
  would allocate whatever size a crafted record claims);
- it is not a TorchScript archive (torch.jit.save), whose pickle holds a module, not tensors;
- its pickle (`.../data.pkl`, which torch stores uncompressed) is at most MAX_PICKLE bytes.

Then its pickle is read (only it) and the sizes of the storages' records are given to the
pickle's scan (_pickle_scan.scan_archive).
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from resdsl.weights._pickle_scan import MAX_PICKLE, Damaged, too_large

# The end record (22 bytes and a comment of up to 64 KiB) and the zip64 records before it.
_END = b"PK\x05\x06"
_TAIL = 65_535 + 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_END = b"PK\x06\x06"
# A directory entry is about 100 bytes a record, and torch writes three records and one a
# tensor storage: 16 MB is 160,000 tensors.
MAX_DIRECTORY = 16_000_000

_CUT = "the file was cut short (an interrupted download or save?): fetch or save it again"
_DAMAGED = "the file is damaged: fetch or save it again"


class TorchScript(Exception):
    """The archive is a TorchScript module (torch.jit.save), not a state_dict."""


@dataclass(frozen=True)
class Archive:
    """What torch.load will read of an archive: its pickle, and the size of each storage's
    record, by the key the pickle names it with."""

    pickle: bytes
    records: dict[str, int]


def check(f: BinaryIO, size: int) -> Archive:
    """The pickle and storage records of the zip archive `f` of `size` bytes; Damaged when
    it is cut short, its directory is damaged or too large, or its pickle is missing or too
    large, and TorchScript for a TorchScript archive."""
    start = max(0, size - _TAIL)
    f.seek(start)
    tail = f.read(_TAIL)
    end = _end_record(tail)
    if end < 0:
        raise Damaged("is a truncated PyTorch checkpoint: its zip archive lacks the "
                      "directory that ends it", _CUT)
    directory = int.from_bytes(tail[end + 12 : end + 16], "little")
    if directory == 0xFFFFFFFF:  # zip64: the size is in the zip64 end record
        directory = _zip64_directory(f, size, tail, end)
    if directory > MAX_DIRECTORY:
        raise Damaged(f"is not a PyTorch checkpoint resdsl reads: its zip directory "
                      f"claims {directory:,} bytes, more than {MAX_DIRECTORY:,}", _DAMAGED)
    try:
        archive = zipfile.ZipFile(f)
    except _ZIP_ERRORS as exc:
        raise Damaged(f"is a corrupt PyTorch checkpoint: its zip directory is damaged "
                      f"({exc})", _DAMAGED) from None
    with archive:
        return _contents(archive)


_ZIP_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError, struct.error,
               NotImplementedError)


def _contents(archive: zipfile.ZipFile) -> Archive:
    """The pickle and the storages' record sizes of an archive whose directory is read.
    torch.save writes `NAME/data.pkl` and each storage as `NAME/data/KEY`; torch.jit.save
    adds `NAME/constants.pkl`, which is how torch tells it."""
    entries = archive.infolist()
    pickles = [i for i in entries if i.filename.rpartition("/")[2] == "data.pkl"]
    if any(i.filename.rpartition("/")[2] == "constants.pkl" for i in entries):
        raise TorchScript()
    if len(pickles) != 1:
        raise Damaged(f"is not a PyTorch checkpoint: its zip archive holds "
                      f"{len(pickles) or 'no'} data.pkl, where torch.save writes one",
                      "resdsl reads checkpoints saved with torch.save, and .safetensors files")
    info = pickles[0]
    if info.file_size > MAX_PICKLE:
        raise too_large(f"of {info.file_size:,} bytes")
    try:
        with archive.open(info) as member:
            pickled = member.read(MAX_PICKLE + 1)
    except _ZIP_ERRORS as exc:
        raise Damaged(f"is a corrupt PyTorch checkpoint: the record of its pickle is damaged "
                      f"({exc})", _DAMAGED) from None
    if len(pickled) > MAX_PICKLE:  # a compressed record that lies about its size
        raise too_large(f"of more than {MAX_PICKLE:,} bytes")
    data = info.filename[: -len("data.pkl")] + "data/"
    records = {i.filename[len(data):]: i.file_size for i in entries
               if i.filename.startswith(data)}
    return Archive(pickled, records)


def _end_record(tail: bytes) -> int:
    """Where in `tail`, the end of the file, the archive's end record starts (its last 2
    bytes before its comment give the comment's length, so it ends the file), or -1."""
    at = tail.rfind(_END)
    while at >= 0:
        if at + 22 <= len(tail) and at + 22 + int.from_bytes(tail[at + 20 : at + 22],
                                                              "little") == len(tail):
            return at
        at = tail.rfind(_END, 0, at)
    return -1


def _zip64_directory(f: BinaryIO, size: int, tail: bytes, end: int) -> int:
    """The directory's size from the zip64 end record, which the 20-byte locator just before
    the end record points to."""
    locator = tail[end - 20 : end] if end >= 20 else b""
    at = int.from_bytes(locator[8:16], "little")
    if not locator.startswith(_ZIP64_LOCATOR) or at + 56 > size:
        raise Damaged("is a corrupt PyTorch checkpoint: its zip64 locator is missing or "
                      "points outside the file", _DAMAGED)
    f.seek(at)
    record = f.read(56)
    if len(record) < 56 or not record.startswith(_ZIP64_END):
        raise Damaged("is a corrupt PyTorch checkpoint: its zip64 end record is missing",
                      _DAMAGED)
    return int.from_bytes(record[40:48], "little")
