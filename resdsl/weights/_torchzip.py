"""What is checked of a torch.save zip archive before torch.load reads it.

torch.load trusts the archive: a file cut short fails deep in its zip reader with messages
such as "[Errno 22] Invalid argument", and its pickle is run by a Python unpickler at about a
microsecond an instruction, each of which may add an object: a 10 MB pickle of references
costs 9 s and 500 MB. So, from the end of the file and its directory alone (never the data):

- the archive ends with its end record (a file cut short does not);
- its directory, whose size the end record gives, is at most MAX_DIRECTORY bytes (zipfile
  would allocate whatever size a crafted record claims);
- its pickle (`.../data.pkl`, which torch stores uncompressed) is at most MAX_PICKLE bytes.
"""

from __future__ import annotations

import struct
import zipfile
from typing import BinaryIO

# The end record (22 bytes and a comment of up to 64 KiB) and the zip64 records before it.
_END = b"PK\x05\x06"
_TAIL = 65_535 + 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_END = b"PK\x06\x06"
# A directory entry is about 100 bytes a record, and torch writes three records and one a
# tensor storage: 16 MB is 160,000 tensors.
MAX_DIRECTORY = 16_000_000
# A state_dict pickles in about 100 bytes a tensor: 8 MB is 80,000 tensors (a .safetensors
# header admits 70,000), and about as many seconds of torch's unpickler as a refused
# .safetensors header of that size costs.
MAX_PICKLE = 8_000_000


class ArchiveError(Exception):
    """The archive is refused; `args` are the message's end and the help."""

    def __init__(self, reason: str, help: str) -> None:
        super().__init__(reason, help)
        self.reason, self.help = reason, help


_CUT = "the file was cut short (an interrupted download or save?): fetch or save it again"
_DAMAGED = "the file is damaged: fetch or save it again"


def check(f: BinaryIO, size: int) -> None:
    """Refuse (ArchiveError) the zip archive `f` of `size` bytes when it is cut short, its
    directory is damaged or too large, or its pickle is too large."""
    start = max(0, size - _TAIL)
    f.seek(start)
    tail = f.read(_TAIL)
    end = _end_record(tail)
    if end < 0:
        raise ArchiveError("is a truncated PyTorch checkpoint: its zip archive lacks the "
                           "directory that ends it", _CUT)
    directory = int.from_bytes(tail[end + 12 : end + 16], "little")
    if directory == 0xFFFFFFFF:  # zip64: the size is in the zip64 end record
        directory = _zip64_directory(f, size, tail, end)
    if directory > MAX_DIRECTORY:
        raise ArchiveError(f"is not a PyTorch checkpoint resdsl reads: its zip directory "
                           f"claims {directory:,} bytes, more than {MAX_DIRECTORY:,}", _DAMAGED)
    try:
        with zipfile.ZipFile(f) as archive:
            pickles = [i.file_size for i in archive.infolist()
                       if i.filename == "data.pkl" or i.filename.endswith("/data.pkl")]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, struct.error) as exc:
        raise ArchiveError(f"is a corrupt PyTorch checkpoint: its zip directory is damaged "
                           f"({exc})", _DAMAGED) from None
    if pickles and max(pickles) > MAX_PICKLE:
        raise ArchiveError(
            f"holds a pickle of {max(pickles):,} bytes; resdsl reads PyTorch checkpoints whose "
            f"pickle is at most {MAX_PICKLE:,} bytes (about 80,000 tensors)",
            "a state_dict pickles in about 100 bytes a tensor: this file holds something else, "
            "or is crafted; if you trust it, convert it to .safetensors where torch is "
            "installed",
        )


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
        raise ArchiveError("is a corrupt PyTorch checkpoint: its zip64 locator is missing or "
                           "points outside the file", _DAMAGED)
    f.seek(at)
    record = f.read(56)
    if len(record) < 56 or not record.startswith(_ZIP64_END):
        raise ArchiveError("is a corrupt PyTorch checkpoint: its zip64 end record is missing",
                           _DAMAGED)
    return int.from_bytes(record[40:48], "little")
