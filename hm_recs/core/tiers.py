"""Relevance tiers: calibrated score bands (high / medium / low) of a week's published lists.

A scorer's rows on its validation week (each customer's top 12, label = bought that week) are calibrated to
purchase probability (isotonic regression over equal-count score bins) and cut at score quantiles, so that about
the top `high_share` of the rows are `high` and the next `medium_share` `medium`. Used by the LightGBM ranker
(its raw scores) and by a baseline serving as the champion (`list_tiers`: the validated hit rate of the row's
source and rank as its score). No Dagster, no LightGBM here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from hm_recs.core.schema import TIERS


@dataclass(frozen=True)
class TierBands:
    """Relevance tiers of one ranker. A row is `high` when its raw score is at least `high_score`, `medium`
    when at least `medium_score`, else `low`. The cuts are the validation week's score quantiles (the top
    `high_share` of the rows fitted on are high, the next `medium_share` medium, as near as tied scores allow);
    since the calibration is monotone they are also cuts in purchase probability (`calibrate`). `summary` holds,
    per tier, what a CRM can expect from what was fitted on: rows, share, observed hit rate (share of the tier's
    recommendations bought that week) and the calibrated probability range."""

    high_score: float
    medium_score: float
    calibration_scores: tuple[float, ...]  # increasing bin mean scores
    calibration_probabilities: tuple[float, ...]  # isotonic purchase probability at those scores
    summary: tuple[dict, ...] = ()

    def calibrate(self, scores: np.ndarray | pl.Series) -> np.ndarray:
        """Purchase probability of raw scores: piecewise linear between the isotonic bin estimates, flat beyond."""
        return np.interp(np.asarray(scores, dtype=np.float64), self.calibration_scores, self.calibration_probabilities)

    def state(self) -> dict:
        return {
            **asdict(self),
            "calibration_scores": list(self.calibration_scores),
            "calibration_probabilities": list(self.calibration_probabilities),
            "summary": list(self.summary),
        }

    @classmethod
    def load(cls, state: dict) -> TierBands:
        return cls(
            state["high_score"],
            state["medium_score"],
            tuple(state["calibration_scores"]),
            tuple(state["calibration_probabilities"]),
            tuple(state["summary"]),
        )


def _isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight, number of values pooled]
    for value, weight in zip(values.tolist(), weights.tolist(), strict=True):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m2, w2, n2), (m1, w1, n1) = blocks.pop(), blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.repeat([b[0] for b in blocks], [int(b[2]) for b in blocks])


def fit_tiers(
    scores: np.ndarray | pl.Series,
    labels: np.ndarray | pl.Series,
    high_share: float = 0.10,
    medium_share: float = 0.30,
    bins: int = 100,
) -> TierBands:
    """Calibrate raw scores to purchase probability (isotonic regression on `bins` equal-count score bins) and
    cut tiers at the scores leaving closest to `high_share` of the rows high and `medium_share` medium. Fit on
    the validation week's recommended rows (each customer's top 12, label = bought that week), so the tiers
    describe what is published."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("fit_tiers needs at least one scored row")
    order = np.argsort(scores, kind="stable")
    chunks = [c for c in np.array_split(order, min(bins, scores.size)) if c.size]
    bin_scores = np.array([scores[c].mean() for c in chunks])
    bin_hits = np.array([labels[c].sum() for c in chunks])
    bin_rows = np.array([c.size for c in chunks], dtype=np.float64)
    # Bins of tied scores merge, so the calibration curve's x is strictly increasing.
    unique_scores, inverse = np.unique(bin_scores, return_inverse=True)
    hits = np.bincount(inverse, bin_hits)
    rows = np.bincount(inverse, bin_rows)
    probabilities = _isotonic(hits / rows, rows)
    high_score = _cut(scores, high_share)
    medium_score = _cut(scores, high_share + medium_share)
    bands = TierBands(high_score, medium_score, tuple(unique_scores.tolist()), tuple(probabilities.tolist()))
    summary = tier_summary(scores, labels, bands)
    return TierBands(
        bands.high_score,
        bands.medium_score,
        bands.calibration_scores,
        bands.calibration_probabilities,
        tuple(summary.to_dicts()),
    )


def _cut(scores: np.ndarray, share_above: float) -> float:
    """The score threshold (one of the scores) that leaves the share of rows at or above it closest to
    `share_above`; a block of tied scores stays on one side (few trees give many ties)."""
    ordered = np.sort(scores)
    values = np.unique(ordered)
    at_or_above = (ordered.size - np.searchsorted(ordered, values, side="left")) / ordered.size
    return float(values[np.argmin(np.abs(at_or_above - share_above))])


def assign_tiers(scores: np.ndarray | pl.Series, bands: TierBands) -> pl.Series:
    """The tier ("high" | "medium" | "low") of each raw score, non-decreasing in the score."""
    scores = np.asarray(scores, dtype=np.float64)
    tier = np.where(scores >= bands.high_score, TIERS[0], np.where(scores >= bands.medium_score, TIERS[1], TIERS[2]))
    return pl.Series("tier", tier, dtype=pl.String)


