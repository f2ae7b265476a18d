"""The chart's PrometheusRule as Helm renders it, and its groups as a Prometheus rule file.

Helm (helm-sdkpy, the real engine) installs the chart into a test API server of its own (Helm
needs a cluster; a stub CRD stands in for prometheus-operator's), with the PrometheusRule on and
the given values; `rule_file_text` writes `spec.groups` the way prometheus-operator hands them to
Prometheus (a rule file with `groups:`), for `promtool` and for a real Prometheus.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml

from deepseek_operator.testing.server import ApiServer
from tests.crd_stubs import preserve_unknown_crd

ROOT = Path(__file__).parents[2]
CHART = ROOT / "charts" / "deepseek-operator"
STUB_CRDS = [
    preserve_unknown_crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
    preserve_unknown_crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules"),
]


def render_prometheus_rule(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chart's PrometheusRule object with `metrics.prometheusRule` values merged over enabled."""
    import helm_sdkpy as helm

    rule_values = {"enabled": True, **((values or {}).get("metrics", {}).get("prometheusRule", {}))}
    merged = {
        **(values or {}),
        "metrics": {**(values or {}).get("metrics", {}), "prometheusRule": rule_values},
    }
    with tempfile.TemporaryDirectory() as directory, ApiServer() as server:
        crds = Path(directory, "crds.yaml")
        crds.write_text(yaml.safe_dump_all(STUB_CRDS))
        server.install_crds([crds])
        kubeconfig = server.write_kubeconfig(Path(directory, "kubeconfig"))
        config = helm.Configuration(namespace="default", kubeconfig=str(kubeconfig))
        release = asyncio.run(
            helm.Install(config).run(f"rules-{uuid.uuid4().hex[:6]}", str(CHART), values=merged, wait=False)
        )
    documents = [doc for doc in yaml.safe_load_all(release["manifest"]) if doc]
    (rule,) = [doc for doc in documents if doc["kind"] == "PrometheusRule"]
    return rule


def rule_file_text(rule: dict[str, Any]) -> str:
    """A Prometheus rule file of the PrometheusRule's groups."""
    return yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False, width=1000)


def alerting_rules(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r}


def recording_rules(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["record"]: r for group in rule["spec"]["groups"] for r in group["rules"] if "record" in r}
