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
    per_customer = average_precision(recommendations, purchases, k)
    return float(per_customer["ap"].mean()) if per_customer.height else float("nan")


def average_precision(recommendations: pl.DataFrame, purchases: pl.DataFrame, k: int = K) -> pl.DataFrame:
    """AP@k of every customer who bought (customer_id, ap), sorted by customer: what MAP@k averages, and what a
    paired comparison of two recommenders on the same buyers resamples (`paired_bootstrap`)."""
    recs, truth_sizes = _hits(recommendations, purchases, k)
    ap = (
        recs.sort("customer_id", "position")
        .with_columns(pl.col("hit").cast(pl.Int32).cum_sum().over("customer_id").alias("hits_so_far"))
        .filter(pl.col("hit"))
        .group_by("customer_id")
        .agg((pl.col("hits_so_far") / pl.col("position")).sum().alias("sum_precision"))
    )
    return truth_sizes.join(ap, on="customer_id", how="left", maintain_order="left").select(
        "customer_id",
        (pl.col("sum_precision").fill_null(0.0) / pl.min_horizontal(pl.col("n_bought"), pl.lit(k))).alias("ap"),
    )


def paired_bootstrap(
    differences, samples: int = 1000, level: float = 0.90, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of per-customer paired `differences` (one recommender's AP minus another's on the same buyers) and
    its percentile bootstrap interval at `level` (customers resampled with replacement, `samples` times, seeded).
    Resamples are drawn 100 at a time, so memory is 100 x customers whatever `samples` is."""
    import numpy as np

    values = np.asarray(differences, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, samples, 100):
        draws = rng.integers(0, values.size, size=(min(100, samples - start), values.size))
        means.append(values[draws].mean(axis=1))
    means = np.concatenate(means)
    tail = (1.0 - level) / 2.0
    return float(values.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


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


def mean_popularity(recommendations: pl.DataFrame, article_purchase_counts: pl.DataFrame) -> float:
    """Mean past sales (`n_sales`) of the recommended articles (never sold: 0): how mainstream the lists are."""
    joined = recommendations.select("article_id").join(
        article_purchase_counts.select("article_id", "n_sales"), on="article_id", how="left"
    )
    return float(joined["n_sales"].fill_null(0).cast(pl.Float64).mean()) if joined.height else float("nan")


def personalisation(recommendations: pl.DataFrame) -> float:
    """1 - the mean share of articles two customers' lists have in common, over all ordered pairs of distinct
    customers: 0 when everyone gets the same list, 1 when no two lists share an article. Exact, without
    enumerating pairs: sum over articles of c(c-1), c = how many lists hold the article, over n(n-1) x list size."""
    lists = recommendations.select("customer_id", "article_id").unique()
    n = lists["customer_id"].n_unique()
    if n < 2:
        return float("nan")
    size = lists.height / n
    shared = (
        lists.group_by("article_id").len().select((pl.col("len").cast(pl.Float64) * (pl.col("len") - 1)).sum()).item()
    )
    return 1.0 - float(shared) / (n * (n - 1) * size)


BEYOND_ACCURACY = ("customers", "mean_popularity", "mean_price", "coverage", "personalisation")


def beyond_accuracy(
    recommendations: pl.DataFrame, segments: pl.DataFrame, article_stats: pl.DataFrame, catalogue_size: int
) -> pl.DataFrame:
    """Per customer segment (and `all`): customers, mean popularity and mean price of the recommended
    articles, catalogue coverage and personalisation, the figures the Heinz et al. study compared besides
    accuracy. segments: customer_id, segment; article_stats: article_id, n_sales, mean_price."""
    with_segment = recommendations.join(
        segments.select("customer_id", "segment"), on="customer_id", how="left"
    ).with_columns(pl.col("segment").fill_null("unknown"))
    groups = [("all", with_segment)] + [
        (name, group) for (name,), group in with_segment.group_by("segment", maintain_order=True)
    ]
    rows = [
        {
            "segment": name,
            "customers": group["customer_id"].n_unique(),
            "mean_popularity": mean_popularity(group, article_stats),
            "mean_price": mean_price(group, article_stats.select("article_id", "mean_price")),
            "coverage": catalogue_coverage(group, catalogue_size),
            "personalisation": personalisation(group),
        }
        for name, group in groups
    ]
    return pl.DataFrame(rows).sort(pl.col("segment") != "all", "segment")


COVERAGE_LEVELS = (0.1, 0.5, 0.9)


def purchase_ranks(ranked: pl.DataFrame, purchases: pl.DataFrame, popularity_order: pl.DataFrame) -> pl.Series:
    """The rank of every purchased (customer, article) pair in the customer's full ranking of the catalogue: the
    recommender's own list first (ranked: customer_id, article_id, rank; any depth), then the catalogue by
    popularity (popularity_order: article_id, popularity 1..N, strict), the tail every recommender shares. A pair
    outside the list gets depth + its popularity position, an upper bound at most `depth` above the exact
    position (list articles ahead of it in popularity are counted twice); unknown articles rank last."""
    pairs = purchases.select("customer_id", "article_id").unique()
    depth = ranked.group_by("customer_id").agg(pl.col("rank").max().alias("_depth"))
    last = popularity_order.height + 1
    return (
        pairs.join(ranked.select("customer_id", "article_id", "rank"), on=["customer_id", "article_id"], how="left")
        .join(depth, on="customer_id", how="left")
        .join(popularity_order.select("article_id", "popularity"), on="article_id", how="left")
        .select(
            pl.coalesce(
                pl.col("rank").cast(pl.Int64),
                pl.col("_depth").fill_null(0).cast(pl.Int64) + pl.col("popularity").fill_null(last).cast(pl.Int64),
            ).alias("rank")
        )
        .to_series()
    )


def rank_coverage(
    ranks: pl.Series, catalogue_size: int, levels: tuple[float, ...] = COVERAGE_LEVELS
) -> dict[str, float]:
    """Heinz et al.'s rank-coverage figures: how many recommendations per customer cover 10%, 50% and 90% of
    the purchases (the level quantile of their ranks) and the area under the coverage curve (1 = every purchase
    at rank 1, 0.5 = random order of the catalogue)."""
    if ranks.len() == 0 or catalogue_size < 2:
        return {**{f"recs_for_{round(level * 100)}pct": float("nan") for level in levels}, "auc": float("nan")}
    ordered = ranks.sort().cast(pl.Float64)
    figures = {
        f"recs_for_{round(level * 100)}pct": float(ordered[max(int(-(-level * ordered.len() // 1)) - 1, 0)])
        for level in levels
    }
    figures["auc"] = float(1.0 - ((ordered.clip(upper_bound=catalogue_size) - 1) / (catalogue_size - 1)).mean())
    return figures


def popularity_order(article_stats: pl.DataFrame) -> pl.DataFrame:
    """article_id, popularity (1..N, strict): last week's sales, then all-time sales, then article_id."""
    return article_stats.sort(["sales_last_week", "n_sales", "article_id"], descending=[True, True, False]).select(
        "article_id", pl.int_range(1, pl.len() + 1).alias("popularity")
    )
