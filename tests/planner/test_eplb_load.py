"""Expert-load statistics: the v1 format's parser (errors name the field), smoothing, generators."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from deepseek_operator.planner.eplb_load import (
    CONFIGMAP_KEY,
    EXPERT_LOAD_FORMAT,
    ExpertLoadError,
    drifting_expert_load_trace,
    dump_expert_load,
    lognormal_expert_load,
    parse_expert_load,
    smooth_expert_load,
    zipf_expert_load,
)

LAYERS, EXPERTS = 3, 4


def _doc(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "format": EXPERT_LOAD_FORMAT,
        "layers": [[1, 2, 3, 4], [0, 0, 0, 0], [5.5, 0, 1e6, 7]],
    }
    doc.update(overrides)
    return doc


def _parse(document: object) -> np.ndarray:
    return parse_expert_load(document, num_layers=LAYERS, num_logical_experts=EXPERTS)  # type: ignore[arg-type]


EXPECTED = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [5.5, 0, 1e6, 7]], dtype=np.float64)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(_doc(), id="mapping"),
        pytest.param(json.dumps(_doc()), id="json-text"),
        pytest.param(json.dumps(_doc()).encode(), id="json-bytes"),
        pytest.param(yaml.safe_dump(_doc()), id="yaml-text"),
        pytest.param(
            _doc(numLogicalExperts=4, window={"steps": 1000, "end": "2026-01-01T00:10:00Z"}), id="metadata"
        ),
        pytest.param(
            {"apiVersion": "v1", "kind": "ConfigMap", "data": {CONFIGMAP_KEY: json.dumps(_doc())}},
            id="configmap",
        ),
    ],
)
def test_parse_accepts(document: object) -> None:
    load = _parse(document)
    assert load.dtype == np.float64
    np.testing.assert_array_equal(load, EXPECTED)


def test_absent_statistics_mean_uniform_load() -> None:
    np.testing.assert_array_equal(_parse(None), np.ones((LAYERS, EXPERTS)))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param([1, 2], "<document>: expected a mapping, got list", id="not-a-mapping"),
        pytest.param("{not json: [", "<document>: neither JSON nor YAML", id="garbage-text"),
        pytest.param(
            _doc(format="v0"), f"format: expected {EXPERT_LOAD_FORMAT!r}, got 'v0'", id="wrong-format"
        ),
        pytest.param(
            {"layers": EXPECTED.tolist()},
            f"format: expected {EXPERT_LOAD_FORMAT!r}, got None",
            id="no-format",
        ),
        pytest.param(_doc(layer=[]), "layer: unknown field", id="unknown-field"),
        pytest.param(_doc(numLogicalExperts=8), "numLogicalExperts: expected 4, got 8", id="expert-count"),
        pytest.param(
            _doc(numLogicalExperts=True), "numLogicalExperts: expected 4, got True", id="expert-count-bool"
        ),
        pytest.param(_doc(window=[1]), "window: expected a mapping, got list", id="window"),
        pytest.param(_doc(layers="1,2,3"), "layers: expected a list", id="layers-text"),
        pytest.param(_doc(layers=[[1, 2, 3, 4]]), "layers: expected 3 MoE layers, got 1", id="layer-count"),
        pytest.param(
            _doc(layers=[[1, 2, 3, 4], {"a": 1}, [1, 2, 3, 4]]),
            "layers[1]: expected a list of per-expert counts, got dict",
            id="row-type",
        ),
        pytest.param(
            _doc(layers=[[1, 2, 3, 4], [1, 2, 3], [1, 2, 3, 4]]),
            "layers[1]: expected 4 experts, got 3",
            id="row-length",
        ),
        pytest.param(
            _doc(layers=[[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, -1, 4]]),
            "layers[2][2]: expected a non-negative finite number, got -1",
            id="negative",
        ),
        pytest.param(
            _doc(layers=[[1, 2, 3, 4], [1, float("nan"), 3, 4], [1, 2, 3, 4]]),
            "layers[1][1]: expected a non-negative finite number, got nan",
            id="nan",
        ),
        pytest.param(
            _doc(layers=[[1, 2, 3, "4"], [1, 2, 3, 4], [1, 2, 3, 4]]),
            "layers[0][3]: expected a non-negative finite number, got '4'",
            id="string-count",
        ),
        pytest.param(
            _doc(layers=[[True, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]]),
            "layers[0][0]: expected a non-negative finite number, got True",
            id="bool-count",
        ),
        pytest.param(
            {"kind": "ConfigMap", "data": {"other": "{}"}},
            f"data: expected the key {CONFIGMAP_KEY!r} in the ConfigMap",
            id="configmap-without-key",
        ),
    ],
)
def test_parse_rejects_naming_the_field(document: object, message: str) -> None:
    with pytest.raises(ExpertLoadError) as caught:
        _parse(document)
    assert str(caught.value).startswith(message)
    assert str(caught.value).startswith(f"{caught.value.path}: ")


def test_dump_round_trips() -> None:
    load = lognormal_expert_load(LAYERS, EXPERTS, sigma=1.0, seed=1)
    load[0] = [1.0, 2.0, 3.0, 4.0]
    document = dump_expert_load(load, window={"steps": 1000})
    assert document["layers"][0] == [1, 2, 3, 4]  # type: ignore[index]
    assert isinstance(document["layers"][0][0], int)  # type: ignore[index]
    np.testing.assert_array_equal(_parse(json.loads(json.dumps(document))), load)


@pytest.mark.parametrize(
    ("windows", "half_life", "expected"),
    [
        pytest.param([[[1.0, 3.0]]], 1.0, [[1.0, 3.0]], id="one-window"),
        # Shares (0.5, 0.5) then (0.25, 0.75) weighted 1/3 and 2/3, scaled to the newest total (8).
        pytest.param(
            [[[1.0, 1.0]], [[2.0, 6.0]]], 1.0, [[8 * (1 / 6 + 1 / 6), 8 * (1 / 6 + 1 / 2)]], id="two"
        ),
        pytest.param(
            [[[0.0, 0.0]], [[2.0, 6.0]]],
            1.0,
            [[8 * (1 / 6 + 1 / 6), 8 * (1 / 6 + 1 / 2)]],
            id="idle-is-uniform",
        ),
        pytest.param([[[1.0, 1.0]], [[2.0, 6.0]]], 1e-9, [[2.0, 6.0]], id="no-memory"),
    ],
)
def test_smooth_expert_load(
    windows: list[list[list[float]]], half_life: float, expected: list[list[float]]
) -> None:
    np.testing.assert_allclose(smooth_expert_load(windows, half_life_windows=half_life), expected)


@pytest.mark.parametrize(
    ("windows", "half_life", "message"),
    [
        pytest.param(np.ones((2, 3)), 1.0, "windows: expected shape", id="two-dims"),
        pytest.param(np.ones((0, 2, 3)), 1.0, "windows: expected shape", id="empty"),
        pytest.param(np.ones((1, 2, 3)), 0.0, "half_life_windows: expected > 0", id="half-life"),
    ],
)
def test_smooth_rejects(windows: np.ndarray, half_life: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        smooth_expert_load(windows, half_life_windows=half_life)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda seed: lognormal_expert_load(5, 256, sigma=1.0, seed=seed), id="lognormal"),
        pytest.param(lambda seed: zipf_expert_load(5, 256, exponent=1.0, seed=seed), id="zipf"),
        pytest.param(lambda seed: drifting_expert_load_trace(3, 5, 256, seed=seed).windows, id="drifting"),
    ],
)
def test_generators_are_seeded(make: object) -> None:
    first, again, other = make(1), make(1), make(2)  # type: ignore[operator]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert (first >= 0).all()


def test_zipf_shape() -> None:
    load = zipf_expert_load(4, 256, exponent=1.0, seed=0)
    shares = np.sort(load / load.sum(axis=1, keepdims=True), axis=1)[:, ::-1]
    harmonic = np.sum(1.0 / np.arange(1, 257))
    np.testing.assert_allclose(shares[:, 0], 1.0 / harmonic)  # the hottest expert: ~16 %
    np.testing.assert_allclose(shares[:, 1], 0.5 / harmonic)


def test_drifting_trace_counts_tokens() -> None:
    trace = drifting_expert_load_trace(4, 3, 256, seed=0, tokens_per_window=1000, top_k=8)
    np.testing.assert_array_equal(trace.windows.sum(axis=2), 8000)
    assert trace.expected_next.shape == trace.windows.shape
    # Consecutive windows are correlated (persistent popularity), but not identical.
    log = np.log(trace.windows + 1).reshape(4, -1)
    assert 0.5 < np.corrcoef(log[0], log[1])[0, 1] < 0.99
