"""Language semantics: naming, scoping, expressions, guards, repetition and overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from resdsl.diagnostics import SpecError
from resdsl.passes.counts import state_shapes
from resdsl.pipeline import Options, UsageError
from tests.helpers import build_text, by_path, graph_of


def test_unnamed_ops_take_their_position_like_nn_sequential(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        block proj(out) { conv(out, 1); bn }
        network n { input [3, 8, 8]; down: proj(8); relu; a: conv(8, 3); relu }
    """)
    assert [n.path for n in g.nodes()] == ["input", "down.0", "down.1", "1", "a", "3"]


def test_named_repeat_numbers_iterations_and_unnamed_calls_are_transparent(
    tmp_path: Path,
) -> None:
    g = graph_of(tmp_path, """
        block unit(c) { conv1: conv(c, 3); bn1: bn }
        network n { input [3, 8, 8]; layer1: repeat 2 { unit(4) } }
    """)
    assert set(state_shapes(g)) >= {"layer1.0.conv1.weight", "layer1.1.bn1.weight"}
    assert g.scopes["layer1"].kind == "repeat ×2"
    assert g.scopes["layer1.1"].kind == "unit"


def test_interpolated_names_and_lists(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        network n(widths = [4, 8]) {
            input [3, 8, 8]
            repeat len(widths) as s {
                stage{s + 1}: { repeat 2 as i { conv{s}_{i + 1}: conv(widths[s], 3) } }
            }
        }
    """)
    assert "stage2.conv1_2" in by_path(g)
    assert by_path(g)["stage2.conv1_2"].shape == (8, 8, 8)


def test_in_reads_the_incoming_shape(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        network n { input [6, 9, 9]; halved: conv(in.c // 2, 1); q: conv(in.h * in.w, 1) }
    """)
    assert by_path(g)["halved"].shape == (3, 9, 9)
    assert by_path(g)["q"].shape == (81, 9, 9)


def test_integral_float_channels_are_accepted(tmp_path: Path) -> None:
    """DESIGN.md §3: DenseNet transitions need `in.c / 2`."""
    g = graph_of(tmp_path, "network n { input [6, 4, 4]; c: conv(in.c / 2, 1) }")
    assert by_path(g)["c"].shape == (3, 4, 4)


def test_non_integral_channels_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, "network n { input [6, 4, 4]; c: conv(in.c / 4, 1) }")
    assert exc.value.diagnostics[0].code == "E0403"


def test_guards_skip_statements_and_shortcuts(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        block b(c, proj) {
            skip { conv1: conv(c, 3) } shortcut down: conv(c, 1) if proj
        }
        network n { input [4, 8, 8]; x: b(4, false); y: b(4, true); z: conv(4, 1) if false }
    """)
    paths = by_path(g)
    assert "x.down" not in paths and "y.down" in paths and "z" not in paths
    assert g.node(paths["x.skip"].inputs[1]).path == "input"  # identity shortcut


def test_expressions(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        network n(k = 3) {
            a = 2 ** 3 + 7 // 2 * 2 - 10 % 4    # 8 + 6 - 2
            b = max(a, 4) if k == 3 and not (k > 4 or k < 0) else 0
            c = min([abs(-5), int(6.9), len([1, 2, 3])])
            input [3, 8, 8]
            x: conv(a, 1); y: conv(b + c, 1)
        }
    """)
    assert by_path(g)["x"].shape[0] == 12
    assert by_path(g)["y"].shape[0] == 15


def test_block_defaults_see_earlier_parameters(tmp_path: Path) -> None:
    g = graph_of(tmp_path, """
        block b(c, out = c * 2) { conv(out, 1) }
        network n { input [3, 4, 4]; b(5) }
    """)
    assert by_path(g)["0"].shape[0] == 10


def test_bindings_are_scoped_to_their_braces(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, """
            network n { input [3, 4, 4]; s: { w = 4; conv(w, 1) }; conv(w, 1) }
        """)
    assert [d.code for d in exc.value.diagnostics] == ["E0202"]


def test_static_checks_report_every_mistake_at_once(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, """
            network n { input [3, 4, 4]; cnov(4, 1); conv(4, 1, strides = 2); relu(1) }
        """)
    assert [d.code for d in exc.value.diagnostics] == ["E0201", "E0203", "E0402"]
    assert exc.value.diagnostics[0].help == "did you mean `conv`?"


def test_defines_and_input_override(tmp_path: Path) -> None:
    text = "network n(c = 4, act = true) { input [3, 8, 8]; x: conv(c, 3); relu if act }"
    g = graph_of(tmp_path, text, Options(defines={"c": "2 * 8", "act": "false"},
                                          input_shape=(1, 5, 5)))
    assert by_path(g)["x"].shape == (16, 5, 5)
    assert len(g) == 2
    with pytest.raises(UsageError, match="did you mean `c`"):
        graph_of(tmp_path, text, Options(defines={"cc": "1"}))


