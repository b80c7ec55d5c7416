"""A generator of random valid specs, for differential testing of the backends.

`generate(seed)` returns the text of one spec, which uses every op, primitive and construct of
the language (docs/language.md) over the seeds: conv (kernels, strides, padding, dilation,
groups, bias), bn, linear, the pools (padding, ceil mode, count_include_pad), global_avgpool,
flatten, the activations (relu6, hardswish and leaky_relu too), identity, dropout, drop_path,
slice, zeropad; skip (identity, projection and option-A shortcuts, a constant scale: rescale),
weight (α, per channel, multi-branch), gate (derived and explicit transforms), concat, group
(sum, folded or by group_sum, and concat), dual (identity and projected shortcuts), scale;
named and unnamed statements, repeats, guards and parameterised blocks. Widths, strides, groups
and repeat counts are random.

The wiring of the language comes from a generator of its own (`Gen.wired`, the kinds in
`CONSTRUCTS`), between the main generator's statements: named tensors and `t` as a statement;
joins of two and more tensors, of lists collected by a repeat, and of one tensor (`add(y[0])`,
which continues from it); dotted names filled in turns (Res2Net's `convs.{i}`/`bns.{i}`),
dotted levels revisited after other statements (`m.0.b.{k}`, later `m.1.b.0`) and HRNet's
`fuse.{i}.{j}` grid; guards on calls, sequences, repeats, joins and primitives, true and false;
multi-branch `skip` and `concat`; numbers as names, and Python's (`None`, `class`, `_`);
numbered children made in reverse; a block with a `def` function, bindings, nested unnamed
sequences and a guarded join, called under interpolated names. Any statement may appear inside
these, wiring included (two levels deep).

The generator tracks the tensor's shape as it writes, with the op rules of
`resdsl/ir/ops/` (`OPS[...].infer`), so every spec it makes is valid: `tests/
test_onnx_difftest.py` checks that, then compiles each spec to ONNX, to the PyTorch module and
to the standalone source and compares them (`compare`); `bench/onnx_difftest.py` does the same
over 1,000 or more seeds.

Seeds keep their structure as the generator grows. The ops of issue #8 (relu6, hardswish,
leaky_relu, drop_path, count_include_pad, a skip's scale) draw from a second generator,
`Gen.extra`, and the wiring from a third, whose constructs end with the shape they were given:
the first one makes the same draws as before either existed, so a seed keeps its statements
(the REGRESSIONS of test_onnx_difftest still hold their ceil-mode pools), some of its
activations swapped for the new ones and wiring between them.

The dense-prediction ops of issue 16 (upsample by a factor and to a named tensor's size,
nearest and bilinear; conv_transpose; frozen_bn) draw from a third, `Gen.dense`, between the
top-level statements, and each such statement ends with the shape it started from: the first
generator's statements and draws stay as they were.

The general tensor ops of issue 17 (the broadcasting joins `add` and `sub`, `neg`,
`mul_const`, `softmax`, the reductions `mean`, `sum` and `amax`, `reshape` and `permute`,
`layer_norm` on both layouts, `group_norm`, `linear` on an axis, `param`, `conv1d`, the
`matmul` join, `pad` and `slice` on any axis) and `rsqrt` and `std_conv` (issue 18) draw
from a fourth, `Gen.tensor`, in the same way: each statement ends with the shape it started
from.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Callable
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
    # The general tensor ops' draws (issue 17), and the tensors they named (`v1 = in`).
    tensor: random.Random = field(default_factory=lambda: random.Random(2))
    tensor_names: int = 0
    counter: int = 0
    blocks: list[str] = field(default_factory=list)
    has_block: bool = False
    # The wiring generator (see `generate`) names its statements, tensors and blocks with a
    # tag (`nw7`, `tw8`, `unitw`), so that they never meet the main generator's names.
    tag: str = ""
    wiring: bool = False
    # How deep wiring constructs nest in each other; inside a repeat's body they stop.
    depth: int = 0
    has_wired_block: bool = False
    # The constructs made, by kind (`CONSTRUCTS`): what the coverage test counts.
    used: Counter[str] = field(default_factory=Counter)

    # -- helpers

    def name(self, p: float = 0.5) -> str:
        """A fresh statement name (`n7: `), or none."""
        if self.rng.random() >= p:
            return ""
        self.counter += 1
        return f"n{self.tag}{self.counter}: "

    def fresh(self, kind: str) -> str:
        """A fresh tensor, module or block name: `t` + tag + number (`tw12`)."""
        self.counter += 1
        return f"{kind}{self.tag}{self.counter}"

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
                f"block unit{self.tag}(planes, stride = 1, act = true) {{\n"
                "    skip {\n"
                "        conv1: conv(planes, 3, stride = stride); bn1: bn; relu\n"
                "        conv2: conv(planes, 3); bn2: bn\n"
                "    } shortcut downsample: { conv(planes, 1, stride = stride); bn } "
                "if stride != 1 or in.c != planes\n"
                "    relu if act\n"
                "}\n")
        self.used["block"] += 1
        planes, s = self.width(1, 12), self.rng.choice([1, 2])
        self.counter += 1
        act = "" if self.chance(0.7) else ", act = false"
        end = _infer("conv", shape, out=planes, kernel=3, stride=s)
        assert end is not None
        return f"b{self.tag}{self.counter}: unit{self.tag}({planes}, stride = {s}{act})", end

    def feature_statement(self, shape: Shape) -> tuple[str, Shape]:
        kinds = ["layer"] * 6 + ["skip", "skip", "weight", "gate", "concat", "group", "dual",
                                 "scale", "repeat", "block", "seq"]
        if self.wiring and self.depth < 2:
            kinds += ["wired"] * 4
        kind = self.rng.choice(kinds)
        if kind == "layer":
            text, new = self.layer(shape)
            guard = " if true" if self.chance(0.05) else ""
            return self.name() + text + guard, new
        if kind == "seq":
            lines, new = self.body(shape, self.rng.randint(1, 3), keep=False)
            self.counter += 1
            return f"s{self.tag}{self.counter}: {{ {'; '.join(lines)} }}", new
        if kind == "wired":
            self.counter += 1
            lines, new = self.wired(shape)
            return f"s{self.tag}{self.counter}: {{ {'; '.join(lines)} }}", new
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

    def tensor_name(self) -> str:
        self.tensor_names += 1
        return f"v{self.tensor_names}"

    def tensor_statement(self, shape: Shape) -> str:
        """A statement of the general tensor ops of issue 17, from the fourth generator, that
        ends with `shape` again: elementwise joins that broadcast (`sub`, `add` of a pooled
        tensor), `neg` and `mul_const`."""
        d = self.tensor
        c = shape[0]
        kind = d.choice(["sub", "sub_pooled", "add_pooled", "neg", "mul_const", "softmax",
                         "reduce", "reduce", "reduce", "reduce_drop", "reduce_drop", "split",
                         "radix", "layer_norm", "channels_last", "group_norm", "param",
                         "param", "conv1d", "conv1d", "attention", "attention",
                         "pad_slice", "rsqrt", "std_conv"])
        a, b = self.tensor_name(), self.tensor_name()
        eps: dict[str, Value] = {} if d.random() < 0.5 else {"eps": 1e-6}
        if kind == "attention":
            # Attention of the channels over the positions: softmax(q · qᵀ) · q, residual.
            hw = shape[1] * shape[2]
            q, s = self.tensor_name(), self.tensor_name()
            return (f"{a} = in; {_call('reshape', (c, hw))}; {q} = in; permute([1, 0]); "
                    f"matmul({q}, in); {_call('mul_const', 0.1)}; softmax(-1); {s} = in; "
                    f"matmul({s}, {q}); {_call('reshape', shape)}; {b} = in; add({a}, {b})")
        if kind == "pad_slice":
            axis = d.choice([0, 1, 2, -1])
            before, after = d.randint(0, 2), d.randint(1, 2)
            size = shape[axis]
            return (f"{_call('pad', before, after, axis=axis)}; "
                    f"{_call('slice', after, after + size, axis=axis)}")
        if kind == "conv1d":
            # Across the pooled channels (ECA), or along every position of each channel.
            k = d.choice([1, 3, 5])
            if d.random() < 0.5:
                return (f"{a} = in; global_avgpool; {_call('reshape', (1, c))}; "
                        f"{self.name()}{_call('conv1d', 1, k)}; sigmoid; "
                        f"{_call('reshape', (c, 1, 1))}; {b} = in; mul({a}, {b})")
            groups = d.choice([g for g in (1, 2) if c % g == 0])
            return (f"{_call('reshape', (c, shape[1] * shape[2]))}; "
                    f"{self.name()}{_call('conv1d', c, k, groups=groups, bias=d.random() < 0.5)}; "
                    f"{_call('reshape', shape)}")
        if kind == "std_conv":
            # BiT's weight-standardised conv, grouped or not, with a bias or not.
            groups = d.choice([g for g in (1, 2) if c % g == 0])
            # A filter of one weight (one channel a group, 1×1) is refused: standardised, 0.
            kernel = d.choice([1, 3]) if c // groups > 1 else 3
            return self.name() + _call("std_conv", c, kernel, groups=groups,
                                       bias=d.random() < 0.5, eps=d.choice([1e-6, 1e-8]))
        if kind == "rsqrt":
            # Filter Response Normalization's division by the root mean square of the
            # positions; eps keeps a zero map (after a relu) finite.
            return (f"{a} = in; mul({a}, {a}); {_call('mean', (1, 2))}; "
                    f"{_call('rsqrt', eps=d.choice([1e-5, 0.5]))}; {b} = in; mul({a}, {b})")
        if kind == "layer_norm":
            return self.name() + _call("layer_norm", **eps)
        if kind == "channels_last":
            # ConvNeXt's block: LayerNorm and an MLP of per-position linears, channels last.
            hidden = d.randint(1, 12)
            return (f"permute([1, 2, 0]); {self.name()}{_call('layer_norm', axis=-1, **eps)}; "
                    f"{self.name()}{_call('linear', hidden, axis=-1)}; gelu; "
                    f"{self.name()}{_call('linear', c, axis=-1, bias=d.random() < 0.7)}; "
                    "permute([2, 0, 1])")
        if kind == "group_norm":
            groups = d.choice([g for g in (1, 2, 3, 4) if c % g == 0])
            return self.name() + _call("group_norm", groups, **eps)
        if kind == "param":
            # A layer scale of shape [C] (ConvNeXt's gamma), or a table the map's size.
            self.counter += 1
            p = f"p{self.tag}{self.counter}"
            if d.random() < 0.5:
                return (f"{a} = in; {p}: {_call('param', (c,), value=0.5, std=0.1)}; "
                        f"{_call('reshape', (c, 1, 1))}; {b} = in; mul({a}, {b})")
            return f"{a} = in; {p}: {_call('param', shape, std=1.0)}; {b} = in; add({a}, {b})"
        if kind == "softmax":
            return _call("softmax", d.choice([0, 1, 2, -1]))
        if kind == "reduce":
            # mean or max of the channels (CBAM), or of all positions, broadcast back.
            # Each of the three in turn, so that a few specs hold them all.
            op = ("mean", "amax", "sum")[self.tensor_names % 3]
            every_axes: list[Value] = [0, (1, 2), (0, -1)]
            axes = every_axes[d.randrange(len(every_axes))]
            return f"{a} = in; {_call(op, axes)}; {b} = in; {a}; add(in, {b})"
        if kind == "reduce_drop":
            # A stack of paths summed (selective kernel): C×H×W as 1×C×H×W, summed over 0.
            op = ("mean", "amax", "sum")[self.tensor_names % 3]
            return f"{_call('reshape', (1, *shape))}; {_call(op, 0, keepdim=False)}"
        if kind == "split" and c % 2 == 0:
            # Channels in two groups, regrouped (a channel shuffle), back to C×H×W.
            return (f"{_call('reshape', (2, c // 2, shape[1], shape[2]))}; "
                    f"{_call('permute', (1, 0, 2, 3))}; {_call('reshape', shape)}")
        if kind in ("split", "radix"):
            # Softmax over positions per channel (global context's attention logits).
            return (f"{a} = in; {_call('reshape', (c, -1))}; softmax(-1); "
                    f"{_call('reshape', shape)}; {b} = in; mul({a}, {b})")
        if kind == "sub":
            return f"{a} = in; {_call('conv', c, 1)}; {b} = in; sub({a}, {b})"
        if kind in ("sub_pooled", "add_pooled"):
            join = "sub" if kind == "sub_pooled" else "add"
            return f"{a} = in; global_avgpool; {b} = in; {join}({a}, {b})"
        if kind == "neg":
            return "neg"
        return _call("mul_const", d.choice([-1.5, 0.5, 2.0]))

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


    # -- wiring: the constructs of docs/language.md beyond one path with primitives

    def wired(self, shape: Shape) -> tuple[list[str], Shape]:
        """One wiring construct on a feature map, as statements that end with `shape` again
        (channels restored by a conv where a join changed them)."""
        kinds: list[tuple[str, Callable[[Shape], list[str]]]] = [
            ("residual", self.tensor_residual), ("branches", self.branches),
            ("collect", self.collect), ("dotted", self.dotted_interleaved),
            ("revisit", self.dotted_revisit), ("fuse", self.fuse_grid),
            ("guards", self.guards), ("multi_branch", self.multi_branch),
            ("wired_block", self.wired_block), ("numbered", self.numbered),
            ("odd_names", self.odd_names),
        ]
        kind, make = self.rng.choice(kinds)
        self.used[kind] += 1
        self.depth += 1
        try:
            return make(shape), shape
        finally:
            self.depth -= 1

    def sized(self, shape: Shape) -> tuple[list[str], Shape]:
        """One to three statements that keep the height and width; the channels may change.
        Any statement of the generator may come, wiring included: one that strides is
        drawn again (its names and blocks taken back), and after four tries a conv."""
        lines: list[str] = []
        cur = shape
        for _ in range(self.rng.randint(1, 3)):
            for _ in range(4):
                saved = (self.counter, len(self.blocks), self.has_block, self.has_wired_block,
                         Counter(self.used))
                text, new = self.feature_statement(cur)
                if new[1:] == cur[1:]:
                    lines.append(text)
                    cur = new
                    break
                self.counter, n, self.has_block, self.has_wired_block, self.used = saved
                del self.blocks[n:]
            else:
                text, cur = self.conv(cur, stride=1, plain=True)
                lines.append(self.name(0.3) + text)
        return lines, cur

    def keep(self, shape: Shape, restore: str = "") -> list[str]:
        """Statements that give `shape` again: `sized`, then a conv back to its channels.
        `restore` is how that conv reads the width (`in.c` of a binding, `t.c`)."""
        lines, cur = self.sized(shape)
        if cur != shape:
            lines.append(self.restore(shape, restore))
        return lines

    def restore(self, shape: Shape, width: str = "") -> str:
        """A conv back to `shape`'s channels, written with a literal or an expression."""
        c = shape[0]
        text = self.rng.choice([str(c), f"{c} * 2 // 2", f"max(1, {c})", width or str(c)])
        return f"{self.name(0.3)}conv({text}, {self.rng.choice([1, 3])})"

    def condition(self, shape: Shape) -> tuple[str, bool]:
        """A guard's condition on the tensor's sizes, with its value."""
        c, h = shape[0], shape[1]
        return self.rng.choice([
            (f"in.c == {c}", True), (f"in.c != {c}", False), (f"in.h >= {h}", True),
            (f"in.h > {h}", False), ("true", True), ("false", False),
            (f"in.c % 2 == {c % 2} and in.w > 0", True), (f"not (in.c * 2 == {2 * c})", False),
        ])

    def join_name(self) -> str:
        return f"{self.fresh('j')}: " if self.chance(0.4) else ""

    def tensor_residual(self, shape: Shape) -> list[str]:
        """`t = in; F; add(in, t)`: a residual written with a named tensor, its join guarded
        at times (the guard off: F alone)."""
        t = self.fresh("t")
        lines = [f"{t} = in", *self.keep(shape, f"{t}.c")]
        join = self.rng.choice([f"add(in, {t})", f"add({t}, in)", f"add({t}, in, {t})",
                                f"mul(in, {t})"])
        guard = f" if {self.condition(shape)[0]}" if self.chance(0.3) else ""
        return [*lines, f"{self.join_name()}{join}{guard}"]

    def branches(self, shape: Shape) -> list[str]:
        """Branches from one tensor (`t` as a statement continues from it), joined by one
        multi-argument join, or continued from with a one-argument join (`add(a)`)."""
        t, a, b = self.fresh("t"), self.fresh("a"), self.fresh("b")
        lines = [f"{t} = in", *self.keep(shape), f"{a} = in", t, *self.keep(shape)]
        form = self.rng.choice(["sum", "sum3", "cat", "continue"])
        if form == "sum":
            return [*lines, f"{self.join_name()}add({a}, in)"]
        if form == "sum3":
            return [*lines, f"{b} = in", t, *self.keep(shape),
                    f"{self.join_name()}add({a}, {b}, in)"]
        if form == "cat":
            return [*lines, f"{self.join_name()}cat({a}, in, {t})", self.restore(shape)]
        # `add(a)` continues from `a`, the flowing tensor named `b` first.
        return [*lines, f"{b} = in", f"{self.join_name()}add({a})", *self.keep(shape),
                f"{self.join_name()}add(in, {b})"]

    def inner(self, shape: Shape) -> list[str]:
        """A body inside a repeat: no wiring (its tensor names would collect)."""
        depth, self.depth = self.depth, 2
        try:
            return self.keep(shape)
        finally:
            self.depth = depth

    def collect(self, shape: Shape) -> list[str]:
        """`t = in` inside a named repeat collects a list; its elements are joined all at
        once, or one continued from with a one-argument join (`add(y[0])`)."""
        n = self.rng.randint(1, 3)
        x, y, z, r = self.fresh("x"), self.fresh("y"), self.fresh("z"), self.fresh("r")
        lines = [f"{x} = in",
                 f"{r}: repeat {n} {{ {x}; {'; '.join(self.inner(shape))}; {y} = in }}"]
        forms = ["add", "cat", "first", "element"] + (["pair", "pair_continue"] if n == 2
                                                      else [])
        form = self.rng.choice(forms)
        if form == "add":
            return [*lines, f"{self.join_name()}add({y})"]
        if form == "cat":
            return [*lines, f"{self.join_name()}cat({y})", self.restore(shape)]
        if form == "pair":
            return [*lines, f"{self.join_name()}add({y}[-1], {y}[0])"]
        if form == "pair_continue":
            return [*lines, f"{self.join_name()}add({y}[0])", *self.keep(shape), f"{z} = in",
                    f"add({y}[1])", f"{self.join_name()}add(in, {z})"]
        # The last element continued from (a one-argument join, or the element as a statement),
        # then the others joined to it.
        others = ", ".join(f"{y}[{k}]" for k in range(max(1, n - 1)))
        last = f"{self.join_name()}add({y}[{n - 1}])" if form == "first" else f"{y}[{n - 1}]"
        return [*lines, last, f"add(in, {others})"]

    def dotted_interleaved(self, shape: Shape) -> list[str]:
        """Res2Net's `convs.{i}` and `bns.{i}` filled in turns by one loop, with a named
        tensor carried from the previous iteration and a guarded join."""
        c, w, n = shape[0], self.fresh("w"), self.rng.randint(1, 3)
        spx, prev, y = self.fresh("spx"), self.fresh("prev"), self.fresh("y")
        k = self.rng.choice([1, 3])
        if self.chance(0.5):
            return [f"{w}: {{ repeat {n} as i {{ convs.{{i}}: conv({c}, {k}); bns.{{i}}: bn; "
                    f"relu if i < {n - 1} }} }}"]
        return [f"{w}: {{ {spx} = in; repeat {n} as i {{ {prev} = in; {spx}; "
                f"convs.{{i}}: conv({c}, {k}); add(in, {prev}) if i > 0; bns.{{i}}: bn; "
                f"{y} = in }}; cat({y}); {self.restore(shape)} }}"]

    def dotted_revisit(self, shape: Shape) -> list[str]:
        """A dotted level revisited after other statements (`m.0.b.{k}`, later `m.1.b.0`,
        then `m.0.norm`): the module tree is not the order of the statements."""
        c, m, q, n = shape[0], self.fresh("m"), self.fresh("q"), self.rng.randint(1, 3)
        join = self.rng.choice([f"mul({q}, in)", f"add(in, {q})"])
        lines = [f"{q} = in", f"repeat {n} as k {{ {m}.0.b.{{k}}: conv({c}, 1); {join} }}",
                 *self.inner(shape), f"{m}.1.b.0: conv({c}, 1)"]
        if self.chance(0.5):
            lines.append(f"{m}.0.norm: bn")
        return lines

    def fuse_grid(self, shape: Shape) -> list[str]:
        """HRNet's fuse layers: `fuse.{i}.{j}` for j != i, in nested repeats, each row
        summed (a one-argument join when the grid is 1×1), the rows joined."""
        c, n = shape[0], self.rng.randint(1, 3)
        x, f, z, fuse = self.fresh("x"), self.fresh("f"), self.fresh("z"), self.fresh("fuse")
        k = self.rng.choice([1, 3])
        lines = [f"{x} = in",
                 f"repeat {n} as i {{ repeat {n} as j {{ {x}; {fuse}.{{i}}.{{j}}: conv({c}, {k}) "
                 f"if j != i; {f} = in }}; add({f}); {z} = in }}"]
        if self.chance(0.5):
            return [*lines, f"{self.join_name()}add({z})"]
        return [*lines, f"{self.join_name()}cat({z})", self.restore(shape)]

    def guards(self, shape: Shape) -> list[str]:
        """A guard on a call, a sequence, a repeat, a join or a primitive (which switches its
        connection, not its body), true or false."""
        c = shape[0]
        cond, value = self.condition(shape)
        form = self.rng.choice(["call", "seq", "repeat", "skip", "concat", "gate", "weight"])
        if form == "call":
            return [f"{self.name()}conv({c}, 3) if {cond}"]
        if form == "seq":
            return [f"{self.name()}{{ {'; '.join(self.keep(shape))} }} if {cond}"]
        if form == "repeat":
            return [f"{self.fresh('r')}: repeat {self.rng.randint(1, 2)} "
                    f"{{ {'; '.join(self.inner(shape))} }} if {cond}"]
        if form == "concat":
            lines, cur = self.sized(shape)
            out = f"{self.name()}concat {{ {'; '.join(lines)} }} if {cond}"
            return [out, self.restore(shape)] if value or cur != shape else [out]
        head = {"skip": "skip", "gate": "gate(bias = -1)", "weight": "weight(init = 0.5)"}[form]
        body = [f"{self.name(1)}conv({c}, 3)", "relu", *self.keep(shape)] if form == "gate" \
            else self.keep(shape)
        return [f"{self.name()}{head} {{ {'; '.join(body)} }} if {cond}"]

    def multi_branch(self, shape: Shape) -> list[str]:
        """`skip` and `concat` over branches, named and unnamed."""
        n = self.rng.randint(1, 3)
        if self.chance(0.5):
            parts = [f"{self.name()}branch {{ {'; '.join(self.keep(shape))} }}"
                     for _ in range(n)]
            if self.chance(0.5):
                parts.append("branch { identity }")
            return [f"{self.name()}skip {{ {' '.join(parts)} }}"]
        parts = [f"{self.name()}branch {{ {'; '.join(self.sized(shape)[0])} }}"
                 for _ in range(n)]
        return [f"{self.name()}concat {{ {' '.join(parts)} }}", self.restore(shape)]

    def wired_block(self, shape: Shape) -> list[str]:
        """A block with parameters, bindings, a `def` function, nested unnamed sequences,
        dotted names, a named tensor and a guarded join; called named, or in a repeat under
        interpolated names."""
        name, half = f"wired{self.tag}", f"half{self.tag}"
        if not self.has_wired_block:
            self.has_wired_block = True
            self.blocks.append(
                f"def {half}(v) {{ return max(1, v // 2) }}\n"
                f"block {name}(width, n = 2, res = true) {{\n"
                "    c = in.c\n"
                "    t = in\n"
                f"    {{ conv({half}(width), 1); bn }} {{ conv(c, 3); bn }}\n"
                "    repeat n as i { convs.{i}: conv(c, 1); bns.{i}: bn; relu if i < n - 1 }\n"
                "    add(in, t) if res\n"
                "    relu\n"
                "}\n")
        w, n, m = self.width(1, 12), self.rng.randint(1, 2), self.fresh("m")
        if self.chance(0.5):
            return [f"{m}: {name}({w}, n = {n})"]
        return [f"repeat {n} as i {{ {m}_{{i + 1}}: {name}({w}, res = i > 0) }}"]

    def numbered(self, shape: Shape) -> list[str]:
        """Numbers as names, beside positions: `0: conv`, a position, a dotted `2.fc`."""
        c, m = shape[0], self.fresh("m")
        return [f"{m}: {{ 0: conv({c}, 1); relu; 2.fc: conv({c}, 3); {{ bn; relu }} }}"]

    def odd_names(self, shape: Shape) -> list[str]:
        """Names that are Python's (`None`, `class`, `self`, `_`) in a block called with two
        widths (one class, its widths as constructor parameters), and numbered children
        made in reverse (`r.{n - 1 - i}`)."""
        c, m, n = shape[0], self.fresh("m"), self.rng.randint(1, 3)
        name = f"odd{self.tag}{self.counter}"
        a, b = self.rng.sample(["_", "None", "class", "lambda", "self", "x", "_1", "print"], 2)
        self.blocks.append(f"block {name}(width) {{ {a}: conv(width, 3); {b}: bn; relu }}\n")
        return [f"{m}: repeat 2 as i {{ v.{{i}}: {name}({c} + i) }}", self.restore(shape),
                f"repeat {n} as i {{ r{m}.{{{n - 1} - i}}: conv({c}, 1) }}"]

    def flat_residual(self, c: int) -> list[str]:
        """A residual of linear layers written with a named tensor."""
        self.used["flat_residual"] += 1
        t = self.fresh("t")
        join = self.rng.choice([f"add(in, {t})", f"mul({t}, in)", f"add({t})"])
        mid = self.width(1, 16)
        if join == f"add({t})":  # continue from t, then join the layers' output
            u = self.fresh("u")
            return [f"{t} = in", f"linear({mid}); relu; linear({c})", f"{u} = in", join,
                    f"add(in, {u})"]
        return [f"{t} = in", f"linear({mid}); relu; linear({c})", f"{self.join_name()}{join}"]


