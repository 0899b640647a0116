"""The candidate stage of the two-stage recommender: the union of every candidate source per customer.

Built at partition W into one table with two sets told apart by `target_week`:
- W+1 (serving): every customer, candidates from the history up to W and the models' serving sets;
- W (labelled): week W's buyers, candidates as of W-1 (history up to W-1's Tuesday and the models' labelled
  sets, which never saw week W), with `label` = bought in week W: what the ranker learns from, and the week
  on which candidate recall is measured (per source and for the union) for the blocking check.
Pure logic in `core/candidates.py`; this module only reads, chunks over customers and checks.
"""

import collections
import dataclasses
import datetime as dt
import math

import dagster as dg
import polars as pl

from hm_recs.assets.common import customer_chunks, detached, markdown_table, measured, png_markdown, preview, tally
from hm_recs.assets.ranking_inputs import INPUTS, StoredInputs
from hm_recs.configs import config_of, core_config
from hm_recs.core.candidate_labels import candidate_recall, combined_recall, label_candidates
from hm_recs.core.candidates import (
    UNION,
    CandidateConfig,
    candidate_pools,
    customer_candidates,
)
from hm_recs.core.ranking_features import CATEGORICAL_FEATURES, FEATURE_COLUMNS, InputWindows
from hm_recs.core.serving import GateRule, decide
from hm_recs.core.weeks import shift_weeks
from hm_recs.deploy import LARGE_MEMORY_TAG, RANKING_PRIORITY, TRAINING_STEP_TAGS
from hm_recs.models.configs import RankerConfig
from hm_recs.models.ranker_data import TrainingWeeks, WeekSources
from hm_recs.partitions import history_of, partition_week, weekly_partitions
from hm_recs.registry import ModelRegistry
from hm_recs.resources import PipelineSettings, ServingPolicy
from hm_recs.storage.reads import catalogue_tables, customer_rows
from hm_recs.storage.staged import StagedTable
from hm_recs.storage.warehouse import PARTITIONED, Warehouse


class CandidatesConfig(config_of(CandidateConfig)):
    """The union's per-source and per-customer limits (`core.candidates.CandidateConfig`)."""

    chunk_customers: int = 100_000  # customers per chunk: memory is about chunk x max_per_customer rows
    # blocking: share of week W's bought pairs the labelled union must cover; a floor that catches a broken
    # union, not a target (small real shops with a few weeks of history sit just above it: docs/benchmarks.md)
    min_union_recall: float = 0.02


def chunk_candidates(
    warehouse: Warehouse, pools, chunk: pl.Series, week: dt.date, target: dt.date, config: CandidateConfig
) -> pl.DataFrame:
    """The union for one chunk of customers (sorted ids) from `pools`, with the two models' retrieval rows of
    those customers for `target` read from the warehouse (only the ranks the union takes)."""
    models = {}
    for source, table in (("two_tower", "two_tower_candidates"), ("sequence", "sequence_candidates")):
        rows = customer_rows(
            warehouse,
            table,
            week,
            chunk,
            "customer_id, article_id, score, rank",
            "and target_week = ? and rank <= ?",
            [target, config.limit(source)],
        )
        models[source] = rows if rows.width else None
    return customer_candidates(pools, chunk, models["two_tower"], models["sequence"])


