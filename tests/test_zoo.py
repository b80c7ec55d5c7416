"""The zoo (issue #18): names to specs, the CLI and `resdsl.load` taking them, `resdsl zoo`,
the checker against the published models, and weights by name."""

from __future__ import annotations

import os

import pytest

import resdsl
from resdsl import zoo
from resdsl.arguments import ArgumentError
from tests.conftest import ROOT, run_cli

SPECIAL = ROOT / "tests" / "golden" / "errors" / "special"


# ---------------------------------------------------------------------- lookup


def test_lookup_takes_each_spelling() -> None:
    row = zoo.lookup("tv:resnet50")
    assert (row.name, row.source, row.spec) == ("resnet50", "torchvision", "resnet50.res")
    assert zoo.lookup("torchvision:resnet50") is row
    assert row.qualified == "tv:resnet50"


def test_every_row_is_found_by_its_name_and_names_are_unique() -> None:
    rows = zoo.entries()
    assert len({r.qualified for r in rows}) == len(rows)
    for row in rows:
        assert zoo.lookup(row.qualified) is row
        assert row.spec_path().is_file(), row


def test_an_unknown_name_says_what_is_close() -> None:
    with pytest.raises(ArgumentError) as caught:
        zoo.lookup("tv:resnet05")
    assert caught.value.code == "E0005"
    assert caught.value.help is not None and "`tv:resnet50`" in caught.value.help
    # The same model in the other library.
    with pytest.raises(ArgumentError, match="timm:resnet18") as other:
        resdsl.load("timm:resnet18")
    assert other.value.help is not None and "did you mean `tv:resnet18`?" in other.value.help


def test_an_unknown_name_golden() -> None:
    """E0005's golden: a zoo name the zoo lacks, a usage mistake (exit 2)."""
    run = run_cli("info", "tv:resnet05")
    assert run.code == 2
    expected = SPECIAL / "E0005_unknown_zoo_name.txt"
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        expected.write_text(run.err, encoding="utf-8")
    assert run.err == expected.read_text(encoding="utf-8")


def test_load_by_name_applies_the_row_then_the_caller() -> None:
    net = resdsl.load("tv:resnext101_32x8d")
    assert dict(net.params)["layers"] == (3, 4, 23, 3) and net.params["width"] == 8
    assert net.path == "tv:resnext101_32x8d"
    mine = resdsl.load("tv:resnext101_32x8d", width=4, classes=10)
    assert (mine.params["width"], mine.params["classes"], mine.params["groups"]) == (4, 10, 32)
    assert mine.params["layers"] == (3, 4, 23, 3)
    # The same network as the spec file with the row's values written out.
    same = resdsl.load(ROOT / "specs" / "resnext50_32x4d.res", layers=[3, 4, 23, 3], width=4,
                       classes=10)
    assert same.state_shapes() == mine.state_shapes()
    assert same.counts() == mine.counts()


def test_an_unknown_parameter_on_a_zoo_name_is_refused() -> None:
    with pytest.raises(ArgumentError, match="no parameter `widht`"):
        resdsl.load("tv:resnet50", widht=3)
