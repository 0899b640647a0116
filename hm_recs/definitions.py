"""The one Definitions object of the hm_recs code location (`defs`), and the factory behind it."""

import dagster as dg

from hm_recs.assets import (
    baselines,
    content,
    evaluation,
    export,
    features,
    ingestion,
    ranking,
    ranking_inputs,
    recommend,
    segments,
    sequence,
    two_tower,
    validation,
)
from hm_recs.deploy import PLACEMENT, RUN_TAGS, local_execution_config
from hm_recs.fallback import data_assets
from hm_recs.observability import run_logger_config, run_loggers
from hm_recs.partitions import SCHEDULE_HOUR_UTC, weekly_partitions
from hm_recs.resources import default_resources
from hm_recs.sensors import raw_week_sensor, run_failure_report, serving_fallback

OWNERS: dict[str, list[str]] = {
    **dict.fromkeys(("ingestion", "validation", "features", "segments"), ["team:data-engineering"]),
    **dict.fromkeys(("models", "segment_models", "ranking", "recommend", "evaluation"), ["team:ml-engineering"]),
}
"""Who answers for each group's assets (the UI's Owners): the data engineers for the warehouse tables, the ML
engineers for the models and what they publish."""


def _owned(spec: dg.AssetSpec) -> dg.AssetSpec:
    return spec.replace_attributes(owners=OWNERS.get(spec.group_name or "", []))


all_assets = dg.map_asset_specs(
    _owned,
    dg.load_assets_from_modules(
        [
            ingestion,
            validation,
            features,
            segments,
            content,
            two_tower,
            sequence,
            ranking,
            ranking_inputs,
            baselines,
            recommend,
            export,
            evaluation,
        ]
    ),
)
EVERY_ASSET = frozenset(key.to_user_string() for definition in all_assets for key in definition.keys)
DATA_ASSETS = data_assets(all_assets)
"""Assets whose failed gate keeps last week's table (`fallback.DATA_GROUPS`)."""

INGESTION_ASSETS = dg.AssetSelection.groups("ingestion", "validation")
"""What a week of history needs before later weeks can learn from it."""


def weekly_run_config(log_format: str | None = None) -> dict | None:
    """Default run config of `weekly_job` (also merged into its fallback runs)."""
    return {
        **(run_logger_config(log_format) or {}),
        **(local_execution_config() if PLACEMENT.executor != "k8s" else {}),
    } or None


def make_weekly_job(log_format: str | None = None):
    return dg.define_asset_job(
        "weekly_job",
        selection=dg.AssetSelection.all(),
        partitions_def=weekly_partitions,
        description="Ingest, validate, featurise, recommend and evaluate one week (Wednesday to Tuesday).",
        tags=RUN_TAGS,
        executor_def=PLACEMENT.executor_def(),  # Dagster's default locally; one pod per step with HM_RECS_EXECUTOR=k8s
        # JSON console lines with HM_RECS_LOG_FORMAT=json; locally, one large-memory step at a time
        config=weekly_run_config(log_format),
    )


def make_weekly_schedule(job) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job,
        name="weekly_schedule",
        hour_of_day=SCHEDULE_HOUR_UTC,
        minute_of_hour=0,
        description="Wednesday 06:00 UTC: builds the week that closed on Tuesday. Off until turned on in the UI.",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )


weekly_job = make_weekly_job()
weekly_schedule = make_weekly_schedule(weekly_job)


def build_definitions(resources: dict | None = None, log_format: str | None = None) -> dg.Definitions:
    """The code location with `resources` (default: from the environment, everything under .hm_recs/) and its
    jobs' console logs as text or JSON lines (default: HM_RECS_LOG_FORMAT; `observability.py`)."""
    job = weekly_job if log_format is None else make_weekly_job(log_format)
    return dg.Definitions(
        assets=all_assets,
        jobs=[job],
        schedules=[weekly_schedule if job is weekly_job else make_weekly_schedule(job)],
        sensors=[
            raw_week_sensor(job),
            run_failure_report(EVERY_ASSET, DATA_ASSETS),
            serving_fallback(job, EVERY_ASSET, DATA_ASSETS, weekly_run_config(log_format)),
        ],
        resources=resources or default_resources(),
        loggers=run_loggers(log_format),
    )


defs = build_definitions()
