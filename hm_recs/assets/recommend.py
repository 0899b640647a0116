"""The published `recommendations` table: who serves the week, and its lists.

Built at partition W from data up to W's Tuesday; the rows are *for* week W+1 (their `week` column).
`recommendations` publishes the LightGBM ranker's top 12 (asset `ranker_model`, gated against the best
baseline); the baselines stay as the ranker's bar, the evaluation's comparison and the top-up.
"""

import collections
import datetime as dt
import json

import dagster as dg
import polars as pl

from hm_recs.assets.common import customer_chunks, detached, markdown_table, measured, preview, tally
from hm_recs.assets.ranking_inputs import INPUTS, ServingRanker
from hm_recs.core.contract import combined_checks, recommendations_check
from hm_recs.core.metrics import K
from hm_recs.core.schema import RECOMMENDATION_COLUMNS, TIERS
from hm_recs.core.serving import ServingDecision, champion
from hm_recs.core.tiers import ListTiers
from hm_recs.core.weeks import shift_weeks
from hm_recs.deploy import LARGE_MEMORY_TAG, LARGE_STEP_TAGS, RANKING_PRIORITY
from hm_recs.partitions import PUBLISHED_BY, partition_week, weekly_partitions
from hm_recs.registry import ModelRegistry
from hm_recs.resources import ServingPolicy
from hm_recs.storage.reads import catalogue, customer_rows, partition_rows_between
from hm_recs.storage.staged import StagedTable
from hm_recs.storage.warehouse import TARGET_WEEK_PARTITIONED, Warehouse


class RecommendationsConfig(dg.Config):
    chunk_customers: int = 100_000  # customers read, topped up, checked and written at once (their candidate rows)
    # customers whose feature matrix is built and scored at once (memory: about chunk x candidates x features);
    # None: models.ranker.SCORING_CHUNK_CUSTOMERS
    scoring_chunk_customers: int | None = None
    # "auto": whom the ranker's gate chose (the ranker, or the best baseline when the ranker lost to it);
    # "champion": the best validated baseline whatever the ranker (the fallback run after the model chain failed)
    serve: str = "auto"
    reason: str = ""  # why the champion serves, when `serve` is "champion" (the fallback run names what failed)


def champion_decision(warehouse: Warehouse, week: dt.date, rule, reason: str) -> ServingDecision:
    """The best baseline on the stored validation of the latest weeks (pooled as the ranker's gate pools them)
    serves week W+1 because of `reason`; a clear failure naming the week when no baseline was validated."""
    validation = partition_rows_between(
        warehouse,
        "baseline_validation",
        week,
        rule.max_validation_weeks,
        "recommender, validated_on, map_at_12, buyers",
    )
    chosen = champion(validation, week, rule) if validation.height and "buyers" in validation.columns else None
    if chosen is None:
        raise dg.Failure(
            f"week {shift_weeks(week, 1)} has no recommender that can serve it: {reason}, and no baseline "
            f"was validated on buyers of the weeks up to {week} (baseline_validation is empty there); "
            "the last published week stays in place"
        )
    name, maps, weeks, buyers = chosen
    return ServingDecision(
        served_by=name,
        reason=reason,
        best_baseline=name,
        baseline_map_at_12=maps,
        validation_weeks=tuple(str(w) for w in weeks),
        validation_buyers=buyers,
    )


def planned_server(
    config: RecommendationsConfig, warehouse: Warehouse, registry: ModelRegistry, week: dt.date, rule
) -> ServingDecision:
    """Who should serve week W+1 before anything is loaded: the fallback run's champion, else the ranker's gate
    decision (a stored ranker decision, which names the baseline that beat the ranker when it lost)."""
    if config.serve == "champion":
        return champion_decision(warehouse, week, rule, config.reason or "the model chain did not serve this week")
    if config.serve != "auto":
        raise dg.Failure(f"recommendations: serve must be 'auto' or 'champion', not {config.serve!r}")
    record = registry.ranker_decision(week)
    if record is None:
        return champion_decision(
            warehouse, week, rule, f"no ranker decision stored for week {week} (ranker_model not built)"
        )
    return ServingDecision.load(record)


def champion_tiers(warehouse: Warehouse, week: dt.date, name: str, rule) -> ListTiers | None:
    """The relevance tiers of baseline `name`'s lists, fitted on its latest validation week (baseline_validation)."""
    rows = partition_rows_between(
        warehouse, "baseline_validation", week, rule.max_validation_weeks, "recommender, validated_on, tiers"
    )
    if not rows.height or "tiers" not in rows.columns:
        return None
    fitted = rows.filter((pl.col("recommender") == name) & pl.col("tiers").is_not_null()).sort(
        "validated_on", descending=True
    )
    return ListTiers.load(json.loads(fitted["tiers"][0])) if fitted.height else None


class BrokenRanker(Exception):
    """The ranker chosen to serve cannot: its artefact is missing, changed since its gate, or scores non-finite."""


