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
    # the H&M articles file (raw, validated and quarantined alike)
    "product_code": "the product's 7-digit code: the article id without its 3-digit colour variant",
    "prod_name": "product name",
    "product_type_no": "product type code (e.g. 253 = Vest top)",
    "product_type_name": "product type name",
    "product_group_name": "product group (e.g. Garment Upper body)",
    "graphical_appearance_no": "graphical appearance code (solid, stripe, print, ...)",
    "graphical_appearance_name": "graphical appearance name",
    "colour_group_code": "colour group code",
    "colour_group_name": "colour group name",
    "perceived_colour_value_id": "perceived colour value code (dark, light, dusty, ...)",
    "perceived_colour_value_name": "perceived colour value name",
    "perceived_colour_master_id": "perceived colour master code (black, blue, ...)",
    "perceived_colour_master_name": "perceived colour master name",
    "department_no": "department code",
    "department_name": "department name",
    "index_code": "index letter (A = Ladieswear, F = Menswear, ...)",
    "index_name": "index name",
    "index_group_no": "index group code",
    "index_group_name": "index group (Ladieswear, Menswear, Baby/Children, Sport, Divided)",
    "section_no": "section code",
    "section_name": "section name",
    "garment_group_no": "garment group code",
    "garment_group_name": "garment group name",
    "detail_desc": "the catalogue's free-text description (may be empty)",
    # the H&M customers file
    "FN": "1 when the customer receives fashion news, else empty",
    "Active": "1 when the customer is active for communication, else empty",
    "club_member_status": "ACTIVE, PRE-CREATE or LEFT CLUB",
    "fashion_news_frequency": "NONE, Regularly or Monthly",
    "age": "age in years (empty when unknown)",
    "postal_code": "hashed postal code",
    # figures of a recommender's lists on a week's buyers (baseline_validation, evaluation_report)
    "map_at_12": "Kaggle's MAP@12 on the week's buyers (customers without a purchase are not scored)",
    "recall_at_12": "share of the buyers' purchased articles found in their 12",
    "coverage": "share of the catalogue that appears in anyone's lists",
    "novelty": "mean -log2 of the recommended articles' share of past purchases (higher = less popular)",
    "buyers": "customers with a purchase in the week the lists were scored on",
}
"""Descriptions of the columns many tables share; a table's own entry in `COLUMN_DESCRIPTIONS` wins."""

COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "customer_features": {
        "age_group": "16-24, 25-34, 35-49, 50+ or unknown",
        "n_purchases": "purchase rows in the history up to the week",
        "n_purchases_recent": "purchase rows in the most recent weeks (`FeatureConfig.recent_weeks`)",
        "days_since_last_purchase": "days from the last purchase to the week's last day (null: never bought)",
        "mean_price": "mean price paid",
        "online_share": "share of purchase rows bought online",
        "ladies_share": "share of purchase rows in Ladieswear",
        "men_share": "share of purchase rows in Menswear",
        "kids_share": "share of purchase rows in Baby/Children",
        "favourite_colour": "the colour group bought most",
        "favourite_garment_group": "the garment group bought most",
    },
    "article_features": {
        "n_sales": "purchase rows in the history up to the week",
        "sales_last_week": "purchase rows in the week itself",
        "sales_previous_week": "purchase rows in the week before",
        "trend": "(sales_last_week + 1) / (sales_previous_week + 1)",
        "popularity_rank": "rank by sales_last_week (1 = best seller; ties share the best rank)",
        "mean_price": "mean price paid",
        "online_share": "share of its purchase rows bought online",
        "seasonal_share": "share of its purchase rows in the season of the coming week",
        "preferred_age_group": "the age group that buys it most over its share of all purchases",
        "first_sale": "day of its first sale",
        "days_on_sale": "days from the first sale to the week's last day",
    },
    "customer_segments": {
        "segment": "primary segment: cold_start (no purchase), the first membership by priority, else default",
        "n_purchases": "purchase rows up to the week",
        "bestseller_index": "share of purchase days bought from the previous week's best sellers (smoothed)",
        "loyalty_index": "share of purchase rows in the customer's most frequent index (smoothed)",
        "discount_index": "share of purchase rows paid well below the article's usual price (smoothed)",
        "seasonal_index": "concentration of purchase days over the four seasons (smoothed)",
        **{
            f"member_{s}": f"the customer qualifies for the {s} segment (memberships may overlap)"
            for s in ("bestseller_follower", "index_loyal", "discount_hunter", "seasonal")
        },
    },
    "baseline_recommendations": {"source": "the baseline that produced the list"},
    "baseline_validation": {
        "mean_price": "mean price of the recommended articles",
        "tiers": "the relevance tiers' score bands fitted on these lists (JSON)",
        "validated_on": "the week whose buyers scored the lists",
    },
    "evaluation_report": {
        "mean_price": "mean price of the recommended articles",
        "rank_coverage_list_depth": "the longest list a customer had; beyond it the catalogue follows by popularity",
        "rank_coverage_recs_for_10pct": "recommendations per customer needed to cover 10 % of the purchases",
        "rank_coverage_recs_for_50pct": "recommendations per customer needed to cover 50 % of the purchases",
        "rank_coverage_recs_for_90pct": "recommendations per customer needed to cover 90 % of the purchases",
        "rank_coverage_auc": "area under the rank-coverage curve (1 = every purchase at rank 1, 0.5 = random order)",
        "buying_customers": "customers with a purchase in the scored week",
        "served_by": "who served the published lists: ranker, or the champion baseline",
    },
    "two_tower_candidates": {"model": "the two-tower model that scored the customer: global or their segment's"},
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
    "ranking_inputs": {  # core/stored_inputs.py
        "c": "the customer's integer index in the week's ranking inputs (what the purchase lists join on)",
        "_colour": "the customer's favourite colour group",
        "_garment": "the customer's favourite garment group",
        "customer_age": "age in years (null when unknown)",
        "customer_age_group": "age group code (16-24: 0, 25-34: 1, 35-49: 2, 50+: 3, unknown: 4)",
        "customer_segment": "the primary segment's code (its position in core/segments.SEGMENTS; -1: none)",
        "_rows": "the customer's purchase rows over the feature window",
        "customer_discount_share": "share of the customer's purchases paid below 85 % of the article's usual price",
        **{
            f"bought_{level}": f"the customer's purchases per {level} (counts, days since), one entry per {level}"
            for level in ("article", "product", "department", "section", "product_type", "index_group")
        },
    },
    "ranking_week_inputs": {  # core/stored_inputs.py
        "feature_weeks": "weeks of history the customer and article features were built over",
        "segment_weeks": "weeks of history the segments were assigned over",
        "recent_weeks": "the features' recent window in weeks",
        "top_up_k": "the length of the lists the top-up completes",
        "articles": "every catalogue article's ranking features, codes and week's prices (one entry per article)",
        "group_popularity": "per age group and article: time-decayed and the week's sales, and their ranks",
        "top_up_groups": "per age group: the trending articles that complete a short list",
        "top_up_fallback": "the global fallback ranking (trending, all-time sales, catalogue order)",
    },
}
"""Per table: what each column means, for the UI's Columns panel (`dagster/column_schema`)."""
COLUMN_DESCRIPTIONS["ranking_inputs"] = {  # the customer features as the ranker reads them, under their own names
    **{f"customer_{name}": meaning for name, meaning in COLUMN_DESCRIPTIONS["customer_features"].items()},
    **COLUMN_DESCRIPTIONS["ranking_inputs"],
}


def column_description(table: str | None, column: str) -> str | None:
    """What `column` of `table` means (its own entry, else the shared one; None when neither names it)."""
    own = COLUMN_DESCRIPTIONS.get(table or "", {}).get(column) or COMMON_COLUMN_DESCRIPTIONS.get(column)
    if own or table != "candidates":
        return own
    for prefix, suffix, meaning in _CANDIDATE_COLUMNS:  # one column of each kind per candidate source
        if column.startswith(prefix) and column.endswith(suffix) and len(column) > len(prefix) + len(suffix):
            return meaning.format(source=column[len(prefix) : len(column) - len(suffix)])
    return None


_CANDIDATE_COLUMNS = (
    ("from_", "", "1 when the {source} source proposed the article"),
    ("", "_score", "the {source} source's score of the article (null when it did not propose it)"),
    ("", "_rank", "the article's rank in the {source} source's list (null when it did not propose it)"),
)
