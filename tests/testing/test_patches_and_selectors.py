"""Patch flavours and selectors as pure functions (RFC 6902, RFC 7386, strategic merge, labels)."""

from __future__ import annotations

from typing import Any

import pytest

from deepseek_operator.testing.patches import PatchError, json_patch, merge_patch, strategic_merge_patch
from deepseek_operator.testing.selectors import FieldSelector, LabelSelector, SelectorError

DOC: dict[str, Any] = {"a": {"b": [1, 2, 3]}, "c": "x"}


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        pytest.param(
            [{"op": "add", "path": "/a/b/-", "value": 4}], {"a": {"b": [1, 2, 3, 4]}, "c": "x"}, id="append"
        ),
        pytest.param([{"op": "remove", "path": "/a/b/0"}], {"a": {"b": [2, 3]}, "c": "x"}, id="remove"),
        pytest.param(
            [{"op": "replace", "path": "/c", "value": "y"}], {"a": {"b": [1, 2, 3]}, "c": "y"}, id="replace"
        ),
        pytest.param(
            [{"op": "move", "from": "/c", "path": "/d"}], {"a": {"b": [1, 2, 3]}, "d": "x"}, id="move"
        ),
        pytest.param(
            [{"op": "copy", "from": "/c", "path": "/a/e"}],
            {"a": {"b": [1, 2, 3], "e": "x"}, "c": "x"},
            id="copy",
        ),
        pytest.param(
            [{"op": "add", "path": "/x~1y", "value": 1}],
            {"a": {"b": [1, 2, 3]}, "c": "x", "x/y": 1},
            id="escaped",
        ),
    ],
)
def test_json_patch(ops: list[dict[str, Any]], expected: Any) -> None:
    assert json_patch(DOC, ops) == expected


@pytest.mark.parametrize(
    "ops",
    [
        pytest.param([{"op": "test", "path": "/c", "value": "no"}], id="failed-test"),
        pytest.param([{"op": "remove", "path": "/missing"}], id="missing-path"),
        pytest.param([{"op": "add", "path": "/a/b/9", "value": 0}], id="out-of-bounds"),
    ],
)
def test_json_patch_errors(ops: list[dict[str, Any]]) -> None:
    with pytest.raises(PatchError):
        json_patch(DOC, ops)


def test_merge_patch_replaces_lists_and_deletes_nulls() -> None:
    assert merge_patch(DOC, {"a": {"b": [9]}, "c": None}) == {"a": {"b": [9]}}


KEYS = {"spec.containers": "name", "spec.containers[].env": "name"}


def pod(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"containers": list(containers)}}


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        pytest.param(
            pod({"name": "b", "image": "b:2"}),
            pod({"name": "a", "image": "a"}, {"name": "b", "image": "b:2"}),
            id="merge-by-key",
        ),
        pytest.param(
            pod({"name": "a", "$patch": "delete"}), pod({"name": "b", "image": "b"}), id="delete-item"
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "z"}, {"$patch": "replace"}]}},
            pod({"name": "z"}),
            id="replace-list",
        ),
        pytest.param(
            pod({"name": "a", "env": [{"name": "X", "value": "1"}]}),
            pod(
                {"name": "a", "image": "a", "env": [{"name": "X", "value": "1"}]}, {"name": "b", "image": "b"}
            ),
            id="nested-list",
        ),
    ],
)
def test_strategic_merge_patch(patch: dict[str, Any], expected: dict[str, Any]) -> None:
    live = pod({"name": "a", "image": "a"}, {"name": "b", "image": "b"})
    assert strategic_merge_patch(live, patch, KEYS) == expected


def test_strategic_merge_patch_primitive_lists() -> None:
    live = {"metadata": {"finalizers": ["a", "b"]}}
    assert strategic_merge_patch(live, {"metadata": {"finalizers": ["c"]}}, {}) == {
        "metadata": {"finalizers": ["a", "b", "c"]}
    }
    assert strategic_merge_patch(live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, {}) == {
        "metadata": {"finalizers": ["b"]}
    }


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a==b,c", {"a": "b"}, False),
        ("a in (x, y)", {"a": "y"}, True),
        ("a notin (x)", {}, True),
        ("!a", {"a": "1"}, False),
        ("a>3", {"a": "4"}, True),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selector(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector(selector).matches(labels) is expected


def test_selector_errors() -> None:
    with pytest.raises(SelectorError):
        LabelSelector("a in (x")
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.x"):
        FieldSelector("spec.x=1", ())
    assert FieldSelector("status.phase!=Running", ("status.phase",)).matches({"status": {"phase": "Pending"}})
