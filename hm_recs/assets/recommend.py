"""Baseline recommenders, the published `recommendations` table and its Kaggle-format export.

Built at partition W from data up to W's Tuesday; the rows are *for* week W+1 (their `week` column).
`recommendations` publishes the LightGBM ranker's top 12 (asset `ranker_model`, gated against the best
baseline); the baselines stay as the ranker's bar, the evaluation's comparison and the top-up.
"""


import collections
import datetime as dt
import io

import dagster as dg
import polars as pl

from hm_recs.assets.common import TARGET_WEEK_PARTITIONED, customer_chunks, detached, history, measured, preview, tally
from hm_recs.core.baselines import BASELINES, BaselineConfig, recommend_all
from hm_recs.core.metrics import K, evaluate
from hm_recs.core.schema import RECOMMENDATION_COLUMNS, TIERS
from hm_recs.core.staged import StagedTable
from hm_recs.core.storage import content_digest
from hm_recs.core.weeks import shift_weeks
from hm_recs.deploy import LARGE_MEMORY_TAG, LARGE_STEP_TAGS, RANKING_PRIORITY
from hm_recs.partitions import partition_week, weekly_partitions
from hm_recs.core.publishing import latest_published, publish_week, published_run, read_published
from hm_recs.resources import ArtefactStore, ExportStore, Warehouse


class BaselinesConfig(dg.Config):
    history_weeks: int = 26
    chunk_customers: int = 100_000  # customers whose lists are built and staged at once
    trending_weeks: int = BaselineConfig.trending_weeks
    trending_half_life_days: float = BaselineConfig.trending_half_life_days
    repurchase_weeks: int = BaselineConfig.repurchase_weeks
    repurchase_half_life_days: float = BaselineConfig.repurchase_half_life_days

    def baseline(self) -> BaselineConfig:
        return BaselineConfig(K, self.trending_weeks, self.trending_half_life_days, self.repurchase_weeks,
                              self.repurchase_half_life_days)


def recommendations_check(recs: pl.DataFrame, customers: pl.DataFrame, articles: pl.DataFrame, by: list[str]) -> tuple[bool, dict]:
    """Every customer has exactly K distinct catalogue articles ranked 1..K (per `by` group)."""
    per_customer = recs.group_by(by + ["customer_id"]).agg(
        pl.len().alias("n"), pl.col("article_id").n_unique().alias("distinct"),
        (pl.col("rank").sort() == pl.int_range(1, pl.len() + 1)).all().alias("ranks_ok"))
    groups = recs.select(by).unique().height if by else 1
    bad_lists = per_customer.filter((pl.col("n") != K) | (pl.col("distinct") != K) | ~pl.col("ranks_ok")).height
    missing = customers.height * groups - per_customer.height
    unknown_articles = recs.join(articles.select("article_id"), on="article_id", how="anti").height
    figures = {"customers": customers.height, "customers_without_list": missing, "lists_not_12_distinct_ranked": bad_lists,
               "rows_with_unknown_article": unknown_articles}
    return bad_lists == 0 and missing == 0 and unknown_articles == 0, figures


def combined_checks(results: list[tuple[bool, dict]]) -> tuple[bool, dict]:
    """`recommendations_check` of customer chunks (disjoint customers) added up."""
    return all(passed for passed, _ in results), {key: sum(figures[key] for _, figures in results) for key in results[0][1]}


