"""Packaging: the image's install recipe, the kustomize manifests, and a real linter over both.

Fast tests (a few seconds; need a kubectl with kustomize, see tests/e2e/kustomize_render.py):
render `manifests/` and its overlays and check what a platform team reviews -- RBAC is exactly the
documented least-privilege set, the Deployment's securityContext, the webhook registration.

SLOW tests are named `test_slow_*` (select or deselect them with `-k slow` / `-k "not slow"`). They
need PyPI and are never skipped here:
  * test_slow_install_script_*  run packaging/install.sh -- the very script the Dockerfile runs --
    into a fresh venv (~40 s) and start `jobwarden run --help` from it;
  * test_slow_checkov_*         install checkov on first use into its own venv outside the repo
    ($JOBWARDEN_CACHE/checkov-venv, default ~/.cache/jobwarden; ~2 min once) and lint the Dockerfile
    and every rendered overlay: no failed check allowed; accepted findings are skipped with a
    written reason and listed in docs/install.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from testlib import kustomize_render

kr = kustomize_render()
REPO: Path = kr.REPO
NAMESPACE = "jobwarden-system"
SA_USER = f"system:serviceaccount:{NAMESPACE}:jobwarden"

DEFAULT = "."  # manifests/kustomization.yaml -> overlays/self-signed
SELF_SIGNED = "overlays/self-signed"
CERT_MANAGER = "overlays/cert-manager"
NAMESPACED = "overlays/namespaced"
PROMETHEUS = "overlays/prometheus-operator"  # self-signed + ServiceMonitor + Grafana dashboard
BESIDE_VOLCANO = "overlays/beside-volcano"  # self-signed, without what would take Volcano Jobs over
ALL_INSTALLS = [DEFAULT, SELF_SIGNED, CERT_MANAGER, NAMESPACED, PROMETHEUS, BESIDE_VOLCANO]

# `jobwarden run` flags the manifests and docs rely on (the CLI contract in docs/install.md).
RUN_FLAGS = [
    "-n", "--namespace", "-A", "--all-namespaces",
    "--webhook-port", "--webhook-bind", "--webhook-cert-dir", "--webhook-self-signed",
    "--webhook-service-name", "--webhook-service-namespace", "--webhook-config-name", "--no-webhook",
    "--health-port", "--metrics-port", "--log-format", "--log-level",
    "--volcano-scheduler-fallback", "--no-volcano-scheduler-fallback",
]  # fmt: skip

CHECKOV_VERSION = "3.3.30"

CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


def objs(install: str) -> list[dict[str, Any]]:
    return kr.objects(install)


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = kr.one(objects, "Deployment", "jobwarden")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def env_of(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The container's effective JOBWARDEN_* environment: envFrom ConfigMaps, then env entries."""
    c = container(objects)
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        cm = kr.one(objects, "ConfigMap", source["configMapRef"]["name"])
        env.update(cm.get("data", {}))
    for item in c.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


# --------------------------------------------------------------------------------------------------
# What gets installed
# --------------------------------------------------------------------------------------------------


KUBEFLOW_PLURALS = ["tfjobs", "pytorchjobs", "mxjobs", "xgboostjobs", "paddlejobs", "jaxjobs"]
KUBEFLOW_CRDS = {f"{plural}.kubeflow.org" for plural in [*KUBEFLOW_PLURALS, "mpijobs"]}
VOLCANO_CRDS = {
    "jobs.batch.volcano.sh",
    "commands.bus.volcano.sh",  # Volcano's Command (vcctl / jobwarden job suspend, resume)
}


@pytest.mark.parametrize("install", ALL_INSTALLS)
def test_install_contains_the_crds_and_the_operator(install: str) -> None:
    objects = objs(install)
    crds = {o["metadata"]["name"] for o in kr.select(objects, "CustomResourceDefinition")}
    assert crds == KUBEFLOW_CRDS | (set() if install == BESIDE_VOLCANO else VOLCANO_CRDS)
    kr.one(objects, "Namespace", NAMESPACE)
    kr.one(objects, "ServiceAccount", "jobwarden")
    kr.one(objects, "Deployment", "jobwarden")
    kr.one(objects, "ValidatingWebhookConfiguration", "jobwarden")
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace"), (
                f"{obj['kind']}/{obj['metadata']['name']} has no namespace"
            )


