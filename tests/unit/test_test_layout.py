"""The suite's own layout. pytest (rootdir-relative imports, no packages under tests/) refuses to
collect two test modules with one basename, which stops the whole run: twice this session a new
module shadowed another's name."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_a_name_of_its_own() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
