"""Text → AST: the grammar, the parser and the AST classes."""

from resdsl.syntax.parser import decode, parse, parse_expression

__all__ = ["decode", "parse", "parse_expression"]
