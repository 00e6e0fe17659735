"""`jobwarden validate`: the webhook's admission rules, offline, on manifest files.

    jobwarden validate FILE...                 CREATE rules for every document
    jobwarden validate --old OLD.yaml NEW.yaml  UPDATE rules: each NEW document against the OLD
                                               document with the same apiVersion/kind/namespace/name
    --allow-suspend-updates                    the contract of `jobwarden run --allow-suspend-updates`

Files hold YAML (several documents separated by `---`) or JSON; `-` reads standard input; a `kind:
List` is expanded into its items. One line per document:

    OK <kind>/<name>
    DENIED (<code>) <kind>/<name>: <message>     (400 malformed, 403 forbidden change)
    ERROR <kind>/<name>: <why it could not be checked, e.g. an unknown kind>

Exit status: 0 when every document is allowed, 1 otherwise, 2 for usage errors and unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from jobwarden.kinds.admission import DocumentReview, KindLookup, review_documents

EXIT_ALLOWED, EXIT_DENIED, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    pass


def main(argv: list[str], lookup: KindLookup | None = None) -> int:
    """Run `jobwarden validate` with the arguments after `validate`; `lookup` defaults to the kind
    registry (`jobwarden.kinds.by_kind`)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # argparse exits on --help (0) and on usage errors (2)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    try:
        new_docs = [doc for path in args.files for doc in load_documents(path)]
        old_docs = None if args.old is None else load_documents(args.old)
    except _UsageError as error:
        print(f"jobwarden validate: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not new_docs:
        print("jobwarden validate: no documents to validate", file=sys.stderr)
        return EXIT_USAGE
    results = review_documents(new_docs, old_docs, lookup or _registry_lookup(args.allow_suspend_updates))
    for result in results:
        print(format_result(result))
    return EXIT_ALLOWED if all(r.allowed for r in results) else EXIT_DENIED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobwarden validate",
        description="Check job manifests against jobwarden's admission rules, without a cluster.",
    )
    parser.add_argument("--old", metavar="OLD", help="the stored objects: check FILEs as updates of these")
    parser.add_argument(
        "--allow-suspend-updates",
        action="store_true",
        help="judge updates as `run --allow-suspend-updates` does: spec.runPolicy.suspend may change",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML or JSON manifests, '-' for stdin")
    return parser


def _registry_lookup(allow_suspend_updates: bool) -> KindLookup:
    # Imported here so that `--help` and usage errors work even without the kind modules.
    from jobwarden.kinds import by_kind, registry

    job_kinds = registry(allow_suspend_updates)
    return lambda api_version, kind: by_kind(api_version, kind, job_kinds)


def format_result(result: DocumentReview) -> str:
    if result.verdict is None:
        return f"ERROR {result.label}: {result.problem}"
    if result.verdict.allowed:
        return f"OK {result.label}"
    return f"DENIED ({result.verdict.code}) {result.label}: {result.verdict.message}"


def load_documents(path: str) -> list[Any]:
    """Every object in a YAML stream or JSON file, with `kind: List` expanded and empty documents skipped."""
    text = _read(path)
    try:
        documents = _parse(text)
    except (yaml.YAMLError, ValueError) as error:
        raise _UsageError(f"{path}: cannot parse: {error}") from error
    return [item for doc in documents if doc is not None for item in _expand_list(doc)]


def _read(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except (OSError, UnicodeDecodeError) as error:
        raise _UsageError(f"{path}: {error}") from error


def _parse(text: str) -> list[Any]:
    if text.lstrip().startswith(("{", "[")):
        try:  # JSON proper: YAML 1.1 rejects some valid JSON, e.g. tab indentation
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            return parsed if isinstance(parsed, list) else [parsed]
    return list(yaml.safe_load_all(text))


def _expand_list(doc: Any) -> list[Any]:
    if isinstance(doc, Mapping) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        return list(doc["items"])
    return [doc]
