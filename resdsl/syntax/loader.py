"""Loading a spec and the block libraries it imports with `use`.

`use "blocks/resnet.res"` resolves relative to the importing file's folder, and must stay
inside the folder of the spec being compiled; failing that, it resolves in the built-in
library that ships with resdsl. Nothing else is searched, so a spec cannot read arbitrary files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from resdsl._resources import library_root
from resdsl.diagnostics import Diagnostic, Label, SpecError, error, fail
from resdsl.syntax import ast
from resdsl.syntax.parser import decode, parse

# Files importing files; loading recurses once per level.
MAX_IMPORT_DEPTH = 64


@dataclass
class Program:
    """The main file and every file it imports, in load order (main first)."""

    main: ast.File
    files: list[ast.File] = field(default_factory=list)
    # The file each `use` resolved to, keyed by (importing path, use path).
    imports: dict[tuple[str, str], ast.File] = field(default_factory=dict)


def read_source(path: str) -> ast.File:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise fail(
            "E0001",
            f"cannot read `{path}`: {exc.strerror or exc}",
            None,
            help="check the path; specs are .res files",
        ) from None
    return parse(decode(path, data))


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
        where = " or ".join(_display(c) for c in dict.fromkeys(candidates)) or "nowhere"
        raise fail(
            "E0208",
            f"cannot find `{use.path}`",
            use.span,
            "no such file",
            notes=(f"looked for {where}",),
            help="check the spelling; paths are relative to the importing spec's folder",
        )

    def load(self, path: Path, display: str, chain: tuple[tuple[Path, ast.Use], ...]) -> ast.File:
        if path in self.loaded:
            return self.loaded[path]
        file = read_source(display)
        self.loaded[path] = file
        for use in file.uses:
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


def load_program(path: str) -> Program:
    """Read the spec at `path` and everything it imports; raise SpecError on any mistake."""
    loader = _Loader(path)
    main_path = Path(path).resolve()
    main = loader.load(main_path, path, ())
    if loader.diagnostics:
        raise SpecError(loader.diagnostics)
    program = Program(main, list(loader.loaded.values()))
    for file_path, file in loader.loaded.items():
        for use in file.uses:
            target = loader.resolve(file_path, use)
            program.imports[(file.source.path, use.path)] = loader.loaded[target]
    return program
