"""resdsl: a declarative language and compiler for residual-family networks.

`resdsl.load(path, **params)` is the Python entry point (see `resdsl.api`). Importing resdsl
imports neither torch nor onnx.
"""

__version__ = "0.1.0"

from resdsl.api import Network, load
from resdsl.diagnostics import SpecError
from resdsl.pipeline import UsageError

__all__ = ["Network", "SpecError", "UsageError", "__version__", "load"]
