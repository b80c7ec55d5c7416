"""Training beyond one process: the residual units a wrapping policy shards, FSDP2's
`fully_shard` on a compiled network in a 2-process gloo group on the CPU (one SGD step equal
to the same step in one process), and SyncBatchNorm's conversion.

The two ranks run tests/distributed_worker.py as torchrun would start it (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT), once per module: both checks share the processes. The recipes of
docs/api.md "Training at scale" run with torchrun itself, one step each.
"""

from __future__ import annotations

import copy
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

import resdsl
from tests import distributed_worker as worker
from tests.conftest import ROOT, SPECS

# Small: resnet20's 272,474 parameters at its own 32×32, three stages of three units.
SPEC = SPECS / "resnet20.res"
INPUT = (3, 32, 32)
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, dict[str, Any]]]:
    """Each rank's results: {"fsdp": ..., "syncbn": ...} (see tests/distributed_worker.py)."""
    out = tmp_path_factory.mktemp("ranks")
    port = str(_free_port())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
        "WORLD_SIZE": str(WORLD), "OMP_NUM_THREADS": "1"}
    shape = "x".join(map(str, INPUT))
    procs = [subprocess.Popen([sys.executable, str(Path(worker.__file__)), str(SPEC), shape,
                               str(out)], cwd=ROOT, env={**env, "RANK": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(WORLD)]
    logs = []
    for proc in procs:
        try:
            logs.append(proc.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    return [{kind: torch.load(out / f"{kind}{rank}.pt") for kind in ("fsdp", "syncbn")}
            for rank in range(WORLD)]


def _reference_step() -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """The same step in one process: each replica's forward on its half (its BatchNorm
    normalises with its half's statistics, as each rank's does), the mean of the two losses,
    the two halves' gradients summed, one SGD step. Rank r's expected state: the stepped
    parameters, with replica r's buffers (BatchNorm's running statistics stay per rank)."""
    model, classes = worker.network(str(SPEC), INPUT)
    replicas = [model, copy.deepcopy(model)]
    x, y = worker.batch(INPUT, classes)
    losses = [torch.nn.functional.cross_entropy(m(xs), ys)
              for m, xs, ys in zip(replicas, x.chunk(WORLD), y.chunk(WORLD), strict=True)]
    torch.stack(losses).mean().backward()  # type: ignore[no-untyped-call]
    for p, q in zip(model.parameters(), replicas[1].parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        p.grad += q.grad
    torch.optim.SGD(model.parameters(), lr=worker.LR, momentum=worker.MOMENTUM,
                    weight_decay=worker.WEIGHT_DECAY).step()
    params = dict(model.named_parameters())
    states = [{k: params.get(k, v) for k, v in m.state_dict().items()}
              for m in replicas]
    return states, torch.stack(losses).detach()


def test_fsdp2_step_equals_the_single_process_step(ranks: list[dict[str, dict[str, Any]]]) -> None:
    expected, losses = _reference_step()
    net = resdsl.load(str(SPEC), input_shape=INPUT)
    for rank, result in enumerate(ranks):
        fsdp = result["fsdp"]
        # Every unit and the root were sharded: each parameter a DTensor over the 2 ranks.
        assert fsdp["units"] == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
        assert fsdp["sharded"] == [True] * 9 and fsdp["dtensors"] is True
        torch.testing.assert_close(fsdp["loss"], losses[rank], rtol=1e-5, atol=1e-6)
        state = fsdp["state"]
        assert list(state) == list(net.state_shapes())
        for key, value in expected[rank].items():
            torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-6, msg=key)
    # The step moved every parameter: equal states are not two untouched initialisations.
    initial, _ = worker.network(str(SPEC), INPUT)
    moved = [k for k, v in initial.named_parameters()
             if not torch.equal(v, ranks[0]["fsdp"]["state"][k])]
    assert moved == [k for k, _ in initial.named_parameters()]


def test_sync_batchnorm_converts_and_runs_in_a_process_group(
        ranks: list[dict[str, dict[str, Any]]]) -> None:
    model, classes = worker.network(str(SPEC), INPUT)
    model.eval()
    x, _ = worker.batch(INPUT, classes)
    for rank, result in enumerate(ranks):
        syncbn = result["syncbn"]
        assert "SyncBatchNorm" in syncbn["types"] and "BatchNorm2d" not in syncbn["types"]
        with torch.no_grad():
            torch.testing.assert_close(syncbn["y"], model(x.chunk(WORLD)[rank]),
                                       rtol=1e-5, atol=1e-6)


def test_sync_batchnorm_keeps_the_state_dict() -> None:
    model, _ = worker.network(str(SPEC), INPUT)
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(  # type: ignore[no-untyped-call]
        copy.deepcopy(model))
    bns = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in converted.modules()) == bns > 0
    assert list(converted.state_dict()) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key
    # Without a process group SyncBatchNorm is BatchNorm: training-mode outputs agree.
    x = torch.randn(4, *INPUT)
    torch.testing.assert_close(converted.train()(x), model.train()(x), rtol=0, atol=0)


def test_residual_units_are_torchvisions_blocks() -> None:
    """For ResNet-50 the units are torchvision's Bottleneck modules (torchvision 0.29.1's
    `resnet50()`: layer1.0 ... layer4.2), in forward order, on the in-memory module and on
    the standalone source alike."""
    reference = torchvision.models.resnet50()
    expected = [name for name, m in reference.named_modules()
                if isinstance(m, torchvision.models.resnet.Bottleneck)]
    net = resdsl.load(str(SPECS / "resnet50.res"))
    model: Any = net.to_torch()
    units = model.residual_units()
    assert list(model.residual_unit_paths) == expected and len(units) == 16
    modules = dict(model.named_modules())
    assert [id(u) for u in units] == [id(modules[p]) for p in expected]
    namespace: dict[str, Any] = {}
    exec(compile(net.to_python(), "resnet50.py", "exec"), namespace)
    standalone = namespace["Resnet50"]()
    assert [type(u).__name__ for u in standalone.residual_units()] == [
        type(u).__name__ for u in units]


def test_a_top_level_module_cannot_shadow_residual_units(tmp_path: Path) -> None:
    """`self.residual_units = ...` would hide the method (E0703); below the top level the
    name is free, as any other."""
    spec = tmp_path / "shadow.res"
    spec.write_text("block unit(c) {\n    residual_units: conv(c, 3)\n    bn\n}\n"
                    "network shadow {\n    input [3, 8, 8]\n    a: unit(4)\n"
                    "    residual_units: conv(4, 3)\n}\n", encoding="utf-8")
    with pytest.raises(resdsl.SpecError) as caught:
        resdsl.load(str(spec))
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E0703" and "residual_units" in diagnostic.message
    assert diagnostic.primary is not None and diagnostic.primary.span.line == 8
    spec.write_text(spec.read_text(encoding="utf-8").replace("    residual_units: conv(4, 3)\n",
                                                            "    b: conv(4, 3)\n"),
                    encoding="utf-8")
    assert "a.residual_units.weight" in resdsl.load(str(spec)).state_shapes()


def _recipes() -> dict[str, str]:
    """docs/api.md's torchrun scripts (its ```py blocks), by the file name their first line
    gives (`# torchrun ... train_ddp.py ...`)."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split("\n## Training at scale\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```py\n(.*?)^```\n", section, re.M | re.S)
    return {re.search(r"(\w+\.py)", b.splitlines()[0]).group(1): b  # type: ignore[union-attr]
            for b in blocks}


@pytest.mark.parametrize("script", ["train_ddp.py", "train_fsdp.py"])
def test_the_documented_torchrun_recipes_run(script: str, tmp_path: Path) -> None:
    """Each recipe, as docs/api.md prints it, under `torchrun --standalone` with 2 processes
    on the CPU, one step; the checkpoint it writes loads strictly into the network."""
    (tmp_path / script).write_text(_recipes()[script], encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         script, str(SPEC), "--steps", "1", "--batch", "2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    trained = resdsl.load(str(SPEC)).to_torch(weights=str(tmp_path / "model.pth"))
    initial, _ = worker.network(str(SPEC), INPUT)
    changed = [k for k, v in initial.state_dict().items()
               if not torch.equal(v, trained.state_dict()[k])]
    assert "conv1.weight" in changed and "fc.weight" in changed
