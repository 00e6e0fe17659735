"""What the webhook server says about a review body before kopf sees it (shell/webhook_server.py): a
well-formed review passes unchanged, anything else is a BadReview naming what is wrong. The endpoint
itself is fuzzed through TLS in tests/integration/test_admission_availability.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobwarden.shell import webhook
from jobwarden.shell.webhook_server import TOO_DEEP, BadReview, parse_review


def review(**request: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "1",
            "operation": "UPDATE",
            "resource": {"group": "kubeflow.org", "version": "v1", "resource": "tfjobs"},
            "userInfo": {"username": "alice"},
            "object": {"metadata": {"name": "a"}, "spec": {}},
            "oldObject": {"metadata": {"name": "a"}, "spec": {}},
        },
    }
    body["request"].update(request)
    return body


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_a_well_formed_review_passes_unchanged() -> None:
    assert parse_review(encode(review())) == review()
    assert parse_review(encode(review(operation="CREATE", oldObject=None)))["request"]["oldObject"] is None


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def test_the_answer_to_a_deeply_nested_object_is_prompt_and_never_an_unexpected_error() -> None:
    """Nesting json can still parse but the engine cannot walk raises RecursionError (the server turns
    it into a 400); anything shallower gets a verdict."""
    for depth in (50, 500, 900):
        body = encode(review(object={"metadata": {"name": "a"}, "spec": {"tfReplicaSpecs": nested(depth)}}))
        try:
            answered = webhook.answer(parse_review(body))
        except RecursionError:
            continue
        assert answered["response"]["allowed"] is False  # a malformed replica spec


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{", "not JSON"),
        (b"", "not JSON"),
        (encode([1, 2]), "must be a JSON object"),
        (encode({"kind": "Pod"}), "must be an AdmissionReview"),
        (encode({**review(), "request": "x"}), "request must be a JSON object"),
        (encode(review(uid=5)), "request.uid must be a non-empty string"),
        (encode(review(operation="PATCH")), "request.operation must be one of"),
        (encode(review(resource={"group": "", "version": "v1", "resource": "pods"})), "pods. is not served"),
        (encode(review(resource=[])), "request.resource must be a JSON object"),
        (encode(review(userInfo=None)), "request.userInfo must be a JSON object"),
        (encode(review(object=5)), "request.object must be a JSON object"),
        (encode(review(oldObject=None)), "request.oldObject is required for UPDATE"),
        (encode(review(object={"metadata": "m"})), "request.object.metadata must be a JSON object"),
        (encode(review(object={"metadata": {"name": 1}})), "request.object.metadata.name must be a string"),
        (encode(review(dryRun="yes")), "request.dryRun must be a boolean"),
        (b"[" * 100_000 + b"]" * 100_000, TOO_DEEP),
    ],
)
def test_a_malformed_review_says_what_is_wrong(body: bytes, problem: str) -> None:
    with pytest.raises(BadReview, match=problem.replace(".", r"\.").replace("(", r"\(")):
        parse_review(body)


def test_the_answer_is_the_engines_verdict_in_an_admission_response() -> None:
    allowed = webhook.answer(review())
    assert allowed == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "1", "allowed": True},
    }
    old = {"metadata": {"name": "a"}, "spec": {"backoffLimit": 1}}
    new = {"metadata": {"name": "a"}, "spec": {"backoffLimit": 2}}
    denied = webhook.answer(review(object=new, oldObject=old))["response"]
    assert denied["allowed"] is False and denied["status"]["code"] == 403
    assert denied["status"]["message"].startswith("spec.backoffLimit: field is not updatable")
    created = webhook.answer(review(operation="CREATE", oldObject=None, object={"metadata": {"name": "a"}}))
    assert created["response"]["status"]["code"] == 400
    deleted = webhook.answer(review(operation="DELETE", object=None))
    assert deleted["response"] == {"uid": "1", "allowed": True}
