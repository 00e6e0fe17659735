"""`jobwarden run`: the operator and the webhook server in one process."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from jobwarden import kinds
from jobwarden.core.plan import Event, Settings
from jobwarden.kinds.volcano import KIND as VOLCANO
from jobwarden.shell import api as kube
from jobwarden.shell import handlers, leader, memory, metrics, outage, sharedcert, webhook
from jobwarden.shell.controller import Controller

logger = logging.getLogger("jobwarden")


@dataclass(frozen=True)
class RunOptions:
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    kubeconfig: str | None = None
    health_port: int = 8080
    metrics_port: int = 9090  # 0 disables
    health_bind: str = "0.0.0.0"  # the kubelet probes the pod IP; 127.0.0.1 for a local run
    metrics_bind: str = "0.0.0.0"
    log_format: str = "text"
    log_level: str = "INFO"
    volcano_scheduler_fallback: bool = True
    volcano_jobs: str = "auto"  # auto | on | off
    cluster_domain: str = ""
    allow_suspend_updates: bool = False  # spec.runPolicy.suspend joins the Kubeflow update contract
    gang_scheduler: str = ""  # "volcano": Kubeflow jobs get a PodGroup when Volcano's CRD is installed
    pytorch_init_image: str = Settings.pytorch_init_image
    pytorch_init_max_tries: int = Settings.pytorch_init_max_tries
    pytorch_init_resources: tuple[tuple[str, str], ...] = Settings.pytorch_init_resources
    workers: int = 16
    status_coalesce_seconds: float = 1.0  # 0: every status change is written at once
    webhook: webhook.WebhookOptions = field(default_factory=webhook.WebhookOptions)
    webhook_cert_secret: str = "jobwarden-webhook-tls"  # self-signed mode: the CA every replica serves
    leader_election: bool = True
    lease: leader.LeaseOptions = field(default_factory=leader.LeaseOptions)


def default_identity() -> str:
    """client-go's choice: the pod (host) name plus a random suffix, unique across restarts."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Backoffs:
    """kopf's API retry delays, capped at 2 s: after an apiserver outage the watches resume within
    2 s of it coming back (kopf's default grows to 8 s and more). Re-iterable, as kopf iterates it
    afresh for every request; after about 5 minutes of failures the error escalates as before."""

    def __iter__(self) -> Iterator[float]:
        yield from (0.5, 1.0, 1.5)
        yield from [2.0] * 150


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf builds a diff-base for every event (a deep copy of the whole body, then a diff against
    the stored one) for its change-detecting handlers (on.create/update/resume). jobwarden registers
    only event handlers, which never read it: ~5 % of the operator's CPU in a burst was this copy
    (docs/benchmarks.md). A unit test keeps every registry free of change-detecting handlers."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


VOLCANO_JOBS_CRD = f"{VOLCANO.resource.plural}.{VOLCANO.resource.group}"  # jobs.batch.volcano.sh
OUR_CRD_LABEL = ("app.kubernetes.io/name", "jobwarden")  # on every CRD in crds/
# What Volcano's installation leaves on its CRDs (installer/helm/chart/volcano/crd/bases, its Helm chart
# and volcano-development.yaml) and jobwarden's never carry. Applying jobwarden's manifests over
# Volcano's CRD adds jobwarden's label but leaves these (a client-side apply removes only what its own
# last apply set; Helm's install leaves no such record), so they tell a taken-over CRD from ours.
VOLCANO_INSTALL_ANNOTATIONS = (
    "controller-gen.kubebuilder.io/version",
    "helm.sh/resource-policy",
    "meta.helm.sh/release-name",
)
HELM_LABEL = ("app.kubernetes.io/managed-by", "Helm")


@dataclass(frozen=True)
class VolcanoJobs:
    """Whether jobwarden serves batch.volcano.sh Jobs, why, and whether the reason is an alarm (the
    jobs CRD is Volcano's under jobwarden's label)."""

    serve: bool
    why: str
    taken_over: bool = False


def foreign_traces(crd_meta: Mapping[str, Any]) -> list[str]:
    """Marks of another installer (Volcano's, Helm's) on a CRD's metadata, as `key=value` texts."""
    annotations = crd_meta.get("annotations") or {}
    labels = crd_meta.get("labels") or {}
    traces = [f"{k}={annotations[k]}" for k in VOLCANO_INSTALL_ANNOTATIONS if k in annotations]
    if labels.get(HELM_LABEL[0]) == HELM_LABEL[1]:
        traces.append("=".join(HELM_LABEL))
    return traces