def test_default_install_is_the_self_signed_mode() -> None:
    """`kubectl apply -k manifests/` must work on a cluster without cert-manager."""
    objects = objs(DEFAULT)
    assert not [o for o in objects if o["apiVersion"].startswith("cert-manager.io/")]
    assert env_of(objects).get("JOBWARDEN_WEBHOOK_SELF_SIGNED") == "true"
    kr.one(objects, "ClusterRole", "jobwarden-webhook-cabundle")


# --------------------------------------------------------------------------------------------------
# RBAC: exactly the documented least-privilege set
# --------------------------------------------------------------------------------------------------

JOB_KINDS = {"kubeflow.org": KUBEFLOW_PLURALS, "batch.volcano.sh": ["jobs"]}


def _expected_namespaced_grants() -> set[tuple[str, str, str, str]]:
    grants: set[tuple[str, str, str, str]] = set()

    def add(group: str, resources: list[str], verbs: str, name: str = "") -> None:
        grants.update((group, r, v, name) for r in resources for v in verbs.split())

    for group, plurals in JOB_KINDS.items():
        add(group, plurals, "get list watch delete patch")
        add(group, [f"{p}/status" for p in plurals], "get update patch")
        add(group, [f"{p}/finalizers" for p in plurals], "update")
    add("kubeflow.org", ["mpijobs"], "get list watch patch")  # no delete: the TTL is the launcher Job's
    add("kubeflow.org", ["mpijobs/status"], "get update patch")
    add("kubeflow.org", ["mpijobs/finalizers"], "update")
    add("batch", ["jobs"], "get list watch create patch")  # MPIJob's launcher; never deleted by us
    add("", ["pods", "services"], "get list watch create delete")
    add("", ["configmaps"], "get list watch create update delete")
    add("", ["secrets"], "create delete get")
    add("", ["events"], "create patch")
    add("events.k8s.io", ["events"], "create patch")
    add("scheduling.volcano.sh", ["podgroups"], "get list watch create update patch delete")
    add("bus.volcano.sh", ["commands"], "get list watch delete")
    add("", ["persistentvolumeclaims"], "get list watch create delete")
    add("networking.k8s.io", ["networkpolicies"], "get list watch create update delete")
    return grants


NAMESPACED_GRANTS = _expected_namespaced_grants()
CLUSTER_SCOPE_GRANTS = {
    ("apiextensions.k8s.io", "customresourcedefinitions", v, "") for v in ("get", "list", "watch")
} | {
    (g, r, v, "")
    for g, r in (("", "namespaces"), ("scheduling.volcano.sh", "queues"))
    for v in ("get", "list", "watch")
}
CABUNDLE_GRANTS = {
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", v, "jobwarden")
    for v in ("get", "patch")
}
# Leader election, in the operator's own namespace only: create any Lease, get/update only its own.
LEADER_GRANTS = {(NAMESPACE, "coordination.k8s.io", "leases", "create", "")} | {
    (NAMESPACE, "coordination.k8s.io", "leases", v, "jobwarden-leader") for v in ("get", "update")
}


