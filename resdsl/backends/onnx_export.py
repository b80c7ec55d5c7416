"""A `Network` → its ONNX model and file: what `Network.to_onnx()`, `Network.save_onnx()`
and `resdsl compile --to onnx` run.

The order matters for the limits: the size check (E0701) comes first, from the graph
alone, before onnx is imported or any weight is allocated; then the weights
(`Network.state()`, the initialiser every backend shares, and the checkpoint), then the
model, then the file (and `--verify`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resdsl.backends.onnx_model import Model, build_model, check_opset, require_onnx, save_model
from resdsl.ir.ops import fmt_shape

if TYPE_CHECKING:
    from resdsl.api import Network, WeightOptions
    from resdsl.verify import Verification
    from resdsl.weights import LoadReport


@dataclass(frozen=True)
class OnnxResult:
    """What `save_onnx` wrote and found."""

    paths: list[str]  # the model, and its external data file when there is one
    model: Model
    report: LoadReport | None  # the weights load, when weights were given
    verification: Verification | None

    @property
    def path(self) -> str:
        return self.paths[0]

    @property
    def size(self) -> int:
        """Bytes written: the files' sizes, or the model's own for one written through a
        device or FIFO (`-o /dev/stdout`), which has none."""
        return sum(os.stat(p).st_size if stat.S_ISREG(os.stat(p).st_mode)
                   else self.model.proto.ByteSize() for p in self.paths)


def metadata(net: Network, seed: int, weights: str | Mapping[str, Any] | None,
             fold_bn: bool) -> dict[str, str]:
    t = net.counts()
    if weights is None:
        source = f"initial (seed {seed})"
    elif isinstance(weights, str):
        source = Path(weights).name
    else:
        source = "a state_dict"
    return {
        "network": net.name,
        "resdsl_version": _version(),
        "parameters": str(t.params),
        "macs": str(t.macs),
        "network_parameters": net.describe_params(),
        "input_shape": fmt_shape(net.input_shape),
        "spec": Path(net.path).name,
        "weights": source,
        "fold_bn": "true" if fold_bn else "false",
    }


def _version() -> str:
    from resdsl import __version__

    return __version__


def compile_network(
    net: Network,
    options: WeightOptions | None = None,
    *,
    opset: int | None = None,
    fold_bn: bool = False,
    external: bool | None = None,
) -> tuple[Model, LoadReport | None, dict[str, Any]]:
    """The model, the weights' load report and the state it holds."""
    from resdsl.api import WeightOptions

    options = options or WeightOptions()
    opset = check_opset(opset)
    net.check_size(options)
    require_onnx()
    state, report = net.state_from(options)
    model = build_model(net.graph, state, spec_path=net.path,
                        metadata=metadata(net, options.seed, options.weights, fold_bn),
                        opset=opset,
                        fold_bn=fold_bn, external=external)
    return model, report, state


def save(
    net: Network,
    path: str,
    options: WeightOptions | None = None,
    *,
    opset: int | None = None,
    fold_bn: bool = False,
    verify: bool = False,
    external: bool | None = None,
) -> OnnxResult:
    from resdsl.outputs import check_output

    # The spec, the files it uses and the weights file: no output may replace them.
    weights = options.weights if options is not None else None
    inputs = [*net.files, *([str(weights)] if isinstance(weights, (str, Path)) else [])]
    check_output(path, inputs)
    check_opset(opset)
    if verify:
        from resdsl.api import WeightOptions
        from resdsl.backends.onnx_model import require_onnxruntime

        # Refuse a huge network before anything else, then make sure --verify can run
        # before the weights are made.
        net.check_size(options or WeightOptions())
        require_onnx()
        require_onnxruntime(net.result.options.spelling.given("verify", True))
    model, report, state = compile_network(net, options, opset=opset, fold_bn=fold_bn,
                                           external=external)
    checked: list[Verification] = []
    run = None
    if verify:
        from resdsl.verify import verify_file

        def run(staged: str) -> None:
            checked.append(verify_file(staged, net.graph, state))

    paths = save_model(model, path, run, inputs)
    return OnnxResult(paths, model, report, checked[0] if checked else None)
