"""The diff skips subtrees that are equal as JSON, and only those."""

from __future__ import annotations

from jobwarden.core.admission import changed_paths, strictly_equal


def test_json_types_are_told_apart() -> None:
    assert strictly_equal({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "x"}]})
    assert not strictly_equal(True, 1)
    assert not strictly_equal({"hostNetwork": True}, {"hostNetwork": 1})
    assert not strictly_equal([1.0], [1])


def test_a_bool_that_became_an_int_is_still_a_change() -> None:
    old = {"spec": {"template": {"spec": {"hostNetwork": True}}}}
    new = {"spec": {"template": {"spec": {"hostNetwork": 1}}}}
    assert changed_paths(old, new) == [("spec", "template", "spec", "hostNetwork")]


def test_equal_subtrees_are_not_walked_but_changes_beside_them_are_found() -> None:
    template = {"spec": {"containers": [{"name": "c", "image": "i"}]}}
    old = {"spec": {"a": template, "b": 1}}
    new = {"spec": {"a": template, "b": 2}}
    assert changed_paths(old, new) == [("spec", "b")]
