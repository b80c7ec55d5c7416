"""resdsl: a declarative language and compiler for residual-family networks.

`resdsl.load(path, **params)` is the Python entry point (see `resdsl.api`). Importing resdsl
imports neither torch nor onnx.

Errors: `SpecError` for a mistake in a spec or a checkpoint (its `diagnostics`), `ArgumentError`
for an argument resdsl refuses (a `UsageError`, a `TypeError` and a `ValueError`), `UsageError`
for the other mistakes in how resdsl is called.
"""

__version__ = "0.1.0"

from resdsl.api import Network, load, loads
from resdsl.arguments import ArgumentError, UsageError
from resdsl.diagnostics import SpecError

__all__ = ["ArgumentError", "Network", "SpecError", "UsageError", "__version__", "load", "loads"]
