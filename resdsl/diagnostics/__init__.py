"""Diagnostics: error data (`diagnostic`), the code index (`codes`) and the renderer."""

from resdsl.diagnostics.codes import CODES
from resdsl.diagnostics.diagnostic import (
    Diagnostic,
    InternalError,
    Label,
    Severity,
    Source,
    Span,
    SpecError,
    error,
    fail,
    warning,
)
from resdsl.diagnostics.render import render_all_text, render_json, render_text, write_errors

__all__ = [
    "CODES",
    "Diagnostic",
    "InternalError",
    "Label",
    "Severity",
    "Source",
    "Span",
    "SpecError",
    "error",
    "fail",
    "render_all_text",
    "render_json",
    "render_text",
    "warning",
    "write_errors",
]
