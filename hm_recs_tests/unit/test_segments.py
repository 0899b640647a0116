"""Customer segments: rules on hand-made customers, invariants, and recovery of planted segments."""

import datetime as dt
import math

import polars as pl
import pytest

from hm_recs.core import segments as seg
from hm_recs.synthetic import SyntheticConfig, generate

WEEK = dt.date(2020, 9, 16)  # Wednesday; its Tuesday 2020-09-22 is the cutoff
D = dt.date
FULL, HALF = 0.05, 0.025
INDEXES = ("Ladieswear", "Menswear", "Divided", "Sport")
# two purchase days in each season (autumn 2019, winter, spring, summer 2020)
SPREAD = [
    D(2019, 10, 15),
    D(2019, 11, 15),
    D(2020, 1, 15),
    D(2020, 2, 15),
    D(2020, 4, 15),
    D(2020, 5, 15),
    D(2020, 7, 15),
    D(2020, 8, 15),
]
SUMMER = [
    D(2020, 6, 3),
    D(2020, 6, 17),
    D(2020, 7, 1),
    D(2020, 7, 15),
    D(2020, 7, 29),
    D(2020, 8, 5),
    D(2020, 8, 12),
    D(2020, 8, 26),
]
PLAIN = [f"plain{i}" for i in range(6)]
AGES = {
    **{p: 40 for p in PLAIN},
    "trendsetter": 30,
    "follower": 30,
    "loyal": 45,
    "hunter": 60,
    "seasonal": 20,
    "loyal_hunter": 55,
    "light": 40,
    "cold": 40,
    "old_copycat": 65,
    "ageless": None,
}
EXPECTED = {
    **{p: "default" for p in PLAIN},
    "trendsetter": "default",
    "follower": "bestseller_follower",
    "loyal": "index_loyal",
    "hunter": "discount_hunter",
    "seasonal": "seasonal",
    "loyal_hunter": "discount_hunter",
    "light": "default",
    "cold": "cold_start",
    "old_copycat": "default",
    "ageless": "bestseller_follower",
}
HAND = seg.SegmentConfig(min_purchases=5, min_segment_size=1, top_n=1)


def hand_made() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """customers, transactions, articles.  Every customer buys their own articles (named after
    them), so nobody else's purchases interfere; a walk-in shopper (not a customer) buys every
    article at full price on three days of the first week, which sets the usual prices."""
    rows: list[tuple] = []
    index_of: dict[str, str] = {}

    def buy(customer: str, day: dt.date, article: str, index: str, price: float = FULL, units: int = 1) -> None:
        index_of[article] = index
        rows.extend([(day, customer, article, price, 2)] * units)

    for p in PLAIN:  # spread over the year and the indices, full price
        for j, day in enumerate(SPREAD):
            buy(p, day, f"{p}-{j}", INDEXES[j % 4])
    for j, day in enumerate(SPREAD):
        # the trendsetter makes article B<j> the bestseller of the 25-34s the week before the follower buys it
        buy("trendsetter", day - dt.timedelta(days=7), f"B{j}", INDEXES[j % 4], units=2)
        buy("follower", day, f"B{j}", INDEXES[j % 4])
        buy("old_copycat", day, f"B{j}", INDEXES[j % 4])  # same purchases, but B<j> is not a 50+ bestseller
        buy("ageless", day, f"B{j}", INDEXES[j % 4])  # unknown age: the ranking over all buyers counts
        buy("loyal", day, f"loyal-{j}", "Menswear")
        buy("hunter", day, f"hunter-{j}", INDEXES[j % 4], price=HALF)
        buy("loyal_hunter", day, f"lh-{j}", "Menswear", price=HALF)
    for j, day in enumerate(SUMMER):
        buy("seasonal", day, f"seasonal-{j}", INDEXES[j % 4])
    buy("light", D(2020, 3, 10), "light-0", "Sport")
    buy("light", D(2020, 9, 10), "light-1", "Sport")
    for article in list(index_of):
        for day in (D(2019, 9, 25), D(2019, 9, 26), D(2019, 9, 27)):
            buy("walk-in", day, article, index_of[article])
    customers = pl.DataFrame(
        {"customer_id": list(AGES), "age": list(AGES.values())}, schema={"customer_id": pl.String, "age": pl.Int16}
    )
    articles = pl.DataFrame({"article_id": list(index_of), "index_name": list(index_of.values())})
    return customers, tx(rows), articles


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