def tier_summary(scores: np.ndarray | pl.Series, labels: np.ndarray | pl.Series, bands: TierBands) -> pl.DataFrame:
    """Per tier: rows, share, observed hit rate (share of rows bought) and calibrated probability range; on a
    held-out week this is the check that the tiers keep their promise. Sums in numpy's order (sorted scores),
    so the same rows in any order give the same figures."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    scores, labels = scores[order], np.asarray(labels, dtype=np.float64)[order]
    tiers = assign_tiers(scores, bands).to_numpy()
    probability = bands.calibrate(scores)
    rows = []
    for tier in TIERS:
        mask = tiers == tier
        n = int(mask.sum())
        p = probability[mask]
        rows.append(
            {
                "tier": tier,
                "rows": n,
                "hit_rate": float(labels[mask].mean()) if n else None,
                "mean_probability": float(p.mean()) if n else None,
                "min_probability": float(p.min()) if n else None,
                "max_probability": float(p.max()) if n else None,
                "share": n / max(scores.size, 1),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "tier": pl.String,
            "rows": pl.Int64,
            "hit_rate": pl.Float64,
            "mean_probability": pl.Float64,
            "min_probability": pl.Float64,
            "max_probability": pl.Float64,
            "share": pl.Float64,
        },
    )


@dataclass(frozen=True)
class ListTiers:
    """Relevance tiers of a recommender without a score of its own that is comparable across customers (a
    baseline serving as the champion): a row's tier score is the purchase rate, on the validation week, of the
    rows with its `source` and `rank` (a cell), shrunk towards the overall rate by `prior_rows` rows. The bands
    are then cut at the same shares as the ranker's (`fit_tiers`), as near as the cells' ties allow."""

    cells: tuple[tuple[str, int, float], ...]  # (source, rank, tier score)
    bands: TierBands

    @classmethod
    def fit(
        cls,
        lists: pl.DataFrame,
        purchases: pl.DataFrame,
        high_share: float = 0.10,
        medium_share: float = 0.30,
        prior_rows: float = 20.0,
    ) -> ListTiers:
        """`lists` (customer_id, article_id, rank, source) of the validation week's buyers; `purchases`
        (customer_id, article_id) of that week."""
        labelled = _labelled(lists, purchases)
        if labelled.height == 0:
            raise ValueError("ListTiers.fit needs at least one listed row")
        overall = int(labelled["label"].sum()) / labelled.height
        cells = (
            labelled.group_by("source", "rank")
            .agg(pl.col("label").sum().alias("hits"), pl.len().alias("rows"))
            .with_columns(((pl.col("hits") + prior_rows * overall) / (pl.col("rows") + prior_rows)).alias("rate"))
            .sort("source", "rank")
        )
        rates = np.unique(cells["rate"].to_numpy())
        # a cell's score is already its (shrunk) purchase rate: the calibration is the identity on the cells, and
        # the bands cut at the shares as the ranker's do; nothing depends on the order of the rows
        provisional = cls(
            tuple(cells.select("source", "rank", "rate").iter_rows()),
            TierBands(0.0, 0.0, tuple(rates.tolist()), tuple(rates.tolist())),
        )
        scores = provisional.scores(labelled).to_numpy()
        bands = TierBands(
            _cut(scores, high_share),
            _cut(scores, high_share + medium_share),
            tuple(rates.tolist()),
            tuple(rates.tolist()),
        )
        summary = tier_summary(scores, labelled["label"], bands)
        return cls(
            provisional.cells,
            TierBands(
                bands.high_score,
                bands.medium_score,
                bands.calibration_scores,
                bands.calibration_probabilities,
                tuple(summary.to_dicts()),
            ),
        )

    def scores(self, lists: pl.DataFrame) -> pl.Series:
        """Each row's tier score (a cell never seen on the validation week scores 0)."""
        cells = pl.DataFrame(
            list(self.cells), schema={"source": pl.String, "rank": pl.Int64, "rate": pl.Float64}, orient="row"
        )
        return (
            lists.select(pl.col("source"), pl.col("rank").cast(pl.Int64))
            .join(cells, on=["source", "rank"], how="left", maintain_order="left")["rate"]
            .fill_null(0.0)
        )

    def assign(self, lists: pl.DataFrame) -> pl.Series:
        return assign_tiers(self.scores(lists), self.bands)

    def summary(self) -> pl.DataFrame:
        return pl.DataFrame(list(self.bands.summary))

    def state(self) -> dict:
        return {"cells": [list(cell) for cell in self.cells], "bands": self.bands.state()}

    @classmethod
    def load(cls, state: dict) -> ListTiers:
        return cls(tuple((str(s), int(r), float(v)) for s, r, v in state["cells"]), TierBands.load(state["bands"]))


def _labelled(lists: pl.DataFrame, purchases: pl.DataFrame) -> pl.DataFrame:
    bought = (
        purchases.select("customer_id", "article_id").unique().with_columns(pl.lit(1, dtype=pl.Int8).alias("label"))
    )
    return (
        lists.select("customer_id", "article_id", pl.col("rank").cast(pl.Int64), "source")
        .join(bought, on=["customer_id", "article_id"], how="left", maintain_order="left")
        .with_columns(pl.col("label").fill_null(0))
    )
