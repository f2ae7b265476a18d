"""The rules an ``apiextensions.k8s.io/v1`` API server enforces on a CRD's ``openAPIV3Schema``.

A schema that breaks one is refused on CRD create/update with ``422 Invalid``; ``check_structural``
returns those messages, ``"<path>: <problem>"``, worded like the server's (from
``apiextensions/validation/validation.go`` and ``apiserver/schema/validation.go``):

- keywords: unknown ones and those Kubernetes does not support (``$ref``, ``definitions``,
  ``patternProperties``, ``dependencies``, ``additionalItems``, ``id``, ``uniqueItems: true``),
  keyword value types as Go decodes them (``exclusiveMinimum`` is a boolean in OpenAPI v3.0,
  ``items`` one schema, not a list);
- structure: every node has a type unless int-or-string or preserve-unknown-fields; object root;
  ``properties`` and ``additionalProperties`` exclusive; arrays have ``items``; ``metadata`` may
  only restrict ``name``/``generateName``; value validations (``allOf``/``anyOf``/``oneOf``/``not``)
  may not set ``type``, ``description``, ``default``, ``nullable``, ``x-kubernetes-*`` and may
  only name properties that the structural part declares;
- extensions: ``x-kubernetes-list-type``/``list-map-keys``/``map-type`` consistency,
  ``x-kubernetes-validations`` entries and their CEL compiling;
- defaults: not in top-level ``metadata``, pruned (no unknown fields) and valid against their schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from deepseek_operator.testing import cel, openapi
from deepseek_operator.testing.fielderrors import ErrorType, FieldError, child, index, key

__all__ = ["check_structural", "structural_errors"]

Schema = Mapping[str, Any]

_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_BOOL_KEYWORDS = frozenset(
    {
        "exclusiveMaximum",
        "exclusiveMinimum",
        "uniqueItems",
        "nullable",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    }
)
_INT_KEYWORDS = frozenset(
    {"maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"}
)
_NUMBER_KEYWORDS = frozenset({"maximum", "minimum", "multipleOf"})
_STRING_KEYWORDS = frozenset(
    {"id", "$schema", "$ref", "description", "type", "format", "title", "pattern", "x-kubernetes-list-type"}
)
_SCHEMA_LIST_KEYWORDS = frozenset({"allOf", "anyOf", "oneOf"})
_KNOWN_KEYWORDS = (
    _BOOL_KEYWORDS
    | _INT_KEYWORDS
    | _NUMBER_KEYWORDS
    | _STRING_KEYWORDS
    | _SCHEMA_LIST_KEYWORDS
    | {
        "default",
        "enum",
        "required",
        "items",
        "not",
        "properties",
        "additionalProperties",
        "patternProperties",
        "dependencies",
        "additionalItems",
        "definitions",
        "externalDocs",
        "example",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    }
)
_UNSUPPORTED = {
    "id": "id is not supported",
    "additionalItems": "additionalItems is not supported",
    "patternProperties": "patternProperties is not supported",
    "definitions": "definitions is not supported",
    "dependencies": "dependencies is not supported",
    "$ref": "$ref is not supported",
}
# Generic and extension keywords a value validation (allOf/anyOf/oneOf/not) may not carry.
_FORBIDDEN_IN_JUNCTORS = (
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
_ROOT_FIELDS_WITH_STATUS = frozenset(
    {
        "description",
        "type",
        "format",
        "title",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "multipleOf",
        "required",
        "items",
        "properties",
        "externalDocs",
        "example",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-validations",
    }
)


def check_structural(
    schema: Any, path: str = "openAPIV3Schema", *, status_subresource: bool = False
) -> list[str]:
    """Every reason the API server would refuse this ``openAPIV3Schema``, as sorted messages.

    Parameters:
        schema: the ``openAPIV3Schema`` mapping of one CRD version.
        path: the field path the messages start with (the server says
            ``spec.versions[0].schema.openAPIV3Schema``).
        status_subresource: whether the version enables ``subresources.status``, which narrows
            what the root may carry.
    Returns:
        ``"<path>: <problem>"`` strings; empty when the schema is accepted.
    """
    return sorted({str(e) for e in structural_errors(schema, path, status_subresource=status_subresource)})


def structural_errors(schema: Any, path: str, *, status_subresource: bool = False) -> list[FieldError]:
    """``check_structural`` as ``FieldError``s, for the API server's Status causes."""
    if not isinstance(schema, Mapping):
        return [FieldError(ErrorType.REQUIRED, path, "must be an object")]
    errors: list[FieldError] = []
    if status_subresource:
        errors += _root_with_status(schema, path)
    if schema.get("nullable") is True:
        errors.append(
            FieldError(ErrorType.FORBIDDEN, child(path, "nullable"), "nullable cannot be true at the root")
        )
    errors += _openapi_rules(schema, path, _Context(root=True))
    if not errors:
        errors += _structural(schema, path, level="root")
        errors += _completeness(schema, schema, path, path)
    if not errors:
        errors += _defaults(schema, path, root=True)
    return errors