def ranker_lists(
    serving,
    warehouse: Warehouse,
    week: dt.date,
    customers: pl.DataFrame,
    chunk: pl.Series,
    config: RecommendationsConfig,
) -> tuple[pl.DataFrame, int, int]:
    """The ranker's top 12 of one chunk's serving candidates, topped up with trending; returns the lists, the
    candidate rows scored and the rows ranked."""
    from hm_recs.assets.ranking import serving_set

    candidates = serving_set(warehouse, week, chunk)
    ranked = serving.rank(candidates, K, config.scoring_chunk_customers, keep=("sources",))
    if ranked.height and not ranked["score"].is_finite().all():
        raise BrokenRanker(f"week {week}'s ranker gave non-finite scores")
    own = ranked.select("customer_id", "article_id", "score", pl.col("sources").alias("source"))
    lists = (
        serving.top_up.complete(own, customers, wanted=chunk)
        .join(
            ranked.select("customer_id", "article_id", "relevance_tier"),
            on=["customer_id", "article_id"],
            how="left",
            maintain_order="left",
        )
        .with_columns(pl.col("relevance_tier").fill_null(TIERS[-1]))
    )
    return lists, candidates.height, ranked.height


def champion_lists(
    warehouse: Warehouse, target: dt.date, name: str, tiers: ListTiers | None, chunk: pl.Series
) -> pl.DataFrame:
    """Baseline `name`'s stored lists for week W+1 of one chunk, with the tiers fitted on its validation week."""
    lists = customer_rows(
        warehouse,
        "baseline_recommendations",
        target,
        chunk,
        "customer_id, rank, article_id, score, source",
        "and recommender = ?",
        [name],
    ).sort("customer_id", "rank")
    tier = tiers.assign(lists) if tiers is not None and lists.height else pl.repeat(TIERS[1], lists.height, eager=True)
    return lists.with_columns(tier.alias("relevance_tier"))


@dg.asset(
    op_tags={**LARGE_STEP_TAGS, **RANKING_PRIORITY, **LARGE_MEMORY_TAG},
    partitions_def=weekly_partitions,
    group_name="recommend",
    kinds={"duckdb", "polars", "lightgbm"},
    metadata=TARGET_WEEK_PARTITIONED,
    freshness_policy=PUBLISHED_BY,
    deps=[
        "ranker_model",
        *INPUTS,
        "candidates",
        "baseline_recommendations",
        "baseline_validation",
        "transactions",
        "customers",
        "articles",
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "twelve_distinct_catalogue_articles",
            asset="recommendations",
            blocking=True,
            description="every customer exactly 12 distinct catalogue articles, ranks 1..12",
        )
    ],
)
def recommendations(
    context: dg.AssetExecutionContext,
    config: RecommendationsConfig,
    warehouse: Warehouse,
    model_registry: ModelRegistry,
    serving_policy: ServingPolicy,
):
    """The published table for week W+1 (contract in the README), from the recommender chosen to serve the week:
    the ranker when it passed its gate (week W's ranker orders each customer's serving candidates, features as
    of W, the best 12 kept, short lists topped up with trending), else the champion: the baseline that beat it on
    the validation buyers, or the best validated baseline when the model chain failed (`serve="champion"`,
    the fallback run). A ranker that cannot serve (artefact missing or changed, non-finite scores, lists breaking
    the contract) hands the week to the champion; lists always for week W+1, never last week's."""
    week = partition_week(context)
    target = shift_weeks(week, 1)
    rule = serving_policy.gate_rule()
    with measured(context, "recommendations") as stage:
        decision = planned_server(config, warehouse, model_registry, week, rule)
        built = None
        if decision.ranker_serves:
            try:
                built = publish_from_ranker(context, config, warehouse, model_registry, week, decision)
            except BrokenRanker as exc:
                decision = champion_decision(warehouse, week, rule, f"the ranker cannot serve: {exc}")
        if built is None:
            built = publish_from_champion(context, config, warehouse, week, decision, rule)
        recs, passed, figures, summary = built
    if not passed:
        recs.discard()
        raise dg.Failure(
            f"recommendations for week {target} ({decision.summary()}) break the contract: {figures}; "
            "the last good week stays published"
        )
    (context.log.info if decision.ranker_serves else context.log.warning)(
        f"publishing week {target}, {decision.summary()}: {recs.rows:,} rows"
    )
    model_registry.record_serving(week, {**decision.state(), "week": str(target), "built_from_week": str(week)})
    yield dg.Output(
        recs,
        metadata={
            "served_by": decision.served_by,
            "serving_reason": decision.reason,
            "serving": decision.summary(),
            "ranker_served": int(decision.ranker_serves),  # numeric: the UI plots it across the weeks
            "validation_buyers": decision.validation_buyers,
            "validation_map_at_12": dg.MetadataValue.json(
                {
                    **({"ranker": decision.ranker_map_at_12} if decision.ranker_map_at_12 is not None else {}),
                    **decision.baseline_map_at_12,
                }
            ),
            "rows": recs.rows,
            **summary,
            **stage,
        },
    )
    yield dg.AssetCheckResult(passed=passed, metadata=figures)


