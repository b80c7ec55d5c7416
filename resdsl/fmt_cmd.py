"""`resdsl fmt PATH...`: lay specs out in the canonical layout (resdsl/syntax/format.py),
in place, or with `--check` / `--diff` report what would change without writing.

Files are rewritten atomically (resdsl/outputs.py), keeping their permissions; a file that
is already formatted is not touched. A file with a syntax error gets its diagnostics and
is left as it is; so is one whose result fails the formatter's own checks (E9000, exit 3).
It never imports torch.
"""

from __future__ import annotations

import argparse
import difflib
import os
import stat
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO, TextIO

from resdsl.diagnostics import SpecError, error, render_all_text
from resdsl.diagnostics.codes import INTERNAL
from resdsl.outputs import write_atomic
from resdsl.syntax.format import FormatCheckError, format_source
from resdsl.syntax.loader import count_tokens, read_limited
from resdsl.syntax.parser import MAX_FILE_BYTES, decode

EXIT_OK, EXIT_CHANGED, EXIT_SPEC, EXIT_INTERNAL = 0, 1, 1, 3
STDIN = "-"
SUFFIX = ".res"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("fmt", help="lay specs out in the canonical layout, keeping comments")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="spec files, and folders searched for *.res files; `-` formats "
                   "standard input to standard output")
    p.add_argument("--check", action="store_true",
                   help="write nothing; list the files that would change and exit 1 if any")
    p.add_argument("--diff", action="store_true",
                   help="write nothing; print a unified diff of what would change and exit 1 "
                   "if anything would")
    p.add_argument("--stdin-filename", metavar="PATH", default="<stdin>",
                   help="the name standard input has in diagnostics (default: <stdin>)")


def fmt(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.paths.count(STDIN) > 1:
        from resdsl.pipeline import UsageError

        raise UsageError("fmt: `-` (standard input) may be given once")
    status = EXIT_OK
    changed = unchanged = 0
    for path, display in _targets(args.paths, args.stdin_filename):
        try:
            data = (sys.stdin.buffer.read(MAX_FILE_BYTES + 1) if path is None
                    else read_limited(path))
            source = decode(display, data)
            count_tokens(source)
            text = format_source(source.text, display)
        except SpecError as exc:
            err.write(render_all_text(exc.diagnostics))
            status = max(status, EXIT_SPEC)
            continue
        except FormatCheckError as exc:
            err.write(render_all_text([error(
                INTERNAL,
                f"internal error: `{display}` cannot be formatted safely ({exc}); it is left "
                "as it was",
                None,
                help="this is a bug in resdsl, not a mistake in your spec: please report it "
                "with the file",
            )]))
            status = max(status, EXIT_INTERNAL)
            continue
        new = text.encode("utf-8")
        if path is None and not (args.check or args.diff):
            out.write(text)  # standard input: the result goes to standard output
            continue
        if new == data:
            unchanged += 1
            continue
        changed += 1
        if args.diff:
            out.writelines(difflib.unified_diff(
                data.decode("utf-8", "replace").splitlines(keepends=True),
                text.splitlines(keepends=True), f"{display} (original)",
                f"{display} (formatted)"))
        if args.check or args.diff:
            if args.check:
                err.write(f"would reformat {display}\n")
            status = max(status, EXIT_CHANGED)
            continue
        assert path is not None
        _rewrite(path, new)
        err.write(f"reformatted {display}\n")
    if changed + unchanged > 1 or (changed and not (args.check or args.diff)):
        verb = "would be reformatted" if args.check or args.diff else "reformatted"
        err.write(f"{_files(changed)} {verb}, {_files(unchanged)} left unchanged\n")
    return status


def _files(n: int) -> str:
    return f"{n} file{'s' if n != 1 else ''}"


def _targets(paths: list[str], stdin_name: str) -> Iterator[tuple[str | None, str]]:
    """(path to read, name to show) of each spec to format; a folder gives its *.res files,
    sorted, skipping hidden folders (`.git`, staging folders); `-` gives (None, stdin)."""
    for given in paths:
        if given == STDIN:
            yield None, stdin_name
        elif os.path.isdir(given):
            found: list[str] = []
            for folder, subfolders, files in os.walk(given):
                subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
                found += [os.path.join(folder, f) for f in files if f.endswith(SUFFIX)]
            for path in sorted(found):
                yield path, path
        else:
            yield given, given  # a file, or a missing path: read_limited says why


def _rewrite(path: str, data: bytes) -> None:
    """Replace the spec at `path` by `data` atomically, keeping its permission bits. The
    spec is this command's input and output at once, which `write_atomic` allows when it
    is not told about inputs."""
    mode = stat.S_IMODE(os.stat(path).st_mode)

    def write(f: BinaryIO) -> None:
        f.write(data)

    write_atomic(path, write, mode=mode)
