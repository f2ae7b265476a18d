"""What the installed vLLM accepts as engine arguments: each ``AsyncEngineArgs`` field's JSON types.

The operator ships this table as data (``deepseek_operator/engine_args/vllm-<version>.json``,
written by ``dsd engine-args``), so that its validation refuses a misspelt or ill-typed
``engineArgs`` key before any GPU starts, without vLLM installed. Here is the one place that reads
vLLM's own declarations to build it; vLLM is imported when ``describe_engine_args`` runs, never at
module import.

Engine arguments reach vLLM from YAML/JSON through Ray Serve LLM's ``engine_kwargs``, i.e. as Python
keyword arguments, not through vLLM's command-line parser: a value must already have the field's
type. The mapping from a field's annotation to JSON types, chosen to refuse only what vLLM refuses:

- ``bool`` -> boolean; ``int`` -> integer; ``float`` -> number (integers too); ``str`` -> string;
  ``None`` -> null; ``list``/``tuple``/``set`` -> array; ``dict``, its subclasses and TypedDicts ->
  object.
- ``Literal[...]`` -> its values as ``choices``, unless ``str`` is accepted too (then any string).
- a config dataclass or pydantic model (``compilation_config``, ``eplb_config``, ...) -> object:
  ``EngineArgs.__post_init__`` or vLLM's pydantic configs build it from a mapping.
- an ``Enum`` -> the JSON types of its values (vLLM converts names and values itself).
- ``Any`` -> every type; Python-only types (``type[...]``, callables, ``torch.dtype``) -> nothing,
  and a field left with nothing accepts every type rather than refusing what it cannot describe.

Private fields (a leading ``_``) are left out.
"""

from __future__ import annotations

import builtins
import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["JSON_TYPES", "describe_engine_args", "json_types_of"]

JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
_SCALARS: dict[Any, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    type(None): "null",
}
_COLLECTIONS: dict[Any, str] = {
    list: "array",
    tuple: "array",
    set: "array",
    frozenset: "array",
    dict: "object",
}


def json_types_of(annotation: Any) -> tuple[set[str], list[Any]]:
    """The JSON types and the fixed choices an annotation accepts (see the module docstring)."""
    kinds: set[str] = set()
    choices: list[Any] = []
    for hint in _flatten(annotation):
        origin = typing.get_origin(hint)
        if hint is Any:
            kinds.update(JSON_TYPES)
        elif origin is typing.Literal:
            choices += [value for value in typing.get_args(hint) if value not in choices]
        elif hint in _SCALARS:
            kinds.add(_SCALARS[hint])
        elif (origin or hint) in _COLLECTIONS:
            kinds.add(_COLLECTIONS[origin or hint])
        elif isinstance(hint, type) and issubclass(hint, enum.Enum):
            kinds.update(_SCALARS.get(type(member.value), "string") for member in hint)
        elif _is_mapping_like(hint):
            kinds.add("object")
        # Anything else (type[...], Callable, torch.dtype, ...) cannot come from YAML.
    if "string" in kinds:
        choices = [choice for choice in choices if not isinstance(choice, str)]
    if not kinds and not choices:
        kinds.update(JSON_TYPES)
    return kinds, choices


def _flatten(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [hint for argument in typing.get_args(annotation) for hint in _flatten(argument)]
    if hasattr(annotation, "__value__") and type(annotation).__name__ == "TypeAliasType":
        return _flatten(annotation.__value__)
    return [annotation]


def _is_mapping_like(hint: Any) -> bool:
    if typing.is_typeddict(hint):
        return True
    if not isinstance(hint, type):
        return False
    return issubclass(hint, dict) or dataclasses.is_dataclass(hint) or hasattr(hint, "model_fields")


def describe_engine_args(
    fields_of: Callable[[], tuple[str, list[tuple[str, Any]]]] | None = None,
) -> tuple[str, dict[str, dict[str, list[Any]]]]:
    """The installed vLLM's version and its engine arguments as ``{name: {"types", "choices"}}``.

    Parameters:
        fields_of: returns the version and ``(name, annotation)`` pairs; by default the installed
            vLLM's ``AsyncEngineArgs`` fields (tests pass their own).

    Raises:
        ImportError: vLLM is not installed.
    """
    version, fields = (fields_of or _vllm_fields)()
    arguments: dict[str, dict[str, list[Any]]] = {}
    for name, annotation in fields:
        if name.startswith("_"):
            continue
        kinds, choices = json_types_of(annotation)
        entry: dict[str, list[Any]] = {"types": sorted(kinds)}
        if choices:
            entry["choices"] = choices
        arguments[name] = entry
    return version, arguments


def _vllm_fields() -> tuple[str, list[tuple[str, Any]]]:
    import sys

    import vllm
    from vllm.engine.arg_utils import AsyncEngineArgs

    namespace = vars(sys.modules[AsyncEngineArgs.__module__])
    return str(vllm.__version__), [
        (field.name, _resolve(field.type, namespace)) for field in dataclasses.fields(AsyncEngineArgs)
    ]


def _resolve(annotation: Any, namespace: dict[str, Any]) -> Any:
    """A string annotation evaluated in its module; names imported only for type checking (vLLM's
    ``QuantizationConfigArgs``) become opaque classes, which accept nothing from YAML."""
    if not isinstance(annotation, str):
        return annotation
    return eval(annotation, {}, _Names(namespace))


class _Names(dict[str, Any]):
    def __init__(self, namespace: dict[str, Any]) -> None:
        super().__init__()
        self._namespace = namespace

    def __missing__(self, name: str) -> Any:
        if name in self._namespace:
            return self._namespace[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        return type(name, (), {})
