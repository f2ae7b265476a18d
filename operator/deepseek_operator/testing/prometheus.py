"""A real Prometheus for tests: the Debian package's binary run as a plain process on 127.0.0.1.

Canary analysis queries Prometheus (PromQL over vLLM and Ray Serve metrics); tests and the e2e
suite give it a real one rather than a fake of the HTTP API. ``PrometheusServer`` writes a config
with static scrape targets (scraped every second by default) and optional rule files, keeps its
TSDB in a temporary directory, waits for ``/-/ready``, queries (``query``, ``query_range``) and
reloads on target changes (``--web.enable-lifecycle``).

Differences from a Prometheus in a cluster (where the chart's ServiceMonitor feeds the
Prometheus Operator): targets are static URLs given by the caller, no service discovery or
relabelling beyond per-target labels, no remote write, no alerting; a target change reaches
the scrape loop through Prometheus' discovery manager, which batches updates (up to ~5 s).

Install: ``apt-get install -y --no-install-recommends prometheus`` (``PROMETHEUS_INSTALL``;
``scripts/test`` does it on CI); without the binary the pytest fixture skips with that command.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import yaml

from deepseek_operator.testing.clock import system_clock
from deepseek_operator.testing.process import free_port

__all__ = [
    "PROMETHEUS_INSTALL",
    "PrometheusError",
    "PrometheusServer",
    "ScrapeTarget",
    "find_prometheus",
    "render_prometheus_config",
]

PROMETHEUS_INSTALL: Final = "apt-get install -y --no-install-recommends prometheus"


class PrometheusError(RuntimeError):
    """Prometheus did not start, or answered a query with an error."""


def find_prometheus() -> str | None:
    """``prometheus`` on PATH (the Debian package installs ``/usr/bin/prometheus``), or None."""
    return shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin:/usr/local/bin")


@dataclass(frozen=True)
class ScrapeTarget:
    """One endpoint to scrape."""

    url: str
    """``http://host:port/path`` (the path defaults to ``/metrics``) or ``host:port``.
    Example: a ``prometheus_client`` server's ``http://127.0.0.1:9100/metrics``."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels added to every series of this target (``{"version": "canary"}``)."""

    @property
    def address(self) -> str:
        return urlsplit(self._full_url).netloc

    @property
    def scrape_url(self) -> str:
        """As Prometheus reports it in ``/api/v1/targets``."""
        parts = urlsplit(self._full_url)
        return f"{parts.scheme}://{parts.netloc}{parts.path or '/metrics'}"

    @property
    def _full_url(self) -> str:
        return self.url if "://" in self.url else f"http://{self.url}"


def _target(target: str | ScrapeTarget) -> ScrapeTarget:
    return target if isinstance(target, ScrapeTarget) else ScrapeTarget(target)


def render_prometheus_config(
    targets: Sequence[ScrapeTarget],
    *,
    scrape_interval_s: float = 1.0,
    evaluation_interval_s: float = 1.0,
    rule_files: Sequence[Path] = (),
    job: str = "dsd",
) -> dict[str, Any]:
    """The Prometheus config (pure): one job; each target a ``static_configs`` entry of its own so
    that it keeps its own labels, scheme and metrics path (``__scheme__``/``__metrics_path__``).

    Example: ``[ScrapeTarget("http://127.0.0.1:9100/metrics", {"version": "v1"})]`` ->
    ``static_configs: [{targets: ["127.0.0.1:9100"], labels: {version: v1, __scheme__: http,
    __metrics_path__: /metrics}}]``.
    """
    static_configs = []
    for target in targets:
        parts = urlsplit(target.scrape_url)
        labels = {**target.labels, "__scheme__": parts.scheme, "__metrics_path__": parts.path}
        static_configs.append({"targets": [target.address], "labels": labels})
    interval = f"{round(scrape_interval_s * 1000)}ms"
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": f"{round(evaluation_interval_s * 1000)}ms",
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": static_configs}],
    }


def _kill(process: subprocess.Popen[bytes], directory: str) -> None:
    """Finalizer: nothing outlives the interpreter, even when ``stop`` was never called."""
    if process.poll() is None:
        process.kill()
        process.wait()
    shutil.rmtree(directory, ignore_errors=True)


