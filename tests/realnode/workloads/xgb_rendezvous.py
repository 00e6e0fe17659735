"""XGBoostJob workload: XGBoost's own collective through the env the operator set.

- Master (RANK 0) runs XGBoost's `RabitTracker` on MASTER_PORT for WORLD_SIZE workers, and first
  dials every Worker at WORKER_ADDRS:WORKER_PORT (the addresses LightGBM-style code reads), each
  answering with its RANK;
- every rank (the Master too) joins the tracker at MASTER_ADDR:MASTER_PORT with its RANK as task id,
  all-reduces RANK+1, then trains a small booster on its own shard of a synthetic data set
  (`xgb.train` all-reduces the histograms, so every rank ends with the same model).

Log lines the test reads:
  xgboost master: worker <addr>:<port> answered rank <r>
  xgboost rank <r>/<n>: allreduce sum <s> (want <n(n+1)/2>)
  xgboost rank <r>/<n>: model <sha256 of the model's JSON, 12 hex> after <k> rounds
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import numpy as np
import xgboost as xgb
from xgboost import collective
from xgboost.tracker import RabitTracker

DEADLINE_SECONDS = 150
ROUNDS = 5


def dial(host: str, port: int) -> str:
    """Retry until the peer answers: its name resolves only once its pod is ready."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        try:
            with socket.create_connection((host, port), timeout=5) as conn:
                conn.settimeout(DEADLINE_SECONDS)
                return conn.makefile().readline().strip()
        except OSError as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"{host}:{port} never answered: {error}") from error
            time.sleep(0.5)


def resolve(host: str) -> str:
    """Wait until `host` resolves (a pod's name is published once it is ready): XGBoost's own retry
    covers a refused connection, not a name that does not resolve yet."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        try:
            return socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0]
        except OSError as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"{host} never resolved: {error}") from error
            time.sleep(0.5)


def answer_once(port: int, rank: int) -> threading.Thread:
    """A Worker tells whoever dials WORKER_PORT its rank (once), in the background."""
    sock = socket.create_server(("0.0.0.0", port), reuse_port=False)

    def serve() -> None:
        sock.settimeout(DEADLINE_SECONDS)
        conn, _ = sock.accept()
        with conn:
            conn.sendall(f"{rank}\n".encode())
        sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def shard(rank: int, world: int) -> xgb.DMatrix:
    """Rank `rank`'s rows of one synthetic regression set (the same seed on every rank)."""
    rng = np.random.default_rng(7)
    features = rng.normal(size=(600, 4))
    labels = features @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=600)
    return xgb.DMatrix(features[rank::world], label=labels[rank::world])


def main() -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    master, master_port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    workers = [a for a in os.environ.get("WORKER_ADDRS", "").split(",") if a]
    worker_port = int(os.environ.get("WORKER_PORT", "0"))
    tracker = None
    answering = None
    if rank == 0:
        tracker = RabitTracker(n_workers=world, host_ip="0.0.0.0", port=master_port, sortby="task")
        tracker.start()
        print(f"xgboost master: tracker on port {master_port} for {world} workers", flush=True)
        for address in workers:
            print(
                f"xgboost master: worker {address}:{worker_port} answered rank {dial(address, worker_port)}"
            )
    else:
        answering = answer_once(worker_port, rank)
        print(f"xgboost rank {rank}: MASTER_ADDR {master} is {resolve(master)}", flush=True)

    context = {
        "dmlc_communicator": "rabit",
        "dmlc_tracker_uri": master,
        "dmlc_tracker_port": master_port,
        "dmlc_task_id": str(rank),
        "dmlc_retry": 10,
        "dmlc_timeout": DEADLINE_SECONDS,
    }
    with collective.CommunicatorContext(**context):
        me = f"xgboost rank {collective.get_rank()}/{collective.get_world_size()}"
        total = int(collective.allreduce(np.array([rank + 1.0]), collective.Op.SUM)[0])
        print(f"{me}: allreduce sum {total} (want {world * (world + 1) // 2})", flush=True)
        params = {"objective": "reg:squarederror", "tree_method": "hist", "max_depth": 3, "nthread": 1}
        booster = xgb.train(params, shard(rank, world), num_boost_round=ROUNDS)
        model = hashlib.sha256(booster.save_raw("json")).hexdigest()[:12]
        print(f"{me}: model {model} after {booster.num_boosted_rounds()} rounds", flush=True)
    if tracker is not None:
        tracker.wait_for(DEADLINE_SECONDS)
    if answering is not None:
        answering.join(DEADLINE_SECONDS)
    raise SystemExit(0 if total == world * (world + 1) // 2 else 1)


if __name__ == "__main__":
    main()
