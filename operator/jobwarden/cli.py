"""The `jobwarden` console script.

    jobwarden run        the operator and the webhook server in one process
    jobwarden validate   the admission rules offline, for CI pipelines (see docs/admission.md)
    jobwarden policy     print the update contract as ValidatingAdmissionPolicies (manifests/policy/)
    jobwarden job        suspend | resume | restart | abort a Volcano job (vcctl's verbs: a Command)

Every `run` flag has an environment variable (JOBWARDEN_*), so the Deployment can be configured
from a ConfigMap without changing its arguments."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobwarden.shell.run import RunOptions


def _env(name: str, default: str) -> str:
    return os.environ.get(f"JOBWARDEN_{name}", default)


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in _env(name, "").split(",") if item.strip()]


def _env_bool(name: str, default: bool) -> bool:
    """An unset or empty variable means the default; anything but a clear yes/no is an error (a typo
    must not silently turn admission off)."""
    value = os.environ.get(f"JOBWARDEN_{name}", "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"jobwarden: JOBWARDEN_{name}={value!r} is not a boolean (use true or false)")


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """argparse does not check a default against `choices`: a misspelt variable must not silently
    mean something else."""
    value = _env(name, default).strip() or default
    if value not in choices:
        raise SystemExit(f"jobwarden: JOBWARDEN_{name}={value!r} is not one of {', '.join(choices)}")
    return value


def _resources(text: str) -> tuple[tuple[str, str], ...]:
    """`limits.cpu=100m,requests.memory=10Mi` -> (("limits.cpu", "100m"), ...); "" for none."""
    from jobwarden.core.quantity import is_quantity

    pairs: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        section, _, name = key.strip().partition(".")
        if section not in ("limits", "requests") or not name or not is_quantity(value.strip()):
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected limits.<resource>=<quantity> or requests.<resource>=<quantity>"
            )
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _env_resources(name: str, default: str) -> tuple[tuple[str, str], ...]:
    try:
        return _resources(_env(name, default))
    except argparse.ArgumentTypeError as error:
        raise SystemExit(f"jobwarden: JOBWARDEN_{name}: {error}") from None


def _run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run the operator and the admission webhook server")
    ns = run.add_argument_group("scope")
    ns.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=None,
        help="watch this namespace (repeatable; overrides env JOBWARDEN_NAMESPACES, comma-separated)",
    )
    ns.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch all namespaces (the default when no namespace is given)",
    )
    run.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig to use (default: in-cluster service account, else $KUBECONFIG)",
    )
    wh = run.add_argument_group("admission webhook")
    wh.add_argument(
        "--no-webhook",
        action="store_true",
        default=not _env_bool("WEBHOOK", True),
        help="do not serve the admission webhook (env JOBWARDEN_WEBHOOK=false)",
    )
    wh.add_argument("--webhook-bind", default=_env("WEBHOOK_BIND", "0.0.0.0"))
    wh.add_argument("--webhook-port", type=int, default=int(_env("WEBHOOK_PORT", "9443")))
    wh.add_argument(
        "--webhook-cert-dir",
        type=Path,
        default=_env("WEBHOOK_CERT_DIR", "") or None,
        help="directory with tls.crt, tls.key and optional ca.crt (cert-manager layout)",
    )
    wh.add_argument(
        "--webhook-self-signed",
        action="store_true",
        default=_env_bool("WEBHOOK_SELF_SIGNED", False),
        help="generate a CA and serving certificate at start and patch the configuration's caBundle",
    )
    wh.add_argument("--webhook-service-name", default=_env("WEBHOOK_SERVICE_NAME", "jobwarden-webhook"))
    wh.add_argument(
        "--webhook-service-namespace", default=_env("WEBHOOK_SERVICE_NAMESPACE", "jobwarden-system")
    )
    wh.add_argument(
        "--webhook-config-name",
        default=_env("WEBHOOK_CONFIG_NAME", "jobwarden"),
        help="name of the ValidatingWebhookConfiguration",
    )
    wh.add_argument(
        "--webhook-url",
        default=_env("WEBHOOK_URL", "") or None,
        help="local development: register the whole configuration with this URL "
        "(e.g. https://127.0.0.1:9443) and a generated CA",
    )
    wh.add_argument(
        "--webhook-failure-policy", choices=["Fail", "Ignore"], default=_env("WEBHOOK_FAILURE_POLICY", "Fail")
    )
    wh.add_argument(
        "--admission-policy",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("ADMISSION_POLICY", True),
        help="local mode (--webhook-url): also install the update contract as ValidatingAdmissionPolicies, "
        "which hold while the operator is down (env JOBWARDEN_ADMISSION_POLICY; in a cluster, "
        "manifests/ ships them)",
    )
    wh.add_argument(
        "--allow-suspend-updates",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("ALLOW_SUSPEND_UPDATES", False),
        help="let an update change spec.runPolicy.suspend of a Kubeflow job (suspend and resume "
        "running jobs); the seeds' contract allows it only at create (env JOBWARDEN_ALLOW_SUSPEND_UPDATES)",
    )
    wh.add_argument(
        "--webhook-work-dir",
        type=Path,
        default=Path(_env("WEBHOOK_WORK_DIR", "/tmp/jobwarden-webhook")),
        help="where generated certificates are written (must be writable)",
    )
    ob = run.add_argument_group("observability")
    ob.add_argument(
        "--health-port",
        type=int,
        default=int(_env("HEALTH_PORT", "8080")),
        help="kopf liveness endpoint /healthz (0 disables)",
    )
    ob.add_argument(
        "--metrics-port",
        type=int,
        default=int(_env("METRICS_PORT", "9090")),
        help="Prometheus /metrics (0 disables)",
    )
    ob.add_argument("--health-bind", default=_env("HEALTH_BIND", "0.0.0.0"), help="address of /healthz")
    ob.add_argument("--metrics-bind", default=_env("METRICS_BIND", "0.0.0.0"), help="address of /metrics")
    ob.add_argument("--log-format", choices=["text", "json"], default=_env("LOG_FORMAT", "text"))
    ob.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    le = run.add_argument_group(
        "leader election (only the leader reconciles; every replica serves the webhook)"
    )
    le.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("LEADER_ELECT", True),
        help="hold a coordination.k8s.io Lease before reconciling (env JOBWARDEN_LEADER_ELECT)",
    )
    le.add_argument("--leader-elect-lease-name", default=_env("LEADER_ELECT_LEASE_NAME", "jobwarden-leader"))
    le.add_argument(
        "--leader-elect-namespace",
        default=_env("LEADER_ELECT_NAMESPACE", os.environ.get("POD_NAMESPACE", "jobwarden-system")),
        help="namespace of the Lease (default: env POD_NAMESPACE, else jobwarden-system)",
    )
    le.add_argument(
        "--leader-elect-lease-duration", type=float, default=float(_env("LEADER_ELECT_LEASE_DURATION", "15"))
    )
    le.add_argument(
        "--leader-elect-renew-deadline", type=float, default=float(_env("LEADER_ELECT_RENEW_DEADLINE", "10"))
    )
    le.add_argument(
        "--leader-elect-retry-period", type=float, default=float(_env("LEADER_ELECT_RETRY_PERIOD", "2"))
    )
    le.add_argument(
        "--leader-elect-identity",
        default=_env("LEADER_ELECT_IDENTITY", ""),
        help="this replica's name in the Lease (default: $POD_NAME or the host name, plus a random suffix)",
    )
    jobs = run.add_argument_group("jobs")
    jobs.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", "16")),
        help="jobs reconciled at once (env JOBWARDEN_WORKERS); a job's own children are written concurrently",
    )
    jobs.add_argument(
        "--status-coalesce-seconds",
        type=float,
        default=float(_env("STATUS_COALESCE_SECONDS", "1")),
        help="how long a status write that only reports progress (replica counts, Running) may wait to "
        "be merged with the next ones; finishes and writes that fence child changes never wait; 0 "
        "writes every change at once (env JOBWARDEN_STATUS_COALESCE_SECONDS)",
    )
    jobs.add_argument(
        "--volcano-scheduler-fallback",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("VOLCANO_SCHEDULER_FALLBACK", True),
        help="run Volcano jobs with the default scheduler when Volcano's PodGroup CRD is absent",
    )
    jobs.add_argument(
        "--gang-scheduler",
        choices=["none", "volcano"],
        default=_env_choice("GANG_SCHEDULER", "none", ("none", "volcano")),
        help="gang-schedule the Kubeflow jobs with Volcano (a PodGroup per job, schedulerName volcano) "
        "when its PodGroup CRD is installed, as training-operator's --gang-scheduler-name "
        "(env JOBWARDEN_GANG_SCHEDULER; default none)",
    )
    jobs.add_argument(
        "--pytorch-init-container-image",
        default=_env("PYTORCH_INIT_CONTAINER_IMAGE", "alpine:3.10"),
        help="image of the init-pytorch container that makes a worker wait for its master's DNS name",
    )
    jobs.add_argument(
        "--pytorch-init-container-max-tries",
        type=int,
        default=int(_env("PYTORCH_INIT_CONTAINER_MAX_TRIES", "100")),
        help="lookups of the master's name (2 s apart) before init-pytorch gives up",
    )
    jobs.add_argument(
        "--pytorch-init-container-resources",
        type=_resources,
        default=_env_resources(
            "PYTORCH_INIT_CONTAINER_RESOURCES",
            "limits.cpu=100m,limits.memory=20Mi,requests.cpu=50m,requests.memory=10Mi",
        ),
        help="init-pytorch's resources as limits.<name>=<quantity>,requests.<name>=<quantity>,... "
        "(default upstream's: limits cpu 100m memory 20Mi, requests cpu 50m memory 10Mi)",
    )
    jobs.add_argument(
        "--volcano-jobs",
        choices=("auto", "on", "off"),
        default=_env("VOLCANO_JOBS", "auto"),
        help="reconcile and admit batch.volcano.sh Jobs: auto stands aside when Volcano's own job "
        "controller serves them (the jobs CRD is not jobwarden's)",
    )
    jobs.add_argument(
        "--cluster-domain",
        default=_env("CLUSTER_DOMAIN", os.environ.get("CUSTOM_CLUSTER_DOMAIN", "")),
        help="cluster domain appended to service hosts in TF_CONFIG (e.g. cluster.local)",
    )


def run_options(args: argparse.Namespace) -> RunOptions:
    """`jobwarden run`'s flags and JOBWARDEN_* environment, resolved (flags win)."""
    from jobwarden.core.lease import LeaseTimings
    from jobwarden.shell.leader import LeaseOptions
    from jobwarden.shell.run import RunOptions, default_identity
    from jobwarden.shell.webhook import WebhookOptions

    self_signed = args.webhook_self_signed or (args.webhook_url is not None and args.webhook_cert_dir is None)
    return RunOptions(
        namespaces=() if args.all_namespaces else tuple(args.namespaces or _env_list("NAMESPACES")),
        kubeconfig=args.kubeconfig,
        health_port=args.health_port,
        metrics_port=args.metrics_port,
        health_bind=args.health_bind,
        metrics_bind=args.metrics_bind,
        log_format=args.log_format,
        log_level=args.log_level,
        volcano_scheduler_fallback=args.volcano_scheduler_fallback,
        volcano_jobs=args.volcano_jobs,
        cluster_domain=args.cluster_domain,
        allow_suspend_updates=args.allow_suspend_updates,
        gang_scheduler="" if args.gang_scheduler == "none" else args.gang_scheduler,
        pytorch_init_image=args.pytorch_init_container_image,
        pytorch_init_max_tries=args.pytorch_init_container_max_tries,
        pytorch_init_resources=args.pytorch_init_container_resources,
        workers=args.workers,
        status_coalesce_seconds=args.status_coalesce_seconds,
        leader_election=args.leader_elect,
        lease=LeaseOptions(
            name=args.leader_elect_lease_name,
            namespace=args.leader_elect_namespace,
            identity=args.leader_elect_identity or default_identity(),
            timings=LeaseTimings(
                lease_duration=args.leader_elect_lease_duration,
                renew_deadline=args.leader_elect_renew_deadline,
                retry_period=args.leader_elect_retry_period,
            ),
        ),
        webhook=WebhookOptions(
            enabled=not args.no_webhook,
            bind=args.webhook_bind,
            port=args.webhook_port,
            cert_dir=args.webhook_cert_dir,
            self_signed=self_signed,
            service_name=args.webhook_service_name,
            service_namespace=args.webhook_service_namespace,
            config_name=args.webhook_config_name,
            url=args.webhook_url,
            failure_policy=args.webhook_failure_policy,
            admission_policy=args.admission_policy,
            work_dir=args.webhook_work_dir,
        ),
    )


