"""The H&M file layout (column names and order) and the typed tables the pipeline stores."""

from __future__ import annotations

import polars as pl

ARTICLE_COLUMNS: tuple[str, ...] = (
    "article_id", "product_code", "prod_name", "product_type_no", "product_type_name",
    "product_group_name", "graphical_appearance_no", "graphical_appearance_name",
    "colour_group_code", "colour_group_name", "perceived_colour_value_id",
    "perceived_colour_value_name", "perceived_colour_master_id", "perceived_colour_master_name",
    "department_no", "department_name", "index_code", "index_name", "index_group_no",
    "index_group_name", "section_no", "section_name", "garment_group_no", "garment_group_name",
    "detail_desc",
)
ARTICLE_INT_COLUMNS: tuple[str, ...] = (
    "product_code", "product_type_no", "graphical_appearance_no", "colour_group_code",
    "perceived_colour_value_id", "perceived_colour_master_id", "department_no",
    "index_group_no", "section_no", "garment_group_no",
)
ARTICLE_OPTIONAL_COLUMNS: tuple[str, ...] = ("detail_desc",)
"""Text columns that may be empty; every other article column is required."""

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id", "FN", "Active", "club_member_status", "fashion_news_frequency", "age",
    "postal_code",
)
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "t_dat", "customer_id", "article_id", "price", "sales_channel_id",
)

IMAGE_COLUMNS: tuple[str, ...] = ("article_id", "image")
"""Optional image vectors the retailer provides (any vision model's): one fixed-length float vector per article.
Raw rows hold `image` as the text of its values joined by commas (core.source.read_images)."""

SOURCE_COLUMNS: tuple[str, ...] = ("source_file", "source_row")
"""Lineage kept on every raw row: the file it came from and its 1-based data row (header excluded)."""
PROVENANCE_COLUMNS: tuple[str, ...] = ("source_uri", "source_sha256")
"""On every raw row: the source (folder or S3 URI) and the file checksum of its week's delivery (one shop per warehouse)."""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "articles": ARTICLE_COLUMNS,
    "customers": CUSTOMER_COLUMNS,
    "transactions": TRANSACTION_COLUMNS,
    "article_images": IMAGE_COLUMNS,
}

CUSTOMER_DTYPES: dict[str, pl.DataType] = {
    "customer_id": pl.String(), "FN": pl.Int8(), "Active": pl.Int8(),
    "club_member_status": pl.String(), "fashion_news_frequency": pl.String(),
    "age": pl.Int16(), "postal_code": pl.String(),
}
TRANSACTION_DTYPES: dict[str, pl.DataType] = {
    "t_dat": pl.Date(), "customer_id": pl.String(), "article_id": pl.String(),
    "price": pl.Float64(), "sales_channel_id": pl.Int8(),
}
ARTICLE_DTYPES: dict[str, pl.DataType] = {
    name: (pl.Int64() if name in ARTICLE_INT_COLUMNS else pl.String()) for name in ARTICLE_COLUMNS
}
TABLE_DTYPES: dict[str, dict[str, pl.DataType]] = {
    "articles": ARTICLE_DTYPES,
    "customers": CUSTOMER_DTYPES,
    "transactions": TRANSACTION_DTYPES,
    "article_images": {"article_id": pl.String(), "image": pl.List(pl.Float32())},
}

RECOMMENDATION_COLUMNS: tuple[str, ...] = ("customer_id", "rank", "article_id", "score", "source", "relevance_tier", "week",
                                           "served_by")
"""The published contract of `recommendations` (CRM jobs read it): 12 ranks per customer (README). `served_by`
names the week's recommender: `ranker`, or the baseline that served as the champion."""
TIERS: tuple[str, ...] = ("high", "medium", "low")
"""`relevance_tier` values, best first: calibrated score bands of the ranker (README)."""

INDEX_GROUP_SHARES: dict[str, str] = {
    "ladies_share": "Ladieswear",
    "men_share": "Menswear",
    "kids_share": "Baby|Children",
}
"""Customer feature -> regex over `index_group_name` that defines it."""
