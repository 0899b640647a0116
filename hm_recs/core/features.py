"""Customer and article features as of the end of a week (nothing after its Tuesday is read)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from hm_recs.core.schema import INDEX_GROUP_SHARES
from hm_recs.core.weeks import shift_weeks, week_end

AGE_GROUPS: tuple[tuple[int, int, str], ...] = (
    (16, 24, "16-24"),
    (25, 34, "25-34"),
    (35, 49, "35-49"),
    (50, 200, "50+"),
)
UNKNOWN_AGE_GROUP = "unknown"
SEASONS = {
    12: "winter",
    1: "winter",
    2: "winter",
    3: "spring",
    4: "spring",
    5: "spring",
    6: "summer",
    7: "summer",
    8: "summer",
    9: "autumn",
    10: "autumn",
    11: "autumn",
}
ONLINE_CHANNEL = 2


@dataclass(frozen=True)
class FeatureConfig:
    recent_weeks: int = 4  # "recent purchase count" window


def age_group(age: pl.Expr) -> pl.Expr:
    expr = pl.when(age.is_null()).then(pl.lit(UNKNOWN_AGE_GROUP))
    for low, high, name in AGE_GROUPS:
        expr = expr.when(age.is_between(low, high)).then(pl.lit(name))
    return expr.otherwise(pl.lit(UNKNOWN_AGE_GROUP))


def season(day: pl.Expr) -> pl.Expr:
    return day.dt.month().replace_strict(SEASONS, return_dtype=pl.String)


def history_until(transactions: pl.DataFrame, week: dt.date) -> pl.DataFrame:
    """Transactions up to and including `week`'s Tuesday: the only data building `week` may use."""
    return transactions.filter(pl.col("t_dat") <= pl.lit(week_end(week)))


def _favourite(purchases: pl.DataFrame, key: str, column: str, alias: str) -> pl.DataFrame:
    """Most frequent `column` per `key` (ties broken by name, so it is deterministic)."""
    return (
        purchases.group_by(key, column)
        .agg(pl.len().alias("_n"))
        .sort([key, "_n", column], descending=[False, True, False])
        .group_by(key, maintain_order=True)
        .first()
        .select(key, pl.col(column).alias(alias))
    )


CUSTOMER_ROW = "_customer_row"


def customer_features(
    customers: pl.DataFrame,
    transactions: pl.DataFrame,
    articles: pl.DataFrame,
    week: dt.date,
    config: FeatureConfig = FeatureConfig(),
) -> pl.DataFrame:
    """One row per customer of `customers`; customers without purchases get zero counts and null favourites."""
    cutoff = week_end(week)
    # the three group-bys below key on each customer's row number, not the 64-character id: the ids are hashed
    # once here instead of once per group-by (at H&M's size 3.7 s -> 1.8 s for a favourite over 26 weeks). Only
    # `customers`' purchases are kept: another customer's aggregates would be dropped by the join to them anyway.
    rows = customers.select("customer_id").with_row_index(CUSTOMER_ROW)
    history = (
        history_until(transactions, week)
        .join(rows, on="customer_id", how="inner")
        .join(
            articles.select("article_id", "colour_group_name", "garment_group_name", "index_group_name"),
            on="article_id",
            how="left",
        )
    )
    recent_start = shift_weeks(week, -(config.recent_weeks - 1))
    aggregates = history.group_by(CUSTOMER_ROW).agg(
        pl.len().alias("n_purchases"),
        (pl.col("t_dat") >= pl.lit(recent_start)).sum().alias("n_purchases_recent"),
        (pl.lit(cutoff) - pl.col("t_dat").max()).dt.total_days().alias("days_since_last_purchase"),
        pl.col("price").mean().alias("mean_price"),
        (pl.col("sales_channel_id") == ONLINE_CHANNEL).mean().alias("online_share"),
        *[
            pl.col("index_group_name").fill_null("").str.contains(pattern).mean().alias(name)
            for name, pattern in INDEX_GROUP_SHARES.items()
        ],
    )
    features = (
        customers.select("customer_id", "age")
        .with_row_index(CUSTOMER_ROW)
        .with_columns(age_group(pl.col("age")).alias("age_group"))
        .join(aggregates, on=CUSTOMER_ROW, how="left")
        .join(_favourite(history, CUSTOMER_ROW, "colour_group_name", "favourite_colour"), on=CUSTOMER_ROW, how="left")
        .join(
            _favourite(history, CUSTOMER_ROW, "garment_group_name", "favourite_garment_group"),
            on=CUSTOMER_ROW,
            how="left",
        )
        .with_columns(
            pl.col("n_purchases", "n_purchases_recent").fill_null(0).cast(pl.Int64),
            pl.col("online_share", *INDEX_GROUP_SHARES).fill_null(0.0),
        )
    )
    return features.select(CUSTOMER_FEATURE_COLUMNS)


