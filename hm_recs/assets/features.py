"""Customer and article features as of the end of week W (history read up to W's Tuesday only)."""

import dagster as dg
import polars as pl

from hm_recs.assets.common import measured, preview
from hm_recs.core.features import (
    ARTICLE_FEATURES_NOT_NULL,
    CUSTOMER_FEATURES_NOT_NULL,
    FeatureConfig,
)
from hm_recs.core.features import (
    article_features as build_article_features,
)
from hm_recs.core.features import (
    customer_features as build_customer_features,
)
from hm_recs.core.schema import INDEX_GROUP_SHARES
from hm_recs.deploy import CHAMPION_PRIORITY
from hm_recs.partitions import history_of, partition_week, weekly_partitions
from hm_recs.resources import PipelineSettings
from hm_recs.storage.reads import history
from hm_recs.storage.warehouse import PARTITIONED, Warehouse


def features_check(
    frame: pl.DataFrame, key: str, not_null: list[str], shares: list[str], expected_keys: int
) -> dg.AssetCheckResult:
    """One row per key, no nulls where none are allowed, shares within [0, 1]."""
    nulls = {c: int(frame[c].null_count()) for c in not_null if frame[c].null_count()}
    out_of_range = {
        c: int(((frame[c] < 0) | (frame[c] > 1)).sum()) for c in shares if ((frame[c] < 0) | (frame[c] > 1)).any()
    }
    duplicates = frame.height - frame[key].n_unique()
    return dg.AssetCheckResult(
        passed=bool(not nulls and not out_of_range and duplicates == 0 and frame.height == expected_keys),
        metadata={
            "rows": frame.height,
            "expected_rows": expected_keys,
            "duplicate_keys": duplicates,
            "nulls": dg.MetadataValue.json(nulls),
            "shares_out_of_range": dg.MetadataValue.json(out_of_range),
        },
    )


@dg.asset(
    partitions_def=weekly_partitions,
    group_name="features",
    kinds={"duckdb", "polars"},
    metadata=PARTITIONED,
    deps=[history_of("transactions")],
    check_specs=[dg.AssetCheckSpec("one_row_per_customer", asset="customer_features", blocking=True)],
)
def customer_features(
    context: dg.AssetExecutionContext,
    pipeline_settings: PipelineSettings,
    warehouse: Warehouse,
    customers: pl.DataFrame,
    articles: pl.DataFrame,
):
    """Per customer: channel preference, favourite colour and garment group, mean price, recent purchase count,
    ladies/men/kids shares, age group (cold-start customers included)."""
    week = partition_week(context)
    with measured(context, "customer_features") as figures:
        transactions = history(warehouse, week, pipeline_settings.history_weeks)
        frame = build_customer_features(
            customers, transactions, articles, week, FeatureConfig(pipeline_settings.recent_weeks)
        )
    cold = int((frame["n_purchases"] == 0).sum())
    yield dg.Output(
        frame.with_columns(pl.lit(week).alias("week")),
        metadata={
            "rows": frame.height,
            "cold_start_customers": cold,
            "history_rows": transactions.height,
            "history_weeks_present": transactions["t_dat"].dt.truncate("1w").n_unique() if transactions.height else 0,
            "preview": preview(frame),
            **figures,
        },
    )
    yield features_check(
        frame, "customer_id", CUSTOMER_FEATURES_NOT_NULL, ["online_share", *INDEX_GROUP_SHARES], customers.height
    )


@dg.asset(
    op_tags=CHAMPION_PRIORITY,
    partitions_def=weekly_partitions,
    group_name="features",
    kinds={"duckdb", "polars"},
    metadata=PARTITIONED,
    deps=[history_of("transactions")],
    check_specs=[dg.AssetCheckSpec("one_row_per_article", asset="article_features", blocking=True)],
)
def article_features(
    context: dg.AssetExecutionContext,
    pipeline_settings: PipelineSettings,
    warehouse: Warehouse,
    articles: pl.DataFrame,
    customers: pl.DataFrame,
):
    """Per catalogue article: popularity, its trend, mean price, channel preference, seasonal sales share,
    preferred age group."""
    week = partition_week(context)
    with measured(context, "article_features") as figures:
        transactions = history(warehouse, week, pipeline_settings.history_weeks)
        frame = build_article_features(articles, transactions, customers, week)
    yield dg.Output(
        frame.with_columns(pl.lit(week).alias("week")),
        metadata={
            "rows": frame.height,
            "articles_sold_last_week": int((frame["sales_last_week"] > 0).sum()),
            "preview": preview(frame.sort("popularity_rank")),
            **figures,
        },
    )
    yield features_check(
        frame.with_columns(pl.col("online_share", "seasonal_share").fill_null(0.0)),
        "article_id",
        ARTICLE_FEATURES_NOT_NULL,
        ["online_share", "seasonal_share"],
        articles.height,
    )
