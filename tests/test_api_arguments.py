"""The Python API's arguments (issue 15, items 12, 13, 14 and 18).

Every public entry point checks its arguments with `resdsl.arguments`, the same checkers as
the command line: a bad argument raises `resdsl.ArgumentError` (a `UsageError`, `TypeError`
and `ValueError`) naming the keyword, never an error from deep inside, and never a flag. The
property test at the end throws many wrong values at every entry point and accepts nothing
but the documented exceptions.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resdsl
from resdsl import ArgumentError, SpecError, UsageError
from resdsl.api import check_size
from resdsl.diagnostics import render_all_text
from tests.conftest import SPECS, run_cli

TINY = """\
network tiny(width = 4, classes = 2, act = true, mode = "sum", sizes = [1, 2]) {
    input [3, 8, 8]
    conv1: conv(width, 3); bn1: bn; relu
    avgpool: global_avgpool; flatten
    fc: linear(classes)
}
"""
RESNET20 = str(SPECS / "resnet20.res")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("spec") / "tiny.res"
    path.write_text(TINY, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def tiny(tiny_path: str) -> resdsl.Network:
    return resdsl.load(tiny_path)


def wrong(value: object) -> Any:
    """`value`, typed Any: the tests pass what the signatures do not allow, on purpose."""
    return value


def _refused(call: Callable[[], object], argument: str) -> ArgumentError:
    """`call()` raises ArgumentError for `argument`; that error, for its message."""
    with pytest.raises(ArgumentError) as info:
        call()
    exc = info.value
    assert exc.argument == argument
    assert isinstance(exc, UsageError) and isinstance(exc, TypeError)
    assert isinstance(exc, ValueError)
    return exc


# ------------------------------------------------------------------ item 12: each case


def test_the_exception_is_exported_and_documented() -> None:
    assert resdsl.ArgumentError is ArgumentError
    assert issubclass(ArgumentError, resdsl.UsageError)
    assert "ArgumentError" in resdsl.__all__
    assert "ArgumentError" in (Path(__file__).parent.parent / "docs" / "api.md").read_text()


def test_seed_none_is_an_argument_error(tiny: resdsl.Network) -> None:
    # Was a TypeError from `None % 2**64` in the initialiser.
    exc = _refused(lambda: tiny.to_torch(seed=wrong(None)), "seed")
    assert str(exc).startswith("seed=None: must be an integer from 0 to 2**64 - 1")
    _refused(lambda: tiny.init_state(seed=wrong(None)), "seed")
    _refused(lambda: tiny.state(seed=wrong("3")), "seed")


def test_numpy_integers_are_integers(tiny_path: str, tiny: resdsl.Network) -> None:
    # `classes=np.int64(10)` was refused as "not a number"; seed=np.int64(3) overflowed.
    net = resdsl.load(tiny_path, classes=np.int64(10), width=np.int32(6))
    assert net.output_shape == (10,) and net.params["width"] == 6
    three = tiny.init_state(seed=3)
    for seed in (np.int64(3), np.uint64(3), np.int8(3)):
        state = tiny.init_state(seed=seed)
        assert all(np.array_equal(state[k], three[k]) for k in three)
        weights, _ = tiny.state(seed=seed)
        assert np.array_equal(weights["conv1.weight"], three["conv1.weight"])
    assert tiny.info(depth=np.int64(1)) == tiny.info(depth=1)
    assert resdsl.load(tiny_path, input_shape=np.array([3, 9, 9]).tolist()).input_shape == (3, 9, 9)
    assert resdsl.load(tiny_path, input_shape=(np.int64(3), 9, 9)).input_shape == (3, 9, 9)
    # numpy floats and bools are parameters too, as Python's are.
    assert resdsl.load(tiny_path, act=np.bool_(False)).params["act"] is False


def test_seeds_do_not_wrap(tiny: resdsl.Network) -> None:
    # 2**64 gave the weights of seed 0: the initialiser takes one 64-bit word.
    _refused(lambda: tiny.init_state(seed=2**64), "seed")
    _refused(lambda: tiny.state(seed=-1), "seed")
    top = tiny.init_state(seed=2**64 - 1)["conv1.weight"]
    assert not np.array_equal(top, tiny.init_state(seed=0)["conv1.weight"])


def test_opset_text_is_refused(tiny: resdsl.Network) -> None:
    exc = _refused(lambda: tiny.to_onnx(opset=wrong("17")), "opset")
    assert "opsets 13 to 21" in str(exc) and "not a str" in str(exc)
    _refused(lambda: tiny.to_onnx(opset=12), "opset")
    _refused(lambda: tiny.to_onnx(opset=wrong(17.0)), "opset")
    _refused(lambda: tiny.save_onnx("/nonexistent/x.onnx", opset=True), "opset")


def test_max_params_text_and_nan_are_refused(tiny: resdsl.Network) -> None:
    _refused(lambda: tiny.state(max_params=wrong("1e6")), "max_params")
    # NaN compared false with every size: the guard was off.
    _refused(lambda: tiny.state(max_params=wrong(float("nan"))), "max_params")
    _refused(lambda: tiny.to_torch(max_params=wrong(math.inf)), "max_params")
    exc = _refused(lambda: tiny.state(max_params=wrong(1e6)), "max_params")
    assert "write 1_000_000" in str(exc)
    _refused(lambda: tiny.state(max_params=-1), "max_params")
    with pytest.raises(SpecError) as info:  # the guard itself still works
        tiny.state(max_params=np.int64(10))
    assert info.value.diagnostics[0].code == "E0701"


def test_network_must_be_a_name(tiny_path: str) -> None:
    _refused(lambda: resdsl.load(tiny_path, network=wrong(3)), "network")
    exc = _refused(lambda: resdsl.load(tiny_path, network="tyny"), "network")
    assert "did you mean `tiny`" in str(exc)


@pytest.mark.parametrize("shape", [32, b"x", b"3x8x8", [], (), (3, 8), (3, 0, 8), (3, 8.0, 8),
                                   (True, 8, 8), "3x8", "3x-8x8", "+3x8x8", "3_0",
                                   "3x8x8x", "", "1" * 5000, {3: 8}, (3, 2**31, 8)])
def test_bad_input_shapes_are_refused(tiny_path: str, shape: object) -> None:
    # 32 crashed in the elaborator; b"x" was read as (120,); [] was ignored.
    _refused(lambda: resdsl.load(tiny_path, input_shape=wrong(shape)), "input_shape")


def test_an_int_input_shape_says_how_to_write_a_vector(tiny_path: str) -> None:
    exc = _refused(lambda: resdsl.load(tiny_path, input_shape=wrong(32)), "input_shape")
    assert "write (32,)" in str(exc)


@pytest.mark.parametrize("shape", [(3, 9, 9), [3, 9, 9], "3x9x9", "3×9×9", " 3 x 9 x 9 "])
def test_good_input_shapes(tiny_path: str, shape: object) -> None:
    assert resdsl.load(tiny_path, input_shape=wrong(shape)).input_shape == (3, 9, 9)


def test_info_depth(tiny: resdsl.Network) -> None:
    _refused(lambda: tiny.info(depth=wrong(None)), "depth")
    # -1 returned [] where `resdsl info --depth -1` is an error.
    _refused(lambda: tiny.info(depth=-1), "depth")
    _refused(lambda: tiny.info(depth=0), "depth")
    _refused(lambda: tiny.info(depth=True), "depth")
    rows = tiny.info(depth=1)
    assert len(rows) == 6 and rows[0].path == "conv1" and rows[-1].path == "fc"


@pytest.mark.parametrize(("keyword", "value"), [
    ("classes", None), ("classes", float("nan")), ("classes", math.inf), ("classes", {}),
    ("classes", object()), ("classes", 2**70), ("mode", 'a"b'), ("mode", "a\nb"),
    ("sizes", [1, [2, None]]), ("classes", b"10"),
])
def test_bad_parameter_values_are_refused(tiny_path: str, keyword: str, value: object) -> None:
    _refused(lambda: resdsl.load(tiny_path, **{keyword: wrong(value)}), keyword)


def test_a_list_that_contains_itself_is_refused(tiny_path: str) -> None:
    loop: list[object] = [1]
    loop.append(loop)
    _refused(lambda: resdsl.load(tiny_path, sizes=loop), "sizes")


def test_flags_take_bools_only(tiny: resdsl.Network) -> None:
    # `strict="no"` was true.
    _refused(lambda: tiny.state(strict=wrong("no")), "strict")
    _refused(lambda: tiny.state(replace_head=wrong(1)), "replace_head")
    _refused(lambda: tiny.init_state(zero_init_residual=wrong(None)), "zero_init_residual")
    _refused(lambda: tiny.to_onnx(fold_bn=wrong("yes")), "fold_bn")
    _refused(lambda: tiny.draw(format="dot", expand=wrong("no")), "expand")
    assert tiny.state(strict=wrong(np.bool_(False)))[1] is None


def test_paths_and_weights(tiny: resdsl.Network, tmp_path: Path) -> None:
    _refused(lambda: resdsl.load(wrong(None)), "path")
    _refused(lambda: resdsl.load(wrong(b"spec.res")), "path")
    _refused(lambda: resdsl.load("a\0b"), "path")
    _refused(lambda: tiny.save_python(wrong(3)), "path")
    _refused(lambda: tiny.state(weights=wrong(3)), "weights")
    _refused(lambda: tiny.state(weights="w\0.pth"), "weights")
    # An os.PathLike works wherever a path does.
    assert resdsl.load(Path(tiny.path)).name == "tiny"
    tiny.save_python(tmp_path / "tiny.py")
    assert "class Tiny" in (tmp_path / "tiny.py").read_text()


def test_state_from_takes_weight_options(tiny: resdsl.Network) -> None:
    from resdsl.api import WeightOptions

    _refused(lambda: tiny.state_from(wrong({"seed": 1})), "options")
    _refused(lambda: WeightOptions(seed=wrong(None)), "seed")
    options = WeightOptions(seed=wrong(np.int64(2)), weights=None)
    assert type(options.seed) is int


# ------------------------------------------------------------------ the CLI's rules are the same


@pytest.mark.parametrize(("argv", "call"), [
    (["compile", "S", "--to", "onnx", "--seed", "-1"], lambda n, p: n.to_onnx(seed=-1)),
    (["compile", "S", "--to", "onnx", "--seed", str(2**64)],
     lambda n, p: n.to_onnx(seed=2**64)),
    (["compile", "S", "--to", "onnx", "--opset", "22"], lambda n, p: n.to_onnx(opset=22)),
    (["compile", "S", "--to", "onnx", "--max-params", "-5"],
     lambda n, p: n.to_onnx(max_params=-5)),
    (["info", "S", "--depth", "0"], lambda n, p: n.info(depth=0)),
    (["info", "S", "--input", "3x0x8"], lambda n, p: resdsl.load(p, input_shape="3x0x8")),
    (["info", "S", "--input", "3x8"], lambda n, p: resdsl.load(p, input_shape="3x8")),
])
def test_the_command_line_has_the_same_rules(
    tiny_path: str, tiny: resdsl.Network, tmp_path: Path, argv: list[str],
    call: Callable[[resdsl.Network, str], object],
) -> None:
    argv = [tiny_path if a == "S" else a for a in argv]
    if argv[0] == "compile":
        argv += ["-o", str(tmp_path / "x.onnx")]
    run = run_cli(*argv)
    assert run.code == 2 and run.err.startswith("resdsl: error: --"), run.err
    with pytest.raises(ArgumentError) as info:
        call(tiny, tiny_path)
    # The same rule after the argument as each caller writes it (`--seed -1`, `seed=-1`).
    cli_rule = run.err.strip().split(": ", 3)[3]
    api_rule = str(info.value).split(": ", 1)[1]
    if "--input" in argv:  # the API's also says how to write a shape in Python
        assert "sizes from 1 to 2,147,483,647" in cli_rule
        assert "sizes from 1 to 2,147,483,647" in api_rule
    else:  # up to a note on the default, which the API writes `None`
        assert cli_rule.split(" (")[0] == api_rule.split(" (")[0]
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ item 18: no flags in the API


def _no_flags(text: str) -> None:
    for flag in ("-D ", "--input", "--network", "--max-params", "--weights", "--seed", "--opset",
                 "--verify", "-o "):
        assert flag not in text, text


def test_api_messages_do_not_name_flags(tiny_path: str, tiny: resdsl.Network,
                                        tmp_path: Path) -> None:
    calls: list[Callable[[], object]] = [
        lambda: resdsl.load(tiny_path, clases=3),
        lambda: resdsl.load(tiny_path, classes=[1, None]),
        lambda: resdsl.load(tiny_path, network="other"),
        lambda: resdsl.load(tiny_path, input_shape="3x8"),
        lambda: tiny.state(seed=-1),
        lambda: tiny.to_onnx(opset=99),
        lambda: tiny.info(depth=0),
        lambda: tiny.draw(tmp_path / "x.jpg"),
    ]
    for call in calls:
        with pytest.raises(UsageError) as info:
            call()
        _no_flags(str(info.value))
    # Spec errors whose help says how to pass an argument say it the API's way.
    two = tmp_path / "two.res"
    two.write_text("network a { input [4]; relu }\nnetwork b(n) { input [4]; relu }\n")
    for call, words in [
        (lambda: resdsl.load(two), "network=NAME"),
        (lambda: resdsl.load(two, network="b"), "n=VALUE"),
        (lambda: tiny.state(max_params=10), "max_params=N"),
    ]:
        with pytest.raises(SpecError) as spec_error:
            call()
        text = render_all_text(spec_error.value.diagnostics)
        assert words in text, text
        _no_flags(text)
    # ... and the command line's way on the command line.
    run = run_cli("check", str(two), "--network", "b")
    assert run.code == 1 and "pass `-D n=VALUE`" in run.err


def test_a_missing_onnxruntime_is_named_as_the_caller_wrote_it(
    tiny: resdsl.Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import that fails
    with pytest.raises(SpecError) as info:
        tiny.save_onnx(tmp_path / "t.onnx", verify=True)
    assert info.value.diagnostics[0].message.startswith("verify=True needs ONNX Runtime")


# ------------------------------------------------------------------ item 14: draw's formats


@pytest.mark.parametrize("call", [
    lambda n, d: n.draw(format="jpg"),
    lambda n, d: n.draw(depth="block"),
    lambda n, d: n.draw(str(d / "x.jpg")),
    lambda n, d: n.draw(d / "x.JPEG"),
    lambda n, d: n.draw(str(d / "x.svg"), format="svgz"),
])
def test_draw_refuses_unknown_formats_and_depths(tiny: resdsl.Network, tmp_path: Path,
                                                 call: Callable[[resdsl.Network, Path], Any]
                                                 ) -> None:
    # A bare ValueError before; "x.jpg" got SVG bytes.
    with pytest.raises(ArgumentError) as info:
        call(tiny, tmp_path)
    assert info.value.argument in ("format", "depth", "path")
    assert not list(tmp_path.iterdir())


def test_an_unknown_suffix_names_the_formats(tiny: resdsl.Network, tmp_path: Path) -> None:
    exc = _refused(lambda: tiny.draw(str(tmp_path / "x.jpg")), "path")
    for word in (".svg", ".png", ".pdf", ".dot", "format="):
        assert word in str(exc)


def test_draw_to_a_known_suffix_or_with_a_format(tiny: resdsl.Network, tmp_path: Path) -> None:
    assert tiny.draw(tmp_path / "x.dot").format == "dot"
    assert tiny.draw(tmp_path / "x.gv").format == "dot"
    # An explicit format is what the caller asked for, whatever the name.
    assert tiny.draw(tmp_path / "diagram.txt", format="dot").format == "dot"
    assert (tmp_path / "diagram.txt").read_text().startswith("digraph")


def test_cli_draw_to_jpg_is_a_usage_error(tiny_path: str, tmp_path: Path) -> None:
    out = tmp_path / "d.jpg"
    run = run_cli("draw", tiny_path, "-o", str(out))
    assert run.code == 2, run.err
    assert run.err.startswith(f"resdsl: error: -o {out}: `.jpg` is not a format")
    assert "--format" in run.err and ".svg, .png, .pdf, .dot" in run.err
    assert not out.exists()
    assert run_cli("draw", tiny_path, "-o", str(out), "--format", "dot").code == 0
    assert out.read_text().startswith("digraph")


# ------------------------------------------------------------------ item 13: repr


def test_repr_is_one_short_line() -> None:
    net = resdsl.load(str(SPECS / "dpn92.res"))
    text = repr(net)
    # Was a dataclass dump of 1.1 MB.
    assert len(text) < 200 and "\n" not in text
    assert text == ("<resdsl.Network dpn92: 3×224×224 → 1000, "
                    f"{net.counts().params:,} parameters, from {net.path}>")
    assert len(repr(net.result)) < 200
    assert len(str(net)) < 200


def test_notebook_repr_is_a_small_table() -> None:
    net = resdsl.load(str(SPECS / "dpn92.res"))
    page = net._repr_html_()
    assert page.startswith("<table") and len(page) < 10_000
    assert f"{net.counts().params:,}" in page and "dpn92" in page
    # No diagram on display: a notebook keeps every representation it is given.
    assert not hasattr(net, "_repr_svg_")


def test_notebook_table_is_bounded(tmp_path: Path) -> None:
    spec = tmp_path / "wide.res"
    spec.write_text("network wide { input [4]\n" + "relu\n" * 300 + "}\n")
    page = resdsl.load(spec)._repr_html_()
    assert "260 more" in page and page.count("<tr>") < 50


# ------------------------------------------------------------------ the property


WRONG = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6), st.binary(max_size=6),
    st.lists(st.integers(-3, 40), max_size=4), st.tuples(st.integers(-3, 40)),
    st.lists(st.one_of(st.none(), st.text(max_size=2), st.floats()), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.sampled_from([object(), np.int64(3), np.int64(-1), np.uint64(2**64 - 1), np.float32(1.5),
                     np.bool_(True), np.array([3, 8, 8]), np.array(2.0), 2**64, 10**400,
                     "svg", "dot", "stages", "3x8x8", "tiny", (3, 8, 8), [3, 9, 9], 17, 1,
                     float("nan"), math.inf, Path("x"), b"\0", "\0", ...]),
)


def _calls(spec: str, out: str) -> dict[str, Callable[[resdsl.Network, Any], object]]:
    """Every public entry point, with one argument given the value under test; files are
    written in the folder `out`."""
    def no_str(f: Callable[[Any], object]) -> Callable[[resdsl.Network, Any], object]:
        # Paths: a random str would be written as a file, so only other types go there.
        return lambda n, v: None if isinstance(v, (str, os.PathLike)) else f(v)

    def suffix(v: object) -> str:
        """`out/d.SUFFIX`, the suffix made of `v`'s characters that a file name can hold."""
        text = "".join(c for c in str(v)[:5] if c.isalnum())
        return os.path.join(out, "d." + text)

    return {
        "load(path)": lambda n, v: resdsl.load(v) if not isinstance(v, (str, os.PathLike))
        else None,
        "load(network)": lambda n, v: resdsl.load(spec, network=v),
        "load(input_shape)": lambda n, v: resdsl.load(spec, input_shape=v),
        "load(width)": lambda n, v: resdsl.load(spec, width=v),
        "load(sizes)": lambda n, v: resdsl.load(spec, sizes=v),
        "load(mode)": lambda n, v: resdsl.load(spec, mode=v),
        "info(depth)": lambda n, v: n.info(depth=v),
        "init_state(seed)": lambda n, v: n.init_state(seed=v),
        "init_state(zero_init_residual)": lambda n, v: n.init_state(zero_init_residual=v),
        "state(seed)": lambda n, v: n.state(seed=v),
        "state(weights)": lambda n, v: n.state(weights=v),
        "state(strict)": lambda n, v: n.state(strict=v),
        "state(replace_head)": lambda n, v: n.state(replace_head=v),
        "state(max_params)": lambda n, v: n.state(max_params=v),
        "state_from(options)": lambda n, v: n.state_from(v),
        "to_torch(seed)": lambda n, v: n.to_torch(seed=v),
        "to_torch(max_params)": lambda n, v: n.to_torch(max_params=v),
        "to_onnx(opset)": lambda n, v: n.to_onnx(opset=v),
        "to_onnx(fold_bn)": lambda n, v: n.to_onnx(fold_bn=v),
        "save_onnx(path)": no_str(lambda v: resdsl.load(spec).save_onnx(v)),
        "save_onnx(verify)": lambda n, v: n.save_onnx(os.path.join(out, "t.onnx"), verify=v),
        "save_python(path)": no_str(lambda v: resdsl.load(spec).save_python(v)),
        "save_exported(model)": lambda n, v: n.save_exported(os.path.join(out, "m.pt2"), v),
        "save_hub(path)": no_str(lambda v: resdsl.load(spec).save_hub(v)),
        "save_hub(weights)": lambda n, v: n.save_hub(os.path.join(out, "hub"), weights=v),
        "check_size(max_params)": lambda n, v: check_size(n.graph, v),
        "draw(path)": no_str(lambda v: resdsl.load(spec).draw(v, format="dot")),
        "draw(suffix)": lambda n, v: n.draw(suffix(v)) if isinstance(v, str) else None,
        "draw(format)": lambda n, v: n.draw(format=v),
        "draw(depth)": lambda n, v: n.draw(format="dot", depth=v),
        "draw(expand)": lambda n, v: n.draw(format="dot", expand=v),
        "draw(lr)": lambda n, v: n.draw(format="dot", lr=v),
        "draw(shapes)": lambda n, v: n.draw(format="dot", shapes=v),
    }


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_public_call_raises_anything_but_the_documented_types(data: st.DataObject) -> None:
    spec, net, out = _TINY_CACHE.get()
    calls = _calls(spec, out)
    name = data.draw(st.sampled_from(sorted(calls)), label="call")
    value = data.draw(WRONG, label="value")
    try:
        calls[name](net, value)
    except (SpecError, UsageError) as exc:
        assert str(exc) or isinstance(exc, SpecError)
    # Anything else (TypeError, OverflowError, ValueError that is not ours) fails the test.


