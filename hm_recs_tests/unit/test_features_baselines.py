"""Features and heuristic recommenders on small hand-made histories."""

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recs.core import baselines, features
from hm_recs.core.weeks import parse_week, week_expr, week_of

WEEK = dt.date(2020, 9, 16)  # Wednesday; its Tuesday is 2020-09-22
D = dt.date


def articles(n: int = 30) -> pl.DataFrame:
    rows = []
    for i in range(n):
        rows.append(
            {
                "article_id": f"{i:010d}",
                "colour_group_name": ["Black", "White", "Red"][i % 3],
                "garment_group_name": ["Jersey", "Knitwear"][i % 2],
                "index_group_name": ["Ladieswear", "Menswear", "Baby/Children", "Divided"][i % 4],
            }
        )
    return pl.DataFrame(rows)


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


CUSTOMERS = pl.DataFrame(
    {"customer_id": ["young", "old", "new", "ageless"], "age": [20, 60, 30, None]},
    schema={"customer_id": pl.String, "age": pl.Int16},
)
A = [f"{i:010d}" for i in range(30)]


def test_weeks_are_wednesday_to_tuesday():
    assert (
        week_of(D(2020, 9, 22)) == WEEK and week_of(D(2020, 9, 16)) == WEEK and week_of(D(2020, 9, 15)) == D(2020, 9, 9)
    )
    days = pl.Series([D(2020, 9, 15), D(2020, 9, 16), D(2020, 9, 22), D(2020, 9, 23)])
    assert pl.select(week_expr(pl.lit(days))).to_series().to_list() == [D(2020, 9, 9), WEEK, WEEK, D(2020, 9, 23)]
    with pytest.raises(ValueError, match="not a Wednesday"):
        parse_week("2020-09-15")


def test_customer_features():
    history = tx(
        [
            (D(2020, 9, 20), "young", A[0], 0.02, 2),  # Black, Jersey, Ladieswear
            (D(2020, 9, 21), "young", A[3], 0.04, 2),  # Black, Knitwear, Ladieswear? (3 % 4 = Divided)
            (D(2020, 8, 1), "young", A[1], 0.06, 1),  # White, Knitwear, Menswear (older than 4 weeks)
            (D(2020, 9, 17), "old", A[2], 0.10, 1),  # Red, Jersey, Baby/Children
            (D(2020, 9, 23), "old", A[5], 0.10, 1),  # after the week: must be ignored
        ]
    )
    f = features.customer_features(CUSTOMERS, history, articles(), WEEK).sort("customer_id")
    young = f.filter(pl.col("customer_id") == "young").row(0, named=True)
    assert young["n_purchases"] == 3 and young["n_purchases_recent"] == 2
    assert young["days_since_last_purchase"] == 1 and young["online_share"] == pytest.approx(2 / 3)
    assert young["mean_price"] == pytest.approx(0.04) and young["favourite_colour"] == "Black"
    assert young["ladies_share"] == pytest.approx(1 / 3) and young["men_share"] == pytest.approx(1 / 3)
    assert young["age_group"] == "16-24"
    old = f.filter(pl.col("customer_id") == "old").row(0, named=True)
    assert old["n_purchases"] == 1 and old["kids_share"] == 1.0 and old["age_group"] == "50+"
    new = f.filter(pl.col("customer_id") == "new").row(0, named=True)
    assert new["n_purchases"] == 0 and new["favourite_colour"] is None and new["online_share"] == 0.0
    assert f.filter(pl.col("customer_id") == "ageless")["age_group"][0] == "unknown"
    assert f.height == 4 and f.select(features.CUSTOMER_FEATURES_NOT_NULL).null_count().sum_horizontal()[0] == 0
    # a purchase of an article the catalogue lacks counts among the customer's purchases, in no index group
    unlisted = tx([(D(2020, 9, 18), "old", "9999999999", 0.10, 1)])
    old = (
        features.customer_features(CUSTOMERS, pl.concat([history, unlisted]), articles(), WEEK)
        .filter(pl.col("customer_id") == "old")
        .row(0, named=True)
    )
    assert old["n_purchases"] == 2 and old["kids_share"] == 0.5 and old["ladies_share"] == old["men_share"] == 0.0


def test_article_features():
    history = tx(
        [(D(2020, 9, 16), c, A[0], 0.02, 2) for c in ["young", "old", "young"]]
        + [
            (D(2020, 9, 10), "old", A[1], 0.03, 1),
            (D(2020, 9, 11), "old", A[1], 0.05, 1),
            (D(2020, 9, 25), "old", A[1], 0.05, 1),
        ]
    )
    f = features.article_features(articles(), history, CUSTOMERS, WEEK)
    a0 = f.filter(pl.col("article_id") == A[0]).row(0, named=True)
    a1 = f.filter(pl.col("article_id") == A[1]).row(0, named=True)
    assert (a0["sales_last_week"], a0["sales_previous_week"], a0["trend"]) == (3, 0, 4.0)
    assert (a1["sales_last_week"], a1["sales_previous_week"], a1["n_sales"]) == (0, 2, 2)  # 09-25 is after W
    assert a0["popularity_rank"] == 1 and a0["online_share"] == 1.0 and a1["mean_price"] == pytest.approx(0.04)
    assert a1["preferred_age_group"] == "50+"
    assert f.height == 30 and f.filter(pl.col("n_sales") == 0)["popularity_rank"].min() > 1