# Every kind of wiring construct `Gen.wired` makes, and the flat one: the coverage test
# (tests/test_onnx_difftest.py) finds each in a fixed sample of seeds.
CONSTRUCTS = ("residual", "branches", "collect", "dotted", "revisit", "fuse", "guards",
              "multi_branch", "wired_block", "numbered", "odd_names", "flat_residual", "outputs")


def generate(seed: int) -> str:
    """The text of one random valid spec."""
    return generate_with(seed)[0]


def generate_with(seed: int) -> tuple[str, Counter[str]]:
    """The text of one random valid spec and the wiring constructs it holds, by kind."""
    rng = random.Random(seed)
    g = Gen(rng, random.Random(seed + 2**32), random.Random(seed + 2**35),
            tensor=random.Random(seed + 2**37))
    # The wiring (named tensors, joins, dotted levels, guards, branches, `def`) comes from
    # its own generator, between the main generator's statements, and gives the shape it
    # was given back: the main draws, and so each seed's statements of before it existed,
    # are unchanged (the REGRESSIONS of test_onnx_difftest keep their ceil-mode pools).
    w = Gen(random.Random(seed + 2**33), random.Random(seed + 2**34), tag="w",
            blocks=g.blocks, wiring=True)
    statements: list[str] = []
    extra_output = ""  # a tensor that is also an output, when there are several
    if rng.random() < 0.1:
        c = rng.randint(2, 16)
        statements.append(f"input [{c}]")
        for _ in range(rng.randint(1, 5)):
            text, c = g.flat_statement(c)
            statements.append(text)
            if w.chance(0.6):
                statements += w.flat_residual(c)
    else:
        shape: Shape = (rng.randint(1, 8), rng.randint(4, 16), rng.randint(4, 16))
        statements.append(f"input [{shape[0]}, {shape[1]}, {shape[2]}]")
        # Several outputs (issue 16) from their own stream, so the other draws are unchanged:
        # a top-level tensor, or one named inside a named sequence and read across it
        # (`lvl.t`), becomes an output beside the final tensor.
        outs = random.Random(seed + 2**36)
        extra_output = "" if outs.random() >= 0.2 else outs.choice(["top", "level"])
        count = rng.randint(1, 7)
        at = outs.randint(0, count - 1)
        for i in range(count):
            text, shape = g.feature_statement(shape)
            statements.append(text)
            if extra_output and i == at:
                extra_output = _named_output(statements, extra_output)
            if w.chance(0.6):
                lines, again = w.wired(shape)
                assert again == shape
                statements += lines
            if g.dense.random() < 0.15:
                statements.append(g.dense_statement(shape))
            if g.tensor.random() < 0.4:
                statements.append(g.tensor_statement(shape))
        if rng.random() < 0.7:
            pool = rng.choice(["global_avgpool", "avgpool(1)"])
            statements.append(g.name() + pool)
            statements.append(g.name() + "flatten")
            c = shape[0] if pool == "global_avgpool" else shape[0] * shape[1] * shape[2]
            for _ in range(rng.randint(0, 2)):
                text, c = g.flat_statement(c)
                statements.append(text)
            statements.append(g.name(0.8) + _call("linear", rng.randint(1, 10)))
    if extra_output:
        statements += ["output out", f"output mid = {extra_output}"]
    used = g.used + w.used
    if extra_output:
        used["outputs"] += 1
    body = "\n".join("    " + s for s in statements)
    text = "".join(b + "\n" for b in g.blocks) + f"network gen{seed}() {{\n{body}\n}}\n"
    return text, used


