"""Writing output files: one policy for every file resdsl writes (`compile`, `draw`,
`paths --plot`, and the API's `save_*` and `draw(path)`); docs/cli.md §Output files says the
same to users.

What an output path may be:

- a regular file, or a name that does not exist yet: written atomically. The bytes go to a
  staging folder beside the target (`.NAME.XXXXXXXX.tmp/`, holding an owner file with the
  writer's process id) and are renamed into place when complete, so a failed, interrupted
  or killed run never leaves a half-written file and keeps the file that was there. A
  staging folder that a killed run left behind is removed by the next write of the same
  output, once its process is gone.
- a symbolic link: followed; the file it points to is replaced atomically, the link stays.
- a character device (`/dev/null`, a terminal) or a FIFO that a process reads: written
  through, as `cp` does, never renamed over. A FIFO that no process reads is refused rather
  than waited on.
- a folder, a block device, a socket, a path through a file (`file.txt/out.onnx`), a missing
  or unwritable folder: refused before anything is computed.
- an input of the compile (the spec, a file it `use`s, the weights) or the external-data file
  of an ONNX model beside it: refused.

Every refusal, and every OSError while writing (a full disk, a read-only folder), is a
UsageError naming the file and the cause: exit 2 from the CLI, the old file kept.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from resdsl.pipeline import UsageError

# The file in a staging folder that says which process made it: "resdsl PID START".
OWNER = "owner"
# The name of the staged output in its staging folder (never the owner's, never a data
# file's: those end in `.data`).
STAGED = "output"
# The part of the output's name that starts a staging folder's name, so that the rest
# (`.` 8 random characters `.tmp`) fits a file name (255 bytes).
_NAME_IN_STAGING = 100
# Bytes written per call: signal handlers (Ctrl-C, SIGTERM) run between calls.
CHUNK = 1 << 24
# The external-data file of an ONNX model NAME: `NAME.<16 hex digits>.data` (unique to its
# contents, see onnx_model.save_model), or `NAME.data` (what resdsl wrote before).
_DATA_FILE = re.compile(r"(?P<model>.+?)(?:\.[0-9a-f]{16})?\.data\Z", re.S)


@dataclass(frozen=True)
class Output:
    """Where an output goes, decided once by `check_output`."""

    # The path as given, for messages and for the CLI's report.
    path: str
    # The file that is replaced: the path itself, or the file its symlinks point to.
    target: Path
    # A character device or a FIFO: written through, never replaced.
    through: bool = False


def check_output(path: str, inputs: Iterable[str] = ()) -> Output:
    """What writing to `path` means, or a UsageError saying why it cannot be written;
    `inputs` are the files the output is made from (the spec and the files it uses, the
    weights), which it must not replace. Cheap: callers run it before the work."""
    if not path:
        raise UsageError("the output path is empty")
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:  # a new file, or a symlink to one
        st = None
    except NotADirectoryError:
        raise UsageError(f"cannot write `{path}`: {_file_in(Path(path))}") from None
    except OSError as exc:
        raise UsageError(f"cannot write `{path}`: {_reason(exc)}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(f"cannot write `{path}`: it is a folder; give a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            kind = "a block device" if stat.S_ISBLK(st.st_mode) else (
                "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise UsageError(f"cannot write `{path}`: it is {kind}; resdsl writes regular "
                             "files, and writes through character devices (/dev/null) and "
                             "FIFOs")
        out = Output(path, Path(path), through=True)
    else:
        target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
        out = Output(path, target)
        _check_folder(out)
        if st is not None:
            model = data_file_of(target)
            if model is not None:
                raise UsageError(f"refusing to overwrite `{path}`: it holds the weights of "
                                 f"the ONNX model `{model}` beside it (its external data); "
                                 "choose another output path")
    if st is not None:
        check_not_input(path, inputs)
    return out


def check_not_input(path: str | Path, inputs: Iterable[str]) -> None:
    """Refuse to write over one of the compile's `inputs`."""
    for source in inputs:
        try:
            same = os.path.samefile(path, source)
        except OSError:
            same = False
        if same:
            raise UsageError(f"refusing to overwrite `{source}`: it is an input of this "
                             "compile (the spec, a file it uses, or the weights); choose "
                             "another output path")