def _root_with_status(schema: Schema, path: str) -> list[FieldError]:
    if schema.get("type") not in (None, "object"):
        return [
            FieldError(
                ErrorType.INVALID,
                child(path, "type"),
                'only "object" is allowed as the type at the root of the schema'
                " if the status subresource is enabled",
                schema.get("type"),
            )
        ]
    extra = sorted(k for k in schema if k not in _ROOT_FIELDS_WITH_STATUS)
    if extra:
        return [
            FieldError(
                ErrorType.FORBIDDEN,
                path,
                f"only {sorted(_ROOT_FIELDS_WITH_STATUS)} fields are allowed at the root of the schema "
                f"if the status subresource is enabled, not {extra}",
            )
        ]
    return []


# --- ValidateCustomResourceDefinitionOpenAPISchema ---------------------------------------------


@dataclass(frozen=True)
class _Context:
    """What the server's ``specStandardValidator`` carries down the tree."""

    root: bool = False
    defaults_forbidden: str = ""
    inside_meta: bool = False
    uncorrelatable: str = ""

    def below(self, **changes: Any) -> _Context:
        return replace(self, root=False, **changes)


def _openapi_rules(schema: Any, path: str, ctx: _Context) -> list[FieldError]:
    if not isinstance(schema, Mapping):
        return [FieldError(ErrorType.INVALID, path, "must be a schema object", _short(schema))]
    errors = _keyword_types(schema, path)
    if errors:
        return errors
    errors += _keywords(schema, path, ctx)
    errors += _children(schema, path, ctx)
    errors += _extensions(schema, path)
    errors += _validation_rules(schema, path, ctx)
    return errors


def _keyword_types(schema: Schema, path: str) -> list[FieldError]:
    """What Go's strict JSON decoding of ``JSONSchemaProps`` would refuse."""
    errors: list[FieldError] = []
    for name, value in schema.items():
        where = child(path, name)
        if name not in _KNOWN_KEYWORDS:
            errors.append(FieldError(ErrorType.FORBIDDEN, where, f'unknown field "{name}"'))
        elif name in _BOOL_KEYWORDS and not isinstance(value, bool):
            errors.append(_decode_error(where, value, "bool"))
        elif name in _INT_KEYWORDS and (not isinstance(value, int) or isinstance(value, bool)):
            errors.append(_decode_error(where, value, "int64"))
        elif name in _NUMBER_KEYWORDS and (not isinstance(value, int | float) or isinstance(value, bool)):
            errors.append(_decode_error(where, value, "float64"))
        elif name in _STRING_KEYWORDS and not isinstance(value, str):
            errors.append(_decode_error(where, value, "string"))
        elif name in _SCHEMA_LIST_KEYWORDS and not isinstance(value, list):
            errors.append(_decode_error(where, value, "[]JSONSchemaProps"))
        elif name in ("required", "x-kubernetes-list-map-keys") and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            errors.append(_decode_error(where, value, "[]string"))
        elif name in ("properties", "definitions", "patternProperties") and not isinstance(value, Mapping):
            errors.append(_decode_error(where, value, "map[string]JSONSchemaProps"))
        elif name == "enum" and not isinstance(value, list):
            errors.append(_decode_error(where, value, "[]JSON"))
        elif name == "additionalProperties" and not isinstance(value, bool | Mapping):
            errors.append(_decode_error(where, value, "JSONSchemaPropsOrBool"))
        elif name == "x-kubernetes-validations" and not (
            isinstance(value, list) and all(isinstance(v, Mapping) for v in value)
        ):
            errors.append(_decode_error(where, value, "ValidationRules"))
    return errors


