"""The ranker's feature matrix: one row per candidate (customer, article) of week W, with features known at
W's Tuesday, and the label from the purchases of the week after.

``ranking_inputs`` gathers the customer-independent tables of the week once (customer and article features
from ``core/features.py``, segments, the age groups' popularity, the customers' purchase counts per article,
product and department); ``ranking_features`` joins any chunk of candidate rows (``core/candidates.py``)
with them, keeping the candidates' row order (so a customer's rows stay contiguous: the ranker's
query groups). Training and scoring use the same ``FEATURE_COLUMNS``, in that order (the column lists, types
and codes: ``core/ranking_columns.py``).

Features (``FEATURE_COLUMNS``):

* customer: ``customer_age``, ``customer_age_group``, ``customer_segment``, purchase counts, days since the
  last purchase, mean price, online share, index-group shares (``features.customer_features``);
* article: sales (all history, last week, the week before), ``article_trend``
  ((last week + 1) / (week before + 1)), ``article_popularity_rank``, mean price, online and seasonal shares,
  days on sale, preferred age group (``features.article_features``) and the catalogue's own integer codes
  (``ARTICLE_CODES``: product type, department, section, garment group, index group, colour, ...);
* interaction: times the customer bought this article / its product_code / its department (rows, over the
  history given) and days since (null: never), ``price_ratio`` = article mean price / customer mean price,
  ``age_group_popularity_rank`` and ``age_group_trend_score`` (the article's time-decayed sales of the last
  ``popularity_weeks`` among buyers of the customer's age group, rank 1 = best, null where unsold; customers of
  unknown age use all buyers), ``is_preferred_age_group``, ``is_favourite_colour``,
  ``is_favourite_garment_group``;
* purchase context (what the first offline tuning round found worth +4 % MAP@12 at 50k customers, docs/models.md):
  the article's median price paid in the week and the week before over its usual price (the highest weekly
  median of the window: < 1 is a promotion) and their change, ``age_group_week_rank`` / ``_sales`` (the
  article's sales in the week alone among the customer's age group), ``article_recency_position`` (1 = the
  article is among the customer's most recently bought ones), the gaps between the last purchase of the article
  (product) and the customer's last purchase, the article's share of the customer's purchases, the customer's
  ``customer_discount_share`` (purchases paid below ``PROMOTION_PRICE_RATIO`` of the usual price) and its
  product with the week's price ratio, and the customer's share of purchases in the article's section,
  product type and index group;
* candidate: ``n_sources`` and, for every source of ``candidates.SOURCES``, ``from_<source>`` (0/1),
  ``<source>_score`` and ``<source>_rank`` (the model scores and ranks included; null where absent).

Types: numeric features are Float32 (null = missing, NaN to LightGBM); ``CATEGORICAL_FEATURES`` are Int32
codes that do not depend on the week's data, so a model trained at W-1 reads W's matrix the same way:
age groups by ``AGE_GROUP_CODES`` (16-24: 0, 25-34: 1, 35-49: 2, 50+: 3, unknown: 4), segments by their
position in ``segments.SEGMENTS`` (``SEGMENT_CODES``), catalogue codes as H&M numbers them; -1 is missing
(no segment row, article never sold, code absent), which LightGBM reads as missing.

Label: ``label`` (Int8) is 1 when the customer bought the article in the purchases frame given (the
following week), else 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from hm_recs.core.baselines import _decay
from hm_recs.core.candidate_labels import KEYS, LABEL, label_candidates
from hm_recs.core.candidates import fixed_sum
from hm_recs.core.features import (
    UNKNOWN_AGE_GROUP,
    FeatureConfig,
    article_features,
    customer_features,
    history_until,
)
from hm_recs.core.ranking_columns import (
    AGE_GROUP_CODES,
    ARTICLE_CODES,
    CANDIDATE_FEATURES,
    CATEGORICAL_FEATURES,
    CATEGORICAL_TYPE,
    CONTEXT_FEATURES,
    FEATURE_COLUMNS,
    MISSING_CODE,
    NUMERIC_TYPE,
    PROMOTION_PRICE_RATIO,
    SEGMENT_CODES,
    SHARE_KEYS,
)
from hm_recs.core.ranking_columns import feature_columns as feature_columns  # re-exported: imported from here elsewhere
from hm_recs.core.ranking_columns import source_features as source_features
from hm_recs.core.schema import INDEX_GROUP_SHARES
from hm_recs.core.segments import SegmentConfig, assign_segments, segment_indices, thresholds
from hm_recs.core.weeks import shift_weeks, week_end


@dataclass(frozen=True)
class RankingFeatureConfig:
    popularity_weeks: int = 4  # age-group popularity: time-decayed sales of these weeks ...
    popularity_half_life_days: float = 7.0  # ... with this half-life (the trending baseline's)


@dataclass(frozen=True)
class RankingInputs:
    """The customer-independent tables of one week (see `ranking_inputs`); customers and articles carry
    integer indexes `c` / `a` so that a chunk joins its strings once and everything else on integers."""

    week: dt.date
    customers: pl.DataFrame  # customer_id, c, _colour, _garment, _rows, customer features, customer_discount_share
    articles: pl.DataFrame  # article_id, a, product_code, _preferred, _colour, _garment, article features, prices
    group_popularity: pl.DataFrame  # customer_age_group (code), a, age_group_popularity_rank, age_group_trend_score,
    # age_group_week_rank, age_group_week_sales
    bought_article: (
        pl.DataFrame
    )  # c, a, customer_article_purchases, days_since_article_purchase, article_recency_position
    bought_product: pl.DataFrame  # c, product_code, customer_product_purchases, days_since_product_purchase
    bought_department: pl.DataFrame  # c, department_no, customer_department_purchases, days_since_department_purchase
    bought_levels: dict[str, pl.DataFrame]  # per SHARE_KEYS level: c, <code column>, _<level>_rows


def _code(column: str, codes: dict[str, int]) -> pl.Expr:
    return pl.col(column).replace_strict(codes, default=MISSING_CODE, return_dtype=CATEGORICAL_TYPE)


def _by_age_group(rows: pl.DataFrame, value: pl.Expr, rank_name: str, value_name: str) -> pl.DataFrame:
    """customer_age_group, a, `rank_name` (1 = highest), `value_name`: `value` aggregated per article within each
    age group, and over all buyers for the unknown group (customers of unknown age see everyone's sales)."""
    unknown = AGE_GROUP_CODES[UNKNOWN_AGE_GROUP]
    per_group = (
        rows.filter(pl.col("customer_age_group") != unknown)
        .group_by("customer_age_group", "a")
        .agg(value.alias("_value"))
    )
    overall = (
        rows.group_by("a")
        .agg(value.alias("_value"))
        .with_columns(pl.lit(unknown, dtype=CATEGORICAL_TYPE).alias("customer_age_group"))
    )
    return pl.concat([per_group, overall.select(per_group.columns)]).select(
        "customer_age_group",
        "a",
        pl.col("_value").rank("min", descending=True).over("customer_age_group").cast(NUMERIC_TYPE).alias(rank_name),
        pl.col("_value").cast(NUMERIC_TYPE).alias(value_name),
    )


def _group_popularity(
    history: pl.DataFrame, groups: pl.DataFrame, week: dt.date, config: RankingFeatureConfig
) -> pl.DataFrame:
    """Per age group (and unknown = all buyers) every article sold in the window: decayed sales and their rank,
    and the week's own sales and their rank (null where the article did not sell that week)."""
    recent = (
        history.filter(pl.col("t_dat") >= pl.lit(shift_weeks(week, -(config.popularity_weeks - 1))))
        .join(groups, on="c", how="left")
        .with_columns(
            pl.col("customer_age_group").fill_null(AGE_GROUP_CODES[UNKNOWN_AGE_GROUP]),
            _decay(week_end(week), config.popularity_half_life_days).alias("w"),
        )
    )
    decayed = _by_age_group(recent, fixed_sum(pl.col("w")), "age_group_popularity_rank", "age_group_trend_score")
    week_sales = _by_age_group(
        recent.filter(pl.col("t_dat") >= pl.lit(week)), pl.len(), "age_group_week_rank", "age_group_week_sales"
    )
    return decayed.join(week_sales, on=["customer_age_group", "a"], how="left")


def _article_prices(history: pl.DataFrame, week: dt.date) -> pl.DataFrame:
    """a, the week's and the week before's median price over the usual price (the highest weekly median of the
    history), and their change; null where the article did not sell in that week."""
    weekly = (
        history.with_columns(((pl.col("t_dat") - pl.lit(week)).dt.total_days() // 7).alias("_week"))
        .group_by("a", "_week")
        .agg(pl.col("price").median().alias("_median"))
    )
    return (
        weekly.group_by("a")
        .agg(
            pl.col("_median").max().alias("_usual"),
            pl.col("_median").filter(pl.col("_week") == 0).first().alias("_this"),
            pl.col("_median").filter(pl.col("_week") == -1).first().alias("_before"),
        )
        .select(
            "a",
            (pl.col("_this") / pl.col("_usual")).cast(NUMERIC_TYPE).alias("article_week_price_ratio"),
            (pl.col("_before") / pl.col("_usual")).cast(NUMERIC_TYPE).alias("article_previous_week_price_ratio"),
            (pl.col("_this") / pl.col("_before")).cast(NUMERIC_TYPE).alias("article_price_change"),
            pl.col("_usual"),
        )
    )


def _bought(history: pl.DataFrame, key: str, name: str, cutoff: dt.date) -> pl.DataFrame:
    return (
        history.drop_nulls(key)
        .group_by("c", key)
        .agg(
            pl.len().cast(NUMERIC_TYPE).alias(f"customer_{name}_purchases"),
            (pl.lit(cutoff) - pl.col("t_dat").max())
            .dt.total_days()
            .cast(NUMERIC_TYPE)
            .alias(f"days_since_{name}_purchase"),
        )
    )


def _customer_table(customer_features: pl.DataFrame, segments: pl.DataFrame) -> pl.DataFrame:
    """customer_id, its integer index `c`, favourite colour and garment group (`_colour`, `_garment`) and the
    customer features, age group and segment as their fixed codes."""
    return (
        customer_features.unique("customer_id", keep="first", maintain_order=True)
        .join(segments.select("customer_id", "segment"), on="customer_id", how="left", maintain_order="left")
        .select(
            "customer_id",
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("c"),
            pl.col("favourite_colour").alias("_colour"),
            pl.col("favourite_garment_group").alias("_garment"),
            pl.col("age").cast(NUMERIC_TYPE).alias("customer_age"),
            _code("age_group", AGE_GROUP_CODES).alias("customer_age_group"),
            _code("segment", SEGMENT_CODES).alias("customer_segment"),
            *[
                pl.col(c).cast(NUMERIC_TYPE).alias(f"customer_{c}")
                for c in [
                    "n_purchases",
                    "n_purchases_recent",
                    "days_since_last_purchase",
                    "mean_price",
                    "online_share",
                    *INDEX_GROUP_SHARES,
                ]
            ],
        )
    )


def _article_table(articles: pl.DataFrame, article_features: pl.DataFrame) -> pl.DataFrame:
    """article_id, its integer index `a`, product_code, colour and garment group names (`_colour`, `_garment`),
    the article features and the catalogue's `ARTICLE_CODES` (-1 where absent)."""
    return (
        articles.unique("article_id", keep="first", maintain_order=True)
        .join(article_features, on="article_id", how="left", maintain_order="left")
        .select(
            "article_id",
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("a"),
            "product_code",
            pl.col("colour_group_name").alias("_colour"),
            pl.col("garment_group_name").alias("_garment"),
            *[
                pl.col(c).cast(NUMERIC_TYPE).alias(f"article_{c}")
                for c in [
                    "n_sales",
                    "sales_last_week",
                    "sales_previous_week",
                    "trend",
                    "popularity_rank",
                    "mean_price",
                    "online_share",
                    "seasonal_share",
                    "days_on_sale",
                ]
            ],
            _code("preferred_age_group", AGE_GROUP_CODES).alias("article_preferred_age_group"),
            *[pl.col(c).fill_null(MISSING_CODE).cast(CATEGORICAL_TYPE) for c in ARTICLE_CODES],
        )
    )


def _indexed_history(
    transactions: pl.DataFrame, week: dt.date, customers: pl.DataFrame, article_table: pl.DataFrame
) -> pl.DataFrame:
    """The purchases up to W's Tuesday on the integer indexes `c` / `a`, with the article's product_code,
    department and `SHARE_KEYS` codes (null where missing), so the per-customer counts join on integers."""
    levels = list(SHARE_KEYS.values())
    return (
        history_until(transactions.select("t_dat", "customer_id", "article_id", "price"), week)
        .join(customers.select("customer_id", "c"), on="customer_id")
        .join(article_table.select("article_id", "a", "product_code", "department_no", *levels), on="article_id")
        .with_columns(pl.when(pl.col(c) != MISSING_CODE).then(pl.col(c)).alias(c) for c in ["department_no", *levels])
    )


def _customer_discounts(history: pl.DataFrame, prices: pl.DataFrame) -> pl.DataFrame:
    """c, `_rows` (the customer's purchases) and `customer_discount_share` (the share of them paid below
    `PROMOTION_PRICE_RATIO` of the article's usual price)."""
    paid = history.join(prices.select("a", "_usual"), on="a", how="left")
    return paid.group_by("c").agg(
        pl.len().cast(NUMERIC_TYPE).alias("_rows"),
        (pl.col("price") < PROMOTION_PRICE_RATIO * pl.col("_usual"))
        .mean()
        .cast(NUMERIC_TYPE)
        .alias("customer_discount_share"),
    )


def ranking_inputs(
    customer_features: pl.DataFrame,
    article_features: pl.DataFrame,
    articles: pl.DataFrame,
    transactions: pl.DataFrame,
    segments: pl.DataFrame,
    week: dt.date,
    config: RankingFeatureConfig = RankingFeatureConfig(),
) -> RankingInputs:
    """The week's tables for `ranking_features`.

    customer_features, article_features: as `features.customer_features` / `features.article_features` build
    them at W, for every customer / article (buyers' age groups make the age-group popularity).
    articles: the catalogue (article_id, product_code, colour_group_name, garment_group_name, `ARTICLE_CODES`).
    transactions: t_dat, customer_id, article_id, price (the lookback the caller loads; rows after W's Tuesday ignored).
    segments: customer_id, segment (one primary segment per customer, `segments.assign_segments`).
    """
    cutoff = week_end(week)
    customers = _customer_table(customer_features, segments)
    article_table = _article_table(articles, article_features)
    history = _indexed_history(transactions, week, customers, article_table)
    prices = _article_prices(history, week)
    per_customer = _customer_discounts(history, prices)
    bought_article = _bought(history, "a", "article", cutoff).with_columns(
        pl.col("days_since_article_purchase").rank("max").over("c").cast(NUMERIC_TYPE).alias("article_recency_position")
    )
    return RankingInputs(
        week=week,
        customers=customers.join(per_customer, on="c", how="left", maintain_order="left"),
        articles=article_table.join(prices.drop("_usual"), on="a", how="left", maintain_order="left"),
        group_popularity=_group_popularity(history, customers.select("c", "customer_age_group"), week, config),
        bought_article=bought_article,
        bought_product=_bought(history, "product_code", "product", cutoff),
        bought_department=_bought(history, "department_no", "department", cutoff),
        bought_levels={
            level: history.drop_nulls(column)
            .group_by("c", column)
            .agg(pl.len().cast(NUMERIC_TYPE).alias(f"_{level}_rows"))
            for level, column in SHARE_KEYS.items()
        },
    )


@dataclass(frozen=True)
class InputWindows:
    """How much history each input of `week_inputs` reads (weeks up to and including the week): the ranker's
    artefact records them, so that scoring builds its matrix exactly as training did."""

    feature_weeks: int = 26  # customer and article features (the features assets' default)
    segment_weeks: int = 52  # segment indices (the segments asset's default)
    recent_weeks: int = FeatureConfig.recent_weeks


def week_inputs(
    customers: pl.DataFrame,
    articles: pl.DataFrame,
    transactions: pl.DataFrame,
    week: dt.date,
    windows: InputWindows = InputWindows(),
    segment_config: SegmentConfig = SegmentConfig(),
    config: RankingFeatureConfig = RankingFeatureConfig(),
) -> RankingInputs:
    """`ranking_inputs` as of `week` from the validated tables alone: customer and article features and segment
    assignment built by the same functions as their weekly assets, over `windows` weeks of `transactions` up
    to `week` (later rows ignored). Training weeks (as of W-k) and the serving week (as of W) go through this one
    function, so the ranker never scores a matrix built differently from the one it learned on."""

    def window(weeks: int) -> pl.DataFrame:
        return history_until(transactions, week).filter(pl.col("t_dat") >= pl.lit(shift_weeks(week, -(weeks - 1))))

    recent = window(windows.feature_weeks)
    indices = segment_indices(customers, window(windows.segment_weeks), articles, week, segment_config)
    segments = assign_segments(indices, thresholds(indices, segment_config), segment_config)
    return ranking_inputs(
        customer_features(customers, recent, articles, week, FeatureConfig(windows.recent_weeks)),
        article_features(articles, recent, customers, week),
        articles,
        recent,
        segments,
        week,
        config,
    )


def _flag(expr: pl.Expr) -> pl.Expr:
    return expr.fill_null(False).cast(NUMERIC_TYPE)


def _joined(inputs: RankingInputs, candidates: pl.DataFrame) -> pl.DataFrame:
    """The candidates' keys and candidate columns joined with every table of the week, back in the candidates'
    order. Eager joins that ignore order, then one sort back into the candidates' order: faster than
    order-keeping joins and than polars' streaming engine on the same plan (docs/benchmarks.md)."""
    matrix = (
        candidates.select(*KEYS, *CANDIDATE_FEATURES)
        .with_row_index("_row")
        .join(inputs.customers, on="customer_id", how="left")
        .join(inputs.articles, on="article_id", how="left", suffix="_article")
        .join(inputs.group_popularity, on=["customer_age_group", "a"], how="left")
        .join(inputs.bought_article, on=["c", "a"], how="left")
        .join(inputs.bought_product, on=["c", "product_code"], how="left")
        .join(inputs.bought_department, on=["c", "department_no"], how="left")
    )
    for level, column in SHARE_KEYS.items():
        matrix = matrix.join(inputs.bought_levels[level], on=["c", column], how="left")
    return matrix.sort("_row")


def _derived_columns() -> list[pl.Expr]:
    """The features computed from the joined columns (counts, ratios, gaps, shares, flags) and the casts of the
    categorical and candidate features to their types."""
    counts = ["customer_article_purchases", "customer_product_purchases", "customer_department_purchases"]
    return [
        pl.col(counts).fill_null(0),
        (pl.col("article_mean_price") / pl.col("customer_mean_price")).cast(NUMERIC_TYPE).alias("price_ratio"),
        (pl.col("days_since_article_purchase") - pl.col("customer_days_since_last_purchase")).alias(
            "article_recency_gap"
        ),
        (pl.col("days_since_product_purchase") - pl.col("customer_days_since_last_purchase")).alias(
            "product_recency_gap"
        ),
        (pl.col("customer_article_purchases").fill_null(0) / pl.col("_rows")).alias("article_share_of_customer"),
        (pl.col("article_week_price_ratio") * pl.col("customer_discount_share")).alias(
            "promotion_for_discount_customer"
        ),
        *[
            (pl.col(f"_{level}_rows").fill_null(0) / pl.col("_rows")).alias(f"customer_{level}_share")
            for level in SHARE_KEYS
        ],
        _flag(pl.col("article_preferred_age_group") == pl.col("customer_age_group")).alias("is_preferred_age_group"),
        _flag(pl.col("_colour") == pl.col("_colour_article")).alias("is_favourite_colour"),
        _flag(pl.col("_garment") == pl.col("_garment_article")).alias("is_favourite_garment_group"),
        *[pl.col(c).cast(CATEGORICAL_TYPE).fill_null(MISSING_CODE) for c in CATEGORICAL_FEATURES],
        *[pl.col(c).cast(NUMERIC_TYPE) for c in CANDIDATE_FEATURES],
    ]


def ranking_features(
    inputs: RankingInputs, candidates: pl.DataFrame, purchases: pl.DataFrame | None = None
) -> pl.DataFrame:
    """customer_id, article_id, [label,] *FEATURE_COLUMNS for each candidate row, in the candidates' order.

    candidates: customer_id, article_id and the candidate columns of `candidates.customer_candidates` (source
    columns missing from the frame are null). purchases: the following week's (customer_id, article_id) for
    `label`; None (scoring) leaves `label` out. Any chunk of customers may be passed: a chunk's result is the
    chunk's rows of the whole. Customers or articles unknown to the inputs get null features (-1 codes).
    """
    missing = [c for c in CANDIDATE_FEATURES if c not in candidates.columns]
    frame = candidates.with_columns(pl.lit(None, dtype=NUMERIC_TYPE).alias(c) for c in missing)
    matrix = (
        _joined(inputs, frame)
        .with_columns(_derived_columns())
        .with_columns(pl.col(CONTEXT_FEATURES).cast(NUMERIC_TYPE))
        .select(*KEYS, *FEATURE_COLUMNS)
    )
    return (
        label_candidates(matrix, purchases).select(*KEYS, LABEL, *FEATURE_COLUMNS) if purchases is not None else matrix
    )