def effective_grants(objects: list[dict[str, Any]]) -> set[tuple[str, str, str, str, str]]:
    """(scope, apiGroup, resource, verb, resourceName) the jobwarden ServiceAccount receives.
    scope is "*" for a ClusterRoleBinding, else the RoleBinding's namespace."""
    roles = {("ClusterRole", o["metadata"]["name"]): o for o in kr.select(objects, "ClusterRole")}
    roles |= {
        ("Role", o["metadata"]["name"], o["metadata"]["namespace"]): o for o in kr.select(objects, "Role")
    }
    grants = set()
    for binding in [*kr.select(objects, "ClusterRoleBinding"), *kr.select(objects, "RoleBinding")]:
        subjects = binding.get("subjects", [])
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == "jobwarden" and s.get("namespace") == NAMESPACE
            for s in subjects
        ):
            continue
        assert len(subjects) == 1, f"{binding['metadata']['name']} binds more than jobwarden: {subjects}"
        scope = "*" if binding["kind"] == "ClusterRoleBinding" else binding["metadata"]["namespace"]
        ref = binding["roleRef"]
        key = (ref["kind"], ref["name"]) if ref["kind"] == "ClusterRole" else ("Role", ref["name"], scope)
        assert key in roles, f"{binding['kind']} {binding['metadata']['name']} refers to missing {key}"
        for rule in roles[key]["rules"]:
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [""]:
                            grants.add((scope, group, resource, verb, name))
    return grants


@pytest.mark.parametrize("install", ALL_INSTALLS)
def test_rbac_has_no_wildcards_or_escalation_verbs(install: str) -> None:
    for role in [*kr.select(objs(install), "ClusterRole"), *kr.select(objs(install), "Role")]:
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule, role["metadata"]["name"]
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                values = rule.get(field, [])
                assert not [v for v in values if "*" in v], f"{role['metadata']['name']}: {field}={values}"
            assert not {"escalate", "bind", "impersonate", "approve", "deletecollection"} & set(rule["verbs"])


@pytest.mark.parametrize("install", ALL_INSTALLS)
def test_secrets_are_never_listed_or_watched(install: str) -> None:
    secret_verbs = {
        verb for _, group, res, verb, _ in effective_grants(objs(install)) if (group, res) == ("", "secrets")
    }
    assert secret_verbs == {"get", "create", "delete"}


def test_cluster_wide_rbac_is_exactly_the_documented_set() -> None:
    got = effective_grants(objs(DEFAULT))
    expected = {("*", *g) for g in NAMESPACED_GRANTS | CLUSTER_SCOPE_GRANTS | CABUNDLE_GRANTS} | LEADER_GRANTS
    assert sorted(got - expected) == [], "granted but not documented"
    assert sorted(expected - got) == [], "documented but not granted"


def test_cert_manager_mode_cannot_touch_webhook_configurations() -> None:
    got = effective_grants(objs(CERT_MANAGER))
    assert got == {("*", *g) for g in NAMESPACED_GRANTS | CLUSTER_SCOPE_GRANTS} | LEADER_GRANTS
    assert not [g for g in got if g[1] == "admissionregistration.k8s.io"]


def test_namespaced_mode_grants_job_permissions_only_in_watched_namespaces() -> None:
    objects = objs(NAMESPACED)
    watched = [n for n in env_of(objects)["JOBWARDEN_NAMESPACES"].split(",") if n]
    assert len(watched) >= 1
    got = effective_grants(objects)
    expected = {("*", *g) for g in CLUSTER_SCOPE_GRANTS | CABUNDLE_GRANTS} | LEADER_GRANTS
    expected |= {(ns, *g) for ns in watched for g in NAMESPACED_GRANTS}
    assert got == expected
    selector = kr.one(objects, "ValidatingWebhookConfiguration")["webhooks"][0]["namespaceSelector"]
    assert selector["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": watched}
    ]


# --------------------------------------------------------------------------------------------------
# The Deployment
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("install", ALL_INSTALLS)
def test_deployment_security_context(install: str) -> None:
    objects = objs(install)
    deployment = kr.one(objects, "Deployment", "jobwarden")
    pod = deployment["spec"]["template"]["spec"]
    c = container(objects)

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not sc.get("privileged")
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host)

    # The only writable path is an emptyDir at /tmp.
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = [m for m in c["volumeMounts"] if not m.get("readOnly")]
    assert [m["mountPath"] for m in writable] == ["/tmp"]
    assert "emptyDir" in volumes[writable[0]["name"]]

    # The token is mounted for this pod only.
    assert pod["serviceAccountName"] == "jobwarden"
    assert pod["automountServiceAccountToken"] is True
    assert kr.one(objects, "ServiceAccount", "jobwarden")["automountServiceAccountToken"] is False


