"""The children the job's plugins want (the svc plugin's Service and ConfigMap, the ssh plugin's
Secret), kept while the job is active and removed by a whole-job kill with the PodGroup, as upstream's
plugin `OnJobAdd`/`OnJobUpdate` and `OnJobDelete`. A plugin records itself in
`status.controlledResources["plugin-<name>"]`.

A watched child (Service, ConfigMap) is created when missing and replaced when a synced field differs.
An unwatched one (the Secret) is asked for while the plugin is not recorded and the shell has not
reported the child in `observed.children`; the plugin is recorded once all its unwatched children are
there (record after success)."""

from __future__ import annotations

import copy

from jobwarden.core.children import child_metadata, manifest
from jobwarden.core.plan import WATCHED_CHILD_KINDS, ChildRef, Manifest
from jobwarden.kinds.volcano.decision import Decision, Situation
from jobwarden.kinds.volcano.spec import VolcanoJob
from jobwarden.plugins.base import PLUGIN_LABEL, DesiredChild


def ensure_plugin_children(situation: Situation, decision: Decision) -> Decision:
    controlled = dict(decision.controlled)
    create: list[Manifest] = []
    replace: list[Manifest] = []
    observed = situation.observed
    for plugin in situation.job.plugins.plugins:
        recorded = plugin.controlled_key in controlled
        missing = False
        for child in plugin.resources(situation.job.context):
            if child.kind in WATCHED_CHILD_KINDS:
                made, replaced = _watched_child_changes(situation, child)
                create += made
                replace += replaced
            elif not recorded and child.name not in observed.of_kind(child.kind):
                create.append(child.build())
                missing = True
        if not missing and plugin.records_itself:
            controlled[plugin.controlled_key] = plugin.name
    return decision.changed(controlled=controlled).adding(create=create, replace=replace)


def _watched_child_changes(
    situation: Situation, child: DesiredChild
) -> tuple[list[Manifest], list[Manifest]]:
    live = situation.observed.of_kind(child.kind).get(child.name)
    if live is None:
        return [child.build()], []
    if not child.synced_fields:
        return [], []
    desired = child.build()
    if any(live.get(f) != desired.get(f) for f in child.synced_fields):
        replacement = copy.deepcopy(dict(live))  # keeps resourceVersion: a racing writer gets a 409
        replacement.update({f: desired.get(f) for f in child.synced_fields})
        return [], [replacement]
    return [], []


def ensure_volume_claims(situation: Situation, decision: Decision) -> Decision:
    """Upstream `createJobIOIfNotExist`: a claim from `volumes[].volumeClaim` is created (owned by the
    job, so it goes with it; a kill keeps it) and every claim is recorded as
    `controlledResources["volume-pvc-<name>"]`; a made one once the watch shows it."""
    job, controlled = situation.job, dict(decision.controlled)
    existing = situation.observed.of_kind("PersistentVolumeClaim")
    create = []
    for claim in job.claims:
        if claim.spec is not None and claim.name not in existing:
            metadata = child_metadata(job.body, claim.name)
            create.append(manifest("v1", "PersistentVolumeClaim", metadata, spec=dict(claim.spec)))
        else:
            controlled[f"volume-pvc-{claim.name}"] = claim.name
    return decision.changed(controlled=controlled).adding(create=create)


def remove_job_children(situation: Situation, decision: Decision) -> Decision:
    """Upstream's plugin `OnJobDelete` plus the PodGroup deletion of a whole-job kill: the plugins'
    keys leave `controlledResources`.

    What goes is decided from what exists and the job owns, never from `controlledResources`, which a
    restart clears and a crash may leave behind (issue 27: an ssh Secret outlived its Failed job):
    every observed child (the caches hold only children the job controls; the shell looks up the
    unwatched ones, `JobKind.unwatched_children`) that a plugin names on a kill or that carries a
    plugin's label. One already being deleted is left to finish."""
    controlled = dict(decision.controlled)
    observed = situation.observed
    doomed: dict[tuple[str, str], None] = {}  # in order, once each
    for plugin in situation.job.plugins.plugins:
        for ref in plugin.on_job_delete(situation.job.context):
            doomed[(ref.kind, ref.name)] = None
        controlled.pop(plugin.controlled_key, None)
    for child_kind, children in observed.children.items():
        for name, child in children.items():
            if PLUGIN_LABEL in ((child.get("metadata") or {}).get("labels") or {}):
                doomed[(child_kind, name)] = None
    doomed[("PodGroup", situation.job.podgroup_name)] = None
    delete = [
        ChildRef(child_kind, name)
        for child_kind, name in doomed
        if name in observed.of_kind(child_kind)
        and not observed.of_kind(child_kind)[name].get("metadata", {}).get("deletionTimestamp")
    ]
    return decision.changed(controlled=controlled).adding(delete=delete)


def unwatched_plugin_children(job: VolcanoJob) -> list[ChildRef]:
    """The plugins' children of kinds the shell does not watch (the ssh Secret), for the shell to look
    up once (`JobKind.unwatched_children`)."""
    return [
        ChildRef(child.kind, child.name)
        for plugin in job.plugins.plugins
        for child in plugin.resources(job.context)
        if child.kind not in WATCHED_CHILD_KINDS
    ]
