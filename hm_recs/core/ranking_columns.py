"""The ranker's feature columns: their names in the order training and scoring use, their types, and the fixed
integer codes of the categorical ones (``core/ranking_features.py`` builds the matrix and describes each feature).
"""

from __future__ import annotations

import polars as pl

from hm_recs.core.candidates import SOURCES
from hm_recs.core.features import AGE_GROUPS, UNKNOWN_AGE_GROUP
from hm_recs.core.schema import INDEX_GROUP_SHARES
from hm_recs.core.segments import SEGMENTS

AGE_GROUP_CODES: dict[str, int] = {name: i for i, name in enumerate([*(g[2] for g in AGE_GROUPS), UNKNOWN_AGE_GROUP])}
SEGMENT_CODES: dict[str, int] = {name: i for i, name in enumerate(SEGMENTS)}
MISSING_CODE = -1
ARTICLE_CODES: tuple[str, ...] = (
    "product_type_no",
    "department_no",
    "section_no",
    "garment_group_no",
    "index_group_no",
    "colour_group_code",
    "perceived_colour_master_id",
    "graphical_appearance_no",
)
"""Integer codes of the H&M catalogue used as categorical features, under their own names."""

CUSTOMER_FEATURES: list[str] = [
    "customer_age",
    "customer_age_group",
    "customer_segment",
    "customer_n_purchases",
    "customer_n_purchases_recent",
    "customer_days_since_last_purchase",
    "customer_mean_price",
    "customer_online_share",
    *[f"customer_{share}" for share in INDEX_GROUP_SHARES],
]
ARTICLE_FEATURES: list[str] = [
    "article_n_sales",
    "article_sales_last_week",
    "article_sales_previous_week",
    "article_trend",
    "article_popularity_rank",
    "article_mean_price",
    "article_online_share",
    "article_seasonal_share",
    "article_days_on_sale",
    "article_preferred_age_group",
    *ARTICLE_CODES,
]
INTERACTION_FEATURES: list[str] = [
    "customer_article_purchases",
    "customer_product_purchases",
    "customer_department_purchases",
    "days_since_article_purchase",
    "days_since_product_purchase",
    "days_since_department_purchase",
    "price_ratio",
    "age_group_popularity_rank",
    "age_group_trend_score",
    "is_preferred_age_group",
    "is_favourite_colour",
    "is_favourite_garment_group",
]
SHARE_KEYS: dict[str, str] = {
    "section": "section_no",
    "product_type": "product_type_no",
    "index_group": "index_group_no",
}
"""Catalogue levels at which the customer's share of purchases in the candidate's own category is a feature."""
CONTEXT_FEATURES: list[str] = [
    "article_week_price_ratio",
    "article_previous_week_price_ratio",
    "article_price_change",
    "age_group_week_rank",
    "age_group_week_sales",
    "article_recency_position",
    "article_recency_gap",
    "product_recency_gap",
    "article_share_of_customer",
    "customer_discount_share",
    "promotion_for_discount_customer",
    *[f"customer_{level}_share" for level in SHARE_KEYS],
]
PROMOTION_PRICE_RATIO = 0.85
"""A purchase paid below this share of the article's usual price counts as bought on promotion."""
CANDIDATE_FEATURES: list[str] = [
    "n_sources",
    *[f"from_{s}" for s in SOURCES],
    *[f"{s}_score" for s in SOURCES],
    *[f"{s}_rank" for s in SOURCES],
]
FEATURE_COLUMNS: list[str] = [
    *CUSTOMER_FEATURES,
    *ARTICLE_FEATURES,
    *INTERACTION_FEATURES,
    *CONTEXT_FEATURES,
    *CANDIDATE_FEATURES,
]
CATEGORICAL_FEATURES: list[str] = [
    "customer_age_group",
    "customer_segment",
    "article_preferred_age_group",
    *ARTICLE_CODES,
]
CATEGORICAL_TYPE = pl.Int32
NUMERIC_TYPE = pl.Float32


def source_features(source: str) -> list[str]:
    """The ranker's features that come from one candidate source: its flag, score and rank."""
    return [f"from_{source}", f"{source}_score", f"{source}_rank"]


def feature_columns() -> list[str]:
    """The ranker's feature columns, in the order training and scoring must use."""
    return list(FEATURE_COLUMNS)
