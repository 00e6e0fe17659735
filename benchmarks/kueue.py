"""The real Kueue queueing jobwarden's PyTorchJobs (issue 26), printed as a timeline (never timed
assertions, never part of `make test`): `python -m benchmarks.kueue`.

1. Kueue v0.17.0 built from the Go module proxy by `devcluster/build-kueue.sh` (once, into
   `$JOBWARDEN_CACHE/kueue-v0.17.0/bin`; a cold build takes 10-20 min on 2 cores). Its CRDs and
   webhook configurations are read at run time from the module's source in the Go module cache
   (`$(go env GOMODCACHE)/sigs.k8s.io/kueue@v0.17.0/config/components/`), never copied here.
2. A devcluster of its own (`<JOBWARDEN_TEST_CLUSTER or bench>-kueue`, brought down first and at the
   end unless `--keep`) with kwok's node; jobwarden's operator started as the tests start it
   (`jobwarden run --webhook-url=https://127.0.0.1:<port>`, webhook and admission policy), with
   `--allow-suspend-updates`.
3. Kueue as a local process (see `LocalKueue`): the `kubeflow.org/pytorchjob` integration, its webhooks
   ON — served on 127.0.0.1 with a certificate made here and registered with `url:` clientConfigs
   (the devcluster has no Service routing), only the ones for Kueue's own kinds and PyTorchJobs —,
   its certificate management, leader election and visibility server off, its metrics certificate
   at the path Kueue hard-codes (`/etc/kueue/metrics/certs`, bind-mounted in a private mount
   namespace: nothing is written there on the host but the empty mount point).
4. A ResourceFlavor (`nodeLabels` of the kwok node and one toleration, so Kueue's admission writes a
   `nodeSelector` and `tolerations` into the templates), a ClusterQueue of 4 CPUs, a LocalQueue, and
   three PyTorchJobs of 2 CPUs each (Master 1 + Worker 1; `runPolicy.suspend: true`,
   `cleanPodPolicy: All`, the queue-name label). Printed as it happens: each Workload admitted, each
   job resumed by Kueue (jobwarden's admission accepting Kueue's update), its pods created by
   jobwarden (with Kueue's directives), the first job finished (its Master's pod finished as a kubelet
   would report it, devcluster/pods.py), the third job admitted and running.
   Then Kueue's eviction: the ClusterQueue stopped (`HoldAndDrain`) and started again.
5. Unless `--no-refused`: an operator WITHOUT `--allow-suspend-updates` (awaited until the apiserver
   applies the default policy): a new job's Workload is admitted, Kueue's update is refused (403) and
   the job stays suspended; the two jobs still running are evicted, Kueue's update is refused and
   they keep running."""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devcluster import cluster as devcluster  # noqa: E402
from devcluster import pods  # noqa: E402
from devcluster.operator import LocalOperator, free_port  # noqa: E402

from jobwarden.shell import certs  # noqa: E402

KUEUE_VERSION = "v0.17.0"
KUEUE = ("kueue.x-k8s.io", "v1beta2")
KUBEFLOW = ("kubeflow.org", "v1")
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
METRICS_CERT_DIR = "/etc/kueue/metrics/certs"  # hard-coded in Kueue's cmd/kueue/main.go
FLAVOR_NODE_LABELS = {"type": "kwok"}  # the kwok node's label (devcluster.cluster.NODE_MANIFEST)
FLAVOR_TOLERATION = {"key": "example.com/queue", "operator": "Exists", "effect": "NoSchedule"}
POLICY_DENIED = "ValidatingAdmissionPolicy"

Body = dict[str, Any]


def kueue_bin() -> Path:
    return devcluster.cache_dir() / f"kueue-{KUEUE_VERSION}" / "bin" / "kueue"


def kueue_source() -> Path:
    gomodcache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(gomodcache) / "sigs.k8s.io" / f"kueue@{KUEUE_VERSION}"


def build() -> float:
    """devcluster/build-kueue.sh (a no-op when cached); its own log goes to stderr."""
    began = time.monotonic()
    subprocess.run(
        ["bash", str(ROOT / "devcluster" / "build-kueue.sh")], check=True, stdout=subprocess.DEVNULL
    )
    return time.monotonic() - began


# --------------------------------------------------------------------------------------------------
# Kueue as a local process


