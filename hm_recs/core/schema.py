"""The H&M file layout (column names and order) and the typed tables the pipeline stores."""

from __future__ import annotations

import polars as pl

ARTICLE_COLUMNS: tuple[str, ...] = (
    "article_id",
    "product_code",
    "prod_name",
    "product_type_no",
    "product_type_name",
    "product_group_name",
    "graphical_appearance_no",
    "graphical_appearance_name",
    "colour_group_code",
    "colour_group_name",
    "perceived_colour_value_id",
    "perceived_colour_value_name",
    "perceived_colour_master_id",
    "perceived_colour_master_name",
    "department_no",
    "department_name",
    "index_code",
    "index_name",
    "index_group_no",
    "index_group_name",
    "section_no",
    "section_name",
    "garment_group_no",
    "garment_group_name",
    "detail_desc",
)
ARTICLE_INT_COLUMNS: tuple[str, ...] = (
    "product_code",
    "product_type_no",
    "graphical_appearance_no",
    "colour_group_code",
    "perceived_colour_value_id",
    "perceived_colour_master_id",
    "department_no",
    "index_group_no",
    "section_no",
    "garment_group_no",
)
ARTICLE_OPTIONAL_COLUMNS: tuple[str, ...] = ("detail_desc",)
"""Text columns that may be empty; every other article column is required."""

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "FN",
    "Active",
    "club_member_status",
    "fashion_news_frequency",
    "age",
    "postal_code",
)
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "t_dat",
    "customer_id",
    "article_id",
    "price",
    "sales_channel_id",
)

IMAGE_COLUMNS: tuple[str, ...] = ("article_id", "image")
"""Optional image vectors the retailer provides (any vision model's): one fixed-length float vector per article.
Raw rows hold `image` as the text of its values joined by commas (core.source.read_images)."""

SOURCE_COLUMNS: tuple[str, ...] = ("source_file", "source_row")
"""Lineage kept on every raw row: the file it came from and its 1-based data row (header excluded)."""
PROVENANCE_COLUMNS: tuple[str, ...] = ("source_uri", "source_sha256")
"""On every raw row: the source (folder or S3 URI) and the file checksum of its week's delivery (one shop per
warehouse)."""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "articles": ARTICLE_COLUMNS,
    "customers": CUSTOMER_COLUMNS,
    "transactions": TRANSACTION_COLUMNS,
    "article_images": IMAGE_COLUMNS,
}

CUSTOMER_DTYPES: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "FN": pl.Int8(),
    "Active": pl.Int8(),
    "club_member_status": pl.String(),
    "fashion_news_frequency": pl.String(),
    "age": pl.Int16(),
    "postal_code": pl.String(),
}
TRANSACTION_DTYPES: dict[str, pl.DataType] = {
    "t_dat": pl.Date(),
    "customer_id": pl.String(),
    "article_id": pl.String(),
    "price": pl.Float64(),
    "sales_channel_id": pl.Int8(),
}
ARTICLE_DTYPES: dict[str, pl.DataType] = {
    name: pl.Int64() if name in ARTICLE_INT_COLUMNS else pl.String() for name in ARTICLE_COLUMNS
}
TABLE_DTYPES: dict[str, dict[str, pl.DataType]] = {
    "articles": ARTICLE_DTYPES,
    "customers": CUSTOMER_DTYPES,
    "transactions": TRANSACTION_DTYPES,
    "article_images": {"article_id": pl.String(), "image": pl.List(pl.Float32())},
}

RECOMMENDATION_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "rank",
    "article_id",
    "score",
    "source",
    "relevance_tier",
    "week",
    "served_by",
)
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

COMMON_COLUMN_DESCRIPTIONS: dict[str, str] = {
    "customer_id": "64-hex H&M customer id",
    "article_id": "10-digit article id with its leading zero",
    "week": "the partition: the Wednesday of the week (Wednesday to Tuesday) the row was built at",
    "target_week": "the Wednesday of the week the row recommends for (serving) or is labelled by",
    "t_dat": "purchase day",
    "price": "price paid (H&M's scaled units)",
    "sales_channel_id": "1 = store, 2 = online",
    "source_file": "the raw file the row came from",
    "source_row": "its 1-based data row in that file (header excluded)",
    "source_uri": "the source (folder or S3 URI) of the week's delivery",
    "source_sha256": "checksum of the delivered file",
    "rule": "the validation rules the row broke, joined by ', '",
    "reason": "what was wrong, with the offending values",
    "score": "the producer's score: higher is better, comparable within one week and producer only",
    "rank": "1 = best",
    "label": "1 when the customer bought the article in target_week (labelled sets only)",
    "sources": "the candidate sources that proposed the article, joined by '+'",
    "n_sources": "how many candidate sources proposed the article",
    "segment": "the customer's behaviour segment (core/segments.py)",
    "recommender": "which recommender the row belongs to (a baseline's name, `model`, `source/<name>`)",
    "vector": "the article's learned content vector",
    "image": "the article's image vector (the retailer's vision model)",
}
"""Descriptions of the columns many tables share; a table's own entry in `COLUMN_DESCRIPTIONS` wins."""

COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "recommendations": {  # the CRM contract (README, "The recommendations table")
        "customer_id": (
            "64-hex H&M customer id; every customer of `customers` has 12 rows, cold-start customers included"
        ),
        "rank": "1..12, 1 = best",
        "article_id": "10-digit article id with its leading zero, always in the catalogue",
        "score": (
            "the week's recommender's score (comparable within one week's table only); top-up rows: the trending score"
        ),
        "source": (
            "the candidate source(s) of the article joined by '+', or the serving baseline's name, or the top-up list"
        ),
        "relevance_tier": "high / medium / low: calibrated bands of the week's recommender (README)",
        "week": "the Wednesday of the week the recommendations are FOR",
        "served_by": "who produced the week's lists: ranker, or the baseline serving as champion",
    },
}
"""Per table: what each column means, for the UI's Columns panel (`dagster/column_schema`)."""


def column_description(table: str | None, column: str) -> str | None:
    """What `column` of `table` means (its own entry, else the shared one; None when neither names it)."""
    return COLUMN_DESCRIPTIONS.get(table or "", {}).get(column) or COMMON_COLUMN_DESCRIPTIONS.get(column)