def test_several_networks_need_a_choice(tmp_path: Path) -> None:
    text = "network a { input [3, 4, 4] }\nnetwork b { input [1, 4, 4]; relu }"
    assert len(graph_of(tmp_path, text, Options(network="b"))) == 2
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, text)
    assert exc.value.diagnostics[0].code == "E0211"


def test_imports_resolve_locally_then_in_the_library(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "mine.res").write_text("block mine() { conv(4, 1) }\n", "utf-8")
    g = graph_of(tmp_path, """
        use "lib/mine.res"
        use "blocks/resnet.res"     # not here: found in the built-in library
        network n { input [3, 8, 8]; mine; a: project(8, 2) }
    """)
    assert by_path(g)["a.0"].shape == (8, 4, 4)


def test_warnings_do_not_stop_the_build(tmp_path: Path) -> None:
    result = build_text(tmp_path, """
        block unused_block() { relu }
        network n(unused = 1) { input [3, 4, 4]; relu }
    """)
    assert sorted(d.code for d in result.warnings) == ["W0101", "W0102"]


def test_primitive_keywords_can_name_statements(tmp_path: Path) -> None:
    """timm names SE's sigmoid `gate`; WRN's authors name stages `group0`..."""
    g = graph_of(tmp_path, """
        network n {
            input [8, 4, 4]
            se: scale { global_avgpool; fc: conv(8, 1); gate: sigmoid }
            group: skip { relu }
        }
    """)
    assert {"se.gate", "group.0", "group.skip"} <= set(by_path(g))


def test_multi_branch_weight_takes_no_arguments(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, """
            network n { input [8, 4, 4]; weight(init = 3) { branch { relu } branch { relu } } }
        """)
    assert [d.code for d in exc.value.diagnostics] == ["E0212"]


def test_interpolated_names_stay_single_path_levels(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, 'network n { input [3, 4, 4]; x{"a.b"}: conv(3, 1) }')
    assert exc.value.diagnostics[0].code == "E0401"


def test_an_interpolated_name_may_hold_a_hyphen(tmp_path: Path) -> None:
    """torchvision's RegNet names its blocks `block1-0`: a string may bring the `-`; a space
    is still refused."""
    g = graph_of(tmp_path, 'network n { input [3, 4, 4]; block{1}{"-"}{0}: conv(3, 1) }')
    assert "block1-0" in by_path(g)
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, 'network n { input [3, 4, 4]; x{"a b"}: conv(3, 1) }')
    assert exc.value.diagnostics[0].code == "E0401"


def test_define_values_are_constants(tmp_path: Path) -> None:
    text = "network n(c = 4) { input [3, 8, 8]; x: conv(c, 3) }"
    for bad in ("foo", "foo(100)", "10; relu", "[1", "in.c"):
        with pytest.raises(UsageError):
            graph_of(tmp_path, text, Options(defines={"c": bad}))
    g = graph_of(tmp_path, text, Options(defines={"c": "max(3, 2 * 5)"}))
    assert by_path(g)["x"].shape[0] == 10


# ------------------------------------------------ list elements, guarded groups (issue 15)


TAPS = """
    network n {
        input [4, 8, 8]
        repeat 3 as i { t{i}: conv(4, 3); b = in }
        STATEMENT
        relu
        add(in, b[-1])
    }
"""


@pytest.mark.parametrize(("statement", "source"), [("b[0]", "t0"), ("b[1]", "t1"),
                                                   ("b[-3]", "t0"), ("b[0] if true", "t0")])
def test_a_list_element_is_a_statement_that_continues_from_that_tensor(
    tmp_path: Path, statement: str, source: str
) -> None:
    """`b[0]` after a repeat that collects `b = in` continues from the first iteration's
    tensor, as a bare `b` continues from a tensor named `b`."""
    nodes = by_path(graph_of(tmp_path, TAPS.replace("STATEMENT", statement)))
    assert nodes["3"].op == "relu"
    assert nodes["3"].inputs == (nodes[source].id,)


def test_a_guarded_off_list_element_leaves_the_flow_alone(tmp_path: Path) -> None:
    g = graph_of(tmp_path, TAPS.replace("STATEMENT", "b[0] if false").replace(
        "add(in, b[-1])", "add(in, b[0])"))
    nodes = by_path(g)
    assert nodes["3"].op == "relu" and nodes["3"].inputs == (nodes["t2"].id,)


@pytest.mark.parametrize(("statement", "code"), [
    ("c[0]", "E0201"),       # no tensor `c`
    ("b", "E0401"),          # a list, not a tensor
    ("b[3]", "E0407"),       # out of range
    ("b[0][0]", "E0401"),    # a tensor cannot be indexed
    ("w[0]", "E0401"),       # a list of values
    ("x: b[0]", "E0212"),    # a continuation makes no module to name
])
def test_a_list_element_statement_must_be_a_tensor(
    tmp_path: Path, statement: str, code: str
) -> None:
    text = TAPS.replace("STATEMENT", statement).replace("input [4, 8, 8]",
                                                        "input [4, 8, 8]; w = [1, 2]")
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, text)
    assert [d.code for d in exc.value.diagnostics if d.is_error] == [code]


