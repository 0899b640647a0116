"""Retrieval, the part both retrieval models (two-tower, sequence) share: the interface they implement, the two
candidate sets a week builds, and the staging of ranked candidates chunk by chunk. No Dagster.

A week W builds two sets, told apart by `target_week`:
- serving (target W+1): every customer with history, scored as of W, among the articles sold in the last
  `on_sale_weeks` weeks up to W;
- labelled (target W): week W's buyers with history before W, scored as of W-1 (the model never saw W's
  purchases), among the articles on sale as of W-1: what the ranker learns from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import polars as pl

from hm_recs.core.weeks import shift_weeks
from hm_recs.storage.staged import StagedTable

if TYPE_CHECKING:  # the code location imports this module and loads without torch
    import torch

RETRIEVAL_COLUMNS = {
    "customer_id": pl.String,
    "article_id": pl.String,
    "score": pl.Float64,
    "rank": pl.Int16,
    "target_week": pl.Date,
    "week": pl.Date,
}
"""The columns of a retrieval candidate table (`two_tower_candidates` adds `model`, which model ranked the row)."""


RANKED_SCHEMA = {"customer_idx": pl.Int64, "article_idx": pl.Int64, "score": pl.Float64, "rank": pl.Int16}
"""What `Retriever.top_k` returns."""


def ranked_frame(customer_idx: np.ndarray, articles: torch.Tensor, scores: torch.Tensor) -> pl.DataFrame:
    """`RANKED_SCHEMA` rows of each customer's [B, k] ranked articles (article_idx) and scores, best first."""
    k = articles.shape[1] if articles.dim() == 2 else 0
    return pl.DataFrame(
        {
            "customer_idx": np.repeat(np.asarray(customer_idx, dtype=np.int64), k),
            "article_idx": articles.reshape(-1).cpu().numpy().astype(np.int64),
            "score": scores.reshape(-1).cpu().numpy().astype(np.float64),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int16), len(customer_idx)),
        },
        schema=RANKED_SCHEMA,
    )


def in_columns(
    entries: tuple[torch.Tensor, torch.Tensor, torch.Tensor], columns: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, article_idx, value) entries as (row, column, value) of a score matrix whose columns are `columns`
    (article_idx -> column, -1 for articles not scored: dropped); unchanged without `columns`."""
    if columns is None:
        return entries
    row, article, value = entries
    column = columns[article]
    keep = column >= 0
    return row[keep], column[keep], value[keep]


class Retriever(Protocol):
    """A trained retrieval model as the pipeline uses it: ranked candidates and held-out figures. Implemented by
    `two_tower.TwoTowerRetriever` and `sequence.SequenceRetriever`."""

    def top_k(self, customer_idx: np.ndarray, candidate_articles: np.ndarray, k: int) -> pl.DataFrame:
        """customer_idx, article_idx, score, rank (1..k) of each customer against `candidate_articles` only."""
        ...

    def evaluate(self, held_out: pl.DataFrame, k: int = 100):
        """`common.RetrievalFigures` (AUC, recall@k) on held-out (customer_idx, article_idx) purchases."""
        ...


@dataclass(frozen=True)
class CandidateSet:
    """One set of candidates to retrieve in week `week`: whom to rank (customer_id) and among which articles
    (sorted article_idx), for `target_week`."""

    week: dt.date
    target_week: dt.date
    customers: pl.DataFrame
    on_sale: pl.Series

    @property
    def serving(self) -> bool:
        return self.target_week > self.week

    @property
    def kind(self) -> str:
        return "serving" if self.serving else "labelled"

    @property
    def as_of(self) -> dt.date:
        """The last day the set's scores may read: W's Tuesday (serving) or W-1's (labelled)."""
        return shift_weeks(self.week, 1 if self.serving else 0) - dt.timedelta(days=1)


def articles_on_sale(transactions: pl.DataFrame, week: dt.date, weeks: int, index) -> pl.Series:
    """Sorted article_idx (of `index`) of the articles sold in the `weeks` weeks up to W: what retrieval ranks."""
    on_sale = (
        transactions.filter(pl.col("t_dat") >= pl.lit(shift_weeks(week, -(weeks - 1)))).select("article_id").unique()
    )
    return index.encode(on_sale, "article_id", "article_idx")["article_idx"].sort()


