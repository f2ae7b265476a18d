"""`python -m deepseek_operator.testing up`: what a person starts to try the operator by hand."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


def test_up_installs_the_projects_crds_by_default(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "deepseek_operator.testing", "up", "--no-kuberay-crds",
        "--kubeconfig", str(tmp_path / "kubeconfig"),
    ]  # fmt: skip
    up = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert up.stdout is not None
        lines = [up.stdout.readline() for _ in range(3)]
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=30)
    crds = next(line for line in lines if line.startswith("CRDs:"))
    assert "deepseekdeployments.deepseek.serving.dev" in crds
    assert "clusterkopfpeerings.kopf.dev" in crds
    assert (tmp_path / "kubeconfig").exists()
