"""The week's files for CRM jobs: the published `recommendations` as Parquet and Kaggle CSV, with a manifest."""

import datetime as dt
import io

import dagster as dg
import polars as pl

from hm_recs.assets.common import measured, preview
from hm_recs.core.publishing import latest_published, publish_week, published_run, read_published
from hm_recs.deploy import LARGE_MEMORY_TAG
from hm_recs.partitions import partition_week, weekly_partitions
from hm_recs.registry import ModelRegistry
from hm_recs.resources import ExportStore


@dg.asset(
    op_tags=LARGE_MEMORY_TAG,
    partitions_def=weekly_partitions,
    group_name="recommend",
    kinds={"parquet", "csv", "s3"},
    check_specs=[
        dg.AssetCheckSpec(
            "published_complete",
            asset="recommendations_export",
            blocking=True,
            description=(
                "the published files read back through LATEST/CURRENT match the "
                "manifest's checksums; one Kaggle line per customer"
            ),
        )
    ],
)
def recommendations_export(
    context: dg.AssetExecutionContext,
    exports: ExportStore,
    model_registry: ModelRegistry,
    recommendations: pl.DataFrame,
) -> dg.MaterializeResult:
    """The week's files for CRM jobs (layout and visibility rules in `core/publishing.py`): the contract table as
    Parquet, the Kaggle `customer_id,prediction` CSV and a manifest (rows, checksums, model versions), written to a
    run folder of their own; `_SUCCESS`, then the week's CURRENT and the LATEST pointer make them visible."""
    week = partition_week(context)
    target: dt.date = recommendations["week"][0]
    served_by = recommendations["served_by"][0]
    location = exports.location()
    with measured(context, "recommendations_export") as stage:
        kaggle = (
            recommendations.sort("customer_id", "rank")
            .group_by("customer_id", maintain_order=True)
            .agg(pl.col("article_id").str.join(" ").alias("prediction"))
        )
        parquet = io.BytesIO()
        recommendations.sort("customer_id", "rank").write_parquet(parquet)
        manifest = publish_week(
            location,
            target,
            context.run_id,
            {"recommendations.parquet": parquet.getvalue(), "recommendations.csv": kaggle.write_csv().encode()},
            {
                "rows": recommendations.height,
                "customers": kaggle.height,
                "built_from_week": week.isoformat(),
                "columns": list(recommendations.columns),
                "models": model_registry.versions(week),
                "served_by": served_by,
                "serving": model_registry.serving(week),
            },
            keep_weeks=exports.keep_weeks,
        )
        pointer = published_run(location, target)
        read_manifest, files = read_published(location, pointer)  # what a reader gets, checksums verified
        lines = pl.read_csv(io.BytesIO(files["recommendations.csv"])).height
    latest = latest_published(location)
    return dg.MaterializeResult(
        metadata={
            "served_by": served_by,
            "published": location.describe(pointer),
            "latest": location.describe(latest[1]) if latest else "",
            "customers": lines,
            "manifest": dg.MetadataValue.json(manifest),
            "preview": preview(kaggle, 3),
            **stage,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="published_complete",
                passed=bool(read_manifest == manifest and lines == recommendations["customer_id"].n_unique()),
                metadata={"lines": lines, "run_folder": pointer},
            )
        ],
    )
