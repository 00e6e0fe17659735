"""kopf's WebhookServer with the two things the apiserver needs and kopf's server does not do:

- Reviews as large as the apiserver sends. An UPDATE review carries the object twice; objects may be
  up to etcd's ~1.5 MiB (the apiserver accepts request bodies up to 3 MiB), and JSON escaping can
  grow them further. aiohttp's default `client_max_size` is 1 MiB, which answered 413 to any job over
  ~0.5 MB being edited.
- A malformed review is a 400 that says what is wrong. kopf answers 400 only to unparseable JSON; any
  other shape (a list, a string `request`, `object: 5`, ...) raised inside kopf and became a bare 500
  (2,458 of 10,000 fuzzed bodies). The shape is checked first; a well-formed review is then answered
  by the pure engine directly (webhook.answer), without kopf's per-request handler pipeline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import aiohttp.web
import kopf

from jobwarden import kinds

logger = logging.getLogger(__name__)

# Twice the largest JSON request body the apiserver accepts (3 MiB), plus room for the envelope and
# for JSON escaping of the old and new object; anything larger is not a review the apiserver sent.
MAX_REVIEW_BYTES: Final = 16 * 1024 * 1024
# Nesting deeper than Python's recursion limit allows (no Kubernetes object comes close) makes json or
# the rule engine raise RecursionError, cleanly and at once; it is answered as a malformed body.
TOO_DEEP: Final = "the body nests too deeply"
API_VERSIONS: Final = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
OPERATIONS: Final = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class BadReview(ValueError):
    """What is wrong with a review body, in words for the 400's body."""


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise BadReview(problem)


def _is_str(mapping: Mapping[str, Any], key: str) -> bool:
    return isinstance(mapping.get(key), str)


def _check_object(request: Mapping[str, Any], key: str, needed: bool) -> None:
    value = request.get(key)
    if value is None:
        _require(not needed, f"request.{key} is required for {request['operation']}")
        return
    _require(isinstance(value, Mapping), f"request.{key} must be a JSON object")
    metadata = value.get("metadata", {})
    _require(isinstance(metadata, Mapping), f"request.{key}.metadata must be a JSON object")
    for field in ("name", "namespace", "uid", "generateName", "resourceVersion"):
        _require(
            metadata.get(field) is None or _is_str(metadata, field),
            f"request.{key}.metadata.{field} must be a string",
        )


def _check_request(request: Any) -> None:
    _require(isinstance(request, Mapping), "request must be a JSON object")
    _require(_is_str(request, "uid") and bool(request["uid"]), "request.uid must be a non-empty string")
    _require(
        request.get("operation") in OPERATIONS, f"request.operation must be one of {', '.join(OPERATIONS)}"
    )
    resource = request.get("resource")
    _require(isinstance(resource, Mapping), "request.resource must be a JSON object")
    _require(
        all(_is_str(resource, k) for k in ("group", "version", "resource")),
        "request.resource needs string group, version and resource",
    )
    plural = f"{resource['resource']}.{resource['group']}"
    _require(
        kinds.by_plural(resource["group"], resource["resource"]) is not None, f"{plural} is not served here"
    )
    _require(
        request.get("subResource") is None or _is_str(request, "subResource"),
        "request.subResource must be a string",
    )
    _require(isinstance(request.get("userInfo"), Mapping), "request.userInfo must be a JSON object")
    _require(isinstance(request.get("dryRun", False), bool), "request.dryRun must be a boolean")
    operation = request["operation"]
    _check_object(request, "object", operation in ("CREATE", "UPDATE"))
    _check_object(request, "oldObject", operation in ("UPDATE", "DELETE"))


def parse_review(raw: bytes) -> dict[str, Any]:
    """The review as data, or BadReview saying what is wrong with it."""
    try:
        review = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadReview(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise BadReview(f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadReview(TOO_DEEP) from None
    _require(isinstance(review, dict), "the body must be a JSON object (an AdmissionReview)")
    _require(
        review.get("kind") == "AdmissionReview" and review.get("apiVersion") in API_VERSIONS,
        f"the body must be an AdmissionReview of apiVersion {' or '.join(API_VERSIONS)}",
    )
    _check_request(review.get("request"))
    return dict(review)


def _bad_request(problem: str) -> aiohttp.web.Response:
    return aiohttp.web.Response(status=400, text=f"malformed AdmissionReview: {problem}\n")


Answer = Callable[[Mapping[str, Any]], dict[str, Any]]


class ReviewServer(kopf.WebhookServer):
    """kopf's TLS server, certificate reloading and routing; jobwarden's request handling: the body is
    checked, then `answer` (the pure rule engine) responds. kopf's own handler pipeline is not used
    per request (see webhook.answer)."""

    def __init__(self, answer: Answer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answer = answer

    async def _serve(self, fn: Any, request: aiohttp.web.Request) -> aiohttp.web.Response:  # type: ignore[override]
        request = request.clone(client_max_size=MAX_REVIEW_BYTES)
        try:
            review = parse_review(await request.read())
        except BadReview as exc:
            return _bad_request(str(exc))
        try:
            return aiohttp.web.json_response(self.answer(review))
        except RecursionError:
            return _bad_request(TOO_DEEP)
