"""devcluster/container.py's reading of the rendered Deployment into `podman run` options (no podman
needed): what the image tests run must be what the manifests say, not a copy of it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from devcluster.container import PodSpec, expand

from testlib import kustomize_render


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = kustomize_render().objects(".")  # the default install
    return objects


def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = kustomize_render().one(objects, "Deployment", "jobwarden")
    return found


def test_the_default_install_as_podman_options(rendered: list[dict[str, Any]]) -> None:
    spec = PodSpec.from_rendered(rendered)
    [container] = deployment(rendered)["spec"]["template"]["spec"]["containers"]
    assert spec.image == container["image"]
    assert "--webhook-service-namespace=jobwarden-system" in spec.args, "$(POD_NAMESPACE) expanded"
    assert spec.args[0] == "run" and len(spec.args) == len(container["args"])
    assert spec.env["POD_NAMESPACE"] == "jobwarden-system"
    assert spec.env["POD_NAME"] == "jobwarden-podman", "the leader election identity's base"
    assert spec.env["JOBWARDEN_WEBHOOK_SELF_SIGNED"] == "true", "the self-signed overlay's env"
    assert spec.env["JOBWARDEN_LOG_FORMAT"] == "json", "the settings ConfigMap (envFrom)"
    options = spec.run_options()
    for expected in (
        "--user=65532:65532",
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        f"--mount=type=tmpfs,destination=/tmp,tmpfs-size={32 << 20},tmpfs-mode=1777",
    ):
        assert expected in options
    assert not [o for o in options if o.startswith("--mount") and "/tmp" not in o], "only the emptyDir"


def test_a_weaker_deployment_gives_weaker_options(rendered: list[dict[str, Any]]) -> None:
    """The options follow the manifest (so the image tests would run what a changed manifest says)."""
    objects = copy.deepcopy(rendered)
    [container] = deployment(objects)["spec"]["template"]["spec"]["containers"]
    container["securityContext"].update(readOnlyRootFilesystem=False, allowPrivilegeEscalation=True)
    container["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}
    options = PodSpec.from_rendered(objects).run_options()
    assert not {"--read-only", "--cap-drop=all", "--security-opt=no-new-privileges"} & set(options)


def test_what_cannot_be_reproduced_is_refused(rendered: list[dict[str, Any]]) -> None:
    objects = copy.deepcopy(rendered)
    [container] = deployment(objects)["spec"]["template"]["spec"]["containers"]
    container["env"].append({"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    with pytest.raises(ValueError, match="NODE"):
        PodSpec.from_rendered(objects)
    root = copy.deepcopy(rendered)
    for context in (
        deployment(root)["spec"]["template"]["spec"],
        *deployment(root)["spec"]["template"]["spec"]["containers"],
    ):
        context["securityContext"].pop("runAsNonRoot", None)
    with pytest.raises(ValueError, match="non-root"):
        PodSpec.from_rendered(root)


def test_expand_replaces_defined_variables_only() -> None:
    assert expand("--ns=$(POD_NAMESPACE) $(OTHER)", {"POD_NAMESPACE": "x"}) == "--ns=x $(OTHER)"
