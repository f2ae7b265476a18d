"""``check_structural`` against the rules ``apiextensions.k8s.io/v1`` enforces on CRD schemas.

Each expectation is the server's own message for that schema (``apiextensions-apiserver``
``validation.go`` / ``schema/validation.go``), the way ``kubectl apply`` of such a CRD reports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deepseek_operator.testing.structural import check_structural

KUBERAY = Path(__file__).resolve().parents[3] / "shared" / "kuberay-crds" / "v1.7.0"
ROOT = "openAPIV3Schema"


def obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


CASES = [
    pytest.param(
        obj(spec={"properties": {"a": {"type": "string"}}}),
        f"{ROOT}.properties[spec].type: Required value: must not be empty for specified object fields",
        id="missing-type",
    ),
    pytest.param(
        obj(spec={"type": "array"}),
        f"{ROOT}.properties[spec].items: Required value: must be specified",
        id="array-without-items",
    ),
    pytest.param(
        obj(spec={"type": "array", "items": [{"type": "string"}]}),
        f"{ROOT}.properties[spec].items: Forbidden: items must be a schema object and not an array",
        id="items-tuple",
    ),
    pytest.param(
        obj(
            spec={
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            }
        ),
        f"{ROOT}.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
        id="props-and-additional",
    ),
    pytest.param(
        obj(spec={"type": "array", "uniqueItems": True, "items": {"type": "string"}}),
        f"{ROOT}.properties[spec].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        id="unique-items",
    ),
    pytest.param(
        obj(spec={"$ref": "#/definitions/x"}),
        f"{ROOT}.properties[spec].$ref: Forbidden: $ref is not supported",
        id="ref",
    ),
    pytest.param(
        obj(spec={"type": "null"}),
        f"{ROOT}.properties[spec].type: Forbidden: type cannot be set to null, use nullable as an alternative",
        id="type-null",
    ),
    pytest.param(
        obj(spec={"type": "integer", "minimum": 0, "exclusiveMinimum": 1}),
        f"{ROOT}.properties[spec].exclusiveMinimum: Invalid value: 1: cannot unmarshal integer into a field of type bool",
        id="exclusive-minimum-is-bool",
    ),
    pytest.param(
        obj(spec={"type": "string", "fooBar": 1}),
        f'{ROOT}.properties[spec].fooBar: Forbidden: unknown field "fooBar"',
        id="unknown-keyword",
    ),
    pytest.param(
        obj(spec={"type": "string", "x-kubernetes-preserve-unknown-fields": False}),
        f"{ROOT}.properties[spec].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined",
        id="preserve-false",
    ),
    pytest.param(
        {"type": "object", "additionalProperties": {"type": "string"}},
        f"{ROOT}.additionalProperties: Forbidden: must not be used at the root",
        id="root-additional",
    ),
    pytest.param(
        {"type": "string"},
        f'{ROOT}.type: Invalid value: "string": must be object at the root',
        id="root-not-object",
    ),
    pytest.param(
        obj(metadata={"type": "object", "properties": {"labels": {"type": "object"}}}),
        f"{ROOT}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
        id="metadata-restricted",
    ),
    pytest.param(
        obj(spec={"type": "string", "anyOf": [{"type": "string"}]}),
        f"{ROOT}.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural",
        id="type-in-anyof",
    ),
    pytest.param(
        obj(spec={"type": "string", "oneOf": [{"description": "x"}]}),
        f"{ROOT}.properties[spec].oneOf[0].description: Forbidden: must be empty to be structural",
        id="description-in-oneof",
    ),
    pytest.param(
        obj(spec={"type": "object", "allOf": [{"properties": {"b": {}}}]}),
        f"{ROOT}.properties[spec].properties[b]: Required value: because it is defined in {ROOT}.properties[spec].allOf[0].properties[b]",
        id="completeness",
    ),
    pytest.param(
        obj(spec={"type": "string", "default": 5}),
        f'{ROOT}.properties[spec].default: Invalid value: 5: {ROOT}.properties[spec].default in body must be of type string: "integer"',
        id="default-invalid",
    ),
    pytest.param(
        obj(spec={"type": "object", "properties": {"a": {"type": "string"}}, "default": {"b": "x"}}),
        f'{ROOT}.properties[spec].default: Invalid value: {{"b":"x"}}: must not have unknown fields',
        id="default-not-pruned",
    ),
    pytest.param(
        obj(metadata={"type": "object", "default": {"name": "x"}}),
        f"{ROOT}.properties[metadata].default: Forbidden: must not be set in top-level metadata",
        id="default-in-metadata",
    ),
    pytest.param(
        obj(
            spec={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "items": {"type": "object", "properties": {"n": {"type": "string"}}},
            }
        ),
        f"{ROOT}.properties[spec].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map",
        id="map-without-keys",
    ),
    pytest.param(
        obj(
            spec={
                "type": "array",
                "x-kubernetes-list-map-keys": ["n"],
                "items": {"type": "object", "required": ["n"], "properties": {"n": {"type": "string"}}},
            }
        ),
        f"{ROOT}.properties[spec].x-kubernetes-list-type: Required value: must be map if x-kubernetes-list-map-keys is non-empty",
        id="keys-without-map",
    ),
    pytest.param(
        obj(
            spec={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["n"],
                "items": {"type": "object", "properties": {"n": {"type": "string"}}},
            }
        ),
        f"{ROOT}.properties[spec].items.properties[n].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
        id="map-key-optional",
    ),
    pytest.param(
        obj(spec={"type": "string", "x-kubernetes-list-type": "set"}),
        f'{ROOT}.properties[spec].type: Invalid value: "string": must be array if x-kubernetes-list-type is specified',
        id="list-type-on-string",
    ),
    pytest.param(
        obj(spec={"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}}),
        f'{ROOT}.properties[spec].x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", "map"',
        id="list-type-unknown",
    ),
    pytest.param(
        obj(spec={"type": "object", "x-kubernetes-validations": [{"rule": "self.a >"}]}),
        f'{ROOT}.properties[spec].x-kubernetes-validations[0].rule: Invalid value: "self.a >": compilation failed',
        id="cel-syntax",
    ),
    pytest.param(
        obj(spec={"type": "object", "x-kubernetes-validations": [{"rule": "true", "reason": "Bad"}]}),
        f'{ROOT}.properties[spec].x-kubernetes-validations[0].reason: Unsupported value: "Bad"',
        id="cel-reason",
    ),
    pytest.param(
        obj(
            spec={
                "type": "array",
                "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]},
            }
        ),
        f'{ROOT}.properties[spec].items.x-kubernetes-validations[0].rule: Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema within {ROOT}.properties[spec]',
        id="oldself-in-atomic-list",
    ),
    pytest.param(
        obj(spec={"type": "object", "x-kubernetes-validations": [{"rule": "true", "fieldPath": ".nope"}]}),
        f'{ROOT}.properties[spec].x-kubernetes-validations[0].fieldPath: Invalid value: ".nope": fieldPath must be a valid path',
        id="cel-field-path",
    ),
]


@pytest.mark.parametrize(("schema", "message"), CASES)
def test_rejected(schema: dict[str, Any], message: str) -> None:
    errors = check_structural(schema)
    assert any(e.startswith(message) for e in errors), errors


ACCEPTED = [
    pytest.param(
        obj(spec={"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}),
        id="int-or-string-anyof",
    ),
    pytest.param(
        obj(spec={"type": "object", "x-kubernetes-preserve-unknown-fields": True}), id="preserve-unknown"
    ),
    pytest.param(
        obj(metadata={"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}}),
        id="metadata-name-only",
    ),
    pytest.param(
        obj(spec={"type": "object", "properties": {"a": {"type": "integer", "default": 3}}, "default": {}}),
        id="nested-defaults",
    ),
    pytest.param(
        obj(
            spec={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["n"],
                "items": {"type": "object", "required": ["n"], "properties": {"n": {"type": "string"}}},
            }
        ),
        id="list-map",
    ),
    pytest.param(
        obj(
            spec={
                "type": "object",
                "properties": {"a": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.a == oldSelf.a", "message": "immutable"}],
            }
        ),
        id="transition-rule",
    ),
]


@pytest.mark.parametrize("schema", ACCEPTED)
def test_accepted(schema: dict[str, Any]) -> None:
    assert check_structural(schema) == []


@pytest.mark.parametrize("name", ["ray.io_rayclusters.yaml", "ray.io_rayservices.yaml"])
def test_kuberay_crds_are_structural(name: str) -> None:
    """KubeRay's real CRDs are accepted by real servers, so they must pass here too."""
    crd = yaml.safe_load((KUBERAY / name).read_text())
    for i, version in enumerate(crd["spec"]["versions"]):
        path = f"spec.versions[{i}].schema.openAPIV3Schema"
        status = "status" in (version.get("subresources") or {})
        assert check_structural(version["schema"]["openAPIV3Schema"], path, status_subresource=status) == []


def test_messages_carry_the_given_path() -> None:
    errors = check_structural(obj(spec={}), "spec.versions[0].schema.openAPIV3Schema")
    assert errors == [
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: "
        "must not be empty for specified object fields"
    ]
