"""`devcluster down` as the test sessions use it: many clusters come and go in one pytest process."""

from __future__ import annotations

import os
from pathlib import Path

from devcluster import cluster as devcluster


def _zombie_children() -> list[str]:
    """This process's children that exited and were never waited for (state Z in /proc/PID/stat)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if state == "Z" and int(ppid) == os.getpid():
            found.append(stat.partition(")")[0] + ")")
    return found


def test_down_waits_for_the_components_it_started() -> None:
    before = _zombie_children()
    name = f"{os.environ.get('JOBWARDEN_TEST_CLUSTER', 'test')}-down"
    devcluster.up(name)
    devcluster.down(name)
    assert _zombie_children() == before, "every component of the stopped cluster is reaped"
