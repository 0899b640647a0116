"""The one Definitions object of the hm_recs code location (`defs`), and the factory behind it."""

import dagster as dg

from hm_recs.deploy import PLACEMENT, RUN_TAGS
from hm_recs.assets import evaluation, features, ingestion, models, ranking, recommend, segments, validation
from hm_recs.partitions import weekly_partitions
from hm_recs.resources import default_resources
from hm_recs.sensors import raw_week_sensor, run_failure_report

all_assets = dg.load_assets_from_modules([ingestion, validation, features, segments, models, ranking, recommend, evaluation])

INGESTION_ASSETS = dg.AssetSelection.groups("ingestion", "validation")
"""What a week of history needs before later weeks can learn from it."""

weekly_job = dg.define_asset_job(
    "weekly_job",
    selection=dg.AssetSelection.all(),
    partitions_def=weekly_partitions,
    description="Ingest, validate, featurise, recommend and evaluate one week (Wednesday to Tuesday).",
    tags=RUN_TAGS,
    executor_def=PLACEMENT.executor_def(),  # Dagster's default locally; one pod per step with HM_RECS_EXECUTOR=k8s
)

weekly_schedule = dg.build_schedule_from_partitioned_job(
    weekly_job,
    name="weekly_schedule",
    hour_of_day=6,
    minute_of_hour=0,
    description="Wednesday 06:00 UTC: builds the week that closed on Tuesday. Off until turned on in the UI.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """The code location with `resources` (default: from the environment, everything under .hm_recs/)."""
    return dg.Definitions(
        assets=all_assets,
        jobs=[weekly_job],
        schedules=[weekly_schedule],
        sensors=[raw_week_sensor(weekly_job), run_failure_report],
        resources=resources or default_resources(),
    )


defs = build_definitions()
