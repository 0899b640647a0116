"""The heuristic recommenders: global popularity, time-decayed trending per age group, repurchase.

Each returns, for every customer given (or only those `wanted`: age groups and trends still come from every
customer, so a chunk of customers gets the lists it would get among all of them), exactly `k` distinct catalogue
articles as rows (customer_id, rank, article_id, score, source). Short lists are topped up from a fallback ranking
(the customer's age group's trending, then global trending, all-time sales, then catalogue order), so
cold-start customers and thin weeks still get `k` articles. `score` is the producing source's own score.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from hm_recs.core.features import UNKNOWN_AGE_GROUP, age_group, history_until
from hm_recs.core.weeks import shift_weeks, week_end

BASELINES = ("popularity", "trending", "repurchase")
RECS_SCHEMA = {
    "customer_id": pl.String,
    "rank": pl.Int16,
    "article_id": pl.String,
    "score": pl.Float64,
    "source": pl.String,
}


@dataclass(frozen=True)
class BaselineConfig:
    k: int = 12
    trending_weeks: int = 4
    trending_half_life_days: float = 7.0
    repurchase_weeks: int = 8
    repurchase_half_life_days: float = 14.0


def _decay(cutoff: dt.date, half_life_days: float) -> pl.Expr:
    days_before = (pl.lit(cutoff) - pl.col("t_dat")).dt.total_days().cast(pl.Float64)
    return pl.lit(0.5).pow(days_before / half_life_days)


def _top(scored: pl.DataFrame, n: int, by: list[str] | None = None) -> pl.DataFrame:
    """Top-n articles by score (ties by article_id), per group `by` if given."""
    order = (by or []) + ["score", "article_id"]
    ranked = scored.sort(order, descending=[False] * len(by or []) + [True, False])
    return ranked.group_by(by, maintain_order=True).head(n) if by else ranked.head(n)


def fallback_ranking(history: pl.DataFrame, articles: pl.DataFrame, week: dt.date, cfg: BaselineConfig) -> pl.DataFrame:
    """A global ranking of at least 2k articles: trending, then all-time sales, then catalogue order."""
    n = 2 * cfg.k
    trending = global_trending(history, week, cfg)
    all_time = history.group_by("article_id").agg(pl.len().cast(pl.Float64).alias("score"))
    catalogue = articles.select("article_id").sort("article_id").head(3 * n).with_columns(pl.lit(0.0).alias("score"))
    if articles.height < cfg.k:
        raise ValueError(f"the catalogue has {articles.height} articles, fewer than k={cfg.k}")
    tiers = [
        _top(trending, n).with_columns(pl.lit(0).alias("tier"), pl.lit("trending").alias("source")),
        _top(all_time, n).with_columns(pl.lit(1).alias("tier"), pl.lit("popularity").alias("source")),
        catalogue.with_columns(pl.lit(2).alias("tier"), pl.lit("catalogue").alias("source")),
    ]
    return (
        pl.concat([t.select("article_id", "score", "tier", "source") for t in tiers])
        .unique(subset="article_id", keep="first", maintain_order=True)
        .head(n)
        .with_columns(pl.int_range(pl.len()).alias("order"))
    )


def _complete(
    own: pl.DataFrame, customers: pl.DataFrame, group_lists: pl.DataFrame | None, fallback: pl.DataFrame, k: int
) -> pl.DataFrame:
    """Per customer: own rows first, then the customer's group list, then the fallback; k distinct articles.

    own: customer_id, article_id, score, source. group_lists: group, article_id, score, source.
    customers: customer_id, group.
    """
    parts = [
        own.select("customer_id", "article_id", "score", "source").with_columns(
            pl.lit(0).alias("priority"), (-pl.col("score")).alias("order")
        )
    ]
    if group_lists is not None:
        grouped = customers.join(group_lists, on="group", how="inner")
        parts.append(
            grouped.select("customer_id", "article_id", "score", "source").with_columns(
                pl.lit(1).alias("priority"), (-pl.col("score")).alias("order")
            )
        )
    need = customers.select("customer_id")
    parts.append(
        need.join(fallback.select("article_id", "score", "source", pl.col("order").cast(pl.Float64)), how="cross")
        .with_columns(pl.lit(2).alias("priority"))
        .select("customer_id", "article_id", "score", "source", "priority", "order")
    )
    return (
        pl.concat(parts, how="vertical_relaxed")
        .sort("customer_id", "priority", "order", "article_id")
        .unique(subset=["customer_id", "article_id"], keep="first", maintain_order=True)
        .group_by("customer_id", maintain_order=True)
        .head(k)
        .with_columns(pl.int_range(1, pl.len() + 1).over("customer_id").cast(pl.Int16).alias("rank"))
        .select(list(RECS_SCHEMA))
        .cast(RECS_SCHEMA)
    )


def global_trending(history: pl.DataFrame, week: dt.date, cfg: BaselineConfig) -> pl.DataFrame:
    start = shift_weeks(week, -(cfg.trending_weeks - 1))
    return (
        history.filter(pl.col("t_dat") >= pl.lit(start))
        .with_columns(_decay(week_end(week), cfg.trending_half_life_days).alias("w"))
        .group_by("article_id")
        .agg(pl.col("w").sum().alias("score"))
    )


def _only(customers: pl.DataFrame, wanted: pl.Series | None) -> pl.DataFrame:
    """The rows of `customers` whose lists are asked for (all when `wanted` is None)."""
    return customers if wanted is None else customers.filter(pl.col("customer_id").is_in(wanted.implode()))


def popularity(
    customers, history, articles, week, cfg: BaselineConfig = BaselineConfig(), wanted: pl.Series | None = None
) -> pl.DataFrame:
    """The k best sellers of the last week, the same for everyone."""
    return WeekBaselines.build(customers, history, articles, week, cfg).popularity(customers, wanted)


def _age_groups(customers: pl.DataFrame) -> pl.DataFrame:
    return customers.select("customer_id", age_group(pl.col("age")).alias("group"))


def trending_lists(history: pl.DataFrame, customers: pl.DataFrame, week: dt.date, cfg: BaselineConfig) -> pl.DataFrame:
    """Time-decayed sales of the last `trending_weeks` per buyer age group: group, article_id, score, source."""
    start = shift_weeks(week, -(cfg.trending_weeks - 1))
    per_group = (
        history.filter(pl.col("t_dat") >= pl.lit(start))
        .join(_age_groups(customers), on="customer_id", how="left")
        .with_columns(
            pl.col("group").fill_null(UNKNOWN_AGE_GROUP), _decay(week_end(week), cfg.trending_half_life_days).alias("w")
        )
        .group_by("group", "article_id")
        .agg(pl.col("w").sum().alias("score"))
        .filter(pl.col("group") != UNKNOWN_AGE_GROUP)
    )
    return _top(per_group, 2 * cfg.k, by=["group"]).with_columns(pl.lit("trending").alias("source"))


def trending(
    customers, history, articles, week, cfg: BaselineConfig = BaselineConfig(), wanted: pl.Series | None = None
) -> pl.DataFrame:
    """Each customer gets their age group's trending articles (unknown age: global trending)."""
    return WeekBaselines.build(customers, history, articles, week, cfg).trending(customers, wanted)


