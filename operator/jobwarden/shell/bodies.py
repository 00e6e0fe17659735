"""kopf hands objects over as live `Body` views; the pure layers get plain, independent copies."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """A deep copy made of dicts, lists and scalars only."""
    if hasattr(value, "items"):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def plain_body(body: Any) -> dict[str, Any]:
    """A plain copy without `metadata.managedFields`: the core never reads them, the cache of every
    job would hold them, and a status replace that omits them leaves them as they are."""
    copied: dict[str, Any] = plain(body)
    metadata = copied.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return copied