def publish_from_ranker(
    context,
    config: RecommendationsConfig,
    warehouse: Warehouse,
    model_registry: ModelRegistry,
    week: dt.date,
    decision: ServingDecision,
):
    """The ranker's lists, staged chunk by chunk: (staged table, contract passed, contract figures, metadata)."""
    try:
        serving = ServingRanker.load(warehouse, model_registry, week)
    except dg.Failure as exc:
        raise BrokenRanker(str(exc)) from exc
    if decision.ranker_artefact_hash and serving.digest != decision.ranker_artefact_hash:
        raise BrokenRanker(
            f"week {week}'s ranker artefact changed since its gate ({serving.digest[:19]}... stored, "
            f"{decision.ranker_artefact_hash[:19]}... judged)"
        )
    customers, articles = catalogue(warehouse, week)
    counts = {"scored": 0, "ranked": 0}

    def lists_of(chunk: pl.Series) -> pl.DataFrame:
        lists, scored, ranked = ranker_lists(serving, warehouse, week, customers, chunk, config)
        counts["scored"] += scored
        counts["ranked"] += ranked
        return lists

    recs, passed, figures, tallies = stage_lists(
        context, customers, articles, lists_of, week, config.chunk_customers, "ranker"
    )
    if not passed:
        recs.discard()
        raise BrokenRanker(f"the ranker's lists break the contract: {figures}")
    summary = {
        "ranker_artefact_hash": serving.digest,
        "ranker_objective": serving.ranker.config.objective,
        "ranker_validation_map_at_12": serving.ranker.validation["map_at_12"],
        "ranking_inputs": serving.inputs_origin,
        "scored_rows": counts["scored"],
        "topped_up_rows": recs.rows - counts["ranked"],
        "tiers": (
            dg.MetadataValue.md(markdown_table(pl.DataFrame(list(serving.ranker.tiers.summary))))
            if serving.ranker.tiers
            else ""
        ),
        **tallies,
    }
    return recs, passed, figures, summary


def publish_from_champion(
    context, config: RecommendationsConfig, warehouse: Warehouse, week: dt.date, decision: ServingDecision, rule
):
    """The champion baseline's stored lists for W+1 with its tiers: (staged table, passed, figures, metadata)."""
    customers, articles = catalogue(warehouse, week)
    tiers = champion_tiers(warehouse, week, decision.served_by, rule)
    if tiers is None:
        context.log.warning(f"no validated tiers for {decision.served_by}: every row is {TIERS[1]}")
    recs, passed, figures, tallies = stage_lists(
        context,
        customers,
        articles,
        lambda chunk: champion_lists(warehouse, shift_weeks(week, 1), decision.served_by, tiers, chunk),
        week,
        config.chunk_customers,
        decision.served_by,
    )
    summary = {"tiers": dg.MetadataValue.md(markdown_table(tiers.summary())) if tiers else "", **tallies}
    return recs, passed, figures, summary


def stage_lists(
    context,
    customers: pl.DataFrame,
    articles: pl.DataFrame,
    lists_of,
    week: dt.date,
    chunk_customers: int,
    served_by: str,
):
    """Every customer's list for W+1 from `lists_of(chunk)`, checked and staged one chunk of customers at a time:
    (staged table, contract passed, contract figures, metadata tallies)."""
    target = shift_weeks(week, 1)
    recs, checks, first = StagedTable("recommendations"), [], None
    tiers, sources = collections.Counter(), collections.Counter()
    for chunk in customer_chunks(customers["customer_id"], chunk_customers):  # memory: one chunk's candidates
        lists = (
            lists_of(chunk)
            .with_columns(pl.lit(target).alias("week"), pl.lit(served_by).alias("served_by"))
            .select(RECOMMENDATION_COLUMNS)
        )
        checks.append(
            recommendations_check(
                lists, customers.filter(pl.col("customer_id").is_in(chunk.implode())), articles, by=[]
            )
        )
        tiers += tally(lists, "relevance_tier")
        sources += tally(lists, "source")
        first = detached(lists.head(2 * K)) if first is None else first
        recs.append(lists)
        context.log.info(f"recommendations ({served_by}): {recs.rows:,} rows staged")
    if not checks:
        raise dg.Failure(f"no customers in week {week}'s validated customers table: nothing to recommend")
    passed, figures = combined_checks(checks)
    return (
        recs,
        passed,
        figures,
        {
            "customers": customers.height,
            "relevance_tiers": dg.MetadataValue.json(dict(sorted(tiers.items()))),
            "sources": dg.MetadataValue.json(dict(sources.most_common(15))),
            "preview": preview(first, 12),
        },
    )
