"""Candidate generation on hand-made histories: each source proposes exactly what it should."""

import datetime as dt
import math

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recs.core import candidates as C
from hm_recs.core.candidate_labels import candidate_recall
from hm_recs.core.weeks import week_end

WEEK = dt.date(2020, 9, 16)  # Wednesday; its Tuesday is 2020-09-22, candidates are for 2020-09-23..29
D = dt.date

# Products: P1 has three colours; the rest one article each.
A1, A1B, A1C = "0100001001", "0100001002", "0100001003"
BASKET_A, BASKET_B, BASKET_C = "0200001001", "0200002001", "0200003001"
YOUNG_HIT, OLD_HIT = "0300001001", "0300002001"
FILLER = [f"09{i:05d}001" for i in range(30)]


def articles() -> pl.DataFrame:
    ids = [A1, A1B, A1C, BASKET_A, BASKET_B, BASKET_C, YOUNG_HIT, OLD_HIT, *FILLER]
    return pl.DataFrame({"article_id": ids, "product_code": [int(i[:7]) for i in ids]})


CUSTOMERS = pl.DataFrame(
    {
        "customer_id": ["rita", "cora", "sam", "b1", "b2", "b3", "young", "old", "newy", "newo", "ageless"],
        "age": [30, 30, 30, 30, 30, 30, 20, 60, 22, 65, None],
    },
    schema={"customer_id": pl.String, "age": pl.Float64},
)


def tx(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"t_dat": pl.Date, "customer_id": pl.String, "article_id": pl.String}, orient="row"
    )


def history() -> pl.DataFrame:
    return tx(
        [
            # repurchase: rita's recent article first; one bought before the 8-week window is not proposed
            (D(2020, 7, 1), "rita", FILLER[0]),
            (D(2020, 8, 10), "rita", FILLER[1]),
            (D(2020, 9, 20), "rita", FILLER[2]),
            # co-purchase: A and B together in two baskets, A and C in one; cora bought A alone
            (D(2020, 9, 1), "b1", BASKET_A),
            (D(2020, 9, 1), "b1", BASKET_B),
            (D(2020, 9, 8), "b2", BASKET_A),
            (D(2020, 9, 8), "b2", BASKET_B),
            (D(2020, 9, 8), "b3", BASKET_A),
            (D(2020, 9, 8), "b3", BASKET_C),
            (D(2020, 9, 15), "cora", BASKET_A),
            # same product: sam bought A1; A1B sold 3 times recently, A1C once
            (D(2020, 9, 12), "sam", A1),
            (D(2020, 9, 10), "b1", A1B),
            (D(2020, 9, 11), "b2", A1B),
            (D(2020, 9, 12), "b3", A1B),
            (D(2020, 9, 13), "b1", A1C),
            # trending per age group
            (D(2020, 9, 21), "young", YOUNG_HIT),
            (D(2020, 9, 21), "young", YOUNG_HIT),
            (D(2020, 9, 21), "old", OLD_HIT),
            (D(2020, 9, 21), "old", OLD_HIT),
            (D(2020, 9, 21), "old", OLD_HIT),
        ]
    )


def build(hist=None, customer_ids=None, config=C.CandidateConfig(), **models) -> pl.DataFrame:
    return C.build_candidates(
        CUSTOMERS, history() if hist is None else hist, articles(), WEEK, config, customer_ids=customer_ids, **models
    )


def rows_of(frame: pl.DataFrame, customer: str, source: str) -> pl.DataFrame:
    return frame.filter(pl.col("customer_id") == customer, pl.col(f"from_{source}")).sort(f"{source}_rank")


def test_output_columns_and_one_row_per_pair():
    c = build()
    assert c.columns == C.candidate_columns()
    assert c.select("customer_id", "article_id").is_duplicated().sum() == 0
    assert c["customer_id"].to_list() == sorted(c["customer_id"].to_list())
    assert c.schema["repurchase_score"] == C.SCORE_TYPE
    assert c.schema["repurchase_rank"] == C.RANK_TYPE


def test_repurchase_in_recency_order_within_window():
    rita = rows_of(build(), "rita", "repurchase")
    assert rita["article_id"].to_list() == [FILLER[2], FILLER[1]]  # FILLER[0] is older than 8 weeks
    assert rita["repurchase_rank"].to_list() == [1, 2]
    expected = [0.5 ** (2 / 14), 0.5 ** (43 / 14)]  # days before 2020-09-22, half-life 14
    assert rita["repurchase_score"].to_list() == pytest.approx(expected, rel=1e-6)