def _decode_error(path: str, value: Any, go_type: str) -> FieldError:
    return FieldError(
        ErrorType.INVALID,
        path,
        f"cannot unmarshal {openapi.schema_type_name(value)} into a field of type {go_type}",
        _short(value),
    )


def _short(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value)[:80]


def _keywords(schema: Schema, path: str, ctx: _Context) -> list[FieldError]:
    errors: list[FieldError] = []
    type_ = schema.get("type")
    if type_ and type_ not in _TYPES:
        errors.append(
            FieldError(
                ErrorType.NOT_SUPPORTED,
                child(path, "type"),
                "supported values: " + ", ".join(json.dumps(t) for t in _TYPES),
                type_,
            )
        )
    if type_ == "null":
        errors.append(
            FieldError(
                ErrorType.FORBIDDEN,
                child(path, "type"),
                "type cannot be set to null, use nullable as an alternative",
            )
        )
    if "default" in schema and ctx.defaults_forbidden:
        errors.append(
            FieldError(
                ErrorType.FORBIDDEN, child(path, "default"), f"must not be set {ctx.defaults_forbidden}"
            )
        )
    for name, message in _UNSUPPORTED.items():
        if name in schema:
            errors.append(FieldError(ErrorType.FORBIDDEN, child(path, name), message))
    if isinstance(schema.get("items"), list):
        errors.append(
            FieldError(
                ErrorType.FORBIDDEN, child(path, "items"), "items must be a schema object and not an array"
            )
        )
    if ctx.inside_meta and schema.get("x-kubernetes-embedded-resource"):
        errors.append(
            FieldError(
                ErrorType.FORBIDDEN,
                child(path, "x-kubernetes-embedded-resource"),
                "must not be used inside of resource meta",
            )
        )
    if schema.get("uniqueItems") is True:
        errors.append(
            FieldError(
                ErrorType.FORBIDDEN,
                child(path, "uniqueItems"),
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    additional = schema.get("additionalProperties")
    if (
        additional is not None
        and schema.get("properties")
        and (additional is False or isinstance(additional, Mapping))
    ):
        errors.append(
            FieldError(
                ErrorType.FORBIDDEN,
                child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            )
        )
    if schema.get("x-kubernetes-preserve-unknown-fields") is False:
        errors.append(
            FieldError(
                ErrorType.INVALID,
                child(path, "x-kubernetes-preserve-unknown-fields"),
                "must be true or undefined",
                False,
            )
        )
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except re.error as err:
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    child(path, "pattern"),
                    f"must be a valid regular expression, but isn't: {err}",
                    schema["pattern"],
                )
            )
    return errors


def _children(schema: Schema, path: str, ctx: _Context) -> list[FieldError]:
    errors: list[FieldError] = []
    embedded = bool(schema.get("x-kubernetes-embedded-resource"))
    correlatable_map = schema.get("x-kubernetes-map-type") != "atomic"
    for name, prop in (schema.get("properties") or {}).items():
        sub = ctx.below() if correlatable_map else ctx.below(uncorrelatable=ctx.uncorrelatable or path)
        if (ctx.root or embedded) and name in ("metadata", "apiVersion", "kind"):
            sub = sub.below(inside_meta=True)
            if ctx.root:
                sub = sub.below(defaults_forbidden=f"in top-level {name}")
        errors += _openapi_rules(prop, key(child(path, "properties"), name), sub)
    additional = schema.get("additionalProperties")
    if isinstance(additional, Mapping):
        sub = (
            ctx.below(uncorrelatable=ctx.uncorrelatable)
            if correlatable_map
            else ctx.below(uncorrelatable=path)
        )
        if ctx.inside_meta:
            sub = sub.below(defaults_forbidden="inside additionalProperties applying to object metadata")
        errors += _openapi_rules(additional, child(path, "additionalProperties"), sub)
    items = schema.get("items")
    if isinstance(items, Mapping):
        sub = ctx.below()
        if schema.get("x-kubernetes-list-type") != "map":
            sub = ctx.below(uncorrelatable=ctx.uncorrelatable or path)
        errors += _openapi_rules(items, child(path, "items"), sub)
    if isinstance(schema.get("not"), Mapping):
        errors += _openapi_rules(schema["not"], child(path, "not"), ctx.below())
    for junctor in ("allOf", "oneOf", "anyOf"):
        for i, sub_schema in enumerate(schema.get(junctor) or []):
            errors += _openapi_rules(sub_schema, index(child(path, junctor), i), ctx.below())
    return errors