def _named_output(statements: list[str], where: str) -> str:
    """Name the flowing tensor for an extra output: at the top level (`omid = in`), or inside
    a named sequence wrapping the last statement, read across it (`omid_level.t`)."""
    if where == "top":
        statements.append("omid = in")
        return "omid"
    statements[-1] = f"omid_level: {{ {statements[-1]}; t = in }}"
    return "omid_level.t"


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
    """`compare` on the spec of `seed`, with an opset and BN folding drawn from the seed."""
    path = folder / f"gen{seed}.res"
    path.write_text(generate(seed), encoding="utf-8")
    return compare(path, seed)


def compare(path: Path, seed: int) -> Outcome:
    """Compile the spec at `path` to ONNX and to PyTorch, twice: the in-memory module
    (`build_module`) and the generated source as `--to python` writes it, executed on its
    own. Each module's state_dict must have the keys and shapes of `state_shapes()`, in its
    order; the ONNX model must pass `onnx.checker` (full) and strict shape inference with
    resdsl's shapes; with the same (perturbed) weights, ONNX Runtime's output must equal the
    module's (eval mode, rtol 1e-4, atol 1e-5 scaled by the output's magnitude), and the
    source's output the module's, exactly."""
    import torch

    # The tensors are tiny: a second thread only waits for the first, and on a loaded
    # machine each parallel region can wait milliseconds for it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _compare(path, seed)
    finally:
        torch.set_num_threads(threads)


