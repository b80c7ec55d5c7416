"""resdsl: a declarative language and compiler for residual-family networks."""

__version__ = "0.1.0"
