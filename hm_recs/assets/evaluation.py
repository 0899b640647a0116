"""Backtest of week W: what was built at W-1 (for week W) scored on week W's purchases.

Reads only W's transactions and what was built at W-1, so partition W still reads nothing after W.
Reports, never blocks: its check only says whether there was something to score.
"""

import datetime as dt

import dagster as dg
import polars as pl

from hm_recs.assets.common import markdown_table, measured, png_markdown
from hm_recs.assets.ranking import serving_set
from hm_recs.assets.ranking_inputs import INPUTS, ServingRanker, load_ranker
from hm_recs.core.candidates import HEURISTIC_SOURCES
from hm_recs.core.metrics import (
    COVERAGE_LEVELS,
    METRIC_NAMES,
    K,
    beyond_accuracy,
    evaluate,
    popularity_order,
    purchase_ranks,
    rank_coverage,
)
from hm_recs.core.ranking_features import source_features
from hm_recs.core.weeks import shift_weeks
from hm_recs.deploy import LARGE_MEMORY_TAG, LARGE_STEP_TAGS
from hm_recs.partitions import history_of, partition_week, weekly_partitions
from hm_recs.registry import ModelRegistry
from hm_recs.storage.reads import customer_rows, partition_rows
from hm_recs.storage.warehouse import PARTITIONED, Warehouse

MODEL = "model"
"""The name under which the published `recommendations` are reported (whichever recommender served)."""
RANKER = "ranker"
"""The ranker's own top 12 of the same buyers' serving candidates, reported every week, served or not."""
COVERAGE_SCHEMA = {
    "recommender": pl.String,
    "list_depth": pl.Int64,
    **{f"recs_for_{round(level * 100)}pct": pl.Float64 for level in COVERAGE_LEVELS},
    "auc": pl.Float64,
}
REPORT_SCHEMA = {
    "recommender": pl.String,
    **{m: pl.Float64 for m in METRIC_NAMES},
    **{f"rank_coverage_{c}": t for c, t in COVERAGE_SCHEMA.items() if c != "recommender"},
    "week": pl.Date,
    "buying_customers": pl.Int32,
    "served_by": pl.String,
}
"""The stored report: one row per recommender, rank coverage where it was measured (null elsewhere), and which
recommender served the published lists (`served_by`: `ranker` or the champion baseline)."""
SOURCE_PREFIX = "source/"
"""Report rows of a single candidate source used alone (`source/trending`, `source/two_tower`, ...)."""


def _plot(report: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, metric in zip(axes, ["map_at_12", "recall_at_12"], strict=True):
        ax.bar(report["recommender"].to_list(), report[metric].to_list(), color="#4c72b0")
        ax.set_title(metric)
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    value = png_markdown(fig)
    plt.close(fig)
    return value


def source_lists(serving: pl.DataFrame, k: int = K) -> dict[str, pl.DataFrame]:
    """Each heuristic candidate source alone, as a recommender: the customer's top k of that source by its rank
    (customers it has nothing for get no list, and count as misses)."""
    lists = {}
    for source in HEURISTIC_SOURCES:
        rank = f"{source}_rank"
        rows = serving.filter(pl.col(rank).is_not_null()).sort("customer_id", rank, "article_id")
        lists[f"{SOURCE_PREFIX}{source}"] = (
            rows.group_by("customer_id", maintain_order=True)
            .head(k)
            .select("customer_id", "article_id", pl.int_range(1, pl.len() + 1).over("customer_id").alias("rank"))
        )
    return lists


@dg.asset(
    op_tags={**LARGE_STEP_TAGS, **LARGE_MEMORY_TAG},
    partitions_def=weekly_partitions,
    group_name="evaluation",
    kinds={"duckdb", "polars"},
    metadata=PARTITIONED,
    deps=[
        "transactions",
        "recommendations",
        "baseline_recommendations",
        "article_features",
        "candidates",
        "two_tower_candidates",
        "sequence_candidates",
        "customer_segments",
        "ranker_model",
        *(history_of(table, 1, before=1) for table in INPUTS),  # the ranker of W-1 re-ranks with W-1's inputs
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "scored",
            asset="evaluation_report",
            blocking=True,
            description="reports only: passes unless scoring itself failed",
        )
    ],
)
def evaluation_report(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_registry: ModelRegistry, articles: pl.DataFrame
):
    """Week W's backtest of what was built at W-1: MAP@12 (Kaggle), recall@12, coverage, novelty and mean price
    of the published model, each baseline and each candidate source alone; Heinz et al.'s rank coverage (how
    many recommendations cover 10/50/90% of the purchases, and AUC) of the ranker, the two-tower and sequence
    models and popularity; beyond-accuracy figures of the published lists per customer segment."""
    week = partition_week(context)
    built = shift_weeks(week, -1)
    with measured(context, "evaluation_report") as figures:
        purchases = partition_rows(warehouse, "transactions", week, "customer_id, article_id")
        buyers = (
            purchases["customer_id"].unique() if purchases.height else pl.Series("customer_id", [], dtype=pl.String)
        )
        # every recommender is scored on the lists of week W's buyers (only their rows are read): what MAP@12 and
        # recall score, and the coverage/novelty/price of the lists they were served; the per-segment figures
        # are of every customer's published list, computed first and released before the ranker is loaded
        published = customer_rows(
            warehouse, "recommendations", shift_weeks(built, 1), buyers, "customer_id, article_id, rank"
        )
        served_by = served_by_of(warehouse, built)
        baselines = customer_rows(
            warehouse, "baseline_recommendations", week, buyers, "recommender, customer_id, article_id, rank"
        )
        stats = partition_rows(warehouse, "article_features", built, "article_id, n_sales, sales_last_week, mean_price")
        rows, coverage_rows, segment_table = [], [], pl.DataFrame()
        if purchases.height and (published.height or baselines.height):
            rows, coverage_rows, segment_table = score_recommenders(
                context, warehouse, model_registry, built, buyers, purchases, published, baselines, stats, articles
            )
    if not rows:
        context.log.warning(
            f"nothing to evaluate for week {week}: no recommendations were built at {built} "
            f"(materialise that week first) or week {week} has no purchases"
        )
    coverage = pl.DataFrame(coverage_rows, schema=COVERAGE_SCHEMA)
    buying = purchases["customer_id"].n_unique() if purchases.height else 0
    report = report_frame(rows, coverage, week, buying, served_by)
    metadata = report_metadata(report, coverage, segment_table, learned_sources(model_registry, built), week, built)
    for row in report.filter(pl.col("map_at_12").is_not_null()).iter_rows(named=True):
        context.log.info(
            f"week {week}: {row['recommender']} MAP@12={row['map_at_12']:.4f} recall@12={row['recall_at_12']:.4f}"
        )
    metadata.update({"served_by": served_by or "", **figures})
    yield dg.Output(report, metadata=metadata)
    yield dg.AssetCheckResult(
        passed=True,
        metadata={"scored_recommenders": report.height, "note": "" if report.height else "nothing to evaluate"},
    )


