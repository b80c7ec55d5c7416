"""The initial weights of a network: one seeded initialiser that every backend shares.

The torch module, the generated source and (later) the ONNX export all start from
`initial_state(graph, seed)`, so a network has the same weights whichever backend runs it,
and they are computed with numpy alone. The conventions are torchvision's (its ResNet's
`__init__` and torch's layer defaults):

- conv weight: Kaiming normal, mode fan_out, ReLU gain: std = sqrt(2 / (out · kh · kw)).
  torch's fan_out of a grouped conv is out_channels · kh · kw too, so groups do not enter.
- conv bias: torch's default U(-b, b), b = 1 / sqrt(fan_in), fan_in = in/groups · kh · kw.
- linear weight and bias: torch's default U(-b, b), b = 1 / sqrt(in).
- bn: weight 1, bias 0, running_mean 0, running_var 1, num_batches_tracked 0; frozen_bn the
  same (torchvision's FrozenBatchNorm2d), without the counter.
- conv_transpose weight and bias: torch's default U(-b, b), b = 1 / sqrt(fan_in), where
  torch's fan_in of the [in, out/groups, kh, kw] weight is out/groups · kh · kw.
- a weighted residual's α and a weighted sum's logits: their constant (0 by default).

Then each node's `Node.init` constants are applied (a gate's transform bias of -2, a `weight`
primitive's α). Each tensor draws from its own generator, seeded from (seed, CRC-32 of its
state_dict key): editing one layer of a spec leaves every other layer's weights unchanged.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from resdsl.diagnostics import InternalError
from resdsl.ir.graph import Graph, Node
from resdsl.ir.ops import OPS, State
from resdsl.passes.counts import state_shapes

# Ops whose output is their input as far as "does the residual branch end in a bn" goes.
_PASS_THROUGH = frozenset({"relu", "relu6", "hardswish", "leaky_relu", "identity", "dropout",
                           "drop_path", "rescale"})


def _key(node: Node, st: State) -> str:
    # The same rule as resdsl.passes.counts.state_shapes: "" names the node's own path.
    return f"{node.path}.{st.name}" if st.name else node.path


def _rng(seed: int, key: str) -> np.random.Generator:
    # SeedSequence takes non-negative integers only; seeds are 0 to 2**64 - 1 (checked by
    # `initial_state`, as the API and the CLI check them), so none wraps onto another.
    # SFC64 rather than default_rng's PCG64: it fills float32 normals about 1.5x faster, and
    # ResNet-152's 60M values are most of the time of building a model.
    entropy = np.random.SeedSequence([seed, zlib.crc32(key.encode("utf-8"))])
    return np.random.Generator(np.random.SFC64(entropy))


def _normal(seed: int, key: str, shape: tuple[int, ...], std: float) -> np.ndarray:
    out = _rng(seed, key).standard_normal(shape, dtype=np.float32)
    out *= np.float32(std)
    return out


def _uniform(seed: int, key: str, shape: tuple[int, ...], bound: float) -> np.ndarray:
    # Generator.uniform only makes float64; random(dtype=float32) is half the work and memory.
    out = _rng(seed, key).random(shape, dtype=np.float32)
    out *= np.float32(2.0 * bound)
    out -= np.float32(bound)
    return out


def _tensor(seed: int, key: str, node: Node, st: State, states: Sequence[State]) -> np.ndarray:
    """The default initial value of one state entry of `node`."""
    op, name, shape = node.op, st.name, st.shape
    if op in ("conv", "std_conv") and name == "weight":
        out, _, kh, kw = shape
        return _normal(seed, key, shape, math.sqrt(2.0 / (out * kh * kw)))
    if op in ("conv", "std_conv") and name == "bias":
        weight = next(s for s in states if s.name == "weight")
        return _uniform(seed, key, shape, 1.0 / math.sqrt(math.prod(weight.shape[1:])))
    if op == "linear" and name in ("weight", "bias"):
        fan_in = next(s for s in states if s.name == "weight").shape[1]
        return _uniform(seed, key, shape, 1.0 / math.sqrt(fan_in))
    if op == "bn":
        if name == "num_batches_tracked":
            return np.zeros(shape, dtype=np.int64)
        if name in ("weight", "running_var"):
            return np.ones(shape, dtype=np.float32)
        if name in ("bias", "running_mean"):
            return np.zeros(shape, dtype=np.float32)
    if op in ("conv_transpose", "conv1d") and name in ("weight", "bias"):
        weight = next(s for s in states if s.name == "weight")
        return _uniform(seed, key, shape, 1.0 / math.sqrt(math.prod(weight.shape[1:])))
    if op == "frozen_bn":
        if name in ("weight", "running_var"):
            return np.ones(shape, dtype=np.float32)
        if name in ("bias", "running_mean"):
            return np.zeros(shape, dtype=np.float32)
    if op in ("layer_norm", "group_norm"):
        if name == "weight":
            return np.ones(shape, dtype=np.float32)
        return np.zeros(shape, dtype=np.float32)
    if op == "param":
        # value + std · N(0, 1).
        std, value = node.args["std"], node.args["value"]
        assert isinstance(std, float) and isinstance(value, float)
        table = _normal(seed, key, shape, std)
        table += np.float32(value)
        return table
    if op in ("alpha", "weighted_sum") and name == "":
        return np.zeros(shape, dtype=np.float32)  # Node.init sets α's own constant below
    # An op added to ir/ops/ with state but no rule here must not get silent zeros.
    raise InternalError(f"no initialiser for state `{name}` of op `{op}` ({key})")


def initial_state(
    graph: Graph, seed: int = 0, *, zero_init_residual: bool = False
) -> dict[str, np.ndarray]:
    """Every state_dict key of `graph` with its initial value, in module order.

    The keys and shapes are exactly `resdsl.passes.counts.state_shapes(graph)`. Arrays are
    float32, except `num_batches_tracked` (int64, shape ()). The result depends only on
    `seed` and the keys and shapes, never on the order of the layers or on other layers.

    `zero_init_residual=True` is torchvision's option of that name: the last bn of every
    `skip` body gets weight 0, so each residual unit starts as the identity. The body is
    followed back from the add through activations that keep 0 (relu, relu6, hardswish,
    leaky_relu), identity, dropout, drop_path, a constant `skip(scale = f)` factor and a
    `scale`'s product (its main input) to the first layer with state; only when that layer
    is a bn is it zeroed. A body that ends in a conv (pre-activation units) is left alone, as
    are `weight` primitives, whose α already scales the body.
    """
    from resdsl.arguments import seed as checked_seed

    seed = checked_seed(seed)  # 0 to 2**64 - 1: a seed never wraps onto another
    jobs: list[tuple[str, Node, State, tuple[State, ...]]] = []
    for node in graph.nodes():
        op = OPS[node.op]
        ins = [graph.node(i).shape for i in node.inputs]
        states = op.state(ins, node.args, node.shape)
        jobs += [(_key(node, st), node, st, states) for st in states]

    def make(job: tuple[str, Node, State, tuple[State, ...]]) -> np.ndarray:
        key, node, st, states = job
        value = _tensor(seed, key, node, st, states)
        const = node.init.get(st.name)
        if const is not None:
            value.fill(const)
        return value

    # numpy's generators release the GIL while they fill an array, and every tensor has its
    # own generator, so threads give the same bytes in a fraction of the time.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        state = dict(zip([job[0] for job in jobs], pool.map(make, jobs), strict=True))
    if zero_init_residual:
        for node in _residual_bns(graph):
            state[f"{node.path}.weight"].fill(0.0)
    # state_dict order: a module's own tensors first, then its children (state_shapes).
    return {key: state[key] for key in state_shapes(graph)}


def _residual_bns(graph: Graph) -> list[Node]:
    """The bn that ends each `skip` body (see `initial_state`)."""
    found: list[Node] = []
    # Only the adds of `skip` units: a join of named tensors (`add(a, b)`) is not a residual.
    skips = {f.output for f in graph.frames if f.kind == "primitive" and f.name == "skip"}
    for node in graph.nodes():
        if node.op != "add" or len(node.inputs) != 2 or node.id not in skips:
            continue
        body, shortcut = node.inputs
        if any(graph.node(i).op == "alpha" for i in node.inputs):
            continue  # a `weight` primitive: add(shortcut, α·F(x))
        last = _last_stateful(graph, body)
        # An empty body or one of only pass-through ops would walk out of the unit, to a
        # layer before it: that layer is on the shortcut's path too, so leave it alone.
        if last is not None and last.op == "bn" and not _reaches(graph, shortcut, last.id):
            found.append(last)
    return found


def _last_stateful(graph: Graph, nid: int) -> Node | None:
    """Walk back from `nid` through stateless pass-through ops to the first node with state;
    None when the walk meets any other stateless op (a concat, a pool, a nested add)."""
    while True:
        node = graph.node(nid)
        if node.op in _PASS_THROUGH or node.op == "mul":
            nid = node.inputs[0]  # `mul` is x · factor: follow x, the main path
            continue
        ins = [graph.node(i).shape for i in node.inputs]
        if OPS[node.op].state(ins, node.args, node.shape):
            return node
        return None


def _reaches(graph: Graph, start: int, target: int) -> bool:
    """Whether `target` is `start` or one of its ancestors. Node ids are a topological order,
    so the search never goes below `target`'s id: it stays within one residual unit."""
    stack, seen = [start], {start}
    while stack:
        nid = stack.pop()
        if nid == target:
            return True
        for i in graph.node(nid).inputs:
            if i >= target and i not in seen:
                seen.add(i)
                stack.append(i)
    return False