# kopf imports every Kubernetes client library it finds installed (kopf._cogs.helpers.thirdparty), only
# to recognise their model objects. The operator hands kopf none (its client is shell/kubeclient.py)
# and the image installs none; a development venv has all three for the tests and benchmarks, and
# importing them would cost the operator ~50 MiB of RSS it does not have in the image.
UNUSED_CLIENTS = ("kubernetes", "kubernetes_asyncio", "pykube")


def hide_unused_clients() -> None:
    for name in UNUSED_CLIENTS:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError


def _run(args: argparse.Namespace) -> int:
    hide_unused_clients()
    from jobwarden.shell import memory
    from jobwarden.shell.run import configure_logging, run_operator

    memory.limit_arenas()  # before any thread starts (shell/memory.py)
    memory.defer_full_collections()  # the imports are done: full collections only when quiet

    options = run_options(args)
    configure_logging(options)
    from jobwarden.shell.kubeclient import CredentialsError

    try:
        asyncio.run(run_operator(options))
    except CredentialsError as exc:  # no credentials, or a configuration jobwarden refuses (a proxy)
        print(f"jobwarden run: {exc}", file=sys.stderr)
        return 2
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobwarden", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    sub.add_parser(
        "validate", help="check job manifests against the admission rules (see: jobwarden validate -h)"
    )
    policy = sub.add_parser("policy", help="print the update contract as ValidatingAdmissionPolicy YAML")
    policy.add_argument(
        "--namespace",
        default="jobwarden-system",
        help="jobwarden's namespace: its ServiceAccount's own writes are exempt (default: jobwarden-system)",
    )
    policy.add_argument(
        "--allow-suspend-updates",
        action="store_true",
        help="the contract of `jobwarden run --allow-suspend-updates` (suspend may change, and the "
        "templates' scheduling directives while suspended)",
    )
    policy.add_argument(
        "--patch",
        action="store_true",
        help="with --allow-suspend-updates: print the kustomize patch that turns the default policies into "
        "these (manifests/components/allow-suspend-updates/policy-patch.yaml)",
    )
    sub.add_parser(
        "job", help="suspend, resume, restart or abort a Volcano job (a Command; see: jobwarden job -h)"
    )
    return parser


def _policy(args: argparse.Namespace) -> int:
    from jobwarden.kinds.policy import render_suspend_updates_patch, render_yaml

    if args.patch and not args.allow_suspend_updates:
        sys.stderr.write("jobwarden policy: --patch needs --allow-suspend-updates\n")
        return 2
    if args.patch:
        sys.stdout.write(render_suspend_updates_patch())
    else:
        sys.stdout.write(render_yaml(args.namespace, args.allow_suspend_updates))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["validate"]:
        from jobwarden.shell.validate_cmd import main as validate_main

        return validate_main(argv[1:])
    if argv[:1] == ["job"]:
        from jobwarden.shell.job_cmd import main as job_main

        return job_main(argv[1:])
    args = parser().parse_args(argv)
    return _policy(args) if args.command == "policy" else _run(args)


if __name__ == "__main__":
    sys.exit(main())
