"""The version lifecycle (pure): which versions run, with what traffic, and canary analysis.

- `types`: what the lifecycle observes (`ObservedVersion`) and decides (`LifecycleDecision`);
- `lifecycle`: `decide_lifecycle`, the one function that decides which version serves;
- `capacity`: both versions' groups and the weight within the surge budget;
- `analysis`: due measurements, their PromQL, and their judgement.

Nothing here does I/O or reads the clock (STYLE.md rules 1-2): the reconciler and `dsd run`
observe, call `decide_lifecycle`, and carry out its answer.
"""

from deepseek_operator.rollout.lifecycle import decide_lifecycle, step_hash, traffic_entry
from deepseek_operator.rollout.types import (
    GroupTarget,
    LifecycleDecision,
    LifecycleInput,
    LiveVersion,
    Note,
    ObservedVersion,
    Role,
    VersionRef,
)

__all__ = [
    "GroupTarget",
    "LifecycleDecision",
    "LifecycleInput",
    "LiveVersion",
    "Note",
    "ObservedVersion",
    "Role",
    "VersionRef",
    "decide_lifecycle",
    "step_hash",
    "traffic_entry",
]
