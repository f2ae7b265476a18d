"""CEL rules with Kubernetes' semantics (CRD docs: "Validation rules", "Transition rules")."""

from __future__ import annotations

from typing import Any

import pytest

from deepseek_operator.testing import cel


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        pytest.param("self.min <= self.max", {"min": 1, "max": 2}, True, id="compare"),
        pytest.param("has(self.foo)", {"min": 1}, False, id="has"),
        pytest.param("self.items.all(x, x.startsWith('a'))", {"items": ["ab", "ac"]}, True, id="all"),
        pytest.param("self.items.exists_one(x, x == 'ab')", {"items": ["ab", "ac"]}, True, id="exists-one"),
        pytest.param("self.items.filter(x, x != 'ab') == ['ac']", {"items": ["ab", "ac"]}, True, id="filter"),
        pytest.param("self.items.map(x, size(x)).all(n, n == 2)", {"items": ["ab", "ac"]}, True, id="map"),
        pytest.param(
            "self.name.matches('^[a-z]+$') && size(self.name) == 3", {"name": "abc"}, True, id="matches"
        ),
        pytest.param(
            "self.name.lowerAscii().split(',') == ['a', 'b']", {"name": "A,B"}, True, id="strings-ext"
        ),
        pytest.param("self.?missing.orValue(5) == 5", {}, True, id="optional"),
        pytest.param("self.n > 1.5", {"n": 2}, True, id="cross-type-numeric"),
        pytest.param("[1, 2, 3].isSorted() && [1, 2].sum() == 3", {}, True, id="k8s-lists"),
        pytest.param("self.s.find('[0-9]+') == '42'", {"s": "ab42c"}, True, id="k8s-regex"),
        pytest.param("math.greatest(1, 2) == 2", {}, True, id="math"),
    ],
)
def test_evaluate(rule: str, value: Any, expected: Any) -> None:
    assert cel.evaluate(rule, value) == expected


def test_compile_error() -> None:
    with pytest.raises(cel.CelError, match="Syntax error"):
        cel.compile_rule("self.a >")


def schema_with(rules: list[dict[str, Any]], **props: Any) -> dict[str, Any]:
    return {"type": "object", "x-kubernetes-validations": rules, "properties": props}


def messages(schema: dict[str, Any], value: Any, old: Any = None, path: str = "spec") -> list[str]:
    return [str(e) for e in cel.check_rules(schema, value, old, path)]


def test_default_message_names_the_rule() -> None:
    schema = schema_with([{"rule": "self.a > 0"}], a={"type": "integer"})
    assert messages(schema, {"a": 0}) == ['spec: Invalid value: "object": failed rule: self.a > 0']


def test_message_expression_and_field_path_and_reason() -> None:
    schema = schema_with(
        [
            {
                "rule": "self.a > 0",
                "messageExpression": "'a is ' + string(self.a)",
                "fieldPath": ".a",
                "reason": "FieldValueForbidden",
            }
        ],
        a={"type": "integer"},
    )
    errors = cel.check_rules(schema, {"a": 0}, None, "spec")
    assert [str(e) for e in errors] == ["spec.a: Forbidden: a is 0"]
    assert errors[0].cause()["reason"] == "FieldValueForbidden"


def test_transition_rule_runs_only_on_update() -> None:
    """Transition rules: rules using oldSelf are skipped on create."""
    schema = schema_with([{"rule": "self.a == oldSelf.a", "message": "a is immutable"}], a={"type": "string"})
    assert messages(schema, {"a": "x"}) == []
    assert messages(schema, {"a": "x"}, {"a": "x"}) == []
    assert messages(schema, {"a": "y"}, {"a": "x"}) == ['spec: Invalid value: "object": a is immutable']


def test_optional_old_self() -> None:
    schema = schema_with(
        [{"rule": "!oldSelf.hasValue() || self.a >= oldSelf.value().a", "optionalOldSelf": True}],
        a={"type": "integer"},
    )
    assert messages(schema, {"a": 1}) == []
    assert len(messages(schema, {"a": 1}, {"a": 2})) == 1


def test_rules_scope_self_to_their_node_and_list_items() -> None:
    schema = {
        "type": "object",
        "properties": {
            "groups": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {
                    "type": "object",
                    "x-kubernetes-validations": [{"rule": "self.size % 2 == 0", "message": "even"}],
                    "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
                },
            }
        },
    }
    value = {"groups": [{"name": "a", "size": 2}, {"name": "b", "size": 3}]}
    assert messages(schema, value) == ['spec.groups[1]: Invalid value: "object": even']


def test_property_names_are_escaped() -> None:
    schema = schema_with([{"rule": "self.max__dash__len > 0"}], **{"max-len": {"type": "integer"}})
    assert messages(schema, {"max-len": 1}) == []


def test_number_fields_are_doubles() -> None:
    schema = schema_with([{"rule": "type(self.r) == double"}], r={"type": "number"})
    assert messages(schema, {"r": 1}) == []


def test_evaluation_error_is_reported() -> None:
    schema = schema_with([{"rule": "self.missing == 1"}], a={"type": "integer"})
    (message,) = messages(schema, {"a": 1})
    assert message.startswith('spec: Invalid value: "object": failed rule: self.missing == 1: ')
