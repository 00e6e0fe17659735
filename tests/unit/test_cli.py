"""`jobwarden run` settings: flags win over JOBWARDEN_* variables; a malformed boolean is an error,
never a silent `false` (an empty JOBWARDEN_WEBHOOK must not turn admission off)."""

from __future__ import annotations

import pytest

from jobwarden.cli import parser, run_options


def options(argv: list[str]):  # type: ignore[no-untyped-def]
    return run_options(parser().parse_args(["run", *argv]))


def test_namespace_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWARDEN_NAMESPACES", "a, b")
    assert options([]).namespaces == ("a", "b")
    assert options(["-n", "x"]).namespaces == ("x",)
    assert options(["-A"]).namespaces == ()


@pytest.mark.parametrize(("value", "enabled"), [("", True), ("true", True), ("0", False), ("off", False)])
def test_webhook_switch(monkeypatch: pytest.MonkeyPatch, value: str, enabled: bool) -> None:
    monkeypatch.setenv("JOBWARDEN_WEBHOOK", value)
    assert options([]).webhook.enabled is enabled


def test_a_malformed_boolean_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWARDEN_WEBHOOK", "enabled")
    with pytest.raises(SystemExit, match="JOBWARDEN_WEBHOOK='enabled' is not a boolean"):
        parser()


def test_local_url_mode_generates_its_own_certificate() -> None:
    webhook = options(["--webhook-url", "https://127.0.0.1:9443"]).webhook
    assert webhook.self_signed and webhook.url == "https://127.0.0.1:9443"


def test_suspend_updates_are_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    assert options([]).allow_suspend_updates is False
    assert options(["--allow-suspend-updates"]).allow_suspend_updates is True
    monkeypatch.setenv("JOBWARDEN_ALLOW_SUSPEND_UPDATES", "true")
    assert options([]).allow_suspend_updates is True
    assert options(["--no-allow-suspend-updates"]).allow_suspend_updates is False


def test_gang_scheduler_and_pytorch_init_container_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = options([])
    assert (defaults.gang_scheduler, defaults.pytorch_init_image, defaults.pytorch_init_max_tries) == (
        "",
        "alpine:3.10",
        100,
    )
    assert dict(defaults.pytorch_init_resources) == {
        "limits.cpu": "100m",
        "limits.memory": "20Mi",
        "requests.cpu": "50m",
        "requests.memory": "10Mi",
    }
    monkeypatch.setenv("JOBWARDEN_GANG_SCHEDULER", "volcano")
    monkeypatch.setenv("JOBWARDEN_PYTORCH_INIT_CONTAINER_RESOURCES", "requests.cpu=10m")
    changed = options(["--pytorch-init-container-image", "busybox:1.36"])
    assert (changed.gang_scheduler, changed.pytorch_init_image) == ("volcano", "busybox:1.36")
    assert changed.pytorch_init_resources == (("requests.cpu", "10m"),)
    assert options(["--gang-scheduler", "none"]).gang_scheduler == ""


def test_malformed_init_container_resources_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        options(["--pytorch-init-container-resources", "cpu=100m"])
    assert "expected limits.<resource>=<quantity>" in capsys.readouterr().err


def test_a_misspelt_gang_scheduler_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWARDEN_GANG_SCHEDULER", "volcno")
    with pytest.raises(SystemExit, match="JOBWARDEN_GANG_SCHEDULER='volcno' is not one of none, volcano"):
        parser()


def test_malformed_init_container_resources_in_the_environment_are_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBWARDEN_PYTORCH_INIT_CONTAINER_RESOURCES", "limits.cpu=lots")
    with pytest.raises(SystemExit, match=r"JOBWARDEN_PYTORCH_INIT_CONTAINER_RESOURCES: 'limits\.cpu=lots'"):
        parser()


def test_volcano_jobs_setting_and_the_auto_decision() -> None:
    """Issue 14, 4(a): beside Volcano's own job controller (its CRD replaced ours), stand aside."""
    from jobwarden.shell.run import volcano_jobs_decision

    assert options([]).volcano_jobs == "auto"
    assert options(["--volcano-jobs", "off"]).volcano_jobs == "off"
    ours = {"labels": {"app.kubernetes.io/name": "jobwarden", "app.kubernetes.io/component": "crd"}}
    assert volcano_jobs_decision("auto", ours).serve is True
    assert volcano_jobs_decision("auto", None).serve is True  # not installed: nothing to stand aside for
    decision = volcano_jobs_decision("auto", {"labels": {"app.kubernetes.io/name": "volcano"}})
    assert decision.serve is False and not decision.taken_over
    assert "not jobwarden's" in decision.why and "jobs.batch.volcano.sh" in decision.why
    assert volcano_jobs_decision("on", {}).serve is True
    assert volcano_jobs_decision("off", ours).serve is False


@pytest.mark.parametrize(
    "marks",
    [
        {"annotations": {"controller-gen.kubebuilder.io/version": "v0.20.0"}},
        {"annotations": {"helm.sh/resource-policy": "keep"}},
        {"annotations": {"meta.helm.sh/release-name": "volcano"}},
        {"labels": {"app.kubernetes.io/managed-by": "Helm"}},
    ],
)
def test_auto_refuses_a_volcano_crd_under_jobwardens_label(marks: dict[str, dict[str, str]]) -> None:
    """Issue 25: jobwarden's manifests applied over Volcano's CRD add jobwarden's label and leave what
    Volcano's installation put there; `auto` must not take such a CRD over."""
    from jobwarden.shell.run import volcano_jobs_decision

    labels = {"app.kubernetes.io/name": "jobwarden", **marks.get("labels", {})}
    decision = volcano_jobs_decision("auto", {"labels": labels, "annotations": marks.get("annotations", {})})
    assert decision.serve is False and decision.taken_over
    assert "was not created by jobwarden" in decision.why and "overlays/beside-volcano" in decision.why
    assert volcano_jobs_decision("on", {"labels": labels, **marks}).serve is True  # the explicit override