def test_copurchase_proposes_the_basket_mate():
    cora = rows_of(build(), "cora", "copurchase")
    # B was bought with A in 2 of A's 4 baskets (cora's own single-item basket counts); C only once (< 2 baskets)
    assert cora["article_id"].to_list() == [BASKET_B]
    assert cora["copurchase_score"][0] == pytest.approx(0.5 ** (7 / 14) * 2 / 4, rel=1e-6)
    # with single baskets allowed, C joins at half the strength; cora's own A is never proposed back
    loose = rows_of(build(config=C.CandidateConfig(copurchase_min_baskets=1)), "cora", "copurchase")
    assert loose["article_id"].to_list() == [BASKET_B, BASKET_C]
    assert BASKET_A not in loose["article_id"].to_list()


def test_same_product_siblings_ranked_by_recent_sales():
    sam = rows_of(build(), "sam", "same_product")
    assert sam["article_id"].to_list() == [A1B, A1C]
    assert sam["same_product_score"].to_list() == [3.0, 1.0]


def test_trending_per_age_group_and_global_for_unknown_age():
    c = build()
    assert rows_of(c, "newy", "trending")["article_id"][0] == YOUNG_HIT
    assert rows_of(c, "newo", "trending")["article_id"][0] == OLD_HIT
    assert OLD_HIT not in rows_of(c, "newy", "trending")["article_id"].to_list()
    ageless = rows_of(c, "ageless", "trending")["article_id"].to_list()
    assert ageless[0] == OLD_HIT and YOUNG_HIT in ageless  # all buyers: the old hit sold most


def test_every_customer_has_at_least_min_candidates_including_cold_start_and_unknown():
    ids = [*CUSTOMERS["customer_id"].to_list(), "ghost"]  # "ghost" is in no table
    c = build(customer_ids=ids)
    counts = dict(c.group_by("customer_id").len().iter_rows())
    assert set(counts) == set(ids)
    assert min(counts.values()) >= 12 and max(counts.values()) <= 100
    topped = c.filter(pl.col("customer_id") == "newy")
    assert topped["from_fallback"].any() and topped.height == 12
    # top-up rows come after the customer's own rows and never repeat an article
    assert topped["from_fallback"].to_list() == sorted(topped["from_fallback"].to_list())


def test_no_future_data_is_read():
    future = tx(
        [(D(2020, 9, 23), who, BASKET_C) for who in ["cora", "b1", "b2", "young", "old", "rita"]]
        + [(D(2020, 9, 23), "cora", BASKET_A), (D(2020, 9, 24), "sam", A1C), (D(2020, 9, 24), "newy", A1C)]
    )
    assert_frame_equal(build(pl.concat([history(), future])), build())


def test_deterministic_whatever_the_input_order():
    assert_frame_equal(build(history().sample(fraction=1.0, shuffle=True, seed=3)), build())


def test_chunks_give_the_rows_of_the_whole():
    pools = C.candidate_pools(CUSTOMERS, history(), articles(), WEEK)
    ids = CUSTOMERS["customer_id"]
    whole = C.customer_candidates(pools, ids)
    chunks = pl.concat([C.customer_candidates(pools, ids[:4]), C.customer_candidates(pools, ids[4:])])
    assert_frame_equal(chunks.sort("customer_id", maintain_order=True), whole)


def test_model_sources_limit_flags_and_sources_string():
    two_tower = pl.DataFrame(
        {
            "customer_id": ["cora"] * 4 + ["rita"],
            "article_id": [
                FILLER[5],
                BASKET_B,
                FILLER[6],
                "9999999999",
                FILLER[7],
            ],  # 9999999999 is not in the catalogue
            "score": [0.9, 0.8, 0.7, 0.6, 0.5],
            "rank": [1, 2, 3, 4, 1],
        }
    )
    c = build(customer_ids=["cora"], two_tower=two_tower, config=C.CandidateConfig(two_tower=2))
    tt = rows_of(c, "cora", "two_tower")
    assert tt["article_id"].to_list() == [FILLER[5], BASKET_B]
    assert tt["two_tower_score"].to_list() == pytest.approx([0.9, 0.8])
    assert c["customer_id"].unique().to_list() == ["cora"]  # rita's rows are not asked for
    b = c.filter(pl.col("article_id") == BASKET_B).row(0, named=True)
    assert b["sources"] == "trending+copurchase+two_tower" and b["n_sources"] == 3
    for row in c.iter_rows(named=True):
        assert row["sources"] == "+".join(s for s in C.SOURCES if row[f"from_{s}"])
        assert all((row[f"{s}_rank"] is None) == (not row[f"from_{s}"]) for s in C.SOURCES)
    assert not c["from_sequence"].any() and c["sequence_score"].null_count() == c.height