def _compare(path: Path, seed: int) -> Outcome:
    import numpy as np
    import onnx
    import torch

    import resdsl
    from resdsl.backends.torch_module import build_module
    from resdsl.verify import sample_input, session

    rng = random.Random(seed)
    opset, fold_bn = rng.choice([13, 17, 21]), rng.random() < 0.3
    net = resdsl.load(str(path))
    state = perturb(net.init_state(seed), seed)
    model = net.to_onnx(weights=state, opset=opset, fold_bn=fold_bn)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                 data_prop=True)
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output]}
    onnx_file = path.with_suffix(".onnx")
    onnx_file.write_bytes(model.SerializeToString())
    x = sample_input(net.input_shape, 2, seed)
    ys = session(str(onnx_file), threads=1).run(None, {"input": x})
    onnx_file.unlink()
    expected = list(net.state_shapes().items())
    detail = ""
    module = build_module(net.graph, state).eval()
    source = _source_module(net.to_python(), path.stem)
    for what, m in (("module", module), ("source", source)):
        got = [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
        if got != expected:
            detail += f"; the {what}'s state_dict is not state_shapes(): " + _first_difference(
                got, expected)
    source.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True,
                           assign=True)
    source.eval()
    with torch.inference_mode():
        refs = _results(module(torch.from_numpy(x)))
        from_source = _results(source(torch.from_numpy(x)))
    if len(refs) != len(from_source) or not all(
            np.array_equal(a, b, equal_nan=True) for a, b in zip(refs, from_source, strict=False)):
        detail += "; the source's output is not the module's"
    if len(ys) != len(refs):
        detail += f"; ONNX has {len(ys)} outputs, the module {len(refs)}"
    max_diff = max_ref = 0.0
    exact: list[Any] | None = None
    for index, (y, ref) in enumerate(zip(ys, refs, strict=False)):
        diff = np.abs(np.asarray(y, np.float64) - ref)
        max_ref = max(max_ref, float(np.abs(ref).max()))
        max_diff = max(max_diff, float(diff.max()))
        if (diff <= 1e-5 * max(1.0, float(np.abs(ref).max())) + 1e-4 * np.abs(ref)).all():
            continue
        # A deep random network rounds more than that in float32: within four times the
        # module's own rounding error (against the same module in float64), the two
        # backends agree; a wrong op is off by far more.
        if exact is None:
            with torch.inference_mode():
                exact = _results(copy.deepcopy(module).double()(torch.from_numpy(x).double()))
        rounding = float(np.abs(ref - exact[index]).max())
        if float(diff.max()) > 4 * rounding:
            detail += (f"; output {index} differs: max |Δ| {float(diff.max()):.3g}, max |y| "
                       f"{float(np.abs(ref).max()):.3g}, float32 rounding {rounding:.3g}")
    for node in net.graph.nodes():
        name = node.path if node.op != "input" else "input"
        if name in shapes and shapes[name] != ["batch", *node.shape]:
            detail += f"; ONNX infers {shapes[name]} for {name}, resdsl {list(node.shape)}"
    return Outcome(seed, not detail, opset, fold_bn, max_diff, max_ref, detail.strip("; "))


def _results(result: Any) -> list[Any]:
    """A module's outputs as numpy arrays, in order: one tensor, or the values of the
    OrderedDict a network with named outputs returns."""
    values = list(result.values()) if isinstance(result, dict) else [result]
    return [v.numpy() for v in values]


def _source_module(source: str, name: str) -> Any:
    """The network that `source` (a `--to python` file) defines, built as a user would: the
    file executed as a module of its own, its one exported class called with no argument."""
    import types

    import torch

    module = types.ModuleType(f"resdsl_difftest_{name}")
    exec(compile(source, f"<{name}.py>", "exec"), module.__dict__)
    (cls,) = module.__dict__["__all__"]
    with torch.device("meta"):  # the weights come from load_state_dict(assign=True)
        return module.__dict__[cls]()


def _first_difference(got: list[tuple[str, Shape]], expected: list[tuple[str, Shape]]) -> str:
    for k, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            return f"entry {k} is {a}, not {b}"
    return f"{len(got)} entries, not {len(expected)}"
