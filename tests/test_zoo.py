"""The zoo (issue #18): names to specs, the CLI and `resdsl.load` taking them, `resdsl zoo`,
the checker against the published models, and weights by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resdsl
from resdsl import zoo
from resdsl.arguments import ArgumentError
from resdsl.cli import main
from resdsl.zoo import markdown, table
from resdsl.zoo.entry import ZooEntry
from tests.conftest import ROOT, run_cli

SPECIAL = ROOT / "tests" / "golden" / "errors" / "special"


# ---------------------------------------------------------------------- lookup


@pytest.fixture
def torchvision_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The zoo pinned to torchvision's resnets (this branch's rows): the goldens' did-you-mean
    must not change as the family tables fill (timm has a resnet50 too)."""
    from resdsl.zoo import families
    from resdsl.zoo.families import torchvision

    monkeypatch.setattr(families, "FAMILIES", (("torchvision", torchvision.ENTRIES),))


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


@pytest.mark.usefixtures("torchvision_only")
def test_an_unknown_name_says_what_is_close() -> None:
    with pytest.raises(ArgumentError) as caught:
        zoo.lookup("tv:resnet05")
    assert caught.value.code == "E0005"
    assert caught.value.help is not None and "`tv:resnet50`" in caught.value.help
    # The same model in the other library.
    with pytest.raises(ArgumentError, match="timm:resnet18") as other:
        resdsl.load("timm:resnet18")
    assert other.value.help is not None and "did you mean `tv:resnet18`?" in other.value.help


@pytest.mark.usefixtures("torchvision_only")
def test_an_unknown_name_golden() -> None:
    """E0005's golden: a zoo name the zoo lacks, a usage mistake (exit 2)."""
    run = run_cli("info", "tv:resnet05")
    assert run.code == 2
    expected = SPECIAL / "E0005_unknown_zoo_name.txt"
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        expected.write_text(run.err, encoding="utf-8")
    assert run.err == expected.read_text(encoding="utf-8")


@pytest.mark.usefixtures("torchvision_only")
def test_a_missing_file_named_like_a_model_gets_its_zoo_name() -> None:
    """E0001 for `resdsl info resnet50` (no such file) names `tv:resnet50`."""
    run = run_cli("info", "resnet50")
    assert run.code == 1
    expected = SPECIAL / "E0001_zoo_name.txt"
    if os.environ.get("RESDSL_UPDATE_GOLDEN"):
        expected.write_text(run.err, encoding="utf-8")
    assert run.err == expected.read_text(encoding="utf-8")
    assert "`tv:resnet50`" in run.err
    other = run_cli("info", "specs/resnet5.res")  # not a model's name: the usual help
    assert "check the path; specs are .res files" in other.err


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


def test_a_zoo_name_is_built_at_its_published_input() -> None:
    """Every timm row's input is timm's `pretrained_cfg["input_size"]` (timm 1.0.31, the
    reference): the spec's 224×224 or resdsl/zoo/inputs.py's size; `input_shape=` wins."""
    timm = pytest.importorskip("timm")
    for entry in zoo.entries():
        if entry.source == "timm":
            published = tuple(timm.models.get_pretrained_cfg(entry.name).input_size)
            assert resdsl.load(entry.qualified).input_shape == published, entry.name
    assert resdsl.load("timm:resnest200e").counts().macs > resdsl.load(
        "timm:resnest200e", input_shape=(3, 224, 224)).counts().macs
    assert resdsl.load("timm:resnest200e", input_shape="3x64x64").input_shape == (3, 64, 64)


def test_an_unknown_parameter_on_a_zoo_name_is_refused() -> None:
    with pytest.raises(ArgumentError, match="no parameter `widht`"):
        resdsl.load("tv:resnet50", widht=3)


# ---------------------------------------------------------------------- the command line


