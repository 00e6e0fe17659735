"""JAXJob workload: every Worker calls `jax.distributed.initialize()` with what the operator set
(COORDINATOR_ADDRESS, COORDINATOR_PORT, NUM_PROCESSES, PROCESS_ID), so process 0 serves the
coordinator at its own pod's Service name and the others join it; then two computations over the
global devices, which only finish when every process took part:

- `multihost_utils.process_allgather` of PROCESS_ID+1: every process sees every process's value;
- a jitted sum of an array sharded over all processes' devices (XLA's cross-process all-reduce,
  Gloo on CPU).

Log lines the test reads:
  jax process <p>/<n>: coordinator <addr>:<port>, <g> global devices (<l> local)
  jax process <p>/<n>: allgather [<v>, ...] sum <s> (want <n(n+1)/2>)
  jax process <p>/<n>: sharded sum <s> (want <n(n+1)/2>)
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

DEADLINE_SECONDS = 150


def main() -> None:
    # Collectives between processes on CPU go over Gloo (TCP between the pods).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    address, port = os.environ["COORDINATOR_ADDRESS"], os.environ["COORDINATOR_PORT"]
    processes, process = int(os.environ["NUM_PROCESSES"]), int(os.environ["PROCESS_ID"])
    jax.distributed.initialize(
        coordinator_address=f"{address}:{port}",
        num_processes=processes,
        process_id=process,
        # Process 0 serves on every IPv4 address of its pod (the default `[::]` needs IPv6).
        coordinator_bind_address=f"0.0.0.0:{port}",
        initialization_timeout=DEADLINE_SECONDS,
    )
    me = f"jax process {jax.process_index()}/{jax.process_count()}"
    print(
        f"{me}: coordinator {address}:{port}, {jax.device_count()} global devices "
        f"({jax.local_device_count()} local)",
        flush=True,
    )
    want = processes * (processes + 1) // 2

    gathered = multihost_utils.process_allgather(np.array([process + 1], dtype=np.int32))
    values = [int(v) for v in np.asarray(gathered).reshape(-1)]
    print(f"{me}: allgather {values} sum {sum(values)} (want {want})", flush=True)

    mesh = jax.make_mesh((jax.device_count(),), ("p",))
    local = np.full((jax.local_device_count(),), process + 1, dtype=np.int32)
    sharded = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("p")), local)
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, PartitionSpec()))(sharded)
    print(f"{me}: sharded sum {int(total)} (want {want})", flush=True)

    multihost_utils.sync_global_devices("done")  # nobody leaves while another still needs it
    jax.distributed.shutdown()
    raise SystemExit(0 if sum(values) == want and int(total) == want else 1)


if __name__ == "__main__":
    main()