def test_cap_keeps_every_sources_best_ranks():
    cfg = C.CandidateConfig(max_per_customer=3, min_per_customer=2)
    rita = build(customer_ids=["rita"], config=cfg)
    # best rank in any source, then more sources, then article id: FILLER[2] (repurchase 1, trending 3) and
    # BASKET_A (trending 1) rank 1; A1B (trending 2) and FILLER[1] (repurchase 2) tie on rank 2: A1B's id is lower
    assert rita["article_id"].to_list() == [FILLER[2], BASKET_A, A1B]
    assert rita["sources"].to_list() == ["repurchase+trending", "trending", "trending"]


def test_config_is_validated():
    with pytest.raises(ValueError, match="min_per_customer"):
        build(config=C.CandidateConfig(min_per_customer=20, max_per_customer=10))


def test_candidate_recall_on_a_hand_example():
    flags = {s: False for s in C.SOURCES}
    rows = [
        ("x", "1", {**flags, "repurchase": True, "trending": True}),
        ("x", "2", {**flags, "trending": True}),
        ("x", "3", {**flags, "copurchase": True}),
        ("y", "2", {**flags, "trending": True}),
        ("y", "9", {**flags, "repurchase": True}),
    ]
    candidates = pl.DataFrame(
        [{"customer_id": c, "article_id": a, **{f"from_{s}": v for s, v in f.items()}} for c, a, f in rows]
    )
    purchases = pl.DataFrame(
        {
            "customer_id": ["x", "x", "x", "y", "z"],
            "article_id": ["1", "1", "4", "2", "5"],  # x bought 1 twice (one pair); z has no candidates
        }
    )
    r = {row["source"]: row for row in candidate_recall(candidates, purchases).iter_rows(named=True)}
    assert list(r) == [C.UNION, *C.SOURCES]
    # in the candidate set: pairs x1, x4, y2 (3); z5 only counts for recall_all_buyers (4 pairs)
    assert (r["union"]["hits"], r["union"]["bought_pairs"], r["union"]["bought_pairs_all"]) == (2, 3, 4)
    assert r["union"]["recall"] == pytest.approx(2 / 3) and r["union"]["recall_all_buyers"] == pytest.approx(2 / 4)
    assert r["union"]["candidates_per_customer"] == pytest.approx(5 / 2)
    assert r["repurchase"]["hits"] == 1 and r["repurchase"]["recall"] == pytest.approx(1 / 3)
    assert r["trending"]["hits"] == 2 and r["trending"]["candidates_per_customer"] == pytest.approx(3 / 2)
    assert r["copurchase"]["hits"] == 0 and r["copurchase"]["recall"] == 0.0
    empty = candidate_recall(candidates, purchases.filter(pl.col("customer_id") == "z"))
    assert math.isnan(empty["recall"][0]) and empty["recall_all_buyers"][0] == 0.0


def test_synthetic_week_deterministic_chunkable_and_complete():
    from hm_recs.synthetic import SyntheticConfig, generate

    data = generate(SyntheticConfig(customers=2000, weeks=8, seed=5, purchase_rate=1.0))
    transactions = data.transactions.with_columns(pl.col("t_dat").str.to_date())
    week = D(2020, 9, 9)
    pools = C.candidate_pools(data.customers, transactions, data.articles, week)
    ids = data.customers["customer_id"]
    whole = C.customer_candidates(pools, ids)
    shuffled = C.build_candidates(
        data.customers, transactions.sample(fraction=1.0, shuffle=True, seed=1), data.articles, week
    )
    assert_frame_equal(shuffled, whole)
    chunks = pl.concat([C.customer_candidates(pools, ids[i::3]) for i in range(3)])
    assert_frame_equal(chunks.sort("customer_id", maintain_order=True), whole)
    counts = whole.group_by("customer_id").len()["len"]
    assert counts.len() == ids.n_unique() and counts.min() >= 12 and counts.max() <= 100
    for source in C.HEURISTIC_SOURCES:
        assert whole[f"from_{source}"].any(), source
    recall = candidate_recall(whole, transactions.filter(pl.col("t_dat") > week_end(week)))
    union = recall.row(0, named=True)
    assert union["source"] == C.UNION and union["recall"] >= recall["recall"][1:].max()
