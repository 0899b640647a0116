"""What kind of shop a data set is: the statistics that decide which recommenders can work on it.

Measured on the raw H&M-layout tables (articles; transactions with ``t_dat``, ``customer_id``,
``article_id``) of any shop, real or generated, so that a generator profile can be checked against the
real shops it imitates (docs/benchmarks.md, issue 18):

- **re-buy share**: of a week's distinct customer-article purchases, the share of articles the customer
  had bought before (in the data) -- where it is high, repurchase is a strong baseline and a model must
  know what the customer bought;
- **articles per attribute combination**: catalogue size over the distinct combinations of the given
  attribute columns -- where it is high, attributes cannot tell articles apart;
- **weeks with a purchase**: per customer who bought at all, the share of the weeks since the first
  purchase in which they bought (median over customers);
- **demand shifts**: article-weeks selling at least ``factor`` times the article's usual weekly units
  (the median of the weeks before).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import polars as pl

from hm_recs.core.weeks import week_expr

__all__ = [
    "ShopStatistics",
    "articles_per_attribute_combination",
    "buying_weeks_share",
    "demand_shifts",
    "rebuy_share_by_week",
    "shop_statistics",
    "trending_share_by_week",
    "as_date",
]


def as_date(day: pl.Expr) -> pl.Expr:
    """``t_dat`` as a Date whether it was read as text (CSV) or as a date."""
    return day.cast(pl.String).str.slice(0, 10).str.to_date("%Y-%m-%d")


def _weekly_pairs(transactions: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Distinct (week, customer_id, article_id) of the transactions."""
    return (
        transactions.lazy()
        .select(week_expr(as_date(pl.col("t_dat"))).alias("week"), "customer_id", "article_id")
        .unique()
    )