def _check_folder(out: Output) -> None:
    folder = out.target.parent
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        raise UsageError(f"cannot write `{out.path}`: the folder `{folder}` does not "
                         "exist") from None
    except NotADirectoryError:
        raise UsageError(f"cannot write `{out.path}`: {_file_in(folder)}") from None
    except OSError as exc:
        raise UsageError(f"cannot write `{out.path}`: {_reason(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"cannot write `{out.path}`: `{folder}` is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        why = "is on a read-only file system" if _read_only(folder) else "is not writable"
        raise UsageError(f"cannot write `{out.path}`: the folder `{folder}` {why}; choose "
                         "another output path")


def _read_only(folder: Path) -> bool:
    statvfs = getattr(os, "statvfs", None)  # POSIX only
    try:
        return statvfs is not None and bool(statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _file_in(path: Path) -> str:
    """Why a path through a file cannot be written: which part of it is a file."""
    for part in reversed(path.parents):
        if str(part) != "." and part.exists() and not part.is_dir():
            return f"`{part}` is a file, not a folder"
    return "a part of the path is a file, not a folder"


def data_file_of(path: Path) -> Path | None:
    """The ONNX model whose external data `path` is, when it is named so and the model is
    beside it."""
    match = _DATA_FILE.match(path.name)
    if match is None:
        return None
    model = path.parent / match["model"]
    return model if model.is_file() else None


def data_name(model: str, digest: str) -> str:
    """The name of the external-data file of the model named `model`, whose contents have
    the hex digest `digest`."""
    return f"{model}.{digest[:16]}.data"


def data_files(model: Path) -> list[Path]:
    """The files beside `model` named as its external data (any write's)."""
    try:
        names = os.listdir(model.parent)
    except OSError:
        return []
    found = []
    for name in names:
        match = _DATA_FILE.match(name)
        if match is not None and match["model"] == model.name:
            found.append(model.parent / name)
    return sorted(found)


# ------------------------------------------------------------------ writing


def write_atomic(path: str, write: Callable[[BinaryIO], None],
                 inputs: Iterable[str] = (), mode: int | None = None) -> None:
    """Call `write` on a file that becomes `path` when it returns (see the module's
    docstring for what `path` may be). `mode`: the new file's permission bits (`resdsl fmt`
    keeps a spec's own), rather than the usual ones."""
    out = check_output(path, inputs)
    if out.through:
        with output_errors(out), open_through(out) as f:
            write(f)
        return
    with staging(out) as folder:
        staged = folder / STAGED
        with output_errors(out):
            with open(staged, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            publish(staged, out.target, mode)


def write_chunks(f: BinaryIO, data: bytes | bytearray | memoryview) -> None:
    """Write `data` in chunks, so that a signal handler runs while a large file is
    written."""
    view = memoryview(data).cast("B")
    for start in range(0, len(view), CHUNK):
        f.write(view[start:start + CHUNK])


def open_through(out: Output) -> BinaryIO:
    """Open a character device or a FIFO for writing, as it is. A FIFO that no process
    reads is refused (O_NONBLOCK: opening it would wait for a reader forever)."""
    try:
        fd = os.open(out.path, os.O_WRONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise UsageError(f"cannot write `{out.path}`: it is a FIFO that no process is "
                             "reading; start the reader first (resdsl does not wait for "
                             "one)") from None
        raise
    os.set_blocking(fd, True)
    return os.fdopen(fd, "wb")


def publish(staged: Path, target: Path, mode: int | None = None) -> None:
    """Rename the complete `staged` file to `target`, with the usual permissions (a staged
    file is private, 0600), or with `mode`."""
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(staged, mode)
    os.replace(staged, target)


@contextmanager
def output_errors(out: Output) -> Iterator[None]:
    """Turn an OSError while `out` is written into a UsageError naming the file and why."""
    try:
        yield
    except OSError as exc:
        message = f"cannot write `{out.path}`: {_reason(exc)}"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            message += "; free some space, or write elsewhere"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            message += "; choose another output path"
        if not out.through:
            message += (" (the file already there is unchanged)"
                        if os.path.lexists(out.target) else " (nothing was written)")
        raise UsageError(message) from exc


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc) or type(exc).__name__
    name = errno.errorcode.get(exc.errno or 0)
    return text[:1].lower() + text[1:] + (f" ({name})" if name else "")


# ------------------------------------------------------------------ staging


@contextmanager
def staging(out: Output, where: Path | None = None) -> Iterator[Path]:
    """A private folder in `where` (default: beside `out`'s target) holding an owner file,
    removed when the block ends, however it ends. Staging folders of the same output that a
    killed run left behind are removed first."""
    folder = out.target.parent if where is None else where
    prefix = f".{out.target.name[:_NAME_IN_STAGING]}."
    remove_stale(folder, prefix)
    tmp: Path | None = None
    try:
        with output_errors(out):
            tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=folder))
            (tmp / OWNER).write_text(f"resdsl {os.getpid()} {_started(os.getpid())}\n",
                                     encoding="ascii")
        yield tmp
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale(folder: Path, prefix: str) -> list[Path]:
    """Remove the staging folders in `folder` named `PREFIXxxxxxxxx.tmp` whose owner file
    names a process that is gone; returns them. A folder without an owner file is not
    resdsl's and is left alone. Housekeeping: a folder that cannot be listed is not an error
    (the write itself says what is wrong, if anything)."""
    name = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}\.tmp\Z")
    removed = []
    try:
        with os.scandir(folder) as entries:
            stale = [Path(e.path) for e in entries
                     if name.match(e.name) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    for path in stale:
        owner = _owner(path)
        if owner is not None and not _alive(*owner):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _owner(folder: Path) -> tuple[int, str] | None:
    """The process id and start time in a staging folder's owner file."""
    try:
        with open(folder / OWNER, "rb") as f:
            words = f.read(200).decode("ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    if len(words) != 3 or words[0] != "resdsl" or not words[1].isdigit():
        return None
    pid = int(words[1])
    return (pid, words[2]) if pid > 0 else None


def _alive(pid: int, started: str) -> bool:
    """Whether process `pid`, started at `started`, still runs; a process of another user
    counts as running, and so does one whose start cannot be read."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists
        return True
    now = _started(pid)
    # The same pid with another start time: the pid was reused, the writer is gone.
    return started == "-" or now == "-" or now == started


def _started(pid: int) -> str:
    """When process `pid` started, in clock ticks since boot (Linux), or "-"."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[19].decode("ascii")
    except (OSError, IndexError, UnicodeDecodeError):
        return "-"