@pytest.mark.parametrize("install", ALL_INSTALLS)
def test_deployment_runs_two_replicas_with_probes_and_resources(install: str) -> None:
    objects = objs(install)
    deployment = kr.one(objects, "Deployment", "jobwarden")
    c = container(objects)
    spec = deployment["spec"]
    # Two replicas, one leader (Lease), rolled one at a time with no loss of a webhook endpoint.
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    pdb = kr.one(objects, "PodDisruptionBudget", "jobwarden")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": spec["selector"]["matchLabels"]}}
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c["env"]}
    assert env["POD_NAME"] == "metadata.name" and env["POD_NAMESPACE"] == "metadata.namespace"
    assert c["args"][0] == "run"
    assert not c.get("command"), "the image's ENTRYPOINT is the jobwarden console script"
    assert not c["image"].endswith(":latest")

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"webhook": 9443, "health": 8080, "metrics": 9090}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert ports.get(get["port"], get["port"]) == 8080
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) >= {"cpu", "memory"}

    # Flags in args must agree with the Service and the webhook configuration.
    assert "--webhook-port=9443" in c["args"]
    assert "--health-port=8080" in c["args"]
    assert "--webhook-service-name=jobwarden-webhook" in c["args"]
    assert "--webhook-config-name=jobwarden" in c["args"]


@pytest.mark.parametrize("install", ALL_INSTALLS)
def test_settings_configmap_has_every_documented_setting(install: str) -> None:
    env = env_of(objs(install))
    assert env["JOBWARDEN_LOG_LEVEL"] == "INFO"
    assert env["JOBWARDEN_LOG_FORMAT"] in {"json", "text"}
    assert env["JOBWARDEN_VOLCANO_SCHEDULER_FALLBACK"] in {"true", "false"}
    assert "JOBWARDEN_NAMESPACES" in env


def test_services_route_to_the_container_ports() -> None:
    objects = objs(DEFAULT)
    webhook = kr.one(objects, "Service", "jobwarden-webhook")
    assert webhook["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "webhook", "protocol": "TCP"}
    ]
    metrics = kr.one(objects, "Service", "jobwarden-metrics")
    assert metrics["spec"]["ports"][0]["targetPort"] == "metrics"
    pod_labels = kr.one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for svc in (webhook, metrics):
        assert svc["spec"]["selector"].items() <= pod_labels.items()


# --------------------------------------------------------------------------------------------------
# The webhook registration
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("install", ALL_INSTALLS)
def test_webhook_configuration(install: str) -> None:
    objects = objs(install)
    vwc = kr.one(objects, "ValidatingWebhookConfiguration", "jobwarden")
    [hook] = vwc["webhooks"]
    assert hook["name"] == "validate.jobwarden.dev"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["timeoutSeconds"] == 5
    assert hook["failurePolicy"] == "Fail"
    assert hook["matchPolicy"] == "Equivalent"
    assert hook["clientConfig"]["service"] == {
        "name": "jobwarden-webhook",
        "namespace": NAMESPACE,
        "path": "/validate",
        "port": 443,
    }
    assert "caBundle" not in hook["clientConfig"], "injected at run time, never shipped"

    covered = set()
    for rule in hook["rules"]:
        assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]
        assert rule.get("scope") == "Namespaced"
        for resource in rule["resources"]:
            assert "/" not in resource, f"subresource {resource} must not be validated"
            covered.update((g, v, resource) for g in rule["apiGroups"] for v in rule["apiVersions"])
    assert covered == {
        *(("kubeflow.org", "v1", plural) for plural in KUBEFLOW_PLURALS),
        ("kubeflow.org", "v2beta1", "mpijobs"),
        *([] if install == BESIDE_VOLCANO else [("batch.volcano.sh", "v1alpha1", "jobs")]),
    }
    [controller, gc, namespaces, unchanged] = hook["matchConditions"]
    assert controller == {
        "name": "not-the-jobwarden-controller",
        "expression": f"request.userInfo.username != '{SA_USER}'",
    }
    assert "generic-garbage-collector" in gc["expression"]
    assert "namespace-controller" in namespaces["expression"]
    assert "object.?spec != oldObject.?spec" in unchanged["expression"]


