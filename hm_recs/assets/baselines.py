"""The baseline recommenders (popularity, trending, repurchase): their lists for every customer, built at W for
week W+1, and their validation on W's buyers. They are the ranker's bar, the champion that serves when the
ranker loses, the evaluation's comparison and the top-up of short lists."""

import json

import dagster as dg
import polars as pl

from hm_recs.assets.common import customer_chunks, measured, preview
from hm_recs.configs import config_of, core_config
from hm_recs.core.baselines import BASELINES, BaselineConfig, WeekBaselines, recommend_all
from hm_recs.core.contract import combined_checks, recommendations_check
from hm_recs.core.metrics import K, evaluate
from hm_recs.core.tiers import ListTiers
from hm_recs.core.weeks import shift_weeks
from hm_recs.deploy import CHAMPION_PRIORITY
from hm_recs.partitions import history_of, partition_week, weekly_partitions
from hm_recs.resources import PipelineSettings
from hm_recs.storage.reads import history
from hm_recs.storage.staged import StagedTable
from hm_recs.storage.warehouse import TARGET_WEEK_PARTITIONED, Warehouse


class BaselinesConfig(config_of(BaselineConfig, exclude=("k",))):
    """The baselines' windows and decays (`core.baselines.BaselineConfig`; lists of K)."""

    chunk_customers: int = 100_000  # customers whose lists are built and staged at once


@dg.multi_asset(
    outs={
        "baseline_recommendations": dg.AssetOut(
            metadata=TARGET_WEEK_PARTITIONED,
            kinds={"duckdb", "polars"},
            description="Each baseline's 12 articles per customer for week W+1.",
        ),
        "baseline_validation": dg.AssetOut(
            metadata=TARGET_WEEK_PARTITIONED,
            kinds={"duckdb"},
            description="Each baseline rebuilt as of W-1 and scored on week W.",
        ),
    },
    partitions_def=weekly_partitions,
    group_name="recommend",
    deps=[history_of("transactions")],
    op_tags=CHAMPION_PRIORITY,
    check_specs=[dg.AssetCheckSpec("twelve_per_customer", asset="baseline_recommendations", blocking=True)],
)
def baseline_recommendations(
    context: dg.AssetExecutionContext,
    config: BaselinesConfig,
    pipeline_settings: PipelineSettings,
    warehouse: Warehouse,
    customers: pl.DataFrame,
    articles: pl.DataFrame,
    article_features: pl.DataFrame,
):
    week = partition_week(context)
    target = shift_weeks(week, 1)
    cfg = core_config(BaselineConfig, config, k=K)
    with measured(context, "baseline_recommendations") as figures:
        transactions = history(warehouse, week, pipeline_settings.history_weeks)
        validation = _baseline_validation(customers, transactions, articles, article_features, week, target, cfg)
        recs, checks = _baseline_lists(customers, transactions, articles, week, target, cfg, config.chunk_customers)
    for row in validation.iter_rows(named=True):
        context.log.info(
            f"validation on week {week}: {row['recommender']} MAP@12={row['map_at_12']:.4f}"
            f" recall@12={row['recall_at_12']:.4f}"
        )
    yield dg.Output(
        recs,
        output_name="baseline_recommendations",
        metadata={"rows": recs.rows, "preview": preview(recs.scan().head(5).collect()), **figures},
    )
    yield dg.Output(
        validation,
        output_name="baseline_validation",
        metadata={
            "validation": dg.MetadataValue.md(
                "\n".join(
                    f"- {r['recommender']}: MAP@12 {r['map_at_12']:.4f}" for r in validation.iter_rows(named=True)
                )
            )
        },
    )
    passed, check_figures = (
        combined_checks(checks)
        if checks
        else recommendations_check(recs.scan().collect(), customers, articles, by=["recommender"])
    )
    yield dg.AssetCheckResult(
        check_name="twelve_per_customer", asset_key="baseline_recommendations", passed=passed, metadata=check_figures
    )


def _baseline_validation(
    customers: pl.DataFrame,
    transactions: pl.DataFrame,
    articles: pl.DataFrame,
    article_features: pl.DataFrame,
    week,
    target,
    cfg: BaselineConfig,
) -> pl.DataFrame:
    """Each baseline rebuilt as of W-1 and scored on week W's buyers (what MAP@12 scores; coverage and novelty of
    the lists they got), with the tiers its lists would get were it to serve W+1 as the champion."""
    previous = shift_weeks(week, -1)
    this_week = transactions.filter(pl.col("t_dat") >= pl.lit(week))
    validation_recs = recommend_all(
        customers,
        transactions.filter(pl.col("t_dat") < pl.lit(week)),
        articles,
        previous,
        cfg,
        wanted=this_week["customer_id"].unique(),
    )
    stats = article_features.select("article_id", "n_sales", "mean_price")
    return pl.DataFrame(
        [
            {
                "recommender": name,
                **evaluate(lists, this_week, stats, articles.height),
                "tiers": json.dumps(ListTiers.fit(lists, this_week).state()) if lists.height else None,
            }
            for name in BASELINES
            for lists in [validation_recs.filter(pl.col("recommender") == name)]
        ]
    ).with_columns(
        pl.lit(week).alias("validated_on"),
        pl.lit(target).alias("week"),
        pl.lit(this_week["customer_id"].n_unique(), dtype=pl.Int64).alias("buyers"),
    )


def _baseline_lists(
    customers: pl.DataFrame,
    transactions: pl.DataFrame,
    articles: pl.DataFrame,
    week,
    target,
    cfg: BaselineConfig,
    chunk_customers: int,
) -> tuple[StagedTable, list]:
    """Every baseline's lists for week W+1, built and staged one chunk of customers at a time (memory: one chunk's
    lists; what they are made of is built once), with each chunk's contract check; with no customers the staged
    table keeps its schema (no checks)."""
    recs, checks = StagedTable("baseline_recommendations"), []
    week_baselines = WeekBaselines.build(customers, transactions, articles, week, cfg)
    for chunk in customer_chunks(customers["customer_id"], chunk_customers):
        lists = week_baselines.lists(customers, wanted=chunk).with_columns(pl.lit(target).alias("week"))
        checks.append(
            recommendations_check(
                lists, customers.filter(pl.col("customer_id").is_in(chunk.implode())), articles, by=["recommender"]
            )
        )
        recs.append(lists)
    if not checks:
        recs.append(week_baselines.lists(customers).with_columns(pl.lit(target).alias("week")))
    return recs, checks
