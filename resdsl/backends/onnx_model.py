"""The checked graph → an ONNX model, emitted directly with `onnx.helper` (no torch, no
tracing), and its file.

- One node per op of the graph, from the lowering table (`onnx_lowering.EMITTERS`); node
  names are module paths and each node's `doc_string` is its spec location (`file:line`),
  so a Netron view leads back to the spec.
- The weights are `Network.state()`: the one seeded initialiser every backend shares (the
  same `seed` gives the PyTorch module's weights), overlaid with a checkpoint. Initializers
  are named by their state_dict keys; `num_batches_tracked` counters are training state and
  are left out.
- An explicit IR version (the lowest that holds the opset), one input `input` and one
  output `output` with a symbolic batch axis `batch`, and metadata: the network, resdsl's
  version, the parameter count, the network parameters (`-D` values applied). A value whose
  batch axis ONNX's shape inference loses (a Resize's output) has its shape in value_info.
- The same graph, state and options give the same bytes: everything is emitted in graph
  order and nothing depends on time, hashes or the working folder.
- Over 2 GB of weights, the tensors go to `FILE.<digest>.data` beside the model (external
  data), a name unique to the weights, so that replacing a model and its data is atomic
  (`save_model`).

onnx is imported when a function here runs, never at module level by the rest of resdsl.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resdsl.backends.onnx_lowering import (
    DEFAULT_OPSET,
    EMITTERS,
    MAX_OPSET,
    MIN_OPSET,
    Ctx,
    ONode,
    is_alias,
)
from resdsl.diagnostics import SpecError, error
from resdsl.ir.graph import Graph, Node
from resdsl.ir.ops import Shape
from resdsl.outputs import (
    CHUNK,
    STAGED,
    Output,
    check_not_input,
    check_output,
    data_files,
    data_name,
    open_through,
    output_errors,
    publish,
    staging,
    write_chunks,
)
from resdsl.pipeline import UsageError

if TYPE_CHECKING:
    import onnx

INPUT = "input"
OUTPUT = "output"
BATCH = "batch"
# Above this many bytes of initializers the model keeps its weights in an external data
# file: a protobuf message cannot exceed 2 GiB.
EXTERNAL_DATA_BYTES = 2_000_000_000
# Tensors smaller than this stay inside the model even with external data.
_EXTERNAL_MIN = 1024


def require_onnx() -> Any:
    """Import onnx, or explain how to install it (E0711)."""
    try:
        import onnx
    except ImportError:
        raise SpecError([error(
            "E0711",
            "this needs the onnx package, which is not installed",
            None,
            help="install it with `pip install resdsl[onnx]` (or `pip install onnx`); "
            "the ONNX backend does not need PyTorch",
        )]) from None
    return onnx


def require_onnxruntime(what: str) -> Any:
    """Import onnxruntime, or explain how to install it (E0712)."""
    try:
        import onnxruntime
    except ImportError:
        raise SpecError([error(
            "E0712",
            f"{what} needs ONNX Runtime, which is not installed",
            None,
            help="install it with `pip install resdsl[onnx]` (or `pip install onnxruntime`)",
        )]) from None
    return onnxruntime


def check_opset(opset: int | None) -> int:
    if opset is None:
        return DEFAULT_OPSET
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UsageError(f"--opset {opset}: resdsl emits opsets {MIN_OPSET} to {MAX_OPSET} "
                         f"(default {DEFAULT_OPSET})")
    return opset


@dataclass(frozen=True)
class Emitted:
    """The model before it is a protobuf: nodes and initializers in emission order."""

    nodes: list[ONode]
    tensors: dict[str, np.ndarray]
    output: str
    # Each graph node's value name (aliases share their input's).
    values: dict[int, str]
    # Values whose per-sample shape the model states (see onnx_lowering.Ctx.declared).
    declared: dict[str, Shape]
    # The graph's outputs in order, each with its per-sample shape: `output` alone, or the
    # network's named outputs.
    outputs: list[tuple[str, Shape]] = field(default_factory=list)


def _foldable(graph: Graph) -> dict[int, Node]:
    """conv id → the bn (or frozen_bn) that alone reads the conv's output (`--fold-bn`)."""
    out: dict[int, Node] = {}
    for node in graph.nodes():
        if node.op not in ("bn", "frozen_bn") or len(node.shape) != 3:
            continue
        src = graph.node(node.inputs[0])
        results = {nid for _, nid in graph.results()}
        if src.op == "conv" and graph.users(src.id) == [node.id] and src.id not in results:
            out[src.id] = node
    return out