def test_beside_volcano_leaves_out_exactly_what_would_take_volcano_jobs_over() -> None:
    """Issue 25: beside an installed Volcano, nothing of jobwarden's replaces Volcano's CRDs, judges
    Volcano Jobs in the apiserver (policy) or blocks them while jobwarden is down (webhook rule); the
    operator is told to stand aside. Everything else is the default install's."""
    default, beside = objs(DEFAULT), objs(BESIDE_VOLCANO)

    def names(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] != "ConfigMap"}

    assert names(default) - names(beside) == {
        ("CustomResourceDefinition", "jobs.batch.volcano.sh"),
        ("CustomResourceDefinition", "commands.bus.volcano.sh"),
        ("ValidatingAdmissionPolicy", "jobwarden-updates.batch.volcano.sh"),
        ("ValidatingAdmissionPolicyBinding", "jobwarden-updates.batch.volcano.sh"),
    }
    assert names(beside) <= names(default)
    [hook] = kr.one(beside, "ValidatingWebhookConfiguration", "jobwarden")["webhooks"]
    assert [r["apiGroups"] for r in hook["rules"]] == [
        ["kubeflow.org"],
        ["kubeflow.org"],
    ]  # v1 and v2beta1 (MPIJob)
    annotations = kr.one(beside, "ValidatingWebhookConfiguration", "jobwarden")["metadata"]["annotations"]
    assert "Volcano Jobs are Volcano's own" in annotations["jobwarden.dev/description"]
    assert env_of(beside)["JOBWARDEN_VOLCANO_JOBS"] == "off"
    assert "JOBWARDEN_VOLCANO_JOBS" not in env_of(default)  # auto: the operator's own check decides
    assert effective_grants(beside) == effective_grants(default)


def test_cert_manager_overlay_wiring() -> None:
    objects = objs(CERT_MANAGER)
    vwc = kr.one(objects, "ValidatingWebhookConfiguration", "jobwarden")
    assert (
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/jobwarden-webhook"
    )
    cert = kr.one(objects, "Certificate", "jobwarden-webhook")
    assert f"jobwarden-webhook.{NAMESPACE}.svc" in cert["spec"]["dnsNames"]
    issuer = kr.one(objects, "Issuer", cert["spec"]["issuerRef"]["name"])
    assert "selfSigned" in issuer["spec"]

    env = env_of(objects)
    assert "JOBWARDEN_WEBHOOK_SELF_SIGNED" not in env
    cert_dir = env["JOBWARDEN_WEBHOOK_CERT_DIR"]
    pod = kr.one(objects, "Deployment")["spec"]["template"]["spec"]
    [mount] = [m for m in container(objects)["volumeMounts"] if m["mountPath"] == cert_dir]
    assert mount["readOnly"] is True
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == cert["spec"]["secretName"]


