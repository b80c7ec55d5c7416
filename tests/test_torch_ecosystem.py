"""The generated modules in the rest of PyTorch: torch.compile, torch.export, channels_last,
bf16 autocast, DistributedDataParallel, and state_dict / deepcopy / pickle.

A module from `to_torch()` is ordinary PyTorch code, so all of these should just work; this
file checks that they do, on every spec where it is cheap enough (the whole file takes a few
minutes on 2 CPU cores; the ImageNet networks run at 64×64 through `input_shape`).

- torch.compile(fullgraph=True) raises on any graph break. Dynamo's tracing is the part
  that can break, and it is the same whatever backend follows, so every spec is compiled with
  `backend="eager"` (no code generation, seconds per spec) in eval mode, and two small specs
  in training mode with a backward pass; one small spec also goes through the default
  inductor backend, which generates and compiles C++.
- torch.export with a dynamic batch dimension: the exported program runs at batch sizes it
  was not traced with.
- channels_last and bf16 autocast: compared with float32 NCHW, and with the reference
  implementation (torchvision / timm) holding the same weights under the same settings.
- DDP: two gloo processes on the CPU take one compiled SGD step on their halves of a batch;
  the synchronised gradients and weights equal one process's step on the whole batch.
"""

from __future__ import annotations

import copy
import io
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import resdsl  # noqa: E402
from tests.conftest import ROOT, SPECS, small_shape  # noqa: E402

ALL_SPECS = sorted(p.stem for p in SPECS.glob("*.res"))
def small(spec: str, **params: Any) -> resdsl.Network:
    """The spec at the small input the backend tests share (`tests.conftest.small_shape`)."""
    return resdsl.load(str(SPECS / f"{spec}.res"), input_shape=small_shape(spec), **params)


def batch(net: resdsl.Network, n: int, seed: int = 0) -> Any:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, *net.input_shape, generator=generator)


def rel_err(got: Any, want: Any) -> float:
    """‖got − want‖ / ‖want‖, in float32."""
    got, want = got.detach().float(), want.detach().float()
    return float((got - want).norm() / want.norm())


@pytest.fixture(autouse=True)
def fresh_dynamo() -> Iterator[None]:
    """Each test starts (and leaves) dynamo with no compiled code and no guards."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# ---------------------------------------------------------------------- torch.compile


def calibrated(model: Any, x: Any) -> Any:
    """`model` in eval mode, its BN running statistics those of one batch `x`.

    The initial statistics (mean 0, variance 1) make eval-mode BN the identity, and then the
    activations of a deep network grow unchecked: preact_resnet1001's 333 units overflow
    float32 to inf and NaN. One training-mode forward with `momentum=None` (a plain average
    of the batches seen, here the one) gives every BN the statistics it normalises with."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_compile_fullgraph_without_graph_breaks(spec: str) -> None:
    net = small(spec)
    x = batch(net, 2)
    # Eval mode: a training-mode graph holds more ops (BN's running statistics and counter
    # updates), which makes dynamo's tracing half as long again (preact_resnet1001: 45 s
    # instead of 30 on this machine); the training-mode test below covers that path.
    model = calibrated(net.to_torch(seed=0), x)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        want = model(x)
        got = compiled(x)  # fullgraph=True: a graph break raises here, with its reason
    # Several outputs are an OrderedDict by name (resnet50_fpn); one output, a tensor.
    named = net.graph.outputs
    if named:
        assert {k: v.shape for k, v in got.items()} == {
            k: (2, *net.graph.node(n).shape) for k, n in named.items()}
        assert all(bool(torch.isfinite(v).all()) for v in want.values())
    else:
        assert got.shape == (2, *net.output_shape)
        assert bool(torch.isfinite(want).all())
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("spec", ["resnet20", "highway_cifar19"])
def test_compile_fullgraph_training_step(spec: str) -> None:
    """Training mode, forward and backward: BN's batch statistics and running-statistics
    updates, and (highway_cifar19) dropout, which draws from the global generator: both runs
    start from the same seed, and the eager backend runs the same ops in the same order."""
    net = resdsl.load(str(SPECS / f"{spec}.res"))
    x = batch(net, 4)
    eager, model = net.to_torch(seed=0), net.to_torch(seed=0)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    outputs = []
    for run in (eager, compiled):
        torch.manual_seed(0)
        out = run(x)
        out.square().mean().backward()
        outputs.append(out.detach())
    torch.testing.assert_close(outputs[1], outputs[0])
    for (k, a), (_, b) in zip(eager.named_parameters(), model.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=k)
    for (k, u), (_, v) in zip(eager.named_buffers(), model.named_buffers(), strict=True):
        torch.testing.assert_close(v, u, msg=k)