def _free_output_names(nodes: list[ONode], tensors: dict[str, np.ndarray],
                       declared: dict[str, Shape], names: dict[int, str],
                       taken: set[str]) -> None:
    """Rename, in place, every internal value that has an output's name (`conv1/Pad:0`,
    `relu:out`, an output may be called anything): a graph output's name is the user's, an
    intermediate value's is resdsl's. State keys and `input` are never renamed: an output
    named as one is refused before any backend runs (E0506)."""
    used = {v for n in nodes for v in (*n.inputs, *n.outputs)} | set(tensors)
    clash = used & taken
    if not clash:
        return
    new: dict[str, str] = {}
    for old in sorted(clash):
        name = old + "'"
        while name in used or name in taken:
            name += "'"
        used.add(name)
        new[old] = name
    for k, n in enumerate(nodes):
        nodes[k] = replace(n, inputs=tuple(new.get(v, v) for v in n.inputs),
                           outputs=tuple(new.get(v, v) for v in n.outputs))
    for old, name in new.items():
        if old in tensors:
            tensors[name] = tensors.pop(old)
        if old in declared:
            declared[name] = declared.pop(old)
    for nid, v in names.items():
        names[nid] = new.get(v, v)


def emit(graph: Graph, state: Mapping[str, np.ndarray], opset: int = DEFAULT_OPSET,
         fold_bn: bool = False) -> Emitted:
    """Every node of `graph` through its emitter, in graph (topological) order."""
    names: dict[int, str] = {}
    folds = _foldable(graph) if fold_bn else {}
    folded = {bn.id: conv_id for conv_id, bn in folds.items()}
    output_id = graph.output if graph.output is not None else len(graph) - 1
    nodes: list[ONode] = []
    tensors: dict[str, np.ndarray] = {}
    declared: dict[str, Shape] = {}
    # State keys and the outputs' names: a value must not take one of these names.
    owned = {k for k in state} | set(graph.outputs)
    if graph.outputs:
        output_id = -1  # no value is renamed: each named output is an Identity at the end

    # The value the network's output is: follow aliases back to the node that computes it.
    root = output_id
    while root >= 0:
        rnode = graph.node(root)
        ins = tuple(graph.node(i).shape for i in rnode.inputs)
        if rnode.op == "input" or not is_alias(rnode, ins):
            break
        root = rnode.inputs[0]

    for node in graph.nodes():
        ins = tuple(graph.node(i).shape for i in node.inputs)
        if node.op == "input":
            names[node.id] = INPUT
            continue
        x = tuple(names[i] for i in node.inputs)
        if node.id in folded:  # the conv before it already computed it
            names[node.id] = names[folded[node.id]]
            continue
        if is_alias(node, ins) and not (node.id == output_id and root == 0):
            names[node.id] = x[0]
            continue
        out = node.path if node.path not in owned else f"{node.path}:out"
        target = folds[node.id].id if node.id in folds else node.id
        if target == root:
            out = OUTPUT
        if node.id == output_id and root == 0:  # the network is its input: one Identity
            nodes.append(ONode("Identity", (INPUT,), (OUTPUT,), node.path))
            names[node.id] = OUTPUT
            continue
        c = Ctx(node, ins, x, out, opset, state, fold=folds.get(node.id))
        EMITTERS[node.op](c)
        nodes.extend(c.nodes)
        tensors.update(c.tensors)
        declared.update(c.declared)
        names[node.id] = out
    if not graph.outputs:
        return Emitted(nodes, tensors, names[output_id], names, declared,
                       [(names[output_id], graph.node(output_id).shape)])
    _free_output_names(nodes, tensors, declared, names, set(graph.outputs))
    # One graph output per named output, in order, named as the output: an Identity of its
    # value, since a value may be two outputs (and ONNX Runtime drops the Identity).
    for key, nid in graph.outputs.items():
        nodes.append(ONode("Identity", (names[nid],), (key,), f"output.{key}"))
    outputs = [(key, graph.node(nid).shape) for key, nid in graph.outputs.items()]
    return Emitted(nodes, tensors, outputs[0][0], names, declared, outputs)


