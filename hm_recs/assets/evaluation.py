"""Backtest of week W: the recommendations built at W-1 (for week W) scored on week W's purchases.

Reads only W's transactions and what was built at W-1, so partition W still reads nothing after W.
Reports, never blocks: its check only says whether there was something to score.
"""


import dagster as dg
import polars as pl

from hm_recs.assets.common import PARTITIONED, markdown_table, measured, partition_rows, png_markdown
from hm_recs.core.metrics import METRIC_NAMES, evaluate
from hm_recs.core.weeks import shift_weeks
from hm_recs.partitions import partition_week, weekly_partitions
from hm_recs.resources import Warehouse

MODEL = "model"
"""The name under which the published `recommendations` are reported."""


def _plot(report: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, metric in zip(axes, ["map_at_12", "recall_at_12"]):
        ax.bar(report["recommender"].to_list(), report[metric].to_list(), color="#4c72b0")
        ax.set_title(metric)
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    value = png_markdown(fig)
    plt.close(fig)
    return value


@dg.asset(partitions_def=weekly_partitions, group_name="evaluation", kinds={"duckdb", "polars"}, metadata=PARTITIONED,
          deps=["transactions", "recommendations", "baseline_recommendations", "article_features"],
          check_specs=[dg.AssetCheckSpec("scored", asset="evaluation_report", blocking=True,
                                         description="reports only: passes unless scoring itself failed")])
def evaluation_report(context: dg.AssetExecutionContext, warehouse: Warehouse, articles: pl.DataFrame):
    """MAP@12 (Kaggle), recall@12, catalogue coverage, novelty and mean price per recommender for week W."""
    week = partition_week(context)
    built = shift_weeks(week, -1)
    with measured(context, "evaluation_report") as figures:
        purchases = partition_rows(warehouse, "transactions", week, "customer_id, article_id")
        published = partition_rows(warehouse, "recommendations", built, "customer_id, article_id, rank", target_week=True)
        baselines = partition_rows(warehouse, "baseline_recommendations", built,
                                   "recommender, customer_id, article_id, rank", target_week=True)
        stats = partition_rows(warehouse, "article_features", built, "article_id, n_sales, mean_price")
        rows = []
        if published.height and purchases.height:
            candidates = [(MODEL, published)] + [
                (name, group.drop("recommender")) for (name,), group in baselines.group_by("recommender", maintain_order=True)]
            for name, recs in candidates:
                rows.append({"recommender": name, **evaluate(recs, purchases, stats, articles.height)})
    if not rows:
        context.log.warning(f"nothing to evaluate for week {week}: no recommendations were built at {built} "
                            f"(materialise that week first) or week {week} has no purchases")
        report = pl.DataFrame(schema={"recommender": pl.String, **{m: pl.Float64 for m in METRIC_NAMES}})
    else:
        report = pl.DataFrame(rows)
    report = report.with_columns(pl.lit(week).alias("week"), pl.lit(purchases["customer_id"].n_unique() if purchases.height else 0)
                                 .alias("buying_customers"))
    metadata = {"evaluated_week": str(week), "recommendations_built_at": str(built), "buying_customers": report["buying_customers"][0] if report.height else 0,
                "report": dg.MetadataValue.md(markdown_table(report.select("recommender", *METRIC_NAMES))), **figures}
    for row in report.iter_rows(named=True):
        metadata[f"map_at_12/{row['recommender']}"] = row["map_at_12"]
        context.log.info(f"week {week}: {row['recommender']} MAP@12={row['map_at_12']:.4f} recall@12={row['recall_at_12']:.4f}")
    if report.height:
        metadata["plot"] = _plot(report)
    yield dg.Output(report, metadata=metadata)
    yield dg.AssetCheckResult(passed=True, metadata={"scored_recommenders": report.height,
                                                     "note": "" if report.height else "nothing to evaluate"})
