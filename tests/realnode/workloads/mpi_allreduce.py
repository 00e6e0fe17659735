"""Volcano MPI workload, started by `mpiexec` on every host of the hostfile: each rank all-reduces
rank+1 over MPI_COMM_WORLD (the sum proves every rank joined) and says on which host it ran.

Log lines (forwarded by mpiexec to the master's log):
  mpi rank <r>/<n> on <host>: allreduce sum <s> (want <n(n+1)/2>)
"""

from __future__ import annotations

from mpi4py import MPI


def main() -> None:
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    total = comm.allreduce(rank + 1, op=MPI.SUM)
    want = size * (size + 1) // 2
    print(
        f"mpi rank {rank}/{size} on {MPI.Get_processor_name()}: allreduce sum {total} (want {want})",
        flush=True,
    )
    comm.Barrier()
    raise SystemExit(0 if total == want else 1)


if __name__ == "__main__":
    main()