def labelled_customers(transactions: pl.DataFrame, week: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Week W's buyers with purchases before W (customer_id), and the transactions before W they are scored from."""
    before = transactions.filter(pl.col("t_dat") < pl.lit(week))
    buyers = (
        transactions.filter(pl.col("t_dat") >= pl.lit(week))
        .select("customer_id")
        .unique()
        .join(before.select("customer_id").unique(), on="customer_id", how="semi")
    )
    return buyers, before


def candidate_sets(transactions: pl.DataFrame, week: dt.date, on_sale_weeks: int, article_index) -> list[CandidateSet]:
    """Week W's serving and labelled sets (module docstring) from the history up to W."""
    buyers, before = labelled_customers(transactions, week)
    return [
        CandidateSet(
            week,
            shift_weeks(week, 1),
            transactions.select("customer_id").unique(),
            articles_on_sale(transactions, week, on_sale_weeks, article_index),
        ),
        CandidateSet(week, week, buyers, articles_on_sale(before, shift_weeks(week, -1), on_sale_weeks, article_index)),
    ]


def set_figures(sets: list[CandidateSet]) -> dict:
    """Customers and articles on sale of each set, for the asset's metadata."""
    figures = {}
    for s in sets:
        figures[f"{s.kind}_customers"] = s.customers.height
        figures[f"{s.kind}_articles_on_sale"] = s.on_sale.len()
    return figures


def stage_retrieval(
    table: StagedTable,
    retriever: Retriever,
    customer_idx: np.ndarray,
    on_sale: pl.Series,
    k: int,
    customer_index,
    article_index,
    columns: dict,
    chunk: int,
) -> list[pl.Series]:
    """Ranks the (sorted) `customer_idx` `chunk` customers at a time, decodes the ids, adds the constant `columns`
    and appends each chunk to `table` (memory: one chunk of ranked rows, whatever the number of customers).
    Returns each chunk's candidates per customer (what the candidate-set check counts)."""
    counts = []
    articles = on_sale.to_numpy()
    for ranked in _chunks(retriever, customer_idx, articles, k, chunk):
        rows = ranked.select(
            customer_index.decode(ranked["customer_idx"]).alias("customer_id"),
            article_index.decode(ranked["article_idx"]).alias("article_id"),
            "score",
            "rank",
            *[pl.lit(value).alias(name) for name, value in columns.items()],
        )
        table.append(rows.sort("customer_id", "rank"))
        counts.append(rows.group_by("customer_id").len()["len"])
    if not counts:  # no customers: an empty part keeps the table's schema
        table.append(
            pl.DataFrame(
                schema={n: RETRIEVAL_COLUMNS[n] for n in ("customer_id", "article_id", "score", "rank")}
            ).with_columns(*[pl.lit(value).alias(name) for name, value in columns.items()])
        )
    return counts


def _chunks(retriever: Retriever, customer_idx: np.ndarray, articles: np.ndarray, k: int, chunk: int) -> Iterator:
    for start in range(0, len(customer_idx), chunk):
        yield retriever.top_k(customer_idx[start : start + chunk], articles, k)


def complete_sets(counts: dict[dt.date, list[pl.Series]], sets: list[CandidateSet], k: int) -> tuple[bool, dict]:
    """Whether every wanted customer of each set has min(K, articles on sale) ranked candidates (`counts`: the
    candidates per customer of each target week, chunk by chunk), and the count per set."""
    passed, figures = True, {}
    for s in sets:
        expected = min(k, s.on_sale.len())
        per_customer = pl.concat(counts.get(s.target_week) or [pl.Series("len", [], dtype=pl.UInt32)])
        passed &= per_customer.len() == s.customers.height and bool((per_customer == expected).all())
        figures[f"target {s.target_week}"] = (
            f"{int((per_customer == expected).sum())} of {s.customers.height} customers with {expected}"
        )
    return bool(passed), figures


def retrieval_gate(result, popularity, margin: float = 0.0) -> tuple[dict, dict, dict]:
    """A retrieval model (two-tower, sequence) is judged twice.
    gate (blocking: no artefact without it): training loss fell on fixed negatives, finite weights.
    admission (whether its candidates join the union this week): the last epoch's held-out AUC and recall@100
    above popularity's by more than `margin`. A sound model that does not beat popularity is stored but its source
    sits the week out, so a weak retrieval model costs one candidate source, not the week's recommendations.
    Plus the figures behind both."""
    from hm_recs.models.common import finite

    last = result.history[-1] if result.history else {}
    gate = {"loss_fell": result.loss_fell, "finite": bool(finite(result.model))}
    admission = {
        "auc_beats_popularity": last.get("auc", 0) > popularity.auc + margin,
        "recall_at_100_beats_popularity": last.get("recall_at_100", 0) > popularity.recall_at_k + margin,
    }
    scores = {
        "auc": last.get("auc"),
        "recall_at_100": last.get("recall_at_100"),
        "popularity_auc": popularity.auc,
        "popularity_recall_at_100": popularity.recall_at_k,
        "starting_loss": result.starting_loss,
        "final_loss": result.final_loss,
        "held_out_customers": popularity.customers,
    }
    return gate, admission, scores
