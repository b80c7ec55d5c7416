"""The generated source → a live `nn.Module` with its initial (or imported) weights.

The module is built on PyTorch's `meta` device, so constructing it allocates and initialises
nothing; the weights (`Network.state()`: the one seeded initialiser every backend shares,
overlaid with a checkpoint when one is given) are then assigned without a copy.
"""

from __future__ import annotations

import linecache
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from resdsl.backends.torch_source import generate
from resdsl.diagnostics import SpecError, error
from resdsl.ir.graph import Graph

if TYPE_CHECKING:
    import numpy as np
    import torch


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
            "`check` and `info` work without it",
        )]) from None
    return torch


def module_class(graph: Graph) -> type[torch.nn.Module]:
    """Execute the generated source and return its network class."""
    generated = generate(graph)
    filename = f"<resdsl {graph.name}>"
    # Tracebacks and torch.compile's messages can show the generated lines.
    linecache.cache[filename] = (len(generated.source), None,
                                 generated.source.splitlines(True), filename)
    module = types.ModuleType(f"resdsl_generated_{graph.name}")
    exec(compile(generated.source, filename, "exec"), module.__dict__)
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


def export(model: torch.nn.Module, input_shape: tuple[int, ...]) -> Any:
    """`torch.export` of the model in eval mode, with a dynamic batch dimension."""
    torch = require_torch()
    model.eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    # An example batch of 2: PyTorch specialises sizes 0 and 1.
    example = torch.zeros(2, *input_shape)
    return torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}})
