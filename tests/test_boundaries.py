"""Import boundaries (STYLE.md rule 1): the pure core stays pure, the operator stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
OPERATOR = ROOT / "operator" / "deepseek_operator"
SERVING = ROOT / "serving" / "deepseek_serving"
PURE_FORBIDDEN = {"kopf", "kubernetes", "ray", "vllm", "torch", "asyncio", "time", "aiohttp", "httpx"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


# The EPLB benchmark imports vLLM's reference inside one function, by design: not a pure module.
PURE_MODULES = sorted(
    path
    for path in [*OPERATOR.glob("planner/*.py"), *OPERATOR.glob("api/*.py"), *OPERATOR.glob("modelcfg/*.py")]
    + [OPERATOR / name for name in ("validation.py", "crdgen.py", "errors.py", "quantity.py", "hardware.py")]
    if path.name != "eplb_bench.py"
)


@pytest.mark.parametrize("module", PURE_MODULES, ids=lambda path: str(path.relative_to(OPERATOR)))
def test_pure_modules_do_no_io_imports(module: Path) -> None:
    assert not _top(_imports(module)) & PURE_FORBIDDEN


def test_the_operator_never_imports_the_engines() -> None:
    offenders = {
        str(path.relative_to(OPERATOR)): _top(_imports(path)) & {"ray", "vllm", "torch"}
        for path in OPERATOR.rglob("*.py")
        if "testing" not in path.parts and path.name != "eplb_bench.py"
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_serving_never_imports_kopf_or_the_operator() -> None:
    offenders = {
        str(path.relative_to(SERVING)): _top(_imports(path)) & {"kopf", "deepseek_operator"}
        for path in SERVING.rglob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_cli_loads_without_the_serving_stack() -> None:
    """`dsd` on the operator's light install: importing it must not pull Ray, vLLM or torch in."""
    probe = "import sys, deepseek_operator.cli; print(sorted({'ray', 'vllm', 'torch'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