def repurchase(
    customers, history, articles, week, cfg: BaselineConfig = BaselineConfig(), wanted: pl.Series | None = None
) -> pl.DataFrame:
    """The customer's own recent articles (recency-weighted), topped up with their age group's trending."""
    return WeekBaselines.build(customers, history, articles, week, cfg).repurchase(customers, wanted)


@dataclass(frozen=True)
class TopUpLists:
    """What short lists are completed from, built once for a week: the age groups' trending lists and the
    fallback ranking. A stage that tops up many customer chunks builds it once and needs no history after."""

    group_lists: pl.DataFrame  # group, article_id, score, source (`trending_lists`)
    fallback: pl.DataFrame  # article_id, score, tier, source, order (`fallback_ranking`)
    k: int

    @classmethod
    def build(
        cls,
        customers: pl.DataFrame,
        history: pl.DataFrame,
        articles: pl.DataFrame,
        week: dt.date,
        cfg: BaselineConfig = BaselineConfig(),
    ) -> TopUpLists:
        history = history_until(history, week)
        return cls(trending_lists(history, customers, week, cfg), fallback_ranking(history, articles, week, cfg), cfg.k)

    def complete(self, own: pl.DataFrame, customers: pl.DataFrame, wanted: pl.Series | None = None) -> pl.DataFrame:
        """Every customer of `customers` (or of `wanted`) gets k distinct articles: their `own` rows (customer_id,
        article_id, score, source; best score first), then their age group's trending articles, then the
        fallback ranking."""
        return _complete(own, _age_groups(_only(customers, wanted)), self.group_lists, self.fallback, self.k)


