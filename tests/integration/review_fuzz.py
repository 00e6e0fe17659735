"""Random and malformed AdmissionReview bodies for fuzzing the webhook endpoint: real reviews of the
seed jobs with one part replaced by a value of the wrong type, random JSON, deep nesting, huge strings,
truncated JSON and bytes that are not JSON at all. Deterministic for a given random.Random.

`python tests/integration/review_fuzz.py URL COUNT` posts them to any endpoint and prints the answers'
status counts (used to measure kopf's own server, before jobwarden's, on the same bodies)."""

from __future__ import annotations

import copy
import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
RESOURCES = {
    "tfjob": ("kubeflow.org", "v1", "tfjobs"),
    "pytorchjob": ("kubeflow.org", "v1", "pytorchjobs"),
    "mxjob": ("kubeflow.org", "v1", "mxjobs"),
    "volcanojob": ("batch.volcano.sh", "v1alpha1", "jobs"),
}


def seed_review(rng: random.Random) -> dict[str, Any]:
    name = rng.choice(sorted(RESOURCES))
    job = json.loads((SEEDS / f"{name}-put.request.json").read_text())
    group, version, plural = RESOURCES[name]
    operation = rng.choice(["CREATE", "UPDATE"])
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"fuzz-{rng.randrange(10**9)}",
            "kind": {"group": group, "version": version, "kind": job["kind"]},
            "resource": {"group": group, "version": version, "resource": plural},
            "name": job["metadata"]["name"],
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "fuzz"},
            "object": job,
            "oldObject": copy.deepcopy(job) if operation == "UPDATE" else None,
            "dryRun": False,
        },
    }


def random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.5:
        return rng.choice([None, True, False, 0, -1, 2**63, 1.5, "", "x", "UPDATE", [], {}])
    if roll < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["request", "object", "metadata", "spec", "uid", "kind", "apiVersion", "operation", "name"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*path, index))


def wrong_type(rng: random.Random) -> bytes:
    """A real review with one part (anywhere, envelope included) replaced or removed."""
    review = seed_review(rng)
    *parent_path, last = rng.choice([p for p in paths(review) if p])
    parent: Any = review
    for segment in parent_path:
        parent = parent[segment]
    if rng.random() < 0.2 and isinstance(parent, dict):
        del parent[last]
    else:
        parent[last] = random_json(rng)
    return json.dumps(review).encode()


def deep(rng: random.Random) -> bytes:
    depth = rng.choice([50, 99, 101, 500, 5000, 50_000])
    review = seed_review(rng)
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    review["request"]["object"]["spec"] = "@@"
    text = json.dumps(review)
    return text.replace('"@@"', opener * depth + "1" + closer * depth).encode()


def huge(rng: random.Random) -> bytes:
    review = seed_review(rng)
    review["request"]["object"]["metadata"]["annotations"] = {
        "a": "x" * rng.choice([10**5, 10**6, 3 * 10**6])
    }
    return json.dumps(review).encode()


def not_json(rng: random.Random) -> bytes:
    text = json.dumps(seed_review(rng)).encode()
    return rng.choice(
        [
            text[: rng.randrange(len(text))],
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))),
            b"",
            b"\xff" + text,
            text.replace(b'"', b"'", 3),
        ]
    )


def valid(rng: random.Random) -> bytes:
    return json.dumps(seed_review(rng)).encode()


def random_body(rng: random.Random) -> bytes:
    return json.dumps(random_json(rng)).encode()


GENERATORS: list[tuple[Callable[[random.Random], bytes], float]] = [
    (wrong_type, 0.55),
    (random_body, 0.15),
    (not_json, 0.12),
    (valid, 0.1),
    (deep, 0.06),
    (huge, 0.02),
]


def fuzz_bodies(count: int, rng: random.Random) -> Iterator[bytes]:
    makers, weights = zip(*GENERATORS, strict=True)
    for _ in range(count):
        yield rng.choices(makers, weights)[0](rng)


def main(url: str, count: int) -> None:
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    http = urllib3.PoolManager(cert_reqs="CERT_NONE", retries=False, timeout=10)
    statuses: Counter[int] = Counter()
    for body in fuzz_bodies(count, random.Random(11)):
        statuses[http.request("POST", url, body=body).status] += 1
    print(dict(sorted(statuses.items())))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
