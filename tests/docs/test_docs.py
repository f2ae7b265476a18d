"""The docs run: every shell command of `docs/*.md` is executed, in order, against the test
environment, and the troubleshooting page names every word the operator writes.

A command is a line of a fenced `bash` block (with `\\` continuations and heredocs), or a `$ ` line
of a `console` block. A `#` comment line right before a command can say how it runs:
- `# cluster-only: <reason>`: not run (it needs a real cluster: pods, port-forwarding, Argo CD…);
- `# exits <N>: <reason>`: run, and must exit with N (a refused resource, a plan that does not fit);
- `# runs until Ctrl-C`: run for a few seconds, must print something and still be running.
Every other command must exit 0.

Each page gets a cluster of its own (`tests.gitops.environment`: the test API server with KubeRay's
and our CRDs, prometheus-operator's CRDs as stubs, the KubeRay stand-in with `InstantServe`, and
`dsd operator` as a process), and runs in a scratch directory holding the repository's `charts/`,
`crds/` and `examples/`. kubectl is the real one; `helm` is `tests/docs/helm_shim.py`, the real
Helm engine behind the few subcommands the pages use (no `helm` binary exists here).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from deepseek_operator.api.constants import EventReason, Phase, Reason
from tests.chart.rules import STUB_CRDS, alerting_rules, render_prometheus_rule

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(path.name for path in DOCS.glob("*.md"))
SHELL_FENCES = {"bash", "console"}
OTHER_SHELL_FENCES = {"sh", "shell", "zsh", "shell-session"}
COMMAND_TIMEOUT_S = 240
INTERRUPT_AFTER_S = 6
RESULTS: dict[str, dict[str, int]] = {}


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str
    mode: str = "run"
    """run, cluster-only, exits or until-interrupt."""
    reason: str = ""
    exit_code: int = 0


_MARKS = [
    (re.compile(r"^#\s*cluster-only:\s*(.*)$"), "cluster-only"),
    (re.compile(r"^#\s*exits\s+(\d+):\s*(.*)$"), "exits"),
    (re.compile(r"^#\s*runs until Ctrl-C\b\s*:?\s*(.*)$"), "until-interrupt"),
]
_HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")


def extract(page: str, text: str) -> list[Command]:
    """Every command of the page's `bash` and `console` blocks, with its mark."""
    lines = text.splitlines()
    commands: list[Command] = []
    index = 0
    while index < len(lines):
        fence = re.match(r"^```(\S*)\s*$", lines[index])
        if not fence or not fence.group(1):
            index += 1
            continue
        language, start = fence.group(1), index + 1
        end = next(i for i in range(start, len(lines)) if lines[i].startswith("```"))
        assert language not in OTHER_SHELL_FENCES, f"{page}:{index + 1}: use ```bash or ```console"
        if language in SHELL_FENCES:
            commands += _block(page, lines, start, end, console=language == "console")
        index = end + 1
    return commands


def _block(page: str, lines: list[str], start: int, end: int, *, console: bool) -> list[Command]:
    found: list[Command] = []
    mark: tuple[str, str, int] = ("run", "", 0)
    index = start
    while index < end:
        raw = lines[index]
        stripped = raw.strip()
        if console:
            if not stripped.startswith("$ ") and not stripped.startswith("# "):
                index += 1  # output
                continue
            stripped = stripped[2:] if stripped.startswith("$ ") else stripped
        if not stripped:
            index += 1
            continue
        if stripped.startswith("#"):
            for pattern, mode in _MARKS:
                matched = pattern.match(stripped)
                if matched:
                    if mode == "exits":
                        mark = (mode, matched.group(2), int(matched.group(1)))
                    else:
                        mark = (mode, matched.group(1), 0)
            index += 1
            continue
        first = index
        command = [stripped]
        while command[-1].endswith("\\") and index + 1 < end:
            index += 1
            command.append(lines[index].strip().removeprefix("> "))
        heredoc = _HEREDOC.search("\n".join(command))
        if heredoc:
            while index + 1 < end and lines[index + 1].strip() != heredoc.group(1):
                index += 1
                command.append(lines[index])
            index += 1
            command.append(heredoc.group(1))
        found.append(Command(page, first + 1, "\n".join(command), mark[0], mark[1], mark[2]))
        mark = ("run", "", 0)
        index += 1
    return found


def test_the_extractor_reads_marks_continuations_and_heredocs() -> None:
    text = (
        "```bash\n# cluster-only: needs pods\nkubectl logs x\n# exits 1: refused\ndsd validate a \\\n"
        "  --quiet\ncat > f <<'EOF'\na: 1\nEOF\n```\n```console\n$ dsd catalog\ndeepseek-v3\n```\n"
        "```yaml\nnot: run\n```\n"
    )
    commands = extract("page.md", text)
    assert [(c.mode, c.text, c.exit_code) for c in commands] == [
        ("cluster-only", "kubectl logs x", 0),
        ("exits", "dsd validate a \\\n--quiet", 1),
        ("run", "cat > f <<'EOF'\na: 1\nEOF", 0),
        ("run", "dsd catalog", 0),
    ]
    assert commands[0].reason == "needs pods"


