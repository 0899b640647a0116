"""The ranker's feature matrix on small frames, numbers checked by hand."""

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recs.core import candidates as C
from hm_recs.core import features as F
from hm_recs.core import ranking_features as R
from hm_recs.core.candidate_labels import label_candidates
from hm_recs.core.segments import SEGMENTS

WEEK = dt.date(2020, 9, 16)  # Wednesday; its Tuesday is 2020-09-22
D = dt.date
A1, A1B = "0100001001", "0100001002"  # one product, department 10
D1 = "0100002001"  # another product of department 10
E1 = "0200001001"  # department 20
Z1 = "0300001001"  # never sold
ARTICLE_IDS = [A1, A1B, D1, E1, Z1]


def articles() -> pl.DataFrame:
    n = len(ARTICLE_IDS)
    return pl.DataFrame(
        {
            "article_id": ARTICLE_IDS,
            "product_code": [int(a[:7]) for a in ARTICLE_IDS],
            "product_type_no": [253, 253, 272, 255, 265],
            "department_no": [10, 10, 10, 20, 30],
            "section_no": [16] * n,
            "garment_group_no": [1002, 1002, 1009, 1005, 1003],
            "index_group_no": [1, 1, 1, 2, 4],
            "colour_group_code": [9, 10, 9, 9, 73],
            "perceived_colour_master_id": [5, 9, 5, 5, 2],
            "graphical_appearance_no": [1010016] * n,
            "colour_group_name": ["Black", "White", "Black", "Black", "Dark Blue"],
            "garment_group_name": ["Jersey Basic", "Jersey Basic", "Knitwear", "Trousers", "Jersey Fancy"],
            "index_group_name": ["Ladieswear", "Ladieswear", "Ladieswear", "Divided", "Menswear"],
        }
    )


CUSTOMERS = pl.DataFrame(
    {"customer_id": ["ann", "carl", "bob", "nora"], "age": [20, 22, 60, None]},
    schema={"customer_id": pl.String, "age": pl.Float64},
)
SEGMENTS_FRAME = pl.DataFrame(
    {"customer_id": ["ann", "carl", "bob"], "segment": ["index_loyal", "default", "cold_start"]}
)


def tx(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "t_dat": pl.Date,
            "customer_id": pl.String,
            "article_id": pl.String,
            "price": pl.Float64,
            "sales_channel_id": pl.Int8,
        },
        orient="row",
    )


def history() -> pl.DataFrame:
    return tx(
        [
            (D(2020, 9, 10), "ann", A1, 0.02, 2),
            (D(2020, 9, 20), "ann", A1, 0.02, 2),
            (D(2020, 9, 15), "ann", A1B, 0.04, 1),
            (D(2020, 9, 1), "ann", D1, 0.03, 1),
            (D(2020, 9, 20), "carl", E1, 0.01, 1),
            (D(2020, 9, 20), "carl", E1, 0.01, 1),
            (D(2020, 9, 20), "carl", E1, 0.01, 1),
            (D(2020, 9, 21), "bob", A1, 0.05, 2),
        ]
    )


def inputs(hist: pl.DataFrame | None = None) -> R.RankingInputs:
    hist = history() if hist is None else hist
    cf = F.customer_features(CUSTOMERS, hist, articles(), WEEK)
    af = F.article_features(articles(), hist, CUSTOMERS, WEEK)
    return R.ranking_inputs(cf, af, articles(), hist, SEGMENTS_FRAME, WEEK)


