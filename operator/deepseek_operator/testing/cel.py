"""Evaluate CRD ``x-kubernetes-validations`` rules with Kubernetes' semantics.

Engine: ``cel-expr-python``, Google's wrapper of the C++ CEL implementation. Of the three Python
CEL libraries it alone evaluates Kubernetes' dialect out of the box: the strings extension
(``lowerAscii``, ``split``, ``join``, ``format``...), ``math.*``, optional field selection
(``self.?x.orValue(y)``) and cross-type numeric comparisons, and it type-checks rules when they
are compiled as cel-go does on CRD creation. cel-python (pure Python) and
common-expression-language (Rust) both lack the string extensions and optionals.

What Kubernetes adds on top is rebuilt here: ``self``/``oldSelf`` scoping per schema node,
transition rules (only on update, with correlatable old values; ``optionalOldSelf``),
``message``/``messageExpression``/``reason``/``fieldPath``, property-name escaping, and the
Kubernetes list library (``isSorted``, ``sum``, ``min``, ``max``) and regex library (``find``,
``findAll``). Not rebuilt: the list ``indexOf``/``lastIndexOf`` (the C++ strings extension owns
the name), ``quantity``, ``url``, ``ip``/``cidr``, ``format.*`` and ``semver`` libraries, cost
limits, and schema-typed compilation (rules see ``dyn`` values, so a type error in a rule shows
up when it runs, not when the CRD is created).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_bindings, ext_math, ext_optional, ext_strings

from deepseek_operator.testing.fielderrors import ErrorType, FieldError, child, index, key

__all__ = [
    "SUPPORTED_REASONS",
    "CelError",
    "Rule",
    "check_rules",
    "compile_rule",
    "evaluate",
    "has_rules",
    "uses_old_self",
]

Schema = Mapping[str, Any]
_MISSING: Any = object()
_OLD = "__oldSelfValue"
SUPPORTED_REASONS = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")


class CelError(Exception):
    """A rule that does not compile, or a value it cannot be evaluated on."""


@dataclass(frozen=True)
class Rule:
    """One ``x-kubernetes-validations`` entry."""

    rule: str
    message: str = ""
    message_expression: str = ""
    reason: str = ""
    field_path: str = ""
    optional_old_self: bool = False

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Rule:
        return cls(
            rule=str(raw.get("rule", "")),
            message=str(raw.get("message", "")),
            message_expression=str(raw.get("messageExpression", "")),
            reason=str(raw.get("reason", "")),
            field_path=str(raw.get("fieldPath", "")),
            optional_old_self=bool(raw.get("optionalOldSelf", False)),
        )


def _is_sorted(xs: list[Any]) -> bool:
    return all(xs[i] <= xs[i + 1] for i in range(len(xs) - 1))


def _regex_find(s: str, pattern: str) -> str:
    m = re.search(pattern, s)
    return m.group(0) if m else ""


def _regex_find_all(s: str, pattern: str) -> list[str]:
    return [m.group(0) for m in re.finditer(pattern, s)]


def _member(name: str, overload: str, result: Any, params: list[Any], impl: Callable[..., Any]) -> Any:
    return cel.FunctionDecl(name, [cel.Overload(overload, result, params, is_member=True, impl=impl)])


@functools.cache
def _env() -> Any:
    """One environment: Kubernetes' base libraries over ``self`` and the old value, both ``dyn``."""
    t = cel.Type
    dyn_list = t.List(t.DYN)
    functions = [
        _member("isSorted", "k8s_list_is_sorted", t.BOOL, [dyn_list], _is_sorted),
        _member("sum", "k8s_list_sum", t.DYN, [dyn_list], lambda xs: sum(xs)),
        _member("min", "k8s_list_min", t.DYN, [dyn_list], min),
        _member("max", "k8s_list_max", t.DYN, [dyn_list], max),
        _member("find", "k8s_string_find", t.STRING, [t.STRING, t.STRING], _regex_find),
        _member("findAll", "k8s_string_find_all", t.List(t.STRING), [t.STRING, t.STRING], _regex_find_all),
    ]
    return cel.NewEnv(
        variables={"self": t.DYN, "oldSelf": t.DYN, _OLD: t.DYN},
        extensions=[
            ext_strings.ExtStrings(),
            ext_math.ExtMath(),
            ext_optional.ExtOptional(),
            ext_bindings.ExtBindings(),
        ],
        functions=functions,
    )


