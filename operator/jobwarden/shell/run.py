"""`jobwarden run`: the operator and the webhook server in one process."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from jobwarden.core.plan import Settings
from jobwarden.shell import api as kube
from jobwarden.shell import handlers, metrics, webhook
from jobwarden.shell.controller import Controller

logger = logging.getLogger("jobwarden")


@dataclass(frozen=True)
class RunOptions:
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    kubeconfig: str | None = None
    health_port: int = 8080
    metrics_port: int = 9090  # 0 disables
    log_format: str = "text"
    log_level: str = "INFO"
    volcano_scheduler_fallback: bool = True
    cluster_domain: str = ""
    webhook: webhook.WebhookOptions = field(default_factory=webhook.WebhookOptions)


def configure_logging(options: RunOptions) -> None:
    log_format = kopf.LogFormat.JSON if options.log_format == "json" else kopf.LogFormat.PLAIN
    kopf.configure(log_format=log_format, log_prefix=True)
    logging.getLogger().setLevel(options.log_level.upper())
    # kopf logs every watch event at DEBUG; aiohttp's access log would log each admission review.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def operator_settings(options: RunOptions, tls: tuple[Path, Path, Path] | None) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # jobwarden posts its own, meaningful events
    settings.watching.server_timeout = 300
    settings.persistence.finalizer = "jobwarden.dev/finalizer"  # never added: no finalizer-needing handlers
    settings.admission.server = webhook.server(options.webhook, *tls) if tls else None
    settings.admission.managed = None  # jobwarden manages its own configuration (see webhook.register)
    return settings


async def run_operator(
    options: RunOptions,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    if options.kubeconfig:
        os.environ["KUBECONFIG"] = options.kubeconfig
    api = kube.KubeApi(await kube.load_config(options.kubeconfig))
    volcano_installed = await api.crd_exists(kube.PODGROUP_CRD)
    settings = Settings(
        cluster_domain=options.cluster_domain,
        volcano_scheduler_installed=volcano_installed,
        volcano_fallback_to_default_scheduler=options.volcano_scheduler_fallback,
    )
    controller = Controller(api, settings)
    registry = kopf.OperatorRegistry()
    tls = webhook.tls_files(options.webhook) if options.webhook.enabled else None
    kopf_settings = operator_settings(options, tls)
    handlers.register(
        registry,
        kopf_settings,
        controller,
        watch_podgroups=volcano_installed,
        admission=options.webhook.enabled,
    )

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            return kopf.login_with_service_account(**kwargs)
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(**_: Any) -> None:
        controller.start()
        if tls:
            await webhook.register(api, options.webhook, tls[2].read_bytes())
        logger.info(
            "jobwarden started: namespaces=%s volcano-scheduler=%s fallback=%s",
            ",".join(options.namespaces) or "*",
            volcano_installed,
            options.volcano_scheduler_fallback,
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await controller.stop()
        await api.close()

    @kopf.on.probe(id="jobs", registry=registry)
    def jobs_known(**_: Any) -> int:
        return len(controller.jobs)

    if options.metrics_port:
        metrics.serve(options.metrics_port)
    await kopf.operator(
        registry=registry,
        settings=kopf_settings,
        standalone=True,
        clusterwide=not options.namespaces,
        namespaces=options.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{options.health_port}/healthz" if options.health_port else None,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
