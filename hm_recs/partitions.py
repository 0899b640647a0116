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
