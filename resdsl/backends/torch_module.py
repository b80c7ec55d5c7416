"""The generated source → a live `nn.Module` with its initial (or imported) weights.

The module is built on PyTorch's `meta` device, so constructing it allocates and initialises
nothing; the weights then come from the one seeded initialiser every backend shares
(`resdsl.weights.initial_state`), overlaid with a checkpoint when one is given, and are
assigned without a copy. Building is refused before any of that when the network is larger
than a limit.
"""

from __future__ import annotations

import linecache
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from resdsl.backends.torch_source import generate
from resdsl.diagnostics import SpecError, error
from resdsl.ir.graph import Graph
from resdsl.ir.ops import OPS

if TYPE_CHECKING:
    import numpy as np
    import torch

    from resdsl.api import Network

# Parameters and buffers a built module may hold, unless the caller raises it: 2·10⁹ float32
# values are 8 GB, more than a laptop has to spare.
MAX_PARAMS = 2_000_000_000


def require_torch() -> Any:
    """Import torch, or explain how to install it."""
    try:
        import torch
    except ImportError:
        raise SpecError([error(
            "E0702",
            "this needs PyTorch, which is not installed",
            None,
            help="install it with `pip install resdsl[torch]` (or `pip install torch`); "
            "`check`, `info` and `--to onnx` work without it",
        )]) from None
    return torch


def state_size(graph: Graph) -> int:
    """Values in every parameter and buffer, counted from the graph without allocating."""
    total = 0
    for node in graph.nodes():
        ins = [graph.node(i).shape for i in node.inputs]
        total += sum(s.size for s in OPS[node.op].state(ins, node.args, node.shape))
    return total


def check_size(graph: Graph, max_params: int | None) -> None:
    limit = MAX_PARAMS if max_params is None else max_params
    size = state_size(graph)
    if size > limit:
        raise SpecError([error(
            "E0701",
            f"the network has {size:,} parameters and buffers, above the limit of {limit:,}",
            None,
            help="check the widths and repeat counts; to build it anyway, raise the limit "
            "with `--max-params N` (`max_params=` in the API)",
            notes=(f"{size * 4 / 1e9:,.1f} GB as float32",),
        )])


def module_class(graph: Graph) -> type[torch.nn.Module]:
    """Execute the generated source and return its network class."""
    generated = generate(graph)
    filename = f"<resdsl {graph.name}>"
    # Tracebacks and torch.compile's messages can show the generated lines.
    linecache.cache[filename] = (len(generated.source), None,
                                 generated.source.splitlines(True), filename)
    module = types.ModuleType(f"resdsl_generated_{graph.name}")
    exec(compile(generated.source, filename, "exec"), module.__dict__)  # noqa: S102
    cls: type[torch.nn.Module] = module.__dict__[generated.class_name]
    return cls


def build_module(graph: Graph, state: Mapping[str, np.ndarray]) -> torch.nn.Module:
    """The network's module, holding `state` (every state_dict key, as numpy arrays)."""
    torch = require_torch()
    cls = module_class(graph)
    with torch.device("meta"):
        model = cls()
    model.load_state_dict(_tensors(torch, state), strict=True, assign=True)
    return model


def _tensors(torch: Any, state: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    # from_numpy shares the array's memory; a read-only array (a memory-mapped checkpoint)
    # is copied so that training can write to it.
    return {k: torch.from_numpy(v if v.flags.writeable else v.copy()) for k, v in state.items()}
