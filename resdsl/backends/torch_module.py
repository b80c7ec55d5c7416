"""The generated source → a live `nn.Module` with its initial (or imported) weights.

The module is built on PyTorch's `meta` device, so constructing it allocates and initialises
nothing; the weights (`Network.state()`: the one seeded initialiser every backend shares,
overlaid with a checkpoint when one is given) are then assigned without a copy.
"""

from __future__ import annotations

import functools
import hashlib
import io
import linecache
import sys
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

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
    except ModuleNotFoundError as exc:
        if exc.name != "torch":  # torch is there, but something it imports is not
            raise _broken_torch(exc) from None
        raise SpecError([error(
            "E0702",
            "this needs PyTorch, which is not installed",
            None,
            help="install it with `pip install resdsl[torch]` (or `pip install torch`); "
            "`check` and `info` work without it",
        )]) from None
    except Exception as exc:  # out of memory, a broken install: installing would not help
        raise _broken_torch(exc) from None
    return torch


def _broken_torch(exc: BaseException) -> SpecError:
    from resdsl.weights.io import out_of_memory

    reason = (str(exc).strip().splitlines() or [""])[0]
    help = ("importing torch ran out of memory (it maps hundreds of MB of libraries): run with "
            "more memory (a higher `ulimit -v` or container limit)" if out_of_memory(exc)
            else "repair the installation (`pip install --force-reinstall torch`)")
    return SpecError([error(
        "E0610",
        "this needs PyTorch, which is installed but failed to import",
        None,
        notes=(f"`import torch` raised {type(exc).__name__}" + (f": {reason}" if reason else ""),),
        help=help,
    )])


def module_class(graph: Graph) -> type[torch.nn.Module]:
    """Execute the generated source and return its network class."""
    generated = generate(graph)
    return _load_source(generated.source, generated.class_name)


@functools.lru_cache(maxsize=64)
def _load_source(source: str, class_name: str) -> type[torch.nn.Module]:
    """Run the source as a module named after its hash, registered in `sys.modules`, so
    that pickle can name its classes; the root class pickles as (source, state), so a model
    also unpickles in a process that never built it (resdsl must be importable there)."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    name = f"resdsl_generated_{digest}"
    filename = f"<resdsl {name}>"
    # Tracebacks and torch.compile's messages can show the generated lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    exec(compile(source, filename, "exec"), module.__dict__)
    sys.modules[name] = module
    cls: type[torch.nn.Module] = module.__dict__[class_name]

    def reduce(self: torch.nn.Module) -> tuple[Any, ...]:
        # keep_vars: the Parameter objects themselves, so requires_grad survives. A timm
        # protocol model's head may have been reset since: its class count and pool go too.
        head = ((self.num_classes, self.pool_type) if hasattr(self, "timm_spec") else None)
        # A first conv built for other channels (the constructor's `in_chans`) too.
        kwargs = {"in_chans": self.__dict__["in_chans"]} if "in_chans" in self.__dict__ else {}
        return (_rebuild, (source, class_name, self.state_dict(keep_vars=True), self.training,
                           head, kwargs))

    cls.__reduce__ = reduce  # type: ignore[assignment,method-assign]
    return cls


def _rebuild(source: str, class_name: str, state: Mapping[str, Any],
             training: bool, head: tuple[int, str] | None = None,
             kwargs: Mapping[str, Any] | None = None) -> torch.nn.Module:
    """Unpickle a network: its class from its source, its head as it was reset
    (`reset_classifier`), then its state."""
    torch = require_torch()
    with torch.device("meta"):
        model = _load_source(source, class_name)(**(kwargs or {}))
        protocol: Any = model  # a TimmProtocol when `head` is given
        if head is not None and head != (protocol.num_classes, protocol.pool_type):
            protocol.reset_classifier(*head)
    # load_state_dict(assign=True) gives the tensors the new module's requires_grad (True):
    # note the frozen layers first, and freeze them again.
    frozen = {k for k, v in state.items() if isinstance(v, torch.nn.Parameter)
              and not v.requires_grad}
    model.load_state_dict(state, strict=True, assign=True)
    for key, param in model.named_parameters():
        param.requires_grad_(key not in frozen)
    return model.train(training)


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


def write_archive(program: Any, f: BinaryIO) -> None:
    """Write the `torch.export` archive of `program` to `f`. torch's C++ zip writer aborts
    the process (SIGABRT) when a write under it fails, a full disk or a Python exception
    alike: it writes into memory (a C-level buffer, which runs no Python code and so no
    signal handler), and the bytes are then written to `f` here, where an OSError is an
    ordinary exception."""
    from resdsl.outputs import write_chunks

    torch = require_torch()
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    write_chunks(f, buffer.getbuffer())
