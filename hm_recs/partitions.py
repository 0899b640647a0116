"""The weekly partitions: weeks start on Wednesday, as in the H&M data, from 2018-09-19."""

from __future__ import annotations

import datetime as dt
import warnings

import dagster as dg

from hm_recs.core.weeks import FIRST_WEEK, parse_week

weekly_partitions = dg.WeeklyPartitionsDefinition(start_date=FIRST_WEEK.isoformat(), day_offset=3)
"""day_offset=3: Dagster counts weekdays from Sunday, so 3 is Wednesday."""


HISTORY_WEEKS = 26
"""Weeks up to and including W that the stages read by default (`PipelineSettings.history_weeks`)."""
SEGMENT_HISTORY_WEEKS = 52
"""Weeks the segment indices read by default (a year: seasonality)."""


def history_of(asset: str, weeks: int = HISTORY_WEEKS, before: int = 0) -> dg.AssetDep:
    """A declared dependency of partition W on the `weeks` partitions of `asset` up to W (up to W - `before`
    weeks: the ranker's scorers read the inputs of earlier weeks only), so that the UI's lineage and a backfill's
    order show the lookback. It loads nothing (a dependency, not an input; the stage's read stays bounded by week
    in SQL, `storage/reads.py`); the first weeks, with less history, are allowed."""
    with warnings.catch_warnings():  # the switch for the first weeks is marked beta; the mapping itself is not
        warnings.simplefilter("ignore", dg.BetaWarning)
        mapping = dg.TimeWindowPartitionMapping(
            start_offset=-(weeks - 1) - before, end_offset=-before, allow_nonexistent_upstream_partitions=True
        )
    return dg.AssetDep(asset, partition_mapping=mapping)


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