@dg.multi_asset(
    outs={
        "baseline_recommendations": dg.AssetOut(metadata=TARGET_WEEK_PARTITIONED, kinds={"duckdb", "polars"},
                                                description="Each baseline's 12 articles per customer for week W+1."),
        "baseline_validation": dg.AssetOut(metadata=TARGET_WEEK_PARTITIONED, kinds={"duckdb"},
                                           description="Each baseline rebuilt as of W-1 and scored on week W."),
    },
    partitions_def=weekly_partitions, group_name="recommend", deps=["transactions"],
    check_specs=[dg.AssetCheckSpec("twelve_per_customer", asset="baseline_recommendations", blocking=True)],
)
def baseline_recommendations(context: dg.AssetExecutionContext, config: BaselinesConfig, warehouse: Warehouse,
                             customers: pl.DataFrame, articles: pl.DataFrame, article_features: pl.DataFrame):
    week = partition_week(context)
    target = shift_weeks(week, 1)
    cfg = config.baseline()
    with measured(context, "baseline_recommendations") as figures:
        transactions = history(warehouse, week, config.history_weeks)
        previous = shift_weeks(week, -1)
        this_week = transactions.filter(pl.col("t_dat") >= pl.lit(week))
        # validated on week W's buyers' lists (what MAP@12 scores; coverage and novelty of the lists they got)
        validation_recs = recommend_all(customers, transactions.filter(pl.col("t_dat") < pl.lit(week)), articles, previous,
                                        cfg, wanted=this_week["customer_id"].unique())
        stats = article_features.select("article_id", "n_sales", "mean_price")
        validation = pl.DataFrame([
            {"recommender": name, **evaluate(validation_recs.filter(pl.col("recommender") == name), this_week, stats, articles.height)}
            for name in BASELINES
        ]).with_columns(pl.lit(week).alias("validated_on"), pl.lit(target).alias("week"))
        recs, checks = StagedTable("baseline_recommendations"), []
        for chunk in customer_chunks(customers["customer_id"], config.chunk_customers):  # memory: one chunk's lists
            lists = recommend_all(customers, transactions, articles, week, cfg, wanted=chunk).with_columns(pl.lit(target).alias("week"))
            checks.append(recommendations_check(lists, customers.filter(pl.col("customer_id").is_in(chunk.implode())),
                                                articles, by=["recommender"]))
            recs.append(lists)
        if not checks:  # no customers: the table keeps its schema
            recs.append(recommend_all(customers, transactions, articles, week, cfg).with_columns(pl.lit(target).alias("week")))
    for row in validation.iter_rows(named=True):
        context.log.info(f"validation on week {week}: {row['recommender']} MAP@12={row['map_at_12']:.4f} recall@12={row['recall_at_12']:.4f}")
    yield dg.Output(recs, output_name="baseline_recommendations",
                    metadata={"rows": recs.rows, "preview": preview(recs.scan().head(5).collect()), **figures})
    yield dg.Output(validation, output_name="baseline_validation",
                    metadata={"validation": dg.MetadataValue.md(
                        "\n".join(f"- {r['recommender']}: MAP@12 {r['map_at_12']:.4f}" for r in validation.iter_rows(named=True)))})
    passed, check_figures = combined_checks(checks) if checks else recommendations_check(
        recs.scan().collect(), customers, articles, by=["recommender"])
    yield dg.AssetCheckResult(check_name="twelve_per_customer", asset_key="baseline_recommendations", passed=passed,
                              metadata=check_figures)


class RecommendationsConfig(dg.Config):
    chunk_customers: int = 100_000  # customers read, topped up, checked and written at once (their candidate rows)
    # customers whose feature matrix is built and scored at once (memory: about chunk x candidates x features);
    # None: models.ranker.SCORING_CHUNK_CUSTOMERS
    scoring_chunk_customers: int | None = None


@dg.asset(op_tags={**LARGE_STEP_TAGS, **RANKING_PRIORITY, **LARGE_MEMORY_TAG}, partitions_def=weekly_partitions, group_name="recommend", kinds={"duckdb", "polars", "lightgbm"},
          metadata=TARGET_WEEK_PARTITIONED, deps=["ranker_model", "candidates", "transactions", "customers", "articles"],
          check_specs=[dg.AssetCheckSpec("twelve_distinct_catalogue_articles", asset="recommendations", blocking=True,
                                         description="every customer exactly 12 distinct catalogue articles, ranks 1..12")])
