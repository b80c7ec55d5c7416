"""Writing output files: atomically, and never over the compiler's own inputs.

A compile writes to a temporary file beside the target and renames it into place only when
it is complete, so a failed or interrupted run leaves no half-written file and keeps the
file that was there before.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from resdsl.pipeline import UsageError


def check_output(path: str, inputs: Iterable[str]) -> None:
    """Refuse an output path that is one of the spec files compiled from, or a folder."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"-o {path}: is a folder; give a file name")
    if not target.parent.exists() and str(target.parent):
        raise UsageError(f"-o {path}: the folder {target.parent} does not exist")
    for source in inputs:
        try:
            same = target.exists() and os.path.samefile(target, source)
        except OSError:
            same = False
        if same:
            raise UsageError(f"-o {path}: refusing to overwrite the spec `{source}`, an input "
                             "of this compile; choose another output path")


def write_atomic(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a temporary file beside `path`, then rename it to `path`."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                               dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
