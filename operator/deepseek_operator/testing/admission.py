"""What the server checks and fills in before it stores an object (validation and defaulting).

- every object: name syntax, label syntax, the namespace exists and is not terminating;
- Namespaces: the ``kubernetes`` finalizer and ``Active`` phase;
- CustomResourceDefinitions: names, one storage version, structural schemas
  (``structural.check_structural``), and the ``NamesAccepted``/``Established`` status;
- custom resources: the CRD version's schema (``openapi.validate_custom_resource``: pruning,
  defaults, OpenAPI and CEL validation); unknown fields are warnings, or errors when the request
  asked for ``fieldValidation=Strict``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from deepseek_operator.testing import openapi, structural
from deepseek_operator.testing.apierrors import ApiError
from deepseek_operator.testing.fielderrors import ErrorType, FieldError, index
from deepseek_operator.testing.resources import ResourceType

__all__ = ["Admission"]

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_LABEL_KINDS = frozenset({"/namespaces"})
_DNS1035_KINDS = frozenset({"/services"})
_NAMESPACE_FINALIZER = "kubernetes"


def _name_errors(rt: ResourceType, name: str) -> list[FieldError]:
    if not name:
        return [FieldError(ErrorType.REQUIRED, "metadata.name", "name or generateName is required")]
    if rt.key in _DNS1035_KINDS:
        ok, what = len(name) <= 63 and _DNS1035_LABEL.fullmatch(name) is not None, "a DNS-1035 label"
    elif rt.key in _DNS_LABEL_KINDS:
        ok, what = len(name) <= 63 and _DNS_LABEL.fullmatch(name) is not None, "a lowercase RFC 1123 label"
    else:
        ok, what = (
            len(name) <= 253 and _DNS_SUBDOMAIN.fullmatch(name) is not None,
            "a lowercase RFC 1123 subdomain",
        )
    if ok:
        return []
    return [FieldError(ErrorType.INVALID, "metadata.name", f"a valid name must be {what}", name)]


def _label_errors(labels: Any) -> list[FieldError]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [
            FieldError(ErrorType.TYPE_INVALID, "metadata.labels", "must be a map of strings", str(labels))
        ]
    errors: list[FieldError] = []
    for key, value in labels.items():
        name = key.rsplit("/", 1)[-1]
        prefix = key[: -len(name) - 1] if "/" in key else ""
        if (
            not _LABEL_NAME.fullmatch(name)
            or len(name) > 63
            or (prefix and not _DNS_SUBDOMAIN.fullmatch(prefix))
        ):
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    "metadata.labels",
                    "name part must consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character",
                    key,
                )
            )
        if not isinstance(value, str) or (value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value))):
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    "metadata.labels",
                    "a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                    value,
                )
            )
    return errors


class Admission:
    """The admission chain of the test server, with access to namespace state."""

    def __init__(self, namespace_state: Callable[[str], str]) -> None:
        self._namespace_state = namespace_state

    def __call__(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, strict: bool
    ) -> list[str]:
        meta = obj["metadata"]
        name = str(meta.get("name") or "")
        if old is None and rt.namespaced:
            self._check_namespace(rt, name, str(meta.get("namespace") or ""))
        errors = (_name_errors(rt, name) if old is None else []) + _label_errors(meta.get("labels"))
        warnings: list[str] = []
        if rt.key == "/namespaces":
            self._namespace(obj, old)
        elif rt.key == "apiextensions.k8s.io/customresourcedefinitions":
            errors += self._crd(obj)
        elif rt.schema is not None:
            result = openapi.validate_custom_resource(rt.schema, obj, old=old)
            if strict and result.unknown_fields:
                raise ApiError.bad_request(
                    "strict decoding error: "
                    + ", ".join(f'unknown field "{f}"' for f in result.unknown_fields)
                )
            warnings = [f'unknown field "{f}"' for f in result.unknown_fields]
            errors += result.errors
            obj.clear()
            obj.update(result.obj)
        if errors:
            raise ApiError.invalid(rt, name, errors)
        return warnings

    def _check_namespace(self, rt: ResourceType, name: str, namespace: str) -> None:
        state = self._namespace_state(namespace)
        if not state:
            raise ApiError.namespace_not_found(namespace)
        if state == "Terminating":
            raise ApiError.forbidden(
                rt,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    @staticmethod
    def _namespace(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if old is None:
            obj.setdefault("spec", {}).setdefault("finalizers", [_NAMESPACE_FINALIZER])
            obj["status"] = {"phase": "Active"}

    @staticmethod
    def _crd(obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        group, plural = str(spec.get("group", "")), str(names.get("plural", ""))
        errors: list[FieldError] = []
        if obj["metadata"].get("name") != f"{plural}.{group}":
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    "metadata.name",
                    'must be spec.names.plural+"."+spec.group',
                    obj["metadata"].get("name"),
                )
            )
        if "." not in group:
            errors.append(
                FieldError(ErrorType.INVALID, "spec.group", "should be a domain with at least one dot", group)
            )
        if not names.get("kind"):
            errors.append(FieldError(ErrorType.REQUIRED, "spec.names.kind", ""))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            errors.append(
                FieldError(
                    ErrorType.NOT_SUPPORTED,
                    "spec.scope",
                    'supported values: "Cluster", "Namespaced"',
                    spec.get("scope", ""),
                )
            )
        versions = spec.get("versions") or []
        if sum(1 for v in versions if v.get("storage")) != 1:
            errors.append(
                FieldError(
                    ErrorType.INVALID,
                    "spec.versions",
                    "must have exactly one version marked as storage version",
                    versions and "...",
                )
            )
        for i, version in enumerate(versions):
            path = index("spec.versions", i)
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                errors.append(
                    FieldError(ErrorType.REQUIRED, f"{path}.schema.openAPIV3Schema", "schemas are required")
                )
                continue
            status = "status" in (version.get("subresources") or {})
            errors += structural.structural_errors(
                schema, f"{path}.schema.openAPIV3Schema", status_subresource=status
            )
        if not errors:
            obj["status"] = _crd_status(spec)
        return errors


def _crd_status(spec: dict[str, Any]) -> dict[str, Any]:
    """What the CRD controllers write at once on a real server: names accepted, established."""
    conditions = [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
        {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
        },
    ]
    return {
        "acceptedNames": spec.get("names", {}),
        "conditions": conditions,
        "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
    }