def _stage_candidate_sets(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    config: CandidatesConfig,
    candidate_config: CandidateConfig,
    week: dt.date,
    tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
    this_week: pl.DataFrame,
    buyers: pl.Series,
) -> tuple[StagedTable, dict[str, pl.Series], list[pl.DataFrame], collections.Counter, pl.DataFrame | None]:
    """Both sets staged one chunk of customers at a time (memory is one chunk's rows): the staged table, the
    candidates per customer of each set, the labelled set's recall per chunk, the serving set's sources tally
    and first rows."""
    customers, articles, transactions = tables
    table = StagedTable("candidates")
    counts, recall_parts, sources, first_rows = {}, [], collections.Counter(), None
    sets = {  # kind -> (target week, customers, the history they may see, as of)
        "serving": (shift_weeks(week, 1), customers["customer_id"], transactions, week),
        "labelled": (week, buyers, transactions.filter(pl.col("t_dat") < pl.lit(week)), shift_weeks(week, -1)),
    }
    for kind, (target_week, wanted, seen, as_of) in sets.items():
        pools = candidate_pools(customers, seen, articles, as_of, candidate_config)
        per_customer = []
        for chunk in customer_chunks(wanted, config.chunk_customers):
            rows = chunk_candidates(warehouse, pools, chunk, week, target_week, candidate_config)
            if kind == "serving":
                rows = rows.with_columns(pl.lit(None, dtype=pl.Int8).alias("label"))
                sources += tally(rows, "sources")
                first_rows = detached(rows.head(5)) if first_rows is None else first_rows
            else:
                rows = label_candidates(rows, this_week).with_columns(pl.col("label").cast(pl.Int8))
                recall_parts.append(
                    candidate_recall(rows, this_week.filter(pl.col("customer_id").is_in(chunk.implode())))
                )
            per_customer.append(rows.group_by("customer_id").len()["len"])
            table.append(rows.with_columns(pl.lit(target_week).alias("target_week"), pl.lit(week).alias("week")))
            context.log.info(
                f"candidates ({kind} set): {table.rows:,} rows staged, {chunk.len():,} customers in the last chunk"
            )
        counts[kind] = pl.concat(per_customer) if per_customer else pl.Series("len", [], dtype=pl.UInt32)
    return table, counts, recall_parts, sources, first_rows


def _candidates_check(
    config: CandidatesConfig, counts: dict[str, pl.Series], customers: int, buyers: int, union_recall: float
) -> dg.AssetCheckResult:
    """The blocking check: every customer and every buyer has at least min_per_customer candidates in its set,
    and the labelled union covers at least min_union_recall of week W's purchases."""
    enough = {kind: int((n >= config.min_per_customer).sum()) for kind, n in counts.items()}
    passed = (
        counts["serving"].len() == customers
        and enough["serving"] == customers
        and enough["labelled"] == buyers
        and union_recall >= config.min_union_recall
    )
    return dg.AssetCheckResult(
        passed=bool(passed),
        metadata={
            "customers": customers,
            "customers_with_enough": enough["serving"],
            "buyers": buyers,
            "buyers_with_enough": enough["labelled"],
            "union_recall": union_recall,
            "min_union_recall": config.min_union_recall,
        },
    )


@dg.asset(
    op_tags=RANKING_PRIORITY,
    partitions_def=weekly_partitions,
    group_name="ranking",
    kinds={"polars", "duckdb"},
    metadata=PARTITIONED,
    deps=[history_of("transactions"), "customers", "articles", "two_tower_candidates", "sequence_candidates"],
    check_specs=[
        dg.AssetCheckSpec(
            "candidates_per_customer_and_recall",
            asset="candidates",
            blocking=True,
            description="every customer at least min_per_customer candidates in both sets; "
            "the labelled union covers at least min_union_recall of week W's purchases",
        )
    ],
)
def candidates(
    context: dg.AssetExecutionContext,
    config: CandidatesConfig,
    pipeline_settings: PipelineSettings,
    warehouse: Warehouse,
):
    """Candidate union per customer (repurchase, age-group trending, co-purchase, same product, two-tower and
    sequence retrieval, fallback top-up) with each source's flag, score and rank."""
    week = partition_week(context)
    candidate_config = core_config(CandidateConfig, config)
    with measured(context, "candidates") as figures:
        tables = catalogue_tables(warehouse, week, pipeline_settings.history_weeks)
        customers, _, transactions = tables
        this_week = transactions.filter(pl.col("t_dat") >= pl.lit(week))
        buyers = this_week["customer_id"].unique()
        table, counts, recall_parts, sources, first_rows = _stage_candidate_sets(
            context, warehouse, config, candidate_config, week, tables, this_week, buyers
        )
        recall = combined_recall(recall_parts)
    union = recall.filter(pl.col("source") == UNION).row(0, named=True)
    for row in recall.iter_rows(named=True):
        context.log.info(
            f"candidate recall on week {week}: {row['source']} {row['recall_all_buyers']:.3f} "
            f"({row['candidates_per_customer']:.1f} per customer)"
        )
    serving_rows, labelled_rows = int(counts["serving"].sum()), int(counts["labelled"].sum())
    yield dg.Output(
        table,
        metadata={
            "rows": table.rows,
            "serving_rows": serving_rows,
            "labelled_rows": labelled_rows,
            "candidates_per_customer": round(serving_rows / max(customers.height, 1), 1),
            "recall_by_source": dg.MetadataValue.md(markdown_table(recall, limit=20)),
            "sources": dg.MetadataValue.json(dict(sources.most_common(15))),
            "preview": preview(first_rows.select("customer_id", "article_id", "sources", "n_sources")),
            **figures,
        },
    )
    yield _candidates_check(config, counts, customers.height, buyers.len(), union["recall_all_buyers"])


