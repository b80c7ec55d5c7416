"""Loading a spec and the block libraries it imports with `use`.

`use "blocks/resnet.res"` resolves relative to the importing file's folder, and must stay
inside the folder of the spec being compiled; failing that, it resolves in the built-in
library that ships with resdsl. Nothing else is searched, so a spec cannot read arbitrary files.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from resdsl._resources import library_root
from resdsl.diagnostics import Diagnostic, Label, Source, Span, SpecError, error, fail
from resdsl.syntax import ast, parser
from resdsl.syntax.parser import decode, parse

# Files importing files; loading recurses once per level.
MAX_IMPORT_DEPTH = 64
# Tokens in the spec and all the files it imports, together. Parsing costs about 10 to 25 µs
# a token, so this bounds it to about a second (docs/language.md §Limits); the largest
# shipped spec has 758. Each file counts FILE_TOKENS more, for the cost of finding, reading
# and parsing it, so that ten thousand imports of empty files are bounded too.
MAX_TOKENS = 30_000
FILE_TOKENS = 50
# What counts as a token: a name or number, a string, a two-character operator or any other
# character but a space; comments are matched (so that they are skipped) but not counted.
_TOKENS = re.compile(r'#[^\n]*|("[^"\n]*"?|[A-Za-z0-9_]+|\*\*|//|[=!<>]=|\S)')


@dataclass
class Program:
    """The main file and every file it imports, in load order (main first)."""

    main: ast.File
    files: list[ast.File] = field(default_factory=list)
    # The file each `use` resolved to, keyed by (importing path, use path).
    imports: dict[tuple[str, str], ast.File] = field(default_factory=dict)


def _cannot_read(path: str, reason: str, span: Span | None) -> SpecError:
    return fail(
        "E0001",
        f"cannot read `{path}`: {reason}",
        span,
        "imported here" if span is not None else "",
        help="check the path; specs are .res files",
    )


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file is, said plainly; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return os.strerror(errno.EISDIR)
    if stat.S_ISFIFO(mode):
        return "it is a named pipe (FIFO), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "it is a device, not a file"
    if stat.S_ISSOCK(mode):
        return "it is a socket, not a file"
    return "it is not a regular file"


def _too_large(path: str, size: str, span: Span | None) -> SpecError:
    return fail(
        "E0003",
        f"`{path}` is {size} bytes; specs are limited to {parser.MAX_FILE_BYTES:,}",
        span,
        "imported here" if span is not None else "",
        help="split the spec into block libraries imported with `use`",
    )


def read_limited(path: str, span: Span | None = None) -> bytes:
    """The bytes of the spec at `path`, sized before they are read: a directory, FIFO, device
    or socket is refused without reading (a FIFO would block, a device never end), and a file
    over MAX_FILE_BYTES is refused from its size, reading at most MAX_FILE_BYTES + 1 bytes
    even when the size lies (a file that grows, a /proc file that says 0). `span` is the
    `use` that imports the file, for the diagnostic."""
    try:
        kind = _kind(os.stat(path).st_mode)
        if kind is not None:
            raise _cannot_read(path, kind, span)
        # O_NONBLOCK: if the path became a FIFO since the stat, opening it does not wait for
        # a writer; the fstat below then refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _cannot_read(path, exc.strerror or str(exc), span) from None
    try:
        info = os.fstat(fd)
        kind = _kind(info.st_mode)
        if kind is not None:
            raise _cannot_read(path, kind, span)
        if info.st_size > parser.MAX_FILE_BYTES:
            raise _too_large(path, f"{info.st_size:,}", span)
        chunks: list[bytes] = []
        left = parser.MAX_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise _cannot_read(path, exc.strerror or str(exc), span) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > parser.MAX_FILE_BYTES:
        raise _too_large(path, f"more than {parser.MAX_FILE_BYTES:,}", span)
    return data


def count_tokens(source: Source, budget: int = MAX_TOKENS) -> int:
    """The tokens of `source`, counted before it is parsed (in C, about 0.1 s a MiB); past
    `budget`, an error at the first token over it."""
    found = _TOKENS.findall(source.text)
    count = len(found) - found.count("")
    if count > budget:
        real = (m for m in _TOKENS.finditer(source.text) if m.group(1))
        over = next(itertools.islice(real, max(budget, 0), None))  # count > budget ≥ 0
        raise fail(
            "E0003",
            f"`{source.path}` has {count:,} tokens; a spec, with the files it imports, is "
            f"limited to {MAX_TOKENS:,}",
            source.span(over.start(), over.end()),
            "the limit is crossed here",
            help="split the spec into block libraries imported with `use`, and write repeated "
            "layers with `repeat`",
        )
    return count


def _display(path: Path) -> str:
    """A path as the user would write it: relative to the working folder when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class _Loader:
    def __init__(self, main_path: str) -> None:
        self.root = Path(main_path).resolve().parent
        self.library = library_root().resolve()
        self.loaded: dict[Path, ast.File] = {}
        self.tokens = 0  # in the files loaded so far, bounded by MAX_TOKENS
        self.full = False  # the token budget is spent: load nothing more
        self.diagnostics: list[Diagnostic] = []

    def resolve(self, importer: Path, use: ast.Use) -> Path:
        raw = Path(use.path)
        if raw.is_absolute():
            raise fail(
                "E0209",
                f"`use` takes a relative path, not `{use.path}`",
                use.span,
                "absolute path",
                help="write the path relative to this spec's folder",
            )
        in_library = _inside(importer, self.library) and not _inside(importer, self.root)
        allowed = [self.library] if in_library else [self.root, self.library]
        local = (importer.parent / raw).resolve()
        if not in_library and not _inside(local, self.root):
            raise fail(
                "E0209",
                f"`{use.path}` resolves outside the spec's folder",
                use.span,
                f"this is {_display(local)}",
                help=f"imports must stay inside {_display(self.root)} or the built-in library",
            )
        candidates = [local] if _inside(local, allowed[0]) else []
        builtin = (self.library / raw).resolve()
        if _inside(builtin, self.library):
            candidates.append(builtin)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        # A folder, FIFO or device of that name: loading it reports what it is (E0001),
        # which says more than "not found".
        for candidate in candidates:
            if candidate.exists():
                return candidate
        where = " or ".join(_display(c) for c in dict.fromkeys(candidates)) or "nowhere"
        raise fail(
            "E0208",
            f"cannot find `{use.path}`",
            use.span,
            "no such file",
            notes=(f"looked for {where}",),
            help="check the spelling; paths are relative to the importing spec's folder",
        )

    def load(self, path: Path, display: str, chain: tuple[tuple[Path, ast.Use], ...],
             text: str | bytes | None = None) -> ast.File:
        """Load the file at `path` (or `text`, its unsaved contents) and what it imports."""
        if path in self.loaded:
            return self.loaded[path]
        span = chain[-1][1].span if chain else None
        self.tokens += FILE_TOKENS
        if self.tokens > MAX_TOKENS:
            self.full = True  # one diagnostic, not one per import after it
            raise fail(
                "E0003",
                f"the spec imports too many files: each counts {FILE_TOKENS} tokens, and a "
                f"spec, with the files it imports, is limited to {MAX_TOKENS:,}",
                span,
                "the limit is crossed here",
                help="import fewer, larger block libraries",
            )
        # Text held in memory passes the checks of a file's bytes: its size, UTF-8, NUL.
        if text is None:
            data = read_limited(display, span)
        else:
            data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
            if len(data) > parser.MAX_FILE_BYTES:
                # Bytes were read from a stream up to one past the limit: their size is a
                # lower bound.
                size = (f"{len(data):,}" if isinstance(text, str)
                        else f"more than {parser.MAX_FILE_BYTES:,}")
                raise _too_large(display, size, span)
        source = decode(display, data)
        self.tokens += count_tokens(source, MAX_TOKENS - self.tokens)
        file = parse(source)
        self.loaded[path] = file
        for use in file.uses:
            if self.full:
                break
            try:
                target = self.resolve(path, use)
            except SpecError as exc:
                self.diagnostics += exc.diagnostics
                continue
            cycle = [p for p, _ in chain] + [path]
            if target in cycle:
                self.diagnostics.append(self._cycle(cycle[cycle.index(target) :], chain, use))
                continue
            if len(chain) >= MAX_IMPORT_DEPTH and target not in self.loaded:
                self.diagnostics.append(
                    error(
                        "E0004",
                        f"imports are nested more than {MAX_IMPORT_DEPTH} files deep",
                        use.span,
                        "one level too many",
                        help="import the libraries side by side from one file, not each from "
                        "the one before",
                    )
                )
                continue
            try:
                self.load(target, _display(target), (*chain, (path, use)))
            except SpecError as exc:
                self.diagnostics += exc.diagnostics
        return file

    def _cycle(
        self, cycle: list[Path], chain: tuple[tuple[Path, ast.Use], ...], use: ast.Use
    ) -> Diagnostic:
        names = " → ".join(_display(p) for p in [*cycle, cycle[0]])
        others = tuple(
            Label(u.span, "imported here") for p, u in chain if p in cycle and u is not use
        )
        return error(
            "E0210",
            f"import cycle: {names}",
            use.span,
            "this import closes the cycle",
            secondary=others,
            help="move the blocks both files need into a third file that imports neither",
        )


def load_program(path: str, text: str | bytes | None = None) -> Program:
    """Read the spec at `path` and everything it imports; raise SpecError on any mistake.
    With `text`, that is the spec's source (an editor's unsaved buffer, standard input) and
    `path` only names it and places its `use`s: nothing is read at `path` itself."""
    loader = _Loader(path)
    main_path = Path(path).resolve()
    main = loader.load(main_path, path, (), text)
    if loader.diagnostics:
        raise SpecError(loader.diagnostics)
    program = Program(main, list(loader.loaded.values()))
    for file_path, file in loader.loaded.items():
        for use in file.uses:
            target = loader.resolve(file_path, use)
            program.imports[(file.source.path, use.path)] = loader.loaded[target]
    return program
