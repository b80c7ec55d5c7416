"""The Python API: one entry point, `load()`, and the `Network` it returns.

    net = resdsl.load("specs/resnet50.res", classes=10)
    net.counts().params             # parameters and MACs, without torch
    model = net.to_torch(seed=0)    # an nn.Module with torchvision's state_dict keys

Nothing here imports torch at module level: `import resdsl` stays light, and the torch backend
is imported when a method needs it.

Every public function checks its arguments first (`resdsl.arguments`, the same rules as the
command line's): a bad one raises `ArgumentError` naming the keyword, never a TypeError from
deep inside.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, SupportsIndex

from resdsl import arguments
from resdsl.arguments import PYTHON, ArgumentError, Spelling
from resdsl.diagnostics import Span, SpecError, error
from resdsl.ir.features import FeatureInfo
from resdsl.ir.graph import Graph
from resdsl.ir.ops import Shape, Value, fmt_shape, fmt_value
from resdsl.passes.counts import Counts, Row, rollup, state_shapes, state_values, totals
from resdsl.pipeline import Options, Result, build

_log = logging.getLogger("resdsl")

# A checkpoint: its path, or a state_dict.
Weights = str | os.PathLike[str] | Mapping[str, Any] | None

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import torch

    from resdsl.backends.dot_draw import Drawing
    from resdsl.backends.onnx_export import OnnxResult
    from resdsl.backends.torch_hub import HubFolder
    from resdsl.ir.paths import PathCounts
    from resdsl.weights import LoadReport
    from resdsl.weights.rename import Rename


@dataclass(frozen=True)
class WeightOptions:
    """Where a network's weights come from; every backend takes the same ones (the keyword
    arguments of `Network.state`, `to_torch`, `to_onnx` and `save_onnx`). Checked when made:
    a bad field raises `ArgumentError`."""

    seed: int = 0
    weights: str | Mapping[str, Any] | None = None
    strict: bool = True
    replace_head: bool = False
    zero_init_residual: bool = False
    max_params: int | None = None
    rename: Rename | None = None
    allow_nonfinite: bool = False

    def __post_init__(self) -> None:
        # Kept normalised, so the backends see plain values: a numpy integer seed as an
        # int, an os.PathLike checkpoint as its str path.
        checked: dict[str, object] = {
            "seed": arguments.seed(self.seed),
            "weights": arguments.weights(self.weights),
            "strict": arguments.flag(self.strict, "strict"),
            "replace_head": arguments.flag(self.replace_head, "replace_head"),
            "zero_init_residual": arguments.flag(self.zero_init_residual, "zero_init_residual"),
            "max_params": arguments.max_params(self.max_params),
            "allow_nonfinite": arguments.flag(self.allow_nonfinite, "allow_nonfinite"),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, seed: SupportsIndex = 0, weights: Weights = None, strict: bool = True,
           replace_head: bool = False, zero_init_residual: bool = False,
           max_params: SupportsIndex | None = None, rename: Rename | None = None,
           allow_nonfinite: bool = False) -> WeightOptions:
        """The options from the API's keyword arguments, which may be numpy integers and
        os.PathLike paths: checked and normalised (ArgumentError for a bad one)."""
        return cls(arguments.seed(seed), arguments.weights(weights), strict, replace_head,
                   zero_init_residual, arguments.max_params(max_params), rename,
                   allow_nonfinite)


@dataclass(frozen=True, repr=False)
class Network:
    """A checked network: its graph, its parameters and its backends."""

    path: str
    result: Result

    def __repr__(self) -> str:
        # One line: the fields hold the whole program and graph, megabytes as a dataclass dump.
        return (f"<resdsl.Network {self.name}: {fmt_shape(self.input_shape)} → "
                f"{fmt_shape(self.output_shape)}, {self.counts().params:,} parameters, "
                f"from {self.path}>")

    def _repr_html_(self) -> str:
        """Jupyter shows a Network as a small table: its summary and its top-level modules
        (`info(depth=1)`, at most `_HTML_ROWS` of them); `draw()` shows the diagram."""
        e = html.escape
        t = self.counts()
        rows = self.info(depth=1)
        cell = '<td style="text-align:{}">{}</td>'
        body = [
            "<tr>" + cell.format("left", e(r.path)) + cell.format("left", e(r.kind))
            + cell.format("left", e(fmt_shape(r.shape))) + cell.format("right", f"{r.params:,}")
            + cell.format("right", f"{r.macs:,}") + "</tr>"
            for r in rows[:_HTML_ROWS]
        ]
        if len(rows) > _HTML_ROWS:
            body.append(f'<tr><td colspan="5">… {len(rows) - _HTML_ROWS:,} more</td></tr>')
        total = ('<tr><th style="text-align:left">total</th><td></td>'
                 + cell.format("left", e(fmt_shape(self.output_shape)))
                 + cell.format("right", f"{t.params:,}") + cell.format("right", f"{t.macs:,}")
                 + "</tr>")
        head = "".join(f"<th>{h}</th>" for h in ("module", "kind", "output", "params", "MACs"))
        return (f'<table><caption style="text-align:left"><b>{e(self.name)}</b> '
                f"({e(self.path)}): input {e(fmt_shape(self.input_shape))}, "
                f"{t.params:,} parameters, {t.macs / 1e9:.3f} GMACs</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}{total}</tbody></table>")

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

    @property
    def feature_info(self) -> list[FeatureInfo]:
        """The feature points, as timm's `feature_info`: each one's `module` (its module
        path), `num_chs`, `reduction` (stride from the input), `index` and `shape`
        (`.as_dict()` gives timm's dict). For a features network (`features()`), the points
        it returns, in output order; for the full network, every point `features()` can
        choose from (empty for a network without feature maps). Graph only, no torch."""
        if self.result.feature_info is not None:
            return list(self.result.feature_info)
        from resdsl.ir.features import feature_points

        return feature_points(self.graph)

    def features(self, out_indices: Iterable[SupportsIndex] | None = None) -> Network:
        """The backbone features of this network, as timm's `features_only=True,
        out_indices=...`: the network cut after the chosen feature points (`feature_info`,
        indexed from 0, negative from the last; None: all), each an output named by its
        module path, in the network's order. What the points are computed from is kept and
        the rest dropped: the state_dict holds the full network's keys up to the last point,
        and a full checkpoint loads into it (its keys beyond the cut are set aside). Raises
        SpecError E0740 for a network without feature maps, ArgumentError E0741 / E0742 for
        an index out of range or given twice."""
        from resdsl.pipeline import with_features

        if self.result.feature_info is not None:
            raise ArgumentError(
                "features() applies to a full network; this one is already its features "
                f"({', '.join(p.module for p in self.result.feature_info)}): call it on "
                "the network `load()` returned", "out_indices", out_indices)
        indices = arguments.out_indices(out_indices, self.result.options.spelling)
        return Network(self.path, with_features(self.result, indices))

    def counts(self) -> Counts:
        """Total parameters and multiply-accumulates (conv and linear layers)."""
        return totals(self.graph)

    def info(self, depth: SupportsIndex = 2) -> list[Row]:
        """Parameters, MACs and output shape per module, `depth` (at least 1) levels deep."""
        return rollup(self.graph, arguments.depth(depth))

    def paths(self) -> PathCounts:
        """Input-to-output paths by length, the joins each enters through its body (Veit et
        al. 2016): `counts[k]` for a ResNet of n units is C(n, k). Graph only, no torch."""
        from resdsl.ir.paths import count_paths

        return count_paths(self.graph, self.result.network.name_span)

    def state_shapes(self) -> dict[str, Shape]:
        """Every state_dict key with its shape, in module order."""
        return state_shapes(self.graph)

    def init_state(
        self, seed: SupportsIndex = 0, *, zero_init_residual: bool = False
    ) -> dict[str, np.ndarray]:
        """The initial weights every backend starts from (numpy; deterministic in `seed`)."""
        from resdsl.weights import initial_state

        seed = arguments.seed(seed)
        zero_init_residual = arguments.flag(zero_init_residual, "zero_init_residual")
        return initial_state(self.graph, seed, zero_init_residual=zero_init_residual)

    def state(
        self,
        seed: SupportsIndex = 0,
        *,
        weights: Weights = None,
        strict: bool = True,
        replace_head: bool = False,
        rename: Rename | None = None,
        allow_nonfinite: bool = False,
        zero_init_residual: bool = False,
        max_params: SupportsIndex | None = None,
    ) -> tuple[dict[str, np.ndarray], LoadReport | None]:
        """Every state_dict key's value: `init_state(seed)`, overlaid with `weights` (a
        `.pth`/`.safetensors` path or a state_dict) when given, and the report of that load.
        `rename` renames the checkpoint's keys before they are matched ({pattern:
        replacement}, regular expressions); `allow_nonfinite=True` loads NaN or infinite
        weights instead of refusing them (E0608). docs/api.md §Importing weights.

        Refused (SpecError E0701) before anything is allocated when the network holds more
        than `max_params` values (default 2·10⁹)."""
        return self.state_from(WeightOptions.of(seed, weights, strict, replace_head,
                                                zero_init_residual, max_params, rename,
                                                allow_nonfinite))

    def state_from(self, options: WeightOptions) -> tuple[dict[str, np.ndarray],
                                                          LoadReport | None]:
        """`state(...)` with its arguments gathered in `options`."""
        from resdsl.weights import load_state

        if not isinstance(options, WeightOptions):
            raise ArgumentError(f"options={arguments.show(options)}: must be a WeightOptions",
                                "options", options)
        self.check_size(options)
        state = self.init_state(options.seed, zero_init_residual=options.zero_init_residual)
        if options.weights is None:
            return state, None
        loaded, report = load_state(self.graph, options.weights, strict=options.strict,
                                    ignore=self.result.dropped_keys,
                                    replace_head=options.replace_head, rename=options.rename,
                                    allow_nonfinite=options.allow_nonfinite,
                                    spelling=self.result.options.spelling)
        state.update(loaded)
        return state, report

    def check_size(self, options: WeightOptions) -> None:
        """Refuse (E0701) a network above `options.max_params`, from the graph alone."""
        check_size(self.graph, options.max_params, self.result.network.name_span,
                   self.result.options.spelling)

    def to_torch(
        self,
        seed: SupportsIndex = 0,
        *,
        weights: Weights = None,
        strict: bool = True,
        replace_head: bool = False,
        rename: Rename | None = None,
        allow_nonfinite: bool = False,
        zero_init_residual: bool = False,
        max_params: SupportsIndex | None = None,
    ) -> torch.nn.Module:
        """An `nn.Module` with the spec's module tree (its state_dict keys) and a generated
        forward, holding `state(...)`'s weights. In training mode, like torchvision's
        constructors."""
        from resdsl.backends.torch_module import build_module, require_torch

        options = WeightOptions.of(seed, weights, strict, replace_head, zero_init_residual,
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
        seed: SupportsIndex = 0,
        *,
        weights: Weights = None,
        strict: bool = True,
        replace_head: bool = False,
        rename: Rename | None = None,
        allow_nonfinite: bool = False,
        zero_init_residual: bool = False,
        max_params: SupportsIndex | None = None,
        opset: SupportsIndex | None = None,
        fold_bn: bool = False,
    ) -> onnx.ModelProto:
        """The ONNX model (an `onnx.ModelProto`), emitted from the graph without torch,
        holding `state(...)`'s weights: the same `seed` gives `to_torch(seed)`'s. `opset`
        13-21 (default 17); `fold_bn` folds each BN that follows a conv into it."""
        from resdsl.backends.onnx_export import compile_network

        options = WeightOptions.of(seed, weights, strict, replace_head, zero_init_residual,
                                   max_params, rename, allow_nonfinite)
        model, _, _ = compile_network(self, options, opset=arguments.opset(opset),
                                      fold_bn=arguments.flag(fold_bn, "fold_bn"))
        return model.proto

    def save_onnx(
        self,
        path: str | os.PathLike[str],
        seed: SupportsIndex = 0,
        *,
        weights: Weights = None,
        strict: bool = True,
        replace_head: bool = False,
        rename: Rename | None = None,
        allow_nonfinite: bool = False,
        zero_init_residual: bool = False,
        max_params: SupportsIndex | None = None,
        opset: SupportsIndex | None = None,
        fold_bn: bool = False,
        verify: bool = False,
    ) -> OnnxResult:
        """Write `to_onnx(...)` to `path` atomically (weights over 2 GB go to a file beside it);
        `verify=True` checks the file and runs it in ONNX Runtime (against the PyTorch
        backend when torch is installed) before it is put in place."""
        from resdsl.backends.onnx_export import save

        options = WeightOptions.of(seed, weights, strict, replace_head, zero_init_residual,
                                   max_params, rename, allow_nonfinite)
        return save(self, arguments.path(path), options, opset=arguments.opset(opset),
                    fold_bn=arguments.flag(fold_bn, "fold_bn"),
                    verify=arguments.flag(verify, "verify"))


    @property
    def files(self) -> list[str]:
        """The spec and every file it imports."""
        return [f.source.path for f in self.result.program.files]

    def save_python(self, path: str | os.PathLike[str]) -> None:
        """Write `to_python()` to `path`, atomically."""
        from resdsl.outputs import check_output, write_atomic

        path = arguments.path(path)
        check_output(path, self.files)
        source = self.to_python().encode("utf-8")
        write_atomic(path, lambda f: f.writelines([source]))

    def save_exported(self, path: str | os.PathLike[str], model: torch.nn.Module) -> None:
        """Write a `torch.export` archive of `model` (eval mode, dynamic batch) to `path`,
        atomically; `torch.export.load(path)` reads it back without resdsl."""
        from resdsl.backends.torch_module import export, require_torch, write_archive
        from resdsl.outputs import check_output, write_atomic

        path = arguments.path(path)
        torch = require_torch()
        if not isinstance(model, torch.nn.Module):
            raise ArgumentError(f"model={arguments.show(model)}: must be a torch.nn.Module "
                                "(from `to_torch()`)", "model", model)
        check_output(path, self.files)
        program = export(model, self.input_shape)
        write_atomic(path, lambda f: write_archive(program, f))

    def save_hub(
        self,
        path: str | os.PathLike[str],
        seed: SupportsIndex = 0,
        *,
        weights: Weights = None,
        strict: bool = True,
        replace_head: bool = False,
        rename: Rename | None = None,
        allow_nonfinite: bool = False,
        zero_init_residual: bool = False,
        max_params: SupportsIndex | None = None,
    ) -> HubFolder:
        """Write a torch.hub folder to `path`: hubconf.py (an entry point named after the
        network, taking `pretrained`, `num_classes` and `in_chans`), the generated source
        and, with `weights`, a checkpoint of `state(seed, weights=...)`, so that
        `torch.hub.load(path, name, source="local")` works without resdsl. Without weights
        no torch is needed, and `pretrained=True` is refused. A folder is written as a file
        is, never half-written (`resdsl.backends.torch_hub`)."""
        from resdsl.backends.torch_hub import check_folder, write_hub
        from resdsl.backends.torch_source import generate

        target = arguments.path(path)
        options = WeightOptions.of(seed, weights, strict, replace_head, zero_init_residual,
                                   max_params, rename, allow_nonfinite)
        inputs = [*self.files, *([options.weights] if isinstance(options.weights, str)
                                 else [])]
        check_folder(target, inputs)  # before the work: a folder it cannot write is refused
        state, report = None, None
        if options.weights is not None:
            from resdsl.backends.torch_module import require_torch

            self.check_size(options)
            require_torch()
            state, report = self.state_from(options)
            if report is not None and report.reinitialised:
                _log.warning("%s", report.summary())
        folder = write_hub(target, self.graph, generate(self.graph), state, self.path,
                           self.params, inputs)
        return replace(folder, report=report)

    def draw(
        self,
        path: str | os.PathLike[str] | None = None,
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
        `path`, its suffix chooses the format (.svg, .png, .pdf, .dot or .gv; none: svg; any
        other: ArgumentError) and the file is written atomically. Rendering uses Graphviz's
        `dot` when it is on PATH, else graphviz-pure (`resdsl[draw]`)."""
        from resdsl.backends.dot_draw import draw_graph, format_for
        from resdsl.backends.dot_source import DEPTHS, Settings

        settings = Settings(
            arguments.choice(depth, "depth", DEPTHS),  # type: ignore[arg-type]
            arguments.flag(expand, "expand"), arguments.flag(lr, "lr"),
            arguments.flag(shapes, "shapes"))
        target = None if path is None else arguments.path(path)
        drawing = draw_graph(self.graph, settings, format_for(target, format, PYTHON),
                             spelling=PYTHON)
        if target is not None:
            drawing.save(target, tuple(self.files))
        return drawing

    def describe_params(self) -> str:
        return ", ".join(f"{k}={fmt_value(v, full=True)}" for k, v in self.params.items())


# Rows of a Network's notebook table (its top-level modules): enough for every spec of the
# library, and a bound for a network written with thousands of top-level layers.
_HTML_ROWS = 40
# Parameters and buffers a network may hold before anything is allocated for it, unless the
# caller raises the limit: 2·10⁹ float32 values are 8 GB, more than a laptop has to spare.
MAX_PARAMS = 2_000_000_000


def check_size(graph: Graph, max_params: SupportsIndex | None = None, span: Span | None = None,
               spelling: Spelling = PYTHON) -> None:
    """Refuse (E0701) a network whose state is larger than the limit, from the graph alone;
    `span` is where the network is defined, `spelling` how the help names the limit."""
    checked = arguments.max_params(max_params, spelling)
    limit = MAX_PARAMS if checked is None else checked
    size = state_values(graph)
    if size > limit:
        raise SpecError([error(
            "E0701",
            f"the network has {size:,} parameters and buffers, above the limit of {limit:,}",
            span,
            f"{size:,} parameters and buffers",
            help="check the widths and repeat counts; to build it anyway, raise the limit "
            f"with `{spelling.usage('max_params', 'N')}`",
            notes=(f"{size * 4 / 1e9:,.1f} GB as float32",),
        )])


def load(
    path: str | os.PathLike[str],
    *,
    network: str | None = None,
    input_shape: Sequence[SupportsIndex] | str | None = None,
    **params: Any,
) -> Network:
    """Parse, check and elaborate the spec at `path`.

    `params` override the network's parameters, like `-D NAME=VALUE`, with Python values:
    `classes=10`, `blocks=[6, 12, 32, 32]`, `mode="sum"`.
    `input_shape` is `(C, H, W)`, `(C,)` or `"3x224x224"`. Raises `SpecError` for a bad spec,
    `ArgumentError` for a bad argument (an unknown network or parameter among them).
    """
    spec = arguments.path(path)
    return Network(spec, build(spec, _options(network, input_shape, params)))


def loads(
    text: str,
    path: str | os.PathLike[str] = "<string>",
    *,
    network: str | None = None,
    input_shape: Sequence[SupportsIndex] | str | None = None,
    **params: Any,
) -> Network:
    """Parse, check and elaborate the spec whose source is `text`, as `load` does a file's.

    `path` names the source in diagnostics and places it: its `use`s resolve relative to
    `path`'s folder, as for a file there (the working folder for the default `"<string>"`).
    Nothing is read at `path` itself, so an editor checks its unsaved buffer of a spec on
    disk. Every limit of a file applies (its size, UTF-8, tokens); the other arguments are
    `load`'s.
    """
    source = arguments.source(text)
    spec = arguments.path(path)
    return Network(spec, build(spec, _options(network, input_shape, params), source))


def _options(network: object, input_shape: object, params: Mapping[str, Any]) -> Options:
    """`load`'s and `loads`'s arguments, checked, as the pipeline's options."""
    defines = {name: arguments.parameter_text(name, value) for name, value in params.items()}
    return Options(defines, arguments.input_shape(input_shape), arguments.network(network),
                   PYTHON)