def labelled_set(warehouse: Warehouse, week: dt.date) -> pl.DataFrame:
    """The labelled candidate set stored at partition `week`: week `week`'s buyers' candidates as of the week
    before, with `label` (empty when that partition was never built)."""
    if not warehouse.exists("candidates"):
        return pl.DataFrame()
    return warehouse.query(
        f"select * exclude (week, target_week) from {warehouse.table('candidates')} "
        "where week = ? and target_week = ? order by customer_id, article_id",
        [week, week],
    )


def serving_set(warehouse: Warehouse, week: dt.date, customers: pl.Series) -> pl.DataFrame:
    """The serving candidates stored at partition `week` (for week+1) of the given customers (a chunk, or the
    buyers an evaluation scores): only their rows are read."""
    rows = customer_rows(
        warehouse,
        "candidates",
        week,
        customers,
        "* exclude (week, target_week, label)",
        "and target_week = ?",
        [shift_weeks(week, 1)],
    )
    return rows.sort("customer_id", "article_id") if rows.width else rows


class RankerModelConfig(config_of(RankerConfig, exclude=("seed",)), config_of(TrainingWeeks)):
    """The ranker's LightGBM settings (`models.configs.RankerConfig`) and which labelled weeks it learns from
    (`models.ranker_data.TrainingWeeks`: at least min_training_weeks, then earlier ones until the training set
    holds min_positive_groups query groups with a bought candidate, at most max_training_weeks)."""

    compared_objectives: list[str] = ["binary"]  # also trained on the same rows; validation MAP@12 in metadata
    # after the gate, the served ranker is trained again on the training and validation weeks together (the
    # gate judged it trained without them): "pooled" when the gate pooled more than one validation week (a small
    # shop, whose training weeks the pooling pushed back), "always", or "never" (docs/models.md, measured)
    refit: str = "pooled"


LABELLED_WEEKS_READ = GateRule.max_validation_weeks + TrainingWeeks.max_training_weeks + 2
"""Weeks of stored labelled candidates `ranker_model` may read (`ranker_sources`: W and the weeks before it)."""


def ranker_sources(
    warehouse: Warehouse, week: dt.date, weeks: TrainingWeeks, rule: GateRule, windows: InputWindows
) -> WeekSources:
    """What `ranker_data.assemble` reads for week W: buyers per stored week, the stored labelled sets (and their
    groups with a bought candidate, counted in SQL), the catalogue tables and the stored ranking inputs of a
    week (those built over `windows`) for given customers."""
    first = shift_weeks(week, -(rule.max_validation_weeks + weeks.max_training_weeks + 1))
    buyers = warehouse.query(
        f"select week, count(distinct customer_id) as n from {warehouse.table('transactions')} "
        "where week between ? and ? group by week",
        [first, week],
    )
    stored = (
        {}
        if not warehouse.exists("candidates")
        else dict(
            warehouse.query(
                f"select week, count(distinct case when label = 1 then customer_id end) as positives from "
                f"{warehouse.table('candidates')} where target_week = week and week between ? and ? group by week",
                [first, week],
            ).iter_rows()
        )
    )
    return WeekSources(
        buyers_per_week=dict(buyers.iter_rows()),
        stored_positive_groups=lambda t: stored.get(t),
        stored_labelled=lambda t: labelled_set(warehouse, t) if t in stored else None,
        tables=lambda n: catalogue_tables(warehouse, week, n),
        stored_inputs=lambda t, customer_ids: _stored_inputs(warehouse, t, windows, customer_ids),
    )