class PrometheusServer:
    """A Prometheus process with static targets: ``with PrometheusServer([url]) as prom: prom.query(...)``."""

    def __init__(
        self,
        targets: Iterable[str | ScrapeTarget] = (),
        *,
        scrape_interval_s: float = 1.0,
        evaluation_interval_s: float = 1.0,
        rule_files: Iterable[Path] = (),
        job: str = "dsd",
        binary: str | None = None,
        start_timeout_s: float = 60.0,
    ) -> None:
        """
        Parameters:
            targets: URLs (``http://127.0.0.1:9100/metrics``) or ``ScrapeTarget``s with labels.
            scrape_interval_s, evaluation_interval_s: seconds (tests want ~1 s).
            rule_files: recording/alerting rule files (``promtool check rules`` format).
            job: the ``job`` label of every target.
            binary: the Prometheus executable (``find_prometheus()`` when None).
        """
        self.targets = [_target(t) for t in targets]
        self.scrape_interval_s = scrape_interval_s
        self.evaluation_interval_s = evaluation_interval_s
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.job = job
        self.binary = binary
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.directory = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = Path(self.directory, "prometheus.log")
        return path.read_text(errors="replace") if self.directory and path.exists() else ""

    def _write_config(self) -> Path:
        config = render_prometheus_config(
            self.targets,
            scrape_interval_s=self.scrape_interval_s,
            evaluation_interval_s=self.evaluation_interval_s,
            rule_files=self.rule_files,
            job=self.job,
        )
        path = Path(self.directory, "prometheus.yml")
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self) -> PrometheusServer:
        """Start Prometheus; returns once ``/-/ready`` answers 200 and the targets are loaded."""
        binary = self.binary or find_prometheus()
        if binary is None:
            raise PrometheusError(f"prometheus is not installed: {PROMETHEUS_INSTALL}")
        self.directory = tempfile.mkdtemp(prefix="dsd-prometheus-")
        config = self._write_config()
        for _attempt in range(3):  # a free port can be taken before Prometheus binds it
            self.port = free_port()
            with Path(self.directory, "prometheus.log").open("wb") as log:
                self._process = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={Path(self.directory, 'data')}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--web.enable-lifecycle",
                        "--log.level=warn",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            weakref.finalize(self, _kill, self._process, self.directory)
            if self._wait_ready():
                self._wait_for_targets()
                return self
            if "address already in use" not in self.log:
                break
        raise PrometheusError(f"Prometheus did not become ready:\n{self.log[-3000:]}")

    def _wait_ready(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                if self._http.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self._process.kill()
        self._process.wait()
        return False

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._http.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    # --- targets ---------------------------------------------------------------------------------

    def set_targets(self, targets: Iterable[str | ScrapeTarget]) -> None:
        """Scrape exactly these from now on: rewrite the config, reload, wait until Prometheus
        lists them (its discovery manager batches changes: up to ~5 s)."""
        self.targets = [_target(t) for t in targets]
        self.reload()

    def add_target(self, target: str | ScrapeTarget) -> None:
        self.set_targets([*self.targets, _target(target)])

    def reload(self) -> None:
        """Apply the config (targets, rule files) without a restart."""
        self._write_config()
        response = self._http.post(f"{self.url}/-/reload")
        if response.status_code != 200:
            raise PrometheusError(f"reload failed ({response.status_code}): {response.text.strip()}")
        self._wait_for_targets()

    def active_targets(self) -> list[dict[str, Any]]:
        """``/api/v1/targets``' active targets (``scrapeUrl``, ``health``, ``lastScrape``, ``labels``)."""
        targets: list[dict[str, Any]] = self._api("targets", {"state": "active"})["activeTargets"]
        return targets

    def _wait_for_targets(self) -> None:
        wanted = sorted(t.scrape_url for t in self.targets)
        deadline = time.monotonic() + 30
        while sorted(t["scrapeUrl"] for t in self.active_targets()) != wanted:
            if time.monotonic() > deadline:
                raise PrometheusError(f"Prometheus did not load targets {wanted}: {self.active_targets()}")
            time.sleep(0.1)

    def wait_until_scraped(self, *, timeout_s: float = 30.0) -> None:
        """Until every target was scraped successfully at least once."""
        deadline = time.monotonic() + timeout_s
        while True:
            targets = self.active_targets()
            if all(t["health"] == "up" for t in targets):
                return
            if time.monotonic() > deadline:
                raise PrometheusError(f"targets not all up within {timeout_s}s: {targets}")
            time.sleep(0.1)

    # --- queries ---------------------------------------------------------------------------------

    def _api(self, path: str, params: Mapping[str, Any]) -> Any:
        response = self._http.get(f"{self.url}/api/v1/{path}", params=params)
        try:
            payload = response.json()
        except ValueError:
            raise PrometheusError(f"{path}: HTTP {response.status_code}: {response.text[:500]}") from None
        if payload.get("status") != "success":
            raise PrometheusError(
                f"{payload.get('errorType', 'error')}: {payload.get('error', response.text)}"
            )
        return payload["data"]

    def query(self, promql: str, *, at: datetime | float | None = None) -> list[Any]:
        """An instant query's ``result``: for a vector, ``[{"metric": {...}, "value": [t, "v"]}, ...]``;
        for a scalar or string, ``[t, "v"]``."""
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = _timestamp(at)
        result: list[Any] = self._api("query", params)["result"]
        return result

    def query_range(
        self,
        promql: str,
        *,
        start: datetime | float | None = None,
        end: datetime | float | None = None,
        step_s: float = 1.0,
    ) -> list[Any]:
        """A range query's ``result`` (``[{"metric": {...}, "values": [[t, "v"], ...]}, ...]``);
        ``end`` defaults to now and ``start`` to a minute before ``end``."""
        end_at = _timestamp(end if end is not None else system_clock())
        start_at = _timestamp(start) if start is not None else end_at - 60
        params = {"query": promql, "start": start_at, "end": end_at, "step": step_s}
        result: list[Any] = self._api("query_range", params)["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The single number an instant query returns now; None while it returns nothing."""
        result = self.query(promql)
        if not result:
            return None
        if isinstance(result[0], dict):
            if len(result) > 1:
                raise PrometheusError(f"{promql} returns {len(result)} series, not one number")
            return float(result[0]["value"][1])
        return float(result[1])


def _timestamp(moment: datetime | float) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)