def candidate_pairs(pairs: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(pairs, schema={"customer_id": pl.String, "article_id": pl.String}, orient="row")


PAIRS = [("ann", A1), ("ann", A1B), ("ann", E1), ("ann", Z1), ("nora", A1), ("bob", A1), ("ghost", A1)]
NEXT_WEEK = pl.DataFrame({"customer_id": ["ann", "ann", "bob", "carl"], "article_id": [A1B, A1B, D1, E1]})


def row(frame: pl.DataFrame, customer: str, article: str) -> dict:
    return frame.filter(pl.col("customer_id") == customer, pl.col("article_id") == article).row(0, named=True)


def test_columns_types_and_order():
    m = R.ranking_features(inputs(), candidate_pairs(PAIRS), NEXT_WEEK)
    assert m.columns == ["customer_id", "article_id", R.LABEL, *R.FEATURE_COLUMNS]
    assert R.feature_columns() == R.FEATURE_COLUMNS and len(set(R.FEATURE_COLUMNS)) == len(R.FEATURE_COLUMNS)
    assert set(R.CATEGORICAL_FEATURES) <= set(R.FEATURE_COLUMNS)
    for column in R.FEATURE_COLUMNS:
        assert m.schema[column] == (R.CATEGORICAL_TYPE if column in R.CATEGORICAL_FEATURES else R.NUMERIC_TYPE), column
    assert m.select("customer_id", "article_id").rows() == PAIRS  # the candidates' order
    assert R.ranking_features(inputs(), candidate_pairs(PAIRS)).columns == [
        "customer_id",
        "article_id",
        *R.FEATURE_COLUMNS,
    ]


def test_interaction_counts_and_recency():
    m = R.ranking_features(inputs(), candidate_pairs(PAIRS))
    a1 = row(m, "ann", A1)
    counts = ["customer_article_purchases", "customer_product_purchases", "customer_department_purchases"]
    assert [a1[c] for c in counts] == [2, 3, 4]
    days = ["days_since_article_purchase", "days_since_product_purchase", "days_since_department_purchase"]
    assert [a1[d] for d in days] == [2, 2, 2]
    a1b = row(m, "ann", A1B)
    assert [a1b[c] for c in counts] == [1, 3, 4]
    assert a1b["days_since_article_purchase"] == 7 and a1b["days_since_product_purchase"] == 2
    e1 = row(m, "ann", E1)
    assert [e1[c] for c in counts] == [0, 0, 0]
    assert e1["days_since_article_purchase"] is None and e1["days_since_department_purchase"] is None


def test_price_ratio_popularity_and_matches():
    m = R.ranking_features(inputs(), candidate_pairs(PAIRS))
    a1 = row(m, "ann", A1)
    # A1 sold at 0.02, 0.02, 0.05 (mean 0.03); ann paid 0.02, 0.02, 0.04, 0.03 (mean 0.0275)
    assert a1["price_ratio"] == pytest.approx(0.03 / 0.0275, rel=1e-6)
    # age group 16-24 (ann, carl), decayed over 4 weeks with a 7-day half-life to 2020-09-22:
    # E1 3 * 0.5^(2/7) = 2.46 > A1 0.5^(2/7) + 0.5^(12/7) = 1.125 > A1B 0.5 > D1 0.125
    assert a1["age_group_popularity_rank"] == 2
    assert a1["age_group_trend_score"] == pytest.approx(0.5 ** (2 / 7) + 0.5 ** (12 / 7), rel=1e-6)
    assert row(m, "ann", E1)["age_group_popularity_rank"] == 1 and row(m, "ann", A1B)["age_group_popularity_rank"] == 3
    # bob (50+) bought A1 alone: rank 1 in his group; nora (unknown age) sees all buyers: E1 first, A1 second
    assert row(m, "bob", A1)["age_group_popularity_rank"] == 1
    assert row(m, "nora", A1)["age_group_popularity_rank"] == 2
    assert row(m, "ann", Z1)["age_group_popularity_rank"] is None and row(m, "ann", Z1)["article_n_sales"] == 0
    # ann's favourite colour is Black (A1 x2, D1), garment Jersey Basic (A1 x2, A1B)
    assert a1["is_favourite_colour"] == 1 and a1["is_favourite_garment_group"] == 1
    assert row(m, "ann", A1B)["is_favourite_colour"] == 0 and row(m, "ann", E1)["is_favourite_garment_group"] == 0
    # A1's buyers: 2 lines of 16-24, 1 of 50+; overall 7 of 8 rows are 16-24: 50+ has the larger lift
    assert a1["article_preferred_age_group"] == R.AGE_GROUP_CODES["50+"] and a1["is_preferred_age_group"] == 0
    assert row(m, "bob", A1)["is_preferred_age_group"] == 1


def test_customer_and_article_features_and_codes():
    m = R.ranking_features(inputs(), candidate_pairs(PAIRS))
    a1 = row(m, "ann", A1)
    assert a1["customer_age"] == 20 and a1["customer_n_purchases"] == 4 and a1["customer_days_since_last_purchase"] == 2
    assert a1["customer_online_share"] == pytest.approx(0.5) and a1["customer_ladies_share"] == 1.0
    assert a1["customer_age_group"] == 0 and a1["customer_segment"] == SEGMENTS.index("index_loyal")
    assert a1["article_n_sales"] == 3 and a1["article_sales_last_week"] == 2 and a1["article_sales_previous_week"] == 1
    assert a1["article_trend"] == pytest.approx((2 + 1) / (1 + 1))
    assert (a1["product_type_no"], a1["department_no"], a1["colour_group_code"]) == (253, 10, 9)
    nora = row(m, "nora", A1)
    assert nora["customer_age_group"] == R.AGE_GROUP_CODES["unknown"] == 4
    assert nora["customer_segment"] == R.MISSING_CODE  # no segment row
    assert nora["customer_n_purchases"] == 0 and nora["customer_days_since_last_purchase"] is None
    ghost = row(m, "ghost", A1)  # a customer unknown to the inputs
    assert ghost["customer_age_group"] == R.MISSING_CODE and ghost["customer_n_purchases"] is None
    assert ghost["article_n_sales"] == 3


def test_codes_are_stable():
    assert R.AGE_GROUP_CODES == {"16-24": 0, "25-34": 1, "35-49": 2, "50+": 3, "unknown": 4}
    assert R.SEGMENT_CODES == {s: i for i, s in enumerate(SEGMENTS)}


def test_labels():
    m = R.ranking_features(inputs(), candidate_pairs(PAIRS), NEXT_WEEK)
    assert dict(zip(m.select("customer_id", "article_id").rows(), m[R.LABEL].to_list(), strict=True)) == {
        ("ann", A1): 0,
        ("ann", A1B): 1,
        ("ann", E1): 0,
        ("ann", Z1): 0,
        ("nora", A1): 0,
        ("bob", A1): 0,
        ("ghost", A1): 0,
    }
    assert m.schema[R.LABEL] == pl.Int8
    labelled = label_candidates(candidate_pairs([("bob", D1), ("bob", A1)]), NEXT_WEEK)
    assert labelled[R.LABEL].to_list() == [1, 0]


def test_no_future_data_is_read():
    future = tx([(D(2020, 9, 23), "ann", E1, 0.5, 1), (D(2020, 9, 25), "nora", A1B, 0.5, 2)])
    m = R.ranking_features(inputs(), candidate_pairs(PAIRS))
    assert_frame_equal(R.ranking_features(inputs(pl.concat([history(), future])), candidate_pairs(PAIRS)), m)


def test_candidate_columns_become_features_and_chunks_match():
    hist = history()
    cands = C.build_candidates(CUSTOMERS, hist, articles(), WEEK, C.CandidateConfig(min_per_customer=3))
    inp = inputs()
    whole = R.ranking_features(inp, cands, NEXT_WEEK)
    assert whole.height == cands.height
    assert whole["from_repurchase"].to_list() == cands["from_repurchase"].cast(pl.Float32).to_list()
    assert whole["trending_rank"].to_list() == cands["trending_rank"].cast(pl.Float32).to_list()
    ids = CUSTOMERS["customer_id"]
    chunks = pl.concat(
        [
            R.ranking_features(inp, cands.filter(pl.col("customer_id").is_in(part.implode())), NEXT_WEEK)
            for part in (ids[:2], ids[2:])
        ]
    )
    assert_frame_equal(chunks.sort("customer_id", maintain_order=True), whole.sort("customer_id", maintain_order=True))
    # frames without the model columns still give every feature (null)
    bare = R.ranking_features(inp, cands.select("customer_id", "article_id"))
    assert bare.columns[2:] == R.FEATURE_COLUMNS and bare["two_tower_score"].null_count() == bare.height


def test_week_inputs_builds_what_the_feature_assets_build_over_its_windows():
    """`week_inputs` (training weeks and serving alike) = the features and segments functions over the windows
    given: rows older than the feature window or after the week change nothing."""
    from hm_recs.core.segments import assign_segments, segment_indices, thresholds

    catalogue = articles().with_columns(pl.col("index_group_name").alias("index_name"))
    windows = R.InputWindows(feature_weeks=2, segment_weeks=2)
    hist = history()
    outside = tx([(D(2020, 8, 1), "ann", E1, 0.5, 1), (D(2020, 9, 23), "bob", E1, 0.5, 2)])  # too old, too late
    built = R.week_inputs(CUSTOMERS, catalogue, pl.concat([hist, outside]), WEEK, windows)
    recent = hist.filter(pl.col("t_dat") >= pl.lit(WEEK - dt.timedelta(weeks=1)))
    indices = segment_indices(CUSTOMERS, recent, catalogue, WEEK)
    by_hand = R.ranking_inputs(
        F.customer_features(CUSTOMERS, recent, catalogue, WEEK),
        F.article_features(catalogue, recent, CUSTOMERS, WEEK),
        catalogue,
        recent,
        assign_segments(indices, thresholds(indices)),
        WEEK,
    )
    pairs = candidate_pairs(PAIRS)
    assert_frame_equal(R.ranking_features(built, pairs), R.ranking_features(by_hand, pairs))
    # the window matters: ann's purchase of D1 on 2020-09-01 is outside 2 weeks, inside 26
    wide = R.week_inputs(CUSTOMERS, catalogue, hist, WEEK, R.InputWindows())
    d1 = candidate_pairs([("ann", D1)])
    assert row(R.ranking_features(built, d1), "ann", D1)["customer_article_purchases"] == 0
    assert row(R.ranking_features(wide, d1), "ann", D1)["customer_article_purchases"] == 1


def test_purchase_context_features():
    """Prices, recency position, shares and the week's age-group sales, by hand from `history()`."""
    m = R.ranking_features(inputs(), candidate_pairs(PAIRS))
    a1, a1b, e1 = row(m, "ann", A1), row(m, "ann", A1B), row(m, "ann", E1)
    # A1's weekly median prices: week before 0.02, this week (0.02, 0.05) 0.035 = its usual (highest) price
    assert a1["article_week_price_ratio"] == pytest.approx(1.0)
    assert a1["article_previous_week_price_ratio"] == pytest.approx(0.02 / 0.035, rel=1e-6)
    assert a1["article_price_change"] == pytest.approx(0.035 / 0.02, rel=1e-6)
    # A1B sold only the week before: no price this week
    assert a1b["article_week_price_ratio"] is None and a1b["article_previous_week_price_ratio"] == pytest.approx(1.0)
    # ann paid below 0.85 x usual twice (A1 at 0.02 < 0.85 x 0.035) of 4 purchases
    assert a1["customer_discount_share"] == pytest.approx(0.5)
    assert a1["promotion_for_discount_customer"] == pytest.approx(0.5)
    # ann's distinct articles by last purchase: A1 (2 days), A1B (7), D1 (21)
    assert [a1["article_recency_position"], a1b["article_recency_position"]] == [1, 2]
    assert e1["article_recency_position"] is None
    assert [a1["article_recency_gap"], a1b["article_recency_gap"]] == [0, 5]
    assert a1b["product_recency_gap"] == 0  # A1B's product (A1's) was bought on ann's last day
    assert a1["article_share_of_customer"] == pytest.approx(0.5) and e1["article_share_of_customer"] == 0
    # product type 253 (A1, A1, A1B) of 4; E1's type 255 never; every purchase in index group 1 and section 16
    assert a1["customer_product_type_share"] == pytest.approx(0.75) and e1["customer_product_type_share"] == 0
    assert e1["customer_index_group_share"] == 0 and a1["customer_index_group_share"] == pytest.approx(1.0)
    assert a1["customer_section_share"] == pytest.approx(1.0)
    # this week's sales in ann's age group (ann, carl): E1 3, A1 1; nora (unknown age) sees all buyers: E1 3, A1 2
    assert (e1["age_group_week_rank"], e1["age_group_week_sales"]) == (1, 3)
    assert (a1["age_group_week_rank"], a1["age_group_week_sales"]) == (2, 1)
    nora = row(m, "nora", A1)
    assert (nora["age_group_week_rank"], nora["age_group_week_sales"]) == (2, 2)
    assert a1b["age_group_week_sales"] is None  # not sold this week
    # unknown customer: nulls, not errors
    assert row(m, "ghost", A1)["customer_discount_share"] is None
