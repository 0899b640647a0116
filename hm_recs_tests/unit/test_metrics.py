"""MAP@12 against hand-computed cases, Kaggle's reference apk, and ir-measures (where definitions match)."""

import math
import random

import polars as pl
import pytest

from hm_recs.core import metrics


def recs_frame(lists: dict[str, list[str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"customer_id": c, "article_id": a, "rank": i + 1} for c, arts in lists.items() for i, a in enumerate(arts)]
    )


def purchases_frame(bought: dict[str, list[str]]) -> pl.DataFrame:
    return pl.DataFrame([{"customer_id": c, "article_id": a} for c, arts in bought.items() for a in arts])


def kaggle_apk(actual: list[str], predicted: list[str], k: int = 12) -> float:
    """The competition's reference implementation (written out independently here)."""
    if len(predicted) > k:
        predicted = predicted[:k]
    score, hits = 0.0, 0.0
    for i, p in enumerate(predicted):
        if p in actual and p not in predicted[:i]:
            hits += 1.0
            score += hits / (i + 1.0)
    return score / min(len(actual), k) if actual else 0.0


def test_hand_computed_cases():
    recs = recs_frame({"c1": ["a", "b", "c"], "c2": ["x", "y"], "c3": ["q"]})
    bought = purchases_frame({"c1": ["a", "c"], "c2": ["z"], "c4": ["a"]})  # c3 bought nothing; c4 got no recs
    # c1: (1/1 + 2/3) / 2; c2: 0; c4: 0 (no recommendations); c3 is not scored (bought nothing)
    assert metrics.map_at_k(recs, bought) == pytest.approx((1 + 2 / 3) / 2 / 3)
    assert metrics.recall_at_k(recs, bought) == pytest.approx((1.0 + 0 + 0) / 3)


def test_duplicate_purchases_and_predictions_follow_kaggle():
    recs = recs_frame({"c1": ["a", "a", "b"]})
    bought = purchases_frame({"c1": ["a", "a", "b"]})  # two units of a: one distinct article
    assert metrics.map_at_k(recs, bought) == pytest.approx(kaggle_apk(["a", "b"], ["a", "a", "b"]))
    assert metrics.map_at_k(recs, bought) == pytest.approx((1 + 2 / 3) / 2)


def test_only_first_twelve_count_and_denominator_is_min_k():
    arts = [f"a{i}" for i in range(20)]
    recs = recs_frame({"c": arts})
    bought = purchases_frame({"c": arts[11:20]})  # 9 bought, only a11 is in the top 12
    assert metrics.map_at_k(recs, bought) == pytest.approx((1 / 12) / 9)
    many = purchases_frame({"c": arts})  # 20 bought: denominator min(20, 12)
    assert metrics.map_at_k(recs, many) == pytest.approx(1.0)


def test_matches_reference_apk_on_random_lists():
    rng = random.Random(3)
    catalogue = [f"art{i}" for i in range(40)]
    lists, bought = {}, {}
    for c in range(300):
        lists[f"c{c}"] = rng.sample(catalogue, 12) if rng.random() > 0.1 else rng.choices(catalogue, k=12)
        if rng.random() > 0.3:
            bought[f"c{c}"] = rng.choices(catalogue, k=rng.randint(1, 15))
    expected = sum(kaggle_apk(list(set(b)), lists[c]) for c, b in bought.items()) / len(bought)
    assert metrics.map_at_k(recs_frame(lists), purchases_frame(bought)) == pytest.approx(expected)


def test_matches_ir_measures_where_definitions_agree():
    """ir-measures' AP@12 divides by all relevant items, Kaggle by min(|relevant|, 12): equal for <= 12 bought."""
    ir_measures = pytest.importorskip("ir_measures")
    rng = random.Random(5)
    catalogue = [f"art{i}" for i in range(60)]
    lists = {f"c{c}": rng.sample(catalogue, 12) for c in range(200)}
    bought = {c: rng.sample(catalogue, rng.randint(1, 12)) for c in lists}
    qrels = [ir_measures.Qrel(c, a, 1) for c, arts in bought.items() for a in arts]
    run = [ir_measures.ScoredDoc(c, a, float(100 - i)) for c, arts in lists.items() for i, a in enumerate(arts)]
    reference = ir_measures.calc_aggregate([ir_measures.AP @ 12], qrels, run)[ir_measures.AP @ 12]
    assert metrics.map_at_k(recs_frame(lists), purchases_frame(bought)) == pytest.approx(reference, abs=1e-9)