class _Tiny:
    """The tiny spec, written once for the property test (hypothesis does not mix with
    function-scoped fixtures)."""

    def __init__(self) -> None:
        self._value: tuple[str, resdsl.Network, str] | None = None

    def get(self) -> tuple[str, resdsl.Network, str]:
        """The spec's path, its network, and a folder for what the calls write."""
        if self._value is None:
            folder = Path(tempfile.mkdtemp(prefix="resdsl-arguments-"))
            (folder / "out").mkdir()
            path = folder / "tiny.res"
            path.write_text(TINY, encoding="utf-8")
            self._value = (str(path), resdsl.load(path), str(folder / "out"))
        return self._value


_TINY_CACHE = _Tiny()


def test_weights_and_draw_helps_name_the_api_s_keywords(tiny: resdsl.Network,
                                                        tmp_path: Path) -> None:
    """Issue #15 item 18: the help of a checkpoint that does not fit, of NaN weights and of a
    diagram too large says how to pass the option to the function called, not the flag."""
    import numpy as np

    state = tiny.init_state()
    first = next(iter(state))
    renamed = {k.replace(first.split(".")[0], "other", 1): v for k, v in state.items()}
    nan = {k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for k, v in state.items()}
    extra = {**{k: v for k, v in state.items() if k != "fc.bias"},
             "extra": np.zeros(3, np.float32)}
    deep = resdsl.load("specs/resnet20.res", depth=1202)
    cases: list[tuple[Callable[[], object], str, str]] = [
        (lambda: tiny.state(weights=renamed), "rename={", "--rename"),
        (lambda: tiny.state(weights=extra), "strict=False", "--no-strict"),
        (lambda: tiny.state(weights=nan), "allow_nonfinite=True", "--allow-nonfinite"),
        (lambda: deep.draw(depth="layers", expand=True), "expand=False", "--expand"),
    ]
    for call, api, flag in cases:
        with pytest.raises(SpecError) as info:
            call()
        text = render_all_text(info.value.diagnostics)
        assert api in text and flag not in text, text
        _no_flags(text)
    # The command line says it with its flags.
    run = run_cli("draw", "specs/resnet20.res", "-D", "depth=1202", "--depth", "layers",
                  "--expand", "-o", str(tmp_path / "x.svg"))
    assert run.code == 1 and "without `--expand`" in run.err


def test_the_initialiser_itself_refuses_a_seed_that_would_wrap(tiny: resdsl.Network) -> None:
    """Issue #15 item 12: 2**64 once gave seed 0's weights (folded modulo 2**64)."""
    from resdsl.weights import initial_state

    with pytest.raises(resdsl.ArgumentError):
        initial_state(tiny.graph, 2**64)
    assert initial_state(tiny.graph, 2**64 - 1).keys() == initial_state(tiny.graph, 0).keys()