def rebuy_share_by_week(transactions: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Per week: distinct customer-article purchases (``pairs``), how many the customer had bought in an
    earlier week (``rebuys``), and their ``share``.  The first week has no earlier week and counts none."""
    pairs = _weekly_pairs(transactions)
    first = pairs.group_by("customer_id", "article_id").agg(pl.col("week").min().alias("first_week"))
    return (
        pairs.join(first, on=["customer_id", "article_id"])
        .group_by("week")
        .agg(pl.len().alias("pairs"), (pl.col("week") > pl.col("first_week")).sum().alias("rebuys"))
        .with_columns((pl.col("rebuys") / pl.col("pairs")).alias("share"))
        .sort("week")
        .collect()
    )


def trending_share_by_week(transactions: pl.LazyFrame | pl.DataFrame, weeks: Sequence[dt.date]) -> dict[str, float]:
    """For each of `weeks` after the first: the share of its purchase rows whose article was among the previous
    week's 12 best sellers (by rows; ties by article_id), as {week: share}."""
    rows = transactions.lazy().select(as_date(pl.col("t_dat")).alias("t_dat"), "article_id")

    def week_rows(start: dt.date) -> pl.LazyFrame:
        return rows.filter(pl.col("t_dat").is_between(start, start + dt.timedelta(weeks=1), closed="left"))

    shares = {}
    for previous, week in itertools.pairwise(weeks):
        top = week_rows(previous).group_by("article_id").len().sort(["len", "article_id"], descending=[True, False])
        top_ids = top.head(12).collect()["article_id"].implode()
        n, in_top = week_rows(week).select(pl.len(), pl.col("article_id").is_in(top_ids).sum()).collect().row(0)
        shares[str(week)] = in_top / n if n else float("nan")
    return shares


def articles_per_attribute_combination(articles: pl.DataFrame, columns: Sequence[str]) -> float:
    """Articles over distinct combinations of ``columns`` (1.0: every article has its own)."""
    combinations = articles.select(list(columns)).unique().height
    return articles.height / combinations if combinations else 0.0


def buying_weeks_share(transactions: pl.LazyFrame | pl.DataFrame) -> float:
    """Median over customers who bought, of the share of weeks from their first purchase week to the
    data's last week in which they bought."""
    pairs = _weekly_pairs(transactions)
    weeks = pairs.select("week").unique().sort("week").with_row_index("n")
    per_customer = (
        pairs.select("customer_id", "week")
        .unique()
        .join(weeks, on="week")
        .group_by("customer_id")
        .agg(pl.len().alias("bought"), pl.col("n").min().alias("first"))
        .with_columns(total=weeks.select(pl.len()).collect().item())
        .select((pl.col("bought") / (pl.col("total") - pl.col("first"))).alias("share"))
        .collect()
    )
    return float(per_customer["share"].median()) if per_customer.height else 0.0


def demand_shifts(
    transactions: pl.LazyFrame | pl.DataFrame,
    factor: float = 10.0,
    usual_weeks: int = 4,
    min_units: int = 20,
    min_share: float = 0.002,
) -> pl.DataFrame:
    """Article-weeks that sold at least ``factor`` times the article's usual weekly units (the median of the
    ``usual_weeks`` weeks before, in each of which it sold: an established article, not a launch; the median,
    so that a shift's second week still counts), at least ``min_units`` and at least ``min_share`` of the week's
    units (a shift that changes what the week's lists should hold, not a rarely sold article's noise): week,
    article_id, units, usual; sorted by week, then units."""
    units = (
        transactions.lazy()
        .group_by(week_expr(as_date(pl.col("t_dat"))).alias("week"), "article_id")
        .agg(pl.len().alias("units"))
        .collect()
    )
    weeks = units.select("week").unique().sort("week")["week"].to_list()
    position = {week: i for i, week in enumerate(weeks)}
    indexed = units.with_columns(
        pl.col("week").replace_strict(position, return_dtype=pl.Int64).alias("n"),
        pl.col("units").sum().over("week").alias("week_units"),
    )
    lagged = pl.concat(
        [indexed.select("article_id", (pl.col("n") + lag).alias("n"), "units") for lag in range(1, usual_weeks + 1)]
    )
    before = lagged.group_by("article_id", "n").agg(
        pl.col("units").median().alias("usual"), pl.len().alias("weeks_sold")
    )
    return (
        indexed.join(before, on=["article_id", "n"])
        .filter(
            (pl.col("weeks_sold") == usual_weeks)
            & (pl.col("units") >= min_units)
            & (pl.col("units") >= factor * pl.col("usual"))
            & (pl.col("units") >= min_share * pl.col("week_units"))
        )
        .select("week", "article_id", "units", "usual")
        .sort("week", "units", descending=[False, True])
    )


@dataclass(frozen=True)
class ShopStatistics:
    """The profile of a shop (see the module docstring); ``as_dict`` for reports."""

    customers_who_bought: int
    articles: int
    transactions: int
    rebuy_share_mean: float  # over the weeks after the first
    rebuy_share_min: float
    rebuy_share_max: float
    articles_per_attribute_combination: float
    buying_weeks_share_median: float
    demand_shift_weeks: tuple[str, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def shop_statistics(
    articles: pl.DataFrame,
    transactions: pl.LazyFrame | pl.DataFrame,
    attribute_columns: Sequence[str],
    last_weeks: int | None = None,
) -> ShopStatistics:
    """All statistics of a shop; the re-buy share over its ``last_weeks`` weeks (all but the first when
    None), counting earlier purchases over the whole data."""
    rebuys = rebuy_share_by_week(transactions).slice(1)
    if last_weeks:
        rebuys = rebuys.tail(last_weeks)
    tx = transactions.lazy()
    shifts = demand_shifts(tx)
    return ShopStatistics(
        customers_who_bought=tx.select(pl.col("customer_id").n_unique()).collect().item(),
        articles=articles.height,
        transactions=tx.select(pl.len()).collect().item(),
        rebuy_share_mean=float(rebuys["share"].mean() or 0.0),
        rebuy_share_min=float(rebuys["share"].min() or 0.0),
        rebuy_share_max=float(rebuys["share"].max() or 0.0),
        articles_per_attribute_combination=articles_per_attribute_combination(articles, attribute_columns),
        buying_weeks_share_median=buying_weeks_share(tx),
        demand_shift_weeks=tuple(sorted({w.isoformat() for w in shifts["week"].to_list()})),
    )