def segments_of(assignment: pl.DataFrame) -> dict[str, str]:
    return dict(assignment.select("customer_id", "segment").iter_rows())


@pytest.fixture(scope="module")
def hand():
    customers, transactions, articles = hand_made()
    indices = seg.segment_indices(customers, transactions, articles, WEEK, HAND)
    return customers, transactions, articles, indices


def test_indices_follow_their_definitions(hand):
    customers, transactions, articles, _ = hand
    raw = seg.segment_indices(customers, transactions, articles, WEEK, seg.SegmentConfig(top_n=1, prior_weight=0.0))
    assert raw.columns == seg.INDICES_COLUMNS and raw["customer_id"].to_list() == customers["customer_id"].to_list()
    r = {row["customer_id"]: row for row in raw.iter_rows(named=True)}
    assert r["follower"]["bestseller_index"] == 1.0 and r["plain0"]["bestseller_index"] == 0.0
    assert r["old_copycat"]["bestseller_index"] == 0.0  # bestsellers are per age group
    assert r["ageless"]["bestseller_index"] == 1.0
    assert r["loyal"]["loyalty_index"] == 1.0 and r["plain0"]["loyalty_index"] == 0.25
    assert r["hunter"]["discount_index"] == 1.0 and r["plain0"]["discount_index"] == 0.0
    assert r["seasonal"]["seasonal_index"] == 1.0 and r["plain0"]["seasonal_index"] < 0.1
    assert r["trendsetter"]["n_purchases"] == 16  # rows; its 2 units of one article are one line
    assert r["trendsetter"]["loyalty_index"] == 0.25
    assert r["cold"]["n_purchases"] == 0 and all(r["cold"][c] is None for c in seg.INDEX_COLUMNS.values())
    # smoothing: the same shares pulled towards the population's, more so with less evidence
    smooth = {row["customer_id"]: row for row in hand[3].iter_rows(named=True)}
    assert 0.5 < smooth["loyal"]["loyalty_index"] < 1.0
    assert smooth["light"]["loyalty_index"] < smooth["loyal"]["loyalty_index"]  # 2 of 2 < 8 of 8


def test_segment_rules_on_hand_made_customers(hand):
    indices = hand[3]
    limits = seg.thresholds(indices, HAND)
    assert set(limits) == set(seg.BEHAVIOUR_SEGMENTS)
    assert all(limits[s] >= HAND.floor(s) for s in seg.BEHAVIOUR_SEGMENTS)
    assignment = seg.assign_segments(indices, limits, HAND)
    assert segments_of(assignment) == EXPECTED
    both = assignment.filter(pl.col("customer_id") == "loyal_hunter").row(0, named=True)
    assert both["member_index_loyal"] and both["member_discount_hunter"]
    assert not both["member_bestseller_follower"] and not both["member_seasonal"]
    light = assignment.filter(pl.col("customer_id") == "light").row(0, named=True)
    assert light["n_purchases"] == 2 and not any(light[f"member_{s}"] for s in seg.BEHAVIOUR_SEGMENTS)


