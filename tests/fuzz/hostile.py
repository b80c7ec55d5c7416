"""Hand-written hostile cases: resource bombs of every kind the front end has met, and the
limits themselves. Each must end with exit 0 or 1 (most with the diagnostic in `expect`),
within the resource contract of docs/language.md §Limits, and never with a traceback.

A case is a main spec plus optional files beside it; `special` files are made when the
case is written (a FIFO, a 5 GiB sparse file, a folder, a link to /dev/zero).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from resdsl.ir.elaborate import MAX_NODES, MAX_STEPS
from resdsl.ir.evaluate import MAX_OPERATIONS
from resdsl.syntax.loader import MAX_TOKENS

NET = "network n {{\n    input [3, 8, 8]\n{body}\n}}\n"


def net(body: str, head: str = "") -> str:
    return head + NET.format(body=body)


def near_every_limit(grow: str = "") -> str:
    """The costliest spec the limits admit: unused blocks for tokens, a repeat of named nodes
    for nodes (and steps), empty bodies for steps and lists of expressions for operations,
    each part sized to bring its budget near its limit with the others. `grow` names one
    budget (tokens, nodes, steps, operations) to add a fifth of its limit to, which crosses
    it: the proof that the spec sits within 20% of every limit at once."""
    def part(name: str, size: int, cost: int) -> int:
        """`size` items of `cost` each, plus a fifth of the limit when `name` grows."""
        limit = {"tokens": MAX_TOKENS, "nodes": MAX_NODES, "steps": MAX_STEPS,
                 "operations": MAX_OPERATIONS}[name]
        return size + (limit // 5 // cost + 1 if name == grow else 0)

    # Costs: a block is 17 tokens; an iteration of 300 empty bodies about 1,200 steps; a list
    # of 400 `i + i * i` about 2,000 operations.
    blocks = part("tokens", (MAX_TOKENS * 9 // 10 - 100) // 17, 17)
    nodes = part("nodes", MAX_NODES * 22 // 25, 1)
    empty = part("steps", MAX_STEPS // 4_000, 1_200)
    lists = part("operations", MAX_OPERATIONS // 2_500, 2_000)
    row = ", ".join(["i + i * i"] * 400)
    unused = "".join(f"block u{i}(c) {{ conv(c, 3); bn; relu }}\n" for i in range(blocks))
    return unused + net(f"    layer: repeat {nodes} as i {{ r{{i}}: relu }}\n"
                        f"    repeat {empty} {{ repeat 300 {{ }} }}\n"
                        f"    repeat {lists} as i {{ _x = [{row}] }}")


@dataclass(frozen=True)
class Case:
    name: str
    text: Callable[[], str] | str
    # Other files beside the main one: relative path → text.
    files: dict[str, str] = field(default_factory=dict)
    # Files made on the spot: relative path → "fifo", "sparse" (5 GiB), "dir" or "devzero".
    special: dict[str, str] = field(default_factory=dict)
    # The spec to run, when not `main.res` (a special file itself).
    main: str = "main.res"
    # One of these codes must be reported; empty: exit 0 or 1 is enough.
    expect: tuple[str, ...] = ()
    command: str = "check"
    # Takes a second or more (it sits at a limit): the test suite's short run skips it.
    slow: bool = False

    def source(self) -> str:
        return self.text() if callable(self.text) else self.text

    def write(self, folder: Path) -> Path:
        """Write the case into `folder` (empty); returns the spec to run."""
        (folder / "main.res").write_text(self.source(), encoding="utf-8")
        for rel, text in self.files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        for rel, kind in self.special.items():
            path = folder / rel
            if kind == "fifo":
                os.mkfifo(path)
            elif kind == "sparse":
                with open(path, "wb") as f:
                    f.truncate(5 << 30)
            elif kind == "dir":
                path.mkdir()
            elif kind == "devzero":
                path.symlink_to("/dev/zero")
        return folder / self.main


def _doubling(first: str, step: str, n: int = 40) -> str:
    lines = [f"    a0 = {first}"]
    lines += [f"    a{i} = {step.format(p=f'a{i - 1}')}" for i in range(1, n + 1)]
    return net("\n".join(lines) + f"\n    relu if len(a{n}) > 0")


def _chain_blocks(n: int, calls: int) -> str:
    blocks = [
        f"block b{i}() {{ {'; '.join([f'b{i + 1}()'] * calls)} }}" for i in range(n - 1)
    ]
    blocks.append(f"block b{n - 1}() {{ relu }}")
    return net("    b0()", "\n".join(blocks) + "\n")


def _chain_functions(n: int) -> str:
    fns = [f"def f{i}(x) {{ return f{i + 1}(x) + f{i + 1}(x) }}" for i in range(n - 1)]
    fns.append(f"def f{n - 1}(x) {{ return x }}")
    return net("    conv(f0(1), 1)", "\n".join(fns) + "\n")


def _many_blocks(n: int) -> str:
    blocks = "".join(f"block unit{i}(c) {{ conv(c, 3); bn; relu }}\n" for i in range(n))
    calls = "\n".join(f"    unti{i * 97 % n}(16)" for i in range(min(n, 300)))
    return net(calls, blocks)


def _many_networks(n: int) -> str:
    return "".join(f"network n{i} {{ input [3, 8, 8]; rleu }}\n" for i in range(n))


def _many_uses(n: int) -> tuple[str, dict[str, str]]:
    return "".join(f'use "e{i}.res"\n' for i in range(n)), {f"e{i}.res": "" for i in range(n)}


def _use_chain(folder_files: int) -> dict[str, str]:
    files = {f"lib{i}.res": f'use "lib{i + 1}.res"\nblock k{i}() {{ relu }}\n'
             for i in range(folder_files)}
    files[f"lib{folder_files}.res"] = "block kend() { relu }\n"
    return files


# The deepest CIFAR ResNet (depth 6n + 2) that the 20,000-node limit admits: 19,077 nodes
# (found by bisection; depth 5,456 is refused, as its repeats are projected from their first,
# projecting, unit).
CIFAR_DEPTH_AT_LIMIT = 5_450
CIFAR = 'use "blocks/cifar.res"\nnetwork r(classes = 10, depth = {depth}) {{\n' \
    "    input [3, 32, 32]\n    cifar_resnet(depth, classes)\n}}\n"


CASES: tuple[Case, ...] = (
    # --- values that grow without bound (issue #10)
    Case("string_doubling", lambda: _doubling('"xy"', "{p} + {p}"), expect=("E0404",)),
    Case("list_doubling", lambda: _doubling("[1, 2]", "{p} + {p}"), expect=("E0404",)),
    Case("nested_list_doubling", lambda: _doubling("[1, 2]", "[{p}, {p}]"), expect=("E0404",)),
    Case("string_literal_1mb", lambda: net('    s = "' + "x" * 1_000_000 + '"\n    relu'),
         expect=("E0404",)),
    Case("list_literal_200k", lambda: net("    s = [" + "1," * 200_000 + "]\n    relu"),
         expect=("E0003",)),
    Case("list_literal_20k", lambda: net("    s = [" + "1," * 20_000 + "]\n    relu"),
         expect=("E0404",), slow=True),
    Case("big_power", net("    x = 9 ** 9 ** 9\n    relu"), expect=("E0404",)),
    Case("big_product", net("    x = 10 ** 18 * 10 ** 18\n    relu"), expect=("E0404",)),
    Case("big_literal", net("    x = 9" + "9" * 5000 + "\n    relu"), expect=("E0404",)),
    Case("compare_big_lists", lambda: net(
        "    a = [" + "1, " * 9000 + "]\n    b = [" + "1, " * 9000 + "]\n"
        "    repeat 100000 { relu if a == b }"), expect=("E0503",), slow=True),
    Case("max_of_big_list", lambda: net(
        "    a = [" + "1, " * 9000 + "]\n    repeat 100000 { conv(max(a), 1) }"),
        expect=("E0503",), slow=True),
    Case("exponential_functions", lambda: _chain_functions(40), expect=("E0503", "E0004")),
    Case("exponential_functions_22", lambda: _chain_functions(22), expect=("E0503",)),
    Case("long_interpolated_name", lambda: net(
        '    s = "' + "a" * 600 + '"\n    n{s}{s}: relu'), expect=("E0404",)),
    Case("long_dotted_label", lambda: net("    " + ".".join(["a"] * 5000) + ": relu"),
         expect=("E0404", "E0101", "E0004")),
    # --- files sized before they are read (issue #10)
    Case("use_5gib_file", 'use "big.res"\n' + net("    relu"), special={"big.res": "sparse"},
         expect=("E0003",)),
    Case("main_5gib_file", "", special={"big.res": "sparse"}, main="big.res",
         expect=("E0003",)),
    Case("use_fifo", 'use "pipe.res"\n' + net("    relu"), special={"pipe.res": "fifo"},
         expect=("E0001",)),
    Case("main_fifo", "", special={"pipe.res": "fifo"}, main="pipe.res", expect=("E0001",)),
    Case("use_folder", 'use "lib.res"\n' + net("    relu"), special={"lib.res": "dir"},
         expect=("E0001",)),
    Case("main_dev_zero", "", special={"zero.res": "devzero"}, main="zero.res",
         expect=("E0001",)),
    Case("use_chain_70", 'use "lib0.res"\n' + net("    k0()"), files=_use_chain(70),
         expect=("E0004",)),
    Case("use_outside", 'use "../x.res"\nuse "/etc/passwd"\n' + net("    relu"),
         expect=("E0209",)),
    # --- time and memory at and past the limits (issue #10)
    Case("repeat_400k_nodes", net("    repeat 100000 { repeat 4 { relu } }"),
         expect=("E0503",)),
    Case("repeat_at_node_limit", net(f"    layer: repeat {MAX_NODES - 10} as i {{ r{{i}}: relu }}"),
         command="info", slow=True),
    Case("cifar_depth_110110", CIFAR.format(depth=110110), expect=("E0503",)),
    Case("cifar_depth_at_limit", CIFAR.format(depth=CIFAR_DEPTH_AT_LIMIT), command="info",
         slow=True),
    Case("blocks_call_next_twice", lambda: _chain_blocks(40, 2), expect=("E0503",), slow=True),
    Case("blocks_call_next_ten_times", lambda: _chain_blocks(12, 10), expect=("E0503",), slow=True),
    Case("statements_150k", lambda: net("relu;\n" * 150_000), expect=("E0003",)),
    Case("statements_95k_one_line", lambda: net("    " + "relu; " * 95_000),
         expect=("E0003",)),
    Case("statements_at_token_limit", lambda: net("relu;\n" * ((MAX_TOKENS - 200) // 2)),
         slow=True),
    Case("uses_2000_empty_files", _many_uses(2_000)[0] + net("    relu"),
         files=_many_uses(2_000)[1], expect=("E0003",)),
    Case("empty_repeats", net("    repeat 100000 { repeat 100000 { } }"), expect=("E0503",)),
    Case("empty_repeats_at_limit", net(f"    repeat {MAX_STEPS // 3_965} {{ repeat 990 {{ }} }}"),
         slow=True),
    Case("binding_repeats", net("    repeat 100000 { repeat 48 { _x = 1 } }"),
         expect=("E0503",)),
    Case("guarded_off_repeats", net("    repeat 100000 { repeat 100 { relu if false } }"),
         expect=("E0503",)),
    Case("wide_scope_copied", lambda: net(
        "".join(f"    _v{i} = {i}\n" for i in range(16_000)) + "    repeat 100000 { }"),
        expect=("E0503",), slow=True),
    Case("unnamed_skips_one_scope", net("    repeat 24000 { skip { relu } }"), slow=True),
    Case("unnamed_sequences", lambda: net("    " + "{ relu } " * 60_000), expect=("E0003",)),
    Case("unnamed_sequences_16k", lambda: net("    " + "{ relu } " * 16_000), slow=True),
    Case("nested_repeats_100", net("    " + "repeat 2 { " * 100 + "relu" + " }" * 100),
         expect=("E0004", "E0503")),
    Case("huge_input", net("    conv(64, 7, stride = 2)").replace(
        "[3, 8, 8]", "[3, 2147483647, 2147483647]")),
    # --- many definitions: linear checks, bounded did-you-mean (issue #10)
    Case("networks_20k", lambda: _many_networks(20_000), expect=("E0003",)),
    Case("networks_3k", lambda: _many_networks(3_000), expect=("E0201",), slow=True),
    Case("blocks_20k_misspelled", lambda: _many_blocks(20_000), expect=("E0003",)),
    Case("blocks_2k_misspelled", lambda: _many_blocks(2_000), expect=("E0201",), slow=True),
    Case("error_flood", lambda: net("; ".join(f"x{i}" for i in range(3000))),
         expect=("E0201",), slow=True),
    # --- syntax
    Case("deep_brackets", net("    x = " + "(" * 5000 + "1" + ")" * 5000), expect=("E0004",)),
    Case("deep_unary", net("    x = " + "-" * 5000 + "1"), expect=("E0004",)),
    Case("long_sum", net("    x = " + "+".join(["1"] * 5000)), expect=("E0004",)),
    Case("unclosed_100k", lambda: net("    " + "[" * 60 + "1," * 100_000), expect=("E0003",)),
    Case("unclosed_20k", lambda: net("    x = " + "[" * 60 + "1," * 20_000),
         expect=("E0101", "E0103"), slow=True),
    Case("crlf_bom_tabs", "\ufeffnetwork n {\r\n\tinput [3, 8, 8]\r\n\trelu\r\n}\r\n"),
    Case("nul_byte", "network n {\x00}\n", expect=("E0002",)),
)
