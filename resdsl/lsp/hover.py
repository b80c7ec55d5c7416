"""Hover: what the name under the cursor is, and what its statement computes (shape,
parameters, MACs and module path, from the last network that built)."""

from __future__ import annotations

from resdsl.ir.ops import USER_OPS, fmt_shape, fmt_value
from resdsl.ir.ops.base import REQUIRED
from resdsl.ir.primitives import PRIMITIVES
from resdsl.lsp._opdocs import DOCS
from resdsl.lsp.analysis import Analysis, FileIndex, Instance, Occurrence
from resdsl.syntax import ast

# Instances of a statement listed one by one; the rest are counted.
MAX_LISTED = 8


def count(n: int) -> str:
    """12,345 and 1.81 G: exact below a million, short above."""
    for unit, scale in (("G", 1e9), ("M", 1e6)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:,}"


def doc_comment(item: ast.Definition | ast.Function) -> str:
    """The `#` lines right above a definition, without their `#`."""
    source = item.span.source
    lines: list[str] = []
    n = item.span.line - 1
    while n >= 1 and source.line(n).lstrip().startswith("#"):
        lines.append(source.line(n).lstrip()[1:].strip())
        n -= 1
    return "\n".join(reversed(lines))


def signature(item: ast.Definition | ast.Function) -> str:
    kind = "def" if isinstance(item, ast.Function) else item.kind
    return f"{kind} {item.name}({', '.join(p.span.text for p in item.params)})"


def op_signature(name: str) -> str:
    op = USER_OPS[name]
    args = [a.name if a.default is REQUIRED else f"{a.name} = {fmt_value(a.default)}"  # type: ignore[arg-type]
            for a in op.args]
    return f"{name}({', '.join(args)})" if args else name


def definitions(analysis: Analysis, name: str) -> list[ast.Definition | ast.Function]:
    """The blocks, functions and networks called `name` in the buffer's program."""
    if analysis.program is None:
        return []
    found: list[ast.Definition | ast.Function] = []
    for f in analysis.program.files:
        # A network is visible in its own file only; blocks and functions everywhere.
        items: list[ast.Definition | ast.Function] = [*f.blocks, *f.functions]
        if f is analysis.program.main:
            items += f.networks
        found += [item for item in items if item.name == name]
    return found


def _definition(item: ast.Definition | ast.Function) -> str:
    text = f"```res\n{signature(item)}\n```"
    doc = doc_comment(item)
    if doc:
        text += f"\n\n{doc}"
    return text + f"\n\n*{item.span.source.path}:{item.span.line}*"


def _param_of(analysis: Analysis, target: str, name: str) -> str | None:
    """A call's keyword: the parameter it sets, with its default."""
    if target in USER_OPS:
        for a in USER_OPS[target].args:
            if a.name == name:
                default = "" if a.default is REQUIRED else f" = {fmt_value(a.default)}"  # type: ignore[arg-type]
                return f"```res\n{name}{default}\n```\nargument of the op `{target}`"
    if target in PRIMITIVES:
        for a in PRIMITIVES[target].args:
            if a.name == name:
                default = "" if a.default is REQUIRED else f" = {fmt_value(a.default)}"  # type: ignore[arg-type]
                return f"```res\n{name}{default}\n```\nargument of `{target}`"
    for item in definitions(analysis, target):
        for p in item.params:
            if p.name == name:
                return f"```res\n{p.span.text}\n```\nparameter of `{signature(item)}`"
    return None


def _name(analysis: Analysis, idx: FileIndex, occ: Occurrence) -> str | None:
    if occ.kind in ("op", "primitive"):
        doc = DOCS.get(occ.name)
        if occ.kind == "op" and (doc is None or not doc.startswith("```")):
            doc = f"```res\n{op_signature(occ.name)}\n```" + (f"\n\n{doc}" if doc else "")
        return doc
    if occ.kind in ("block", "function", "network"):
        items = definitions(analysis, occ.name)
        return "\n\n---\n\n".join(_definition(i) for i in items) or None
    if occ.kind == "kwarg" and occ.target is not None:
        return _param_of(analysis, occ.target, occ.name)
    if occ.kind == "use":
        file = (analysis.program.imports.get((idx.file.source.path, occ.name))
                if analysis.program is not None else None)
        where = f" from `{file.source.path}`" if file is not None else ""
        return f"imports `{occ.name}`{where}"
    target = idx.resolve(occ)
    if target is None:
        return None
    owner = target.owner
    where = f" of `{owner.name}`" if owner is not None else ""
    if target.kind == "param":
        param = next((p for p in owner.params if p.name == target.name), None) if owner else None
        text = param.span.text if param is not None else target.name
        extra = ""
        if isinstance(owner, ast.Definition) and owner.kind == "network":
            extra = f" (set it with `-D {target.name}=VALUE`)"
        return f"```res\n{text}\n```\nparameter{where}{extra}"
    if target.kind == "var":
        return f"`{target.name}`: the iteration's index, from 0{where}"
    if target.kind == "level":
        return f"`{target.name}`: a named level{where}"
    line = target.span.source.line(target.span.line).strip()
    return f"```res\n{line}\n```\nbinding{where}"


def _instances(instances: list[Instance]) -> str:
    if len(instances) == 1:
        i = instances[0]
        lines = [f"**{fmt_shape(i.shape)}** · {count(i.params)} parameters · "
                 f"{count(i.macs)} MACs"]
        if i.path:
            lines.append(f"module `{i.path}`")
        return "\n\n".join(lines)
    rows = ["| module | output | parameters | MACs |", "|---|---|---:|---:|"]
    for i in instances[:MAX_LISTED]:
        rows.append(f"| `{i.path or '(top)'}` | {fmt_shape(i.shape)} | {count(i.params)} | "
                    f"{count(i.macs)} |")
    if len(instances) > MAX_LISTED:
        rows.append(f"| … {len(instances) - MAX_LISTED:,} more | | | |")
    total_p = sum(i.params for i in instances)
    total_m = sum(i.macs for i in instances)
    return (f"{len(instances)} instances, {count(total_p)} parameters and "
            f"{count(total_m)} MACs in all\n\n" + "\n".join(rows))


def hover(analysis: Analysis, graphs: Analysis | None, line: int, column: int) -> str | None:
    """The hover text at 1-based `line`:`column` of the buffer; `graphs` is the last
    analysis that built (the buffer's own, or an earlier one while it has errors)."""
    if analysis.file is None:
        return None
    idx = analysis.index(analysis.file)
    parts: list[str] = []
    occ = idx.at(line, column)
    if occ is not None:
        text = _name(analysis, idx, occ)
        if text:
            parts.append(text)
    found = idx.statement_at(line, column)
    if found is not None and graphs is not None:
        instances = graphs.instances(found[0].span)
        if instances:
            parts.insert(0, _instances(instances))
    return "\n\n---\n\n".join(parts) or None
