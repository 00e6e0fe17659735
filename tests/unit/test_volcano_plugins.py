"""The Volcano job plugins (env, svc, ssh), their registry and the Go-flag argument parser."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jobwarden.core.plan import ChildRef, Manifest
from jobwarden.plugins import ssh as ssh_module
from jobwarden.plugins.base import JobContext, JobPlugin
from jobwarden.plugins.env import EnvPlugin
from jobwarden.plugins.registry import argument_error, build_plugins, materialize, mpi_master, parse_flags
from jobwarden.plugins.ssh import SshPlugin, generate_key_pair
from jobwarden.plugins.svc import SvcPlugin

DEFAULTS: dict[str, bool | int | str] = {"flag": False, "port": 22, "path": "/root/.ssh"}


def job(*tasks: dict[str, Any]) -> JobContext:
    meta = {"name": "job", "namespace": "ns", "uid": "u"}
    body = {
        "apiVersion": "batch.volcano.sh/v1alpha1",
        "kind": "Job",
        "metadata": meta,
        "spec": {"tasks": list(tasks)},
    }
    return JobContext.of(body)


def task(name: str, replicas: int, **template_spec: Any) -> dict[str, Any]:
    return {
        "name": name,
        "replicas": replicas,
        "template": {"spec": {"containers": [{"name": "c"}], **template_spec}},
    }


def pod(name: str = "job-my-task-1") -> Manifest:
    return {
        "metadata": {"name": name},
        "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]},
    }


def containers(manifest: Manifest) -> list[dict[str, Any]]:
    return [*manifest["spec"]["initContainers"], *manifest["spec"]["containers"]]


def built(plugin: JobPlugin, context: JobContext) -> dict[str, Manifest]:
    return {child.kind: child.build() for child in plugin.resources(context)}


def text(secret: Manifest, key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


# ---------------------------------------------------------------------------------------------
# Arguments and the registry.


@pytest.mark.parametrize(
    ("args", "values"),
    [
        ([], {"flag": False, "port": 22, "path": "/root/.ssh"}),
        (["--port=2222", "-path", "/home/u/.ssh"], {"flag": False, "port": 2222, "path": "/home/u/.ssh"}),
        (["-flag"], {"flag": True, "port": 22, "path": "/root/.ssh"}),
        (["--flag=false", "--port", "0x10"], {"flag": False, "port": 16, "path": "/root/.ssh"}),
        (
            ["--port=1", "stop", "--port=2"],
            {"flag": False, "port": 1, "path": "/root/.ssh"},
        ),  # first non-flag
        (["--", "--port=2"], {"flag": False, "port": 22, "path": "/root/.ssh"}),
    ],
)
def test_go_flag_syntax(args: list[str], values: dict[str, Any]) -> None:
    parsed = parse_flags(args, DEFAULTS)

    assert parsed.error is None
    assert parsed.flags.text("path") == values["path"]
    assert parsed.flags.boolean("flag") is values["flag"]
    assert parsed.flags.integer("port") == values["port"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--port=1", "--nope=2", "--flag"], "flag provided but not defined: -nope"),
        (["--port=1", "--port=x"], 'invalid value "x" for flag -port'),
        (["--port=1", "--flag=maybe"], 'invalid boolean value "maybe" for -flag'),
        (["--port=1", "--port"], "flag needs an argument: -port"),
        (["--port=1", "---port=2"], "bad flag syntax: ---port=2"),
    ],
)
def test_a_bad_argument_stops_parsing_and_keeps_what_came_before(args: list[str], error: str) -> None:
    parsed = parse_flags(args, DEFAULTS)

    assert parsed.error == error
    assert parsed.flags.integer("port") == 1 and parsed.flags.boolean("flag") is False


def test_go_flag_syntax_for_plugin_arguments() -> None:
    """Moved from the Volcano admission tests: one parser serves the plugins and admission (mpi)."""

    def flag_value(args: list[str], flag: str, default: str) -> str:
        return parse_flags(args, {flag: default, "port": 22}).flags.text(flag)

    assert flag_value([], "master", "master") == "master"
    assert flag_value(["--master=a", "-master=b"], "master", "m") == "b"
    assert flag_value(["-master", "c", "--port=22"], "master", "m") == "c"
    assert flag_value(["--masterful=x"], "master", "m") == "m"
    assert mpi_master(["--worker=w", "--master", "launcher"]) == "launcher"
    assert mpi_master(["stop", "--master=launcher"]) == "master"  # Go stops at the first non-flag


def test_registry_checks_the_arguments_of_the_plugins_it_implements_only() -> None:
    assert argument_error("ssh", ["--ssh-port=2222"]) is None
    assert argument_error("ssh", ["--ssh-port=x"]) == 'invalid value "x" for flag -ssh-port'
    assert argument_error("mpi", ["--anything"]) == "flag provided but not defined: -anything"
    assert argument_error("ray", ["--anything"]) is None  # accepted by name, not implemented


def test_registry_builds_known_plugins_in_name_order_and_reports_the_rest() -> None:
    plugins = build_plugins(
        {"svc": ["--inject-hosts-env=false"], "ray": [], "env": None, "ssh": ["--ssh-port=x"], "hcclrank": []}
    )

    assert [p.name for p in plugins.plugins] == ["env", "ssh", "svc", "hcclrank"]  # hcclrank runs last
    assert plugins.problems == (
        "plugin ray is not supported by jobwarden and is ignored",
        'plugin ssh: invalid value "x" for flag -ssh-port',
    )
    assert plugins.plugins[2] == SvcPlugin(inject_hosts_env=False)
    assert [p.controlled_key for p in plugins.plugins][:3] == ["plugin-env", "plugin-ssh", "plugin-svc"]


# ---------------------------------------------------------------------------------------------
# env


def test_env_sets_both_index_variables_in_every_container_and_init_container() -> None:
    manifest = pod()
    manifest["spec"]["containers"][0]["env"] = [{"name": "MINE", "value": "x"}]

    EnvPlugin().on_pod_create(manifest, job(task("my-task", 2)), "my-task", 1)

    for container in containers(manifest):
        assert container["env"][-2:] == [
            {"name": "VK_TASK_INDEX", "value": "1"},
            {"name": "VC_TASK_INDEX", "value": "1"},
        ]
    assert manifest["spec"]["containers"][0]["env"][0] == {"name": "MINE", "value": "x"}
    assert EnvPlugin().resources(job()) == [] and EnvPlugin().on_job_delete(job()) == []


# ---------------------------------------------------------------------------------------------
# svc


def test_svc_hostfile_configmap_per_task() -> None:
    context = job(task("my-task", 2), task("ps", 1))

    configmap = built(SvcPlugin(), context)["ConfigMap"]

    assert configmap["metadata"]["name"] == "job-svc"
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == "u"
    assert configmap["data"] == {
        "my_task.host": "job-my-task-0.job\njob-my-task-1.job",
        "VC_MY_TASK_HOSTS": "job-my-task-0.job,job-my-task-1.job",
        "VC_MY_TASK_NUM": "2",
        "ps.host": "job-ps-0.job",
        "VC_PS_HOSTS": "job-ps-0.job",
        "VC_PS_NUM": "1",
    }


def test_svc_a_template_hostname_gives_one_host_and_a_template_subdomain_is_used() -> None:
    context = job(task("w", 3, hostname="fixed", subdomain="sub"))

    data = built(SvcPlugin(), context)["ConfigMap"]["data"]

    assert data["w.host"] == "fixed.sub" and data["VC_W_NUM"] == "1"


def test_svc_headless_service_selects_the_jobs_pods() -> None:
    service = built(SvcPlugin(publish_not_ready_addresses=True), job(task("w", 1)))["Service"]

    assert service["metadata"]["name"] == "job"
    assert service["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "jobwarden",
        "jobwarden.dev/plugin": "svc",
    }
    assert service["spec"] == {
        "clusterIP": "None",
        "selector": {"volcano.sh/job-name": "job", "volcano.sh/job-namespace": "ns"},
        "publishNotReadyAddresses": True,
    }


def test_svc_only_the_hostfile_is_kept_in_sync() -> None:
    synced = {child.kind: child.synced_fields for child in SvcPlugin().resources(job(task("w", 1)))}

    assert synced == {"ConfigMap": ("data",), "Service": (), "NetworkPolicy": ()}  # created once, as upstream
    assert SvcPlugin().on_job_delete(job()) == [
        ChildRef("ConfigMap", "job-svc"),
        ChildRef("Service", "job"),
        ChildRef("NetworkPolicy", "job"),
    ]


def test_svc_pod_gets_dns_name_every_tasks_host_env_and_the_mounted_hostfile() -> None:
    manifest = pod()

    SvcPlugin().on_pod_create(manifest, job(task("my-task", 2), task("ps", 1)), "my-task", 1)

    assert manifest["spec"]["hostname"] == "job-my-task-1" and manifest["spec"]["subdomain"] == "job"
    volume = {"name": "job-svc", "configMap": {"name": "job-svc"}}
    assert manifest["spec"]["volumes"] == [volume]
    for container in containers(manifest):
        assert [e["name"] for e in container["env"]] == [
            "VC_MY_TASK_HOSTS",
            "VC_MY_TASK_NUM",
            "VC_PS_HOSTS",
            "VC_PS_NUM",
        ]
        assert container["env"][3]["valueFrom"] == {
            "configMapKeyRef": {"name": "job-svc", "key": "VC_PS_NUM"}
        }
        assert container["volumeMounts"] == [{"name": "job-svc", "mountPath": "/etc/volcano"}]


def test_svc_keeps_a_template_hostname_and_can_leave_env_alone() -> None:
    manifest = pod()
    manifest["spec"]["hostname"] = "mine"

    SvcPlugin(inject_hosts_env=False).on_pod_create(manifest, job(task("w", 1)), "w", 0)

    assert manifest["spec"]["hostname"] == "mine"
    assert all("env" not in c for c in containers(manifest))
    assert all(c["volumeMounts"] for c in containers(manifest))


# ---------------------------------------------------------------------------------------------
# ssh


@pytest.fixture(scope="module")
def keys() -> ssh_module.KeyPair:
    return generate_key_pair()


def test_ssh_key_pair_is_pkcs1_rsa_2048_with_a_matching_openssh_public_key(keys: ssh_module.KeyPair) -> None:
    assert keys.private_pem.startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    private = serialization.load_pem_private_key(keys.private_pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert keys.public_line == public.decode() + "\n" and keys.public_line.startswith("ssh-rsa ")


def test_ssh_secret_keys_and_config(keys: ssh_module.KeyPair) -> None:
    context = job(task("master", 1), task("worker", 2))

    secret = SshPlugin(port=2222).secret(context, keys)

    assert secret["metadata"]["name"] == "job-ssh" and secret["type"] == "Opaque"
    assert set(secret["data"]) == {"id_rsa", "id_rsa.pub", "authorized_keys", "config"}
    assert text(secret, "id_rsa") == keys.private_pem
    assert text(secret, "id_rsa.pub") == text(secret, "authorized_keys") == keys.public_line
    assert text(secret, "config") == (
        "StrictHostKeyChecking no\n"
        "UserKnownHostsFile /dev/null\n"
        "Host job-master-0\n  HostName job-master-0.job\n  Port 2222\n"
        "Host job-worker-0\n  HostName job-worker-0.job\n  Port 2222\n"
        "Host job-worker-1\n  HostName job-worker-1.job\n  Port 2222\n"
    )


def test_ssh_key_pair_is_generated_only_when_the_secret_is_materialized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = ssh_module.generate_key_pair

    def counted() -> ssh_module.KeyPair:
        calls.append(1)
        return real()

    monkeypatch.setattr(ssh_module, "generate_key_pair", counted)

    (child,) = SshPlugin().resources(job(task("w", 1)))
    assert (child.kind, child.name, calls) == ("Secret", "job-ssh", [])
    requested = child.build()
    assert calls == [] and set(requested["data"]) == {"config"}
    assert requested["metadata"]["annotations"] == {"jobwarden.dev/generate": "ssh-keypair"}
    made = materialize(requested)
    assert calls == [1] and set(made["data"]) == {"id_rsa", "id_rsa.pub", "authorized_keys", "config"}
    assert "annotations" not in made["metadata"]
    assert materialize(made) == made  # nothing left to fill in


def test_ssh_uses_a_given_private_key_and_derives_its_public_half(keys: ssh_module.KeyPair) -> None:
    plugins = build_plugins({"ssh": [f"--ssh-private-key={keys.private_pem}"]})
    (plugin,) = plugins.plugins

    secret = materialize(built(plugin, job(task("w", 1)))["Secret"])

    assert text(secret, "id_rsa") == keys.private_pem
    assert text(secret, "id_rsa.pub") == keys.public_line
    assert "annotations" not in secret["metadata"]  # the given key does not stay in an annotation


@pytest.mark.parametrize(("arg", "port"), [("2222", 2222), ("0", 22), ("70000", 22), ("-5", 22)])
def test_ssh_port_out_of_range_falls_back_to_22(arg: str, port: int) -> None:
    (plugin,) = build_plugins({"ssh": [f"--ssh-port={arg}"]}).plugins

    assert plugin == SshPlugin(port=port)


@pytest.mark.parametrize(("path", "mode"), [("/root/.ssh", 0o600), ("/home/mpi/.ssh", 0o644)])
def test_ssh_pod_mounts_the_secret_items_under_the_key_path(path: str, mode: int) -> None:
    manifest = pod()

    SshPlugin(key_path=path).on_pod_create(manifest, job(task("w", 1)), "w", 0)

    (volume,) = manifest["spec"]["volumes"]
    assert volume == {
        "name": "job-ssh",
        "secret": {
            "secretName": "job-ssh",
            "defaultMode": mode,
            "items": [
                {"key": "id_rsa", "path": ".ssh/id_rsa"},
                {"key": "id_rsa.pub", "path": ".ssh/id_rsa.pub"},
                {"key": "authorized_keys", "path": ".ssh/authorized_keys"},
                {"key": "config", "path": ".ssh/config"},
            ],
        },
    }
    for container in containers(manifest):
        assert container["volumeMounts"] == [{"name": "job-ssh", "mountPath": path, "subPath": ".ssh"}]
    assert SshPlugin().on_job_delete(job()) == [ChildRef("Secret", "job-ssh")]


def test_plugins_do_not_share_mutable_state_between_pods() -> None:
    context = job(task("w", 2))
    first, second = pod("job-w-0"), pod("job-w-1")
    for plugin in build_plugins({"env": [], "ssh": [], "svc": []}).plugins:
        plugin.on_pod_create(first, context, "w", 0)
        plugin.on_pod_create(second, context, "w", 1)

    first["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = "/changed"

    assert second["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] != "/changed"
    assert copy.deepcopy(second) == second


def test_svc_network_policy_admits_only_the_jobs_own_pods_unless_disabled() -> None:
    """Upstream `pkg/controllers/job/plugins/svc/svc.go` createNetworkPolicyIfNotExist: NetworkPolicy
    `<job>`, podSelector and the one ingress peer both `volcano.sh/job-name` + `volcano.sh/job-namespace`,
    policyTypes [Ingress]; `--disable-network-policy` makes none."""
    context = job(task("w", 2))
    policy = built(SvcPlugin(), context)["NetworkPolicy"]
    own = {"matchLabels": {"volcano.sh/job-name": "job", "volcano.sh/job-namespace": "ns"}}

    assert (policy["apiVersion"], policy["metadata"]["name"]) == ("networking.k8s.io/v1", "job")
    assert policy["spec"] == {
        "podSelector": own,
        "ingress": [{"from": [{"podSelector": own}]}],
        "policyTypes": ["Ingress"],
    }
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "u"
    disabled = build_plugins({"svc": ["--disable-network-policy"]}).plugins[0]
    assert "NetworkPolicy" not in built(disabled, context)
    assert ChildRef("NetworkPolicy", "job") not in disabled.on_job_delete(context)
