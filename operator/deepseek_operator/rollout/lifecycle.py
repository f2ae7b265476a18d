"""The version lifecycle: one pure decision of which versions run, with what traffic (STYLE rule 2-4).

`decide_lifecycle` is the only place that decides which version serves. From the spec, the
stored status (its memory: the stable version, the rollout in progress, history, drains), the
RayServices as observed, the analysis measurements of this pass and the time, it answers what
must run (with groups and weights), what is deleted, the new rollout status and history, and
when to look again. The reconciler renders and applies its answer; `dsd run` follows the same
answer on an embedded Ray. Restarting either changes nothing: everything it needs is in status.

The story, in order:
1. manual actions: annotation values not acted on yet (`status.acknowledgedActions`);
2. the stable version: the status says which; a deployment re-created over orphaned
   RayServices adopts the one that serves;
3. one of three cases:
   - no stable version yet: the desired version starts with all its groups and takes the traffic
     once a group serves;
   - the desired version is the stable one: it runs the spec's groups and takes all the traffic; a
     rollout in progress was reverted in the spec and is aborted (traffic back at once);
   - the desired version differs: a rollout moves the traffic from the stable version to it,
     through `spec.rollout.steps` (`capacity` sizes both versions within the surge budget),
     gated by analysis, bounded by the progress deadline, rolled back on failure; the end of the
     steps promotes it;
4. versions that left: one that had traffic drains (weight 0, still running) until its in-flight
   requests are done, bounded by `drain_seconds`; one that never had traffic goes at once.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from deepseek_operator.api.constants import EventReason, ManualAction, Reason
from deepseek_operator.api.v1alpha1 import (
    AnalysisStatus,
    CanaryStep,
    HistoryEntry,
    RolloutStatus,
    VersionTraffic,
)
from deepseek_operator.rollout.analysis import assess_analysis, next_measurement_time, step_metrics
from deepseek_operator.rollout.capacity import plan_rollout_capacity
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
    "DRAIN_GRACE_SECONDS",
    "OBSERVE_INTERVAL_SECONDS",
    "decide_lifecycle",
    "step_hash",
    "traffic_entry",
]

DRAIN_GRACE_SECONDS = 15.0
"""After a version leaves the route, how long before an idle queue proves it drained: gateways
take a moment to stop sending it requests."""
OBSERVE_INTERVAL_SECONDS = 10.0
"""How often to look again while waiting on groups (starting, draining): their progress shows in
Ray Serve, which sends no watch events."""


def step_hash(steps: list[CanaryStep]) -> str:
    """Hash of a step list: an edit mid-rollout restarts the steps."""
    text = json.dumps([step.to_dict() for step in steps], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def decide_lifecycle(inp: LifecycleInput) -> LifecycleDecision:
    """The next lifecycle decision (see the module docstring for the story)."""
    return _Decider(inp).decide()


@dataclass
class _Decider:
    """One decision's working state (local to `decide_lifecycle`; nothing escapes but the result)."""

    inp: LifecycleInput
    notes: list[Note] = field(default_factory=list)
    wake_times: list[datetime] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    pending: dict[ManualAction, str] = field(default_factory=dict)
    settling: bool = False

    def decide(self) -> LifecycleDecision:
        inp = self.inp
        self.history = list(inp.status.history)
        # Step 1: manual actions not acted on yet.
        acknowledged = dict(inp.status.acknowledged_actions)
        self.pending = {
            action: value for action, value in inp.actions.items() if acknowledged.get(action.value) != value
        }
        acknowledged.update({action.value: value for action, value in self.pending.items()})

        # Step 2: the stable version.
        stable = self._stable()

        # Step 3: the three cases.
        rollout: RolloutStatus | None
        if stable is None:
            live, stable, rollout = self._first_version()
        elif inp.desired is None or inp.desired == stable:
            live, rollout = self._steady(stable)
        else:
            live, stable, rollout = self._rollout(stable)
        self._ignore_unused_actions()

        # Step 4: versions that left the route drain, others go.
        draining, retire = self._drain([version.ref for version in live])
        limit = inp.rollout.history_limit
        return LifecycleDecision(
            live=(*live, *draining),
            retire=tuple(retire),
            stable=stable,
            rollout=rollout,
            history=tuple(self.history[-limit:]),
            acknowledged=acknowledged,
            requeue_after=self._requeue_after(),
            notes=tuple(self.notes),
            settling=self.settling,
        )

    # ─── step 2 ──────────────────────────────────────────────────────────────────────────────

    def _stable(self) -> VersionRef | None:
        """The stable version the status names, if it still exists or can be rendered; else
        (status lost, deployment re-created over orphans) the one that serves."""
        inp = self.inp
        for entry in inp.status.traffic:
            if entry.role == Role.STABLE.value:
                ref = VersionRef(entry.version, entry.revision or "")
                if ref in inp.observed or ref in inp.renderable:
                    return ref
        serving = sorted(ref for ref, observed in inp.observed.items() if observed.ready)
        if inp.desired in serving:
            return inp.desired
        return serving[0] if serving else None

    # ─── step 3: the three cases ─────────────────────────────────────────────────────────────

    def _first_version(self) -> tuple[list[LiveVersion], VersionRef | None, RolloutStatus | None]:
        """Nothing served yet: the desired version starts and takes the traffic when ready."""
        desired = self.inp.desired
        if desired is None or not self._settled(desired):
            return [], None, None
        observed = self.inp.observed.get(desired)
        if observed is not None and observed.ready_groups >= 1:
            return [LiveVersion(desired, Role.STABLE, 100, self.inp.groups)], desired, None
        # No wake-up: KubeRay's Ready (and so `_stable`) arrives as a watch event.
        return [LiveVersion(desired, Role.STARTING, 0, self.inp.groups)], None, None

    def _steady(self, stable: VersionRef) -> tuple[list[LiveVersion], RolloutStatus | None]:
        """The stable version is the desired one (or the spec cannot be planned): all traffic."""
        rollout = self.inp.status.rollout
        if rollout is not None and _active(rollout) and self.inp.desired == stable:
            self._finish(rollout, "Aborted", Reason.ABORTED, "the spec went back to the stable version")
            self.notes.append(
                Note(
                    EventReason.ROLLOUT_ABORTED,
                    f"rollout {rollout.revision} of {rollout.canary_version} aborted: the spec went back "
                    f"to {stable.name}; traffic back to it at once",
                    warning=True,
                )
            )
        return [LiveVersion(stable, Role.STABLE, 100, self._stable_groups(stable))], None

    def _rollout(
        self, stable: VersionRef
    ) -> tuple[list[LiveVersion], VersionRef | None, RolloutStatus | None]:
        """The desired version differs from the stable one: start, continue or stay stopped."""
        inp = self.inp
        desired = inp.desired
        assert desired is not None
        rollout = inp.status.rollout
        if rollout is not None and _canary_of(rollout) != desired and _active(rollout):
            self._finish(rollout, "Aborted", Reason.ABORTED, f"superseded by {desired.name}")
            self.notes.append(
                Note(
                    EventReason.ROLLOUT_ABORTED,
                    f"rollout {rollout.revision} of {rollout.canary_version} superseded by {desired}",
                )
            )
            rollout = None
        if rollout is not None and _canary_of(rollout) == desired and not _active(rollout):
            if ManualAction.RETRY not in self.pending:
                return self._stopped(stable, rollout), stable, rollout
            self.pending.pop(ManualAction.RETRY)
            self.notes.append(Note(EventReason.ROLLOUT_STARTED, f"retrying the rollout of {desired}"))
            rollout = None
        if rollout is None or _canary_of(rollout) != desired:
            if not self._settled(desired):
                return [LiveVersion(stable, Role.STABLE, 100, self._stable_groups(stable))], stable, None
            rollout = self._start(stable, desired)
        return self._progress(stable, desired, rollout)

    def _start(self, stable: VersionRef, desired: VersionRef) -> RolloutStatus:
        inp = self.inp
        observed = inp.observed.get(stable)
        groups = (observed.desired_groups or observed.ready_groups) if observed else 0
        revisions = [entry.revision for entry in self.history]
        if inp.status.rollout is not None:
            revisions.append(inp.status.rollout.revision)
        self.notes.append(Note(EventReason.ROLLOUT_STARTED, f"rolling out {desired} from {stable}"))
        return RolloutStatus(
            revision=max(revisions, default=0) + 1,
            stable_version=stable.name,
            stable_revision=stable.revision,
            canary_version=desired.name,
            canary_revision=desired.revision,
            step_hash=step_hash(inp.rollout.steps),
            initial_groups=max(1, groups or inp.groups.initial),
            start_time=inp.now,
            step_start_time=inp.now,
        )

    def _stopped(self, stable: VersionRef, rollout: RolloutStatus) -> list[LiveVersion]:
        """A rolled-back or aborted rollout stays stopped until the spec or a retry changes."""
        return [LiveVersion(stable, Role.STABLE, 100, self._stable_groups(stable))]

    def _progress(
        self, stable: VersionRef, canary: VersionRef, rollout: RolloutStatus
    ) -> tuple[list[LiveVersion], VersionRef | None, RolloutStatus | None]:
        """Walk the steps as far as they complete in this pass."""
        inp = self.inp
        steps = inp.rollout.steps
        if ManualAction.ABORT in self.pending:
            self.pending.pop(ManualAction.ABORT)
            return self._stop(stable, rollout, "Aborted", Reason.ABORTED, "aborted by hand")
        if rollout.step_hash != step_hash(steps):
            rollout = _with(
                rollout,
                step_hash=step_hash(steps),
                step_index=0,
                weight=0,
                analysis=None,
                step_start_time=inp.now,
                phase="Progressing",
            )
            self.notes.append(Note(EventReason.ROLLOUT_STEP, "the steps changed: starting again at step 1"))
        if ManualAction.PROMOTE_FULL in self.pending:
            self.pending.pop(ManualAction.PROMOTE_FULL)
            rollout = self._advance(rollout, to=len(steps), why="promoted by hand past every step")
        observed = inp.observed.get(canary)
        ready = observed.ready_groups if observed else 0

        for _ in range(len(steps) + 1):
            index = rollout.step_index
            if index >= len(steps):
                # The end of the steps: every group to the canary, then it becomes the stable one.
                rollout = _with(rollout, weight=100, phase="Progressing", message="promoting")
                capacity = self._capacity(rollout, ready)
                if capacity.complete and ready >= rollout.initial_groups:
                    return self._promote(stable, canary, rollout)
                return self._waiting_for_groups(stable, canary, rollout, capacity.weight, ready)
            step = steps[index]
            if step.set_weight is not None:
                rollout = _with(rollout, weight=step.set_weight, phase="Progressing", message="")
                capacity = self._capacity(rollout, ready)
                if not capacity.complete:
                    return self._waiting_for_groups(stable, canary, rollout, capacity.weight, ready)
                rollout = self._advance(rollout, why=f"canary at {step.set_weight}%")
            elif step.pause is not None:
                promoted = self.pending.pop(ManualAction.PROMOTE, None) is not None
                duration = step.pause.duration_seconds
                ends = rollout.step_start_time + timedelta(seconds=duration) if duration else None
                if promoted or (ends is not None and inp.now >= ends):
                    rollout = self._advance(rollout, why="promoted by hand" if promoted else "pause over")
                    continue
                if ends is not None:
                    self.wake_times.append(ends)
                message = f"paused until {ends:%H:%M:%S}" if ends else "paused until promoted"
                rollout = _with(rollout, phase="Paused", message=message)
                return self._split(stable, canary, rollout, ready), stable, rollout
            else:
                outcome = self._analyse(rollout, step)
                if isinstance(outcome, tuple):
                    return outcome
                rollout = outcome
                if rollout.analysis is not None:  # still running, or paused on an inconclusive result
                    return self._split(stable, canary, rollout, ready), stable, rollout
        return self._split(stable, canary, rollout, ready), stable, rollout

    def _analyse(
        self, rollout: RolloutStatus, step: CanaryStep
    ) -> RolloutStatus | tuple[list[LiveVersion], VersionRef | None, RolloutStatus | None]:
        """Record this pass's measurements and judge them: the next rollout status (analysis
        cleared once it passed), or the rollback."""
        inp = self.inp
        metrics = step_metrics(inp.rollout, step)
        analysis = rollout.analysis
        if analysis is None or analysis.step_index != rollout.step_index:
            analysis = AnalysisStatus(step_index=rollout.step_index, start_time=inp.now)
        if analysis.phase == "Running" and inp.measurements:
            analysis = analysis.model_copy(
                update={"measurements": [*analysis.measurements, *inp.measurements]}
            )
        phase, message = assess_analysis(metrics, analysis.measurements)
        if analysis.phase == "Inconclusive" and phase == "Inconclusive":
            phase = "Inconclusive"  # stays paused until a person decides
        analysis = analysis.model_copy(update={"phase": phase, "message": message})
        if phase == "Running":
            due = next_measurement_time(metrics, analysis)
            if due is not None:
                self.wake_times.append(due)
            return _with(rollout, analysis=analysis, phase="Analyzing", message=message)
        if phase == "Successful":
            self.notes.append(Note(EventReason.ANALYSIS, f"analysis at step {rollout.step_index + 1} passed"))
            return self._advance(rollout, why="analysis passed")
        if phase == "Inconclusive":
            if self.pending.pop(ManualAction.PROMOTE, None) is not None:
                return self._advance(rollout, why="inconclusive analysis accepted by hand")
            if rollout.phase != "Paused":
                self.notes.append(Note(EventReason.ROLLOUT_PAUSED, f"analysis inconclusive: {message}", True))
            return _with(
                rollout,
                analysis=analysis,
                phase="Paused",
                reason=Reason.ANALYSIS_INCONCLUSIVE.value,
                message=f"inconclusive: {message}",
            )
        # Failed.
        stable = VersionRef(rollout.stable_version, rollout.stable_revision or "")
        rollout = _with(rollout, analysis=analysis)
        if inp.rollout.auto_rollback:
            return self._stop(stable, rollout, "RolledBack", Reason.ANALYSIS_FAILED, message)
        if rollout.phase != "Paused":
            self.notes.append(Note(EventReason.ROLLOUT_PAUSED, f"analysis failed: {message}", True))
        return _with(
            rollout,
            phase="Paused",
            reason=Reason.ANALYSIS_FAILED.value,
            message=f"analysis failed: {message}",
        )

    def _waiting_for_groups(
        self, stable: VersionRef, canary: VersionRef, rollout: RolloutStatus, weight: int, ready: int
    ) -> tuple[list[LiveVersion], VersionRef | None, RolloutStatus | None]:
        """The canary's groups are not ready for the weight asked: wait, within the deadline."""
        inp = self.inp
        deadline = rollout.step_start_time + timedelta(seconds=inp.rollout.progress_deadline_seconds)
        observed = inp.observed.get(canary)
        if inp.now >= deadline:
            why = (
                f"{canary} has {ready} ready group(s) for {rollout.weight}% after "
                f"{inp.rollout.progress_deadline_seconds} s"
                + (f": {observed.message}" if observed is not None and observed.message else "")
            )
            if inp.rollout.auto_rollback:
                return self._stop(stable, rollout, "RolledBack", Reason.PROGRESS_DEADLINE_EXCEEDED, why)
            if rollout.phase != "Paused":
                self.notes.append(
                    Note(EventReason.ROLLOUT_PAUSED, f"progress deadline exceeded: {why}", True)
                )
            rollout = _with(
                rollout,
                phase="Paused",
                reason=Reason.PROGRESS_DEADLINE_EXCEEDED.value,
                message=f"progress deadline exceeded: {why}",
            )
        else:
            self.wake_times.append(deadline)
            self._wake_in(OBSERVE_INTERVAL_SECONDS)
            rollout = _with(
                rollout,
                message=f"waiting for {canary}'s groups: {ready} ready, {weight}% of {rollout.weight}%",
            )
        return self._split(stable, canary, rollout, ready), stable, rollout

    def _split(
        self, stable: VersionRef, canary: VersionRef, rollout: RolloutStatus, ready: int
    ) -> list[LiveVersion]:
        capacity = self._capacity(rollout, ready)
        return [
            LiveVersion(
                stable, Role.STABLE, 100 - capacity.weight, GroupTarget.fixed(capacity.stable_groups)
            ),
            LiveVersion(canary, Role.CANARY, capacity.weight, GroupTarget.fixed(capacity.canary_groups)),
        ]

    def _capacity(self, rollout: RolloutStatus, ready: int):  # type: ignore[no-untyped-def]
        return plan_rollout_capacity(
            initial_groups=max(1, rollout.initial_groups),
            target_weight=rollout.weight,
            canary_ready_groups=ready,
            surge_groups=self.inp.rollout.surge_groups,
        )

    def _advance(self, rollout: RolloutStatus, *, why: str, to: int | None = None) -> RolloutStatus:
        index = rollout.step_index + 1 if to is None else to
        total = len(self.inp.rollout.steps)
        where = f"step {index + 1}/{total}" if index < total else "promotion"
        self.notes.append(Note(EventReason.ROLLOUT_STEP, f"{rollout.canary_version}: {why}; now at {where}"))
        return _with(
            rollout,
            step_index=index,
            step_start_time=self.inp.now,
            analysis=None,
            phase="Progressing",
            reason=None,
            message="",
        )

    def _promote(
        self, stable: VersionRef, canary: VersionRef, rollout: RolloutStatus
    ) -> tuple[list[LiveVersion], VersionRef | None, RolloutStatus | None]:
        self._finish(rollout, "Promoted", Reason.SERVING, f"{canary} replaced {stable}")
        self.notes.append(
            Note(EventReason.ROLLOUT_PROMOTED, f"{canary} promoted: it takes all traffic; {stable} drains")
        )
        return [LiveVersion(canary, Role.STABLE, 100, self._stable_groups(canary))], canary, None

    def _stop(
        self, stable: VersionRef, rollout: RolloutStatus, outcome: str, reason: Reason, message: str
    ) -> tuple[list[LiveVersion], VersionRef | None, RolloutStatus | None]:
        """Roll back or abort: all traffic to the stable version at once; the canary drains."""
        self._finish(rollout, outcome, reason, message)
        event = EventReason.ROLLED_BACK if outcome == "RolledBack" else EventReason.ROLLOUT_ABORTED
        self.notes.append(
            Note(
                event, f"{rollout.canary_version} {_WORDS[outcome]} ({reason.value}): {message}", warning=True
            )
        )
        stopped = _with(rollout, phase=outcome, weight=0, reason=reason.value, message=message)
        return self._stopped(stable, stopped), stable, stopped

    def _finish(self, rollout: RolloutStatus, outcome: str, reason: Reason, message: str) -> None:
        self.history.append(
            HistoryEntry.model_validate(
                {
                    "revision": rollout.revision,
                    "version": rollout.canary_version,
                    "versionRevision": rollout.canary_revision,
                    "fromVersion": rollout.stable_version,
                    "outcome": outcome,
                    "reason": reason.value,
                    "message": message,
                    "stepsReached": min(rollout.step_index, len(self.inp.rollout.steps)),
                    "startTime": rollout.start_time,
                    "finishTime": self.inp.now,
                    "versionSpec": (
                        self.inp.desired_spec.to_dict()
                        if self.inp.desired_spec is not None and self.inp.desired == _canary_of(rollout)
                        else None
                    ),
                }
            )
        )

    # ─── step 4: drains ──────────────────────────────────────────────────────────────────────

    def _drain(self, live: list[VersionRef]) -> tuple[list[LiveVersion], list[VersionRef]]:
        """Versions not live any more: drain those that had traffic, delete the others."""
        inp = self.inp
        before = {VersionRef(entry.version, entry.revision or ""): entry for entry in inp.status.traffic}
        draining, retire = [], []
        for ref in sorted(set(inp.observed) - set(live)):
            entry = before.get(ref)
            had_traffic = entry is not None and (entry.weight > 0 or entry.role == Role.DRAINING.value)
            if not had_traffic:
                retire.append(ref)
                continue
            assert entry is not None
            since = entry.draining_since or inp.now
            if self._drained(inp.observed[ref], since):
                retire.append(ref)
                continue
            draining.append(LiveVersion(ref, Role.DRAINING, 0, None, draining_since=since))
            self.wake_times.append(since + timedelta(seconds=inp.drain_seconds))
            self._wake_in(OBSERVE_INTERVAL_SECONDS)
        return draining, retire

    def _drained(self, observed: ObservedVersion, since: datetime) -> bool:
        """In-flight requests are done: the drain bound passed, or its queue was seen empty after
        gateways had time to stop sending it requests."""
        inp = self.inp
        if inp.now >= since + timedelta(seconds=inp.drain_seconds):
            return True
        seen_idle_after_grace = (
            observed.queue_depth == 0
            and observed.observed_at is not None
            and observed.observed_at >= since + timedelta(seconds=DRAIN_GRACE_SECONDS)
        )
        return seen_idle_after_grace

    # ─── helpers ─────────────────────────────────────────────────────────────────────────────

    def _stable_groups(self, stable: VersionRef) -> GroupTarget:
        return self.inp.groups

    def _settled(self, desired: VersionRef) -> bool:
        """Whether a RayService for `desired` may be created now (it exists, or the spec settled)."""
        inp = self.inp
        if desired in inp.observed or inp.desired_seen_at is None:
            return True
        settles = inp.desired_seen_at + timedelta(seconds=inp.settle_seconds)
        if inp.now >= settles:
            return True
        self.wake_times.append(settles)
        self.settling = True
        return False

    def _ignore_unused_actions(self) -> None:
        for action, value in self.pending.items():
            self.notes.append(
                Note(
                    EventReason.ROLLOUT_STEP,
                    f"{action.annotation}={value} ignored: nothing to {action.value}",
                )
            )

    def _note(self, reason: EventReason, message: str, *, warning: bool = False) -> None:
        self.notes.append(Note(reason, message, warning))

    def _wake_in(self, seconds: float) -> None:
        self.wake_times.append(self.inp.now + timedelta(seconds=seconds))

    def _requeue_after(self) -> float | None:
        future = [(at - self.inp.now).total_seconds() for at in self.wake_times]
        return max(0.0, math.ceil(min(future) * 10) / 10) if future else None


_WORDS = {"RolledBack": "rolled back", "Aborted": "aborted", "Promoted": "promoted"}


def _with(rollout: RolloutStatus, **changes: Any) -> RolloutStatus:
    return rollout.model_copy(update=changes)


def _active(rollout: RolloutStatus) -> bool:
    return rollout.phase not in ("RolledBack", "Aborted")


def _canary_of(rollout: RolloutStatus) -> VersionRef:
    return VersionRef(rollout.canary_version, rollout.canary_revision or "")


def traffic_entry(version: LiveVersion, observed: ObservedVersion | None) -> VersionTraffic:
    """`status.traffic[]` of one live version."""
    return VersionTraffic.model_validate(
        {
            "version": version.ref.name,
            "revision": version.ref.revision or None,
            "role": version.role.value,
            "weight": version.weight,
            "rayService": observed.ray_service if observed else None,
            "readyGroups": observed.ready_groups if observed else 0,
            "desiredGroups": observed.desired_groups if observed else None,
            "queueDepth": observed.queue_depth if observed else None,
            "lastScaling": observed.last_scaling if observed else None,
            "drainingSince": version.draining_since,
        }
    )
