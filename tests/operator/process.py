"""The operator as its own process, with the fast resync and backoff the operator tests want."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepseek_operator.testing.process import OperatorProcess as _OperatorProcess
from deepseek_operator.testing.process import free_port

__all__ = ["OperatorProcess", "free_port"]

TEST_ENV = {"DSD_RECONCILE__RESYNC_SECONDS": "2", "DSD_RECONCILE__BACKOFF_INITIAL_SECONDS": "0.2"}


class OperatorProcess(_OperatorProcess):
    def __init__(
        self, kubeconfig: Path, log: Path, *, env: Mapping[str, str] | None = None, **options: Any
    ) -> None:
        super().__init__(kubeconfig, log, env={**TEST_ENV, **(env or {})}, **options)
