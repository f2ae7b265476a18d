"""Field errors shaped like apimachinery's ``field.Error``, and the Status bodies built from them.

The CRD checks, the OpenAPI validator, the CEL rules and the API server all speak in these, so
one message format reaches clients: ``spec.x: Invalid value: "a": reason`` in the Status message
and ``{field, reason, message}`` in ``details.causes`` (``k8s.io/apimachinery/pkg/util/validation/field``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict

__all__ = ["Cause", "ErrorType", "FieldError", "aggregate", "child", "index", "key"]


class ErrorType(StrEnum):
    """``field.ErrorType``: the value is the Status cause ``reason``."""

    NOT_FOUND = "FieldValueNotFound"
    REQUIRED = "FieldValueRequired"
    DUPLICATE = "FieldValueDuplicate"
    INVALID = "FieldValueInvalid"
    NOT_SUPPORTED = "FieldValueNotSupported"
    FORBIDDEN = "FieldValueForbidden"
    TOO_LONG = "FieldValueTooLong"
    TOO_MANY = "FieldValueTooMany"
    INTERNAL = "InternalError"
    TYPE_INVALID = "FieldValueTypeInvalid"


# What `ErrorType.String()` prints in messages.
_TITLES = {
    ErrorType.NOT_FOUND: "Not found",
    ErrorType.REQUIRED: "Required value",
    ErrorType.DUPLICATE: "Duplicate value",
    ErrorType.INVALID: "Invalid value",
    ErrorType.NOT_SUPPORTED: "Unsupported value",
    ErrorType.FORBIDDEN: "Forbidden",
    ErrorType.TOO_LONG: "Too long",
    ErrorType.TOO_MANY: "Too many",
    ErrorType.INTERNAL: "Internal error",
    ErrorType.TYPE_INVALID: "Invalid value",
}
# Types whose message omits the offending value, as `field.Error.ErrorBody` does.
_VALUELESS = {ErrorType.REQUIRED, ErrorType.FORBIDDEN, ErrorType.TOO_LONG, ErrorType.INTERNAL}

_OMIT = object()


class Cause(TypedDict):
    """One entry of a Status ``details.causes`` list."""

    reason: str
    message: str
    field: str


@dataclass(frozen=True)
class FieldError:
    """One problem at one field path; ``value`` is shown in the message unless the type hides it."""

    type: ErrorType
    field: str
    detail: str = ""
    value: Any = _OMIT

    def body(self) -> str:
        """The message without the path (``field.Error.ErrorBody``)."""
        text = _TITLES[self.type]
        if self.type not in _VALUELESS and self.value is not _OMIT:
            text = f"{text}: {_show(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()

    def cause(self) -> Cause:
        return {"reason": self.type.value, "message": self.body(), "field": self.field}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def aggregate(errors: list[FieldError]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one error bare, several in brackets."""
    texts = [str(e) for e in errors]
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"


def child(path: str, name: str) -> str:
    """``path.Child(name)``."""
    return f"{path}.{name}" if path else name


def key(path: str, name: str) -> str:
    """``path.Key(name)``: map keys in brackets."""
    return f"{path}[{name}]"


def index(path: str, i: int) -> str:
    """``path.Index(i)``."""
    return f"{path}[{i}]"
