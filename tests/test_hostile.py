"""Malformed and hostile specs get a diagnostic and exit code 1: never a traceback, never a
hang. Limits are documented in docs/language.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resdsl.cli import main
from tests.conftest import SPECS

FIXTURE = HealthCheck.function_scoped_fixture
TOKENS = [
    "network", "block", "use", "input", "repeat", "as", "skip", "shortcut", "weight", "gate",
    "concat", "group", "dual", "scale", "branch", "transform", "if", "else", "and", "or", "not",
    "in", ".c", "true", "false", "n", "x", "i", "conv", "bn", "relu", "linear", "flatten",
    "(", ")", "{", "}", "[", "]", ",", ":", ";", "=", "==", "+", "-", "*", "/", "//", "%", "**",
    "<", "0", "1", "3", "64", "-2", "1e9", "2.5", '"s"', '"blocks/resnet.res"', "\n", " ", "#",
]


def _check(tmp_path: Path, data: bytes) -> tuple[int, str]:
    spec = tmp_path / "fuzz.res"
    spec.write_bytes(data)
    import io

    out, err = io.StringIO(), io.StringIO()
    code = main(["check", str(spec)], out, err)
    return code, err.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[FIXTURE])
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_token_soup_never_crashes(tmp_path: Path, tokens: list[str]) -> None:
    code, err = _check(tmp_path, " ".join(tokens).encode())
    assert code in (0, 1), err
    assert "Traceback" not in err and "E9000" not in err


@settings(max_examples=100, deadline=None, suppress_health_check=[FIXTURE])
@given(st.binary(max_size=300))
def test_binary_garbage_never_crashes(tmp_path: Path, data: bytes) -> None:
    code, err = _check(tmp_path, data)
    assert code == 1 and "Traceback" not in err


@settings(max_examples=60, deadline=None, suppress_health_check=[FIXTURE])
@given(st.data())
def test_mutated_real_specs_never_crash(tmp_path: Path, data: st.DataObject) -> None:
    """Delete, duplicate or replace a slice of a shipped spec."""
    text = (SPECS / data.draw(st.sampled_from(["dpn92.res", "densenet121.res"]))).read_text()
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(i, min(len(text), i + 40)))
    piece = data.draw(st.sampled_from(["", text[i:j] * 2, "}", "{", "(", "0", "-1", "in.c"]))
    code, err = _check(tmp_path, (text[:i] + piece + text[j:]).encode())
    assert code in (0, 1), err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "E0211"),
        ("network n { input [3, 8, 8]; repeat 10 ** 12 { relu } }", "E0503"),
        ("network n { input [3, 8, 8]; repeat 100000 { repeat 100000 { relu } } }", "E0503"),
        ("network n { input [3, 8, 8]; repeat 100000 { repeat 100000 { relu if false } } }",
         "E0503"),
        ("network n { input [3, 8, 8]; " + "repeat 99 { " * 4 + "_x = 1" + " }" * 4 + " }",
         "E0503"),
        ("network n { input [3, 8, 8]; conv(10 ** 30, 1) }", "E0404"),
        ("network n { input [3, 8, 8]; conv(2 ** 40, 1) }", "E0404"),
        ("network n { input [3, 8, 8]; x = 99999999999999999999999 }", "E0404"),
        ("network n { input [3, 8, 8]; x = " + "(" * 5000 + "1" + ")" * 5000 + " }", "E0004"),
        ("network n { input [3, 8, 8]; x = " + "-" * 5000 + "1 }", "E0004"),
        ("network n { input [3, 8, 8]; x = " + "+".join(["1"] * 5000) + " }", "E0004"),
        ("network n { input [3, 100000, 100000]; conv(64, 7, stride = 2) }", None),
    ],
)
def test_hostile_inputs_are_diagnosed_quickly(tmp_path: Path, text: str, code: str | None) -> None:
    rc, err = _check(tmp_path, text.encode())
    if code is None:
        assert rc == 0, err
    else:
        assert rc == 1 and f"[{code}]" in err, err


def test_brackets_in_comments_and_strings_do_not_count_as_nesting(tmp_path: Path) -> None:
    text = "# note (1\n" * 100 + 'use "' + "(" * 100 + '.res"\nnetwork n { input [3, 4, 4] }\n'
    code, err = _check(tmp_path, text.encode())
    assert code == 1 and "[E0004]" not in err and "[E0208]" in err, err


def test_an_error_flood_stops_at_a_hundred(tmp_path: Path) -> None:
    """Each "did you mean" scans every name; without a cap a flood would be quadratic."""
    blocks = "".join(f"block b{i}() {{ relu }}\n" for i in range(300))
    calls = "; ".join(f"x{i}" for i in range(3000))
    code, err = _check(tmp_path, (blocks + f"network n {{ input [3, 4, 4]; {calls} }}").encode())
    assert code == 1 and err.count("error[E0201]") == 100
    assert "resdsl stopped after 100 errors" in err
    assert max(len(line) for line in err.splitlines()) < 140  # long lines are windowed
