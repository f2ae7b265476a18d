"""Import boundaries (STYLE.md rule 1): the pure core stays pure, the operator stays light."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
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


PURE_MODULES = sorted(
    [*OPERATOR.glob("planner/*.py"), *OPERATOR.glob("api/*.py"), *OPERATOR.glob("modelcfg/*.py")]
    + [OPERATOR / name for name in ("validation.py", "crdgen.py", "errors.py", "quantity.py", "hardware.py")]
)


@pytest.mark.parametrize("module", PURE_MODULES, ids=lambda path: str(path.relative_to(OPERATOR)))
def test_pure_modules_do_no_io_imports(module: Path) -> None:
    assert not _top(_imports(module)) & PURE_FORBIDDEN


def test_the_operator_never_imports_the_engines() -> None:
    """Benchmarks are the exception: they measure against the engines' own code in the same run."""
    offenders = {
        str(path.relative_to(OPERATOR)): _top(_imports(path)) & {"ray", "vllm", "torch"}
        for path in OPERATOR.rglob("*.py")
        if not {"testing", "bench"} & set(path.relative_to(OPERATOR).parts)
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


# The test environment is not part of the product (issue 10): not in the operator's wheel (so not
# in its image), and imported only by the benches that drive it, behind `bench.require_testing`.
TESTING_DRIVERS = {"bench/apiserver.py", "bench/reconcile.py"}


def test_only_the_benches_that_drive_it_import_the_test_environment() -> None:
    importers = {
        str(path.relative_to(OPERATOR))
        for path in OPERATOR.rglob("*.py")
        if "testing" not in path.relative_to(OPERATOR).parts
        and any(name.startswith("deepseek_operator.testing") for name in _imports(path))
    }
    assert importers == TESTING_DRIVERS


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """The files of both wheels, built from this checkout (offline: hatchling is a dev dependency)."""
    out = tmp_path_factory.mktemp("wheels")
    for project in (ROOT, ROOT / "operator" / "testing-env"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                out,
                project,
            ],
            check=True,
            capture_output=True,
        )
    return {wheel.name.split("-")[0]: set(zipfile.ZipFile(wheel).namelist()) for wheel in out.glob("*.whl")}


def test_the_operator_wheel_leaves_the_test_environment_out(wheels: dict[str, set[str]]) -> None:
    operator_files = wheels["deepseek_operator"]
    assert "deepseek_operator/reconcile.py" in operator_files
    assert not {name for name in operator_files if name.startswith("deepseek_operator/testing/")}


def test_the_testing_extra_installs_the_test_environment(wheels: dict[str, set[str]]) -> None:
    testing_files = wheels["deepseek_operator_testing"]
    assert "deepseek_operator/testing/server.py" in testing_files
    assert all(
        name.startswith(("deepseek_operator/testing/", "deepseek_operator_testing-"))
        for name in testing_files
    )


def test_a_bench_without_the_test_environment_says_what_to_install() -> None:
    """`dsd bench reconcile` on the operator's own install: one line naming the extra, exit 2."""
    probe = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('deepseek_operator.testing'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from deepseek_operator.cli import app\n"
        "app(['bench', 'reconcile', '--resources', '1'])\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"}
    )
    assert ran.returncode == 2, ran.stderr
    assert "install the `testing` extra" in ran.stderr
    assert "Traceback" not in ran.stderr
