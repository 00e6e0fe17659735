"""PyTorchJob workload: every rank joins `torch.distributed` over gloo through the env the operator set
(MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE), all-reduces rank+1 (the sum proves every rank joined),
then trains a linear model on synthetic data for a few DistributedDataParallel steps and checks that
the ranks end with the same weights (DDP averaged their gradients).

Log lines the test reads (tests/realnode/test_real_training.py):
  rank <r>/<n>: all-reduce sum <s> (want <n(n+1)/2>)
  rank <r>: DDP step <i> loss <x>
  rank <r>: DDP weights equal on all ranks: True
"""

from __future__ import annotations

import datetime
import os
import socket

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

STEPS = 5


def main() -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    print(f"rank {rank}/{world} on {socket.gethostname()}: joining gloo at {where}", flush=True)
    dist.init_process_group("gloo", init_method="env://", timeout=datetime.timedelta(seconds=120))

    contribution = torch.tensor([float(rank + 1)])
    dist.all_reduce(contribution, op=dist.ReduceOp.SUM)
    print(f"rank {rank}/{world}: all-reduce sum {contribution.item():.0f} (want {world * (world + 1) // 2})")

    torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.Generator().manual_seed(1000 + rank)  # each rank its own shard of synthetic data
    true_weights = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    for step in range(STEPS):
        x = torch.randn(32, 4, generator=data)
        y = x @ true_weights.T + 0.25
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()  # DDP all-reduces the gradients here
        optimizer.step()
        print(f"rank {rank}: DDP step {step} loss {loss.item():.4f}")

    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(weights) for _ in range(world)]
    dist.all_gather(gathered, weights)
    equal = all(torch.equal(weights, other) for other in gathered)
    print(f"rank {rank}: DDP weights equal on all ranks: {equal}", flush=True)
    dist.destroy_process_group()
    raise SystemExit(0 if equal else 1)


if __name__ == "__main__":
    main()
