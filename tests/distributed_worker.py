"""One rank of tests/test_scale.py's 2-process runs, started as torchrun starts a script:
RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in the environment, gloo on the CPU.

    python tests/distributed_worker.py SPEC CxHxW OUT_DIR

- FSDP2: the compiled network with each of its `residual_units()` sharded by `fully_shard`,
  then the root; one SGD step on this rank's half of the batch (`batch`, below). Writes
  OUT_DIR/fsdp{RANK}.pt: the full state_dict after the step (each sharded parameter gathered
  with `full_tensor()`), this rank's loss, the units' paths and whether each was sharded.
- SyncBatchNorm: the network converted with `convert_sync_batchnorm`, its eval-mode forward
  on this rank's half (PyTorch synchronises statistics only in training, and only for
  accelerator tensors). Writes OUT_DIR/syncbn{RANK}.pt: the output, the converted module types.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor

import resdsl

LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4


def batch(input_shape: tuple[int, ...], classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole batch of the step, 4 samples; rank r takes its r-th half."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, *input_shape, generator=gen)
    y = torch.randint(0, classes, (4,), generator=gen)
    return x, y


def network(spec: str, input_shape: tuple[int, ...]) -> tuple[Any, int]:
    """The compiled network, as every rank and the single-process reference build it, and
    its class count. Typed Any: the generated class's methods (`residual_units`) are not
    nn.Module's."""
    net = resdsl.load(spec, input_shape=input_shape)
    return net.to_torch(seed=0), net.output_shape[0]


def fsdp_step(spec: str, input_shape: tuple[int, ...], rank: int, world: int,
              out: Path) -> None:
    model, classes = network(spec, input_shape)
    units = model.residual_units()
    for unit in units:
        fully_shard(unit)
    fully_shard(model)
    # After sharding: the optimiser must see the sharded parameters (DTensors).
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM,
                          weight_decay=WEIGHT_DECAY)
    x, y = batch(input_shape, classes)
    x, y = x.chunk(world)[rank], y.chunk(world)[rank]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()  # type: ignore[no-untyped-call]
    opt.step()
    state = {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().clone()
             for k, v in model.state_dict().items()}
    torch.save({"state": state, "loss": loss.detach(),
                "units": list(model.residual_unit_paths),
                "sharded": [isinstance(u, FSDPModule) for u in units],
                "dtensors": all(isinstance(p, DTensor) for p in model.parameters())},
               out / f"fsdp{rank}.pt")


def sync_batchnorm(spec: str, input_shape: tuple[int, ...], rank: int, world: int,
                   out: Path) -> None:
    model, classes = network(spec, input_shape)
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
    model.eval()
    x, _ = batch(input_shape, classes)
    with torch.no_grad():
        y = model(x.chunk(world)[rank])
    torch.save({"y": y, "types": sorted({type(m).__name__ for m in model.modules()})},
               out / f"syncbn{rank}.pt")


def main() -> None:
    spec, shape, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    input_shape = tuple(int(v) for v in shape.split("x"))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.manual_seed(0)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        fsdp_step(spec, input_shape, rank, world, out)
        sync_batchnorm(spec, input_shape, rank, world, out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