# --------------------------------------------------------------------------------------------------
# Dockerfile and build context (static)
# --------------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_dockerfile_shape() -> None:
    instructions = dockerfile_instructions()
    # The base is a build argument (make image passes a local Debian 12 root); its default is the
    # registry image a user pulls. The runtime stage starts from scratch (packaging/runtime_root.py).
    args = dict(rest.partition("=")[::2] for kw, rest in instructions if kw == "ARG")
    assert re.match(r"python:3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]{64})?$", args["BASE_IMAGE"]), args
    froms = [rest for kw, rest in instructions if kw == "FROM"]
    assert froms[0] == "${BASE_IMAGE} AS python-base", froms
    assert froms[-1] == "scratch AS runtime", "nothing of the base but what runtime_root.py copies"
    runs = [rest for kw, rest in instructions if kw == "RUN"]
    assert "packaging/install.sh /opt/jobwarden/venv" in runs, "the image must install with install.sh"
    assert any("packaging/runtime_root.py" in run for run in runs)
    users = [rest for kw, rest in instructions if kw == "USER"]
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    env = " ".join(rest for kw, rest in instructions if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    entrypoint = json.loads(next(rest for kw, rest in instructions if kw == "ENTRYPOINT"))
    assert Path(entrypoint[0]).name == "jobwarden"
    assert json.loads(next(rest for kw, rest in instructions if kw == "CMD")) == ["run"]


def test_dockerignore_admits_exactly_the_build_inputs() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list style"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for kw, rest in dockerfile_instructions():
        if kw == "COPY" and not rest.startswith("--from"):
            copied.update(p.rstrip("*/") for p in rest.split()[:-1])
    assert copied <= allowed | {"README.md", "LICENSE"}, copied - allowed
    assert {"pyproject.toml", "operator", "packaging/install.sh", "packaging/constraints.txt"} <= allowed


def test_constraints_pin_exact_versions() -> None:
    pins = {}
    for line in (REPO / "packaging" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+!\-]+", line), line
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert "jobwarden" not in pins
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0]).lower()
               for dep in project["dependencies"]}  # fmt: skip
    assert {"kopf", "orjson", "cryptography"} <= runtime
    assert not {"kubernetes", "kubernetes-asyncio", "pykube-ng"} & runtime, "the operator uses its own client"
    for name in sorted(runtime):
        assert name in pins, f"runtime dependency {name} is not locked"
    assert {"pip", "setuptools"} <= pins.keys(), "build tooling is pinned too (no build isolation)"


