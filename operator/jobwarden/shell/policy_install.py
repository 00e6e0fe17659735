"""Local mode (`--webhook-url`): install or remove the ValidatingAdmissionPolicies that carry the update
contract inside the apiserver (rendered by `jobwarden.kinds.policy`). In a cluster, `manifests/` ships
them instead, so the operator needs no permission on policies there."""

from __future__ import annotations

import logging
from typing import Any

from jobwarden import kinds
from jobwarden.kinds import policy
from jobwarden.kinds.base import JobKind
from jobwarden.shell.api import KubeApi
from jobwarden.shell.kubeclient import ApiError

logger = logging.getLogger(__name__)

ADMISSION = "/apis/admissionregistration.k8s.io/v1"
_PLURALS = {
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
}


async def _apply(api: KubeApi, obj: dict[str, Any]) -> None:
    collection = f"{ADMISSION}/{_PLURALS[obj['kind']]}"
    try:
        existing = await api.client.get(f"{collection}/{obj['metadata']['name']}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        await api.client.create(collection, obj)
        return
    obj["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
    await api.client.replace(f"{collection}/{obj['metadata']['name']}", obj)


async def _delete(api: KubeApi, obj: dict[str, Any]) -> None:
    try:
        await api.client.delete(f"{ADMISSION}/{_PLURALS[obj['kind']]}/{obj['metadata']['name']}")
    except ApiError as exc:
        if exc.status != 404:
            raise


async def sync(
    api: KubeApi, enabled: bool, namespace: str, job_kinds: tuple[JobKind, ...] | None = None
) -> None:
    """Make the policies and bindings exist (enabled) or not exist (disabled); bindings are removed
    before their policies and created after them. `job_kinds`: the contract as the settings shaped it
    (`kinds.registry`), so `--allow-suspend-updates` lets the policy allow a resume too."""
    objects = policy.policy_objects(namespace, job_kinds)
    if enabled:
        for obj in objects:
            await _apply(api, obj)
        # A kind jobwarden stands aside for (Volcano's Jobs, served by Volcano) gets no policy: one a
        # run that served it left behind would refuse updates its own controller allows.
        kept = {(o["kind"], o["metadata"]["name"]) for o in objects}
        for obj in reversed(policy.policy_objects(namespace, kinds.REGISTRY)):
            if (obj["kind"], obj["metadata"]["name"]) not in kept:
                await _delete(api, obj)
        logger.info("installed the update-contract ValidatingAdmissionPolicies (%d objects)", len(objects))
    else:
        for obj in reversed(policy.policy_objects(namespace, kinds.REGISTRY)):
            await _delete(api, obj)
        logger.info("update-contract ValidatingAdmissionPolicies removed (--no-admission-policy)")
