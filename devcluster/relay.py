"""A TCP relay from the host's loopback into a network namespace's loopback, on the same port:

    python -m devcluster.relay NETNS_FILE PORT [TAG]

so one kubeconfig (https://127.0.0.1:PORT) serves clients on the host (pytest, kubectl) and inside
the real node's namespace (kubelet, CoreDNS, the operator) alike. The listening socket is made on the
host first; then the whole process enters the namespace, and every upstream connection it opens is
made there. TAG (the cluster's state directory) only marks the command line, so `down` finds it."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from pathlib import Path

from devcluster import netns


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        # Half-close: the other direction may still be carrying the answer.
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            with contextlib.suppress(OSError):
                sock.shutdown(how)


def _serve(client: socket.socket, port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def main(argv: list[str]) -> int:
    path, port = Path(argv[0]), int(argv[1])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    netns.enter(path)  # single-threaded here: every thread started below is inside too
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_serve, args=(client, port), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
