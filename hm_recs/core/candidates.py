"""Candidate generation, the first stage of the two-stage recommender: for week W (built from the history
up to W's Tuesday, recommending for week W+1) a pool of about 100 articles per customer for the ranker.

Sources (``SOURCES``, in this order everywhere):

* ``repurchase``   the customer's own purchases of the last ``repurchase_weeks`` weeks, score = sum of
                   recency weights ``0.5 ** (days before W's Tuesday / repurchase_half_life_days)``.
* ``trending``     the customer's age group's time-decayed sales of the last ``trending_weeks`` weeks
                   (``baselines.trending_lists``); customers of unknown age get the global trending list.
* ``copurchase``   articles bought together with the customer's recent articles. A basket is one customer's
                   distinct articles of one day (H&M has no basket id), counted over the last
                   ``copurchase_weeks`` weeks (baskets over ``copurchase_max_basket`` articles left out).
                   strength(a -> b) = baskets with a and b / baskets with a (P(b | a)), pairs seen in at least
                   ``copurchase_min_baskets`` baskets, the ``copurchase_partners`` strongest per article;
                   score(customer, b) = sum over the customer's recent articles a of weight(a) * strength(a -> b)
                   with weight(a) the repurchase recency weight.
* ``same_product`` other colours/sizes (same ``product_code``) of the customer's recent articles, score = the
                   article's sales (rows) in the last ``same_product_sales_weeks`` weeks, 0 if none.
* ``two_tower``, ``sequence``  model retrieval, passed in as frames (customer_id, article_id, score, rank):
                   the rows with rank <= the source's limit, the model's own score and rank kept.
* ``fallback``     top-up only: a customer left with fewer than ``min_per_customer`` articles gets the next
                   articles of ``baselines.fallback_ranking`` (global trending, all-time sales, catalogue order);
                   its score is that tier's (decayed sales, sales, 0), so its rank is the signal.

"Recent articles" are the repurchase rows; ``copurchase`` and ``same_product`` propose only articles the
customer did not buy in that window (those are ``repurchase``'s). Each source keeps its best ``<source>``
(config) articles per customer, ranked by score as the Float32 shown (ties: article_id). The union is capped at
``max_per_customer``, keeping the articles with the best rank in any source (ties: more sources, article_id),
so the cap takes every source's top evenly.

Output (``candidate_columns()``): one row per (customer_id, article_id), sorted by customer and that order:
``customer_id, article_id, sources, n_sources, from_<source>... , <source>_score..., <source>_rank...``.
``sources`` joins the sources' names with "+" in ``SOURCES`` order ("repurchase+copurchase"), for CRM;
scores (Float32) and ranks (Int16, 1 = best) are null where the source did not propose the article; scores
are comparable within a source only.

Time: everything is cut at W's Tuesday (``features.history_until``); model frames are the caller's (built at
W). Scale: ``candidate_pools`` computes the customer-independent tables of the week once;
``customer_candidates`` builds the rows of any subset of customers from them (the caller chunks: 1.37M
customers x 100 = 137M rows); inside, customers and articles are integer indexes. Nothing joins customers
with the catalogue; every step is vectorised polars. Deterministic: total orders everywhere, and this module's
sums are order-independent (``fixed_sum``; trending's come from ``baselines`` and rank as Float32), so
shuffled input or another thread count gives the same frame.

Recall (``candidate_recall``): the share of next week's bought (customer, article) pairs that the union and
each source cover.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from hm_recs.core.baselines import (
    BaselineConfig,
    _age_groups,
    _decay,
    _top,
    fallback_ranking,
    global_trending,
    trending_lists,
)
from hm_recs.core.features import UNKNOWN_AGE_GROUP, history_until
from hm_recs.core.weeks import shift_weeks, week_end

HEURISTIC_SOURCES: tuple[str, ...] = ("repurchase", "trending", "copurchase", "same_product")
MODEL_SOURCES: tuple[str, ...] = ("two_tower", "sequence")
FALLBACK = "fallback"
SOURCES: tuple[str, ...] = (*HEURISTIC_SOURCES, *MODEL_SOURCES, FALLBACK)
SCORE_TYPE = pl.Float32
RANK_TYPE = pl.Int16
UNION = "union"


@dataclass(frozen=True)
class CandidateConfig:
    # articles per customer, per source (model sources: the best `rank`s of the frame passed in)
    repurchase: int = 24
    trending: int = 24
    copurchase: int = 24
    same_product: int = 12
    two_tower: int = 30
    sequence: int = 30
    # the union per customer
    max_per_customer: int = 100
    min_per_customer: int = 12  # topped up from the fallback ranking
    # repurchase (and the "recent articles" that seed copurchase and same_product)
    repurchase_weeks: int = 8
    repurchase_half_life_days: float = 14.0
    # trending by age group
    trending_weeks: int = 4
    trending_half_life_days: float = 7.0
    # copurchase
    copurchase_weeks: int = 8
    copurchase_max_basket: int = 30
    copurchase_min_baskets: int = 2
    copurchase_partners: int = 20
    # same product
    same_product_sales_weeks: int = 4

    def limit(self, source: str) -> int:
        return getattr(self, source)

    def baseline(self, k: int) -> BaselineConfig:
        """The baseline recommenders' config with this config's windows, lists of 2k articles."""
        return BaselineConfig(
            k=k,
            trending_weeks=self.trending_weeks,
            trending_half_life_days=self.trending_half_life_days,
            repurchase_weeks=self.repurchase_weeks,
            repurchase_half_life_days=self.repurchase_half_life_days,
        )

    def validate(self) -> None:
        limits = {s: self.limit(s) for s in SOURCES if s != FALLBACK}
        if any(n < 0 for n in limits.values()):
            raise ValueError(f"per-source limits must be >= 0, got {limits}")
        if not 1 <= self.min_per_customer <= self.max_per_customer:
            raise ValueError(
                f"need 1 <= min_per_customer ({self.min_per_customer}) <= max_per_customer ({self.max_per_customer})"
            )


def candidate_columns() -> list[str]:
    """The output columns of `customer_candidates`, in order."""
    return [
        "customer_id",
        "article_id",
        "sources",
        "n_sources",
        *[f"from_{s}" for s in SOURCES],
        *[f"{s}_score" for s in SOURCES],
        *[f"{s}_rank" for s in SOURCES],
    ]


@dataclass(frozen=True)
class CandidatePools:
    """The customer-independent tables of one week (see `candidate_pools`). Articles are integer indexes
    `a` into `article_ids` (the catalogue's ids, sorted), so the per-customer work joins integers."""

    week: dt.date
    config: CandidateConfig
    article_ids: pl.Series  # a -> article_id
    recent: pl.DataFrame  # customer_id, a, weight: recency-weighted own purchases (repurchase window)
    age_groups: pl.DataFrame  # customer_id, group
    trending: pl.DataFrame  # group, a, score, rank (group UNKNOWN_AGE_GROUP: global trending)
    partners: pl.DataFrame  # a, partner, strength
    products: pl.DataFrame  # a, product_code, sales (recent rows, for same_product)
    fallback: pl.DataFrame  # a, score, rank


_FIXED_POINT = float(1 << 40)


def fixed_sum(values: pl.Expr) -> pl.Expr:
    """A sum that does not depend on the rows' order (a float sum does, in its last bits: enough to swap two
    tied articles between runs or thread counts): values summed as integers of 2^-40 (sums below 2^23)."""
    return (values * _FIXED_POINT).round().cast(pl.Int64).sum() / _FIXED_POINT


def _ranked(scored: pl.DataFrame, n: int, by: str) -> pl.DataFrame:
    """The best n rows per `by` (score desc, then article), with rank 1..n. Scores compare as the Float32
    that the output shows, so ties are ties by what a reader sees, broken by article id."""
    others = [c for c in scored.columns if c != by]
    best = (
        scored.with_columns(pl.col("score").cast(SCORE_TYPE).alias("_key"))
        .group_by(by)
        .agg(pl.col(others).top_k_by(["_key", "a"], n, reverse=[False, True]))
        .explode(others)
        .drop_nulls("a")
    )
    return best.sort([by, pl.col("score").cast(SCORE_TYPE), "a"], descending=[False, True, False]).with_columns(
        (pl.int_range(pl.len()).over(by) + 1).alias("rank")
    )


def _partners(history: pl.DataFrame, week: dt.date, config: CandidateConfig) -> pl.DataFrame:
    """Co-purchase strength P(b | a) over the baskets (customer, day) of the last `copurchase_weeks`."""
    start = shift_weeks(week, -(config.copurchase_weeks - 1))
    lines = (
        history.filter(pl.col("t_dat") >= pl.lit(start))
        .select("customer_id", "t_dat", "a")
        .unique()
        .with_columns(pl.len().over("customer_id", "t_dat").alias("_size"))
    )
    baskets_with = lines.group_by("a").agg(pl.len().alias("n_a"))
    mates = lines.filter(pl.col("_size").is_between(2, config.copurchase_max_basket)).drop("_size")
    pairs = (
        mates.join(mates.rename({"a": "partner"}), on=["customer_id", "t_dat"])
        .filter(pl.col("a") != pl.col("partner"))
        .group_by("a", "partner")
        .agg(pl.len().alias("n_ab"))
        .filter(pl.col("n_ab") >= config.copurchase_min_baskets)
        .join(baskets_with, on="a")
        .with_columns((pl.col("n_ab") / pl.col("n_a")).alias("strength"))
    )
    return (
        pairs.sort(["a", "strength", "partner"], descending=[False, True, False])
        .filter(pl.int_range(pl.len()).over("a") < config.copurchase_partners)
        .select("a", "partner", "strength")
    )


def _article_index(article_ids: pl.Series, frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with article_id replaced by its index `a` (rows of articles outside the catalogue dropped)."""
    index = pl.DataFrame({"article_id": article_ids, "a": pl.int_range(article_ids.len(), dtype=pl.UInt32, eager=True)})
    return frame.join(index, on="article_id").drop("article_id")


def candidate_pools(
    customers: pl.DataFrame,
    transactions: pl.DataFrame,
    articles: pl.DataFrame,
    week: dt.date,
    config: CandidateConfig = CandidateConfig(),
) -> CandidatePools:
    """Everything about week W that does not depend on which customers are asked for: recent purchases,
    trending lists, co-purchase partners, product families and the fallback ranking.

    customers: the whole customer table (customer_id, age): buyers' ages make the age-group trending.
    transactions: t_dat, customer_id, article_id (any span; rows after W's Tuesday are ignored).
    articles: the catalogue (article_id, product_code); candidates are catalogue articles only.
    """
    config.validate()
    history = history_until(transactions.select("t_dat", "customer_id", "article_id"), week)
    article_ids = articles["article_id"].unique().sort()
    indexed = _article_index(article_ids, history)
    cutoff = week_end(week)
    recent = (
        indexed.filter(pl.col("t_dat") >= pl.lit(shift_weeks(week, -(config.repurchase_weeks - 1))))
        .with_columns(_decay(cutoff, config.repurchase_half_life_days).alias("weight"))
        .group_by("customer_id", "a")
        .agg(fixed_sum(pl.col("weight")).alias("weight"))
    )
    n_trending = max(config.trending, 1)
    baseline = config.baseline(k=-(-n_trending // 2))  # trending_lists keeps 2k per group
    by_group = trending_lists(history, customers, week, baseline).select("group", "article_id", "score")
    overall = _top(global_trending(history, week, baseline), n_trending).with_columns(
        pl.lit(UNKNOWN_AGE_GROUP).alias("group")
    )
    trending = _ranked(
        _article_index(article_ids, pl.concat([by_group, overall.select(by_group.columns)])), config.trending, "group"
    )
    sales_start = shift_weeks(week, -(config.same_product_sales_weeks - 1))
    sales = indexed.filter(pl.col("t_dat") >= pl.lit(sales_start)).group_by("a").agg(pl.len().alias("sales"))
    catalogue = articles.select("article_id", "product_code").unique("article_id", keep="first", maintain_order=True)
    products = (
        _article_index(article_ids, catalogue)
        .join(sales, on="a", how="left")
        .with_columns(pl.col("sales").fill_null(0).cast(pl.Float64))
    )
    fallback = _article_index(
        article_ids,
        fallback_ranking(history, articles, week, config.baseline(k=config.min_per_customer)).select(
            "article_id", "score", (pl.col("order") + 1).alias("rank")
        ),
    )
    return CandidatePools(
        week=week,
        config=config,
        article_ids=article_ids,
        recent=recent,
        age_groups=_age_groups(customers),
        trending=trending,
        partners=_partners(indexed, week, config),
        products=products,
        fallback=fallback,
    )


def _as_ids(customer_ids: pl.DataFrame | pl.Series | list[str]) -> pl.DataFrame:
    """customer_id (sorted, distinct) and its index `c`."""
    if isinstance(customer_ids, pl.DataFrame):
        customer_ids = customer_ids["customer_id"]
    ids = pl.Series("customer_id", customer_ids, dtype=pl.String).unique().sort()
    return pl.DataFrame({"customer_id": ids, "c": pl.int_range(ids.len(), dtype=pl.UInt32, eager=True)})


_PAIR_BASE = 1 << 32


def _pair(customer: str = "c", article: str = "a") -> pl.Expr:
    """One UInt64 key per (customer index, article index): joins and groupings on it are twice as fast."""
    return (pl.col(customer).cast(pl.UInt64) * _PAIR_BASE + pl.col(article).cast(pl.UInt64)).alias("k")


def _unpair() -> list[pl.Expr]:
    return [
        (pl.col("k") // _PAIR_BASE).cast(pl.UInt32).alias("c"),
        (pl.col("k") % _PAIR_BASE).cast(pl.UInt32).alias("a"),
    ]


def _source_frames(
    pools: CandidatePools, ids: pl.DataFrame, models: dict[str, pl.DataFrame | None]
) -> dict[str, pl.DataFrame]:
    """Per source (fallback excepted): k (the pair key), <source>_score, <source>_rank for the customers `ids`."""
    cfg = pools.config
    seeds = pools.recent.join(ids, on="customer_id").select("c", "a", "weight", _pair())
    frames = {"repurchase": _ranked(seeds.rename({"weight": "score"}), cfg.repurchase, "c")}

    groups = ids.join(pools.age_groups, on="customer_id", how="left").with_columns(
        pl.col("group").fill_null(UNKNOWN_AGE_GROUP)
    )
    frames["trending"] = groups.join(pools.trending, on="group")

    copurchase = (
        seeds.join(pools.partners, on="a")
        .group_by(_pair("c", "partner"))
        .agg(fixed_sum(pl.col("weight") * pl.col("strength")).alias("score"))
        .join(seeds.select("k"), on="k", how="anti")
        .with_columns(_unpair())
    )
    frames["copurchase"] = _ranked(copurchase, cfg.copurchase, "c")

    families = seeds.join(pools.products.select("a", "product_code"), on="a").select("c", "product_code").unique()
    siblings = (
        families.join(pools.products, on="product_code")
        .select("c", "a", pl.col("sales").alias("score"), _pair())
        .join(seeds.select("k"), on="k", how="anti")
    )
    frames["same_product"] = _ranked(siblings, cfg.same_product, "c")

    for source, frame in models.items():
        if frame is None:
            continue
        rows = frame.filter(pl.col("rank") <= cfg.limit(source)).select("customer_id", "article_id", "score", "rank")
        frames[source] = (
            _article_index(pools.article_ids, rows.join(ids, on="customer_id"))
            .sort("c", "rank", "a")
            .unique(["c", "a"], keep="first", maintain_order=True)
        )
    return {
        s: f.select(
            _pair(),
            pl.col("score").cast(SCORE_TYPE).alias(f"{s}_score"),
            pl.col("rank").cast(RANK_TYPE).alias(f"{s}_rank"),
        )
        for s, f in frames.items()
    }


_SOURCE_BITS = {s: 1 << i for i, s in enumerate(SOURCES)}
_SOURCES_NAMES = {mask: "+".join(s for s in SOURCES if mask & _SOURCE_BITS[s]) for mask in range(1, 1 << len(SOURCES))}


def _widen(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """One row per pair: c, a, from_/score/rank per source, sources, n_sources and the best rank of any source."""
    wide = None
    for frame in frames.values():
        wide = frame if wide is None else wide.join(frame, on="k", how="full", coalesce=True)
    wide = wide.with_columns(
        pl.lit(None, dtype=t).alias(f"{s}_{k}")
        for s in SOURCES
        if s not in frames
        for k, t in (("score", SCORE_TYPE), ("rank", RANK_TYPE))
    )
    mask = pl.sum_horizontal(
        [pl.col(f"{s}_rank").is_not_null().cast(pl.Int32) * bit for s, bit in _SOURCE_BITS.items()]
    )
    return wide.with_columns(
        *_unpair(),
        *[pl.col(f"{s}_rank").is_not_null().alias(f"from_{s}") for s in SOURCES],
        mask.replace_strict(_SOURCES_NAMES, return_dtype=pl.String).alias("sources"),
        pl.sum_horizontal([pl.col(f"{s}_rank").is_not_null().cast(pl.Int8) for s in SOURCES])
        .cast(pl.Int8)
        .alias("n_sources"),
        pl.min_horizontal([pl.col(f"{s}_rank") for s in SOURCES]).alias("_best_rank"),
    )


def customer_candidates(
    pools: CandidatePools,
    customer_ids: pl.DataFrame | pl.Series | list[str],
    two_tower: pl.DataFrame | None = None,
    sequence: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The candidate rows (`candidate_columns()`) of the given customers (any subset: the caller chunks).

    two_tower, sequence: model retrieval (customer_id, article_id, score, rank; rank 1 = best), optional;
    the rows with rank <= the source's limit are used, those of other customers and of articles outside the
    catalogue ignored. Reading a whole model table costs a scan per chunk: better pass the chunk's rows.
    Every customer asked for gets between `min_per_customer` and `max_per_customer` articles (cold-start and
    unknown customers: trending, then the fallback ranking).
    """
    cfg = pools.config
    ids = _as_ids(customer_ids)
    union = (
        _widen(_source_frames(pools, ids, {"two_tower": two_tower, "sequence": sequence}))
        .sort(["c", "_best_rank", "n_sources", "a"], descending=[False, False, True, False])
        .filter(pl.int_range(pl.len()).over("c") < cfg.max_per_customer)
    )
    counts = ids.join(union.group_by("c").agg(pl.len().alias("_n")), on="c", how="left").with_columns(
        pl.col("_n").fill_null(0)
    )
    short = counts.filter(pl.col("_n") < cfg.min_per_customer)
    if short.height:
        topup = (
            short.join(pools.fallback, how="cross")
            .with_columns(_pair())
            .join(union.select("k"), on="k", how="anti")
            .sort("c", "rank")
            .filter(pl.int_range(pl.len()).over("c") < cfg.min_per_customer - pl.col("_n"))
            .select(
                "k",
                pl.col("score").cast(SCORE_TYPE).alias(f"{FALLBACK}_score"),
                pl.col("rank").cast(RANK_TYPE).alias(f"{FALLBACK}_rank"),
            )
        )
        # The fallback rows go after the customer's own rows.
        union = pl.concat(
            [
                union.with_columns(pl.lit(0, dtype=pl.Int8).alias("_tier")),
                _widen({FALLBACK: topup})
                .with_columns(pl.lit(1, dtype=pl.Int8).alias("_tier"))
                .select(*union.columns, "_tier"),
            ]
        ).sort("c", "_tier", maintain_order=True)
    return _decode(union, ids, pools.article_ids)


def _decode(union: pl.DataFrame, ids: pl.DataFrame, article_ids: pl.Series) -> pl.DataFrame:
    """Back from indexes to ids, in the output's column order."""
    return union.with_columns(
        ids["customer_id"].gather(union["c"]).alias("customer_id"),
        article_ids.gather(union["a"]).alias("article_id"),
    ).select(candidate_columns())


def build_candidates(
    customers: pl.DataFrame,
    transactions: pl.DataFrame,
    articles: pl.DataFrame,
    week: dt.date,
    config: CandidateConfig = CandidateConfig(),
    two_tower: pl.DataFrame | None = None,
    sequence: pl.DataFrame | None = None,
    customer_ids: pl.DataFrame | pl.Series | list[str] | None = None,
) -> pl.DataFrame:
    """`candidate_pools` then `customer_candidates` in one call (default: every customer of `customers`)."""
    pools = candidate_pools(customers, transactions, articles, week, config)
    return customer_candidates(
        pools, customers["customer_id"] if customer_ids is None else customer_ids, two_tower, sequence
    )