def test_priority_resolves_double_membership_and_can_be_revised(hand):
    indices = hand[3]
    limits = seg.thresholds(indices, HAND)
    revised = ("index_loyal", "discount_hunter", "seasonal", "bestseller_follower")
    assert segments_of(seg.assign_segments(indices, limits, HAND, priority=revised))["loyal_hunter"] == "index_loyal"
    config_revised = seg.SegmentConfig(min_purchases=5, min_segment_size=1, top_n=1, priority=revised)
    assert segments_of(seg.assign_segments(indices, limits, config_revised))["loyal_hunter"] == "index_loyal"
    # a segment left out of the priority is never primary: its members fall to their next segment or default
    without_hunters = segments_of(seg.assign_segments(indices, limits, HAND, priority=revised[:1] + revised[2:]))
    assert without_hunters["loyal_hunter"] == "index_loyal" and without_hunters["hunter"] == "default"
    with pytest.raises(ValueError, match="priority"):
        seg.assign_segments(indices, limits, HAND, priority=("index_loyal", "vip"))


def test_every_customer_gets_exactly_one_segment(hand):
    customers, _, _, indices = hand
    assignment = seg.assign_segments(indices, seg.thresholds(indices, HAND), HAND)
    assert assignment.columns == [
        "customer_id",
        "segment",
        *[f"member_{s}" for s in seg.BEHAVIOUR_SEGMENTS],
        "n_purchases",
    ]
    assert sorted(assignment["customer_id"].to_list()) == sorted(customers["customer_id"].to_list())
    assert assignment["customer_id"].is_unique().all() and assignment["segment"].null_count() == 0
    assert set(assignment["segment"]) <= set(seg.SEGMENTS)
    sizes = seg.segment_sizes(assignment)
    assert sizes["segment"].to_list() == list(seg.SEGMENTS) and sizes["n_customers"].sum() == customers.height
    assert sizes["share"].sum() == pytest.approx(1.0)


def test_small_segments_fold_into_default_never_cold_start(hand):
    indices = hand[3]
    config = seg.SegmentConfig(min_purchases=5, min_segment_size=2, top_n=1)
    got = segments_of(seg.assign_segments(indices, seg.thresholds(indices, config), config))
    # discount_hunter and bestseller_follower have two primary customers and stay; the others have one
    assert got["hunter"] == got["loyal_hunter"] == "discount_hunter"
    assert got["follower"] == got["ageless"] == "bestseller_follower"
    assert got["loyal"] == got["seasonal"] == "default"
    assert got["cold"] == "cold_start"  # a single cold-start customer is still cold start


def test_no_future_data(hand):
    customers, transactions, articles, indices = hand
    after = D(2020, 9, 23)  # the Wednesday after the cutoff
    future = tx(
        [(after, "cold", "plain0-0", FULL, 1)] * 10  # the cold-start customer buys
        + [(after, "hunter", f"hunter-{j}", FULL, 1) for j in range(8)] * 5  # prices move
        + [(after, "plain1", "B0", HALF, 1)] * 30
    )  # a new bestseller
    later = seg.segment_indices(customers, pl.concat([transactions, future]), articles, WEEK, HAND)
    assert later.equals(indices)
    assert segments_of(seg.assign_segments(later, seg.thresholds(later, HAND), HAND))["cold"] == "cold_start"


def test_thresholds_come_from_the_distribution_with_a_floor():
    n = 200
    uniform = pl.DataFrame(
        {
            "customer_id": [str(i) for i in range(n)],
            "n_purchases": [10] * n,
            **{c: [0.6] * n for c in seg.INDEX_COLUMNS.values()},
        }
    )
    limits = seg.thresholds(uniform)
    assert all(v > 0.6 for v in limits.values())  # a population where everybody is alike has no member
    alike = seg.assign_segments(uniform, limits, seg.SegmentConfig(min_segment_size=1))
    assert alike["segment"].unique().to_list() == ["default"]
    spread = uniform.with_columns(
        *[pl.Series(c, [i / n for i in range(n)]) for c in seg.INDEX_COLUMNS.values()],
        pl.Series("n_purchases", [10] * (n - 20) + [1] * 20),
    )  # light buyers do not shape the threshold
    limits = seg.thresholds(spread)
    assert limits["index_loyal"] == pytest.approx((n - 20 - 1) / n * 0.85)  # the 85% quantile beats the 0.5 floor
    low = seg.thresholds(spread.with_columns(pl.col("loyalty_index") * 0.2))
    assert low["index_loyal"] == seg.SegmentConfig().loyalty_floor
    empty = seg.thresholds(spread.with_columns(pl.lit(None, dtype=pl.Float64).alias("seasonal_index")))
    assert empty["seasonal"] == math.inf


