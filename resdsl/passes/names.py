"""Names the backends cannot take: checked on every graph, so that `check` refuses a spec
whose names would break a backend, not only `compile`.

Output names (E0506) are the graph outputs' names in ONNX, where every value has one name: an
output cannot be called `input` (the graph input) or as a state_dict key (an initializer).

Module names (E0703):
Every part of a module path (`layer1`, `0`, `downsample`) becomes an attribute of an
`nn.Module` in the generated source, and `nn.Module` already has attributes of its own: its
methods (`train`, `forward`, `to`), its bookkeeping (`_modules`, `_parameters`, `training`) and
Python's (`__init__`, `__dict__`). A module under one of those names would replace it
(`self.train = nn.Conv2d(...)`) or be refused by `add_module`, so the spec is refused instead.

The rule: a name is reserved when it is an attribute of `nn.Module()` (its class's attributes
and the instance's own, `RESERVED`), or when it starts with `__` (Python's special names,
whichever a future version adds, and names Python mangles inside a class body: `self.__x` in
class `C` is `self._C__x`). `RESERVED` is written out so that checking needs no torch;
`tests/test_torch_backend.py` derives the set from the installed torch and fails when this list
no longer covers it. The network's own class adds a few (`NETWORK_ATTRIBUTES`: its
`residual_units()`, `in_chans`), reserved for its top-level modules only.
"""

from __future__ import annotations

from dataclasses import replace

from resdsl.diagnostics import Diagnostic, Span, SpecError, error
from resdsl.ir.graph import Graph
from resdsl.passes.counts import state_shapes

# The ONNX graph input's name (resdsl.backends.onnx_model.INPUT; `ir`-side code imports no
# backend).
ONNX_INPUT = "input"

# `dir(nn.Module())` and `vars(nn.Module())` of torch 2.14, less the names starting with `__`.
RESERVED = frozenset({
    # the public methods and attributes
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init",
    "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr",
    "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule",
    "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children",
    "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook",
    "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule",
    "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu",
    "zero_grad",
    # the private methods
    "_apply", "_call_impl", "_compiled_call_impl", "_get_backward_hooks",
    "_get_backward_pre_hooks", "_get_name", "_load_from_state_dict",
    "_maybe_warn_non_full_backward_hook", "_named_members", "_register_load_state_dict_pre_hook",
    "_register_state_dict_hook", "_replicate_for_data_parallel", "_save_to_state_dict",
    "_slow_forward", "_version", "_wrapped_call_impl",
    # each instance's own state: where the module keeps its children, parameters and hooks
    "_backward_hooks", "_backward_pre_hooks", "_buffers", "_forward_hooks",
    "_forward_hooks_always_called", "_forward_hooks_with_kwargs", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_is_full_backward_hook", "_load_state_dict_post_hooks",
    "_load_state_dict_pre_hooks", "_modules", "_non_persistent_buffers_set", "_parameters",
    "_state_dict_hooks", "_state_dict_pre_hooks",
})
# What the generated network class defines besides nn.Module's attributes
# (resdsl.backends.torch_units): names its top-level modules cannot take.
NETWORK_ATTRIBUTES = frozenset({"residual_units", "residual_unit_paths", "in_chans"})
# Diagnostics shown at most; the last one's note counts the rest.
MAX_REPORTED = 10


def is_reserved(name: str) -> bool:
    """Whether `name` (one part of a module path) cannot be an attribute of an nn.Module."""
    return name.startswith("__") or name in RESERVED


def check_module_names(graph: Graph) -> None:
    """Refuse every module path part that is reserved (E0703), each name once, at the
    statement that named it. Each distinct path is looked at once: linear in the graph."""
    seen: set[str] = set()
    found: dict[str, tuple[str, Span | None]] = {}
    for node in graph.nodes():
        path = node.path
        # Walk up from the node's own path until a level already looked at.
        while path and path not in seen:
            seen.add(path)
            parent, _, name = path.rpartition(".")
            top = not parent and name in NETWORK_ATTRIBUTES
            if (is_reserved(name) or top) and name not in found:
                scope = graph.scopes.get(path)
                found[name] = (path, scope.span if scope is not None and scope.span is not None
                               else node.span)
            path = parent
    if not found:
        return
    shown = list(found.items())[:MAX_REPORTED]
    rest = len(found) - len(shown)
    diagnostics = [_reserved(name, path, span) for name, (path, span) in shown]
    if rest:
        last = diagnostics[-1]
        diagnostics[-1] = replace(last, notes=(
            *last.notes, f"and {rest:,} more reserved name{'s' if rest > 1 else ''}"))
    raise SpecError(diagnostics)


def _reserved(name: str, path: str, span: Span | None) -> Diagnostic:
    if name.startswith("__"):
        why = "names starting with `__` are Python's own (and mangled inside a class)"
        label = f"`{path}` would be a special Python name"
    elif name in NETWORK_ATTRIBUTES and "." not in path:
        why = f"the generated network class has an attribute `{name}`"
        label = f"`{path}` would shadow the network's `{name}`"
    else:
        why = f"nn.Module has an attribute `{name}`"
        label = f"`{path}` would shadow nn.Module.{name}"
    return error(
        "E0703",
        f"`{name}` cannot name a module in PyTorch: {why}",
        span,
        label,
        help="rename the statement (its name becomes a module name and a state_dict key)",
    )


def check_output_names(graph: Graph) -> None:
    """Refuse an output named as the ONNX graph input or as a state_dict key (E0506)."""
    if not graph.outputs:
        return
    keys = set(state_shapes(graph))
    diagnostics = []
    for name in graph.outputs:
        if name == ONNX_INPUT:
            why, label = "it is the network input's name in ONNX", "the ONNX input's name"
        elif name in keys:
            why, label = "it is a state_dict key", "a parameter's or buffer's name"
        else:
            continue
        diagnostics.append(error(
            "E0506",
            f"an output cannot be named `{name}`: {why}",
            graph.output_spans.get(name),
            label,
            help="rename the output: in ONNX the graph's input, its outputs and its weights "
                 "share one namespace",
        ))
    if diagnostics:
        raise SpecError(diagnostics[:MAX_REPORTED])