def volcano_jobs_decision(mode: str, crd_meta: Mapping[str, Any] | None) -> VolcanoJobs:
    """`crd_meta`: the jobs CRD's metadata, None when it is not installed. `auto` stands aside when
    the CRD is installed and is not jobwarden's: Volcano's own installation made it, so its job
    controller serves the jobs, and two controllers acting on one job fight (pod counters flicker,
    pods are killed twice). jobwarden's label alone does not make it jobwarden's: applied over
    Volcano's CRD, jobwarden's manifests add the label and leave Volcano's marks, and jobwarden refuses
    to take such a CRD over (the preflight of issue 25)."""
    if mode == "on":
        return VolcanoJobs(True, "--volcano-jobs=on")
    if mode == "off":
        return VolcanoJobs(False, "--volcano-jobs=off")
    if crd_meta is None:
        return VolcanoJobs(True, f"--volcano-jobs=auto: the CRD {VOLCANO_JOBS_CRD} is not installed yet")
    labels = crd_meta.get("labels") or {}
    if labels.get(OUR_CRD_LABEL[0]) != OUR_CRD_LABEL[1]:
        return VolcanoJobs(
            False,
            f"--volcano-jobs=auto: the CRD {VOLCANO_JOBS_CRD} is not jobwarden's (no label "
            f"{OUR_CRD_LABEL[0]}={OUR_CRD_LABEL[1]}): Volcano's own job controller serves these jobs",
        )
    traces = foreign_traces(crd_meta)
    if traces:
        return VolcanoJobs(
            False,
            f"--volcano-jobs=auto: the CRD {VOLCANO_JOBS_CRD} carries jobwarden's label but was not "
            f"created by jobwarden ({', '.join(traces)}, as Volcano's installation leaves it): "
            "jobwarden's manifests were applied over Volcano's CRD, and jobwarden does not take it over. "
            "Volcano's job controller serves these jobs. Re-apply Volcano's CRD and install jobwarden "
            "with manifests/overlays/beside-volcano (docs/install.md); --volcano-jobs=on serves them anyway",
            taken_over=True,
        )
    return VolcanoJobs(True, "--volcano-jobs=auto: the Volcano jobs CRD is jobwarden's")


# An event about a cluster-scoped object (the CRD) must live in `default`: the apiserver refuses it
# (422) in any other namespace, e.g. the operator's own.
CLUSTER_EVENT_NAMESPACE = "default"


async def _announce_standing_aside(api: kube.KubeApi, decision: VolcanoJobs) -> None:
    """The one event saying why, on the jobs CRD (kubectl describe crd jobs.batch.volcano.sh shows it)."""
    involved = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "name": VOLCANO_JOBS_CRD,
    }
    kind = "Warning" if decision.taken_over else "Normal"
    event = Event(
        kind, "VolcanoJobsServedByVolcano", f"jobwarden stands aside for Volcano Jobs: {decision.why}"
    )
    try:
        await api.post_cluster_event(involved, event, CLUSTER_EVENT_NAMESPACE)
    except Exception as exc:  # best effort, as every event
        logger.warning("posting the VolcanoJobsServedByVolcano event failed: %s", kube.reason_of(exc))


def configure_logging(options: RunOptions) -> None:
    log_format = kopf.LogFormat.JSON if options.log_format == "json" else kopf.LogFormat.PLAIN
    kopf.configure(log_format=log_format, log_prefix=True)
    logging.getLogger().setLevel(options.log_level.upper())
    # kopf logs every watch event at DEBUG; aiohttp's access log would log each admission review.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    outage.KopfRetries.install()  # kopf's retries: one WARNING and one INFO per apiserver outage


def operator_settings(options: RunOptions, tls: tuple[Path, Path, Path] | None) -> kopf.OperatorSettings:
    # kopf logs every handler run at INFO ("Handler ... succeeded"), once per job event and admission
    # review: noise at the default level, and CPU in a burst. Warnings and errors still show.
    if options.log_level.upper() != "DEBUG":
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # jobwarden posts its own, meaningful events
    settings.watching.server_timeout = 300
    settings.persistence.finalizer = "jobwarden.dev/finalizer"  # never added: no finalizer-needing handlers
    settings.admission.server = webhook.server(options.webhook, *tls) if tls else None
    settings.admission.managed = None  # jobwarden manages its own configuration (see webhook.register)
    settings.networking.error_backoffs = Backoffs()
    settings.persistence.diffbase_storage = NoDiffBase()
    return settings