CUSTOMER_FEATURE_COLUMNS = [
    "customer_id",
    "age",
    "age_group",
    "n_purchases",
    "n_purchases_recent",
    "days_since_last_purchase",
    "mean_price",
    "online_share",
    *INDEX_GROUP_SHARES,
    "favourite_colour",
    "favourite_garment_group",
]
CUSTOMER_FEATURES_NOT_NULL = [
    "customer_id",
    "age_group",
    "n_purchases",
    "n_purchases_recent",
    "online_share",
    *INDEX_GROUP_SHARES,
]


def article_features(
    articles: pl.DataFrame,
    transactions: pl.DataFrame,
    customers: pl.DataFrame,
    week: dt.date,
) -> pl.DataFrame:
    """One row per catalogue article: popularity and trend, price, channel, season and age-group preference."""
    history = history_until(transactions, week)
    previous = shift_weeks(week, -1)
    target_season = SEASONS[shift_weeks(week, 1).month]
    with_age = history.join(
        customers.select("customer_id", age_group(pl.col("age")).alias("age_group")), on="customer_id", how="left"
    )
    sales = history.group_by("article_id").agg(
        pl.len().alias("n_sales"),
        (pl.col("t_dat") >= pl.lit(week)).sum().alias("sales_last_week"),
        pl.col("t_dat").is_between(pl.lit(previous), pl.lit(week_end(previous))).sum().alias("sales_previous_week"),
        pl.col("price").mean().alias("mean_price"),
        (pl.col("sales_channel_id") == ONLINE_CHANNEL).mean().alias("online_share"),
        (season(pl.col("t_dat")) == target_season).mean().alias("seasonal_share"),
        pl.col("t_dat").min().alias("first_sale"),
    )
    # Age-group preference: the group whose share of the article's buyers most exceeds its share overall.
    group_share = (
        with_age.group_by("age_group")
        .agg(pl.len().alias("_g"))
        .with_columns((pl.col("_g") / pl.col("_g").sum()).alias("_overall"))
    )
    preference = (
        with_age.group_by("article_id", "age_group")
        .agg(pl.len().alias("_n"))
        .with_columns((pl.col("_n") / pl.col("_n").sum().over("article_id")).alias("_share"))
        .join(group_share, on="age_group")
        .with_columns((pl.col("_share") / pl.col("_overall")).alias("_lift"))
        .sort(["article_id", "_lift", "age_group"], descending=[False, True, False])
        .group_by("article_id", maintain_order=True)
        .first()
        .select("article_id", pl.col("age_group").alias("preferred_age_group"))
    )
    features = (
        articles.select("article_id")
        .join(sales, on="article_id", how="left")
        .join(preference, on="article_id", how="left")
        .with_columns(pl.col("n_sales", "sales_last_week", "sales_previous_week").fill_null(0).cast(pl.Int64))
        .with_columns(
            ((pl.col("sales_last_week") + 1) / (pl.col("sales_previous_week") + 1)).alias("trend"),
            pl.col("sales_last_week").rank("min", descending=True).cast(pl.Int64).alias("popularity_rank"),
            (pl.lit(week_end(week)) - pl.col("first_sale")).dt.total_days().alias("days_on_sale"),
        )
    )
    return features.select(ARTICLE_FEATURE_COLUMNS)


ARTICLE_FEATURE_COLUMNS = [
    "article_id",
    "n_sales",
    "sales_last_week",
    "sales_previous_week",
    "trend",
    "popularity_rank",
    "mean_price",
    "online_share",
    "seasonal_share",
    "preferred_age_group",
    "first_sale",
    "days_on_sale",
]
ARTICLE_FEATURES_NOT_NULL = [
    "article_id",
    "n_sales",
    "sales_last_week",
    "sales_previous_week",
    "trend",
    "popularity_rank",
]
