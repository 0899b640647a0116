"""What the two retrieval stages (two-tower, sequence) share on the Dagster side: a source that sits the week
out, and the blocking check of a candidate table. The retrieval itself: `models/retrieval.py`."""

import datetime as dt

import dagster as dg
import polars as pl

from hm_recs.models.retrieval import RETRIEVAL_COLUMNS, CandidateSet, complete_sets
from hm_recs.registry import ModelRegistry


def candidates_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "candidates_per_customer",
        asset=asset,
        blocking=True,
        description="every customer of the serving and labelled sets has min(K, articles on sale) ranked candidates",
    )


def source_sits_out(context, registry: ModelRegistry, model: str, week: dt.date, with_model_column: bool) -> list:
    """When `model` was not admitted this week: the events of an empty candidate set (the union goes on without
    this source) with the reason; else an empty list."""
    is_admitted, record = registry.admission(model, week)
    if is_admitted:
        return []
    columns = {**RETRIEVAL_COLUMNS, **({"model": pl.String} if with_model_column else {})}
    empty = pl.DataFrame(schema=columns).select(
        "customer_id", "article_id", "score", "rank", *(["model"] if with_model_column else []), "target_week", "week"
    )
    reason = f"{model} for week {week} did not beat popularity: this source sits the week out"
    context.log.warning(reason)
    return [
        dg.Output(empty, metadata={"rows": 0, "source_disabled": reason, "admission": dg.MetadataValue.json(record)}),
        dg.AssetCheckResult(passed=True, metadata={"source_disabled": reason}),
    ]


def candidate_set_check(counts: dict[dt.date, list[pl.Series]], sets: list[CandidateSet], k: int):
    passed, figures = complete_sets(counts, sets, k)
    return dg.AssetCheckResult(passed=passed, metadata=figures)
