"""PaddleJob workload, collective mode (Workers only): the rendezvous of Paddle's launcher
(`paddle.distributed.launch`'s HTTP master), reduced to sockets (PaddlePaddle itself is a 200 MB
wheel for what this checks). Every pod reads the env the operator set:

- Worker-0 got `POD_IP_DUMMY` (its own IP, from a fieldRef) and `PADDLE_MASTER=$(POD_IP_DUMMY):port`
  (kubelet expanded it): it checks that both name its own address, serves there and waits until
  PADDLE_NNODES - 1 peers registered;
- the other Workers got `PADDLE_MASTER=<job>-worker-0:port`: they register their address and a value
  (their index + 1, from the pod name, as Paddle's launcher does not give ranks before the rendezvous);
- the master assigns ranks by sorted address (as Paddle's does) and sends every node the endpoint list
  and the sum of the values (its own included): an all-reduce through the rendezvous.

Log lines the test reads:
  paddle master: PADDLE_MASTER <ip>:<port> is this pod (POD_IP_DUMMY <ip>)
  paddle master: <n-1> peers registered for PADDLE_NNODES <n> (job <PADDLE_JOB_ID>)
  paddle node <rank>/<n> (<pod>): endpoints <ip,ip,...> sum <s> (want <n(n+1)/2>)
"""

from __future__ import annotations

import json
import os
import socket
import time

DEADLINE_SECONDS = 150


def send(conn: socket.socket, message: dict[str, object]) -> None:
    conn.sendall((json.dumps(message) + "\n").encode())


def receive(conn: socket.socket) -> dict[str, object]:
    conn.settimeout(DEADLINE_SECONDS)
    line = conn.makefile().readline()
    if not line:
        raise SystemExit("peer closed the connection")
    message: dict[str, object] = json.loads(line)
    return message


def connect(host: str, port: int) -> socket.socket:
    """Retry until the master answers: its name resolves only once its pod is ready."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"{host}:{port} never answered: {error}") from error
            time.sleep(0.5)


def own_address() -> str:
    return socket.gethostbyname(socket.gethostname())


def report(rank: int, nodes: int, pod: str, endpoints: list[str], total: int) -> None:
    want = nodes * (nodes + 1) // 2
    print(f"paddle node {rank}/{nodes} ({pod}): endpoints {','.join(endpoints)} sum {total} (want {want})")
    raise SystemExit(0 if total == want and len(endpoints) == nodes else 1)


def master(host: str, port: int, nodes: int, pod: str, value: int) -> None:
    me = own_address()
    if host != os.environ["POD_IP_DUMMY"] or host != me:
        raise SystemExit(f"PADDLE_MASTER {host}:{port} is not this pod ({me})")
    print(f"paddle master: PADDLE_MASTER {host}:{port} is this pod (POD_IP_DUMMY {me})", flush=True)
    server = socket.create_server(("0.0.0.0", port))
    server.settimeout(DEADLINE_SECONDS)
    peers = []
    while len(peers) < nodes - 1:
        conn, _ = server.accept()
        peers.append((conn, receive(conn)))
    print(f"paddle master: {len(peers)} peers registered for PADDLE_NNODES {nodes} "
          f"(job {os.environ['PADDLE_JOB_ID']})", flush=True)  # fmt: skip
    endpoints = sorted([me] + [str(hello["address"]) for _, hello in peers], key=socket.inet_aton)
    total = value + sum(int(str(hello["value"])) for _, hello in peers)
    for conn, hello in peers:
        send(conn, {"endpoints": endpoints, "rank": endpoints.index(str(hello["address"])), "sum": total})
        conn.close()
    report(endpoints.index(me), nodes, pod, endpoints, total)


def peer(host: str, port: int, nodes: int, pod: str, value: int) -> None:
    conn = connect(host, port)
    send(conn, {"address": own_address(), "value": value})
    reply = receive(conn)
    endpoints = [str(e) for e in reply["endpoints"]]  # type: ignore[attr-defined]
    report(int(str(reply["rank"])), nodes, pod, endpoints, int(str(reply["sum"])))


def main() -> None:
    host, port = os.environ["PADDLE_MASTER"].rsplit(":", 1)
    nodes, pod = int(os.environ["PADDLE_NNODES"]), socket.gethostname()
    value = int(pod.rsplit("-", 1)[1]) + 1  # <job>-worker-<index>
    if "POD_IP_DUMMY" in os.environ:
        master(host, int(port), nodes, pod, value)
    else:
        peer(host, int(port), nodes, pod, value)


if __name__ == "__main__":
    main()
