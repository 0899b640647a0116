"""Offline metrics of a set of recommendations against the purchases of the following week.

MAP@12 follows the Kaggle H&M definition: for each customer who bought something in the target week,
AP@k = sum over ranks i <= k of P(i) * [item i bought, first time listed] / min(|bought|, k), averaged over
those customers (a customer with no recommendations scores 0). `bought` is the set of distinct articles.
"""

from __future__ import annotations

import polars as pl

K = 12
METRIC_NAMES = ("map_at_12", "recall_at_12", "coverage", "novelty", "mean_price")
"""What `evaluate` reports per recommender, in this order."""


def _hits(recommendations: pl.DataFrame, purchases: pl.DataFrame, k: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Top-k rows of buying customers with `position` (1..k, duplicates keep their place, as in Kaggle's
    apk) and `hit` (bought, and the first time the article is listed)."""
    truth = purchases.select("customer_id", "article_id").unique()
    # sorted: the means below then sum in one order, so the same inputs give bit-identical figures
    truth_sizes = truth.group_by("customer_id").agg(pl.len().alias("n_bought")).sort("customer_id")
    recs = (
        recommendations.select("customer_id", "article_id", "rank")
        .join(truth_sizes, on="customer_id", how="semi")
        .sort("customer_id", "rank")
        .with_columns(pl.int_range(1, pl.len() + 1).over("customer_id").alias("position"))
        .filter(pl.col("position") <= k)
        .with_columns(pl.col("article_id").is_first_distinct().over("customer_id").alias("first"))
        .join(truth.with_columns(pl.lit(True).alias("bought")), on=["customer_id", "article_id"], how="left")
        .with_columns((pl.col("bought").fill_null(False) & pl.col("first")).alias("hit"))
    )
    return recs, truth_sizes


def map_at_k(recommendations: pl.DataFrame, purchases: pl.DataFrame, k: int = K) -> float:
    """Kaggle MAP@k of `recommendations` (customer_id, article_id, rank) against `purchases`."""
    recs, truth_sizes = _hits(recommendations, purchases, k)
    if truth_sizes.height == 0:
        return float("nan")
    ap = (
        recs.sort("customer_id", "position")
        .with_columns(pl.col("hit").cast(pl.Int32).cum_sum().over("customer_id").alias("hits_so_far"))
        .filter(pl.col("hit"))
        .group_by("customer_id")
        .agg((pl.col("hits_so_far") / pl.col("position")).sum().alias("sum_precision"))
    )
    per_customer = truth_sizes.join(ap, on="customer_id", how="left", maintain_order="left").with_columns(
        (pl.col("sum_precision").fill_null(0.0) / pl.min_horizontal(pl.col("n_bought"), pl.lit(k))).alias("ap")
    )
    return float(per_customer["ap"].mean())


def recall_at_k(recommendations: pl.DataFrame, purchases: pl.DataFrame, k: int = K) -> float:
    """Mean over buying customers of |top-k ∩ bought| / |bought|."""
    recs, truth_sizes = _hits(recommendations, purchases, k)
    if truth_sizes.height == 0:
        return float("nan")
    hits = recs.group_by("customer_id").agg(pl.col("hit").sum().alias("n_hit"))
    per_customer = truth_sizes.join(hits, on="customer_id", how="left", maintain_order="left")
    return float((per_customer["n_hit"].fill_null(0) / per_customer["n_bought"]).mean())


def catalogue_coverage(recommendations: pl.DataFrame, catalogue_size: int) -> float:
    """Share of the catalogue that appears in anyone's recommendations."""
    return recommendations["article_id"].n_unique() / catalogue_size if catalogue_size else float("nan")


def novelty(recommendations: pl.DataFrame, article_purchase_counts: pl.DataFrame) -> float:
    """Mean self-information -log2 p(article) of recommended articles, p = share of past purchases
    (add-one smoothed, so never-sold articles are the most novel)."""
    total = float(article_purchase_counts["n_sales"].sum())
    n_articles = max(article_purchase_counts.height, 1)
    joined = recommendations.select("article_id").join(article_purchase_counts, on="article_id", how="left")
    p = (joined["n_sales"].fill_null(0).cast(pl.Float64) + 1.0) / (total + n_articles)
    return float((-p.log(base=2)).mean()) if joined.height else float("nan")


def mean_price(recommendations: pl.DataFrame, article_prices: pl.DataFrame) -> float:
    """Mean of the recommended articles' mean selling price (articles never sold are left out)."""
    joined = recommendations.select("article_id").join(article_prices, on="article_id", how="inner")
    value = joined["mean_price"].mean()
    return float(value) if value is not None else float("nan")


def evaluate(
    recommendations: pl.DataFrame,
    purchases: pl.DataFrame,
    article_stats: pl.DataFrame,
    catalogue_size: int,
    k: int = K,
) -> dict[str, float]:
    """Every offline figure for one recommender. `article_stats`: article_id, n_sales, mean_price."""
    return {
        "map_at_12": map_at_k(recommendations, purchases, k),
        "recall_at_12": recall_at_k(recommendations, purchases, k),
        "coverage": catalogue_coverage(recommendations, catalogue_size),
        "novelty": novelty(recommendations, article_stats.select("article_id", "n_sales")),
        "mean_price": mean_price(recommendations, article_stats.select("article_id", "mean_price")),
    }