def _location(node: Node, spec_dir: Path, library: Path) -> str:
    if node.span is None:
        return ""
    path = Path(node.span.source.path).resolve()
    if path == spec_dir or spec_dir in path.parents:
        shown = path.relative_to(spec_dir).as_posix()
    elif library in path.parents:
        shown = "<resdsl library>/" + path.relative_to(library).as_posix()
    else:
        shown = path.name
    return f"{shown}:{node.span.line}"


@dataclass(frozen=True)
class Model:
    """An ONNX model and the facts `compile` reports."""

    proto: onnx.ModelProto
    opset: int
    nodes: int
    # Bytes of the initializers (the weights and constants).
    weight_bytes: int
    # The initializers' arrays by name, for writing external data.
    tensors: dict[str, np.ndarray]
    # Each graph node's value name.
    values: dict[int, str]


def build_model(
    graph: Graph,
    state: Mapping[str, np.ndarray],
    *,
    spec_path: str,
    metadata: Mapping[str, str],
    opset: int | None = None,
    fold_bn: bool = False,
    external: bool | None = None,
) -> Model:
    """The ONNX model of `graph` holding `state`. `external`: None decides by size (over
    EXTERNAL_DATA_BYTES of weights); True leaves every tensor of 1 KiB or more without data
    (`save_model` writes them to the data file)."""
    from resdsl import __version__
    from resdsl._resources import library_root

    onnx = require_onnx()
    from onnx import TensorProto, helper

    opset = check_opset(opset)
    emitted = emit(graph, state, opset, fold_bn)
    spec_dir = Path(spec_path).resolve().parent
    library = library_root().resolve()
    by_path = {n.path: n for n in graph.nodes()}

    protos = []
    for n in emitted.nodes:
        owner = by_path.get(n.name.split("/", 1)[0])
        attrs: dict[str, Any] = dict(n.attrs)
        proto = helper.make_node(n.op_type, list(n.inputs), list(n.outputs), name=n.name,
                                 **attrs)
        if owner is not None:
            proto.doc_string = _location(owner, spec_dir, library)
        protos.append(proto)

    total = sum(a.nbytes for a in emitted.tensors.values())
    if external is None:
        external = total > EXTERNAL_DATA_BYTES
    inits = []
    for name, array in emitted.tensors.items():
        if external and array.nbytes >= _EXTERNAL_MIN:
            t = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype),
                            dims=array.shape)
            t.data_location = TensorProto.EXTERNAL  # filled in by save_model
        else:
            # reshape: ascontiguousarray makes a 0-d array 1-d, and a Clip's bounds must be
            # scalars.
            contiguous = np.ascontiguousarray(array).reshape(array.shape)
            t = onnx.numpy_helper.from_array(contiguous, name)
        inits.append(t)

    in_shape = graph.node(0).shape
    outputs = {name for name, _ in emitted.outputs}
    g = helper.make_graph(
        protos,
        graph.name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [BATCH, *in_shape])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *shape])
         for name, shape in emitted.outputs],
        initializer=inits,
        value_info=[helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *shape])
                    for name, shape in emitted.declared.items() if name not in outputs],
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        g,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="resdsl",
        producer_version=__version__,
        doc_string=f"{graph.name}, compiled by resdsl {__version__} from "
        f"{Path(spec_path).name}",
    )
    helper.set_model_props(model, dict(metadata))
    return Model(model, opset, len(protos), total, dict(emitted.tensors), emitted.values)


