"""`dsd operator` as a process of its own, as a pod runs it: env settings, kopf's /healthz, SIGTERM.

A process (not kopf's in-thread `KopfRunner`) where a thread cannot do: two replicas with their
own identity, settings read at import, a stop by signal, the operator's own memory (the
benchmark), an operator beside an embedded Ray (the e2e suite).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """`python -m deepseek_operator operator` with a kubeconfig and `DSD_*` settings."""

    def __init__(
        self,
        kubeconfig: Path,
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        standalone: bool = False,
        hostname: str = "replica",
    ) -> None:
        self.health_port = free_port()
        self.log = log
        self._args = [
            sys.executable,
            "-m",
            "deepseek_operator",
            "operator",
            "--liveness",
            f"http://127.0.0.1:{self.health_port}/healthz",
            *(["--standalone"] if standalone else []),
        ]
        self._env = {
            **os.environ,
            "DSD_SERVER__METRICS_PORT": "0",  # many operators share a machine in tests
            "KUBECONFIG": str(kubeconfig),
            "HOSTNAME": hostname,  # the Events' reportingInstance, as in a pod
            "POD_ID": hostname,  # kopf's peering identity, as the chart sets it
            **(env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60.0) -> OperatorProcess:
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(self._args, env=self._env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"the operator exited with {self._process.returncode}:\n{self.output}")
            if self.healthy():
                return self
            time.sleep(0.1)
        raise AssertionError(f"the operator was not healthy within {timeout}s:\n{self.output}")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def exited(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: signal.Signals = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        """Signal the process and wait; returns its exit code (killed after `timeout`)."""
        if self._process is None or self._process.poll() is not None:
            return self._process.returncode if self._process else 0
        self._process.send_signal(sig)
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self._process.wait()

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
