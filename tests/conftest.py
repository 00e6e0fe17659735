"""Rootdir conftest: puts the repository root on sys.path so tests can import `devcluster`."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The API fixtures (api_client, core, custom, namespace) both cluster tiers share; each tier's conftest
# defines the session `cluster` they are built on.
pytest_plugins = ["cluster_fixtures"]
