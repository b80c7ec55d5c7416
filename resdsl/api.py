"""The Python API: one entry point, `load()`, and the `Network` it returns.

    net = resdsl.load("specs/resnet50.res", classes=10)
    net.counts().params             # parameters and MACs, without torch
    model = net.to_torch(seed=0)    # an nn.Module with torchvision's state_dict keys

Nothing here imports torch at module level: `import resdsl` stays light, and the torch backend
is imported when a method needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resdsl.diagnostics import Span, SpecError, error
from resdsl.ir.graph import Graph
from resdsl.ir.ops import Shape, Value, fmt_value
from resdsl.passes.counts import Counts, Row, rollup, state_shapes, state_values, totals
from resdsl.pipeline import Options, Result, build

_log = logging.getLogger("resdsl")

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import torch

    from resdsl.backends.dot_draw import Drawing
    from resdsl.backends.onnx_export import OnnxResult
    from resdsl.ir.paths import PathCounts
    from resdsl.weights import LoadReport
    from resdsl.weights.rename import Rename


@dataclass(frozen=True)
class WeightOptions:
    """Where a network's weights come from; every backend takes the same ones (the keyword
    arguments of `Network.state`, `to_torch`, `to_onnx` and `save_onnx`)."""

    seed: int = 0
    weights: str | Mapping[str, Any] | None = None
    strict: bool = True
    replace_head: bool = False
    zero_init_residual: bool = False
    max_params: int | None = None
    rename: Rename | None = None
    allow_nonfinite: bool = False


@dataclass(frozen=True)
class Network:
    """A checked network: its graph, its parameters and its backends."""

    path: str
    result: Result

    @property
    def name(self) -> str:
        return self.result.network.name

    @property
    def graph(self) -> Graph:
        return self.result.graph

    @property
    def params(self) -> Mapping[str, Value]:
        """The network parameters, defaults and overrides applied."""
        return self.result.params

    @property
    def input_shape(self) -> Shape:
        return self.graph.node(0).shape

    @property
    def output_shape(self) -> Shape:
        return self.graph.node(self.graph.output or 0).shape

    def counts(self) -> Counts:
        """Total parameters and multiply-accumulates (conv and linear layers)."""
        return totals(self.graph)

    def info(self, depth: int = 2) -> list[Row]:
        """Parameters, MACs and output shape per module, `depth` levels deep."""
        return rollup(self.graph, depth)

    def paths(self) -> PathCounts:
        """Input-to-output paths by length, the joins each enters through its body (Veit et
        al. 2016): `counts[k]` for a ResNet of n units is C(n, k). Graph only, no torch."""
        from resdsl.ir.paths import count_paths

        return count_paths(self.graph, self.result.network.name_span)

    def state_shapes(self) -> dict[str, Shape]:
        """Every state_dict key with its shape, in module order."""
        return state_shapes(self.graph)

    def init_state(
        self, seed: int = 0, *, zero_init_residual: bool = False
    ) -> dict[str, np.ndarray]:
        """The initial weights every backend starts from (numpy; deterministic in `seed`)."""
        from resdsl.weights import initial_state

        return initial_state(self.graph, seed, zero_init_residual=zero_init_residual)

    def state(
        self,
        seed: int = 0,
        *,
        weights: str | Mapping[str, Any] | None = None,
        strict: bool = True,
        replace_head: bool = False,
        rename: Rename | None = None,
        allow_nonfinite: bool = False,
        zero_init_residual: bool = False,
        max_params: int | None = None,
    ) -> tuple[dict[str, np.ndarray], LoadReport | None]:
        """Every state_dict key's value: `init_state(seed)`, overlaid with `weights` (a
        `.pth`/`.safetensors` path or a state_dict) when given, and the report of that load.
        `rename` renames the checkpoint's keys before they are matched ({pattern:
        replacement}, regular expressions); `allow_nonfinite=True` loads NaN or infinite
        weights instead of refusing them (E0608). docs/api.md §Importing weights.

        Refused (SpecError E0701) before anything is allocated when the network holds more
        than `max_params` values (default 2·10⁹)."""
        return self.state_from(WeightOptions(seed, weights, strict, replace_head,
                                             zero_init_residual, max_params, rename,
                                             allow_nonfinite))

    def state_from(self, options: WeightOptions) -> tuple[dict[str, np.ndarray],
                                                          LoadReport | None]:
        """`state(...)` with its arguments gathered in `options`."""
        from resdsl.weights import load_state

        self.check_size(options)
        state = self.init_state(options.seed, zero_init_residual=options.zero_init_residual)
        if options.weights is None:
            return state, None
        loaded, report = load_state(self.graph, options.weights, strict=options.strict,
                                    replace_head=options.replace_head, rename=options.rename,
                                    allow_nonfinite=options.allow_nonfinite)
        state.update(loaded)
        return state, report

    def check_size(self, options: WeightOptions) -> None:
        """Refuse (E0701) a network above `options.max_params`, from the graph alone."""
        check_size(self.graph, options.max_params, self.result.network.name_span)

    def to_torch(
        self,
        seed: int = 0,
        *,
        weights: str | Mapping[str, Any] | None = None,
        strict: bool = True,
        replace_head: bool = False,
        rename: Rename | None = None,
        allow_nonfinite: bool = False,
        zero_init_residual: bool = False,
        max_params: int | None = None,
    ) -> torch.nn.Module:
        """An `nn.Module` with the spec's module tree (its state_dict keys) and a generated
        forward, holding `state(...)`'s weights. In training mode, like torchvision's
        constructors."""
        from resdsl.backends.torch_module import build_module, require_torch

        options = WeightOptions(seed, weights, strict, replace_head, zero_init_residual,
                                max_params, rename, allow_nonfinite)
        # The size limit first: refusing a huge network must not wait for torch to import.
        self.check_size(options)
        require_torch()
        state, report = self.state_from(options)
        if report is not None and report.reinitialised:
            _log.warning("%s", report.summary())
        return build_module(self.graph, state)

    def to_python(self) -> str:
        """Standalone Python source of the model: imports only torch."""
        from resdsl.backends.torch_source import generate

        return generate(self.graph).source

    def to_onnx(
        self,
        seed: int = 0,
        *,
        weights: str | Mapping[str, Any] | None = None,
        strict: bool = True,
        replace_head: bool = False,
        rename: Rename | None = None,
        allow_nonfinite: bool = False,
        zero_init_residual: bool = False,
        max_params: int | None = None,
        opset: int | None = None,
        fold_bn: bool = False,
    ) -> onnx.ModelProto:
        """The ONNX model (an `onnx.ModelProto`), emitted from the graph without torch,
        holding `state(...)`'s weights: the same `seed` gives `to_torch(seed)`'s. `opset`
        13-21 (default 17); `fold_bn` folds each BN that follows a conv into it."""
        from resdsl.backends.onnx_export import compile_network

        model, _, _ = compile_network(
            self, WeightOptions(seed, weights, strict, replace_head, zero_init_residual,
                                max_params, rename, allow_nonfinite), opset=opset,
            fold_bn=fold_bn)
        return model.proto

    def save_onnx(
        self,
        path: str,
        seed: int = 0,
        *,
        weights: str | Mapping[str, Any] | None = None,
        strict: bool = True,
        replace_head: bool = False,
        rename: Rename | None = None,
        allow_nonfinite: bool = False,
        zero_init_residual: bool = False,
        max_params: int | None = None,
        opset: int | None = None,
        fold_bn: bool = False,
        verify: bool = False,
    ) -> OnnxResult:
        """Write `to_onnx(...)` to `path` atomically (weights over 2 GB go to `path.data`);
        `verify=True` checks the file and runs it in ONNX Runtime (against the PyTorch
        backend when torch is installed) before it is put in place."""
        from resdsl.backends.onnx_export import save

        return save(self, path, WeightOptions(seed, weights, strict, replace_head,
                                              zero_init_residual, max_params, rename,
                                              allow_nonfinite),
                    opset=opset, fold_bn=fold_bn, verify=verify)


    @property
    def files(self) -> list[str]:
        """The spec and every file it imports."""
        return [f.source.path for f in self.result.program.files]

    def save_python(self, path: str) -> None:
        """Write `to_python()` to `path`, atomically."""
        from resdsl.outputs import check_output, write_atomic

        check_output(path, self.files)
        source = self.to_python().encode("utf-8")
        write_atomic(path, lambda f: f.writelines([source]))

    def save_exported(self, path: str, model: torch.nn.Module) -> None:
        """Write a `torch.export` archive of `model` (eval mode, dynamic batch) to `path`,
        atomically; `torch.export.load(path)` reads it back without resdsl."""
        from resdsl.backends.torch_module import export, require_torch
        from resdsl.outputs import check_output, write_atomic

        torch = require_torch()
        check_output(path, self.files)
        program = export(model, self.input_shape)
        write_atomic(path, lambda f: torch.export.save(program, f))

    def draw(
        self,
        path: str | None = None,
        *,
        format: str | None = None,
        depth: str = "blocks",
        expand: bool = False,
        lr: bool = False,
        shapes: bool = True,
    ) -> Drawing:
        """The network's diagram, as `resdsl draw` draws it: `depth` "stages", "blocks" or
        "layers"; `expand` draws every copy of repeated blocks; `lr` left to right; `shapes`
        C×H×W on edges. `format` is svg (default), png, pdf or dot (the DOT text); with a
        `path`, its suffix chooses the format and the file is written atomically. Rendering
        uses Graphviz's `dot` when it is on PATH, else graphviz-pure (`resdsl[draw]`)."""
        from resdsl.backends.dot_draw import draw_graph, format_for
        from resdsl.backends.dot_source import DEPTHS, Settings

        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {', '.join(DEPTHS)}, not {depth!r}")
        settings = Settings(depth, expand, lr, shapes)  # type: ignore[arg-type]
        drawing = draw_graph(self.graph, settings, format_for(path, format))
        if path is not None:
            drawing.save(path, tuple(self.files))
        return drawing

    def _repr_svg_(self) -> str | None:
        """Jupyter shows a Network as its diagram (None, so its text, without Graphviz)."""
        try:
            return self.draw(format="svg")._repr_svg_()
        except SpecError:
            return None

    def describe_params(self) -> str:
        return ", ".join(f"{k}={fmt_value(v, full=True)}" for k, v in self.params.items())


