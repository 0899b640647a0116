"""Sensors of the code location: a new week's raw files request that week's run; a failed run is reported; a
weekly run that failed before publishing gets its fallback run (or its week marked as having no lists).

The first two are off until turned on in the UI (Automation), like the schedule; `serving_fallback` is on. Neither
holds logic of its own beyond deciding what to request or report: the listing rules live in `core/source.py`, the
run itself in the job.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import dagster as dg

from hm_recs.core.publishing import mark_unavailable
from hm_recs.core.source import WEEK_FILE_PATTERN, weeks_in_listing
from hm_recs.core.weeks import shift_weeks
from hm_recs.fallback import RunOutcome, describe, plan
from hm_recs.resources import ExportStore, RawSource
from hm_recs.settings import ALERT_WEBHOOK_ENV, setting


def raw_week_sensor(job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Requests `job` for week W when `transactions/week=W.csv|parquet` lands in the raw source (folder or S3
    prefix), and again when that file is replaced by one with other content (a corrected drop). The cursor keeps
    each weekly file's signature (size + mtime, or the S3 ETag); the run key makes a repeated evaluation safe."""

    @dg.sensor(
        name="raw_week_sensor",
        job=job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="A new (or replaced) weekly transactions file in the raw source requests that week's run.",
    )
    def _sensor(context: dg.SensorEvaluationContext, raw_source: RawSource):
        location = raw_source.location()
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        names = location.names()
        weekly = {m.group(1): n for n in names if (m := WEEK_FILE_PATTERN.match(n))}
        requests, skipped = [], []
        for week in weeks_in_listing(names):
            key = week.isoformat()
            signature = location.signature(weekly[key])
            if seen.get(key) == signature:
                continue
            if not job.partitions_def.has_partition_key(key):  # the week has not closed yet (or is before the first)
                skipped.append(key)
                continue
            seen[key] = signature
            requests.append(
                dg.RunRequest(
                    partition_key=key,
                    run_key=f"raw:{weekly[key]}:{signature}",
                    tags={"hm_recs/trigger": "raw_week_sensor", "hm_recs/raw_file": weekly[key]},
                )
            )
        if skipped:
            context.log.info(f"weekly files for weeks not yet closed, left for a later evaluation: {skipped}")
        context.update_cursor(json.dumps(seen, sort_keys=True))
        if not requests:
            return dg.SkipReason(f"no new weekly file among {len(weekly)} in {location.uri}")
        return requests

    return _sensor


"""A Slack-compatible incoming webhook URL; when set, failures are posted there as well as logged."""


def failure_summary(
    run: dg.DagsterRun, instance: dg.DagsterInstance, every_asset: frozenset[str] = frozenset()
) -> dict:
    """Which steps of a failed run failed and why (the first line of each error), from the run's event log."""
    outcome = RunOutcome.of(run, instance, every_asset)
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": outcome.week,
        "failed_steps": outcome.failed_steps,
        "failed_checks": sorted(outcome.failed_checks),
    }


def week_after(week: str | None) -> str | None:
    return shift_weeks(dt.date.fromisoformat(week), 1).isoformat() if week else None


def run_failure_report(every_asset: frozenset[str], data: frozenset[str]) -> dg.SensorDefinition:
    """Reports every failed run: its failed steps and checks, and what becomes of the week's lists (a fallback
    run of the champion, or no lists: `fallback.plan`)."""

    @dg.run_failure_sensor(
        name="run_failure_report",
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Logs which stage of a failed run failed and why, and who serves the week; "
            f"posts it to ${ALERT_WEBHOOK_ENV} (Slack-compatible) when that is set."
        ),
    )
    def _report(context: dg.RunFailureSensorContext):
        outcome = RunOutcome.of(context.dagster_run, context.instance, every_asset)
        text = (
            f"hm_recs: run {outcome.run_id} of {context.dagster_run.job_name} for week {outcome.week} failed. "
            f"{outcome.failures()}." + describe(outcome, plan(outcome, data), week_after(outcome.week))
        )
        context.log.error(text)
        webhook = setting(ALERT_WEBHOOK_ENV)
        if webhook:
            request = urllib.request.Request(
                webhook, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}
            )
            urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 (operator-configured URL)

    return _report


def serving_fallback(
    job: dg.UnresolvedAssetJobDefinition,
    every_asset: frozenset[str],
    data: frozenset[str],
    base_config: dict | None = None,
) -> dg.SensorDefinition:
    """After a failed weekly run that did not build `recommendations`: requests the fallback run that publishes
    the week from the best validated baseline, or marks the week as having no lists in the export (a data gate
    failed). On by default: without it a week whose model chain failed would publish nothing."""

    @dg.run_failure_sensor(
        name="serving_fallback",
        monitored_jobs=[job],
        request_job=job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "A weekly run that failed before publishing: the champion baseline's lists "
            "in a fallback run, or the week marked as having none in the export."
        ),
    )
    def _fallback(context: dg.RunFailureSensorContext, exports: ExportStore):
        outcome = RunOutcome.of(context.dagster_run, context.instance, every_asset)
        fallback = plan(outcome, data)
        if fallback is None:
            return dg.SkipReason(f"run {outcome.run_id} built the week's recommendations or did not try to")
        if fallback.publish:
            context.log.warning(
                f"week {week_after(outcome.week)}: {fallback.reason}; requesting the champion's fallback run"
            )
            return fallback.run_request(outcome, base_config)
        marker = mark_unavailable(
            exports.location(), dt.date.fromisoformat(week_after(outcome.week)), outcome.run_id, fallback.reason
        )
        return dg.SkipReason(
            f"week {week_after(outcome.week)} has no recommendations ({fallback.reason}); "
            + (f"marked in {exports.location().describe(marker)}" if marker else "its published lists stay")
        )

    return _fallback
