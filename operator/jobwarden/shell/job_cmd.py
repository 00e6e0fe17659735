"""`jobwarden job {suspend,resume,restart,abort} NAME [-n NS]`: vcctl's job verbs. Each creates a
Volcano Command (`bus.volcano.sh/v1alpha1`) aimed at the job, as vcctl does: `generateName`
`<job>-<action lowercase>-`, the job as controller ownerReference and as `target`. The controller
carries it out and deletes it (kinds/volcano/commands.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import Any

from jobwarden.core.plan import COMMAND_KIND, Body
from jobwarden.kinds.volcano import RESOURCE
from jobwarden.shell.api import load_config, reason_of
from jobwarden.shell.kubeclient import ApiError, CredentialsError

# vcctl's verbs: suspend is an abort (pods killed, the job Aborted until resumed).
ACTIONS: Mapping[str, str] = {
    "suspend": "AbortJob",
    "resume": "ResumeJob",
    "restart": "RestartJob",
    "abort": "AbortJob",
}


def command_manifest(job: Body, action: str) -> dict[str, Any]:
    meta = job["metadata"]
    owner = {
        "apiVersion": job["apiVersion"],
        "kind": job["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": COMMAND_KIND.api_version,
        "kind": COMMAND_KIND.kind,
        "metadata": {
            "generateName": f"{meta['name']}-{action.lower()}-",
            "namespace": meta["namespace"],
            "ownerReferences": [owner],
        },
        "target": owner,
        "action": action,
    }


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jobwarden job", description=__doc__)
    parser.add_argument("verb", choices=sorted(ACTIONS), help="what to do to the Volcano job")
    parser.add_argument("name", help="the Volcano job's name")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--kubeconfig", default=None)
    return parser


async def send(verb: str, name: str, namespace: str, kubeconfig: str | None) -> str:
    """Create the Command; returns its generated name."""
    async with load_config(kubeconfig) as client:
        job = await client.get(
            f"/apis/{RESOURCE.group}/{RESOURCE.version}/namespaces/{namespace}/{RESOURCE.plural}/{name}"
        )
        commands = f"/apis/{COMMAND_KIND.api_version}/namespaces/{namespace}/{COMMAND_KIND.plural}"
        made = await client.create(commands, command_manifest(job, ACTIONS[verb]))
        return str(made["metadata"]["name"])


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        made = asyncio.run(send(args.verb, args.name, args.namespace, args.kubeconfig))
    except (ApiError, CredentialsError) as exc:
        print(f"jobwarden job {args.verb} {args.namespace}/{args.name}: {reason_of(exc)}", file=sys.stderr)
        return 1
    print(f"command/{made} ({ACTIONS[args.verb]}) created for job {args.namespace}/{args.name}")
    return 0
