"""Expert-load statistics: the file/ConfigMap format, its parser, smoothing and seeded generators.

Format ``deepseek.serving.dev/expert-load/v1`` (JSON or YAML; in a ConfigMap under the data key
``expert-load.json``)::

    {
      "format": "deepseek.serving.dev/expert-load/v1",
      "numLogicalExperts": 256,                 # optional; checked against the model
      "window": {"steps": 1000,                 # optional metadata, not used for planning
                 "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:10:00Z"},
      "layers": [                               # one row per MoE layer, in model order
        [1203, 88, 0, 4121, ...],               # tokens routed to logical expert 0, 1, 2, ...
        ...
      ]
    }

``layers`` holds non-negative finite numbers (token counts, or any unit consistent within a
row: only ratios inside a layer matter). It must have one row per MoE layer (DeepSeek-V3: 58)
and one entry per logical expert (256); vLLM's expert-load window summed over its steps and
mapped to logical experts is exactly this. When no statistics exist the load is uniform.

Generators (for tests, demos and the benchmark) take an explicit ``seed`` (STYLE.md rule 2) and
return float64 ``[layers, experts]`` expected token counts; the drifting trace returns
``[windows, layers, experts]`` sampled counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import yaml

__all__ = [
    "CONFIGMAP_KEY",
    "EXPERT_LOAD_FORMAT",
    "DriftingTrace",
    "ExpertLoadError",
    "drifting_expert_load_trace",
    "dump_expert_load",
    "lognormal_expert_load",
    "parse_expert_load",
    "smooth_expert_load",
    "zipf_expert_load",
]

FloatArray = npt.NDArray[np.float64]

EXPERT_LOAD_FORMAT = "deepseek.serving.dev/expert-load/v1"
"""The ``format`` value of a load-statistics document."""
CONFIGMAP_KEY = "expert-load.json"
"""The ConfigMap ``data`` key holding the document."""
_FIELDS = frozenset({"format", "numLogicalExperts", "window", "layers"})


class ExpertLoadError(ValueError):
    """A load-statistics document does not fit the format or the model.

    ``str()`` reads ``<field path>: <problem>``, e.g. ``layers[3]: expected 256 experts, got 255``.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        """Where the problem is, as a field path (``layers[3][17]``)."""
        self.message = message
        """What is wrong there."""


def parse_expert_load(
    document: Mapping[str, object] | str | bytes | None,
    *,
    num_layers: int,
    num_logical_experts: int,
) -> FloatArray:
    """Validate a load-statistics document and return its load matrix.

    Parameters:
        document: the decoded document, its JSON/YAML text, a ConfigMap body holding it under
            ``data["expert-load.json"]``, or None (no statistics yet).
        num_layers: MoE layers of the model (DeepSeek-V3: 58).
        num_logical_experts: routed experts per layer (DeepSeek-V3: 256).

    Returns:
        ``[num_layers, num_logical_experts]`` float64 tokens per logical expert; all ones when
        ``document`` is None.

    Raises:
        ExpertLoadError: naming the offending field, e.g. ``layers[3]: expected 256 experts,
        got 255``.
    """
    if document is None:
        return np.ones((num_layers, num_logical_experts), dtype=np.float64)
    doc = _decode(document, "<document>")
    if doc.get("kind") == "ConfigMap":
        data = doc.get("data")
        if not isinstance(data, Mapping) or CONFIGMAP_KEY not in data:
            raise ExpertLoadError("data", f"expected the key {CONFIGMAP_KEY!r} in the ConfigMap")
        doc = _decode(data[CONFIGMAP_KEY], f"data[{CONFIGMAP_KEY!r}]")
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise ExpertLoadError(unknown[0], f"unknown field (expected one of {sorted(_FIELDS)})")
    if doc.get("format") != EXPERT_LOAD_FORMAT:
        raise ExpertLoadError("format", f"expected {EXPERT_LOAD_FORMAT!r}, got {doc.get('format')!r}")
    declared = doc.get("numLogicalExperts", num_logical_experts)
    if declared != num_logical_experts or isinstance(declared, bool):
        raise ExpertLoadError("numLogicalExperts", f"expected {num_logical_experts}, got {declared!r}")
    if "window" in doc and not isinstance(doc["window"], Mapping):
        raise ExpertLoadError("window", f"expected a mapping, got {type(doc['window']).__name__}")
    layers = doc.get("layers")
    if not isinstance(layers, Sequence) or isinstance(layers, str | bytes):
        raise ExpertLoadError("layers", "expected a list with one list of per-expert counts per MoE layer")
    if len(layers) != num_layers:
        raise ExpertLoadError("layers", f"expected {num_layers} MoE layers, got {len(layers)}")
    load = np.empty((num_layers, num_logical_experts), dtype=np.float64)
    for index, row in enumerate(layers):
        path = f"layers[{index}]"
        if not isinstance(row, Sequence) or isinstance(row, str | bytes):
            raise ExpertLoadError(path, f"expected a list of per-expert counts, got {type(row).__name__}")
        if len(row) != num_logical_experts:
            raise ExpertLoadError(path, f"expected {num_logical_experts} experts, got {len(row)}")
        for expert, value in enumerate(row):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ExpertLoadError(
                    f"{path}[{expert}]", f"expected a non-negative finite number, got {value!r}"
                )
        load[index] = row
    return load