def test_cli_takes_a_zoo_name_without_torch(tmp_path: Path) -> None:
    """`info`, `check`, `draw`, `compile --to onnx` and `zoo` on zoo names import no torch."""
    onnx_out, dot_out = tmp_path / "r.onnx", tmp_path / "r.dot"
    code = (
        "import sys; from resdsl.cli import main; "
        "codes = [main(['info', 'tv:resnet50', '--depth', '1']), "
        "main(['check', 'tv:resnext101_32x8d', 'torchvision:resnet18']), "
        f"main(['draw', 'tv:resnet18', '-o', {str(dot_out)!r}]), "
        f"main(['compile', 'tv:resnet18', '--to', 'onnx', '-D', 'classes=10', '-o', "
        f"{str(onnx_out)!r}]), main(['zoo', 'resnext'])]; "
        "print(codes, [m for m in sys.modules if m.split('.')[0] == 'torch'])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.stdout.strip().splitlines()[-1] == "[0, 0, 0, 0, 0] []", out.stdout + out.stderr
    assert "resnet50 (tv:resnet50), input 3×224×224" in out.stdout
    assert "tv:resnext101_32x8d: ok (resnext50_32x4d: " in out.stdout
    assert "88,791,336 parameters" in out.stdout  # torchvision's resnext101_32x8d
    assert dot_out.read_text("utf-8").startswith("digraph")
    assert onnx_out.stat().st_size > 40_000_000  # resnet18's 11.2M float32 weights


def test_a_zoo_name_names_the_default_output(tmp_path: Path) -> None:
    """`compile tv:resnext101_32x8d` writes resnext101_32x8d.py, not its spec's network's
    name (resnext50_32x4d, which four models share); `draw` likewise."""
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        compiled = main(["compile", "tv:resnext101_32x8d", "--to", "python"])
        drawn = main(["draw", "tv:resnext101_32x8d", "--format", "dot", "--depth", "stages"])
    finally:
        os.chdir(old)
    assert (compiled, drawn) == (0, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnext101_32x8d.dot",
                                                          "resnext101_32x8d.py"]


def test_defines_on_a_zoo_name_override_the_row() -> None:
    run = run_cli("info", "tv:resnext101_32x8d", "-D", "width=4", "-D", "classes=10",
                  "--format", "json")
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    same = resdsl.load(ROOT / "specs" / "resnext50_32x4d.res", layers=[3, 4, 23, 3],
                       classes=10)
    assert (doc["params"], doc["macs"]) == (same.counts().params, same.counts().macs)
    assert doc["spec"] == "tv:resnext101_32x8d"


def test_zoo_lists_with_a_filter() -> None:
    run = run_cli("zoo", "tv:resnext*")
    assert run.code == 0, run.err
    names = [line.split()[0] for line in run.out.splitlines()[1:] if line.startswith("tv:")]
    assert names == ["tv:resnext50_32x4d", "tv:resnext101_32x8d", "tv:resnext101_64x4d"]
    assert "-D 'layers=[3,4,23,3]' -D width=8" in run.out
    assert "88,791,336" in run.out and "16.414" in run.out
    listed = json.loads(run_cli("zoo", "TV:WIDE", "--format", "json").out)
    assert [r["name"] for r in listed] == ["tv:wide_resnet50_2", "tv:wide_resnet101_2"]
    assert listed[1]["defines"] == {"layers": [3, 4, 23, 3], "groups": 1, "width": 128}
    none = run_cli("zoo", "no-such-model")
    assert none.code == 0 and none.out == "" and "no name matches" in none.err


def test_zoo_counts_are_current() -> None:
    """resdsl/zoo/counts.json (what `resdsl zoo` shows) holds every row with the fingerprint
    of its spec, the files the spec uses and its parameters as they are now, and the sample's
    figures built now (`scripts/zoo_docs.py --check` builds every row): rerun
    scripts/zoo_docs.py after changing a row or a spec."""
    stored = table.stored_counts()
    stale = "resdsl/zoo/counts.json is stale: run scripts/zoo_docs.py"
    assert list(stored) == [e.qualified for e in zoo.entries()], stale
    for entry in zoo.entries():
        assert stored[entry.qualified]["fingerprint"] == table.fingerprint(entry), stale
    assert {e.qualified: stored[e.qualified] for e in SAMPLE} == table.counts_table(SAMPLE), \
        stale


def test_a_stale_row_is_counted_on_the_spot(monkeypatch: pytest.MonkeyPatch) -> None:
    """`resdsl zoo` trusts counts.json only while a row's fingerprint (its spec, the files
    the spec uses, its parameters) is the one stored."""
    stored = table.stored_counts()
    lied = {k: {**v, "params": 1} for k, v in stored.items()}
    monkeypatch.setattr(table, "stored_counts", lambda: lied)
    assert [r.params for r in table.listing("tv:resnet18")] == [1]
    stale = {k: {**v, "params": 1, "fingerprint": "0"} for k, v in stored.items()}
    monkeypatch.setattr(table, "stored_counts", lambda: stale)
    assert [r.params for r in table.listing("tv:resnet18")] == [11_689_512]  # torchvision's


def test_the_fingerprint_follows_the_files_a_spec_uses(tmp_path: Path) -> None:
    (tmp_path / "lib.res").write_text("block unit(c) { conv(c, 3); relu }\n", "utf-8")
    spec = tmp_path / "net.res"
    spec.write_text('use "lib.res"\nuse "blocks/basic.res"\n'
                    "network net { input [3, 8, 8]; unit(4) }\n", "utf-8")
    row = ZooEntry("net", "timm", "resnet", str(spec))
    before = table.fingerprint(row)
    (tmp_path / "lib.res").write_text("block unit(c) { conv(c, 1); relu }\n", "utf-8")
    table._spec_digest.cache_clear()
    assert table.fingerprint(row) != before
    assert table.fingerprint(ZooEntry("net", "timm", "resnet", str(spec), {"c": 2})) != \
        table.fingerprint(row)


def test_zoo_docs_are_current() -> None:
    """docs/zoo.md is scripts/zoo_docs.py's page for the table, its counts and status."""
    page = markdown.render(table.stored_counts(), table.stored_status())
    assert (ROOT / "docs" / "zoo.md").read_text("utf-8") == page, \
        "docs/zoo.md is stale: run scripts/zoo_docs.py"
    for entry in zoo.entries():
        assert f"| `{entry.qualified}` |" in page


def test_status_is_of_rows() -> None:
    """resdsl/zoo/status.json (bench/zoo_coverage.py --write-status) names rows only."""
    names = {e.qualified for e in zoo.entries()}
    status = table.stored_status()
    assert set(status) <= names
    assert {s["status"] for s in status.values()} <= {"exact", "not exact"}


def test_a_status_of_a_changed_row_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row's status holds while its fingerprint does: after a change to its spec or its
    parameters it is "not checked" until the coverage bench runs again."""
    row = zoo.lookup("tv:resnet18")
    checked = {"status": "exact", "reason": "", "outputs_checked": True, "side": 32,
               "max_abs_diff": 0.0}
    now = {row.qualified: {**checked, "fingerprint": table.fingerprint(row)}}
    monkeypatch.setattr(table, "stored_status", lambda: now)
    assert [r.status for r in table.listing("tv:resnet18")] == ["exact"]
    before = {row.qualified: {**checked, "fingerprint": "0123456789abcdef"}}
    monkeypatch.setattr(table, "stored_status", lambda: before)
    assert [r.status for r in table.listing("tv:resnet18")] == ["not checked"]
    assert "| `tv:resnet18` |" in markdown.render(table.stored_counts(), before)


# ---------------------------------------------------------------------- the checker


def _sample() -> list[ZooEntry]:
    """The first and the middle row of every family that has rows (so this runs before and
    after each family's table is filled)."""
    picked: list[ZooEntry] = []
    for _, rows in zoo.by_family():
        for row in (rows[:1] + rows[len(rows) // 2:len(rows) // 2 + 1]):
            if row not in picked:
                picked.append(row)
    return picked


SAMPLE = _sample()


@pytest.mark.parity
@pytest.mark.parametrize("entry", SAMPLE, ids=[e.qualified for e in SAMPLE])
def test_sample_rows_are_exact(entry: ZooEntry) -> None:
    """Keys in order with shapes, parameters and MACs against the reference on the meta
    device; outputs with its weights copied in (norms randomised) up to 100M parameters."""
    pytest.importorskip("torch")
    from resdsl.zoo.reference import MAX_OUTPUT_PARAMS, check

    result = check(entry)
    assert result.status == "exact", f"{entry.qualified}: {result.reason}"
    net = resdsl.load(entry.qualified)
    assert (net.counts().params, net.counts().macs) == (result.params, result.macs)
    assert result.outputs_checked == (result.params is not None
                                      and result.params <= MAX_OUTPUT_PARAMS)


@pytest.mark.parity
def test_the_checker_finds_a_different_function(tmp_path: Path) -> None:
    """A spec with torchvision resnet18's keys, parameters and MACs but an average pool for
    its stem's max pool: only the outputs tell, and the checker says so."""
    pytest.importorskip("torch")
    from resdsl.zoo.reference import check

    text = (ROOT / "specs" / "resnet18.res").read_text("utf-8")
    spec = tmp_path / "resnet18_avg.res"
    spec.write_text(text.replace("    stem\n", "    conv1: conv(64, 7, stride = 2); bn1: bn; "
                                 "relu\n    maxpool: avgpool(3, stride = 2, padding = 1)\n"),
                    "utf-8")
    swapped = ZooEntry("resnet18", "torchvision", "torchvision", str(spec))
    result = check(swapped)
    assert result.status == "not exact"
    assert result.reason.startswith("outputs at 3×32×32: max |difference|"), result.reason
    wrong_keys = check(ZooEntry("resnet34", "torchvision", "torchvision", "resnet18.res"))
    assert wrong_keys.status == "not exact"
    # resnet34's layer1 has 3 blocks, resnet18's 2: its third is the first key missing.
    assert wrong_keys.reason.startswith("state_dict keys: "), wrong_keys.reason
    assert "missing (first `layer1.2.conv1.weight`)" in wrong_keys.reason


def test_compare_uses_the_documented_tolerance() -> None:
    from resdsl.zoo.reference import compare

    expected = np.array([[10.0, -2.0, 0.5]], dtype=np.float32)
    assert compare(expected + 5e-5, expected).ok  # 1e-5 · max(1, 10) + 1e-4 · |e|
    assert not compare(expected + np.float32(3e-3), expected).ok
    swapped = np.array([[-2.0, 10.0, 0.5]], dtype=np.float32)
    assert not compare(swapped, expected).ok


# ---------------------------------------------------------------------- weights by name


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Path]:
    """torchvision's resnext50_32x4d (the reference of tv:resnext50_32x4d), its norms
    randomised, saved as .pth and as .safetensors."""
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    from resdsl.zoo.reference import create, randomise

    torch.manual_seed(0)
    model = randomise(create(zoo.lookup("tv:resnext50_32x4d")), seed=2)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    folder = tmp_path_factory.mktemp("zoo_weights")
    pth, st = folder / "resnext50_32x4d.pth", folder / "resnext50_32x4d.safetensors"
    torch.save(state, pth)
    safetensors_torch.save_file(state, str(st))
    return state, pth, st


def _same(ours: Mapping[str, Any], reference: Mapping[str, Any], keys: Iterable[str]) -> None:
    for k in keys:
        assert np.array_equal(np.asarray(ours[k]), reference[k].numpy()), k


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_reference_checkpoint_loads_strictly(
        checkpoints: tuple[dict[str, Any], Path, Path], suffix: str) -> None:
    state, pth, st = checkpoints
    path = pth if suffix == ".pth" else st
    ours, report = resdsl.load("tv:resnext50_32x4d").state(weights=path)
    assert report is not None and (report.missing, report.unexpected) == ((), ())
    assert list(ours) == list(state)
    _same(ours, state, state)


def test_a_wider_head_loads_the_rest_and_reports_the_head(
        checkpoints: tuple[dict[str, Any], Path, Path]) -> None:
    state, pth, _ = checkpoints
    net = resdsl.load("tv:resnext50_32x4d", classes=10)
    with pytest.raises(resdsl.SpecError) as refused:  # strict: the head's shape differs
        net.state(weights=pth)
    assert refused.value.diagnostics[0].code == "E0604"
    ours, report = net.state(weights=pth, replace_head=True)
    assert report is not None and report.reinitialised == ("fc.weight", "fc.bias")
    kept = [k for k in state if not k.startswith("fc.")]
    assert sorted(report.matched) == sorted(kept)
    _same(ours, state, kept)
    assert ours["fc.weight"].shape == (10, 2048)
    run = run_cli("compile", "tv:resnext50_32x4d", "-D", "classes=10", "--to", "onnx",
                  "--weights", str(pth), "--replace-head", "-o", str(pth.with_suffix(".onnx")))
    assert run.code == 0, run.err
    assert "re-initialised the head fc.weight, fc.bias" in run.out


def test_an_extra_block_loads_the_rest_and_reports_it(
        checkpoints: tuple[dict[str, Any], Path, Path]) -> None:
    """`-D layers=[3,4,7,3]`: a seventh block in layer3, which the checkpoint lacks."""
    state, _, st = checkpoints
    net = resdsl.load("tv:resnext50_32x4d", layers=[3, 4, 7, 3])
    with pytest.raises(resdsl.SpecError) as refused:
        net.state(weights=st)
    assert refused.value.diagnostics[0].code == "E0603"
    ours, report = net.state(weights=st, strict=False)
    assert report is not None and report.unexpected == ()
    assert report.missing and all(k.startswith("layer3.6.") for k in report.missing)
    assert sorted(report.matched) == sorted(state)
    _same(ours, state, state)
    assert "not in the file keep their initial values: layer3.6." in report.summary()


@pytest.mark.parity
def test_the_checker_on_timm_models() -> None:
    """timm's side of the checker, on shipped specs that are timm models (whatever the
    family tables hold): resnet26t with outputs; ecaresnet26t, whose ECA convs are 1-D
    (their MACs count, as tests/test_attention_specs.py counts them), statically."""
    pytest.importorskip("timm")
    from resdsl.zoo.reference import check

    tiered = check(ZooEntry("resnet26t", "timm", "resnet", "resnet26t.res"))
    assert tiered.status == "exact", tiered.reason
    assert tiered.outputs_checked and tiered.side == 32 and tiered.notes == []
    eca = check(ZooEntry("ecaresnet26t", "timm", "resnet", "ecaresnet26t.res"), outputs=False)
    assert eca.status == "exact", eca.reason
    assert eca.macs == resdsl.load("specs/ecaresnet26t.res").counts().macs
    # A block more in its last stage than timm's resnet26t: the checker says which.
    deeper = check(ZooEntry("resnet26t", "timm", "resnet", "resnet26t.res",
                            {"layers": [2, 2, 2, 3]}), outputs=False)
    assert deeper.status == "not exact"
    assert "unexpected (first `layer4.2.conv1.weight`)" in deeper.reason, deeper.reason
