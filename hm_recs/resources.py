"""The code location's resources, assembled: the raw source (local folder or S3), the warehouse (a DuckDB file, or
Parquet on S3: `hm_recs.storage`), the model registry, the export store and the serving policy.

Defaults run locally with no setup: everything lives under `.hm_recs/` in the working directory.
Every path is configuration (environment variables or Dagster run config), not code.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from hm_recs.configs import config_of, core_config
from hm_recs.core.features import FeatureConfig
from hm_recs.core.ranking_features import InputWindows
from hm_recs.core.serving import GateRule
from hm_recs.partitions import HISTORY_WEEKS, SEGMENT_HISTORY_WEEKS
from hm_recs.registry import ModelRegistry
from hm_recs.settings import DEFAULT_ARTEFACTS, DEFAULT_EXPORTS, DEFAULT_SOURCE, DEFAULT_WAREHOUSE, HOME
from hm_recs.storage.duckdb_warehouse import DuckDBWarehouse, WarehouseIOManager
from hm_recs.storage.location import Location, is_s3
from hm_recs.storage.parquet_warehouse import ParquetWarehouse, ParquetWarehouseIOManager
from hm_recs.storage.warehouse import WAREHOUSE_SCHEMA


class RawSource(dg.ConfigurableResource):
    """Where the retailer's raw files land: a folder or `s3://bucket/prefix`, CSV or Parquet."""

    uri: str = DEFAULT_SOURCE
    format: str | None = None  # "csv" | "parquet" | None (whichever is there, Parquet first)
    allow_extra_columns: bool = False
    endpoint_url: str | None = None
    cache_dir: str = f"{HOME}/cache"
    # this source is the new delivery of the shop whose weeks the warehouse holds from another source: its weeks
    # replace the stored ones (the CLI re-ingests them); otherwise a run from another source stops (one shop)
    new_delivery: bool = False

    def location(self) -> Location:
        return Location(self.uri, self.endpoint_url, self.cache_dir)

    def identity(self) -> str:
        """The source as the warehouse records it for every ingested week: an absolute folder, or the S3 URI."""
        return self.uri if is_s3(self.uri) else str(Path(self.uri).resolve())


class PipelineSettings(dg.ConfigurableResource):
    """The windows and the seed every step shares, in one place: the features, models, candidates, baselines and
    the ranker's inputs all read the same `history_weeks` up to W, and the CLI's `--history-weeks` sets it."""

    # weeks up to and including W that every stage reads (and the CLI ingests); the graph's declared lookback
    # (`partitions.history_of`) shows the default
    history_weeks: int = HISTORY_WEEKS
    segment_history_weeks: int = SEGMENT_HISTORY_WEEKS  # weeks the segment indices read (seasonality: a year)
    recent_weeks: int = FeatureConfig.recent_weeks  # the features' "recent" window
    label_weeks: int = 4  # weeks of purchases the two-tower models learn from (before the held-out week)
    on_sale_weeks: int = 4  # retrieval ranks the articles sold in the last N weeks
    seed: int = 0  # every sample, shuffle and initialisation of the week
    # the torch models fine-tune from last week's artefacts for their `warm_epochs`, and train from scratch (all
    # together: the content encoder's full retrain makes its readers retrain) every this many weeks, or when last
    # week's artefact is missing or does not fit (`models/warm_start.py`); 1 = every week from scratch
    full_retrain_weeks: int = 4

    def two_tower_windows(self) -> dict:
        """The windows that shape the week's two-tower training data: its builder and its readers must agree."""
        return {"history_weeks": self.history_weeks, "label_weeks": self.label_weeks}

    def input_windows(self) -> InputWindows:
        """The ranker's inputs over the same windows as the features and segments assets."""
        return InputWindows(self.history_weeks, self.segment_history_weeks, self.recent_weeks)