def dump_expert_load(load: npt.ArrayLike, *, window: Mapping[str, object] | None = None) -> dict[str, object]:
    """The document for a ``[layers, experts]`` load matrix (inverse of `parse_expert_load`).

    Integral values are written as ints; ``window`` is copied as metadata when given.
    """
    matrix = np.asarray(load, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"load: expected a [layers, experts] matrix, got shape {list(matrix.shape)}")
    rows: list[list[int | float]] = [
        [int(v) if float(v).is_integer() else float(v) for v in row] for row in matrix.tolist()
    ]
    document: dict[str, object] = {"format": EXPERT_LOAD_FORMAT, "numLogicalExperts": matrix.shape[1]}
    if window is not None:
        document["window"] = dict(window)
    document["layers"] = rows
    return document


def smooth_expert_load(windows: npt.ArrayLike, *, half_life_windows: float) -> FloatArray:
    """Exponential moving average of per-layer load shares over statistics windows.

    Parameters:
        windows: ``[windows, layers, experts]`` loads, oldest first.
        half_life_windows: a window's weight halves every this many newer windows (> 0).

    Returns:
        ``[layers, experts]``: the weighted mean of each window's per-layer shares, scaled to the
        newest window's per-layer totals (a layer with no tokens in a window contributes uniform
        shares). Use it as the planner's load; the history lives with the caller (e.g. the
        statistics ConfigMap), not in the planner (STYLE.md rule 3).
    """
    stack = np.asarray(windows, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[0] < 1:
        raise ValueError(f"windows: expected shape [windows >= 1, layers, experts], got {list(stack.shape)}")
    if half_life_windows <= 0:
        raise ValueError(f"half_life_windows: expected > 0, got {half_life_windows}")
    totals = stack.sum(axis=2, keepdims=True)
    shares = np.where(totals > 0, stack / np.where(totals > 0, totals, 1.0), 1.0 / stack.shape[2])
    age = np.arange(stack.shape[0] - 1, -1, -1, dtype=np.float64)
    decay = 0.5 ** (age / half_life_windows)
    mean_share = np.tensordot(decay / decay.sum(), shares, axes=1)
    newest_total = np.where(totals[-1] > 0, totals[-1], stack.shape[2])
    smoothed: FloatArray = mean_share * newest_total
    return smoothed


# --------------------------------------------------------------------------------------------
# Seeded generators.
# --------------------------------------------------------------------------------------------


def lognormal_expert_load(
    num_layers: int, num_logical_experts: int, *, sigma: float, seed: int, tokens_per_layer: float = 1 << 20
) -> FloatArray:
    """Independent log-normal expert popularity: ``load ∝ exp(sigma * N(0, 1))`` per layer.

    sigma 0.5 is mild skew (hottest ≈ 3.5× the mean of 256), sigma 1.0 heavy (≈ 10×). Each layer sums to
    ``tokens_per_layer`` (default 2²⁰ = 131072 tokens × top-8).
    """
    rng = np.random.default_rng(seed)
    raw = np.exp(sigma * rng.standard_normal((num_layers, num_logical_experts)))
    return _scale(raw, tokens_per_layer)


def zipf_expert_load(
    num_layers: int,
    num_logical_experts: int,
    *,
    exponent: float,
    seed: int,
    tokens_per_layer: float = 1 << 20,
) -> FloatArray:
    """Zipf popularity: the ``r``-th most popular expert gets ``∝ r^-exponent``.

    Each layer ranks its experts by an independent random permutation. With exponent 1.0 and
    256 experts the hottest expert takes 16 % of a layer's tokens (41× the mean).
    """
    rng = np.random.default_rng(seed)
    by_rank = np.arange(1, num_logical_experts + 1, dtype=np.float64) ** -exponent
    ranks = np.argsort(rng.random((num_layers, num_logical_experts)), axis=1)
    return _scale(by_rank[ranks], tokens_per_layer)


@dataclass(frozen=True, slots=True, eq=False)
class DriftingTrace:
    """A seeded sequence of statistics windows (see `drifting_expert_load_trace`)."""

    windows: FloatArray
    """``[windows, layers, experts]`` sampled token counts per window."""
    expected_next: FloatArray
    """``[windows, layers, experts]``: the generator's own expectation of window ``i + 1``
    given everything up to window ``i`` (the best any predictor could know), up to scale."""


def drifting_expert_load_trace(
    num_windows: int,
    num_layers: int,
    num_logical_experts: int,
    *,
    seed: int,
    persistent_sigma: float = 1.0,
    drift_sigma: float = 0.4,
    drift_correlation: float = 0.8,
    transient_sigma: float = 0.3,
    tokens_per_window: int = 65536,
    top_k: int = 8,
) -> DriftingTrace:
    """Load windows whose expert popularity drifts, as a serving loop would observe them.

    Model (per layer ``l``, expert ``e``, window ``t``), in log-popularity:
    ``z[t] = mu + d[t] + n[t]`` where

    - ``mu ~ N(0, persistent_sigma²)`` is the expert's lasting popularity;
    - ``d[t]`` drifts as a stationary AR(1) process: ``d[t+1] = rho d[t] + sqrt(1 - rho²)
      drift_sigma N(0, 1)`` with ``rho = drift_correlation`` per window (workload mix changing);
    - ``n[t] ~ N(0, transient_sigma²)`` is independent per window (one window's batch mix).

    Window ``t`` routes ``tokens_per_window × top_k`` token slots per layer to experts with
    probabilities ``softmax(z[t])`` (a multinomial draw). The defaults were set so that
    DeepSeek's EPLB (vLLM's port), planning on window ``i`` and scored on window ``i + 1`` at
    32 GPUs / 4 nodes / 288 slots, lands near the published 0.66 measured on a real trace.
    """
    if not 0.0 <= drift_correlation <= 1.0:
        raise ValueError(f"drift_correlation: expected 0 <= rho <= 1, got {drift_correlation}")
    rng = np.random.default_rng(seed)
    shape = (num_layers, num_logical_experts)
    persistent = persistent_sigma * rng.standard_normal(shape)
    drift = drift_sigma * rng.standard_normal(shape)
    innovation = math.sqrt(1.0 - drift_correlation**2) * drift_sigma
    windows = np.empty((num_windows, *shape), dtype=np.float64)
    expected_next = np.empty_like(windows)
    for t in range(num_windows):
        logits = persistent + drift + transient_sigma * rng.standard_normal(shape)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        windows[t] = rng.multinomial(tokens_per_window * top_k, probs)
        expected_next[t] = np.exp(persistent + drift_correlation * drift)
        drift = drift_correlation * drift + innovation * rng.standard_normal(shape)
    return DriftingTrace(windows=windows, expected_next=expected_next)


def _scale(raw: FloatArray, tokens_per_layer: float) -> FloatArray:
    scaled: FloatArray = raw / raw.sum(axis=1, keepdims=True) * tokens_per_layer
    return scaled


def _decode(document: object, path: str) -> Mapping[str, object]:
    if isinstance(document, bytes):
        document = document.decode("utf-8")
    if isinstance(document, str):
        text = document
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            try:
                document = yaml.safe_load(text)
            except yaml.YAMLError as err:
                raise ExpertLoadError(path, f"neither JSON nor YAML: {err}") from err
    if not isinstance(document, Mapping):
        raise ExpertLoadError(path, f"expected a mapping, got {type(document).__name__}")
    return document
