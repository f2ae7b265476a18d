"""Every `dsd bench` measurement, one module each; `cli/bench.py` prints them.

Each bench measures against a named baseline taken in the same run, and prints the ratio:

- `validate`: full validation of one file against parsing its YAML (the webhook budget);
- `eplb`: our expert placement against vLLM's own EPLB policy on the same loads;
- `serving`: our Ray Serve application against bare vLLM, same engine arguments (needs the
  `serving` and `cpu` extras);
- `apiserver`: the test API server's watch latency and throughput, the floor of `reconcile`;
- `reconcile`: `dsd operator` reconciling many deployments against the limiter's floor;
- `rollout`: canary detection time, false rollbacks and surge capacity, simulated on the real
  lifecycle, against KubeRay's blue/green and incremental upgrades;
- `autoscale`: our group autoscaler against Ray Serve's default, HPA/KEDA, llm-d and an oracle,
  simulated on request traces (seeded or from a CSV).

`apiserver` and `reconcile` drive the test environment (`deepseek_operator.testing`), which is
not part of the operator's install: `require_testing` says what to install when it is missing.
"""

from __future__ import annotations

import importlib.util

__all__ = ["MissingExtra", "require_testing"]


class MissingExtra(RuntimeError):
    """A bench needs a part of the project this install does not have."""


def require_testing(bench: str) -> None:
    """Raise `MissingExtra` naming the install when the test environment is absent."""
    if importlib.util.find_spec("aiohttp") is None or not _has_testing_package():
        raise MissingExtra(
            f"`dsd bench {bench}` drives the test environment (deepseek_operator.testing), which the "
            "operator's own install leaves out: install the `testing` extra, e.g. "
            "`pip install 'deepseek-operator[testing]'` (from a checkout: `pip install -e '.[testing]'`)"
        )


def _has_testing_package() -> bool:
    try:
        return importlib.util.find_spec("deepseek_operator.testing") is not None
    except ModuleNotFoundError:
        return False
