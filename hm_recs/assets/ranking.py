"""The candidate stage of the two-stage recommender: the union of every candidate source per customer.

Built at partition W into one table with two sets told apart by `target_week`:
- W+1 (serving): every customer, candidates from the history up to W and the models' serving sets;
- W (labelled): week W's buyers, candidates as of W-1 (history up to W-1's Tuesday and the models' labelled
  sets, which never saw week W), with `label` = bought in week W: what the ranker learns from, and the week
  on which candidate recall is measured (per source and for the union) for the blocking check.
Pure logic in `core/candidates.py`; this module only reads, chunks over customers and checks.
"""

import datetime as dt

import dagster as dg
import polars as pl

from hm_recs.assets.common import PARTITIONED, catalogue_tables, markdown_table, measured, partition_rows, preview
from hm_recs.core.candidates import UNION, CandidateConfig, candidate_pools, candidate_recall, customer_candidates
from hm_recs.core.ranking_features import label_candidates
from hm_recs.core.weeks import shift_weeks
from hm_recs.partitions import partition_week, weekly_partitions
from hm_recs.resources import Warehouse


class CandidatesConfig(dg.Config):
    history_weeks: int = 26
    max_per_customer: int = CandidateConfig.max_per_customer
    min_per_customer: int = CandidateConfig.min_per_customer
    chunk_customers: int = 100_000   # customers per chunk: memory is about chunk x max_per_customer rows
    # blocking: share of week W's bought pairs the labelled union must cover. A floor that catches a broken
    # union, not a target: measured 0.03 on the 0.1% real H&M sample (3 weeks of history), 0.2+ on synthetic data
    min_union_recall: float = 0.02

    def candidate_config(self) -> CandidateConfig:
        return CandidateConfig(max_per_customer=self.max_per_customer, min_per_customer=self.min_per_customer)


def build_set(customers, transactions, articles, week: dt.date, config: CandidatesConfig, wanted: pl.Series,
              two_tower: pl.DataFrame, sequence: pl.DataFrame) -> pl.DataFrame:
    """The union for `wanted` customers as of `week`, chunk by chunk over customers."""
    pools = candidate_pools(customers, transactions, articles, week, config.candidate_config())
    wanted = wanted.sort()
    parts = []
    for start in range(0, wanted.len(), config.chunk_customers):
        chunk = wanted.slice(start, config.chunk_customers)
        ids = chunk.implode()
        parts.append(customer_candidates(pools, chunk, two_tower.filter(pl.col("customer_id").is_in(ids)),
                                         sequence.filter(pl.col("customer_id").is_in(ids))))
    return pl.concat(parts) if parts else customer_candidates(pools, wanted, None, None)


@dg.asset(partitions_def=weekly_partitions, group_name="ranking", kinds={"polars", "duckdb"}, metadata=PARTITIONED,
          deps=["transactions", "customers", "articles", "two_tower_candidates", "sequence_candidates"],
          check_specs=[dg.AssetCheckSpec("candidates_per_customer_and_recall", asset="candidates", blocking=True,
                                         description="every customer at least min_per_customer candidates in both sets; "
                                                     "the labelled union covers at least min_union_recall of week W's purchases")])
def candidates(context: dg.AssetExecutionContext, config: CandidatesConfig, warehouse: Warehouse):
    """Candidate union per customer (repurchase, age-group trending, co-purchase, same product, two-tower and
    sequence retrieval, fallback top-up) with each source's flag, score and rank."""
    week = partition_week(context)
    target = shift_weeks(week, 1)
    with measured(context, "candidates") as figures:
        customers, articles, transactions = catalogue_tables(warehouse, week, config.history_weeks)
        model_columns = "customer_id, article_id, score, rank, target_week"
        two_tower = partition_rows(warehouse, "two_tower_candidates", week, model_columns)
        sequence = partition_rows(warehouse, "sequence_candidates", week, model_columns)
        this_week = transactions.filter(pl.col("t_dat") >= pl.lit(week))
        before = transactions.filter(pl.col("t_dat") < pl.lit(week))

        def models_for(frame: pl.DataFrame, when: dt.date) -> pl.DataFrame:
            return frame.filter(pl.col("target_week") == when).drop("target_week")

        serving = build_set(customers, transactions, articles, week, config, customers["customer_id"],
                            models_for(two_tower, target), models_for(sequence, target))
        buyers = this_week["customer_id"].unique()
        labelled = label_candidates(
            build_set(customers, before, articles, shift_weeks(week, -1), config, buyers,
                      models_for(two_tower, week), models_for(sequence, week)), this_week)
        recall = candidate_recall(labelled, this_week)
        table = pl.concat([
            serving.with_columns(pl.lit(None, dtype=pl.Int8).alias("label"), pl.lit(target).alias("target_week")),
            labelled.with_columns(pl.col("label").cast(pl.Int8), pl.lit(week).alias("target_week")),
        ], how="vertical_relaxed").with_columns(pl.lit(week).alias("week"))
    union = recall.filter(pl.col("source") == UNION).row(0, named=True)
    for row in recall.iter_rows(named=True):
        context.log.info(f"candidate recall on week {week}: {row['source']} {row['recall_all_buyers']:.3f} "
                         f"({row['candidates_per_customer']:.1f} per customer)")
    per_customer = {name: frame.group_by("customer_id").len()["len"] for name, frame in (("serving", serving), ("labelled", labelled))}
    enough = {name: int((counts >= config.min_per_customer).sum()) for name, counts in per_customer.items()}
    yield dg.Output(table, metadata={
        "rows": table.height, "serving_rows": serving.height, "labelled_rows": labelled.height,
        "candidates_per_customer": round(serving.height / max(customers.height, 1), 1),
        "recall_by_source": dg.MetadataValue.md(markdown_table(recall, limit=20)),
        "sources": dg.MetadataValue.json(dict(serving.group_by("sources").len().sort("len", descending=True).head(15).iter_rows())),
        "preview": preview(serving.select("customer_id", "article_id", "sources", "n_sources")), **figures})
    passed = (per_customer["serving"].len() == customers.height and enough["serving"] == customers.height
              and enough["labelled"] == buyers.len() and union["recall_all_buyers"] >= config.min_union_recall)
    yield dg.AssetCheckResult(passed=bool(passed), metadata={
        "customers": customers.height, "customers_with_enough": enough["serving"], "buyers": buyers.len(),
        "buyers_with_enough": enough["labelled"], "union_recall": union["recall_all_buyers"],
        "min_union_recall": config.min_union_recall})
