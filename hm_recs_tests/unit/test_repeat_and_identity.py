"""The retrieval models' repeat term (a customer's own earlier articles, by how often, how recently and the article's
cycle) and their article identity embedding, on a shop where re-buying dominates (the generator's grocery profile)."""

import datetime as dt

import polars as pl
import pytest
import torch

from hm_recs.core.weeks import week_of
from hm_recs.models.common import IdIndex, encode_purchases, purchase_cycles, repeat_features
from hm_recs.models.configs import ContentConfig, SequenceConfig, TwoTowerConfig
from hm_recs.models.content import train_content_encoder
from hm_recs.models.sequence_training import train_sequence_model
from hm_recs.models.tower_inputs import PurchaseHistory
from hm_recs.models.training_data import TwoTowerData
from hm_recs.models.two_tower import evaluate, train_two_tower
from hm_recs.synthetic import generate, profile_config

INTS = [
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
]


@pytest.fixture(scope="module")
def grocery():
    data = generate(profile_config("grocery", customers=2500, weeks=14, seed=8))
    articles = data.articles.with_columns([pl.col(c).cast(pl.Int64) for c in INTS]).sort("article_id")
    customers = data.customers.with_columns(pl.col("age").cast(pl.Int16))
    transactions = data.transactions.with_columns(
        pl.col("t_dat").str.to_date(), pl.col("sales_channel_id").cast(pl.Int8)
    )
    week = week_of(transactions["t_dat"].max())
    past = transactions.filter(pl.col("t_dat") < week)
    index_c, index_a = IdIndex.of(customers["customer_id"]), IdIndex.of(articles["article_id"])
    content = train_content_encoder(
        articles, encode_purchases(past, index_c, index_a), ContentConfig(epochs=2), log=lambda m: None
    ).vectors(articles)
    return articles, customers, transactions, week, content, encode_purchases(transactions, index_c, index_a)


