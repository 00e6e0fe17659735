"""python -m devcluster {build|up|down|status|kubeconfig} [--name NAME] [--real-node]"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from devcluster import cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster", description=__doc__)
    parser.add_argument("command", choices=["build", "up", "down", "status", "kubeconfig"])
    parser.add_argument("--name", default="default", help="cluster name (several can run side by side)")
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="up: a real kubelet + containerd node in its own network namespace (devcluster/realnode.py)",
    )
    args = parser.parse_args(argv)
    if args.command == "build":
        return subprocess.run(["bash", str(cluster.HERE / "build.sh")], check=False).returncode
    if args.command == "up":
        print(cluster.up(args.name, real_node=args.real_node).kubeconfig)
        return 0
    if args.command == "down":
        cluster.down(args.name)
        return 0
    found = cluster.Cluster.load(args.name)
    if args.command == "kubeconfig":
        if not found:
            print(f"no cluster named {args.name}", file=sys.stderr)
            return 1
        print(found.kubeconfig)
        return 0
    if not found:
        print(json.dumps({"name": args.name, "running": False}))
        return 1
    alive = found.alive()
    print(json.dumps({**found.summary(), "running": alive}, indent=2, default=str))
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