def _cpp_compiler() -> str | None:
    """The C++ compiler inductor would use, or None with no compiler on this machine."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # a torch without this helper: look where inductor looks by default
        for name in (os.environ.get("CXX"), "g++", "clang++"):
            if name and shutil.which(name):
                return name
        return None
    try:
        return str(get_cpp_compiler())
    except Exception:
        return None


def test_compile_with_inductor() -> None:
    if _cpp_compiler() is None:
        pytest.skip(
            "torch.compile's default backend (inductor) generates C++ for the CPU and needs a "
            "C++ compiler: none was found ($CXX unset or missing, no g++ or clang++ on PATH)"
        )
    net = resdsl.load(str(SPECS / "resnet20.res"))
    model = net.to_torch(seed=0).eval()
    x = batch(net, 4)
    compiled = torch.compile(model, fullgraph=True)
    with torch.inference_mode():
        want = model(x)
        got = compiled(x)
    # Inductor fuses and reorders float arithmetic: close, not equal.
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------- torch.export

EXPORT_SPECS = ["resnet18", "densenet121", "dpn92", "highway_cifar19", "rezero_resnet56"]


@pytest.mark.parametrize("spec", EXPORT_SPECS)
def test_export_with_dynamic_batch(spec: str) -> None:
    net = small(spec)
    model = net.to_torch(seed=0).eval()
    # Traced at batch 2 (export specialises sizes 0 and 1), run at 3 and 5.
    batch_dim = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (batch(net, 2),), dynamic_shapes=({0: batch_dim},))
    exported = program.module()
    for n in (3, 5):
        x = batch(net, n, seed=n)
        with torch.no_grad():
            want = model(x)
            got = exported(x)
        assert got.shape == (n, *net.output_shape)
        torch.testing.assert_close(got, want)


# ---------------------------------------------------------------------- channels_last, bf16


def reference(spec: str) -> Any:
    """The reference implementation of `spec` (10 classes), built on the meta device: its
    weights come from ours by load_state_dict(assign=True), so nothing is initialised twice.
    torchvision and timm are imported here, not by the DDP workers that import this file."""
    with torch.device("meta"):
        if spec == "dpn92":
            timm = pytest.importorskip("timm")
            return timm.create_model("dpn92", pretrained=False, num_classes=10)
        torchvision = pytest.importorskip("torchvision")
        return getattr(torchvision.models, spec)(num_classes=10)


@pytest.mark.parametrize("spec", ["resnet50", "dpn92"])
def test_channels_last_and_bf16_autocast(spec: str) -> None:
    net = resdsl.load(str(SPECS / f"{spec}.res"), input_shape=(3, 64, 64), classes=10)
    ours = net.to_torch(seed=0).eval()
    ref = reference(spec).eval()
    # The same tensors: `.to(memory_format=...)` below makes each model its own copies.
    ref.load_state_dict(ours.state_dict(), strict=True, assign=True)
    x = batch(net, 4)
    xc = x.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        want = ours(x)
        ours_cl = ours.to(memory_format=torch.channels_last)
        ref_cl = ref.to(memory_format=torch.channels_last)
        convs = [m.weight for m in ours_cl.modules() if isinstance(m, torch.nn.Conv2d)]
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
        got_cl = ours_cl(xc)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got_bf16 = ours_cl(xc)
            ref_bf16 = ref_cl(xc)
        ours_nchw = ours_cl.to(memory_format=torch.contiguous_format)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got_bf16_nchw = ours_nchw(x)
    # channels_last picks other conv kernels (other summation orders): float32-close.
    torch.testing.assert_close(got_cl, want, rtol=1e-4, atol=1e-4)
    for got in (got_bf16, got_bf16_nchw):
        assert got.dtype == torch.bfloat16
        assert bool(torch.isfinite(got).all())
        # bf16 keeps 8 bits of mantissa: about 0.5% here, so a loose bound.
        assert rel_err(got, want) < 0.05
    # The reference network under the same autocast and layout: the same ops on the same
    # weights, so the same numbers (bit for bit today; a tight bound leaves room for kernels).
    assert rel_err(got_bf16, ref_bf16) < 1e-3


# ---------------------------------------------------------------------- DDP

DDP_SPEC = "resnet20"
DDP_BATCH = 8
DDP_TIMEOUT_S = 180


def ddp_step_data() -> tuple[Any, Any]:
    """The whole batch both processes and the single-process reference use."""
    net = resdsl.load(str(SPECS / f"{DDP_SPEC}.res"))
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(DDP_BATCH, *net.input_shape, generator=generator)
    y = torch.randint(0, net.output_shape[0], (DDP_BATCH,), generator=generator)
    return x, y


def sgd_step(model: Any, forward: Any, x: Any, y: Any) -> Any:
    """One SGD step (lr 0.1, momentum 0.9); returns the loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(forward(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach()


def ddp_worker(out_dir: str) -> None:
    """One DDP process, started by test_ddp_matches_single_process with torchrun's
    variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); writes rank{RANK}.pt."""
    import datetime

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    try:
        model = resdsl.load(str(SPECS / f"{DDP_SPEC}.res")).to_torch(seed=0)
        # Eval-mode BN: each sample's output depends on that sample alone, so the mean loss
        # over two halves, each on its own process, has the same gradient as on the whole
        # batch. In training mode each process would normalise with its own half's
        # statistics (and without SyncBatchNorm) the step would differ from the one-process
        # step by more than rounding.
        model.eval()
        ddp = DistributedDataParallel(model)
        compiled = torch.compile(ddp, backend="eager")
        x, y = ddp_step_data()
        share = DDP_BATCH // world
        part = slice(rank * share, (rank + 1) * share)
        loss = sgd_step(model, compiled, x[part], y[part])
        grads = {k: p.grad for k, p in model.named_parameters()}
        torch.save({"loss": loss, "grads": grads, "state": model.state_dict()},
                   Path(out_dir) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _loopback() -> str | None:
    names = {name for _, name in socket.if_nameindex()}
    return next((n for n in ("lo", "lo0") if n in names), None)


def _run_workers(out_dir: Path, world: int) -> tuple[list[int | None], str]:
    """Start `world` ddp_worker processes with torchrun's variables; wait for them all, up
    to DDP_TIMEOUT_S in total, then kill any still running. Their exit codes (-9: killed
    at the deadline) and the tails of their output."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(_free_port()), PYTHONPATH=path, OMP_NUM_THREADS="1")
    loopback = _loopback()
    if loopback is not None:  # gloo's own connections: loopback, whatever the hostname is
        env["GLOO_SOCKET_IFNAME"] = loopback
    code = "import sys\nfrom tests.test_torch_ecosystem import ddp_worker\nddp_worker(sys.argv[1])"
    procs: list[subprocess.Popen[bytes]] = []
    logs = [out_dir / f"rank{r}.log" for r in range(world)]
    deadline = time.monotonic() + DDP_TIMEOUT_S
    try:
        for rank in range(world):
            with logs[rank].open("wb") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-c", code, str(out_dir)], cwd=ROOT,
                    env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
                    stdout=log, stderr=subprocess.STDOUT,
                ))
        for p in procs:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    output = "\n".join(f"--- rank {r}:\n{logs[r].read_text(errors='replace')[-3000:]}"
                       for r in range(world))
    return [p.returncode for p in procs], output


def test_ddp_matches_single_process(tmp_path: Path) -> None:
    world = 2
    codes, output = _run_workers(tmp_path, world)
    if codes != [0] * world and "address already in use" in output.lower():
        codes, output = _run_workers(tmp_path, world)  # the free port was taken meanwhile
    assert codes == [0] * world, f"DDP workers failed or timed out ({codes}):\n{output}"

    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    x, y = ddp_step_data()
    single = resdsl.load(str(SPECS / f"{DDP_SPEC}.res")).to_torch(seed=0).eval()
    loss = sgd_step(single, single, x, y)
    grads = {k: p.grad for k, p in single.named_parameters()}
    # Each process saw only its half; the two half losses average to the whole batch's.
    torch.testing.assert_close((results[0]["loss"] + results[1]["loss"]) / 2, loss)
    for result in results:
        assert result["grads"].keys() == grads.keys()
        for k, g in grads.items():
            torch.testing.assert_close(result["grads"][k], g, rtol=1e-4, atol=1e-6, msg=k)
        for k, v in single.state_dict().items():
            torch.testing.assert_close(result["state"][k], v, rtol=1e-4, atol=1e-6, msg=k)
    # The gradients were synchronised: one half alone gives different ones.
    half: Any = resdsl.load(str(SPECS / f"{DDP_SPEC}.res")).to_torch(seed=0).eval()
    sgd_step(half, half, x[: DDP_BATCH // world], y[: DDP_BATCH // world])
    assert not torch.allclose(half.fc.weight.grad, grads["fc.weight"], rtol=1e-3, atol=1e-5)


# ---------------------------------------------------------------------- state, copy, pickle


def test_state_dict_round_trip() -> None:
    net = resdsl.load(str(SPECS / "resnet20.res"))
    model = net.to_torch(seed=0).eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    other = net.to_torch(seed=1).eval()
    x = batch(net, 2)
    with torch.no_grad():
        assert not torch.allclose(other(x), model(x))
        other.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
        torch.testing.assert_close(other(x), model(x), rtol=0, atol=0)
    assert list(other.state_dict()) == list(model.state_dict())


def test_deepcopy_is_independent() -> None:
    # rezero_resnet56: bare nn.Parameters (alpha) and a class with a forward-time
    # constructor parameter (the option A shortcut's width) besides the usual layers.
    net = resdsl.load(str(SPECS / "rezero_resnet56.res"))
    model: Any = net.to_torch(seed=0).eval()
    clone = copy.deepcopy(model)
    assert type(clone) is type(model)
    x = batch(net, 2)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x), rtol=0, atol=0)
        clone.fc.weight.zero_()
        assert model.fc.weight.abs().sum() > 0
    for (k, a), (_, b) in zip(model.state_dict().items(), clone.state_dict().items(),
                              strict=True):
        assert a.data_ptr() != b.data_ptr(), k


def test_pickle_module(tmp_path: Path) -> None:
    """A built module pickles (and torch.save-s) as its generated source and its state, so it
    unpickles in a fresh process; frozen parameters stay frozen."""
    model = resdsl.load(str(SPECS / "resnet20.res")).to_torch(seed=0)
    model.get_parameter("conv1.weight").requires_grad_(False)
    copy_ = pickle.loads(pickle.dumps(model))
    assert not copy_.get_parameter("conv1.weight").requires_grad and copy_.training
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.eval()(x)
        assert torch.equal(copy_.eval()(x), expected)
    torch.save({"model": model, "x": x, "y": expected}, tmp_path / "m.pt")
    code = ("import torch; d = torch.load('m.pt', weights_only=False); "
            "assert torch.equal(d['model'](d['x']), d['y'])")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr


def test_pickle_module_from_written_source(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The workaround: the same source, imported from a file, pickles like any module."""
    net = resdsl.load(str(SPECS / "resnet20.res"))
    (tmp_path / "generated_resnet20.py").write_text(net.to_python(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    generated = importlib.import_module("generated_resnet20")
    try:
        model = generated.Resnet20().eval()
        model.load_state_dict(net.to_torch(seed=0).state_dict())
        clone = pickle.loads(pickle.dumps(model))
        x = batch(net, 2)
        with torch.no_grad():
            torch.testing.assert_close(clone(x), model(x), rtol=0, atol=0)
    finally:
        sys.modules.pop("generated_resnet20", None)