def top_up(
    own: pl.DataFrame,
    customers: pl.DataFrame,
    history: pl.DataFrame,
    articles: pl.DataFrame,
    week: dt.date,
    cfg: BaselineConfig = BaselineConfig(),
    wanted: pl.Series | None = None,
) -> pl.DataFrame:
    """`TopUpLists.complete` with the lists built from `history` as of `week`: how the repurchase baseline
    completes its lists."""
    return TopUpLists.build(customers, history, articles, week, cfg).complete(own, customers, wanted)


@dataclass(frozen=True)
class WeekBaselines:
    """What the baselines' lists are made of at a week, built once from the history: the last week's best
    sellers, every customer's recency-weighted articles of the last `repurchase_weeks` and the top-up lists. A
    stage that builds the lists of many customer chunks builds this once: each chunk's lists are what the
    baseline functions give those customers (`baseline_recommendations` rebuilt all of it per chunk before)."""

    best_sellers: pl.DataFrame  # article_id, score, source: the last week's top k
    recent: pl.DataFrame  # customer_id, article_id, score, source: every customer's repurchase scores
    top_up: TopUpLists
    k: int

    @classmethod
    def build(
        cls,
        customers: pl.DataFrame,
        history: pl.DataFrame,
        articles: pl.DataFrame,
        week: dt.date,
        cfg: BaselineConfig = BaselineConfig(),
    ) -> WeekBaselines:
        history = history_until(history, week)
        last_week = history.filter(pl.col("t_dat") >= pl.lit(week))
        best = _top(last_week.group_by("article_id").agg(pl.len().cast(pl.Float64).alias("score")), cfg.k)
        recent = (
            history.filter(pl.col("t_dat") >= pl.lit(shift_weeks(week, -(cfg.repurchase_weeks - 1))))
            .join(customers.select("customer_id"), on="customer_id", how="semi")
            .with_columns(_decay(week_end(week), cfg.repurchase_half_life_days).alias("w"))
            .group_by("customer_id", "article_id")
            .agg(pl.col("w").sum().alias("score"))
            .with_columns(pl.lit("repurchase").alias("source"))
        )
        top_up = TopUpLists.build(customers, history, articles, week, cfg)
        return cls(best.with_columns(pl.lit("popularity").alias("source")), recent, top_up, cfg.k)

    def popularity(self, customers: pl.DataFrame, wanted: pl.Series | None = None) -> pl.DataFrame:
        ids = _only(customers, wanted).select("customer_id")
        return _complete(ids.join(self.best_sellers, how="cross"), ids, None, self.top_up.fallback, self.k)

    def trending(self, customers: pl.DataFrame, wanted: pl.Series | None = None) -> pl.DataFrame:
        empty_own = pl.DataFrame(
            schema={"customer_id": pl.String, "article_id": pl.String, "score": pl.Float64, "source": pl.String}
        )
        return self.top_up.complete(empty_own, customers, wanted)

    def repurchase(self, customers: pl.DataFrame, wanted: pl.Series | None = None) -> pl.DataFrame:
        own = self.recent.join(_only(customers, wanted).select("customer_id"), on="customer_id", how="semi")
        return self.top_up.complete(own, customers, wanted)

    def lists(self, customers: pl.DataFrame, wanted: pl.Series | None = None) -> pl.DataFrame:
        """Every baseline's lists of `customers` (or of `wanted`), stacked with a `recommender` column."""
        built = {"popularity": self.popularity, "trending": self.trending, "repurchase": self.repurchase}
        return pl.concat(
            [built[name](customers, wanted).with_columns(pl.lit(name).alias("recommender")) for name in BASELINES]
        ).select("recommender", *RECS_SCHEMA)


RECOMMENDERS = {"popularity": popularity, "trending": trending, "repurchase": repurchase}


def recommend_all(
    customers, history, articles, week, cfg: BaselineConfig = BaselineConfig(), wanted: pl.Series | None = None
) -> pl.DataFrame:
    """Every baseline's recommendations, stacked with a `recommender` column."""
    return WeekBaselines.build(customers, history, articles, week, cfg).lists(customers, wanted)
