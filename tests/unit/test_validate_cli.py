"""`jobwarden validate`: the admission rules offline, on files built from the seed bodies."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobwarden.shell.validate_cmd import main

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
UPDATABLE_KUBEFLOW = (
    "updatable fields: metadata.labels, metadata.annotations, spec.activeDeadlineSeconds, "
    "spec.ttlSecondsAfterFinished, spec.cleanPodPolicy, spec.runPolicy.activeDeadlineSeconds, "
    "spec.runPolicy.ttlSecondsAfterFinished, spec.runPolicy.cleanPodPolicy"
)


def seed(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SEEDS / f"{name}-put.request.json").read_text())
    return body


def write(tmp_path: Path, name: str, *docs: Any) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_every_seed_in_one_multi_document_file_is_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = [seed(n) for n in ("tfjob", "pytorchjob", "mxjob", "volcanojob")]
    path = tmp_path / "all.yaml"
    path.write_text("---\n" + "\n---\n".join(yaml.safe_dump(d) for d in docs) + "\n---\n")  # empty docs too
    assert run([str(path)], capsys) == (
        0,
        [
            "OK TFJob/tfjob-test",
            "OK PyTorchJob/pytorch-test",
            "OK MXJob/mxnet-job",
            "OK Job/openmpi-hello-2-com",
        ],
        "",
    )


def test_json_files_and_lists_are_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [seed("mxjob")]}, indent="\t"))
    code, lines, _ = run([str(SEEDS / "tfjob-put.request.json"), str(listed)], capsys)
    assert (code, lines) == (0, ["OK TFJob/tfjob-test", "OK MXJob/mxnet-job"])


def test_an_invalid_job_is_denied_with_400(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = seed("tfjob")
    job["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] = -1
    code, lines, _ = run([write(tmp_path, "bad.yaml", seed("pytorchjob"), job)], capsys)
    assert code == 1
    assert lines == [
        "OK PyTorchJob/pytorch-test",
        "DENIED (400) TFJob/tfjob-test: spec.tfReplicaSpecs.Worker.replicas: Invalid value: -1: must be "
        "greater than or equal to 0",
    ]


def test_an_unknown_kind_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    code, lines, _ = run([write(tmp_path, "d.yaml", deployment, seed("tfjob"))], capsys)
    assert code == 1
    assert lines == [
        'ERROR Deployment/web: unknown kind "Deployment" in apiVersion "apps/v1"',
        "OK TFJob/tfjob-test",
    ]


def test_a_document_that_is_not_an_object_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patch = str(SEEDS / "pytorchjob-patch.request.json")  # a merge patch, not an object
    code, lines, _ = run([patch, write(tmp_path, "s.yaml", "just text")], capsys)
    assert (code, lines) == (
        1,
        [
            "ERROR ?/?: not a Kubernetes object: apiVersion and kind are required",
            'ERROR ?/?: not a Kubernetes object: "just text"',
        ],
    )


def test_update_rules_with_old(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = seed("tfjob")
    new = copy.deepcopy(old)
    new["spec"]["ttlSecondsAfterFinished"] = 99
    assert run(["--old", write(tmp_path, "old.yaml", old), write(tmp_path, "new.yaml", new)], capsys)[:2] == (
        0,
        ["OK TFJob/tfjob-test"],
    )
    new["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["image"] = "tf:2"
    new["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] = 4
    code, lines, _ = run(
        ["--old", write(tmp_path, "old.yaml", old), write(tmp_path, "new.yaml", new)], capsys
    )
    assert code == 1
    assert lines == [
        "DENIED (403) TFJob/tfjob-test: "
        f"spec.tfReplicaSpecs.Worker.replicas: field is not updatable; {UPDATABLE_KUBEFLOW}; "
        "spec.tfReplicaSpecs.Worker.template.spec.containers[0].image: "
        f"field is not updatable; {UPDATABLE_KUBEFLOW}"
    ]


def test_volcano_scale_is_allowed_and_a_new_task_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = seed("volcanojob")
    old = copy.deepcopy(new)
    old["spec"]["tasks"][1]["replicas"] = 1
    old_file = write(tmp_path, "old.yaml", old)
    assert run(["--old", old_file, write(tmp_path, "new.yaml", new)], capsys)[:2] == (
        0,
        ["OK Job/openmpi-hello-2-com"],
    )
    new["spec"]["tasks"].append({**new["spec"]["tasks"][1], "name": "extra"})
    code, lines, _ = run(["--old", old_file, write(tmp_path, "new.yaml", new)], capsys)
    assert (code, lines) == (
        1,
        [
            "DENIED (403) Job/openmpi-hello-2-com: spec.tasks: job updates may not add or remove tasks "
            "(before: [mpimaster, mpiworker], after: [mpimaster, mpiworker, extra]), only scale them with "
            "spec.tasks[*].replicas; updatable fields: metadata.labels, metadata.annotations, "
            "metadata.generateName, spec.tasks[*].replicas, spec.tasks[*].template"
        ],
    )


def test_a_new_document_without_an_old_one_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, _ = run(
        ["--old", write(tmp_path, "old.yaml", seed("mxjob")), write(tmp_path, "new.yaml", seed("tfjob"))],
        capsys,
    )
    assert (code, lines) == (
        1,
        ["ERROR TFJob/tfjob-test: no old document with the same apiVersion, kind, namespace and name"],
    )


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(seed("pytorchjob"))))
    assert run(["-"], capsys) == (0, ["OK PyTorchJob/pytorch-test"], "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: FILE"),
        (["/nonexistent/job.yaml"], "/nonexistent/job.yaml: [Errno 2] No such file or directory"),
        (["--old"], "argument --old: expected one argument"),
    ],
)
def test_usage_and_io_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = run(argv, capsys)
    assert (code, lines) == (2, [])
    assert message in err


def test_unparseable_and_empty_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    code, _, err = run([str(broken)], capsys)
    assert code == 2 and f"{broken}: cannot parse" in err
    empty = tmp_path / "empty.yaml"
    empty.write_text("---\n")
    assert run([str(empty)], capsys) == (2, [], "jobwarden validate: no documents to validate\n")


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(["--help"], capsys)
    assert code == 0 and lines[0].startswith("usage: jobwarden validate")


def test_the_console_script_dispatches_here(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jobwarden.cli import main as cli_main

    assert cli_main(["validate", write(tmp_path, "j.yaml", seed("mxjob"))]) == 0
    assert capsys.readouterr().out == "OK MXJob/mxnet-job\n"


EXAMPLES = Path(__file__).resolve().parents[2] / "devcluster" / "examples"


def test_the_v1_9_4_kinds_are_validated_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(EXAMPLES / f"{name}.json") for name in ("xgboostjob", "paddlejob", "jaxjob")]
    assert run(files, capsys)[:2] == (
        0,
        ["OK XGBoostJob/xgboost-test", "OK PaddleJob/paddle-test", "OK JAXJob/jax-test"],
    )
    xgboost: dict[str, Any] = json.loads((EXAMPLES / "xgboostjob.json").read_text())
    no_master = copy.deepcopy(xgboost)
    del no_master["spec"]["xgbReplicaSpecs"]["Master"]
    code, lines, _ = run([write(tmp_path, "bad.yaml", no_master)], capsys)
    assert (code, lines) == (
        1,
        [
            "DENIED (400) XGBoostJob/xgboost-test: "
            "spec.xgbReplicaSpecs.Master: Required value: must be present"
        ],
    )
    scaled = copy.deepcopy(xgboost)
    scaled["spec"]["xgbReplicaSpecs"]["Worker"]["replicas"] = 4
    old, new = write(tmp_path, "old.yaml", xgboost), write(tmp_path, "new.yaml", scaled)
    code, lines, _ = run(["--old", old, new], capsys)
    assert code == 1
    assert lines[0].startswith(
        "DENIED (403) XGBoostJob/xgboost-test: spec.xgbReplicaSpecs.Worker.replicas: field is not updatable"
    )


def _mpijob(**launcher: Any) -> dict[str, Any]:
    container = {"name": "mpi", "image": "mpi-pi"}
    return {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": {"name": "pi"},
        "spec": {
            "mpiReplicaSpecs": {
                "Launcher": {**launcher, "template": {"spec": {"containers": [container]}}},
                "Worker": {"replicas": 2, "template": {"spec": {"containers": [container]}}},
            }
        },
    }


def test_mpijobs_are_validated_and_their_updates_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok, bad = _mpijob(), _mpijob(replicas=2)
    code, lines, _ = run([write(tmp_path, "mpi.yaml", ok, bad)], capsys)
    assert code == 1
    assert lines == [
        "OK MPIJob/pi",
        "DENIED (400) MPIJob/pi: spec.mpiReplicaSpecs[Launcher].replicas: Invalid value: 2: must be 1",
    ]
    scaled = copy.deepcopy(ok)
    scaled["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"] = 3
    old = write(tmp_path, "old.yaml", ok)
    code, lines, _ = run(["--old", old, write(tmp_path, "new.yaml", scaled)], capsys)
    assert code == 1
    assert lines == [
        "DENIED (403) MPIJob/pi: spec.mpiReplicaSpecs.Worker.replicas: field is not updatable; "
        + UPDATABLE_KUBEFLOW
    ]
