"""`resdsl lsp`: the language server over standard input and output.

The parser is added without importing pygls: `resdsl --help` and the other commands work
without the `lsp` extra, and `resdsl lsp` says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

EXIT_USAGE = 2


def add_parser(sub: Any) -> None:
    p = sub.add_parser("lsp", help="run the language server (for editors) on stdin and stdout",
                       description="The resdsl language server (LSP) over standard input and "
                       "output: diagnostics as you type, shapes on hover, go to definition. "
                       "Editors start it; see docs/editors.md.")
    # vscode-languageclient adds `--stdio` to a server it talks to over standard streams.
    p.add_argument("--stdio", action="store_true",
                   help="talk over standard input and output (the default and only way)")


def lsp(args: argparse.Namespace, err: TextIO) -> int:
    try:
        from resdsl.lsp.server import serve
    except ImportError as exc:
        err.write(f"resdsl: error: the language server needs pygls ({exc}); install it "
                  "with `pip install 'resdsl[lsp]'`\n")
        return EXIT_USAGE
    serve()
    if sys.stdout.closed:
        # pygls closes standard output when the client says exit; `resdsl` flushes it
        # before exiting.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    return 0