def _stored_inputs(warehouse: Warehouse, week: dt.date, windows: InputWindows, customer_ids: pl.Series):
    stored, _ = StoredInputs.load(warehouse, week, windows)
    return stored.of(customer_ids) if stored is not None else None


def _importance_plot(importances: pl.DataFrame, top: int = 20) -> dg.MetadataValue:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    head = importances.head(top).reverse()
    fig, ax = plt.subplots(figsize=(6, 0.25 * head.height + 1))
    ax.barh(head["feature"].to_list(), head["gain_share"].to_list(), color="#4c72b0")
    ax.set_xlabel("share of total gain")
    ax.set_title("ranker feature importance")
    fig.tight_layout()
    value = png_markdown(fig)
    plt.close(fig)
    return value


@dg.asset(
    op_tags={**TRAINING_STEP_TAGS, **RANKING_PRIORITY, **LARGE_MEMORY_TAG},
    partitions_def=weekly_partitions,
    group_name="ranking",
    kinds={"lightgbm"},
    deps=[
        history_of("candidates", LABELLED_WEEKS_READ),
        *(history_of(table, LABELLED_WEEKS_READ, before=1) for table in INPUTS),  # each labelled week's week before
        history_of("transactions"),
        "customers",
        "articles",
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "ranker_sound",
            asset="ranker_model",
            blocking=True,
            description="trained, finite validation figures, artefact reloads with its hash, serving decision recorded",
        ),
        dg.AssetCheckSpec(
            "ranker_beats_best_baseline",
            asset="ranker_model",
            blocking=False,
            description="the serving policy's rule lets the ranker serve against the best baseline on the same "
            "validation buyers (default not_worse: it does not lose beyond noise); when not, that baseline serves",
        ),
    ],
)
def ranker_model(
    context: dg.AssetExecutionContext,
    config: RankerModelConfig,
    warehouse: Warehouse,
    model_registry: ModelRegistry,
    serving_policy: ServingPolicy,
    pipeline_settings: PipelineSettings,
):
    """LightGBM ranker over the candidates, learnt from the labelled sets of the weeks before its validation weeks
    (`models/ranker_data.py` says which) and compared with the baselines on the same validation buyers, nothing
    tuned on them; the configured objective is stored, the compared ones reported. The comparison decides who
    serves W+1 (the ranker or the champion baseline); either way the sound ranker is stored and scored."""
    from hm_recs.models.ranker import compare_objectives
    from hm_recs.models.ranker_data import assemble, refit

    week = partition_week(context)
    rule, windows = serving_policy.gate_rule(), pipeline_settings.input_windows()
    ranker_config = core_config(RankerConfig, config, seed=pipeline_settings.seed)
    training_weeks = core_config(TrainingWeeks, config)
    with measured(context, "ranker_model") as figures:
        sources = ranker_sources(warehouse, week, training_weeks, rule, windows)
        if sources.stored_positive_groups(week) is None:
            raise dg.Failure(f"no labelled candidates for week {week}: materialise `candidates` for {week} first")
        weeks = assemble(
            week, sources, training_weeks, rule, ranker_config, windows, log=context.log.info, detach=detached
        )
        result, by_objective = compare_objectives(
            weeks.train,
            weeks.validation,
            FEATURE_COLUMNS,
            CATEGORICAL_FEATURES,
            ranker_config,
            context.log.info,
            weeks.validation_purchases,
            compared=config.compared_objectives,
        )
    ranker_map = result.validation["map_at_12"]
    if config.refit not in ("pooled", "always", "never"):
        raise dg.Failure(f"ranker_model: refit must be 'pooled', 'always' or 'never', not {config.refit!r}")
    if weeks.refits(config.refit) and math.isfinite(ranker_map) and result.tiers:
        result = refit(weeks, result, FEATURE_COLUMNS, CATEGORICAL_FEATURES, ranker_config, context.log.info)
    gate = {"validation_finite": math.isfinite(ranker_map), "tiers_fitted": result.tiers is not None}
    state = {**result.state(), "windows": dataclasses.asdict(windows), "week": week.isoformat()}
    stored = model_registry.gate_then_store(context, "ranker", week, state, gate)
    decision = decide(
        result.validation_ap.rename({"customer_id": "query"}),
        weeks.baseline_ap,
        rule,
        validation_weeks=weeks.validation_weeks,
        ranker_artefact_hash=stored.artefact_hash,
    )
    model_registry.record_ranker_decision(week, decision.state())
    (context.log.info if decision.ranker_serves else context.log.warning)(
        f"week {shift_weeks(week, 1)}: {decision.summary()}"
    )
    yield dg.MaterializeResult(
        metadata=ranker_metadata(result, ranker_map, decision, weeks, by_objective, stored, figures)
    )
    yield model_registry.check(stored, gate, check_name="ranker_sound")
    yield ranker_beats_best_baseline(decision, ranker_map, rule)


