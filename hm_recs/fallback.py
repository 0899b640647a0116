"""A week whose run failed before `recommendations`: the champion's lists in a second run, or a marked gap.

Inside one Dagster run, a step whose upstream step failed is never executed. So when something in the model
chain fails (content encoder, retrieval, segment models, candidates, a ranker that crashed or is not sound),
the week's `recommendations` is not built in that run. Then, if the data the champion needs passed its gates
in that run (ingestion, validation and features, and the baselines' lists and validation), a second run of
the same job and week builds `recommendations` from the best validated baseline (`serve="champion"`, the
reason naming what failed), its export, and the evaluation the failed run skipped. The weekly schedule's path
runs it from the `serving_fallback` sensor; the CLI's runner runs it itself. Both decide with `plan` below.

When a data gate failed (or the fallback run itself failed) nothing is published: the last good table stays,
and the export marks the week as having no lists (`core.publishing.mark_unavailable`), so that `LATEST` never
hands last week's lists out as this week's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

FALLBACK_TAG = "hm-recs/fallback-for"
"""On a fallback run: the id of the failed run it stands in for."""
PUBLISHING = "recommendations"
RERUN = ("recommendations", "recommendations_export", "evaluation_report")
"""What a fallback run builds, where the failed run wanted it and did not build it."""
CHAMPION_INPUTS = ("baseline_recommendations", "baseline_validation")
DATA_GROUPS = ("ingestion", "validation", "features")
"""Groups whose failed gate keeps last week's table (nothing is published from data that failed its checks)."""


def data_assets(assets: Iterable) -> frozenset[str]:
    """Names of the assets in `DATA_GROUPS` among `assets` (the code location's asset definitions)."""
    names = set()
    for definition in assets:
        for key in definition.keys:
            if definition.specs_by_key[key].group_name in DATA_GROUPS:
                names.add(key.to_user_string())
    return frozenset(names)


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run of the weekly job did, read from its event log."""

    run_id: str
    week: str | None
    targeted: frozenset[str]
    materialized: frozenset[str]
    failed_steps: dict[str, str]  # step -> first line of its error
    failed_checks: frozenset[str]  # "asset:check"
    fallback_for: str | None = None

    @classmethod
    def of(cls, run: dg.DagsterRun, instance: dg.DagsterInstance, every_asset: Iterable[str]) -> RunOutcome:
        records = instance.get_records_for_run

        def events(kind):
            return [r.event_log_entry.dagster_event for r in records(run.run_id, of_type=kind, limit=100_000).records]

        failed_steps = {}
        for event in events(dg.DagsterEventType.STEP_FAILURE):
            error = event.event_specific_data.error if event.event_specific_data else None
            failed_steps[event.step_key] = (error.message.strip().splitlines() or [""])[0] if error else "failed"
        checks = [e.event_specific_data for e in events(dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
        materialized = {
            e.event_specific_data.materialization.asset_key.to_user_string()
            for e in events(dg.DagsterEventType.ASSET_MATERIALIZATION)
        }
        targeted = {key.to_user_string() for key in run.asset_selection} if run.asset_selection else set(every_asset)
        return cls(
            run.run_id,
            run.tags.get("dagster/partition"),
            frozenset(targeted),
            frozenset(materialized),
            failed_steps,
            frozenset(f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed),
            run.tags.get(FALLBACK_TAG),
        )

    def failures(self) -> str:
        parts = [f"{step}: {why}" for step, why in sorted(self.failed_steps.items())]
        parts += [f"check {check} failed" for check in sorted(self.failed_checks)]
        return "; ".join(parts) or "no step failed"


@dataclass(frozen=True)
class FallbackPlan:
    """`publish`: a fallback run builds `rerun` with the champion serving; else the week gets no lists (`reason`)."""

    publish: bool
    reason: str
    rerun: tuple[str, ...] = ()

    def run_config(self, base: dict | None = None) -> dict:
        # the failed run's op settings are not carried over: they may name steps the fallback run does not have
        kept = {key: value for key, value in (base or {}).items() if key != "ops"}
        return {**kept, "ops": {PUBLISHING: {"config": {"serve": "champion", "reason": self.reason[:2000]}}}}

    def run_request(self, outcome: RunOutcome, base_config: dict | None = None) -> dg.RunRequest:
        return dg.RunRequest(
            run_key=f"fallback:{outcome.run_id}",
            partition_key=outcome.week,
            asset_selection=[dg.AssetKey(name) for name in self.rerun],
            run_config=self.run_config(base_config),
            tags={FALLBACK_TAG: outcome.run_id},
        )


def plan(outcome: RunOutcome, data: frozenset[str]) -> FallbackPlan | None:
    """What to do after `outcome`: None when the run built `recommendations` or did not try to (nothing to do);
    else a fallback run of the champion when the champion's inputs passed their gates, or a marked gap."""
    if outcome.week is None or PUBLISHING not in outcome.targeted or PUBLISHING in outcome.materialized:
        return None
    failed_data = sorted(a for a in data & outcome.targeted if a not in outcome.materialized)
    failed_data += sorted(c for c in outcome.failed_checks if c.split(":")[0] in data)
    if failed_data:
        return FallbackPlan(False, f"a data gate failed ({', '.join(failed_data)}): {outcome.failures()}")
    if outcome.fallback_for:
        return FallbackPlan(False, f"the fallback run for run {outcome.fallback_for} failed too: {outcome.failures()}")
    missing = [a for a in CHAMPION_INPUTS if a in outcome.targeted and a not in outcome.materialized]
    missing += [c for c in outcome.failed_checks if c.split(":")[0] in CHAMPION_INPUTS]
    if missing:
        return FallbackPlan(False, f"the baselines were not built ({', '.join(missing)}): {outcome.failures()}")
    rerun = tuple(a for a in RERUN if a in outcome.targeted and a not in outcome.materialized)
    return FallbackPlan(True, f"the model chain failed in run {outcome.run_id}: {outcome.failures()}", rerun)


def describe(outcome: RunOutcome, fallback: FallbackPlan | None, target_week: str | None) -> str:
    """What the failure report adds about the week's lists."""
    if fallback is None:
        return ""
    if fallback.publish:
        return (
            f" Week {target_week} is served by the best validated baseline: fallback run requested "
            f"({', '.join(fallback.rerun)})."
        )
    return f" Week {target_week} has no recommendations: {fallback.reason}. The last published week stays in place."