def history_for_baselines() -> pl.DataFrame:
    rows = []
    for i in range(5):  # A[0] sold a lot last week, to young and old alike
        rows.append((D(2020, 9, 20), "old" if i % 2 else "young", A[0], 0.02, 1))
    for _ in range(4):  # A[1] is what young people bought last week
        rows.append((D(2020, 9, 21), "young", A[1], 0.02, 1))
    rows += [(D(2020, 8, 1), "old", A[7], 0.02, 1)] * 20  # old bestseller, not trending
    rows += [(D(2020, 9, 1), "old", A[9], 0.02, 1)]  # old's own recent article
    rows += [(D(2020, 9, 30), "young", A[20], 0.02, 1)] * 50  # the future: must never show up
    return tx(rows)


@pytest.mark.parametrize("name", baselines.BASELINES)
def test_every_customer_gets_12_distinct_articles_and_no_future(name):
    recs = baselines.RECOMMENDERS[name](CUSTOMERS, history_for_baselines(), articles(), WEEK)
    per = recs.group_by("customer_id").agg(pl.len(), pl.col("article_id").n_unique().alias("u"), pl.col("rank").max())
    assert sorted(per["customer_id"].to_list()) == sorted(CUSTOMERS["customer_id"].to_list())
    assert per["len"].to_list() == [12] * 4 and per["u"].to_list() == [12] * 4 and per["rank"].to_list() == [12] * 4
    assert A[20] not in recs["article_id"].to_list()
    assert recs.join(articles(), on="article_id", how="anti").height == 0


def top(recs, customer, n=3):
    return recs.filter(pl.col("customer_id") == customer).sort("rank")["article_id"].head(n).to_list()


def test_popularity_is_last_weeks_bestsellers_for_everyone():
    recs = baselines.popularity(CUSTOMERS, history_for_baselines(), articles(), WEEK)
    assert top(recs, "new", 2) == [A[0], A[1]] and top(recs, "old", 2) == [A[0], A[1]]


def test_trending_depends_on_age_group():
    recs = baselines.trending(CUSTOMERS, history_for_baselines(), articles(), WEEK)
    assert top(recs, "young", 1) == [A[1]]  # young bought A[1] more than A[0]
    assert top(recs, "old", 1) == [A[0]]
    assert A[7] not in top(recs, "old", 2)  # not bought in the trending window


def test_repurchase_puts_own_recent_articles_first():
    recs = baselines.repurchase(CUSTOMERS, history_for_baselines(), articles(), WEEK)
    old = recs.filter(pl.col("customer_id") == "old").sort("rank")
    # all three of old's articles of the last 8 weeks, 20 units of A[7] outweighing its age
    assert set(old["article_id"].head(3)) == {A[0], A[7], A[9]} and set(old["source"].head(3)) == {"repurchase"}
    assert old["source"][3] == "trending"
    new = recs.filter(pl.col("customer_id") == "new").sort("rank")  # cold start: trending first, never repurchase
    assert new["source"][0] == "trending" and "repurchase" not in new["source"].to_list()


def test_tiny_catalogue_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than k=12"):
        baselines.popularity(CUSTOMERS, history_for_baselines(), articles(5), WEEK)


def test_top_up_lists_built_once_complete_every_chunk_as_a_whole_would():
    # what `recommendations` does: the lists are built once from the history (then released) and complete the
    # ranker's lists chunk by chunk; each chunk must get what the one-shot top-up gives those customers
    history = history_for_baselines()
    own = pl.DataFrame(
        {
            "customer_id": ["old", "old", "young"],
            "article_id": [A[3], A[4], A[5]],
            "score": [2.0, 1.0, 5.0],
            "source": ["ranker"] * 3,
        }
    )
    whole = baselines.top_up(own, CUSTOMERS, history, articles(), WEEK)
    lists = baselines.TopUpLists.build(CUSTOMERS, history, articles(), WEEK)
    del history
    chunks = [
        lists.complete(own.filter(pl.col("customer_id").is_in(ids)), CUSTOMERS, wanted=pl.Series(ids))
        for ids in (["old", "young"], ["new", "ageless"])
    ]
    assert pl.concat(chunks).sort("customer_id", "rank").equals(whole.sort("customer_id", "rank"))
    assert (
        top(whole, "old", 2) == [A[3], A[4]] and whole.filter(pl.col("customer_id") == "old")["source"][2] == "trending"
    )
    assert A[20] not in whole["article_id"].to_list()  # built as of the week: the future never completes a list


def test_baselines_built_once_give_every_chunk_the_lists_of_the_whole():
    # what `baseline_recommendations` does: what the lists are made of is built once, then each chunk's lists
    history = history_for_baselines()
    built = baselines.WeekBaselines.build(CUSTOMERS, history, articles(), WEEK)
    whole = baselines.recommend_all(CUSTOMERS, history, articles(), WEEK)
    chunks = pl.concat(built.lists(CUSTOMERS, wanted=pl.Series(ids)) for ids in (["old", "young"], ["new", "ageless"]))
    order = ["recommender", "customer_id", "rank"]
    assert chunks.height == whole.height == 3 * 12 * CUSTOMERS.height
    # the same lists; scores up to the order polars sums a group's floats in (not fixed between runs either)
    assert_frame_equal(chunks.sort(order), whole.sort(order), check_exact=False, rel_tol=1e-12)
    for name in baselines.BASELINES:
        alone = baselines.RECOMMENDERS[name](CUSTOMERS, history, articles(), WEEK)
        assert_frame_equal(
            alone.sort(order[1:]),
            whole.filter(pl.col("recommender") == name).drop("recommender").sort(order[1:]),
            check_exact=False,
            rel_tol=1e-12,
        )