def has_rules(schema: Any) -> bool:
    """Whether any node carries ``x-kubernetes-validations`` (then the server builds a CEL validator)."""
    if isinstance(schema, Mapping):
        return bool(schema.get("x-kubernetes-validations")) or any(has_rules(v) for v in schema.values())
    if isinstance(schema, list):
        return any(has_rules(v) for v in schema)
    return False


def uses_old_self(expression: str) -> bool:
    """Whether a rule is a transition rule (Kubernetes looks at the AST; a word match is enough here)."""
    return re.search(r"\boldSelf\b", expression) is not None


@functools.lru_cache(maxsize=4096)
def compile_rule(expression: str, optional_old_self: bool = False, old_present: bool = True) -> Any:
    """Compile (and type-check) a rule; ``CelError`` carries the compiler's message.

    With ``optional_old_self`` the rule is wrapped so ``oldSelf`` is an optional, present or not.
    """
    source = expression
    if optional_old_self:
        bound = f"optional.of({_OLD})" if old_present else "optional.none()"
        source = f"cel.bind(oldSelf, {bound}, {expression})"
    try:
        return _env().compile(source)
    except RuntimeError as err:
        raise CelError(_clean(str(err))) from err


def _clean(message: str) -> str:
    return re.sub(r"^[A-Z_]+: ", "", message).replace(" [INVALID_ARGUMENT]", "").strip()


def evaluate(
    expression: str, self_value: Any, old_self: Any = _MISSING, *, optional_old_self: bool = False
) -> Any:
    """Evaluate one expression; returns the Python value, raises ``CelError`` on evaluation errors."""
    program = compile_rule(expression, optional_old_self, old_self is not _MISSING)
    data: dict[str, Any] = {"self": self_value}
    if old_self is not _MISSING:
        data[_OLD if optional_old_self else "oldSelf"] = old_self
    try:
        result = program.eval(data=data)
    except RuntimeError as err:
        raise CelError(_clean(str(err))) from err
    if result.type().name() == "ERROR":
        raise CelError(_clean(str(result.value())))
    return result.value()


# --- walking the schema ------------------------------------------------------------------------

_RESERVED = frozenset(
    {
        *("true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function"),
        *("if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"),
    }
)


def _escape(name: str) -> str:
    """Kubernetes' CEL property-name escaping (``x-y`` -> ``x__dash__y``)."""
    if name in _RESERVED:
        return f"__{name}__"
    escaped = name.replace("__", "__underscores__")
    for char, word in ((".", "dot"), ("-", "dash"), ("/", "slash")):
        escaped = escaped.replace(char, f"__{word}__")
    return escaped


def _to_cel(value: Any, schema: Schema | None) -> Any:
    """JSON as CEL sees it under the schema: numbers are doubles, declared property names escaped."""
    if schema is None:
        return value
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        if props:
            return {_escape(k): _to_cel(v, props.get(k)) for k, v in value.items()}
        sub = additional if isinstance(additional, Mapping) else None
        return {k: _to_cel(v, sub) for k, v in value.items()}
    if isinstance(value, list):
        items = schema.get("items")
        return [_to_cel(v, items if isinstance(items, Mapping) else None) for v in value]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _type_name(schema: Schema) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "string"
    return str(schema.get("type") or "object")