def _helm_shim(bin_dir: Path) -> None:
    shim = bin_dir / "helm"
    shim.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.docs.helm_shim import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    shim.chmod(0o755)


def _run(command: Command, workdir: Path, env: dict[str, str]) -> tuple[int | None, str]:
    """(exit code, or None when interrupted while running; output) of one command."""
    script = f"set -o pipefail\n{command.text}\n"
    if command.mode == "until-interrupt":
        process = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-c", script],
            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        time.sleep(INTERRUPT_AFTER_S)
        running = process.poll() is None
        if running:
            os.killpg(process.pid, signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        return (None if running else process.returncode), output
    try:
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", script],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as timeout:
        partial = (timeout.stdout or b"") + (timeout.stderr or b"")
        text = partial.decode(errors="replace") if isinstance(partial, bytes) else str(partial)
        return -1, f"timed out after {COMMAND_TIMEOUT_S} s; output so far:\n{text}"
    return done.returncode, done.stdout + done.stderr


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("page", PAGES)
def test_every_command_of_the_page_runs(page: str, tmp_path: Path) -> None:
    pytest.importorskip("helm_sdkpy", reason="install helm-sdkpy (see pyproject's testing extra notes)")
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    from tests.gitops.environment import operator_environment

    commands = extract(page, (DOCS / page).read_text())
    cluster_only = [c for c in commands if c.mode == "cluster-only"]
    assert all(c.reason.strip() for c in cluster_only), "a cluster-only command says why"
    runnable = [c for c in commands if c.mode != "cluster-only"]
    RESULTS[page] = {"commands": len(commands), "executed": 0, "cluster-only": len(cluster_only)}
    if not runnable:
        return
    workdir, bin_dir = tmp_path / "work", tmp_path / "bin"
    workdir.mkdir()
    bin_dir.mkdir()
    for name in ("charts", "crds", "examples", "schemas"):
        (workdir / name).symlink_to(ROOT / name)
    _helm_shim(bin_dir)
    # The operator's default resync (the pages describe an operator as the chart runs it).
    with operator_environment(tmp_path / "env", env={"DSD_RECONCILE__RESYNC_SECONDS": "30"}) as environment:
        (tmp_path / "stubs.yaml").write_text(yaml.safe_dump_all(STUB_CRDS))
        environment.server.install_crds([tmp_path / "stubs.yaml"])
        env = {
            **os.environ,
            "KUBECONFIG": str(environment.kubeconfig),
            "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]),
            "COLUMNS": "160",
            "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        for command in runnable:
            code, output = _run(command, workdir, env)
            where = f"{page}:{command.line}: {command.text}"
            if command.mode == "until-interrupt":
                assert code in (None, 0), f"{where}\nexited {code}:\n{output}"
                assert output.strip(), f"{where}\nprinted nothing"
            else:
                assert code == command.exit_code, (
                    f"{where}\nexited {code}, expected {command.exit_code}:\n{output[-4000:]}\n"
                    f"operator log:\n{environment.operator.output[-3000:]}"
                )
            RESULTS[page]["executed"] += 1
    print(f"\n{page}: {RESULTS[page]}")


def test_no_page_hides_shell_in_another_fence() -> None:
    for page in PAGES:
        fences = re.findall(r"^```(\S+)", (DOCS / page).read_text(), flags=re.MULTILINE)
        assert not set(fences) & OTHER_SHELL_FENCES, page


def test_the_pages_have_commands_to_run() -> None:
    total = {page: extract(page, (DOCS / page).read_text()) for page in PAGES}
    for page in ("user-guide.md", "troubleshooting.md", "gitops.md"):
        runnable = [c for c in total[page] if c.mode != "cluster-only"]
        assert len(runnable) >= 5, page


TROUBLESHOOTING = DOCS / "troubleshooting.md"


@pytest.mark.parametrize(
    ("vocabulary", "words"),
    [
        ("Phase", [member.value for member in Phase]),
        ("Reason", [member.value for member in Reason]),
        ("EventReason", [member.value for member in EventReason]),
    ],
)
def test_troubleshooting_explains_every_word_the_operator_writes(vocabulary: str, words: list[str]) -> None:
    text = TROUBLESHOOTING.read_text()
    rows = {match.group(1) for match in re.finditer(r"^\| `([A-Za-z]+)` \|", text, flags=re.MULTILINE)}
    missing = [word for word in words if word not in rows]
    assert not missing, f"{vocabulary} values without a row in docs/troubleshooting.md: {missing}"


def test_troubleshooting_explains_every_alert() -> None:
    pytest.importorskip("helm_sdkpy", reason="install helm-sdkpy (see pyproject's testing extra notes)")
    text = TROUBLESHOOTING.read_text()
    missing = [name for name in alerting_rules(render_prometheus_rule()) if f"| `{name}` |" not in text]
    assert not missing, f"alerts without a row in docs/troubleshooting.md: {missing}"