class ServingPolicy(config_of(GateRule, exclude=("seed",), base=dg.ConfigurableResource)):
    """How each week's served recommender is chosen (`core/serving.py: GateRule`, whose fields this resource
    carries): the ranker against the best baseline on the latest labelled weeks' buyers, pooled until there are
    `min_validation_buyers` of them; `rule` decides on the paired difference (`not_worse`: the ranker serves
    unless it loses beyond noise). One resource, so the ranker's gate and a fallback run pool the same weeks."""

    def gate_rule(self) -> GateRule:
        return core_config(GateRule, self)


class ExportStore(dg.ConfigurableResource):
    """Where CRM jobs read the weekly recommendation files: a folder or `s3://bucket/prefix` (`HM_RECS_EXPORTS`);
    layout and visibility rules in `core/publishing.py`."""

    uri: str = DEFAULT_EXPORTS
    endpoint_url: str | None = None
    keep_weeks: int = 12  # local folders: newest weeks kept (S3: the bucket's lifecycle rule expires objects)

    def location(self) -> Location:
        return Location(self.uri, self.endpoint_url)


def default_resources(
    source: str | None = None,
    warehouse: str | None = None,
    artefacts: str | None = None,
    source_format: str | None = None,
    exports: str | None = None,
    new_delivery: bool = False,
    history_weeks: int | None = None,
) -> dict:
    """The resources of the code location; arguments override the environment defaults.

    A warehouse URI `s3://bucket/prefix` (e.g. `HM_RECS_WAREHOUSE`) selects `production_resources`: tables
    as Parquet objects on S3, nothing shared between pods but the buckets. Anything else is a DuckDB file."""
    warehouse_path = warehouse or DEFAULT_WAREHOUSE
    if is_s3(warehouse_path):
        return production_resources(
            warehouse_path,
            source or DEFAULT_SOURCE,
            artefacts or DEFAULT_ARTEFACTS,
            exports or DEFAULT_EXPORTS,
            source_format=source_format,
            new_delivery=new_delivery,
            history_weeks=history_weeks,
        )
    return {
        "raw_source": RawSource(uri=source or DEFAULT_SOURCE, format=source_format, new_delivery=new_delivery),
        "warehouse": DuckDBWarehouse(path=warehouse_path),
        "io_manager": WarehouseIOManager(database=warehouse_path, schema=WAREHOUSE_SCHEMA),
        "model_registry": ModelRegistry(uri=artefacts or DEFAULT_ARTEFACTS),
        "exports": ExportStore(uri=exports or DEFAULT_EXPORTS),
        "serving_policy": ServingPolicy(),
        "pipeline_settings": pipeline_settings(history_weeks),
    }


def production_resources(
    root_uri: str,
    source: str,
    artefacts: str,
    exports: str,
    endpoint_url: str | None = None,
    source_format: str | None = None,
    new_delivery: bool = False,
    history_weeks: int | None = None,
) -> dict:
    """The multi-pod configuration: every warehouse table as Parquet objects under `root_uri`
    (`s3://bucket/prefix`, or a folder), one object per partition, written by `ParquetWarehouseIOManager` and
    queried by `ParquetWarehouse` in an in-memory DuckDB; pods share no file, only the buckets. `endpoint_url`
    (MinIO, moto) applies to every S3 location; unset, boto3's and pyarrow's defaults and `AWS_ENDPOINT_URL`."""
    return {
        "raw_source": RawSource(uri=source, format=source_format, endpoint_url=endpoint_url, new_delivery=new_delivery),
        "warehouse": ParquetWarehouse(uri=root_uri, endpoint_url=endpoint_url),
        "io_manager": ParquetWarehouseIOManager(uri=root_uri, endpoint_url=endpoint_url),
        "model_registry": ModelRegistry(uri=artefacts, endpoint_url=endpoint_url),
        "exports": ExportStore(uri=exports, endpoint_url=endpoint_url),
        "serving_policy": ServingPolicy(),
        "pipeline_settings": pipeline_settings(history_weeks),
    }


def pipeline_settings(history_weeks: int | None = None) -> PipelineSettings:
    return PipelineSettings() if history_weeks is None else PipelineSettings(history_weeks=history_weeks)
