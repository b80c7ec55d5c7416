"""A generator of random valid specs, for differential testing of the backends.

`generate(seed)` returns the text of one spec, which uses every op and primitive of the
language over the seeds: conv (kernels, strides, padding, dilation, groups, bias), bn,
linear, the pools (padding, ceil mode, count_include_pad), global_avgpool, flatten, the
activations (relu6, hardswish and leaky_relu too), identity, dropout, drop_path, slice,
zeropad; skip (identity, projection and option-A shortcuts, a constant scale: rescale),
weight (α, per channel, multi-branch), gate (derived and explicit transforms), concat, group (sum,
folded or by group_sum, and concat), dual (identity and projected shortcuts), scale; named
and unnamed statements, repeats, guards and a parameterised block. Widths, strides, groups
and repeat counts are random.

The generator tracks the tensor's shape as it writes, with the op rules of
`resdsl/ir/ops/` (`OPS[...].infer`), so every spec it makes is valid: `tests/
test_onnx_difftest.py` checks that, then compiles each spec to both backends and compares
their outputs; `bench/onnx_difftest.py` does the same over 1,000 or more seeds.

The ops of issue #8 (relu6, hardswish, leaky_relu, drop_path, count_include_pad, a skip's
scale) draw from a second generator, `Gen.extra`: the first one makes the same draws as
before they existed, so a seed keeps its structure (the REGRESSIONS of test_onnx_difftest
still hold their ceil-mode pools), some of its activations swapped for the new ones.

The dense-prediction ops of issue 16 (upsample by a factor and to a named tensor's size,
nearest and bilinear; conv_transpose; frozen_bn) draw from a third, `Gen.dense`, between the
top-level statements, and each such statement ends with the shape it started from: the first
generator's statements and draws stay as they were.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from resdsl.ir.ops import OPS, ShapeError, Value

Shape = tuple[int, ...]


def _infer(op: str, shape: Shape, **args: Value) -> Shape | None:
    """The op's output shape, or None when it cannot take `shape`."""
    spec = {a.name: a for a in OPS[op].args}
    bound: dict[str, Value] = {}
    for name, a in spec.items():
        value = args[name] if name in args else None if a.required else cast(Value, a.default)
        if a.type.name in ("PAIR", "NONNEG_PAIR") and isinstance(value, int):
            value = (value, value)
        bound[name] = value
    try:
        return OPS[op].infer([shape], bound)
    except ShapeError:
        return None


class _Name(str):
    """A name written as it is (a tensor argument), not as a string literal."""