def test_overlaps_count_shared_memberships(hand):
    indices = hand[3]
    assignment = seg.assign_segments(indices, seg.thresholds(indices, HAND), HAND)
    matrix = seg.overlaps(assignment)
    assert matrix["segment"].to_list() == list(seg.BEHAVIOUR_SEGMENTS)
    assert matrix.columns == ["segment", *seg.BEHAVIOUR_SEGMENTS] and matrix.height == 4
    cell = {row["segment"]: row for row in matrix.iter_rows(named=True)}
    assert cell["index_loyal"]["discount_hunter"] == cell["discount_hunter"]["index_loyal"] == 1  # loyal_hunter
    for s in seg.BEHAVIOUR_SEGMENTS:
        assert cell[s][s] == assignment[f"member_{s}"].sum()
    assert cell["index_loyal"]["index_loyal"] == 2 and cell["seasonal"]["bestseller_follower"] == 0


def test_empty_history_is_all_cold_start():
    customers, transactions, articles = hand_made()
    indices = seg.segment_indices(customers, transactions.clear(), articles, WEEK)
    assert indices["n_purchases"].to_list() == [0] * customers.height
    assignment = seg.assign_segments(indices, seg.thresholds(indices))
    assert assignment["segment"].unique().to_list() == ["cold_start"]


# --- recovery of the planted segments on synthetic data ----------------------------------------------------


@pytest.fixture(scope="module")
def synthetic():
    data = generate(SyntheticConfig(customers=3000, weeks=30, seed=5))
    transactions = data.transactions.with_columns(  # as the pipeline validates them
        pl.col("t_dat").str.to_date(), pl.col("sales_channel_id").cast(pl.Int8)
    )
    return data, transactions


def recovery(assignment: pl.DataFrame, planted: pl.DataFrame) -> dict[str, dict[str, float]]:
    joined = assignment.join(planted.rename({"segment": "planted"}), on="customer_id")
    figures = {}
    for s in seg.BEHAVIOUR_SEGMENTS:
        predicted, truth = pl.col("segment") == s, pl.col("planted") == s
        counts = joined.select(
            predicted.sum().alias("pred"), truth.sum().alias("true"), (predicted & truth).sum().alias("hit")
        ).row(0, named=True)
        figures[s] = {
            "precision": counts["hit"] / max(counts["pred"], 1),
            "recall": counts["hit"] / counts["true"],
            "base_rate": counts["true"] / joined.height,
            "predicted_share": counts["pred"] / joined.height,
        }
    return figures


def test_assignment_recovers_planted_segments(synthetic):
    data, transactions = synthetic
    indices = seg.segment_indices(data.customers, transactions, data.articles, WEEK)
    # the generator's string dates give the same indices
    assert seg.segment_indices(data.customers, data.transactions, data.articles, WEEK).equals(indices)
    assignment = seg.assign_segments(indices, seg.thresholds(indices))
    figures = recovery(assignment, data.planted_segments)
    for s, f in figures.items():
        print(
            f"{s:20s} precision {f['precision']:.3f} (planted base rate {f['base_rate']:.3f})  "
            f"recall {f['recall']:.3f} (random assignment of that size {f['predicted_share']:.3f})"
        )
    for s, f in figures.items():
        assert f["predicted_share"] > 0.02, s  # the segment exists
        assert f["precision"] > 2.5 * f["base_rate"], (s, f)
        assert f["recall"] > 2.5 * f["predicted_share"], (s, f)
    never = data.customers.join(transactions, on="customer_id", how="anti")["customer_id"]
    cold = assignment.filter(pl.col("customer_id").is_in(never.implode()))
    assert cold.height > 0 and cold["segment"].unique().to_list() == ["cold_start"]