def score_recommenders(context, warehouse, registry, built, buyers, purchases, published, baselines, stats, articles):
    """Every recommender's metrics on week W's buyers (the published model, each baseline, each source alone,
    the ranker's own lists), their rank coverage, and the published lists' figures per segment."""
    rows, coverage_rows = [], []
    segment_table = published_by_segment(warehouse, built, stats, articles.height)
    model_lists = retrieval_lists(warehouse, built, buyers)
    serving = serving_set(warehouse, built, buyers)
    if not published.height:
        context.log.warning(
            f"no published recommendations were built at {built} (ranker refused or not run): "
            "scoring the baselines and sources only"
        )
    recommenders = ([(MODEL, published)] if published.height else []) + [
        (name, group.drop("recommender")) for (name,), group in baselines.group_by("recommender", maintain_order=True)
    ]
    if serving.height:
        recommenders += list(source_lists(serving).items())
    recommenders += [(f"{SOURCE_PREFIX}{name}", lists) for name, lists in model_lists.items()]
    for name, recs in recommenders:
        rows.append({"recommender": name, **evaluate(recs, purchases, stats, articles.height)})
    order = popularity_order(stats)
    # rank coverage under the report's names: the ranker's full order of the candidates is `model`'s
    ranked = {
        "popularity": pl.DataFrame(schema={"customer_id": pl.String, "article_id": pl.String, "rank": pl.Int64}),
        **{f"{SOURCE_PREFIX}{name}": lists for name, lists in model_lists.items()},
    }
    if serving.height:
        ranking = ranker_ranking(warehouse, registry, built, serving, context)
        ranked = {MODEL: ranking, **ranked}
        if ranking is not None:  # the ranker's own lists, served or not: a fallback week cannot hide it
            rows.append(
                {
                    "recommender": RANKER,
                    **evaluate(ranking.filter(pl.col("rank") <= K), purchases, stats, articles.height),
                }
            )
    for name, lists in ranked.items():
        if lists is not None:
            coverage_rows.append(
                {
                    "recommender": name,
                    "list_depth": int(lists.group_by("customer_id").len()["len"].max() or 0),
                    **rank_coverage(purchase_ranks(lists, purchases, order), articles.height),
                }
            )
    return rows, coverage_rows, segment_table


def report_frame(rows: list[dict], coverage: pl.DataFrame, week, buying_customers: int, served_by) -> pl.DataFrame:
    """The week's rows of `evaluation_report`, one schema every week (the table accumulates weeks): each
    recommender's metrics with its rank coverage."""
    report = (
        pl.DataFrame(rows)
        if rows
        else pl.DataFrame(schema={"recommender": pl.String, **{m: pl.Float64 for m in METRIC_NAMES}})
    )
    return (
        report.join(
            coverage.rename(lambda c: c if c == "recommender" else f"rank_coverage_{c}"),
            on="recommender",
            how="full",
            coalesce=True,
            maintain_order="left",
        )
        .with_columns(
            pl.lit(week).alias("week"),
            pl.lit(buying_customers, dtype=pl.Int32).alias("buying_customers"),
            pl.lit(served_by, dtype=pl.String).alias("served_by"),
        )
        .cast(REPORT_SCHEMA)
        .select(list(REPORT_SCHEMA))
    )