# --------------------------------------------------------------------------------------------------
# SLOW: the install recipe, for real
# --------------------------------------------------------------------------------------------------


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBWARDEN_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def installed_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("image-venv") / "venv"
    proc = subprocess.run(
        ["bash", str(REPO / "packaging" / "install.sh"), str(venv)],
        env=_clean_env(PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"packaging/install.sh failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    smoke = r"^jobwarden \S+ on Python 3\.11\.\d+: \d+ modules import$"
    assert re.search(smoke, proc.stdout, re.MULTILINE), proc.stdout
    return venv


def test_slow_install_script_builds_a_locked_venv(installed_venv: Path) -> None:
    """install.sh succeeded, so: wheels only, `pip check` clean, every distribution pinned."""
    assert (installed_venv / "bin" / "jobwarden").exists()
    freeze = subprocess.run(
        [str(installed_venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude", "jobwarden"],
        capture_output=True, text=True, check=True, env=_clean_env(),
    ).stdout.split()  # fmt: skip
    locked = {
        line.strip() for line in (REPO / "packaging" / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }  # fmt: skip
    norm = lambda s: re.sub(r"[-_.]+", "-", s).lower()  # noqa: E731
    assert {norm(x) for x in freeze} <= {norm(x) for x in locked}


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if not p.is_symlink()}


def test_slow_install_script_cli_help_lists_the_flags(installed_venv: Path, tmp_path: Path) -> None:
    """`jobwarden run --help` from the image's venv, as the container starts it: no bytecode writes
    (read-only root filesystem), HOME and TMPDIR pointing at a scratch directory (the /tmp emptyDir)."""
    before = _snapshot(installed_venv)
    proc = subprocess.run(
        [str(installed_venv / "bin" / "jobwarden"), "run", "--help"],
        env=_clean_env(PYTHONDONTWRITEBYTECODE="1", HOME=str(tmp_path), TMPDIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    missing = [f for f in RUN_FLAGS if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", proc.stdout)]
    assert missing == [], f"`jobwarden run --help` lacks {missing}:\n{proc.stdout}"
    assert re.search(r"\{text,json\}|\{json,text\}", proc.stdout)
    assert _snapshot(installed_venv) == before, "starting the CLI wrote into the venv"
    # ... because the bytecode was compiled at install time (read-only root filesystem at run time).
    [site] = installed_venv.glob("lib/python3.*/site-packages")
    assert list((site / "jobwarden").glob("__pycache__/cli.*.pyc"))

    # Every flag the Deployment passes exists (a typo there would crash-loop the pod).
    for install in ALL_INSTALLS:
        for arg in container(objs(install))["args"][1:]:
            flag = arg.split("=", 1)[0]
            assert flag in RUN_FLAGS, f"{install}: Deployment passes unknown flag {flag}"


# --------------------------------------------------------------------------------------------------
# SLOW: checkov over the Dockerfile and every rendered install
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov in its own venv outside the repo (its dependency pins clash with ours), created once."""
    cache = kr.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / "checkov-venv"
    python = venv / "bin" / "python"
    with open(cache / "checkov-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs must not build the venv twice
        probe = (
            subprocess.run(
                [str(python), "-c", "import importlib.metadata as m; print(m.version('checkov'))"],
                capture_output=True, text=True, check=False,
            )
            if python.exists()
            else None
        )  # fmt: skip
        if probe is None or probe.returncode != 0 or probe.stdout.strip() != CHECKOV_VERSION:
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_clean_env())
            proc = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                 f"checkov=={CHECKOV_VERSION}"],
                capture_output=True, text=True, timeout=1200, check=False, env=_clean_env(),
            )  # fmt: skip
            assert proc.returncode == 0, f"installing checkov failed:\n{proc.stderr[-6000:]}"
    return venv / "bin" / "checkov"


def run_checkov(checkov: Path, target: Path, framework: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(checkov), "--file", str(target), "--framework", framework, "--output", "json",
         "--skip-download", "--compact", "--quiet"],
        capture_output=True, text=True, timeout=600, check=False, env=_clean_env(),
    )  # fmt: skip
    # Exit 1 means "failed checks" and is judged below; anything else is a crash.
    assert proc.returncode in (0, 1), f"checkov crashed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # one entry per framework
        [report] = [r for r in report if r.get("check_type") == framework]
    result: dict[str, Any] = report
    return result


def _failures(report: dict[str, Any]) -> list[str]:
    return [
        f"{c['check_id']} {c['check_name']} -- {c['resource']} ({c.get('file_line_range')})"
        for c in report.get("results", {}).get("failed_checks", [])
    ]


def _documented_skips() -> str:
    path = REPO / "docs" / "install.md"
    return path.read_text() if path.exists() else ""


def test_slow_checkov_dockerfile(checkov: Path) -> None:
    report = run_checkov(checkov, REPO / "Dockerfile", "dockerfile")
    assert report["summary"]["passed"] > 0
    assert _failures(report) == []
    for skipped in report["results"].get("skipped_checks", []):
        assert skipped["check_id"] in _documented_skips()


@pytest.mark.parametrize("install", ALL_INSTALLS)
def test_slow_checkov_manifests(checkov: Path, install: str, tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(kr.render(install))
    report = run_checkov(checkov, rendered, "kubernetes")
    assert report["summary"]["passed"] > 0
    assert report["summary"]["parsing_errors"] == 0
    assert _failures(report) == []

    # Every accepted finding carries a written reason on the object and is listed in docs/install.md.
    reasons = {}
    for obj in kr.load(rendered.read_text()):
        for key, value in (obj["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                check_id, _, reason = value.partition("=")
                assert len(reason.strip()) > 40, f"{key} on {obj['metadata']['name']}: give a reason"
                reasons[check_id.strip()] = reason
    for skipped in report["results"].get("skipped_checks", []):
        assert skipped["check_id"] in reasons
        assert skipped["check_id"] in _documented_skips(), f"{skipped['check_id']} missing in docs/install.md"


@pytest.mark.parametrize("install", ALL_INSTALLS)
def test_leader_election_may_touch_only_its_own_lease(install: str) -> None:
    objects = objs(install)
    role = kr.one(objects, "Role", "jobwarden-leader-election")
    assert role["metadata"]["namespace"] == "jobwarden-system"
    rules = [(tuple(r["verbs"]), tuple(r.get("resourceNames", ()))) for r in role["rules"]]
    assert rules == [(("create",), ()), (("get", "update"), ("jobwarden-leader",))]
    assert all(
        r["resources"] == ["leases"] and r["apiGroups"] == ["coordination.k8s.io"] for r in role["rules"]
    )