def test_beyond_accuracy_figures():
    recs = recs_frame({"c1": ["a", "b"], "c2": ["a", "c"]})
    stats = pl.DataFrame({"article_id": ["a", "b", "c"], "n_sales": [97, 1, 0], "mean_price": [0.01, 0.03, None]})
    assert metrics.catalogue_coverage(recs, 10) == pytest.approx(0.3)
    assert metrics.mean_price(recs, stats) == pytest.approx((0.01 + 0.03 + 0.01) / 3)
    # p = (n + 1) / (98 + 3): a is the least novel, c (never sold) the most
    expected = sum(-math.log2((n + 1) / 101) for n in [97, 1, 97, 0]) / 4
    assert metrics.novelty(recs, stats) == pytest.approx(expected)


def test_no_buyers_is_nan_not_zero():
    recs = recs_frame({"c1": ["a"]})
    empty = pl.DataFrame(schema={"customer_id": pl.String, "article_id": pl.String})
    assert math.isnan(metrics.map_at_k(recs, empty))


def test_metrics_are_bit_identical_across_calls():
    """Means are summed in customer order, not polars' group order (which varies between calls)."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = 20000
    recs = pl.DataFrame(
        {
            "customer_id": np.repeat(np.arange(n), 12).astype(str),
            "article_id": rng.integers(0, 50, n * 12).astype(str),
            "rank": np.tile(np.arange(1, 13), n),
        }
    )
    buys = pl.DataFrame(
        {"customer_id": rng.integers(0, n, 30000).astype(str), "article_id": rng.integers(0, 50, 30000).astype(str)}
    )
    assert len({metrics.map_at_k(recs, buys) for _ in range(10)}) == 1
    assert len({metrics.recall_at_k(recs, buys) for _ in range(10)}) == 1


def test_personalisation_extremes_and_hand_case():
    same = recs_frame({"c1": ["a", "b"], "c2": ["a", "b"], "c3": ["a", "b"]})
    disjoint = recs_frame({"c1": ["a", "b"], "c2": ["c", "d"], "c3": ["e", "f"]})
    assert metrics.personalisation(same) == pytest.approx(0.0)
    assert metrics.personalisation(disjoint) == pytest.approx(1.0)
    # c1-c2 share 1 of 2, c1-c3 and c2-c3 share none: mean overlap (1/2 + 0 + 0) / 3 pairs
    half = recs_frame({"c1": ["a", "b"], "c2": ["a", "c"], "c3": ["d", "e"]})
    assert metrics.personalisation(half) == pytest.approx(1 - (0.5 / 3))
    assert math.isnan(metrics.personalisation(recs_frame({"c1": ["a"]})))


def test_beyond_accuracy_per_segment():
    recs = recs_frame({"c1": ["a", "b"], "c2": ["a", "b"], "c3": ["c", "d"]})
    segments = pl.DataFrame({"customer_id": ["c1", "c2", "c3"], "segment": ["x", "x", "y"]})
    stats = pl.DataFrame(
        {"article_id": ["a", "b", "c", "d"], "n_sales": [10, 20, 0, 2], "mean_price": [0.1, 0.3, None, 0.2]}
    )
    table = metrics.beyond_accuracy(recs, segments, stats, catalogue_size=8)
    assert table["segment"].to_list() == ["all", "x", "y"]
    x = table.filter(pl.col("segment") == "x").row(0, named=True)
    assert x["customers"] == 2 and x["mean_popularity"] == pytest.approx(15) and x["mean_price"] == pytest.approx(0.2)
    assert x["coverage"] == pytest.approx(2 / 8) and x["personalisation"] == pytest.approx(0.0)
    everyone = table.filter(pl.col("segment") == "all").row(0, named=True)
    assert everyone["customers"] == 3 and everyone["coverage"] == pytest.approx(4 / 8)


def test_purchase_ranks_list_then_popularity_tail():
    lists = recs_frame({"c1": ["a", "b", "c"], "c2": ["d"]})
    order = pl.DataFrame({"article_id": ["d", "c", "b", "a", "e"], "popularity": [1, 2, 3, 4, 5]})
    bought = purchases_frame({"c1": ["b", "e", "b"], "c2": ["d", "a"], "c3": ["c", "zz"]})
    ranks = metrics.purchase_ranks(lists, bought, order)
    # c1: b at 2, e after the 3 listed at popularity 5 -> 8; c2: d at 1, a -> 1 + 4; c3 (no list): c -> 2, unknown -> 6
    assert sorted(ranks.to_list()) == sorted([2, 8, 1, 5, 2, 6])


def test_rank_coverage_quantiles_and_auc():
    figures = metrics.rank_coverage(pl.Series([1, 1, 2, 3, 4, 5, 6, 7, 8, 10]), catalogue_size=11)
    assert figures["recs_for_10pct"] == 1 and figures["recs_for_50pct"] == 4 and figures["recs_for_90pct"] == 8
    assert figures["auc"] == pytest.approx(1 - (0 + 0 + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 9) / 10 / 10)
    assert metrics.rank_coverage(pl.Series([1] * 5), 100)["auc"] == pytest.approx(1.0)
    assert math.isnan(metrics.rank_coverage(pl.Series([], dtype=pl.Int64), 100)["auc"])


def test_popularity_order_is_strict():
    stats = pl.DataFrame({"article_id": ["a", "b", "c", "d"], "sales_last_week": [0, 5, 5, 0], "n_sales": [3, 9, 9, 7]})
    assert metrics.popularity_order(stats)["article_id"].to_list() == ["b", "c", "d", "a"]


@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_retrieval_metrics_match_a_pair_by_pair_reference_with_ties(chunk):
    """The retrieval gates' AUC (ties count half, the item itself excluded) and recall@k, against the definition
    written out pair by pair; the scores repeat values so that ties occur, and more pairs than the copy buffer
    holds (common.RANKED_PAIRS_AT_ONCE) fall in one chunk."""
    import torch

    from hm_recs.models.common import RANKED_PAIRS_AT_ONCE, retrieval_metrics

    rng = random.Random(3)
    n_items, n_customers, k = 40, 30, 5
    scores = torch.tensor([[float(rng.randint(0, 6)) for _ in range(n_items)] for _ in range(n_customers)])
    pairs = {(rng.randrange(n_customers), rng.randrange(n_items)) for _ in range(3 * RANKED_PAIRS_AT_ONCE)}
    held_out = pl.DataFrame(sorted(pairs), schema=["customer_idx", "article_idx"], orient="row").sample(
        fraction=1.0, shuffle=True, seed=1
    )
    figures = retrieval_metrics(lambda c: scores[c].clone(), held_out, n_items, k=k, chunk=chunk)

    auc_terms, recalls = [], []
    for customer in sorted({c for c, _ in pairs}):
        row = scores[customer].tolist()
        top = set(torch.topk(scores[customer], k).indices.tolist())
        bought = [a for c, a in pairs if c == customer]
        for article in bought:
            below = sum(s < row[article] for s in row) + 0.5 * (sum(s == row[article] for s in row) - 1)
            auc_terms.append(below / (n_items - 1))
        recalls.append(len(top & set(bought)) / len(bought))
    assert figures.customers == len(recalls)
    assert figures.auc == pytest.approx(sum(auc_terms) / len(auc_terms), abs=1e-6)  # float32 terms
    assert figures.recall_at_k == pytest.approx(sum(recalls) / len(recalls), abs=1e-6)
