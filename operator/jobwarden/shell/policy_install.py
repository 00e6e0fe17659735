"""Local mode (`--webhook-url`): install or remove the ValidatingAdmissionPolicies that carry the update
contract inside the apiserver (rendered by `jobwarden.kinds.policy`). In a cluster, `manifests/` ships
them instead, so the operator needs no permission on policies there."""

from __future__ import annotations

import logging
from typing import Any, cast

from kubernetes_asyncio.client.exceptions import ApiException

from jobwarden.kinds import policy
from jobwarden.kinds.base import JobKind
from jobwarden.shell.api import KubeApi

logger = logging.getLogger(__name__)

# kind -> (read, create, replace, delete) method names of AdmissionregistrationV1Api
_METHODS = {
    "ValidatingAdmissionPolicy": "validating_admission_policy",
    "ValidatingAdmissionPolicyBinding": "validating_admission_policy_binding",
}


async def _apply(api: KubeApi, obj: dict[str, Any]) -> None:
    suffix, name = _METHODS[obj["kind"]], obj["metadata"]["name"]
    try:
        existing = await getattr(api.admission, f"read_{suffix}")(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
        await getattr(api.admission, f"create_{suffix}")(cast(Any, obj))
        return
    obj["metadata"]["resourceVersion"] = existing.metadata.resource_version
    await getattr(api.admission, f"replace_{suffix}")(name, cast(Any, obj))


async def _delete(api: KubeApi, obj: dict[str, Any]) -> None:
    try:
        await getattr(api.admission, f"delete_{_METHODS[obj['kind']]}")(obj["metadata"]["name"])
    except ApiException as exc:
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
        logger.info("installed the update-contract ValidatingAdmissionPolicies (%d objects)", len(objects))
    else:
        for obj in reversed(objects):
            await _delete(api, obj)
        logger.info("update-contract ValidatingAdmissionPolicies removed (--no-admission-policy)")