# Parameters and buffers a network may hold before anything is allocated for it, unless the
# caller raises the limit: 2·10⁹ float32 values are 8 GB, more than a laptop has to spare.
MAX_PARAMS = 2_000_000_000


def check_size(graph: Graph, max_params: int | None = None, span: Span | None = None) -> None:
    """Refuse (E0701) a network whose state is larger than the limit, from the graph alone;
    `span` is where the network is defined."""
    limit = MAX_PARAMS if max_params is None else max_params
    size = state_values(graph)
    if size > limit:
        raise SpecError([error(
            "E0701",
            f"the network has {size:,} parameters and buffers, above the limit of {limit:,}",
            span,
            f"{size:,} parameters and buffers",
            help="check the widths and repeat counts; to build it anyway, raise the limit "
            "with `--max-params N` (`max_params=` in the API)",
            notes=(f"{size * 4 / 1e9:,.1f} GB as float32",),
        )])


def load(
    path: str,
    *,
    network: str | None = None,
    input_shape: Shape | str | None = None,
    **params: Any,
) -> Network:
    """Parse, check and elaborate the spec at `path`.

    `params` override the network's parameters, like `-D NAME=VALUE`, with Python values:
    `classes=10`, `blocks=[6, 12, 32, 32]`, `mode="sum"`.
    `input_shape` is `(C, H, W)` or `"3x224x224"`. Raises `SpecError` for a bad spec.
    """
    from resdsl.pipeline import parse_input_shape

    defines = {name: _as_text(value) for name, value in params.items()}
    shape = parse_input_shape(input_shape) if isinstance(input_shape, str) else input_shape
    return Network(path, build(path, Options(defines, shape, network)))


def _as_text(value: Any) -> str:
    """A Python value as the spec text `-D` takes (lists become spec lists)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_as_text(v) for v in value) + "]"
    if value is None or not isinstance(value, (bool, int, float, str)):
        raise TypeError(f"a network parameter is a number, bool, string or list, not {value!r}")
    return fmt_value(value)