def check_rules(schema: Schema, value: Any, old: Any, path: str) -> list[FieldError]:
    """Evaluate every rule that applies to ``value`` (and its children) under ``schema``.

    ``old`` is the stored value at the same place (None or missing when there is none); rules
    that use ``oldSelf`` run only where an old value correlates, unless ``optionalOldSelf``.
    """
    errors: list[FieldError] = []
    if value is None:
        return errors
    old_value = _MISSING if old is None else old
    for raw in schema.get("x-kubernetes-validations") or []:
        error = _check_rule(Rule.from_json(raw), schema, value, old_value, path)
        if error is not None:
            errors.append(error)
    errors += _check_children(schema, value, old_value, path)
    return errors


def _check_children(schema: Schema, value: Any, old: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        correlatable = schema.get("x-kubernetes-map-type") != "atomic" and isinstance(old, dict)
        for name, sub_value in value.items():
            sub_schema = props.get(name, additional if isinstance(additional, Mapping) else None)
            if sub_schema is None:
                continue
            sub_old = old.get(name) if correlatable else None
            sub_path = child(path, name) if name in props else key(path, name)
            errors += check_rules(sub_schema, sub_value, sub_old, sub_path)
    elif isinstance(value, list):
        items = schema.get("items")
        if not isinstance(items, Mapping):
            return errors
        old_by_key: dict[str, Any] = {}
        map_keys = schema.get("x-kubernetes-list-map-keys") or []
        if schema.get("x-kubernetes-list-type") == "map" and isinstance(old, list):
            old_by_key = {_map_key(o, map_keys): o for o in old if isinstance(o, dict)}
        for i, item in enumerate(value):
            sub_old = old_by_key.get(_map_key(item, map_keys)) if isinstance(item, dict) else None
            errors += check_rules(items, item, sub_old, index(path, i))
    return errors


def _map_key(item: Mapping[str, Any], keys: list[str]) -> str:
    return repr([item.get(k) for k in keys])


def _check_rule(rule: Rule, schema: Schema, value: Any, old: Any, path: str) -> FieldError | None:
    transition = uses_old_self(rule.rule)
    if transition and old is _MISSING and not rule.optional_old_self:
        return None
    self_cel = _to_cel(value, schema)
    old_cel = _MISSING if old is _MISSING or not transition else _to_cel(old, schema)
    where = path
    if rule.field_path:
        where = (path + _field_path(rule.field_path)) if path else _field_path(rule.field_path).lstrip(".")
    try:
        ok = evaluate(rule.rule, self_cel, old_cel, optional_old_self=rule.optional_old_self)
    except CelError as err:
        return FieldError(
            ErrorType.INVALID, where or "<nil>", f"{_default_message(rule)}: {err}", _type_name(schema)
        )
    if ok is True:
        return None
    message = _message(rule, self_cel, old_cel)
    return _reasoned(rule.reason, where or "<nil>", message, _type_name(schema))


def _default_message(rule: Rule) -> str:
    return rule.message or f"failed rule: {rule.rule.strip()}"


def _message(rule: Rule, self_cel: Any, old_cel: Any) -> str:
    if rule.message_expression:
        try:
            text = evaluate(rule.message_expression, self_cel, old_cel)
        except CelError:
            text = None
        if isinstance(text, str) and text.strip() and "\n" not in text:
            return text
    return _default_message(rule)


def _reasoned(reason: str, path: str, message: str, type_name: str) -> FieldError:
    if reason == "FieldValueForbidden":
        return FieldError(ErrorType.FORBIDDEN, path, message)
    if reason == "FieldValueRequired":
        return FieldError(ErrorType.REQUIRED, path, message)
    if reason == "FieldValueDuplicate":
        return FieldError(ErrorType.DUPLICATE, path, value=type_name)
    return FieldError(ErrorType.INVALID, path, message, type_name)


def _field_path(raw: str) -> str:
    """A rule's ``fieldPath`` (``.spec.x['y']``) as a field path suffix (``.spec.x[y]``)."""
    text = raw.strip()
    return re.sub(r"\[['\"]([^'\"]*)['\"]\]", r"[\1]", text)