# ------------------------------------------------------------------ files


def save_model(model: Model, path: str, verify: Any = None,
               inputs: Iterable[str] = ()) -> list[str]:
    """Write `model` to `path` as resdsl.outputs writes every file (never over one of
    `inputs`), with `verify(staged_model_path)` run on the complete staged file before it is
    put in place. Returns the paths written: the model, and its external-data file if any.

    Over 2 GB of weights, the weights go to `NAME.<digest>.data` beside the model, named by
    their contents' SHA-256, and the model refers to that name. The data file is renamed
    into place first and the model last, then the data files of earlier writes are removed:
    a crash in between leaves the old model reading its own data (its data file is another
    name, or the same bytes), never the old model with the new weights."""
    inputs = list(inputs)
    out = check_output(path, inputs)
    external = [t for t in model.proto.graph.initializer if t.data_location == t.EXTERNAL]
    if external and out.through:
        raise UsageError(f"cannot write `{path}`: a model with external data (over 2 GB of "
                         "weights) needs its data file beside it, and this is not a regular "
                         "file; write it to a file")
    # A device or FIFO gets the model once it is complete (and verified): stage it in the
    # temporary folder.
    where = Path(tempfile.gettempdir()) if out.through else None
    with staging(out, where) as folder:
        staged = folder / STAGED
        with output_errors(out):
            data = _write_data(model, external, folder, out.target.name) if external else None
            with open(staged, "wb") as f:
                write_chunks(f, model.proto.SerializeToString())
                f.flush()
                os.fsync(f.fileno())
        if verify is not None:
            verify(str(staged))
        with output_errors(out):
            if out.through:
                with open(staged, "rb") as src, open_through(out) as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                return [path]
            return _publish(out, staged, data, inputs)


def _publish(out: Output, staged: Path, data: Path | None, inputs: list[str]) -> list[str]:
    """Put the staged model (and its data file) in place, the model last, then remove the
    data files of earlier writes."""
    written = [out.path]
    final: Path | None = None
    existed = False
    if data is not None:
        final = out.target.parent / data.name
        check_not_input(final, inputs)
        existed = os.path.lexists(final)
        publish(data, final)
        written.append(str(final))
    try:
        publish(staged, out.target)
    except BaseException:
        if final is not None and not existed:  # no model refers to it
            final.unlink(missing_ok=True)
        raise
    for old in data_files(out.target):
        if old != final and not _is_input(old, inputs):
            old.unlink(missing_ok=True)
    return written


def _is_input(path: Path, inputs: Iterable[str]) -> bool:
    try:
        check_not_input(path, inputs)
    except UsageError:
        return True
    return False


def _write_data(model: Model, external: list[Any], folder: Path, name: str) -> Path:
    """Stream the external tensors into a data file in `folder`, 64-byte aligned, named
    after the model `name` and the SHA-256 of its bytes, and point each initializer at its
    bytes. Returns the data file."""
    partial = folder / "data.partial"
    digest = hashlib.sha256()
    places: list[tuple[Any, int, int]] = []
    offset = 0
    with open(partial, "wb") as f:
        for t in external:
            array = np.ascontiguousarray(model.tensors[t.name])
            pad = -offset % 64
            if pad:
                f.write(b"\0" * pad)
                digest.update(b"\0" * pad)
                offset += pad
            view = array.reshape(-1).view(np.uint8).data
            digest.update(view)
            write_chunks(f, view)
            places.append((t, offset, array.nbytes))
            offset += array.nbytes
        f.flush()
        os.fsync(f.fileno())
    data = folder / data_name(name, digest.hexdigest())
    os.replace(partial, data)
    for t, start, length in places:
        del t.external_data[:]
        for key, value in (("location", data.name), ("offset", str(start)),
                           ("length", str(length))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        t.data_location = t.EXTERNAL
    return data
