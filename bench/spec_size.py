"""How long the reference specs are: the language's readability bar in lines.

What: for `specs/resnet50.res` and `specs/dpn92.res`, the lines a reader needs: every line
of the spec file, plus the lines of each block definition the network reaches (directly or
through other blocks) that lives in an imported file, from `block` to its closing `}`.
Comments and blank lines inside the spec file count; comments above an imported block do
not (they are not part of its span). Also the total lines of every file involved (the spec
and everything it imports, transitively), for context.

How: the spec is loaded with `resdsl.syntax.loader.load_program` (which parses it and its
`use`s), the blocks are resolved with `resdsl.ir.resolve.check_program`, and the reachable
ones are found by walking `calls_in` from the network; each block's `span` gives its lines.

Bars (DESIGN.md §3): resnet50 with its blocks ≤ 30 lines; dpn92 < 40 lines.

Run: `.venv/bin/python bench/spec_size.py`.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from resdsl.ir.callgraph import calls_in
from resdsl.ir.resolve import Blocks, check_program
from resdsl.pipeline import select_network
from resdsl.syntax import ast
from resdsl.syntax.loader import load_program

ROOT = Path(__file__).resolve().parent.parent
CASES: tuple[tuple[str, int, str, Callable[[int, int], bool]], ...] = (
    ("specs/resnet50.res", 30, "<=", operator.le),
    ("specs/dpn92.res", 40, "<", operator.lt),
)


@dataclass(frozen=True)
class Size:
    spec_lines: int
    imported_block_lines: int
    imported_blocks: list[tuple[str, str, int]]  # (block, file, lines)
    files: list[tuple[str, int]]  # (file, lines)

    @property
    def total(self) -> int:
        return self.spec_lines + self.imported_block_lines


def line_count(text: str) -> int:
    return len(text.splitlines())


def reachable(network: ast.Definition, blocks: Blocks) -> list[ast.Definition]:
    """The blocks `network` calls, directly or through other blocks, in the order found."""
    seen: dict[str, ast.Definition] = {}
    todo = [network]
    while todo:
        definition = todo.pop()
        for call in calls_in(definition):
            block = blocks.by_name.get(call.target)
            if block is not None and block.name not in seen:
                seen[block.name] = block
                todo.append(block)
    return list(seen.values())


def measure(spec: str) -> Size:
    program = load_program(spec)
    diagnostics, blocks = check_program(program)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise SystemExit(f"{spec} does not check: {errors[0].message}")
    network = select_network(program, None)
    main_file = program.main
    imported = []
    for block in reachable(network, blocks):
        file = blocks.file_of[block.name]
        if file is main_file:
            continue  # already counted with the spec file
        lines = block.span.end_line - block.span.line + 1
        imported.append((block.name, file.source.path, lines))
    files = [(f.source.path, line_count(f.source.text)) for f in program.files]
    return Size(
        spec_lines=line_count(main_file.source.text),
        imported_block_lines=sum(lines for _, _, lines in imported),
        imported_blocks=imported,
        files=files,
    )


def main() -> None:
    os.chdir(ROOT)  # paths in the report relative to the repository
    for spec, bar, sign, within in CASES:
        size = measure(spec)
        verdict = "meets" if within(size.total, bar) else "MISSES"
        print(f"{spec}")
        print(f"  spec file: {size.spec_lines} lines")
        for name, path, lines in size.imported_blocks:
            print(f"  + block {name} ({path}): {lines} lines")
        print(f"  = {size.total} lines with its blocks   bar {sign} {bar}: {verdict} the bar")
        involved = " + ".join(f"{path} {lines}" for path, lines in size.files)
        print(f"  files involved: {involved} = {sum(n for _, n in size.files)} lines")
        print()


if __name__ == "__main__":
    main()
