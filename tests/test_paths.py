"""`resdsl paths` and `Network.paths()`: input-to-output paths by length.

The expected values come from outside the code under test:
- for the ResNets, the binomial C(n, k) of Veit et al. 2016 (section 3), with n the number of
  residual units the papers give: torchvision's layer counts (He et al. 2015, Table 1), 3n
  for the CIFAR nets of depth 6n + 2 (He et al. 2015, section 4.2), (depth − 2)/9 per stage
  for the bottleneck pre-activation nets (He et al. 2016, "Identity mappings");
- for DenseNet, DPN and highway networks, the same binomial with n the dense layers, dual
  units or gated layers (the reasoning is in resdsl/ir/paths.py), and a brute-force
  enumeration of every path of small graphs, whose length is found from the node sets the
  frames record rather than from the merges' inputs that the dynamic programme weighs;
- for a spec that mixes every join, the product of each join's polynomial, derived by hand.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resdsl
from resdsl.ir import paths as paths_module
from resdsl.ir.graph import Graph
from resdsl.ir.joins import named_joins
from tests.conftest import ROOT, SPECS, run_cli

GOLDEN = ROOT / "tests" / "golden" / "compile"


def binomial(n: int) -> list[int]:
    return [math.comb(n, k) for k in range(n + 1)]


# (spec, -D parameters, residual units according to the paper)
RESNETS = [
    ("resnet18", {}, 2 + 2 + 2 + 2),
    ("resnet34", {}, 3 + 4 + 6 + 3),
    ("resnet50", {}, 3 + 4 + 6 + 3),
    ("resnet101", {}, 3 + 4 + 23 + 3),
    ("resnet152", {}, 3 + 8 + 36 + 3),
    ("resnext50_32x4d", {}, 16),
    ("wide_resnet50_2", {}, 16),
    ("seresnet50", {}, 16),  # the SE attention multiplies a path, it is not one
    ("resnetv2_50", {}, 16),
    ("resnet20", {}, 3 * 3),
    ("resnet56", {}, 3 * 9),
    ("resnet110", {}, 3 * 18),
    ("resnet20", {"depth": 1202}, 3 * 200),
    ("preact_resnet164", {}, 3 * 18),
    ("preact_resnet1001", {}, 3 * 111),
    ("wrn28_10", {}, 3 * 4),
    ("rezero_resnet56", {}, 27),  # weight: y = x + α·F(x)
]


@pytest.mark.parametrize(("spec", "params", "units"), RESNETS,
                         ids=[f"{s}{p or ''}" for s, p, _ in RESNETS])
def test_resnets_have_binomial_path_counts(spec: str, params: dict[str, Any],
                                           units: int) -> None:
    counts = resdsl.load(str(SPECS / f"{spec}.res"), **params).paths()
    assert counts.units == units
    assert list(counts.counts) == binomial(units)
    assert counts.total == 2**units
    assert counts.mean == units / 2


def test_densenet_dpn_and_highway_are_binomial_too() -> None:
    """A dense layer's concat, a dual unit and a highway layer each offer one path around
    and one through: 6+12+24+16 dense layers in DenseNet-121 (Huang et al. 2017, Table 1),
    3+4+20+3 dual units in DPN-92 (Chen et al. 2017, Table 1), 4+5+5 gated layers in the
    19-layer highway net (the authors' prototxt)."""
    for spec, n, kind in (("densenet121", 58, "concat"), ("dpn92", 30, "dual"),
                          ("highway_cifar19", 14, "gate")):
        counts = resdsl.load(str(SPECS / f"{spec}.res")).paths()
        assert counts.joins == {kind: n}
        assert list(counts.counts) == binomial(n), spec


def test_plain_nets_have_one_path() -> None:
    for depth in (20, 56):
        counts = resdsl.load(str(SPECS / "plain_cifar.res"), depth=depth).paths()
        assert counts.counts == (1,) and counts.joins == {}


def _ops(net: resdsl.Network) -> list[tuple[str, str, tuple[int, ...], tuple[int, ...]]]:
    return [(n.op, n.path, n.inputs, n.shape) for n in net.graph.nodes()]


@pytest.mark.parametrize("depth", [20, 56, 110])
def test_the_plain_spec_is_the_resnet_without_skips(depth: int) -> None:
    """specs/plain_cifar.res with `plain = false` is specs/resnet20.res node for node, and
    with `plain = true` it has the same tensors and drops exactly the adds and zero-pads."""
    resnet = resdsl.load(str(SPECS / "resnet20.res"), depth=depth)
    back = resdsl.load(str(SPECS / "plain_cifar.res"), depth=depth, plain=False)
    plain = resdsl.load(str(SPECS / "plain_cifar.res"), depth=depth)
    assert _ops(back) == _ops(resnet)
    assert plain.state_shapes() == resnet.state_shapes()
    assert plain.counts() == resnet.counts()
    dropped = Counter(n.op for n in resnet.graph.nodes()) - Counter(
        n.op for n in plain.graph.nodes())
    units = (depth - 2) // 6 * 3
    assert dropped == Counter({"add": units, "zeropad": 2})


# ------------------------------------------------------------------ brute force

BODY_JOINS = ("skip", "weight", "gate", "concat", "dual")


def _join_bodies(graph: Graph) -> dict[int, set[int]]:
    """For each node, the joins whose body created it: the nodes a join frame created
    before its merge, outside its shortcut and transform clauses, that are not `identity`
    (a `branch { identity }` is a join's identity side)."""
    member: dict[int, set[int]] = {}
    for f in graph.frames:
        if f.kind != "primitive" or f.name not in BODY_JOINS or f.output is None:
            continue
        clauses = [c for c in graph.frames if c.parent == f.id and c.kind == "clause"]
        for nid in range(f.start, f.output):
            if any(c.start <= nid < (c.end or c.start) for c in clauses):
                continue
            if graph.node(nid).op in ("identity", "alpha", "rescale", "sigmoid"):
                continue
            member.setdefault(nid, set()).add(f.id)
    return member


def _modulating_edges(graph: Graph) -> set[tuple[int, int]]:
    """(merge, input index) of a gate's T and a scale's attention: no path takes them."""
    edges = set()
    for f in graph.frames:
        if f.kind == "primitive" and f.output is not None:
            if f.name == "gate":
                edges.add((f.output, 0))
            elif f.name == "scale":
                edges.add((f.output, 1))
    return edges


def brute_force(graph: Graph) -> list[int]:
    """Every input-to-output path, enumerated one by one, and its length: how many joins'
    bodies it visits."""
    out_edges: dict[int, list[tuple[int, int]]] = {}
    for u, v, index in graph.edges():
        out_edges.setdefault(u, []).append((v, index))
    member = _join_bodies(graph)
    skip = _modulating_edges(graph)
    assert graph.output is not None
    lengths: Counter[int] = Counter()

    def walk(node: int, visited: frozenset[int]) -> Iterator[frozenset[int]]:
        visited = visited | member.get(node, set())
        if node == graph.output:
            yield visited
            return
        for v, index in out_edges.get(node, []):
            if (v, index) not in skip:
                yield from walk(v, visited)

    for joins in walk(0, frozenset()):
        lengths[len(joins)] += 1
    top = max(lengths, default=0)
    return [lengths[k] for k in range(top + 1)]


SMALL = [
    ("densenet121.res", {"blocks": [2, 3], "growth": 4, "init": 8}, "3x32x32", 5),
    ("dpn92.res", {"k_sec": [1, 2, 1, 1]}, "3x64x64", 5),
    ("highway_cifar19.res", {}, None, 14),
    ("rezero_resnet56.res", {"depth": 14}, "3x16x16", 6),
    ("resnet18.res", {}, "3x32x32", 8),
]


@pytest.mark.parametrize(("spec", "params", "shape", "n"), SMALL,
                         ids=[s for s, *_ in SMALL])
def test_the_count_matches_brute_force(spec: str, params: dict[str, Any],
                                       shape: str | None, n: int) -> None:
    net = resdsl.load(str(SPECS / spec), input_shape=shape, **params)
    expected = brute_force(net.graph)
    assert expected == binomial(n)
    assert list(net.paths().counts) == expected


MIX = """\
block unit(c) {
    skip {
        conv(c, 3); bn; relu
        skip { conv(c, 3); bn }
        se: scale {
            global_avgpool; conv(c // 4, 1, bias = true); relu
            conv(c, 1, bias = true); sigmoid
        }
    }
    relu
}

network mix(classes = 10) {
    input [3, 16, 16]
    conv(16, 3)
    unit(16)
    weight { branch { conv(16, 3); bn } branch { identity } branch { conv(16, 1) } }
    gate { conv(16, 3, bias = true); relu }
    concat { conv(8, 3) }
    skip { group(4) { conv(4, 1); relu; conv(4, 3) }; conv(24, 1) }
    global_avgpool; flatten; linear(classes)
}
"""


def test_every_join_kind_against_hand_and_brute_force(tmp_path: Path) -> None:
    """By hand: the unit is 1 + z(1 + z) (around; through the outer body, then around or
    through the nested skip; the SE scale adds nothing), the weighted branches 1 + 2z (the
    identity branch and two bodies), the gate, the concat and the skip around a group
    1 + z each."""
    spec = tmp_path / "mix.res"
    spec.write_text(MIX, encoding="utf-8")
    net = resdsl.load(str(spec))
    poly = np.polymul(np.polymul([1, 1, 1][::-1], [1, 2][::-1]), [1, 3, 3, 1][::-1])[::-1]
    expected = [int(c) for c in poly]
    assert expected == [1, 6, 15, 21, 18, 9, 2]
    assert brute_force(net.graph) == expected
    counts = net.paths()
    assert list(counts.counts) == expected
    assert counts.joins == {"skip": 3, "weight": 1, "gate": 1, "concat": 1}


def test_an_empty_body_adds_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "empty.res"
    spec.write_text("network e {\n    input [4, 8, 8]\n    skip { }\n    skip { relu }\n}\n",
                    encoding="utf-8")
    net = resdsl.load(str(spec))
    assert list(net.paths().counts) == [2, 2] == brute_force(net.graph)


# ------------------------------------------------------------------ joins of named tensors

# The pre-activation basic block (He et al. 2016) with its shortcut reading the activated
# tensor, written with `skip` and with named tensors (issue 15, item 16), and the plain
# identity block written both ways.
PREACT = {
    "skip": "bn1: bn; relu\n    skip {\n        conv1: conv(c, 3); bn2: bn; relu\n"
            "        conv2: conv(c, 3)\n    }",
    "named": "bn1: bn; relu\n    x = in\n    conv1: conv(c, 3); bn2: bn; relu\n"
             "    conv2: conv(c, 3)\n    add(in, x)",
    "skip_identity": "skip {\n        bn1: bn; relu; conv1: conv(c, 3); bn2: bn; relu\n"
                     "        conv2: conv(c, 3)\n    }",
    "named_identity": "x = in\n    bn1: bn; relu; conv1: conv(c, 3); bn2: bn; relu\n"
                      "    conv2: conv(c, 3)\n    add(x, in)",
}


def preact_spec(body: str, units: int = 3) -> str:
    return (f"block unit(c) {{\n    {body}\n}}\n\nnetwork preact() {{\n"
            f"    input [16, 8, 8]\n    layer1: repeat {units} {{ unit(16) }}\n}}\n")


def _load(tmp_path: Path, text: str) -> resdsl.Network:
    spec = tmp_path / "spec.res"
    spec.write_text(text, encoding="utf-8")
    return resdsl.load(str(spec))


@pytest.mark.parametrize("variant", ["", "_identity"])
def test_a_residual_of_named_tensors_counts_as_a_skip(tmp_path: Path, variant: str) -> None:
    """`x = in; ...; add(in, x)` is the residual join `skip { ... }` is: the same joins and
    the same paths, C(3, k) for three units (before, it counted no join and 8 paths of
    length 0)."""
    written = _load(tmp_path, preact_spec(PREACT["skip" + variant])).paths()
    named = _load(tmp_path, preact_spec(PREACT["named" + variant])).paths()
    assert list(written.counts) == list(named.counts) == binomial(3)
    assert written.joins == named.joins == {"skip": 3}


def test_which_joins_of_named_tensors_are_residual(tmp_path: Path) -> None:
    """A join is residual when one tensor is the one all others are computed from (it
    dominates them): that tensor goes around, each other one through. A sum of two tensors
    computed from x, or of unrelated ones (Res2Net's), is not a join."""
    three = _load(tmp_path, "network n {\n    input [4, 8, 8]\n    x = in\n"
                  "    conv(4, 3); a = in\n    x; conv(4, 1); b = in\n    add(a, b, x)\n}\n")
    assert list(three.paths().counts) == [1, 2] and three.paths().joins == {"skip": 1}
    assert list(paths_module.edge_lengths(three.graph)[0].values()) == [1, 1, 0]
    projection = _load(tmp_path, "network n {\n    input [4, 8, 8]\n    x = in\n"
                       "    conv(4, 3); y = in\n    x; conv(4, 1)\n    add(y, in)\n}\n")
    assert list(projection.paths().counts) == [2] and projection.paths().joins == {}
    # y reads x and the input beside it: x does not dominate y.
    beside = _load(tmp_path, "network n {\n    input [4, 8, 8]\n    i = in\n    relu\n"
                   "    x = in\n    add(in, i); conv(4, 1)\n    add(in, x)\n}\n")
    assert beside.paths().joins == {"skip": 1}  # only add(in, i): relu(i) + i
    dense = _load(tmp_path, "network n {\n    input [4, 8, 8]\n    x = in\n"
                  "    conv(4, 3)\n    cat(x, in)\n}\n")
    assert list(dense.paths().counts) == [1, 1] and dense.paths().joins == {"concat": 1}
    res2net = resdsl.load(str(SPECS / "res2net50_26w_4s.res"))
    assert res2net.paths().joins == {"skip": 16}  # its units; no `add(in, previous)`


def test_named_joins_along_a_long_chain(tmp_path: Path) -> None:
    """2,000 tensors of a chain, each joined with the last one: every join is residual, its
    shortcut the earlier tensor (found by jump pointers up the dominator tree, where a walk
    up the chain would be quadratic)."""
    n = 2_000
    text = (f"network n {{\n    input [4, 8, 8]\n    repeat {n} {{ relu; z = in }}\n"
            f"    y = in\n    repeat {n - 1} as i {{ add(y, z[i]); w = in }}\n"
            "    cat(w)\n}\n")
    graph = _load(tmp_path, text).graph
    joins = named_joins(graph)
    assert len(joins) == n - 1 and {j.shortcut for j in joins.values()} == {1}
    assert {j.kind for j in joins.values()} == {"skip"}


# ------------------------------------------------------------------ the command


def test_the_table(tmp_path: Path) -> None:
    run = run_cli("paths", "specs/resnet20.res")
    assert run.code == 0 and run.err == ""
    assert run.out == (
        "resnet20 (specs/resnet20.res): 9 joins (skip ×9); 512 paths from input to output\n"
        "\n"
        "length  paths    share\n"
        "     0      1   0.20 %\n"
        "     1      9   1.76 %\n"
        "     2     36   7.03 %\n"
        "     3     84  16.41 %\n"
        "     4    126  24.61 %\n"
        "     5    126  24.61 %\n"
        "     6     84  16.41 %\n"
        "     7     36   7.03 %\n"
        "     8      9   1.76 %\n"
        "     9      1   0.20 %\n"
        "\n"
        "mean length 4.50, most common 4; the counts are the binomial C(9, k)\n"
    )


def test_json_has_exact_integers() -> None:
    run = run_cli("paths", "specs/resnet110.res", "--format", "json")
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    assert doc["counts"] == binomial(54) and doc["total"] == 2**54
    assert doc["joins"] == {"skip": 54} and doc["binomial"] is True
    assert doc["counts"][27] == 1_946_939_425_648_112  # beyond a double's 2^53


def test_options_reach_the_network() -> None:
    run = run_cli("paths", "specs/densenet121.res", "-D", "blocks=[1, 2]", "--input",
                  "3x64x64", "--format", "json")
    assert json.loads(run.out)["counts"] == [1, 3, 3, 1]


def test_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.png"
    run = run_cli("paths", "specs/dpn92.res", "--plot", str(out))
    assert run.code == 0, run.err
    assert run.out.endswith(f"wrote {out}: paths of dpn92 by length\n")
    assert out.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("target", ["p.txt", "no_such_folder/p.png", "."])
def test_bad_plot_paths_are_usage_errors(target: str, tmp_path: Path) -> None:
    run = run_cli("paths", "specs/resnet20.res", "--plot", str(tmp_path / target))
    assert run.code == 2 and run.err.startswith("resdsl: error: --plot ")


def test_a_bad_spec_is_a_diagnostic() -> None:
    run = run_cli("paths", "tests/golden/errors/E0301_skip_channel_mismatch.res")
    assert run.code == 1 and "error[E0301]" in run.err and "Traceback" not in run.err


def _golden(name: str, text: str) -> None:
    assert text == (GOLDEN / f"{name}.txt").read_text(encoding="utf-8")


def test_too_many_joins(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real limit (5,000) needs a 30,000-node spec; the check is the same at 8.
    monkeypatch.setattr(paths_module, "MAX_JOINS", 8)
    run = run_cli("paths", "specs/resnet20.res")
    assert run.code == 1 and run.out == ""
    _golden("E0731_too_many_joins", run.err)
    with pytest.raises(resdsl.SpecError):
        resdsl.load(str(SPECS / "resnet20.res")).paths()


def _subprocess(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})


def test_no_torch_and_no_matplotlib_without_plot() -> None:
    run = _subprocess(
        "import sys; from resdsl.cli import main; "
        "rc = main(['paths', 'specs/dpn92.res']); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'onnx', 'onnxruntime', 'matplotlib')]; print(rc, heavy)", ROOT)
    assert run.stdout.strip().endswith("0 []"), run.stdout + run.stderr


def test_missing_matplotlib_is_a_diagnostic(tmp_path: Path) -> None:
    run = _subprocess(
        "import sys; sys.modules['matplotlib'] = None; from resdsl.cli import main; "
        f"sys.exit(main(['paths', {str(SPECS / 'resnet20.res')!r}, '--plot', 'p.png']))",
        tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    _golden("E0732_needs_matplotlib", run.stderr)
    assert list(tmp_path.iterdir()) == []