def test_a_named_continuation_is_refused_not_ignored(tmp_path: Path) -> None:
    """`x: t` used to drop its name silently."""
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, """
            network n { input [4, 8, 8]; t = in; conv(4, 3); x: t; add(in, t) }
        """)
    assert [d.code for d in exc.value.diagnostics] == ["E0212"]


GROUPED = """
    network n(c = true) {
        input [4, 8, 8]
        conv(4, 3)
        BODY
        post_attn: conv(4, 1)
        conv(4, 1)
    }
"""


def test_a_guarded_unnamed_sequence_covers_its_statements_and_opens_no_level(
    tmp_path: Path,
) -> None:
    """`{ bn; relu } if c` runs both statements or neither, with the keys of `bn; relu`."""
    grouped = state_shapes(graph_of(tmp_path, GROUPED.replace("BODY", "{ bn; relu } if c")))
    plain = state_shapes(graph_of(tmp_path, GROUPED.replace("BODY", "bn; relu")))
    assert grouped == plain
    assert list(grouped) == ["0.weight", "1.weight", "1.bias", "1.running_mean",
                             "1.running_var", "1.num_batches_tracked", "post_attn.weight",
                             "4.weight"]
    off = graph_of(tmp_path, GROUPED.replace("BODY", "{ bn; relu } if c"),
                   Options(defines={"c": "false"}))
    assert [n.path for n in off.nodes()] == ["input", "0", "post_attn", "2"]


def test_an_unguarded_or_named_sequence_still_opens_a_level(tmp_path: Path) -> None:
    unnamed = by_path(graph_of(tmp_path, GROUPED.replace("BODY", "{ bn; relu }")))
    assert {"1.0", "1.1", "post_attn", "3"} <= set(unnamed)
    named = by_path(graph_of(tmp_path, GROUPED.replace("BODY", "norm: { bn; relu } if c")))
    assert {"norm.0", "norm.1", "post_attn", "3"} <= set(named)
    numbered = by_path(graph_of(tmp_path, GROUPED.replace("BODY", "1: { bn; relu } if c")))
    assert {"1.0", "1.1", "post_attn", "3"} <= set(numbered)


# ------------------------------------------------ other languages' spellings (issue 15)


@pytest.mark.parametrize(("condition", "word"), [
    ("a > 0 && a < 3", "and"), ("a > 0 || a < 3", "or"), ("!(a > 0)", "not"),
    ("a > 0 & a < 3", "and"), ("a > 0 | a < 3", "or"),
])
def test_c_operators_suggest_the_language_words(
    tmp_path: Path, condition: str, word: str
) -> None:
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, f"network n(a = 1) {{ input [4, 8, 8]; conv(4, 3) if {condition} }}")
    (d,) = exc.value.diagnostics
    fixed = condition.replace("&&", "and").replace("||", "or").replace("!(", "not (")
    fixed = fixed.replace(" & ", " and ").replace(" | ", " or ")
    assert d.code == "E0102" and f"written `{word}`" in d.message
    assert d.help is not None and f"`conv(4, 3) if {fixed}`" in d.help


@pytest.mark.parametrize(("value", "hint"), [
    ("True", "write `true`"), ("False", "write `false`"), ("FALSE", "write `false`"),
    ("None", "leave the argument out"), ("null", "leave the argument out"),
])
def test_other_languages_literals_get_the_right_spelling(
    tmp_path: Path, value: str, hint: str
) -> None:
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, f"network n {{ input [4, 8, 8]; conv(4, 3, bias = {value}) }}")
    (d,) = exc.value.diagnostics
    assert d.code == "E0202" and d.help is not None and hint in d.help


@pytest.mark.parametrize(("body", "help"), [
    # The innermost repeat without an index is the one to name.
    ("repeat 2 as s { repeat 3 { conv(4 + i, 3) } }", "`repeat 3 as i`"),
    ("repeat n + 1 { conv(4 + k, 3) }", "`repeat n + 1 as k`"),
    # A long name might be something else: the help says both.
    ("repeat 2 { conv(4 + width, 3) }", "if `width` is the repeat's index"),
    # A misspelling is still a misspelling.
    ("repeat 2 { conv(4 + nn, 3) }", "did you mean `n`?"),
    # Outside any repeat without an index: a parameter.
    ("repeat 2 as j { conv(4 + i, 3) }", "add `i` as a parameter"),
])
def test_an_unknown_name_in_a_repeat_without_an_index_suggests_naming_it(
    tmp_path: Path, body: str, help: str
) -> None:
    with pytest.raises(SpecError) as exc:
        graph_of(tmp_path, f"network n(n = 1) {{ input [4, 8, 8]; {body} }}")
    errors = [d for d in exc.value.diagnostics if d.is_error]
    assert [d.code for d in errors] == ["E0202"]
    assert errors[0].help is not None and help in errors[0].help