def report_metadata(report, coverage, segment_table, sources, week, built) -> dict:
    """The report as a person reads it in the UI: tables, each recommender's MAP@12, the learned sources'
    admission and share of the ranker's gain, a plot."""
    metadata = {
        "evaluated_week": str(week),
        "recommendations_built_at": str(built),
        "buying_customers": report["buying_customers"][0] if report.height else 0,
        "report": dg.MetadataValue.md(markdown_table(report.select("recommender", *METRIC_NAMES), limit=30)),
        "rank_coverage": dg.MetadataValue.md(markdown_table(coverage)),
        "beyond_accuracy_by_segment": dg.MetadataValue.md(markdown_table(segment_table, limit=20)),
        "learned_sources": dg.MetadataValue.md(markdown_table(sources)),
    }
    for row in sources.iter_rows(named=True):
        metadata[f"admitted/{row['source']}"] = row["admitted"] if row["admitted"] is not None else "not built"
        if row["ranker_gain_share"] is not None:
            metadata[f"ranker_gain_share/{row['source']}"] = row["ranker_gain_share"]
    for row in report.filter(pl.col("map_at_12").is_not_null()).iter_rows(named=True):
        metadata[f"map_at_12/{row['recommender']}"] = row["map_at_12"]
    if report.height:
        metadata["plot"] = _plot(report.filter(pl.col("map_at_12").is_not_null()))
    return metadata


LEARNED_SOURCES = {"two_tower": "two_tower_global", "sequence": "sequence"}
"""Candidate source -> the model whose admission decides whether it joins the union."""


def learned_sources(model_registry: ModelRegistry, built: dt.date) -> pl.DataFrame:
    """Per learned source, for the lists built at `built`: whether it was admitted to the union (null: no record,
    the model was not built) and the ranker's share of gain from its features (from_, _score, _rank; null without
    a stored ranker): what the learned models add to what the ranker publishes."""
    try:
        importances = load_ranker(model_registry, built)[0].importances
    except dg.Failure:
        importances = None
    rows = []
    for source, model in LEARNED_SOURCES.items():
        admitted = model_registry.admitted(model, built)
        share = None
        if importances is not None:
            mine = importances.filter(pl.col("feature").is_in(source_features(source)))
            share = round(float(mine["gain_share"].sum()), 4)
        rows.append({"source": source, "admitted": admitted, "ranker_gain_share": share})
    return pl.DataFrame(rows, schema={"source": pl.String, "admitted": pl.Boolean, "ranker_gain_share": pl.Float64})


def served_by_of(warehouse: Warehouse, built: dt.date) -> str | None:
    """Which recommender served the lists published at `built` (the `served_by` of its rows), if any."""
    rows = partition_rows(warehouse, "recommendations", built, "distinct served_by", target_week=True)
    return rows["served_by"][0] if rows.height and "served_by" in rows.columns else None


def published_by_segment(
    warehouse: Warehouse, built: dt.date, stats: pl.DataFrame, catalogue_size: int
) -> pl.DataFrame:
    """Beyond-accuracy figures of every customer's list published at `built`, per customer segment (empty when
    either table has nothing for that week). Every customer's rows (16.5M at full size) live only in here."""
    published = partition_rows(warehouse, "recommendations", built, "customer_id, article_id, rank", target_week=True)
    segments = partition_rows(warehouse, "customer_segments", built, "customer_id, segment")
    if not (published.height and segments.height):
        return pl.DataFrame()
    return beyond_accuracy(published, segments, stats, catalogue_size)


def retrieval_lists(warehouse: Warehouse, built: dt.date, buyers: pl.Series) -> dict[str, pl.DataFrame]:
    """The two-tower and sequence models' ranked retrieval lists (all their depth) built at `built` for the week
    after, of the given buyers (only their rows are read)."""
    lists = {}
    for name, table in (("two_tower", "two_tower_candidates"), ("sequence", "sequence_candidates")):
        if warehouse.exists(table):
            lists[name] = customer_rows(
                warehouse,
                table,
                built,
                buyers,
                "customer_id, article_id, rank",
                "and target_week = ?",
                [shift_weeks(built, 1)],
            )
    return lists


def ranker_ranking(
    warehouse: Warehouse, model_registry: ModelRegistry, built: dt.date, serving: pl.DataFrame, context
) -> pl.DataFrame | None:
    """The ranker of `built` ordering all of the given customers' serving candidates (features as of `built`,
    as `recommendations` built them); None when that week's ranker is not stored."""
    try:
        ranker = ServingRanker.load(warehouse, model_registry, built)
    except dg.Failure as exc:
        context.log.warning(f"no ranker rank coverage: {exc}")
        return None
    context.log.info(f"ranker of {built}: ranking inputs {ranker.inputs_origin}")
    depth = int(serving.group_by("customer_id").len()["len"].max() or 0)
    return ranker.rank(serving, max(depth, 1)).select("customer_id", "article_id", "rank")
