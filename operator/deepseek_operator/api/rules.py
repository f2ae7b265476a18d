"""Cross-field rules declared once, checked twice: by the API server (CEL) and by us (Python).

A rule lives on the model it constrains. `crdgen` copies `cel` into the CRD as an
`x-kubernetes-validations` entry, so `kubectl apply` rejects a bad object even when the
webhook is down; `find_rule_violations` runs `check` so `dsd validate`, the webhook and the
reconciler report the same problem with the exact field path and a message that says what
would be valid. A test evaluates both sides on every test resource and fails if they disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from deepseek_operator.errors import FieldError

__all__ = ["CrossFieldRule", "find_rule_violations"]


@dataclass(frozen=True)
class CrossFieldRule:
    """One constraint between fields of the same object."""

    cel: str
    """The rule in Kubernetes CEL, evaluated with `self` bound to the object."""
    message: str
    """What the API server says when `cel` is false (static: CEL messages cannot interpolate)."""
    check: Callable[[Any], str | None]
    """Python twin of `cel`: returns the detailed message on violation, None when the rule holds."""
    field: str = ""
    """camelCase name of the field the error is reported on; empty for the object itself."""

    def to_kubernetes(self) -> dict[str, str]:
        """The `x-kubernetes-validations` entry."""
        rule = {"rule": self.cel, "message": self.message}
        if self.field:
            rule["fieldPath"] = f".{self.field}"
        return rule

    def field_path(self, object_path: str) -> str:
        return f"{object_path}.{self.field}" if self.field else object_path


def find_rule_violations(model: BaseModel, path: str) -> Iterator[FieldError]:
    """Every violated `cross_field_rules` entry in `model` and the models nested inside it.

    Paths use the YAML (alias) names, e.g. `spec.autoscaling.maxGroups`.
    """
    for rule in getattr(type(model), "cross_field_rules", ()):
        message = rule.check(model)
        if message is not None:
            yield FieldError(rule.field_path(path), message)
    for name, field in type(model).model_fields.items():
        yield from _violations_in(getattr(model, name), f"{path}.{field.alias or name}")


def _violations_in(value: object, path: str) -> Iterator[FieldError]:
    if isinstance(value, BaseModel):
        yield from find_rule_violations(value, path)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _violations_in(item, f"{path}[{index}]")
