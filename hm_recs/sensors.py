"""Sensors of the code location: a new week's raw files request that week's run; a failed run is reported.

Both are off until turned on in the UI (Automation), like the schedule. Neither holds logic of its own beyond
deciding what to request or report: the listing rules live in `core/source.py`, the run itself in the job.
"""

from __future__ import annotations

import json
import os
import urllib.request

import dagster as dg

from hm_recs.core.source import WEEK_FILE_PATTERN, weeks_in_listing
from hm_recs.resources import RawSource


def raw_week_sensor(job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Requests `job` for week W when `transactions/week=W.csv|parquet` lands in the raw source (folder or S3
    prefix), and again when that file is replaced by one with other content (a corrected drop). The cursor keeps
    each weekly file's signature (size + mtime, or the S3 ETag); the run key makes a repeated evaluation safe."""

    @dg.sensor(name="raw_week_sensor", job=job, minimum_interval_seconds=300,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="A new (or replaced) weekly transactions file in the raw source requests that week's run.")
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
            requests.append(dg.RunRequest(partition_key=key, run_key=f"raw:{weekly[key]}:{signature}",
                                          tags={"hm_recs/trigger": "raw_week_sensor", "hm_recs/raw_file": weekly[key]}))
        if skipped:
            context.log.info(f"weekly files for weeks not yet closed, left for a later evaluation: {skipped}")
        context.update_cursor(json.dumps(seen, sort_keys=True))
        if not requests:
            return dg.SkipReason(f"no new weekly file among {len(weekly)} in {location.uri}")
        return requests

    return _sensor


ALERT_WEBHOOK_ENV = "HM_RECS_ALERT_WEBHOOK"
"""A Slack-compatible incoming webhook URL; when set, failures are posted there as well as logged."""


def failure_summary(run: dg.DagsterRun, instance: dg.DagsterInstance) -> dict:
    """Which steps of a failed run failed and why (the first line of each error), from the run's event log."""
    records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    steps = {}
    for record in records:
        event = record.event_log_entry.dagster_event
        error = event.event_specific_data.error if event and event.event_specific_data else None
        steps[event.step_key] = (error.message.strip().splitlines() or [""])[0] if error else "failed"
    checks = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    failed_checks = sorted(
        f"{r.event_log_entry.dagster_event.event_specific_data.asset_key.to_user_string()}:"
        f"{r.event_log_entry.dagster_event.event_specific_data.check_name}"
        for r in checks if not r.event_log_entry.dagster_event.event_specific_data.passed)
    return {"run_id": run.run_id, "job": run.job_name, "partition": run.tags.get("dagster/partition"),
            "failed_steps": steps, "failed_checks": failed_checks}


@dg.run_failure_sensor(name="run_failure_report", default_status=dg.DefaultSensorStatus.STOPPED,
                       description="Logs which stage of a failed run failed and why; posts it to "
                                   f"${ALERT_WEBHOOK_ENV} (Slack-compatible) when that is set.")
def run_failure_report(context: dg.RunFailureSensorContext):
    summary = failure_summary(context.dagster_run, context.instance)
    stages = "; ".join(f"{step}: {why}" for step, why in summary["failed_steps"].items()) or "no step failed"
    text = (f"hm_recs: run {summary['run_id']} of {summary['job']} for week {summary['partition']} failed. "
            f"{stages}. Failed checks: {', '.join(summary['failed_checks']) or 'none'}.")
    context.log.error(text)
    webhook = os.environ.get(ALERT_WEBHOOK_ENV)
    if webhook:
        request = urllib.request.Request(webhook, data=json.dumps({"text": text}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 (operator-configured URL)
