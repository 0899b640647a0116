"""The weekly partitions: weeks start on Wednesday, as in the H&M data, from 2018-09-19."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from hm_recs.core.weeks import FIRST_WEEK, parse_week

weekly_partitions = dg.WeeklyPartitionsDefinition(start_date=FIRST_WEEK.isoformat(), day_offset=3)
"""day_offset=3: Dagster counts weekdays from Sunday, so 3 is Wednesday."""


def partition_week(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> dt.date:
    """The week (its Wednesday) that the run's partition stands for."""
    return parse_week(context.partition_key)


SCHEDULE_HOUR_UTC = 6
"""The weekly schedule builds the week that closed on Tuesday at Wednesday 06:00 UTC."""
PUBLISHED_BY = dg.FreshnessPolicy.cron(
    deadline_cron="0 12 * * 3", lower_bound_delta=dt.timedelta(hours=12 - SCHEDULE_HOUR_UTC), timezone="UTC"
)
"""`recommendations` is late (the UI's freshness) when no lists were built between the schedule's start and
Wednesday noon UTC, when CRM jobs read them."""
