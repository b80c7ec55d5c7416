"""`--verify`: check a written ONNX file and run it.

1. `onnx.checker.check_model(full_check=True)`, which runs strict shape inference too;
2. ONNX Runtime on a random input (a batch of 2, seeded, so that the batch axis is
   exercised), whose output must have the network's shape and be finite;
3. when torch is installed, the PyTorch backend's module with the same weights on the same
   input, in eval mode: every output within rtol 1e-4 and atol 1e-5·max(1, max|y|)
   (DESIGN.md §8). Without torch the report says that no comparison was made.

A failure is E0713: the file is then not put in place (`onnx_model.save_model` verifies the
staged file before renaming it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from resdsl.diagnostics import SpecError, error
from resdsl.ir.graph import Graph
from resdsl.ir.ops import fmt_shape

RTOL = 1e-4
ATOL = 1e-5
BATCH = 2
SEED = 0


@dataclass(frozen=True)
class Verification:
    runtime: str  # "ONNX Runtime 1.32.0"
    batch: int
    output_shape: tuple[int, ...]
    max_output: float  # max |y| of ONNX Runtime's output
    # The comparison with the PyTorch backend; None without torch.
    torch: str | None = None
    max_diff: float | None = None
    # The network's named outputs, every one checked; empty for one unnamed output (whose
    # shape is `output_shape`, else the first's).
    outputs: tuple[str, ...] = ()

    def summary(self) -> str:
        checked = "onnx.checker (full) passed"
        shown = (f"{len(self.outputs)} outputs, " + ", ".join(self.outputs) if self.outputs
                 else f"output {fmt_shape((self.batch, *self.output_shape))}")
        if self.torch is None or self.max_diff is None:
            return (f"verified: {checked}; {self.runtime} ran a random batch of {self.batch} "
                    f"({shown}, finite); "
                    "PyTorch is not "
                    "installed, so there is no comparison with the PyTorch backend "
                    "(`pip install resdsl[torch]` adds it)")
        every = f", all {len(self.outputs)} outputs" if self.outputs else ""
        return (f"verified: {checked}; {self.runtime} matches the PyTorch backend "
                f"({self.torch}) on a random batch of {self.batch}{every}: max |Δ| "
                f"{self.max_diff:.1e}, max |y| {self.max_output:.3g}")

    def as_json(self) -> dict[str, object]:
        return {"runtime": self.runtime, "batch": self.batch,
                "output_shape": list(self.output_shape), "max_output": self.max_output,
                "torch": self.torch, "max_diff": self.max_diff,
                "outputs": list(self.outputs)}


_BUG = ("this is a bug in resdsl or in ONNX Runtime, not in your spec: please report it with "
        "the spec; the model file was not written")


def _fail(message: str, notes: tuple[str, ...], help: str = _BUG) -> SpecError:
    return SpecError([error("E0713", message, None, help=help, notes=notes)])


def session(path: str, threads: int = 0) -> Any:
    """An ONNX Runtime CPU session that does not spin its threads after a run (so that
    torch in the same process keeps its speed)."""
    from resdsl.backends.onnx_model import require_onnxruntime

    ort = require_onnxruntime("running the model")
    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def sample_input(shape: tuple[int, ...], batch: int = BATCH, seed: int = SEED) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *shape), dtype=np.float32)


def verify_file(path: str, graph: Graph, state: Mapping[str, np.ndarray]) -> Verification:
    """Check and run the ONNX file at `path` (see the module docstring); raise E0713."""
    import onnx

    from resdsl.backends.onnx_model import require_onnxruntime

    ort = require_onnxruntime("--verify")
    try:
        onnx.checker.check_model(path, full_check=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _fail("the ONNX model fails onnx.checker", (first[:300],)) from None
    in_shape = graph.node(0).shape
    results = [(name, graph.node(nid).shape) for name, nid in graph.results()]
    names = tuple(name for name, _ in results if name is not None)
    out_shape = results[0][1]
    x = sample_input(in_shape)
    sess = session(path)
    ys = [np.asarray(y) for y in sess.run(None, {"input": x})]
    runtime = f"ONNX Runtime {ort.__version__}"
    if len(ys) != len(results):
        raise _fail("ONNX Runtime gives the wrong number of outputs",
                    (f"{len(ys)}, expected {len(results)}",))
    for y, (name, shape) in zip(ys, results, strict=True):
        if y.shape != (BATCH, *shape):
            raise _fail("ONNX Runtime's output has the wrong shape",
                        (f"{_named(name)}{fmt_shape(y.shape)}, expected "
                         f"{fmt_shape((BATCH, *shape))}",))
        if not np.isfinite(y).all():
            from resdsl.weights.match import nonfinite_keys

            # Weights loaded with allow_nonfinite=True explain it; then it is not a bug.
            bad = nonfinite_keys(state)
            raise _fail(f"ONNX Runtime's output {_named(name)}is not finite", (
                f"the weights hold NaN or infinite values: {', '.join(bad[:8])}",) if bad
                else (), "the weights were loaded with their non-finite values allowed; the "
                "model file was not written" if bad else _BUG)
    max_out = max((float(np.abs(y).max()) for y in ys if y.size), default=0.0)
    try:
        import torch
    except ImportError:
        return Verification(runtime, BATCH, out_shape, max_out, outputs=names)

    from resdsl.backends.torch_module import build_module

    model = build_module(graph, state).eval()
    with torch.inference_mode():
        result = model(torch.from_numpy(x))
    refs = [t.numpy() for t in result.values()] if names else [result.numpy()]
    max_diff = 0.0
    for y, ref, (name, _) in zip(ys, refs, results, strict=True):
        diff = np.abs(y.astype(np.float64) - ref.astype(np.float64))
        max_ref = float(np.abs(ref).max()) if ref.size else 0.0
        worst = float(diff.max()) if diff.size else 0.0
        max_diff = max(max_diff, worst) if not math.isnan(worst) else worst
        tol = ATOL * max(1.0, max_ref) + RTOL * np.abs(ref.astype(np.float64))
        if not (diff <= tol).all() or math.isnan(worst):
            raise _fail(f"ONNX Runtime's output {_named(name)}differs from the PyTorch "
                        "backend's",
                        (f"max |Δ| = {worst:.3g} with max |y| = {max_ref:.3g}, beyond rtol "
                         f"{RTOL:g} and atol {ATOL:g}·max(1, max|y|)",
                         f"input: a seeded random batch of {BATCH}, "
                         f"{fmt_shape((BATCH, *in_shape))}"))
    return Verification(runtime, BATCH, out_shape, max_out,
                        f"torch {torch.__version__.split('+')[0]}",
                        max_diff, names)


def _named(name: str | None) -> str:
    """`"aux" ` for a named output, nothing for a network's one output."""
    return f'"{name}" ' if name is not None else ""