def webhook_configurations(manifests: Path, base_url: str, ca_pem: bytes) -> list[Body]:
    """Kueue's Mutating/ValidatingWebhookConfigurations with `url:` clientConfigs to its local server,
    keeping only the webhooks of Kueue's own kinds and of PyTorchJobs (the others, e.g. the Pod
    webhooks, would intercept writes this run has no integration for)."""
    configurations = []
    for doc in yaml.safe_load_all(manifests.read_text()):
        if not doc:
            continue
        kept = []
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            if "-kueue-x-k8s-io-" in path or path.endswith("-pytorchjob"):
                hook["clientConfig"] = {"url": base_url + path, "caBundle": base64.b64encode(ca_pem).decode()}
                kept.append(hook)
        doc["metadata"] = {"name": f"kueue-{doc['metadata']['name']}"}
        doc["webhooks"] = kept
        configurations.append(doc)
    return configurations


class LocalKueue:
    """`kueue --config=<file>` against a devcluster, on loopback ports of its own."""

    def __init__(self, cluster: devcluster.Cluster, work: Path) -> None:
        self.cluster = cluster
        self.work = work
        self.log_path = work / "kueue.log"
        self.webhook_port, self.health_port, self.metrics_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def configuration(self) -> Body:
        return {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2",
            "kind": "Configuration",
            "namespace": "kueue-system",
            "health": {"healthProbeBindAddress": f"127.0.0.1:{self.health_port}"},
            "metrics": {"bindAddress": f"127.0.0.1:{self.metrics_port}"},
            "webhook": {
                "host": "127.0.0.1",
                "port": self.webhook_port,
                "certDir": str(self.work / "kueue-webhook"),
            },
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
            "featureGates": {"VisibilityOnDemand": False},
            "integrations": {"frameworks": ["kubeflow.org/pytorchjob"]},
        }

    def install(self, source: Path) -> None:
        """Kueue's CRDs (from the module cache), its namespace, its certificates and webhooks."""
        crds = sorted((source / "config" / "components" / "crd" / "bases").glob("*.yaml"))
        for crd in crds:
            self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        self.cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        self.cluster.kubectl("create", "namespace", "kueue-system", check=False)
        ca = certs.make_ca("kueue-local-ca")
        for directory, name in (
            (self.work / "kueue-webhook", "kueue-webhook"),
            (self.work / "kueue-metrics", "kueue-metrics"),
        ):
            directory.mkdir(parents=True, exist_ok=True)
            certs.issue(ca, name, hosts=["127.0.0.1", "localhost"]).write(
                directory / "tls.crt", directory / "tls.key"
            )
        manifests = source / "config" / "components" / "webhook" / "manifests.yaml"
        hooks = webhook_configurations(manifests, f"https://127.0.0.1:{self.webhook_port}", ca.cert_pem)
        self.cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(hooks)
        )
        (self.work / "config.yaml").write_text(yaml.safe_dump(self.configuration()))

    def command(self) -> list[str]:
        # Kueue reads its metrics certificate from a fixed path: a private mount namespace binds this
        # run's directory there, so the host's /etc gets only the (empty) mount point.
        certs_dir = self.work / "kueue-metrics"
        mount = (
            f'mkdir -p {METRICS_CERT_DIR} && mount --bind {certs_dir} {METRICS_CERT_DIR} && exec "$0" "$@"'
        )
        return [
            "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", mount,
            str(kueue_bin()), f"--config={self.work / 'config.yaml'}",
            f"--kubeconfig={self.cluster.kubeconfig}", "--zap-log-level=info",
        ]  # fmt: skip

    def start(self, timeout: float = 120) -> float:
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        while not self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"kueue exited {self.process.returncode}:\n{self.logs()[-4000:]}")
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"kueue not ready in {timeout}s; see {self.log_path}")
            time.sleep(0.3)
        return time.monotonic() - began

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# --------------------------------------------------------------------------------------------------
# The queue and the jobs


