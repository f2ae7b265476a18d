"""Both versions' groups and the applied weight within the surge budget (rollout/capacity.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepseek_operator.rollout.capacity import plan_rollout_capacity


@pytest.mark.parametrize(
    ("n", "weight", "ready", "surge", "expected"),
    [
        # (canary groups, stable groups, applied weight)
        pytest.param(4, 50, 0, 1, (1, 4, 0), id="canary-starts-one-group-stable-keeps-all"),
        pytest.param(4, 50, 1, 1, (2, 3, 25), id="one-ready-carries-a-quarter-stable-shrinks"),
        pytest.param(4, 50, 1, 2, (2, 4, 25), id="a-bigger-surge-keeps-the-stable-whole"),
        pytest.param(4, 50, 2, 1, (2, 3, 50), id="two-ready-complete-stable-keeps-what-budget-spares"),
        pytest.param(4, 100, 2, 1, (3, 2, 50), id="promotion-grows-as-stable-shrinks"),
        pytest.param(4, 100, 4, 1, (4, 1, 100), id="promotion-complete"),
        pytest.param(4, 10, 1, 1, (1, 4, 10), id="small-weight-one-group"),
        pytest.param(1, 10, 1, 1, (1, 1, 10), id="single-group-both-run"),
        pytest.param(1, 100, 0, 1, (1, 1, 0), id="cut-over-waits-for-canary"),
        pytest.param(1, 100, 1, 1, (1, 1, 100), id="cut-over-done"),
        pytest.param(4, 100, 0, 4, (4, 4, 0), id="surge-n-is-blue-green"),
        pytest.param(3, 50, 1, 1, (2, 2, 33), id="thirds-round-against-the-canary"),
        pytest.param(3, 35, 1, 1, (2, 2, 33), id="rounding-never-deadlocks"),
        pytest.param(4, 0, 0, 1, (1, 4, 0), id="weight-zero-still-one-canary-group"),
    ],
)
def test_capacity_table(n: int, weight: int, ready: int, surge: int, expected: tuple[int, int, int]) -> None:
    capacity = plan_rollout_capacity(
        initial_groups=n, target_weight=weight, canary_ready_groups=ready, surge_groups=surge
    )
    assert (capacity.canary_groups, capacity.stable_groups, capacity.weight) == expected
    assert capacity.complete == (capacity.weight == weight)


@given(
    n=st.integers(1, 64),
    weight=st.integers(0, 100),
    ready=st.integers(0, 64),
    surge=st.integers(1, 8),
)
def test_capacity_invariants(n: int, weight: int, ready: int, surge: int) -> None:
    capacity = plan_rollout_capacity(
        initial_groups=n, target_weight=weight, canary_ready_groups=ready, surge_groups=surge
    )
    # The surge budget holds, the weight never runs ahead of the canary's ready groups, and the
    # stable version keeps what its share of the applied weight needs.
    assert capacity.canary_groups + capacity.stable_groups <= n + surge
    assert capacity.weight <= weight
    assert capacity.weight == weight or capacity.weight <= 100 * min(ready, n) // n
    if capacity.complete:
        assert capacity.stable_groups * 100 >= n * (100 - capacity.weight)
    else:
        assert capacity.stable_groups >= n - min(ready, n)
    assert capacity.canary_groups >= 1


def test_capacity_converges_for_any_weight() -> None:
    """Feeding back ready = canary groups reaches the target in at most N passes."""
    for n in range(1, 9):
        for weight in range(0, 101, 5):
            ready = 0
            for _ in range(n + 2):
                capacity = plan_rollout_capacity(
                    initial_groups=n, target_weight=weight, canary_ready_groups=ready, surge_groups=1
                )
                ready = capacity.canary_groups
            assert capacity.complete, (n, weight, capacity)


def test_capacity_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="surge >= 1"):
        plan_rollout_capacity(initial_groups=1, target_weight=10, canary_ready_groups=0, surge_groups=0)
