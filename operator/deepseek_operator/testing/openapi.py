"""Validate a custom resource against a CRD version's ``openAPIV3Schema`` the way the API server does.

The order is the server's (``apiextensions-apiserver`` custom resource strategy): prune unknown
fields (``pruning/algorithm.go``), drop non-nullable nulls and apply defaults
(``defaulting/algorithm.go``), validate the value (kube-openapi, messages from go-openapi), check
``x-kubernetes-list-type`` map/set uniqueness (``listtype/validation.go``), then evaluate the
``x-kubernetes-validations`` CEL rules unless a type error already blocks them. Field paths and
messages follow ``kubeOpenAPIResultToFieldErrors`` so tests can assert on what a real server says.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deepseek_operator.testing import cel
from deepseek_operator.testing.fielderrors import Cause, ErrorType, FieldError, child, index

__all__ = [
    "OBJECT_META_FIELDS",
    "Validated",
    "apply_defaults",
    "prune",
    "schema_type_name",
    "validate_custom_resource",
    "validate_list_types",
    "validate_value",
]

Schema = Mapping[str, Any]

# metav1.ObjectMeta's JSON fields: everything else under a resource's metadata is dropped.
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_RESOURCE_ROOT_FIELDS = ("apiVersion", "kind", "metadata")


@dataclass
class Validated:
    """What the server stores (``obj``), why it refuses (``errors``) and what it warns about."""

    obj: Any
    errors: list[FieldError] = field(default_factory=list)
    unknown_fields: list[str] = field(default_factory=list)

    @property
    def causes(self) -> list[Cause]:
        return [e.cause() for e in self.errors]


def validate_custom_resource(schema: Schema, obj: Mapping[str, Any], *, old: Any = None) -> Validated:
    """Prune, default and validate ``obj`` (and run CEL rules, with ``old`` for transition rules).

    Parameters:
        schema: a CRD version's ``schema.openAPIV3Schema``.
        obj: the whole custom resource as JSON.
        old: the stored object on update (``oldSelf``), None on create.
    Returns:
        Validated with the pruned and defaulted object, the errors and the unknown field paths.
    """
    pruned, unknown = prune(copy.deepcopy(dict(obj)), schema)
    defaulted = apply_defaults(pruned, schema)
    errors = validate_value(defaulted, schema, "", resource_root=True)
    errors += validate_list_types(defaulted, schema, "")
    if cel.has_rules(schema):
        errors += _cel_errors(
            schema, defaulted, old, blocked=any(e.type is ErrorType.TYPE_INVALID for e in errors)
        )
    return Validated(defaulted, errors, unknown)


def _cel_errors(schema: Schema, obj: Any, old: Any, *, blocked: bool) -> list[FieldError]:
    """CEL rules run only on a well-typed object; otherwise the server says they were skipped."""
    if blocked:
        return [
            FieldError(
                ErrorType.INVALID,
                "<nil>",
                "some validation rules were not checked because the object was invalid; "
                "correct the existing errors to complete validation",
                "",
            )
        ]
    return cel.check_rules(schema, obj, old, "")


# --- pruning -----------------------------------------------------------------------------------


def prune(obj: Any, schema: Schema, *, resource_root: bool = True) -> tuple[Any, list[str]]:
    """Drop fields the schema does not specify; returns the object and the dropped field paths."""
    unknown: list[str] = []
    _prune(obj, schema, "", resource_root, unknown)
    return obj, unknown


def _prune(value: Any, schema: Schema | None, path: str, resource_root: bool, unknown: list[str]) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = resource_root or bool(schema.get("x-kubernetes-embedded-resource"))
        for name in list(value):
            sub = child(path, name)
            if embedded and name in _RESOURCE_ROOT_FIELDS:
                if name == "metadata" and isinstance(value[name], dict):
                    for meta_key in [k for k in value[name] if k not in OBJECT_META_FIELDS]:
                        unknown.append(child(sub, meta_key))
                        del value[name][meta_key]
                continue
            if name in props:
                _prune(value[name], props[name], sub, False, unknown)
            elif isinstance(additional, Mapping):
                _prune(value[name], additional, sub, False, unknown)
            elif additional is True or preserve:
                continue
            else:
                unknown.append(sub)
                del value[name]
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                _prune(item, items, index(path, i), False, unknown)


# --- defaulting --------------------------------------------------------------------------------


def apply_defaults(value: Any, schema: Schema) -> Any:
    """Drop non-nullable nulls without a default, then set defaults top-down (nested ones too)."""
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties") or {}
        for name, prop in props.items():
            present = name in value
            if present and value[name] is None and not prop.get("nullable"):
                if "default" in prop:
                    value[name] = copy.deepcopy(prop["default"])
                else:
                    del value[name]
                    continue
            elif not present and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                value[name] = apply_defaults(value[name], prop)
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            for name in [k for k in value if k not in props]:
                if value[name] is None and not additional.get("nullable"):
                    if "default" in additional:
                        value[name] = copy.deepcopy(additional["default"])
                    else:
                        del value[name]
                        continue
                value[name] = apply_defaults(value[name], additional)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                if item is None and "default" in items and not items.get("nullable"):
                    value[i] = copy.deepcopy(items["default"])
                value[i] = apply_defaults(value[i], items)
    return value


# --- value validation (kube-openapi) -----------------------------------------------------------


def schema_type_name(value: Any) -> str:
    """The JSON type name go-openapi prints for a value (``"string"``, ``"null"``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _matches_type(value: Any, type_: str) -> bool:
    actual = schema_type_name(value)
    if type_ == "number":
        return actual in ("integer", "number")
    return actual == type_


def _display(path: str) -> str:
    return path or "<nil>"


def _in_body(path: str) -> str:
    return f"{path or 'body'} in body" if path else "body"


def validate_value(value: Any, schema: Schema, path: str, *, resource_root: bool = False) -> list[FieldError]:
    """Check ``value`` against one schema node and its children; go-openapi messages."""
    errors: list[FieldError] = []
    if value is None:
        if not schema.get("nullable") and (schema.get("type") or schema.get("x-kubernetes-int-or-string")):
            expected = "integer,string" if schema.get("x-kubernetes-int-or-string") else schema["type"]
            errors.append(_type_error(path, value, expected))
        return errors
    if schema.get("x-kubernetes-int-or-string"):
        if not (_matches_type(value, "integer") or isinstance(value, str)):
            return [_type_error(path, value, "integer,string")]
    elif (type_ := schema.get("type")) and not _matches_type(value, type_):
        return [_type_error(path, value, type_)]
    errors += _validate_format(value, schema, path)
    if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
        allowed = [e if isinstance(e, str) else json.dumps(e) for e in schema["enum"]]
        errors.append(
            FieldError(
                ErrorType.NOT_SUPPORTED,
                _display(path),
                "supported values: " + ", ".join(json.dumps(a) for a in allowed),
                value,
            )
        )
    if isinstance(value, str):
        errors += _validate_string(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        errors += _validate_number(value, schema, path)
    elif isinstance(value, list):
        errors += _validate_array(value, schema, path)
    elif isinstance(value, dict):
        errors += _validate_object(value, schema, path, resource_root)
    errors += _validate_junctors(value, schema, path)
    return errors


def _type_error(path: str, value: Any, expected: str) -> FieldError:
    actual = schema_type_name(value)
    shown: Any = value if value is not None else "null"
    return FieldError(
        ErrorType.TYPE_INVALID,
        _display(path),
        f"{_in_body(path)} must be of type {expected}: {json.dumps(actual)}",
        shown if isinstance(shown, str | int | float) else actual,
    )


def _validate_string(value: str, schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    length = len(value)
    if "maxLength" in schema and length > schema["maxLength"]:
        errors.append(
            FieldError(
                ErrorType.TOO_LONG, _display(path), f"may not be more than {schema['maxLength']} bytes"
            )
        )
    if "minLength" in schema and length < schema["minLength"]:
        errors.append(
            FieldError(
                ErrorType.INVALID,
                _display(path),
                f"{_in_body(path)} should be at least {schema['minLength']} chars long",
                value,
            )
        )
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(
            FieldError(
                ErrorType.INVALID,
                _display(path),
                f"{_in_body(path)} should match '{schema['pattern']}'",
                value,
            )
        )
    return errors


def _validate_number(value: float, schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if "maximum" in schema:
        limit = schema["maximum"]
        if schema.get("exclusiveMaximum") and value >= limit:
            errors.append(_number_error(path, value, f"should be less than {_num(limit)}"))
        elif value > limit:
            errors.append(_number_error(path, value, f"should be less than or equal to {_num(limit)}"))
    if "minimum" in schema:
        limit = schema["minimum"]
        if schema.get("exclusiveMinimum") and value <= limit:
            errors.append(_number_error(path, value, f"should be greater than {_num(limit)}"))
        elif value < limit:
            errors.append(_number_error(path, value, f"should be greater than or equal to {_num(limit)}"))
    if "multipleOf" in schema:
        factor = schema["multipleOf"]
        quotient = value / factor
        if not math.isclose(quotient, round(quotient), rel_tol=0, abs_tol=1e-9):
            errors.append(_number_error(path, value, f"should be a multiple of {_num(factor)}"))
    return errors


def _num(v: float) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _number_error(path: str, value: float, detail: str) -> FieldError:
    return FieldError(ErrorType.INVALID, _display(path), f"{_in_body(path)} {detail}", value)


def _validate_array(value: list[Any], schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(
            FieldError(
                ErrorType.TOO_MANY,
                _display(path),
                f"must have at most {schema['maxItems']} items",
                len(value),
            )
        )
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(
            FieldError(
                ErrorType.INVALID,
                _display(path),
                f"{_in_body(path)} should have at least {schema['minItems']} items",
                value,
            )
        )
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i, item in enumerate(value):
            errors += validate_value(item, items, index(path, i))
    return errors


def _validate_object(
    value: dict[str, Any], schema: Schema, path: str, resource_root: bool
) -> list[FieldError]:
    errors: list[FieldError] = []
    for name in schema.get("required") or []:
        if name not in value:
            errors.append(FieldError(ErrorType.REQUIRED, child(path, name)))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(
            FieldError(
                ErrorType.TOO_MANY,
                _display(path),
                f"must have at most {schema['maxProperties']} items",
                len(value),
            )
        )
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errors.append(
            FieldError(
                ErrorType.INVALID,
                _display(path),
                f"{_in_body(path)} should have at least {schema['minProperties']} properties",
                value,
            )
        )
    props: Mapping[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for name, sub in value.items():
        if resource_root and name == "metadata":
            continue  # ObjectMeta is validated by the server's own metadata rules
        if name in props:
            errors += validate_value(sub, props[name], child(path, name))
        elif isinstance(additional, Mapping):
            errors += validate_value(sub, additional, child(path, name))
    return errors


def _validate_junctors(value: Any, schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if any(validate_value(value, sub, path) for sub in schema.get("allOf") or []):
        errors.append(_junctor_error(path, value, "must validate all the schemas (allOf)"))
    if schema.get("anyOf") and all(validate_value(value, sub, path) for sub in schema["anyOf"]):
        errors.append(_junctor_error(path, value, "must validate at least one schema (anyOf)"))
    if schema.get("oneOf"):
        passing = sum(1 for sub in schema["oneOf"] if not validate_value(value, sub, path))
        if passing != 1:
            errors.append(_junctor_error(path, value, "must validate one and only one schema (oneOf)"))
    if isinstance(schema.get("not"), Mapping) and not validate_value(value, schema["not"], path):
        errors.append(_junctor_error(path, value, "must not validate the schema (not)"))
    return errors


def _junctor_error(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(ErrorType.INVALID, _display(path), f"{_in_body(path)} {detail}", value)


_FORMAT_CHECKS: dict[str, re.Pattern[str]] = {
    "date": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "uuid": re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"),
    "hostname": re.compile(
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", re.IGNORECASE
    ),
    "ipv4": re.compile(r"^(\d{1,3}\.){3}\d{1,3}$"),
    "email": re.compile(r"^[^@\s]+@[^@\s]+$"),
}


def _validate_format(value: Any, schema: Schema, path: str) -> list[FieldError]:
    fmt = schema.get("format")
    if not fmt or not isinstance(value, str):
        return []
    if fmt in _FORMAT_CHECKS:
        ok = bool(_FORMAT_CHECKS[fmt].match(value))
    elif fmt == "date-time":
        ok = _is_datetime(value)
    elif fmt == "byte":
        ok = _is_base64(value)
    else:
        return []  # formats the server does not check (int32, int64, double, ...) or unknown ones
    if ok:
        return []
    return [
        FieldError(
            ErrorType.TYPE_INVALID,
            _display(path),
            f"{_in_body(path)} must be of type {fmt}: {json.dumps(value)}",
            value,
        )
    ]


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value or "t" in value


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


# --- list types --------------------------------------------------------------------------------


def validate_list_types(value: Any, schema: Schema, path: str) -> list[FieldError]:
    """``x-kubernetes-list-type: set`` items and ``map`` keys must be unique (``Duplicate value``)."""
    errors: list[FieldError] = []
    if isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            seen: list[Any] = []
            for i, item in enumerate(value):
                if any(_json_equal(item, s) for s in seen):
                    errors.append(FieldError(ErrorType.DUPLICATE, index(path, i), value=item))
                seen.append(item)
        elif list_type == "map":
            map_keys = schema.get("x-kubernetes-list-map-keys") or []
            seen_keys: set[str] = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                identity = {k: item.get(k) for k in map_keys}
                marker = json.dumps(identity, sort_keys=True)
                if marker in seen_keys:
                    errors.append(FieldError(ErrorType.DUPLICATE, index(path, i), value=identity))
                seen_keys.add(marker)
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                errors += validate_list_types(item, items, index(path, i))
    elif isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for name, sub in value.items():
            sub_schema = props.get(name, additional if isinstance(additional, Mapping) else None)
            if sub_schema is not None:
                errors += validate_list_types(sub, sub_schema, child(path, name))
    return errors