def _extensions(schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    type_ = schema.get("type")
    map_type = schema.get("x-kubernetes-map-type")
    if map_type is not None:
        if type_ != "object":
            errors.append(_must_be_type(path, type_, "object", "if x-kubernetes-map-type is specified"))
        if map_type not in ("atomic", "granular"):
            errors.append(
                FieldError(
                    ErrorType.NOT_SUPPORTED,
                    child(path, "x-kubernetes-map-type"),
                    'supported values: "atomic", "granular"',
                    map_type,
                )
            )
    list_type = schema.get("x-kubernetes-list-type")
    items = schema.get("items")
    if list_type is not None and type_ != "array":
        errors.append(_must_be_type(path, type_, "array", "if x-kubernetes-list-type is specified"))
    elif list_type == "set" and isinstance(items, Mapping):
        if items.get("type") == "array" and items.get("x-kubernetes-list-type", "atomic") != "atomic":
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    child(child(path, "items"), "x-kubernetes-list-type"),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                    items.get("x-kubernetes-list-type"),
                )
            )
        if items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    child(child(path, "items"), "x-kubernetes-map-type"),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                    items.get("x-kubernetes-map-type"),
                )
            )
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        errors.append(
            FieldError(
                ErrorType.NOT_SUPPORTED,
                child(path, "x-kubernetes-list-type"),
                'supported values: "atomic", "set", "map"',
                list_type,
            )
        )
    map_keys = schema.get("x-kubernetes-list-map-keys") or []
    if map_keys and list_type is None:
        errors.append(
            FieldError(
                ErrorType.REQUIRED,
                child(path, "x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )
        )
    elif map_keys and list_type != "map":
        errors.append(
            FieldError(
                ErrorType.INVALID,
                child(path, "x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
                list_type,
            )
        )
    if list_type == "map":
        errors += _list_map(schema, path, map_keys)
    return errors


def _must_be_type(path: str, actual: Any, wanted: str, why: str) -> FieldError:
    if not actual:
        return FieldError(ErrorType.REQUIRED, child(path, "type"), f"must be {wanted} {why}")
    return FieldError(ErrorType.INVALID, child(path, "type"), f"must be {wanted} {why}", actual)


def _list_map(schema: Schema, path: str, map_keys: list[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    items = schema.get("items")
    if not map_keys:
        errors.append(
            FieldError(
                ErrorType.REQUIRED,
                child(path, "x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            )
        )
    if not isinstance(items, Mapping):
        errors.append(
            FieldError(
                ErrorType.REQUIRED,
                child(path, "items"),
                "must have a schema if x-kubernetes-list-type is map",
            )
        )
        return errors
    if items.get("type") != "object":
        errors.append(
            FieldError(
                ErrorType.INVALID,
                child(child(path, "items"), "type"),
                "must be object if parent array's x-kubernetes-list-type is map",
                items.get("type", ""),
            )
        )
        return errors
    props: Mapping[str, Any] = items.get("properties") or {}
    required = set(items.get("required") or [])
    seen: set[str] = set()
    for name in map_keys:
        prop_path = key(child(child(path, "items"), "properties"), name)
        if name not in props:
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    child(path, "x-kubernetes-list-map-keys"),
                    "entries must all be names of item properties",
                    map_keys,
                )
            )
        else:
            prop = props[name]
            if prop.get("type") in ("array", "object"):
                errors.append(
                    FieldError(
                        ErrorType.INVALID,
                        child(prop_path, "type"),
                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                        prop.get("type"),
                    )
                )
            if name not in required and "default" not in prop:
                errors.append(
                    FieldError(
                        ErrorType.REQUIRED,
                        child(prop_path, "default"),
                        "this property is in x-kubernetes-list-map-keys,"
                        " so it must have a default or be a required property",
                    )
                )
            if prop.get("nullable"):
                errors.append(
                    FieldError(
                        ErrorType.FORBIDDEN,
                        child(prop_path, "nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    )
                )
        if name in seen:
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    child(path, "x-kubernetes-list-map-keys"),
                    "must not contain duplicate entries",
                    map_keys,
                )
            )
        seen.add(name)
    return errors


def _validation_rules(schema: Schema, path: str, ctx: _Context) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, raw in enumerate(schema.get("x-kubernetes-validations") or []):
        where = index(child(path, "x-kubernetes-validations"), i)
        rule = cel.Rule.from_json(raw)
        message = str(raw.get("message", ""))
        if not rule.rule.strip():
            errors.append(FieldError(ErrorType.REQUIRED, child(where, "rule"), "rule is not specified"))
            continue
        if message and not message.strip():
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    child(where, "message"),
                    "message must be non-empty if specified",
                    message,
                )
            )
        elif "\n" in message.strip():
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    child(where, "message"),
                    "message must not contain line breaks",
                    message,
                )
            )
        elif "\n" in rule.rule.strip() and not message.strip():
            errors.append(
                FieldError(
                    ErrorType.REQUIRED,
                    child(where, "message"),
                    "message must be specified if rule contains line breaks",
                )
            )
        if "messageExpression" in raw and not rule.message_expression.strip():
            errors.append(
                FieldError(
                    ErrorType.REQUIRED,
                    child(where, "messageExpression"),
                    "messageExpression must be non-empty if specified",
                )
            )
        if rule.reason and rule.reason not in cel.SUPPORTED_REASONS:
            errors.append(
                FieldError(
                    ErrorType.NOT_SUPPORTED,
                    child(where, "reason"),
                    "supported values: " + ", ".join(json.dumps(r) for r in cel.SUPPORTED_REASONS),
                    rule.reason,
                )
            )
        if "fieldPath" in raw and not rule.field_path.strip():
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    child(where, "fieldPath"),
                    "fieldPath must be non-empty if specified",
                    "",
                )
            )
        elif rule.field_path and not _field_path_valid(schema, rule.field_path):
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    child(where, "fieldPath"),
                    "fieldPath must be a valid path",
                    rule.field_path,
                )
            )
        errors += _compiles(rule, where, ctx)
    return errors