async def run_operator(
    options: RunOptions,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    if options.kubeconfig:
        os.environ["KUBECONFIG"] = options.kubeconfig
    api = kube.KubeApi(kube.load_config(options.kubeconfig))
    volcano_installed = await api.crd_exists(kube.PODGROUP_CRD)
    commands_installed = await api.crd_exists(kube.COMMAND_CRD)
    queues_installed = await api.crd_exists(kube.QUEUE_CRD)
    volcano_jobs = volcano_jobs_decision(options.volcano_jobs, await api.crd_metadata(VOLCANO_JOBS_CRD))
    serve_volcano = volcano_jobs.serve
    settings = Settings(
        cluster_domain=options.cluster_domain,
        volcano_scheduler_installed=volcano_installed,
        volcano_fallback_to_default_scheduler=options.volcano_scheduler_fallback,
        gang_scheduler=options.gang_scheduler,
        pytorch_init_image=options.pytorch_init_image,
        pytorch_init_max_tries=options.pytorch_init_max_tries,
        pytorch_init_resources=options.pytorch_init_resources,
    )
    if options.gang_scheduler and not volcano_installed:
        logger.warning(
            "--gang-scheduler=%s but Volcano's PodGroup CRD is not installed: Kubeflow jobs run without "
            "gang scheduling (restart the operator once Volcano is installed)",
            options.gang_scheduler,
        )
    controller = Controller(
        api, settings, workers=options.workers, coalesce_seconds=options.status_coalesce_seconds
    )
    registry = kopf.OperatorRegistry()
    tls = await _tls_files(api, options) if options.webhook.enabled else None
    kopf_settings = operator_settings(options, tls)
    job_kinds = kinds.registry(allow_suspend_updates=options.allow_suspend_updates)
    skip = () if serve_volcano else (VOLCANO,)
    # The webhook answers reviews of the kinds it serves; a skipped kind's are allowed as they are.
    webhook.serve(tuple(k for k in job_kinds if k.resource not in {s.resource for s in skip}))
    handlers.register(registry, controller, admission=options.webhook.enabled, job_kinds=job_kinds, skip=skip)
    watches = handlers.child_watches(api.client, controller, options.namespaces, volcano_installed)
    if commands_installed and serve_volcano:  # else Volcano's job controller consumes them
        watches += handlers.command_watches(api.client, controller, options.namespaces)
    if queues_installed:
        watches.append(handlers.queue_watch(api.client, controller))
    streams: list[asyncio.Task[None]] = []

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            return kopf.login_with_service_account(**kwargs)
        return kopf.login_with_kubeconfig(**kwargs)

    elector = (
        leader.LeaderElector(
            api.client, options.lease, on_lead=_async(controller.start), on_follow=controller.stop
        )
        if options.leader_election
        else None
    )
    election: asyncio.Task[None] | None = None

    @kopf.on.startup(registry=registry)
    async def startup(**_: Any) -> None:
        nonlocal election
        if not streams:
            streams.extend(asyncio.create_task(w.run(), name=f"watch-{w.resource.plural}") for w in watches)
            # Plans need the children: no worker plans before every first list is in.
            controller.caches_ready = asyncio.create_task(_all_ready(watches))
            streams.append(asyncio.create_task(memory.trim_when_quiet(lambda: controller.activity)))
        if elector is None:
            controller.start()
        elif election is None:
            election = asyncio.create_task(elector.run(), name="leader-election")
        if tls:
            await webhook.register(api, options.webhook, tls[2].read_bytes())
        if not serve_volcano:
            log = logger.error if volcano_jobs.taken_over else logger.warning
            log("not reconciling or admitting batch.volcano.sh Jobs: %s", volcano_jobs.why)
            await _announce_standing_aside(api, volcano_jobs)
        logger.info(
            "jobwarden started: namespaces=%s volcano-scheduler=%s volcano-commands=%s fallback=%s "
            "suspend-updates=%s gang-scheduler=%s leader-election=%s",
            ",".join(options.namespaces) or "*",
            volcano_installed,
            commands_installed,
            options.volcano_scheduler_fallback,
            options.allow_suspend_updates,
            options.gang_scheduler or "none",
            f"{options.lease.namespace}/{options.lease.name} as {options.lease.identity}"
            if elector
            else "off",
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for stream in streams:
            await leader.cancel(stream)
        await leader.cancel(election)
        if elector is not None:
            await elector.release()  # a standby takes over within its retry period
        await controller.stop()
        await api.close()

    @kopf.on.probe(id="jobs", registry=registry)
    def jobs_known(**_: Any) -> int:
        return len(controller.jobs)

    if options.metrics_port:
        metrics.serve(options.metrics_port, options.metrics_bind)
    await kopf.operator(
        registry=registry,
        settings=kopf_settings,
        standalone=True,
        clusterwide=not options.namespaces,
        namespaces=options.namespaces,
        liveness_endpoint=f"http://{_host(options.health_bind)}:{options.health_port}/healthz"
        if options.health_port
        else None,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def _async(action: Any) -> Any:
    async def call() -> None:
        action()

    return call


async def _tls_files(api: kube.KubeApi, options: RunOptions) -> tuple[Path, Path, Path]:
    """In-cluster self-signed mode: one certificate shared by all replicas through a Secret.
    Otherwise the mounted (cert-manager) files, or a fresh one for local development."""
    hook = options.webhook
    if hook.self_signed and not hook.url:
        return await sharedcert.shared_files(
            api.client,
            options.webhook_cert_secret,
            hook.service_namespace,
            f"{hook.service_name}.{hook.service_namespace}.svc",
            hook.hosts,
            hook.work_dir,
        )
    return webhook.tls_files(hook)


async def _all_ready(watches: list[Any]) -> None:
    await asyncio.gather(*(w.ready.wait() for w in watches))


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address  # an IPv6 literal in a URL
