"""The CEL side of admission (jobwarden/kinds/policy.py): the committed policy YAML is what the tables
generate, the webhook configuration in manifests/ and the one registered in local mode carry the same
matchConditions, and a table the generator cannot express exactly is refused rather than guessed.
Whether the apiserver agrees with the webhook is tests/integration/test_admission_policy.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobwarden import cli, kinds
from jobwarden.kinds import policy
from jobwarden.kinds.volcano.updates import VOLCANO_CONTRACT
from jobwarden.shell import webhook
from testlib import kustomize_render

REPO = Path(__file__).resolve().parents[2]
POLICY_YAML = REPO / "manifests" / "policy" / "validatingadmissionpolicies.yaml"
SUSPEND_PATCH = REPO / "manifests" / "components" / "allow-suspend-updates" / "policy-patch.yaml"
WEBHOOK_YAML = REPO / "manifests" / "base" / "validatingwebhookconfiguration.yaml"


def test_committed_policy_yaml_is_the_generated_one() -> None:
    assert POLICY_YAML.read_text() == policy.render_yaml(), "regenerate: jobwarden policy > " + str(
        POLICY_YAML.relative_to(REPO)
    )


def test_the_cli_prints_the_same_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy"]) == 0
    assert capsys.readouterr().out == POLICY_YAML.read_text()


def test_the_committed_suspend_updates_patch_is_the_generated_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "--allow-suspend-updates", "--patch"]) == 0
    assert capsys.readouterr().out == SUSPEND_PATCH.read_text(), (
        "regenerate: jobwarden policy --allow-suspend-updates --patch > "
        + str(SUSPEND_PATCH.relative_to(REPO))
    )
    assert cli.main(["policy", "--patch"]) == 2


def test_the_suspend_setting_changes_only_the_kubeflow_policys_rules() -> None:
    default = {o["metadata"]["name"]: o for o in policy.policy_objects() if o["kind"].endswith("Policy")}
    opt_in = policy.policy_objects(registry=kinds.registry(allow_suspend_updates=True))
    changed = [
        o["metadata"]["name"]
        for o in opt_in
        if o["kind"].endswith("Policy") and o != default[o["metadata"]["name"]]
    ]
    assert changed == ["jobwarden-updates.kubeflow.org"]
    [ops] = policy.suspend_updates_patches().values()
    patched = {
        **default["jobwarden-updates.kubeflow.org"]["spec"],
        **{op["path"].split("/")[-1]: op["value"] for op in ops},
    }
    assert patched == next(o for o in opt_in if o["metadata"]["name"] == changed[0])["spec"]


def test_one_policy_and_binding_per_contract_covering_every_kind() -> None:
    objects = policy.policy_objects()
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ValidatingAdmissionPolicy"}
    bindings = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert {b["spec"]["policyName"] for b in bindings} == set(policies)
    assert all(b["spec"]["validationActions"] == ["Deny"] for b in bindings)
    covered = {
        (group, version, plural)
        for p in policies.values()
        for rule in p["spec"]["matchConstraints"]["resourceRules"]
        for group in rule["apiGroups"]
        for version in rule["apiVersions"]
        for plural in rule["resources"]
    }
    assert covered == {(k.resource.group, k.resource.version, k.resource.plural) for k in kinds.REGISTRY}
    for p in policies.values():
        assert p["spec"]["failurePolicy"] == "Fail"
        rules = p["spec"]["matchConstraints"]["resourceRules"]
        assert all(r["operations"] == ["UPDATE"] for r in rules)
        assert all(len(r["apiVersions"]) == 1 for r in rules), "one rule per version"


def test_messages_name_what_may_change() -> None:
    text = POLICY_YAML.read_text()
    for kind in kinds.REGISTRY:
        assert "updatable fields: " + ", ".join(kind.updatable_fields()) in yaml.safe_dump(
            policy.policy_objects(), width=10**6
        )
    assert "field is not updatable" in text


@pytest.mark.parametrize(
    "pattern",
    [
        "status.x",
        "spec",
        "spec.tasks[0].replicas",
        "spec.x.*",
        "spec.tasks[*]",
        "spec.a[*].b[*].c",
        "spec.a.b[*].c",
    ],
)
def test_a_table_entry_cel_cannot_express_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="cannot express"):
        policy._tree(["metadata.labels", pattern])


def _updatable(group: str, plural: str) -> list[str]:
    kind = kinds.by_plural(group, plural)
    assert kind is not None
    return kind.updatable_fields()


def test_the_tables_become_the_expected_trees() -> None:
    kubeflow = policy._tree(_updatable("kubeflow.org", "tfjobs"))
    assert kubeflow.allowed == {"activeDeadlineSeconds", "ttlSecondsAfterFinished", "cleanPodPolicy"}
    assert kubeflow.children["runPolicy"].allowed == kubeflow.allowed
    volcano = policy._tree(_updatable("batch.volcano.sh", "jobs"))
    items = volcano.children["tasks"].items
    assert volcano.allowed == set() and items is not None and items.allowed == {"replicas", "template"}


def _webhook_in_manifests() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(WEBHOOK_YAML.read_text())
    return config


def test_manifests_and_local_registration_share_match_conditions_and_on_call_text() -> None:
    shipped = _webhook_in_manifests()
    local = webhook.configuration(webhook.WebhookOptions(url="https://127.0.0.1:1"), b"ca")
    for config in (shipped, local):
        assert config["metadata"]["name"] == "jobwarden"
        [hook] = config["webhooks"]
        assert hook["matchConditions"] == policy.match_conditions("jobwarden-system")
        assert config["metadata"]["annotations"] == webhook.ON_CALL_ANNOTATIONS
    names = [c["name"] for c in policy.match_conditions()]
    assert names == [
        "not-the-jobwarden-controller",
        "not-the-garbage-collector",
        "not-the-namespace-controller",
        "changes-spec-or-generate-name",
    ]


def test_match_conditions_follow_the_namespace() -> None:
    [controller, *_] = policy.match_conditions("ml-platform")
    assert "system:serviceaccount:ml-platform:jobwarden" in controller["expression"]


def _render(tmp_path: Path, components: list[str]) -> list[dict[str, Any]]:
    kr = kustomize_render()
    manifests = REPO / "manifests"
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize refuses absolute paths
                "resources": [os.path.relpath(manifests / "overlays" / "self-signed", tmp_path)],
                "components": [os.path.relpath(manifests / "components" / c, tmp_path) for c in components],
            }
        )
    )
    objects: list[dict[str, Any]] = kr.load(kr.render(tmp_path))
    return objects


def _policy_kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] + "/" + o["metadata"]["name"] for o in objects if "AdmissionPolicy" in o["kind"])


def test_the_install_ships_the_policies_and_a_component_turns_them_off(tmp_path: Path) -> None:
    expected = sorted(o["kind"] + "/" + o["metadata"]["name"] for o in policy.policy_objects())
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    assert _policy_kinds(_render(tmp_path / "on", [])) == expected
    off = _render(tmp_path / "off", ["no-admission-policy"])
    assert _policy_kinds(off) == []
    assert any(o["kind"] == "ValidatingWebhookConfiguration" for o in off), "the webhook stays"


def _settings(objects: list[dict[str, Any]]) -> dict[str, str]:
    [settings] = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("jobwarden-settings")
    ]
    data: dict[str, str] = settings["data"]
    return data


def test_the_suspend_component_sets_the_flag_and_the_matching_policy_together(tmp_path: Path) -> None:
    (tmp_path / "default").mkdir()
    (tmp_path / "suspend").mkdir()
    objects = {
        "default": _render(tmp_path / "default", []),
        "suspend": _render(tmp_path / "suspend", ["allow-suspend-updates"]),
        "none": _render(tmp_path, ["no-admission-policy", "allow-suspend-updates"]),
    }
    expected = {
        "default": policy.policy_objects(),
        "suspend": policy.policy_objects(registry=kinds.registry(allow_suspend_updates=True)),
    }
    for name, wanted in expected.items():
        shipped = {
            o["metadata"]["name"]: o["spec"]
            for o in objects[name]
            if o["kind"] == "ValidatingAdmissionPolicy"
        }
        assert shipped == {
            o["metadata"]["name"]: o["spec"] for o in wanted if o["kind"] == "ValidatingAdmissionPolicy"
        }
    assert _settings(objects["default"])["JOBWARDEN_ALLOW_SUSPEND_UPDATES"] == "false"
    assert _settings(objects["suspend"])["JOBWARDEN_ALLOW_SUSPEND_UPDATES"] == "true"
    assert (
        _policy_kinds(objects["none"]) == []
        and _settings(objects["none"])["JOBWARDEN_ALLOW_SUSPEND_UPDATES"] == "true"
    )


def test_the_namespaced_install_binds_the_policies_to_its_namespaces() -> None:
    kr = kustomize_render()
    objects = kr.objects("overlays/namespaced")
    bindings = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert len(bindings) == len(policy.policy_objects()) // 2
    for binding in bindings:
        [expression] = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
        assert expression["values"] == ["ml-team-a", "ml-team-b"]


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], None, True),
        (["--no-admission-policy"], None, False),
        ([], "false", False),
        (["--admission-policy"], "false", True),  # a flag wins over the environment
    ],
)
def test_the_local_run_installs_the_policies_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: str | None, expected: bool
) -> None:
    if env is None:
        monkeypatch.delenv("JOBWARDEN_ADMISSION_POLICY", raising=False)
    else:
        monkeypatch.setenv("JOBWARDEN_ADMISSION_POLICY", env)
    options = cli.run_options(cli.parser().parse_args(["run", *argv]))
    assert options.webhook.admission_policy is expected


def test_where_the_webhook_keeps_empty_values_the_policy_looks_only_one_level_deep() -> None:
    """Absent and empty are alike two levels deep (`{creationTimestamp: null}` is empty), except under
    Volcano's `spec.plugins`, where `{env: []}` enables a plugin and is not `{}`."""
    volcano = policy._tree(
        VOLCANO_CONTRACT.updatable, (), VOLCANO_CONTRACT.detail, VOLCANO_CONTRACT.keep_empty
    )
    assert volcano.children["plugins"].keeps_empty and volcano.children["plugins"].is_leaf()
    [expression] = [
        v["expression"]
        for o in policy.policy_objects()
        if o["metadata"]["name"] == "jobwarden-updates.batch.volcano.sh" and o["kind"].endswith("Policy")
        for v in o["spec"]["variables"]
        if v["name"] == "specChanges"
    ]
    plugins = expression[expression.index("variables.newSpec[?'plugins']") :].split("? []")[0]
    assert "type(e) == map" not in plugins and "e == []" in plugins
    with pytest.raises(ValueError, match="keep-empty"):
        policy._tree([], keep_empty=["spec.tasks[*].x.*"])