def _compiles(rule: cel.Rule, where: str, ctx: _Context) -> list[FieldError]:
    errors: list[FieldError] = []
    for expression, name in ((rule.rule, "rule"), (rule.message_expression, "messageExpression")):
        if not expression.strip():
            continue
        try:
            cel.compile_rule(expression, rule.optional_old_self and name == "rule")
        except cel.CelError as err:
            errors.append(
                FieldError(ErrorType.INVALID, child(where, name), f"compilation failed: {err}", expression)
            )
    uses_old = cel.uses_old_self(rule.rule)
    if uses_old and ctx.uncorrelatable:
        errors.append(
            FieldError(
                ErrorType.INVALID,
                child(where, "rule"),
                "oldSelf cannot be used on the uncorrelatable portion of the schema"
                f" within {ctx.uncorrelatable}",
                rule.rule,
            )
        )
    elif not uses_old and rule.optional_old_self:
        errors.append(
            FieldError(
                ErrorType.INVALID,
                child(where, "optionalOldSelf"),
                "may not be set if oldSelf is not used in rule",
                True,
            )
        )
    return errors


def _field_path_valid(schema: Schema, raw: str) -> bool:
    """``cel.ValidFieldPath``: each ``.name`` or ``['name']`` step must exist in the schema."""
    steps = re.findall(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[['\"]([^'\"]+)['\"]\]|\[(\d+)\]", raw.strip())
    rebuilt = "".join(f".{a}" if a else (f"['{b}']" if b else f"[{c}]") for a, b, c in steps)
    if not steps or rebuilt.replace('"', "'") != raw.strip().replace('"', "'"):
        return False
    node: Any = schema
    for name, quoted, number in steps:
        if number:
            node = node.get("items") if isinstance(node, Mapping) else None
        else:
            step = name or quoted
            props = node.get("properties") or {} if isinstance(node, Mapping) else {}
            additional = node.get("additionalProperties") if isinstance(node, Mapping) else None
            node = props.get(step, additional if isinstance(additional, Mapping) else None)
        if node is None:
            return False
    return True


# --- ValidateStructural ------------------------------------------------------------------------


def _structural(schema: Schema, path: str, level: str) -> list[FieldError]:
    errors: list[FieldError] = []
    type_ = schema.get("type", "")
    if type_ == "array" and "items" not in schema:
        errors.append(FieldError(ErrorType.REQUIRED, child(path, "items"), "must be specified"))
    if isinstance(schema.get("items"), Mapping):
        errors += _structural(schema["items"], child(path, "items"), "item")
    for name, prop in (schema.get("properties") or {}).items():
        errors += _structural(prop, key(child(path, "properties"), name), "field")
    additional = schema.get("additionalProperties")
    if additional is not None and level == "root":
        errors.append(
            FieldError(
                ErrorType.FORBIDDEN, child(path, "additionalProperties"), "must not be used at the root"
            )
        )
    if isinstance(additional, Mapping):
        errors += _structural(additional, child(path, "additionalProperties"), "field")
    int_or_string = bool(schema.get("x-kubernetes-int-or-string"))
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(schema.get("x-kubernetes-embedded-resource"))
    if int_or_string and preserve:
        errors.append(
            FieldError(
                ErrorType.INVALID,
                child(path, "x-kubernetes-preserve-unknown-fields"),
                "must be false if x-kubernetes-int-or-string is true",
                True,
            )
        )
    if int_or_string and embedded:
        errors.append(
            FieldError(
                ErrorType.INVALID,
                child(path, "x-kubernetes-embedded-resource"),
                "must be false if x-kubernetes-int-or-string is true",
                True,
            )
        )
    errors += _junctors(schema, path, int_or_string)
    if embedded and type_ != "object":
        errors.append(_must_be_type(path, type_, "object", "if x-kubernetes-embedded-resource is true"))
    elif not type_ and not int_or_string and not preserve:
        detail = {
            "root": "must not be empty at the root",
            "item": "must not be empty for specified array items",
            "field": "must not be empty for specified object fields",
        }[level]
        errors.append(FieldError(ErrorType.REQUIRED, child(path, "type"), detail))
    if embedded and additional is not None:
        errors.append(
            FieldError(
                ErrorType.FORBIDDEN,
                child(path, "additionalProperties"),
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if level == "root" and type_ and type_ != "object":
        errors.append(FieldError(ErrorType.INVALID, child(path, "type"), "must be object at the root", type_))
    errors += _metadata(schema, path, level == "root" or embedded, level == "root")
    if embedded and not preserve and not schema.get("properties"):
        errors.append(
            FieldError(
                ErrorType.REQUIRED,
                child(path, "properties"),
                "must not be empty if x-kubernetes-embedded-resource is true"
                " without x-kubernetes-preserve-unknown-fields",
            )
        )
    return errors


def _metadata(schema: Schema, path: str, check_meta: bool, root: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    props: Mapping[str, Any] = schema.get("properties") or {}
    props_path = child(path, "properties")
    if check_meta:
        for name, wanted in (("kind", "string"), ("apiVersion", "string"), ("metadata", "object")):
            if name in props and props[name].get("type") != wanted:
                errors.append(
                    FieldError(
                        ErrorType.INVALID,
                        child(key(props_path, name), "type"),
                        f"must be {wanted}",
                        props[name].get("type", ""),
                    )
                )
    if root and "metadata" in props:
        meta = dict(props["metadata"])
        meta.pop("type", None)
        meta.pop("default", None)
        meta_props = meta.pop("properties", {}) or {}
        restricts_only_names = set(meta_props) <= {"name", "generateName"}
        if meta or not restricts_only_names:
            errors.append(
                FieldError(
                    ErrorType.FORBIDDEN,
                    key(props_path, "metadata"),
                    "must not specify anything other than name and generateName,"
                    " but metadata is implicitly specified",
                )
            )
    return errors


def _junctors(schema: Schema, path: str, int_or_string: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    skip_any_of = int_or_string and schema.get("anyOf") == _INT_OR_STRING_ANY_OF
    all_of = schema.get("allOf") or []
    skip_first_all_of = (
        int_or_string
        and bool(all_of)
        and isinstance(all_of[0], Mapping)
        and all_of[0].get("anyOf") == _INT_OR_STRING_ANY_OF
    )
    for junctor in ("anyOf", "allOf", "oneOf"):
        for i, sub in enumerate(schema.get(junctor) or []):
            skip = (junctor == "anyOf" and skip_any_of) or (
                junctor == "allOf" and i == 0 and skip_first_all_of
            )
            errors += _nested(sub, index(child(path, junctor), i), skip)
    if isinstance(schema.get("not"), Mapping):
        errors += _nested(schema["not"], child(path, "not"), False)
    return errors


def _nested(schema: Schema, path: str, skip_any_of: bool) -> list[FieldError]:
    """A value validation below a junctor: no generic or extension keywords, no metadata."""
    errors: list[FieldError] = []
    if skip_any_of:
        return errors
    for name, detail in _FORBIDDEN_IN_JUNCTORS:
        value = schema.get(name)
        if value not in (None, False, "", []):
            errors.append(FieldError(ErrorType.FORBIDDEN, child(path, name), detail))
    if "metadata" in (schema.get("properties") or {}):
        errors.append(
            FieldError(
                ErrorType.FORBIDDEN,
                key(child(path, "properties"), "metadata"),
                "must not be specified in a nested context",
            )
        )
    if isinstance(schema.get("items"), Mapping):
        errors += _nested(schema["items"], child(path, "items"), False)
    for name, prop in (schema.get("properties") or {}).items():
        errors += _nested(prop, key(child(path, "properties"), name), False)
    errors += _junctors(schema, path, False)
    return errors


def _completeness(structural: Any, schema: Schema, s_path: str, v_path: str) -> list[FieldError]:
    """Every property a value validation names must exist in the structural part."""
    errors: list[FieldError] = []
    for junctor in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(junctor) or []):
            errors += _nested_completeness(structural, sub, s_path, index(child(v_path, junctor), i))
    if isinstance(schema.get("not"), Mapping):
        errors += _nested_completeness(structural, schema["not"], s_path, child(v_path, "not"))
    for name, prop in (schema.get("properties") or {}).items():
        errors += _completeness(
            prop, prop, key(child(s_path, "properties"), name), key(child(v_path, "properties"), name)
        )
    if isinstance(schema.get("items"), Mapping):
        errors += _completeness(
            schema["items"], schema["items"], child(s_path, "items"), child(v_path, "items")
        )
    return errors


def _nested_completeness(structural: Any, value_schema: Schema, s_path: str, v_path: str) -> list[FieldError]:
    if not isinstance(structural, Mapping):
        return [FieldError(ErrorType.REQUIRED, s_path, f"because it is defined in {v_path}")]
    errors = _completeness(
        structural, {k: v for k, v in value_schema.items() if k != "properties"}, s_path, v_path
    )
    if isinstance(value_schema.get("items"), Mapping):
        errors += _nested_completeness(
            structural.get("items"), value_schema["items"], child(s_path, "items"), child(v_path, "items")
        )
    s_props: Mapping[str, Any] = structural.get("properties") or {}
    for name, prop in (value_schema.get("properties") or {}).items():
        s_sub = key(child(s_path, "properties"), name)
        v_sub = key(child(v_path, "properties"), name)
        if name not in s_props:
            errors.append(FieldError(ErrorType.REQUIRED, s_sub, f"because it is defined in {v_sub}"))
        else:
            errors += _nested_completeness(s_props[name], prop, s_sub, v_sub)
    return errors


# --- defaults ----------------------------------------------------------------------------------


def _defaults(schema: Schema, path: str, *, root: bool) -> list[FieldError]:
    """Each default must be pruned already and valid against its own node (``defaulting/validation.go``)."""
    errors: list[FieldError] = []
    if "default" in schema and not root:
        value = schema["default"]
        pruned, unknown = openapi.prune(
            _deep_copy(value), schema, resource_root=bool(schema.get("x-kubernetes-embedded-resource"))
        )
        if unknown:
            errors.append(
                FieldError(ErrorType.INVALID, child(path, "default"), "must not have unknown fields", value)
            )
        else:
            defaulted = openapi.apply_defaults(pruned, schema)
            errors += openapi.validate_value(defaulted, schema, child(path, "default"))
            errors += openapi.validate_list_types(defaulted, schema, child(path, "default"))
            if not errors:
                errors += cel.check_rules(schema, defaulted, None, child(path, "default"))
    for name, prop in (schema.get("properties") or {}).items():
        errors += _defaults(prop, key(child(path, "properties"), name), root=False)
    for name in ("items", "additionalProperties"):
        if isinstance(schema.get(name), Mapping):
            errors += _defaults(schema[name], child(path, name), root=False)
    return errors


def _deep_copy(value: Any) -> Any:
    return json.loads(json.dumps(value))