def queue_objects(namespace: str, cluster_queue: str, cpus: int) -> list[tuple[str, Body]]:
    """(plural, body) of the ResourceFlavor, the ClusterQueue of `cpus` CPUs and its LocalQueue."""
    flavor = {
        "apiVersion": "/".join(KUEUE),
        "kind": "ResourceFlavor",
        "metadata": {"name": "kwok"},
        "spec": {"nodeLabels": FLAVOR_NODE_LABELS, "tolerations": [FLAVOR_TOLERATION]},
    }
    queue = {
        "apiVersion": "/".join(KUEUE),
        "kind": "ClusterQueue",
        "metadata": {"name": cluster_queue},
        "spec": {
            "namespaceSelector": {},
            "resourceGroups": [
                {
                    "coveredResources": ["cpu"],
                    "flavors": [{"name": "kwok", "resources": [{"name": "cpu", "nominalQuota": str(cpus)}]}],
                }
            ],
        },
    }
    local = {
        "apiVersion": "/".join(KUEUE),
        "kind": "LocalQueue",
        "metadata": {"name": "team-a", "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue},
    }
    return [("resourceflavors", flavor), ("clusterqueues", queue), ("localqueues", local)]


def pytorchjob(name: str, namespace: str) -> Body:
    """2 CPUs: Master 1 + Worker 1, written as docs/install.md asks for queued jobs (run policy in
    `spec.runPolicy`, quantities as Go writes them, `cleanPodPolicy: All`)."""

    def replica(restart: str) -> Body:
        container = {
            "name": "pytorch",
            "image": "registry.example/train:1",
            "command": ["python", "/train.py"],
            "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}},
        }
        return {"replicas": 1, "restartPolicy": restart, "template": {"spec": {"containers": [container]}}}

    return {
        "apiVersion": "/".join(KUBEFLOW),
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": namespace, "labels": {QUEUE_LABEL: "team-a"}},
        "spec": {
            "runPolicy": {"suspend": True, "cleanPodPolicy": "All"},
            "pytorchReplicaSpecs": {"Master": replica("Never"), "Worker": replica("OnFailure")},
        },
    }


def apply(custom: client.CustomObjectsApi, plural: str, body: Body) -> None:
    group, version = body["apiVersion"].split("/")
    namespace = body["metadata"].get("namespace")
    if namespace:
        custom.create_namespaced_custom_object(group, version, namespace, plural, body)
    else:
        custom.create_cluster_custom_object(group, version, plural, body)


# --------------------------------------------------------------------------------------------------
# The timeline: watches on Workloads, PyTorchJobs and Pods, each transition printed once


class Timeline:
    """Transitions, each printed as it is seen. A key that becomes true again (a job resumed a second
    time, a pod of the same name made again) is recorded as `<key> #2`, `#3`, ..."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.seen: dict[str, float] = {}
        self.state: dict[str, bool] = {}
        self.times: dict[str, int] = {}

    def edge(self, key: str, now: bool, text: str | Callable[[], str]) -> None:
        """Record `key` when `now` turns true."""
        with self.lock:
            was = self.state.get(key, False)
            self.state[key] = now
            if was or not now:
                return
            count = self.times[key] = self.times.get(key, 0) + 1
            at = time.monotonic() - self.t0
            self.seen[key if count == 1 else f"{key} #{count}"] = at
        print(f"  {at:7.2f} s  {text if isinstance(text, str) else text()}", flush=True)

    def mark(self, key: str, text: str) -> None:
        self.edge(key, True, text)

    def at(self, key: str) -> float | None:
        with self.lock:
            return self.seen.get(key)

    def wait(self, keys: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.at(k) is not None for k in keys):
            if time.monotonic() > deadline:
                missing = [k for k in keys if self.at(k) is None]
                raise TimeoutError(f"not seen in {timeout}s: {missing}")
            time.sleep(0.05)


def _condition(body: Body, kind: str, status: str = "True") -> Body | None:
    for condition in body.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == kind and condition.get("status") == status:
            return dict(condition)
    return None


def on_workload(timeline: Timeline, kind: str, body: Body) -> None:
    owners = body["metadata"].get("ownerReferences") or [{}]
    job = owners[0].get("name", "?")
    timeline.edge(f"workload {job}", True, f"{job}: Workload {body['metadata']['name']} created by Kueue")
    pending = _condition(body, "QuotaReserved", "False")
    timeline.edge(
        f"pending {job}",
        bool(pending and pending.get("reason") == "Pending"),
        lambda: f"{job}: Workload pending: {(pending or {}).get('message', '')}",
    )

    def flavors() -> str:
        admission = body.get("status", {}).get("admission") or {}
        return str([a.get("flavors", {}) for a in admission.get("podSetAssignments", [])])

    timeline.edge(
        f"admitted {job}",
        bool(_condition(body, "Admitted")),
        lambda: f"{job}: Workload Admitted by Kueue (flavors {flavors()})",
    )
    evicted = _condition(body, "Evicted")
    timeline.edge(
        f"evicted {job}",
        bool(evicted),
        lambda: (
            f"{job}: Workload Evicted ({(evicted or {}).get('reason')}: {(evicted or {}).get('message')})"
        ),
    )
    timeline.edge(
        f"finished {job}", bool(_condition(body, "Finished")), f"{job}: Workload Finished (quota released)"
    )


def on_job(timeline: Timeline, kind: str, body: Body) -> None:
    name = body["metadata"]["name"]
    suspend = body["spec"].get("runPolicy", {}).get("suspend")
    labels = sorted(
        body["spec"]["pytorchReplicaSpecs"]["Master"]["template"].get("metadata", {}).get("labels", {})
    )
    timeline.edge(
        f"resumed {name}",
        suspend is False,
        f"{name}: resumed by Kueue, accepted by jobwarden (suspend false; Master template labels {labels})",
    )
    timeline.edge(
        f"suspended {name}",
        suspend is True and timeline.at(f"resumed {name}") is not None,
        f"{name}: suspended again by Kueue, accepted by jobwarden (Master template labels {labels})",
    )
    for condition in ("Suspended", "Running", "Succeeded", "Failed"):
        timeline.edge(
            f"{condition} {name}",
            bool(_condition(body, condition)),
            f"{name}: condition {condition} (jobwarden)",
        )


def on_pod(timeline: Timeline, kind: str, pod: Any) -> None:
    job = (pod.metadata.labels or {}).get(JOB_NAME_LABEL, "?")
    name = pod.metadata.name
    exists = kind != "DELETED"

    def created() -> str:
        selector = pod.spec.node_selector or {}
        tolerations = [t.key for t in pod.spec.tolerations or [] if t.key and t.key.startswith("example.com")]
        podset = (pod.metadata.labels or {}).get("kueue.x-k8s.io/podset")
        workload = (pod.metadata.annotations or {}).get("kueue.x-k8s.io/workload")
        return (
            f"{job}: pod {name} created by jobwarden (podset {podset}, workload {workload}, "
            f"nodeSelector {selector}, tolerations {tolerations})"
        )

    timeline.edge(f"pod {name}", exists, created)
    phase = pod.status.phase if pod.status else None
    for terminal in ("Running", "Succeeded", "Failed"):
        timeline.edge(f"pod {terminal} {name}", exists and phase == terminal, f"{job}: pod {name} {terminal}")
    timeline.edge(f"pod deleted {name}", not exists, f"{job}: pod {name} deleted")


@contextmanager
def watching(api: client.ApiClient, namespace: str, timeline: Timeline) -> Iterator[None]:
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    watches: list[watch.Watch] = []

    def run(lister: Callable[..., Any], handler: Callable[[Timeline, str, Any], None], *args: str) -> None:
        w = watch.Watch()
        watches.append(w)
        try:
            for event in w.stream(lister, *args, timeout_seconds=0):
                handler(timeline, event["type"], event["object"])
        except Exception as exc:
            if watches and not getattr(w, "_stop", False):
                print(f"  watch ended: {exc!r}", flush=True)

    streams: list[tuple[Callable[..., Any], Callable[[Timeline, str, Any], None], tuple[str, ...]]] = [
        (custom.list_namespaced_custom_object, on_workload, (*KUEUE, namespace, "workloads")),
        (custom.list_namespaced_custom_object, on_job, (*KUBEFLOW, namespace, "pytorchjobs")),
        (core.list_namespaced_pod, on_pod, (namespace,)),
    ]
    threads = [
        threading.Thread(target=run, args=(lister, handler, *a), daemon=True)
        for lister, handler, a in streams
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for w in watches:
            w.stop()


# --------------------------------------------------------------------------------------------------
# The runs


def new_namespace(cluster: devcluster.Cluster, name: str) -> None:
    cluster.kubectl("create", "namespace", name)
    deadline = time.monotonic() + 30
    while cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no default ServiceAccount in {name}")
        time.sleep(0.2)


def three_jobs_in_a_quota_for_two(
    cluster: devcluster.Cluster, api: client.ApiClient
) -> tuple[dict[str, float], list[str]]:
    """The figures, and the two jobs left running."""
    namespace = "kueue-allowed"
    custom = client.CustomObjectsApi(api)
    new_namespace(cluster, namespace)
    for plural, body in queue_objects(namespace, "cluster-queue", cpus=4):
        apply(custom, plural, body)
    names = ["job-1", "job-2", "job-3"]
    timeline = Timeline()
    print("\ntimeline (s since the first create), jobwarden with --allow-suspend-updates:")
    with watching(api, namespace, timeline):
        timeline.t0 = time.monotonic()  # from the first create on (the watches are running)
        for name in names:
            apply(custom, "pytorchjobs", pytorchjob(name, namespace))
            timeline.mark(f"created {name}", f"{name}: created (suspended, queue team-a, 2 CPUs)")
            time.sleep(0.05)  # distinct creation order for Kueue's FIFO
        timeline.wait([f"admitted {n}" for n in names[:2]], 60)
        first = min(names[:2], key=lambda n: timeline.at(f"admitted {n}") or 0)
        for name in names[:2]:
            timeline.wait(running_pods(name), 60)
        timeline.wait([f"pending {names[2]}"], 30)
        time.sleep(2)  # nothing else happens: the third job stays queued
        assert timeline.at(f"admitted {names[2]}") is None, "the third job was admitted beyond the quota"
        timeline.mark(
            f"finishing {first}", f"{first}: its Master's pod finishes (exit 0, devcluster/pods.py)"
        )
        pods.finish(cluster, namespace, f"{first}-master-0")
        timeline.wait([f"Succeeded {first}", f"admitted {names[2]}"], 60)
        timeline.wait(running_pods(names[2]), 60)
        running = [n for n in names if n != first]
        drain_and_undrain(custom, namespace, timeline, running)
        time.sleep(1)
    return _figures(timeline, names, first, running), running


def running_pods(job: str, suffix: str = "") -> list[str]:
    return [f"pod Running {job}-{replica}-0{suffix}" for replica in ("master", "worker")]


def drain_and_undrain(
    custom: client.CustomObjectsApi, namespace: str, timeline: Timeline, running: list[str]
) -> None:
    """Kueue's eviction: the ClusterQueue stopped with HoldAndDrain evicts every admitted Workload
    (Kueue suspends the job and restores its templates in one update); started again, it admits them
    again."""

    def stop_policy(policy: str) -> None:
        patch = {"spec": {"stopPolicy": policy}}
        custom.patch_cluster_custom_object(*KUEUE, "clusterqueues", "cluster-queue", patch)

    timeline.mark("drain", "ClusterQueue cluster-queue: stopPolicy HoldAndDrain")
    stop_policy("HoldAndDrain")
    timeline.wait([f"suspended {n}" for n in running], 60)
    timeline.wait([f"pod deleted {n}-{r}-0" for n in running for r in ("master", "worker")], 60)
    for name in running:
        job = custom.get_namespaced_custom_object(*KUBEFLOW, namespace, "pytorchjobs", name)
        templates = {t: r["template"] for t, r in job["spec"]["pytorchReplicaSpecs"].items()}
        kueue_traces = {
            t: [k for k in ("labels", "annotations") if template.get("metadata", {}).get(k)]
            + [k for k in ("nodeSelector", "tolerations") if template["spec"].get(k)]
            for t, template in templates.items()
        }
        print(
            f"           {name}: stored templates after the eviction, Kueue's directives left: {kueue_traces}"
        )
    timeline.mark("undrain", "ClusterQueue cluster-queue: stopPolicy None")
    stop_policy("None")
    timeline.wait([f"resumed {n} #2" for n in running], 60)
    timeline.wait([key for n in running for key in running_pods(n, " #2")], 60)


def _figures(timeline: Timeline, names: list[str], first: str, running: list[str]) -> dict[str, float]:
    def gap(a: str, bs: list[str]) -> float:
        return round(max(timeline.at(b) or 0 for b in bs) - (timeline.at(a) or 0), 2)

    pods_of = [f"pod {{}}-{r}-0" for r in ("master", "worker")]
    figures = {}
    for name in names:
        figures[f"{name} admitted -> resumed"] = gap(f"admitted {name}", [f"resumed {name}"])
        figures[f"{name} admitted -> both pods created"] = gap(
            f"admitted {name}", [p.format(name) for p in pods_of]
        )
    figures[f"{first} Succeeded -> {names[2]} admitted"] = gap(f"Succeeded {first}", [f"admitted {names[2]}"])
    figures[f"{first} Master finished -> {names[2]} pods Running"] = gap(
        f"finishing {first}", running_pods(names[2])
    )
    figures["drain -> running jobs suspended"] = gap("drain", [f"suspended {n}" for n in running])
    figures["drain -> their pods deleted"] = gap(
        "drain", [f"pod deleted {n}-{r}-0" for n in running for r in ("master", "worker")]
    )
    figures["undrain -> their pods Running again"] = gap(
        "undrain", [key for n in running for key in running_pods(n, " #2")]
    )
    return figures


def refused_without_the_setting(
    cluster: devcluster.Cluster, api: client.ApiClient, kueue: LocalKueue, seconds: float = 20
) -> None:
    """One job, its own ClusterQueue: Kueue admits it; jobwarden's default contract refuses Kueue's
    update (403), so the job stays suspended with no pod."""
    namespace = "kueue-refused"
    custom = client.CustomObjectsApi(api)
    new_namespace(cluster, namespace)
    for plural, body in queue_objects(namespace, "refused-queue", cpus=4)[1:]:
        apply(custom, plural, body)
    offset = len(kueue.logs())
    timeline = Timeline()
    print("\ntimeline (s since the create), jobwarden WITHOUT --allow-suspend-updates:")
    with watching(api, namespace, timeline):
        timeline.t0 = time.monotonic()
        apply(custom, "pytorchjobs", pytorchjob("job-r", namespace))
        timeline.mark("created job-r", "job-r: created (suspended, queue team-a, 2 CPUs)")
        timeline.wait(["admitted job-r"], 60)
        time.sleep(seconds)
    job = custom.get_namespaced_custom_object(*KUBEFLOW, namespace, "pytorchjobs", "job-r")
    pod_count = len(client.CoreV1Api(api).list_namespaced_pod(namespace).items)
    # Each refused attempt is logged twice (the job reconciler's "Unsuspending job", controller-runtime's
    # "Reconciler error"): count the first.
    refusals = [
        json.loads(line)
        for line in kueue.logs()[offset:].splitlines()
        if line.startswith("{") and '"Unsuspending job"' in line and '"job-r"' in line
    ]
    print(
        f"after {seconds:.0f} s: Workload still Admitted, job suspend={job['spec']['runPolicy']['suspend']}, "
        f"pods={pod_count}, Kueue's refused unsuspend updates in its log: {len(refusals)}"
    )
    if refusals:
        print(
            f"first refusal ({refusals[0]['ts']}), as Kueue logged it: {refusals[0].get('error', '')[:600]}"
        )


def eviction_refused_without_the_setting(
    api: client.ApiClient, kueue: LocalKueue, running: list[str], seconds: float = 10
) -> None:
    """The jobs Kueue started while the setting was on, evicted after it was turned off (the queue
    drained again): Kueue's update that suspends them and restores their templates is refused, so
    they keep running on quota Kueue has marked evicted."""
    namespace = "kueue-allowed"
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    offset = len(kueue.logs())
    began = time.monotonic()
    patch = {"spec": {"stopPolicy": "HoldAndDrain"}}
    custom.patch_cluster_custom_object(*KUEUE, "clusterqueues", "cluster-queue", patch)
    print("\nthe running jobs evicted (ClusterQueue HoldAndDrain) after jobwarden lost the setting:")
    deadline = time.monotonic() + 30
    while True:
        workloads = custom.list_namespaced_custom_object(*KUEUE, namespace, "workloads")["items"]
        evicted = [w for w in workloads if _condition(w, "Evicted") and not _condition(w, "Finished")]
        if len(evicted) == len(running) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    print(f"  {time.monotonic() - began:7.2f} s  Workloads Evicted: {len(evicted)} of {len(running)}")
    time.sleep(seconds)
    for name in running:
        job = custom.get_namespaced_custom_object(*KUBEFLOW, namespace, "pytorchjobs", name)
        phases = [
            p.status.phase
            for p in core.list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={name}").items
        ]
        print(
            f"  {time.monotonic() - began:7.2f} s  {name}: "
            f"suspend={job['spec']['runPolicy']['suspend']}, pods {phases}"
        )
    refusals = [
        json.loads(line)
        for line in kueue.logs()[offset:].splitlines()
        if line.startswith("{") and '"kueue-allowed"' in line and "denied" in line
    ]
    print(f"Kueue's refused suspend updates in its log: {len(refusals)}")
    if refusals:
        print(
            f"first refusal ({refusals[0]['ts']}), as Kueue logged it: {refusals[0].get('error', '')[:600]}"
        )


def wait_for_policy(custom: client.CustomObjectsApi, cluster: devcluster.Cluster, allowing: bool) -> None:
    """The operator installs its policy at start; the apiserver applies it a moment later. Probed with
    a dry-run resume of a job outside any queue: allowed (by the webhook and the policy), or refused by
    the policy itself (the webhook of a new operator refuses at once, while the apiserver may still
    apply the previous operator's allowing policy)."""
    namespace = "kueue-probe"
    if cluster.kubectl("get", "namespace", namespace, check=False).returncode != 0:
        new_namespace(cluster, namespace)
        probe = pytorchjob("probe", namespace)
        del probe["metadata"]["labels"]
        apply(custom, "pytorchjobs", probe)
    deadline = time.monotonic() + 30
    while True:
        body = custom.get_namespaced_custom_object(*KUBEFLOW, namespace, "pytorchjobs", "probe")
        body["spec"]["runPolicy"]["suspend"] = False
        try:
            custom.replace_namespaced_custom_object(
                *KUBEFLOW, namespace, "pytorchjobs", "probe", body, dry_run="All"
            )
            switched = allowing
        except client.ApiException as exc:
            if exc.status == 409:
                continue
            switched = not allowing and POLICY_DENIED in str(exc.body)
        if switched:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the operator's policy did not switch to allowing={allowing}")
        time.sleep(0.3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kueue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--name", default=f"{os.environ.get('JOBWARDEN_TEST_CLUSTER', 'bench')}-kueue")
    parser.add_argument("--keep", action="store_true", help="leave the cluster (and its logs) up")
    parser.add_argument("--no-refused", action="store_true", help="skip the run without the setting")
    args = parser.parse_args(argv)

    print(f"devcluster/build-kueue.sh: {build():.1f} s ({kueue_bin()})")
    source = kueue_source()
    devcluster.down(args.name)
    began = time.monotonic()
    cluster = devcluster.up(args.name, crds=ROOT / "crds")
    print(f"devcluster up: {time.monotonic() - began:.1f} s")
    work = Path(tempfile.mkdtemp(prefix="jobwarden-kueue-"))
    kueue = LocalKueue(cluster, work)
    operator = LocalOperator(cluster, work / "operator.log", extra_args=["--allow-suspend-updates"])
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    failed = True
    try:
        kueue.install(source)  # its webhooks are registered from here on: start it before any job
        print(f"kueue {KUEUE_VERSION} ready in {kueue.start():.1f} s (log {kueue.log_path})")
        operator.start()
        wait_for_policy(client.CustomObjectsApi(api), cluster, allowing=True)
        figures, running = three_jobs_in_a_quota_for_two(cluster, api)
        print("\n" + "\n".join(f"{k:45s} {v:6.2f} s" for k, v in figures.items()))
        if not args.no_refused:
            operator.stop()
            operator = LocalOperator(cluster, work / "operator-default.log")
            operator.start()
            wait_for_policy(client.CustomObjectsApi(api), cluster, allowing=False)
            refused_without_the_setting(cluster, api, kueue)
            eviction_refused_without_the_setting(api, kueue, running)
        failed = False
    finally:
        kueue.stop()
        operator.stop()
        if failed:
            print(f"\nKueue's log, last lines ({kueue.log_path}):\n{kueue.logs()[-3000:]}", file=sys.stderr)
        if args.keep or failed:
            print(f"kept: logs in {work}" + (f", cluster {args.name}" if args.keep else ""))
        else:
            shutil.rmtree(work, ignore_errors=True)
        if not args.keep:
            devcluster.down(args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