def recommendations(context: dg.AssetExecutionContext, config: RecommendationsConfig, warehouse: Warehouse,
                    artefact_store: ArtefactStore):
    """The published table for week W+1 (contract in the README): week W's ranker orders each customer's serving
    candidates (features as of W, built as the ranker's training built them), the best 12 are kept, and a
    customer with fewer than 12 scored candidates is topped up with their age group's trending articles."""
    from hm_recs.assets.ranking import ServingRanker, serving_set

    week = partition_week(context)
    target = shift_weeks(week, 1)
    with measured(context, "recommendations") as stage:
        serving = ServingRanker.load(warehouse, artefact_store, week)
        ranker, digest = serving.ranker, serving.digest
        customers, articles = serving.customers, serving.articles
        recs, checks, counts, first = StagedTable("recommendations"), [], {"scored": 0, "ranked": 0}, None
        tiers, sources = collections.Counter(), collections.Counter()
        for chunk in customer_chunks(customers["customer_id"], config.chunk_customers):  # memory: one chunk's candidates
            candidates = serving_set(warehouse, week, chunk)
            ranked = serving.rank(candidates, K, config.scoring_chunk_customers, keep=("sources",))
            own = ranked.select("customer_id", "article_id", "score", pl.col("sources").alias("source"))
            lists = (
                serving.top_up.complete(own, customers, wanted=chunk)
                .join(ranked.select("customer_id", "article_id", "relevance_tier"), on=["customer_id", "article_id"],
                      how="left", maintain_order="left")
                .with_columns(pl.col("relevance_tier").fill_null(TIERS[-1]), pl.lit(target).alias("week"))
                .select(RECOMMENDATION_COLUMNS)
            )
            checks.append(recommendations_check(lists, customers.filter(pl.col("customer_id").is_in(chunk.implode())),
                                                articles, by=[]))
            counts["scored"] += candidates.height
            counts["ranked"] += ranked.height
            tiers += tally(lists, "relevance_tier")
            sources += tally(lists, "source")
            first = detached(lists.head(2 * K)) if first is None else first
            recs.append(lists)
            context.log.info(f"recommendations: {recs.rows:,} rows from {counts['scored']:,} scored candidate rows")
        if not checks:
            raise dg.Failure(f"no customers in week {week}'s validated customers table: nothing to recommend")
        passed, figures = combined_checks(checks)
    if not passed:
        recs.discard()
        raise dg.Failure(f"recommendations for week {target} break the contract: {figures}; the last good week stays published")
    topped_up = recs.rows - counts["ranked"]
    context.log.info(f"publishing the ranker's recommendations for week {target}: {recs.rows:,} rows, "
                     f"{topped_up:,} topped up from trending")

    yield dg.Output(recs, metadata={
        "ranker_artefact_hash": digest, "ranker_objective": ranker.config.objective,
        "ranker_validation_map_at_12": ranker.validation["map_at_12"], "rows": recs.rows,
        "scored_rows": counts["scored"], "customers": customers.height, "topped_up_rows": topped_up,
        "relevance_tiers": dg.MetadataValue.json(dict(sorted(tiers.items()))),
        "sources": dg.MetadataValue.json(dict(sources.most_common(15))),
        "preview": preview(first, 12), **stage})
    yield dg.AssetCheckResult(passed=passed, metadata=figures)


def model_versions(artefact_store: ArtefactStore, week: dt.date) -> dict[str, str]:
    """sha256 of every model artefact stored for week W (what produced the week's lists), by model name."""
    location = artefact_store.location()
    try:
        names = sorted(n for n in location.names() if n.startswith("models/") and f"/week={week.isoformat()}/model." in n)
    except FileNotFoundError:
        return {}
    return {name.split("/")[1]: content_digest(location.read_bytes(name)) for name in names}


@dg.asset(op_tags=LARGE_MEMORY_TAG, partitions_def=weekly_partitions, group_name="recommend", kinds={"parquet", "csv", "s3"},
          check_specs=[dg.AssetCheckSpec("published_complete", asset="recommendations_export", blocking=True,
                                         description="the published files read back through LATEST/CURRENT match the "
                                                     "manifest's checksums; one Kaggle line per customer")])
def recommendations_export(context: dg.AssetExecutionContext, exports: ExportStore, artefact_store: ArtefactStore,
                           recommendations: pl.DataFrame) -> dg.MaterializeResult:
    """The week's files for CRM jobs (layout and visibility rules in `core/publishing.py`): the contract table as
    Parquet, the Kaggle `customer_id,prediction` CSV and a manifest (rows, checksums, model versions), written to a
    run folder of their own; `_SUCCESS`, then the week's CURRENT and the LATEST pointer make them visible."""
    week = partition_week(context)
    target: dt.date = recommendations["week"][0]
    location = exports.location()
    with measured(context, "recommendations_export") as stage:
        kaggle = (recommendations.sort("customer_id", "rank").group_by("customer_id", maintain_order=True)
                  .agg(pl.col("article_id").str.join(" ").alias("prediction")))
        parquet = io.BytesIO()
        recommendations.sort("customer_id", "rank").write_parquet(parquet)
        manifest = publish_week(
            location, target, context.run_id,
            {"recommendations.parquet": parquet.getvalue(), "recommendations.csv": kaggle.write_csv().encode()},
            {"rows": recommendations.height, "customers": kaggle.height, "built_from_week": week.isoformat(),
             "columns": list(recommendations.columns), "models": model_versions(artefact_store, week)},
            keep_weeks=exports.keep_weeks)
        pointer = published_run(location, target)
        read_manifest, files = read_published(location, pointer)  # what a reader gets, checksums verified
        lines = pl.read_csv(io.BytesIO(files["recommendations.csv"])).height
    latest = latest_published(location)
    return dg.MaterializeResult(
        metadata={"published": location.describe(pointer), "latest": location.describe(latest[1]) if latest else "",
                  "customers": lines, "manifest": dg.MetadataValue.json(manifest), "preview": preview(kaggle, 3), **stage},
        check_results=[dg.AssetCheckResult(
            check_name="published_complete",
            passed=bool(read_manifest == manifest and lines == recommendations["customer_id"].n_unique()),
            metadata={"lines": lines, "run_folder": pointer})],
    )