def _lit(value: Value) -> str:
    if isinstance(value, _Name):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_lit(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _call(op: str, *pos: Value, **kw: Value) -> str:
    args = [_lit(p) for p in pos] + [f"{k} = {_lit(v)}" for k, v in kw.items()]
    return f"{op}({', '.join(args)})" if args else op


@dataclass
class Gen:
    rng: random.Random
    # The new ops' draws (see the module's docstring).
    extra: random.Random = field(default_factory=lambda: random.Random(0))
    # The dense-prediction ops' draws, and the number of tensors they named (`u1 = in`).
    dense: random.Random = field(default_factory=lambda: random.Random(1))
    dense_names: int = 0
    counter: int = 0
    blocks: list[str] = field(default_factory=list)
    has_block: bool = False

    # -- helpers

    def name(self, p: float = 0.5) -> str:
        """A fresh statement name (`n7: `), or none."""
        if self.rng.random() >= p:
            return ""
        self.counter += 1
        return f"n{self.counter}: "

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def width(self, lo: int = 1, hi: int = 12) -> int:
        return self.rng.randint(lo, hi)

    # -- single ops on a feature map

    def conv(self, shape: Shape, out: int | None = None, *, stride: int | None = None,
             plain: bool = False) -> tuple[str, Shape]:
        c = shape[0]
        r = self.rng
        groups = 1
        if not plain and self.chance(0.3):
            groups = r.choice([g for g in (1, 2, 3, 4) if c % g == 0])
        if out is None:
            out = groups * r.randint(1, max(1, 12 // groups))
        elif out % groups:
            groups = 1
        kw: dict[str, Value] = {}
        kernels: list[Value] = [1, 3, 3, 3, 5, (1, 3), (3, 1)]
        strides: list[Value] = [1, 1, 1, 2, (2, 1)]
        kernel: Value = r.choice(kernels) if not plain else 3
        s: Value = stride if stride is not None else r.choice(strides)
        if s != 1:
            kw["stride"] = s
        if not plain and self.chance(0.15):
            k = kernel if isinstance(kernel, int) else 1
            kw["padding"] = r.randint(0, k // 2) if k > 1 else 0
        if not plain and kernel == 3 and self.chance(0.15):
            kw["dilation"] = 2
        if groups != 1:
            kw["groups"] = groups
        if self.chance(0.25):
            kw["bias"] = True
        out_shape = _infer("conv", shape, out=out, kernel=kernel, **kw)
        if out_shape is None:  # too small for the window: a 1×1 conv always fits
            kw = {"groups": groups} if groups != 1 else {}
            kernel = 1
            out_shape = _infer("conv", shape, out=out, kernel=1, **kw)
            assert out_shape is not None
        return _call("conv", out, kernel, **kw), out_shape

    def pool(self, shape: Shape) -> tuple[str, Shape] | None:
        r = self.rng
        op = r.choice(["maxpool", "avgpool"])
        k = r.choice([2, 3])
        kw: dict[str, Value] = {}
        if self.chance(0.5):
            kw["stride"] = r.choice([1, 2])
        if self.chance(0.4):
            kw["padding"] = r.randint(0, k // 2)
        if self.chance(0.3):
            kw["ceil_mode"] = True
        if op == "avgpool" and self.extra.random() < 0.4:
            kw["count_include_pad"] = False
        out = _infer(op, shape, kernel=k, **kw)
        return None if out is None else (_call(op, k, **kw), out)

    def elementwise(self) -> str:
        r = self.rng
        op = r.choice(["relu", "relu", "sigmoid", "silu", "gelu", "tanh", "identity", "dropout",
                       "bn"])
        text = op
        if op == "dropout":
            text = _call("dropout", r.choice([0.0, 0.1, 0.5]))
        if op == "bn" and self.chance(0.3):
            text = _call("bn", eps=0.001)
        if op != "bn" and self.extra.random() < 0.35:
            return self.new_elementwise()
        return text

    def new_elementwise(self) -> str:
        """One of the ops of issue #8, from the second generator."""
        e = self.extra
        op = e.choice(["relu6", "hardswish", "leaky_relu", "drop_path"])
        if op == "leaky_relu" and e.random() < 0.6:
            return _call("leaky_relu", e.choice([0.2, 0.1, -0.5, 1.5]))
        if op == "drop_path":  # the identity at inference, where the backends are compared
            return _call("drop_path", e.choice([0.0, 0.1, 0.5, 1.0]))
        return op

    def layer(self, shape: Shape) -> tuple[str, Shape]:
        """One op statement on a feature map."""
        r = self.rng
        kind = r.choice(["conv", "conv", "conv", "elem", "elem", "pool", "slice", "zeropad"])
        c = shape[0]
        if kind == "pool":
            got = self.pool(shape)
            if got is not None:
                return got
            kind = "elem"
        if kind == "slice" and c >= 2:
            start = r.randint(0, c - 2)
            end = r.randint(start + 1, c)
            text = _call("slice", start) if end == c and self.chance(0.5) else \
                _call("slice", start, end)
            return text, (end - start, *shape[1:])
        if kind == "zeropad":
            out, s = c + r.randint(0, 6), r.choice([1, 2])
            got_shape = _infer("zeropad", shape, out=out, stride=s)
            assert got_shape is not None
            return _call("zeropad", out, stride=s), got_shape
        if kind == "elem":
            return self.elementwise(), shape
        return self.conv(shape)

    def body(self, shape: Shape, n: int, keep: bool) -> tuple[list[str], Shape]:
        """`n` layers; `keep`: the result has `shape` again (shape-changing layers are
        undone by a final conv and no striding is used)."""
        lines: list[str] = []
        cur = shape
        for _ in range(n):
            if keep:
                text, new = (self.elementwise(), cur) if self.chance(0.5) else \
                    self.conv(cur, stride=1, plain=True)
            else:
                text, new = self.layer(cur)
            lines.append(self.name(0.3) + text)
            cur = new
        if keep and cur != shape:
            text, cur = self.conv(cur, shape[0], stride=1, plain=True)
            lines.append(self.name(0.3) + text)
        assert not keep or cur == shape
        return lines, cur

    # -- primitives on a feature map

    def skip(self, shape: Shape) -> tuple[str, Shape]:
        r = self.rng
        c = shape[0]
        out, s = r.choice([c, c, self.width(2, 16)]), r.choice([1, 1, 2])
        conv1, mid = self.conv(shape, out, stride=s, plain=True)
        conv2, end = self.conv(mid, out, stride=1, plain=True)
        body = [self.name(0.5) + conv1, self.name(0.5) + "bn", "relu", self.name(0.5) + conv2,
                self.name(0.3) + "bn"]
        head = "skip"
        if self.chance(0.3):
            head = _call("weight", init=r.choice([0.5, -0.25, 1.0]),
                         per_channel=self.chance(0.5))
        elif self.extra.random() < 0.3:
            head = _call("skip", scale=self.extra.choice([0.17, 0.5, -1.5]))
        text = f"{self.name()}{head} {{ {'; '.join(body)} }}"
        if end != shape or self.chance(0.2):
            if end[0] >= c and self.chance(0.4):
                text += f" shortcut {_call('zeropad', end[0], stride=s)}"
            else:
                conv = _call("conv", end[0], 1, stride=s) if s != 1 else \
                    _call("conv", end[0], 1)
                proj = f"{{ {conv}; bn }}"
                text += f" shortcut {self.name(0.7)}{proj}"
        return text, end

    def weighted_branches(self, shape: Shape) -> tuple[str, Shape]:
        n = self.rng.randint(2, 3)
        parts = []
        for i in range(n):
            if i == n - 1 and self.chance(0.5):
                parts.append(f"{self.name()}branch {{ identity }}")
                continue
            lines, _ = self.body(shape, self.rng.randint(1, 2), keep=True)
            parts.append(f"{self.name()}branch {{ {'; '.join(lines)} }}")
        return f"{self.name()}weight {{ {' '.join(parts)} }}", shape

    def gate(self, shape: Shape) -> tuple[str, Shape]:
        c = shape[0]
        bias = self.rng.choice([-1, -2, -3])
        first, _ = self.conv(shape, c, stride=1, plain=True)
        text = f"{self.name()}gate(bias = {bias}) {{ {self.name(1)}{first}; relu }}"
        if self.chance(0.3):
            text += f" transform {self.name(1)}{_call('conv', c, 1, bias=True)}"
        return text, shape

    def concat(self, shape: Shape) -> tuple[str, Shape]:
        grow = self.width(1, 8)
        conv, new = self.conv(shape, grow, stride=1, plain=True)
        return (f"{self.name()}concat {{ bn; relu; {self.name(0.3)}{conv} }}",
                (shape[0] + new[0], *shape[1:]))

    def group(self, shape: Shape) -> tuple[str, Shape]:
        r = self.rng
        g = r.choice([2, 3, 4])
        d = r.randint(1, 4)
        gb = r.choice([b for b in (1, 2) if d % b == 0])
        merge = r.choice(["sum", "concat"])
        cout = r.randint(1, 8)
        s = r.choice([1, 1, 2])
        conv2 = _call("conv", d, 3, stride=s, groups=gb) if gb != 1 else \
            _call("conv", d, 3, stride=s)
        lines = [f"{_call('conv', d, 1)}", "bn", "relu", conv2, "bn", "relu",
                 _call("conv", cout, 1, bias=self.chance(0.5))]
        if self.chance(0.4):
            lines.append("bn")
        out = _infer("conv", shape, out=d, kernel=3, stride=s)
        assert out is not None
        channels = cout if merge == "sum" else g * cout
        return (f"{self.name()}group(groups = {g}, merge = \"{merge}\") "
                f"{{ {'; '.join(lines)} }}", (channels, *out[1:]))

    def dual(self, shape: Shape) -> tuple[str, Shape]:
        r = self.rng
        c = shape[0]
        project = self.chance(0.5) or c < 2
        s = r.choice([1, 2]) if project else 1
        rr = r.randint(1, max(1, c - 1)) if not project else r.randint(1, 8)
        inc = r.randint(0, 6)
        sc = c
        shortcut = ""
        if project:
            sc = rr + r.randint(0, 6)
            proj = _call("conv", sc, 1, stride=s) if s != 1 else _call("conv", sc, 1)
            shortcut = f" shortcut {self.name(0.7)}{{ bn; relu; {proj} }}"
        conv = _call("conv", rr + inc, 3, stride=s) if s != 1 else _call("conv", rr + inc, 3)
        new = _infer("conv", shape, out=rr + inc, kernel=3, stride=s)
        assert new is not None
        body = f"bn; relu; {self.name(0.5)}{_call('conv', self.width(1, 8), 1)}; bn; relu; " \
               f"{self.name(0.5)}{conv}"
        return (f"{self.name()}dual({rr}) {{ {body} }}{shortcut}",
                (sc + rr + inc - rr, *new[1:]))

    def scale(self, shape: Shape) -> tuple[str, Shape]:
        c = shape[0]
        kind = self.rng.choice(["se", "se", "full", "plain"])
        if kind == "se":
            mid = max(1, c // self.rng.choice([2, 4]))
            body = (f"global_avgpool; {_call('conv', mid, 1, bias=True)}; relu; "
                    f"{_call('conv', c, 1, bias=True)}; sigmoid")
        elif kind == "full":
            body = f"{_call('conv', c, 3)}; sigmoid"
        else:
            body = "sigmoid"
        return f"{self.name()}scale {{ {body} }}", shape

    def repeat(self, shape: Shape) -> tuple[str, Shape]:
        n = self.rng.randint(1, 3)
        c = shape[0]
        if self.chance(0.5):
            # A stage: the first iteration strides and widens, the rest keep the shape.
            out = self.width(2, 12)
            line = (f"repeat {n} as i {{ conv({out}, 3, stride = 2 if i == 0 else 1); bn; "
                    f"relu }}")
            end = _infer("conv", shape, out=out, kernel=3, stride=2)
            assert end is not None
            return f"{self.name(0.7)}{line}", end
        lines, _ = self.body(shape, self.rng.randint(1, 2), keep=True)
        # Named: an unnamed repeat would put each iteration's named layers in one module.
        return f"{self.name(1)}repeat {n} {{ {'; '.join(lines)} }}", (c, *shape[1:])

    def block_call(self, shape: Shape) -> tuple[str, Shape]:
        """The spec's one block, `unit(planes, stride)`: a basic residual unit whose
        projection shortcut is guarded by `stride != 1 or in.c != planes`."""
        if not self.has_block:
            self.has_block = True
            self.blocks.append(
                "block unit(planes, stride = 1, act = true) {\n"
                "    skip {\n"
                "        conv1: conv(planes, 3, stride = stride); bn1: bn; relu\n"
                "        conv2: conv(planes, 3); bn2: bn\n"
                "    } shortcut downsample: { conv(planes, 1, stride = stride); bn } "
                "if stride != 1 or in.c != planes\n"
                "    relu if act\n"
                "}\n")
        planes, s = self.width(1, 12), self.rng.choice([1, 2])
        self.counter += 1
        act = "" if self.chance(0.7) else ", act = false"
        end = _infer("conv", shape, out=planes, kernel=3, stride=s)
        assert end is not None
        return f"b{self.counter}: unit({planes}, stride = {s}{act})", end

    def feature_statement(self, shape: Shape) -> tuple[str, Shape]:
        kinds = ["layer"] * 6 + ["skip", "skip", "weight", "gate", "concat", "group", "dual",
                                 "scale", "repeat", "block", "seq"]
        kind = self.rng.choice(kinds)
        if kind == "layer":
            text, new = self.layer(shape)
            guard = " if true" if self.chance(0.05) else ""
            return self.name() + text + guard, new
        if kind == "seq":
            lines, new = self.body(shape, self.rng.randint(1, 3), keep=False)
            self.counter += 1
            return f"s{self.counter}: {{ {'; '.join(lines)} }}", new
        return {
            "skip": self.skip, "weight": self.weighted_branches, "gate": self.gate,
            "concat": self.concat, "group": self.group, "dual": self.dual,
            "scale": self.scale, "repeat": self.repeat, "block": self.block_call,
        }[kind](shape)

    def dense_statement(self, shape: Shape) -> str:
        """A statement of the dense-prediction ops, from the third generator, that ends with
        `shape` again: upsampling undone by a pool, a transposed conv by a conv, a pool undone
        by upsampling to the tensor before it, or a frozen_bn."""
        d = self.dense
        c = shape[0]
        kind = d.choice(["frozen_bn", "up_pool", "transpose", "dilated", "to", "to"])
        mode: dict[str, Value] = {}
        if d.random() < 0.6:
            mode["mode"] = "bilinear"
            if d.random() < 0.5:
                mode["align_corners"] = d.random() < 0.5
        if kind == "up_pool":
            s = d.choice([2, 3])
            return f"{_call('upsample', s, **mode)}; {_call('avgpool', s)}"
        if kind == "transpose":
            bias: dict[str, Value] = {} if d.random() < 0.5 else {"bias": False}
            if c % 2 == 0 and d.random() < 0.3:
                bias["groups"] = 2
            up = _call("conv_transpose", c, 2, stride=2, **bias) if d.random() < 0.5 else \
                _call("conv_transpose", c, 3, stride=2, padding=1, output_padding=1, **bias)
            return f"{up}; {_call('conv', c, 3, stride=2)}"
        if kind == "dilated":
            # output_padding below the dilation, not the stride: within the padding, or
            # beyond it (rows of bias alone); a conv with no padding takes the rows off again.
            pad = d.choice([0, 1])
            up = _call("conv_transpose", c, 3, padding=pad, output_padding=1, dilation=2)
            return f"{up}; {_call('conv', c, 6 - 2 * pad, padding=0)}"
        if kind == "to":
            down = d.choice(["avgpool(2)", "global_avgpool", _call("conv", c, 3, stride=2),
                             "maxpool(3, stride = 2, padding = 1)"])
            if down == "avgpool(2)" and min(shape[1:]) < 2:
                down = "global_avgpool"
            self.dense_names += 1
            t = f"u{self.dense_names}"
            return f"{t} = in; {down}; {_call('upsample', to=_Name(t), **mode)}"
        return _call("frozen_bn", eps=d.choice([1e-5, 1e-3])) if d.random() < 0.3 else \
            "frozen_bn"

    # -- flat tensors

    def flat_statement(self, c: int) -> tuple[str, int]:
        r = self.rng
        kind = r.choice(["linear", "linear", "elem", "gate", "skip", "weight", "scale"])
        if kind == "linear":
            out = self.width(1, 16)
            return self.name() + _call("linear", out, bias=self.chance(0.7)), out
        if kind == "elem":
            return self.name() + self.elementwise(), c
        if kind == "gate":
            return f"{self.name()}gate {{ {self.name(1)}linear({c}); relu }}", c
        if kind == "skip":
            return f"{self.name()}skip {{ linear({self.width(1, 8)}); relu; linear({c}) }}", c
        if kind == "scale":
            return f"{self.name()}scale {{ linear({c}); sigmoid }}", c
        return f"{self.name()}weight(init = 0.5) {{ linear({c}); tanh }}", c


def generate(seed: int) -> str:
    """The text of one random valid spec."""
    rng = random.Random(seed)
    g = Gen(rng, random.Random(seed + 2**32), random.Random(seed + 2**33))
    statements: list[str] = []
    if rng.random() < 0.1:
        c = rng.randint(2, 16)
        statements.append(f"input [{c}]")
        for _ in range(rng.randint(1, 5)):
            text, c = g.flat_statement(c)
            statements.append(text)
    else:
        shape: Shape = (rng.randint(1, 8), rng.randint(4, 16), rng.randint(4, 16))
        statements.append(f"input [{shape[0]}, {shape[1]}, {shape[2]}]")
        for _ in range(rng.randint(1, 7)):
            text, shape = g.feature_statement(shape)
            statements.append(text)
            if g.dense.random() < 0.15:
                statements.append(g.dense_statement(shape))
        if rng.random() < 0.7:
            pool = rng.choice(["global_avgpool", "avgpool(1)"])
            statements.append(g.name() + pool)
            statements.append(g.name() + "flatten")
            c = shape[0] if pool == "global_avgpool" else shape[0] * shape[1] * shape[2]
            for _ in range(rng.randint(0, 2)):
                text, c = g.flat_statement(c)
                statements.append(text)
            statements.append(g.name(0.8) + _call("linear", rng.randint(1, 10)))
    body = "\n".join("    " + s for s in statements)
    return "".join(b + "\n" for b in g.blocks) + f"network gen{seed}() {{\n{body}\n}}\n"


# ------------------------------------------------------------------ the differential run


def perturb(state: dict[str, Any], seed: int) -> dict[str, Any]:
    """A copy of `state` whose eval-mode BN is not the identity (random statistics and
    affine parameters) and whose α and branch weights are not 0, so that every op shows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in state.items()}
    for key, value in out.items():
        if value.dtype != np.float32:
            continue
        leaf = key.rpartition(".")[2]
        shape = value.shape
        if leaf == "running_mean":
            out[key] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        elif leaf == "running_var":
            out[key] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif key[: -len(".weight")] + ".running_var" in out and leaf == "weight":
            out[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif key[: -len(".bias")] + ".running_var" in out and leaf == "bias":
            out[key] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        elif leaf not in ("weight", "bias"):  # α, branch weights: the node's own path
            out[key] = rng.standard_normal(shape).astype(np.float32)
    return out


@dataclass(frozen=True)
class Outcome:
    seed: int
    ok: bool
    opset: int
    fold_bn: bool
    max_diff: float
    max_ref: float
    detail: str = ""


def differential(seed: int, folder: Path) -> Outcome:
    """Compile spec `seed` to both backends with the same (perturbed) weights and compare
    ONNX Runtime's output with the PyTorch module's (eval mode, rtol 1e-4, atol 1e-5 scaled
    by the output's magnitude), after checking the model and its inferred shapes."""
    import numpy as np
    import onnx
    import torch

    import resdsl
    from resdsl.backends.torch_module import build_module
    from resdsl.verify import sample_input, session

    rng = random.Random(seed)
    opset, fold_bn = rng.choice([13, 17, 21]), rng.random() < 0.3
    path = folder / f"gen{seed}.res"
    path.write_text(generate(seed), encoding="utf-8")
    net = resdsl.load(str(path))
    state = perturb(net.init_state(seed), seed)
    model = net.to_onnx(weights=state, opset=opset, fold_bn=fold_bn)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                 data_prop=True)
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output]}
    onnx_file = folder / f"gen{seed}.onnx"
    onnx_file.write_bytes(model.SerializeToString())
    x = sample_input(net.input_shape, 2, seed)
    (y,) = session(str(onnx_file), threads=1).run(None, {"input": x})
    module = build_module(net.graph, state).eval()
    with torch.inference_mode():
        ref = module(torch.from_numpy(x)).numpy()
    diff = np.abs(np.asarray(y, np.float64) - ref)
    max_ref = float(np.abs(ref).max())
    max_diff = float(diff.max())
    ok = bool((diff <= 1e-5 * max(1.0, max_ref) + 1e-4 * np.abs(ref)).all())
    detail = "" if ok else f"outputs differ: max |Δ| {max_diff:.3g}, max |y| {max_ref:.3g}"
    for node in net.graph.nodes():
        name = node.path if node.op != "input" else "input"
        if name in shapes and shapes[name] != ["batch", *node.shape]:
            ok = False
            detail += f"; ONNX infers {shapes[name]} for {name}, resdsl {list(node.shape)}"
    onnx_file.unlink()
    return Outcome(seed, ok, opset, fold_bn, max_diff, max_ref, detail)
