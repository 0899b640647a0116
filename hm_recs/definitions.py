"""The one Definitions object of the hm_recs code location."""

from __future__ import annotations

import dagster as dg

from hm_recs.assets import evaluation, features, ingestion, recommend, validation
from hm_recs.partitions import weekly_partitions
from hm_recs.resources import default_resources

all_assets = dg.load_assets_from_modules([ingestion, validation, features, recommend, evaluation])

weekly_job = dg.define_asset_job(
    "weekly_job",
    selection=dg.AssetSelection.all(),
    partitions_def=weekly_partitions,
    description="Ingest, validate, featurise, recommend and evaluate one week (Wednesday to Tuesday).",
)

weekly_schedule = dg.build_schedule_from_partitioned_job(
    weekly_job,
    name="weekly_schedule",
    hour_of_day=6,
    minute_of_hour=0,
    description="Wednesday 06:00 UTC: builds the week that closed on Tuesday. Off until turned on in the UI.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions(
    assets=all_assets,
    jobs=[weekly_job],
    schedules=[weekly_schedule],
    resources=default_resources(),
)
