"""MXJob workload: the parameter-server rendezvous of MXNet's launcher (ps-lite), reduced to sockets
(MXNet itself no longer installs on current Python). Every role reads the env the operator set:

- scheduler: listens on DMLC_PS_ROOT_PORT; waits until DMLC_NUM_SERVER servers and DMLC_NUM_WORKER
  workers registered, tells them all to go, collects each worker's result and prints them;
- server: registers with the scheduler at DMLC_PS_ROOT_URI:DMLC_PS_ROOT_PORT, listens on its own
  MX_CONFIG port, sums the value every worker pushes and answers each with the sum (an all-reduce);
- worker: registers, pushes DMLC_WORKER_ID+1 to every server at its MX_CONFIG url:port, reads back the
  sum and reports it to the scheduler.

Log lines the test reads:
  scheduler: <s> servers and <w> workers registered
  server <i>: sum of <w> workers' values <s> (want <w(w+1)/2>)
  scheduler: worker <i> got sum <s> from <k> servers
"""

from __future__ import annotations

import json
import os
import socket
import time

DEADLINE_SECONDS = 150


def connect(host: str, port: int) -> socket.socket:
    """Retry until the peer answers: its name resolves only once its pod is ready."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"{host}:{port} never answered: {error}") from error
            time.sleep(0.5)


def send(conn: socket.socket, message: dict[str, object]) -> None:
    conn.sendall((json.dumps(message) + "\n").encode())


def receive(conn: socket.socket) -> dict[str, object]:
    conn.settimeout(DEADLINE_SECONDS)
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            raise SystemExit("peer closed the connection")
        data += chunk
    message: dict[str, object] = json.loads(data)
    return message


def listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    sock.listen(64)
    sock.settimeout(DEADLINE_SECONDS)
    return sock


def scheduler(servers: int, workers: int) -> None:
    sock = listener(int(os.environ["DMLC_PS_ROOT_PORT"]))
    print(f"scheduler: listening on port {os.environ['DMLC_PS_ROOT_PORT']}", flush=True)
    peers = []
    while len(peers) < servers + workers:
        conn, address = sock.accept()
        hello = receive(conn)
        print(f"scheduler: {hello['role']} {hello['id']} registered from {address[0]}", flush=True)
        peers.append((conn, hello))
    print(f"scheduler: {servers} servers and {workers} workers registered", flush=True)
    for conn, _ in peers:
        send(conn, {"go": True})
    for conn, hello in peers:
        if hello["role"] == "worker":
            done = receive(conn)
            print(f"scheduler: worker {hello['id']} got sum {done['sum']} from {done['servers']} servers")


def server(index: int, workers: int, port: int) -> None:
    sock = listener(port)
    hub = connect(os.environ["DMLC_PS_ROOT_URI"], int(os.environ["DMLC_PS_ROOT_PORT"]))
    send(hub, {"role": "server", "id": index})
    receive(hub)  # go
    pushes = []
    while len(pushes) < workers:
        conn, _ = sock.accept()
        pushes.append((conn, receive(conn)))
    total = sum(int(str(push["value"])) for _, push in pushes)
    print(f"server {index}: sum of {workers} workers' values {total} (want {workers * (workers + 1) // 2})")
    for conn, _ in pushes:
        send(conn, {"sum": total})


def worker(index: int, servers: list[dict[str, object]]) -> None:
    hub = connect(os.environ["DMLC_PS_ROOT_URI"], int(os.environ["DMLC_PS_ROOT_PORT"]))
    send(hub, {"role": "worker", "id": index})
    receive(hub)  # go
    sums = set()
    for peer in servers:
        conn = connect(str(peer["url"]), int(str(peer["port"])))
        send(conn, {"value": index + 1})
        sums.add(int(str(receive(conn)["sum"])))
        print(f"worker {index}: server at {peer['url']}:{peer['port']} answered {sums}", flush=True)
    send(hub, {"sum": ",".join(map(str, sorted(sums))), "servers": len(servers)})


def main() -> None:
    role = os.environ["DMLC_ROLE"]
    config = json.loads(os.environ["MX_CONFIG"])
    num_servers, num_workers = int(os.environ["DMLC_NUM_SERVER"]), int(os.environ["DMLC_NUM_WORKER"])
    print(
        f"{role}: scheduler at {os.environ['DMLC_PS_ROOT_URI']}:{os.environ['DMLC_PS_ROOT_PORT']}", flush=True
    )
    if role == "scheduler":
        scheduler(num_servers, num_workers)
    elif role == "server":
        index = int(config["task"]["index"])
        server(index, num_workers, int(config["cluster"]["server"][index]["port"]))
    elif role == "worker":
        worker(int(os.environ["DMLC_WORKER_ID"]), config["cluster"]["server"])
    else:
        raise SystemExit(f"unknown DMLC_ROLE {role}")


if __name__ == "__main__":
    main()
