"""Prometheus metrics (prometheus_client), served on `--metrics-port` at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

JOBS_CREATED = Counter("jobwarden_jobs_created_total", "Jobs seen created (Created transition)", ["kind"])
JOBS_SUCCEEDED = Counter("jobwarden_jobs_succeeded_total", "Jobs that succeeded/completed", ["kind"])
JOBS_FAILED = Counter("jobwarden_jobs_failed_total", "Jobs that failed", ["kind"])
JOBS_DELETED = Counter("jobwarden_jobs_deleted_total", "Jobs deleted (watch DELETED events)", ["kind"])
CHILDREN_CREATED = Counter("jobwarden_children_created_total", "Pods/Services/... created", ["kind", "child"])
CHILDREN_DELETED = Counter("jobwarden_children_deleted_total", "Pods/Services/... deleted", ["kind", "child"])
TTL_DELETIONS = Counter("jobwarden_ttl_deletions_total", "Jobs deleted by ttlSecondsAfterFinished", ["kind"])
DEADLINE_ACTIONS = Counter(
    "jobwarden_deadline_failures_total", "Jobs failed by activeDeadlineSeconds", ["kind"]
)
EVENTS_DROPPED = Counter("jobwarden_events_dropped_total", "Events dropped because the event queue was full")
EVENTS_UNPOSTED = Counter(
    "jobwarden_events_unposted_total",
    "Events dropped because the apiserver could not be reached within the bound after they happened",
)
APISERVER_UNREACHABLE = Gauge(
    "jobwarden_apiserver_unreachable",
    "1 while this path (event posts, status writes, child writes, watches, the lease) cannot reach the "
    "apiserver",
    ["path"],
)
LEADER = Gauge("jobwarden_leader", "1 while this replica holds the leader Lease and reconciles")
STALE_PLANS = Counter(
    "jobwarden_stale_plans_total",
    "Passes dropped because their fencing status write was refused (409)",
    ["kind"],
)
STATUS_WRITES_HELD = Counter(
    "jobwarden_status_writes_held_total",
    "Passes whose progress-only status write waited to be merged with the next ones",
    ["kind"],
)
RECONCILE_SECONDS = Histogram(
    "jobwarden_reconcile_seconds",
    "Time to plan and execute one reconcile",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RUNPOLICY_LATENESS = Histogram(
    "jobwarden_runpolicy_lateness_seconds",
    "From the instant a run-policy timer fell due (computed from status timestamps) to the answer of "
    "the write that acted on it: the deadline's Failed status, the TTL's job delete",
    ["kind", "action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ADMISSION_SECONDS = Histogram(
    "jobwarden_admission_seconds",
    "Time to review one admission request",
    ["kind", "operation", "allowed"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    start_http_server(port, addr=addr)