def test_purchase_history_looks_up_what_each_customer_bought_before_each_snapshot() -> None:
    day = dt.date(2020, 9, 2)
    frame = pl.DataFrame(
        {
            "customer_idx": [0, 0, 0, 1],
            "article_idx": [2, 2, 1, 2],
            "t_dat": [day, day + dt.timedelta(days=7), day, day],
        }
    )
    snapshots = [
        frame.filter(pl.col("t_dat") <= day).with_columns(pl.lit(day + dt.timedelta(days=7)).alias("scored")),
        frame.with_columns(pl.lit(day + dt.timedelta(days=14)).alias("scored")),
    ]
    history = PurchaseHistory.build(snapshots, frame, n_customers=2, n_articles=3)
    found, times, since = history.lookup(
        torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([[2, 1, 0], [2, 1, 0]])
    )
    assert found.tolist() == [[True, True, False], [True, True, False]]
    assert times[:, 0].tolist() == [1.0, 2.0] and since[:, 0].tolist() == [7.0, 7.0] and since[1, 1] == 14.0
    lo, hi = history.ranges(torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert (hi - lo).tolist() == [2, 1]
    assert history.cycle_days[2] == 7.0  # customer 0 bought article 2 a week apart
    assert repeat_features(times, since, history.cycle_days[torch.tensor([[2, 1, 0], [2, 1, 0]])]).shape == (2, 3, 4)


def test_cycles_are_the_median_days_between_two_purchases_of_one_article() -> None:
    items = pl.DataFrame({"customer": [0, 0, 0, 1, 1], "article": [5, 5, 5, 5, 5], "day": [0, 3, 10, 0, 9]})
    assert purchase_cycles(items, 6)[5] == 7.0  # gaps 3, 7, 9


def test_the_repeat_term_lets_the_two_tower_model_follow_re_buys(grocery) -> None:
    articles, customers, transactions, week, content, _ = grocery
    data = TwoTowerData.build(transactions, customers, articles, week, content)
    assert data.train_inputs.history is not None and len(data.serving_inputs.history.key) > 0
    config = dict(epochs=4, dim=32, hidden=64, article_identity=False)
    plain = train_two_tower(data.train_inputs, data.labels, TwoTowerConfig(repeat=False, **config), log=lambda m: None)
    aware = train_two_tower(data.train_inputs, data.labels, TwoTowerConfig(**config), log=lambda m: None)
    assert plain.model.repeat is None and aware.model.repeat is not None and aware.loss_fell
    without, with_repeat = evaluate(plain.model, data.held_out), evaluate(aware.model, data.held_out)
    print(f"two-tower recall@100 without the repeat term {without.recall_at_k:.3f}, with {with_repeat.recall_at_k:.3f}")
    assert with_repeat.recall_at_k > without.recall_at_k + 0.02


def test_the_repeat_term_lets_the_sequence_model_follow_re_buys(grocery) -> None:
    _, _, transactions, week, content, purchases = grocery
    cutoff = week - dt.timedelta(days=1)
    held_out = purchases.filter(pl.col("t_dat") >= week).select("customer_idx", "article_idx").unique()
    config = dict(epochs=5, batch_size=64, article_identity=False)
    plain = train_sequence_model(
        purchases, content, cutoff, SequenceConfig(repeat=False, **config), held_out=held_out, log=lambda m: None
    )
    aware = train_sequence_model(
        purchases, content, cutoff, SequenceConfig(**config), held_out=held_out, log=lambda m: None
    )
    without, with_repeat = plain.history[-1]["recall_at_100"], aware.history[-1]["recall_at_100"]
    print(f"sequence recall@100 without the repeat term {without:.3f}, with {with_repeat:.3f}")
    assert with_repeat > without + 0.02 and aware.loss_fell
    assert float(aware.model.cycle_days.median()) > 7  # grocery's cycles: weeks, not days


def test_identity_tells_apart_articles_that_share_every_attribute_and_leaves_new_ones_to_content(grocery) -> None:
    articles, customers, transactions, week, content, _ = grocery
    data = TwoTowerData.build(transactions, customers, articles, week, content)
    result = train_two_tower(
        data.train_inputs, data.labels, TwoTowerConfig(epochs=2, dim=32, hidden=64, repeat=False), log=lambda m: None
    )
    model = result.model.eval()
    known = model.known_article
    assert 0 < int(known.sum()) < len(known)  # articles with enough sales, not the rarely sold ones
    same = torch.as_tensor(content[:1].expand(2, -1))  # two articles with one content vector: their identity differs
    both = torch.nonzero(known).squeeze(1)[:2]
    with torch.no_grad():
        vectors = model.article_vectors(both)
        tower = model.article_tower(
            torch.cat([model.inputs.article_numeric[-1, both], model.inputs.article_content[both]], 1)
        )
        assert not torch.allclose(vectors - tower, torch.zeros_like(vectors))  # the identity adds something
        cold = torch.nonzero(~known).squeeze(1)[:1]
        cold_tower = model.article_tower(
            torch.cat([model.inputs.article_numeric[-1, cold], model.inputs.article_content[cold]], 1)
        )
        assert torch.equal(model.article_vectors(cold), cold_tower)  # a new article: content and features alone
    assert same.shape == (2, content.shape[1])


def test_prefix_matches_counts_each_item_among_the_earlier_items_and_finds_the_latest_day() -> None:
    """The sequence model's repeat inputs (one sort and two binary searches per batch) against a plain loop."""
    from hm_recs.models.sequence_training import prefix_matches

    g = torch.Generator().manual_seed(0)
    n, width = 6, 9
    lengths = torch.tensor([9, 4, 1, 7, 2])
    articles = torch.randint(0, n, (len(lengths), width), generator=g, dtype=torch.int32)
    days = torch.sort(torch.randint(0, 100, (len(lengths), width), generator=g, dtype=torch.int32), dim=1).values
    for b, length in enumerate(lengths.tolist()):
        articles[b, length:] = n  # padding
    seq = torch.cat([torch.full((length - 1,), b) for b, length in enumerate(lengths.tolist()) if length > 1])
    pos = torch.cat([torch.arange(length - 1) for length in lengths.tolist() if length > 1])
    items = torch.randint(0, n, (len(seq), 5), generator=g)
    times, last_day = prefix_matches(articles, days, lengths, seq, pos, items, n)
    for t in range(len(seq)):
        for k in range(items.shape[1]):
            earlier = [
                int(days[seq[t], j]) for j in range(int(pos[t]) + 1) if int(articles[seq[t], j]) == int(items[t, k])
            ]
            assert int(times[t, k]) == len(earlier)
            if earlier:
                assert int(last_day[t, k]) == earlier[-1]