def ranker_metadata(result, ranker_map: float, decision, weeks, by_objective: dict, stored, figures: dict) -> dict:
    """What `ranker_model` shows in the UI: who serves and why, the comparison with the baselines on the same
    buyers (`ranker_map`: the gate's validation MAP@12, before any refit), the weeks it learnt from, importances
    and tiers."""
    comparison = pl.DataFrame(
        {
            "recommender": [f"ranker ({result.config.objective})", *decision.baseline_map_at_12],
            "map_at_12": [ranker_map, *decision.baseline_map_at_12.values()],
        }
    ).sort("map_at_12", descending=True)
    best = decision.best_baseline
    return {
        "served_by": decision.served_by,
        "serving_reason": decision.reason,
        "objective": result.config.objective,
        "map_at_12": ranker_map,
        "recall_at_12": result.validation["recall_at_12"],
        "best_baseline": best,
        "best_baseline_map_at_12": decision.baseline_map_at_12[best],
        "ratio_to_best_baseline": ranker_map / decision.baseline_map_at_12[best]
        if decision.baseline_map_at_12[best]
        else None,
        "paired_difference": decision.difference,
        "paired_difference_interval": dg.MetadataValue.json(list(decision.interval)),
        "map_at_12_by_objective": dg.MetadataValue.json(by_objective),
        "comparison": dg.MetadataValue.md(markdown_table(comparison)),
        **{
            name: (dg.MetadataValue.json(value) if isinstance(value, list) else value)
            for name, value in weeks.figures().items()
        },
        "refit_on_validation_weeks": "refit_training_rows" in result.validation,
        "best_iteration": result.validation["best_iteration"],
        "importances": dg.MetadataValue.md(markdown_table(result.importances, limit=20)),
        "importance_plot": _importance_plot(result.importances),
        "tiers": dg.MetadataValue.md(markdown_table(pl.DataFrame(list(result.tiers.summary)))),
        **stored.metadata(),
        **figures,
    }


def ranker_beats_best_baseline(decision, ranker_map: float, rule) -> dg.AssetCheckResult:
    """The WARN check: whether the serving rule lets the ranker serve against the best baseline (it fails when the
    baseline serves the week instead)."""
    best = decision.best_baseline
    return dg.AssetCheckResult(
        check_name="ranker_beats_best_baseline",
        passed=decision.ranker_serves,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "served_by": decision.served_by,
            "map_at_12": ranker_map,
            "best_baseline": best,
            "best_baseline_map_at_12": decision.baseline_map_at_12[best],
            "paired_difference": decision.difference,
            "interval": dg.MetadataValue.json(list(decision.interval)),
            "validation_buyers": decision.validation_buyers,
            "rule": rule.rule,
            "required_ratio": rule.required_ratio,
        },
    )
