"""The sequence model (Heinz et al. 2017): sequences, shapes, learning, determinism, artefacts, planted structure."""

import datetime as dt
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
import torch

from hm_recs.models.article_search import ArticleSearch
from hm_recs.models.common import IdentityOptimiser, IdIndex, finite, popularity_retrieval
from hm_recs.models.configs import SearchConfig, SequenceConfig
from hm_recs.models.sequence import SequenceModel, add_repeat_scores, evaluate, load, state, top_k
from hm_recs.models.sequence_data import build_sequences, trend_table
from hm_recs.models.sequence_training import batch_loss, train_sequence_model
from hm_recs.storage.encoding import from_bytes, to_bytes
from hm_recs.synthetic import SyntheticConfig, generate

CONTENT_COLUMNS = ["index_code", "section_no", "garment_group_no", "product_type_no", "colour_group_code"]
TINY = SequenceConfig(dim=8, hidden=16, epochs=2, batch_size=32, negatives=5, max_len=20)
D = dt.date(2020, 9, 1)


def quiet(message: str) -> None:
    pass


def synthetic(config: SyntheticConfig):
    """Indexed purchases (customer_idx, article_idx, t_dat as Date) and one-hot content vectors built from
    catalogue columns (no learned embedding), rows following the articles sorted by article_id."""
    data = generate(config)
    articles = data.articles.sort("article_id")
    content = torch.as_tensor(
        articles.select([pl.col(c).cast(pl.String) for c in CONTENT_COLUMNS]).to_dummies().to_numpy().astype(np.float32)
    )
    customers, index = IdIndex.of(data.customers["customer_id"]), IdIndex.of(articles["article_id"])
    purchases = customers.encode(
        index.encode(data.transactions, "article_id", "article_idx"), "customer_id", "customer_idx"
    ).select("customer_idx", "article_idx", pl.col("t_dat").str.to_date())
    return purchases, content


@pytest.fixture(scope="module")
def small():
    purchases, content = synthetic(SyntheticConfig(customers=300, weeks=6, seed=5, purchase_rate=1.0))
    cutoff = purchases["t_dat"].max() - dt.timedelta(days=7)
    held_out = purchases.filter(pl.col("t_dat") > cutoff).select("customer_idx", "article_idx").unique()
    return purchases, content, cutoff, held_out


@pytest.fixture(scope="module")
def trained(small):
    purchases, content, cutoff, held_out = small
    return train_sequence_model(purchases, content, cutoff, TINY, held_out=held_out, log=quiet)


def frame(rows: list[tuple[int, int, dt.date]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"customer_idx": pl.Int64, "article_idx": pl.Int64, "t_dat": pl.Date}, orient="row"
    )


def handmade() -> pl.DataFrame:
    """Customer 7: baskets on D (3 items, article 2 bought twice), D+3 (1), D+10 (2), given out of order;
    customer 2: 6 single-item baskets; customer 4: one item."""
    rows = [
        (7, 5, D + dt.timedelta(days=10)),
        (7, 1, D),
        (7, 2, D),
        (7, 2, D),
        (7, 3, D),
        (7, 4, D + dt.timedelta(days=3)),
        (7, 6, D + dt.timedelta(days=10)),
    ]
    rows += [(2, a, D + dt.timedelta(days=a)) for a in (6, 0, 5, 1, 4, 2)]
    rows += [(4, 9, D + dt.timedelta(days=2))]
    return frame(rows)


def test_build_sequences_orders_baskets_and_truncates():
    cutoff = D + dt.timedelta(days=20)
    data = build_sequences(handmade(), 10, cutoff, 4, torch.Generator().manual_seed(0))
    assert data.customers.tolist() == [2, 4, 7] and data.lengths.tolist() == [4, 1, 4]
    assert data.articles.shape == (3, 4)
    rows = data.rows(np.array([7, 3, 2, 4]))
    assert rows.tolist() == [2, -1, 0, 1]
    # customer 2: time order, only the last max_len = 4 purchases kept
    assert data.articles[0].tolist() == [2, 4, 5, 6]
    assert (data.days[0].diff() > 0).all()
    # customer 7: 6 distinct items (the duplicate unit is one item), last 4 kept in time order; the D basket
    # was cut to its last item (after shuffling), so its members are in {1, 2, 3}
    seven = data.articles[2].tolist()
    assert seven[0] in (1, 2, 3) and seven[1] == 4 and sorted(seven[2:]) == [5, 6]
    assert data.days[2].tolist() == [(D - dt.date(1970, 1, 1)).days + d for d in (0, 3, 10, 10)]
    # one basket start per basket; only basket starts after position 0 are targets
    assert data.basket_start[2].tolist() == [False, True, True, False]  # position 0: the end of a cut basket
    assert data.basket_start[0].all()
    assert data.targets[2].tolist() == [False, True, True, False]
    assert data.targets[1].tolist() == [False, False, False, False]  # padding and a single purchase
    assert data.articles[1].tolist() == [9, 10, 10, 10]  # padding = n_articles
    # the loss has exactly one target per basket transition
    model = SequenceModel(torch.eye(10), TINY)
    _, n_targets = batch_loss(model, data, torch.arange(3), torch.Generator().manual_seed(0))
    assert n_targets == int(data.targets.sum()) == 2 + 3


def test_baskets_are_shuffled_by_the_generator_only():
    rows = frame([(1, a, D) for a in range(8)] + [(1, 9, D + dt.timedelta(days=1))])
    orders = {
        tuple(
            build_sequences(rows, 10, D + dt.timedelta(days=5), 20, torch.Generator().manual_seed(s))
            .articles[0, :8]
            .tolist()
        )
        for s in range(6)
    }
    assert len(orders) > 1 and all(sorted(o) == list(range(8)) for o in orders)
    a = build_sequences(rows, 10, D + dt.timedelta(days=5), 20, torch.Generator().manual_seed(3))
    b = build_sequences(rows.reverse(), 10, D + dt.timedelta(days=5), 20, torch.Generator().manual_seed(3))
    assert torch.equal(a.articles, b.articles)  # the input row order does not matter
    assert a.basket_start[0].tolist() == [True] + [False] * 7 + [True]


def test_nothing_after_cutoff_is_used(small):
    purchases, content, cutoff, _ = small
    later = purchases.head(200).with_columns(pl.lit(cutoff + dt.timedelta(days=1)).alias("t_dat"))
    later = pl.concat([later, frame([(10**6, 3, cutoff + dt.timedelta(days=2))])])  # a customer only seen later
    mixed = pl.concat([later, purchases]).sample(fraction=1.0, shuffle=True, seed=1)
    a = build_sequences(purchases, content.shape[0], cutoff, 20, torch.Generator().manual_seed(0))
    b = build_sequences(mixed, content.shape[0], cutoff, 20, torch.Generator().manual_seed(0))
    for field in ("customers", "articles", "days", "basket_start", "lengths"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert int(a.days.max()) <= (cutoff - dt.date(1970, 1, 1)).days
    as_of = cutoff + dt.timedelta(days=1)
    assert torch.equal(trend_table(a, as_of), trend_table(b, as_of))


@pytest.mark.parametrize("encoder", ["lstm", "transformer"])
def test_shapes(small, encoder):
    purchases, content, cutoff, held_out = small
    config = SequenceConfig(dim=8, hidden=16, epochs=1, batch_size=64, max_len=20, encoder=encoder)
    result = train_sequence_model(purchases, content, cutoff, config, held_out=held_out, log=quiet)
    model = result.model
    data = build_sequences(purchases, content.shape[0], cutoff, config.max_len, torch.Generator().manual_seed(0))
    rows = torch.arange(5)
    vectors = model.customer_vectors(data, rows, cutoff + dt.timedelta(days=1))
    assert vectors.shape == (5, 8)
    assert model.article_vectors().shape == (content.shape[0], 8)
    assert model.score(vectors).shape == (5, content.shape[0])
    some = torch.tensor([3, 1, 4])
    assert torch.allclose(model.score(vectors, some), model.score(vectors)[:, some])
    assert set(result.history[0]) >= {"epoch", "loss", "seconds", "auc", "recall_at_100"} and finite(model)
    # the vector of a customer depends only on their own (left-aligned, causal) sequence, not on the batch
    alone = model.customer_vectors(data, torch.tensor([2]), cutoff + dt.timedelta(days=1))
    assert torch.allclose(alone[0], vectors[2], atol=1e-5)
    # and on the date it is for (time until the prediction date)
    later = model.customer_vectors(data, rows, cutoff + dt.timedelta(days=30))
    assert not torch.allclose(later, vectors)


def test_one_step_reduces_the_loss_on_a_planted_problem():
    """Customers walk through their group's articles in a fixed cycle: next purchase = current article + 1."""
    rows = []
    for customer in range(40):
        group = customer % 3
        rows += [(customer, group * 4 + (customer + t) % 4, D + dt.timedelta(days=2 * t)) for t in range(8)]
    data = build_sequences(frame(rows), 12, D + dt.timedelta(days=30), 20, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = SequenceModel(torch.eye(12), SequenceConfig(dim=8, hidden=16, negatives=5))
    optimiser = IdentityOptimiser(model, model.article_id, 1e-2, 0.0, 0.0)  # the identity rows' gradients are sparse
    everyone = torch.arange(len(data))
    before, n = batch_loss(model, data, everyone, torch.Generator().manual_seed(1))
    optimiser.zero_grad()
    before.backward()
    optimiser.step()
    after, _ = batch_loss(model, data, everyone, torch.Generator().manual_seed(1))  # the same negatives
    assert n == 40 * 7 and after.item() < before.item()


def test_repeatable_with_several_torch_threads(small):
    """As in-process runs train (every core): the weights must not depend on how torch's threads interleave
    (test_two_tower's test of the same name). The default sizes: TINY's collide too rarely to show it."""
    purchases, content, cutoff, held_out = small
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a, b = [
            train_sequence_model(purchases, content, cutoff, SequenceConfig(epochs=2), held_out=held_out, log=quiet)
            for _ in range(2)
        ]
    finally:
        torch.set_num_threads(threads)
    assert all(
        torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    )
    untimed = [[{k: v for k, v in h.items() if k != "seconds"} for h in r.history] for r in (a, b)]
    assert untimed[0] == untimed[1]  # losses and held-out figures too (only the epoch timings differ)


def test_deterministic_for_a_seed(small):
    purchases, content, cutoff, held_out = small
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = train_sequence_model(purchases, content, cutoff, TINY, held_out=held_out, log=quiet)
        b = train_sequence_model(purchases, content, cutoff, TINY, held_out=held_out, log=quiet)
        other = train_sequence_model(purchases, content, cutoff, replace(TINY, seed=1), log=quiet)
    finally:
        torch.set_num_threads(threads)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert a.history[-1]["recall_at_100"] == b.history[-1]["recall_at_100"]
    # retrieval_metrics sums its AUC terms in the order of an unordered `unique()`: equal up to rounding
    assert a.history[-1]["auc"] == pytest.approx(b.history[-1]["auc"], abs=1e-6)
    assert all(
        torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    )
    assert [h["loss"] for h in other.history] != [h["loss"] for h in a.history]
    data = build_sequences(purchases, content.shape[0], cutoff, TINY.max_len, torch.Generator().manual_seed(0))
    customers, candidates = np.arange(0, 300, 3), np.arange(content.shape[0])
    as_of = cutoff + dt.timedelta(days=1)
    assert top_k(a, data, customers, candidates, as_of, k=20).equals(top_k(b, data, customers, candidates, as_of, k=20))


def test_each_epoch_trains_on_at_most_its_budget_and_figures_come_at_the_end(small, trained, monkeypatch):
    """Above `max_sequences_per_epoch` an epoch trains on a fresh sample of that many sequences (the gate's fixed
    loss on a fixed sample of as many); held-out figures only after the last epoch unless `evaluate_every` asks."""
    purchases, content, cutoff, held_out = small
    trainable = int(
        build_sequences(purchases, content.shape[0], cutoff, TINY.max_len, torch.Generator().manual_seed(0))
        .targets.any(1)
        .sum()
    )
    assert [h["examples"] for h in trained.history] == [trainable] * TINY.epochs  # the default budget: everyone
    assert ["auc" in h for h in trained.history] == [False, True]
    touched = {"train": [], "fixed": []}

    def spy(model, data, rows, *args, **kwargs):
        touched["train" if model.training else "fixed"].append(rows.tolist())
        return batch_loss(model, data, rows, *args, **kwargs)

    monkeypatch.setattr("hm_recs.models.sequence_training.batch_loss", spy)
    budget = trainable // 4
    config = replace(TINY, epochs=3, max_sequences_per_epoch=budget, evaluate_every=2)
    result = train_sequence_model(purchases, content, cutoff, config, held_out=held_out, log=quiet)
    assert [h["examples"] for h in result.history] == [budget] * 3
    assert ["auc" in h for h in result.history] == [False, True, True] and result.history[-1]["recall_at_100"] >= 0
    per_epoch = -(-budget // config.batch_size)  # batches per epoch
    epochs = [sum(touched["train"][e * per_epoch : (e + 1) * per_epoch], []) for e in range(3)]
    assert all(len(rows) == len(set(rows)) == budget for rows in epochs) and len({frozenset(r) for r in epochs}) == 3
    fixed = sum(touched["fixed"], [])
    assert len(fixed) == 2 * budget and set(fixed[:budget]) == set(fixed[budget:])  # before and after: the same
    assert np.isfinite(result.starting_loss) and np.isfinite(result.final_loss)


def test_round_trip_through_the_artefact_store(small, trained):
    purchases, content, cutoff, _ = small
    blob, digest = to_bytes(state(trained))
    assert digest.startswith("sha256:")
    restored = load(from_bytes(blob), content)
    data = build_sequences(purchases, content.shape[0], cutoff, TINY.max_len, torch.Generator().manual_seed(0))
    rows, as_of = torch.arange(len(data)), cutoff + dt.timedelta(days=1)
    with torch.no_grad():
        original = trained.model.score(trained.model.customer_vectors(data, rows, as_of))
        again = restored.score(restored.customer_vectors(data, rows, as_of))
    assert torch.equal(original, again) and int(restored.trend_day) == int(trained.model.trend_day)
    customers, candidates = data.customers.numpy(), np.arange(content.shape[0])
    assert top_k(trained, data, customers, candidates, as_of, k=10).equals(
        top_k(restored, data, customers, candidates, as_of, k=10)
    )
    with pytest.raises(ValueError):
        load(from_bytes(blob), content[:, :-1])


def test_trend_is_as_of_the_scored_day(small, trained):
    """Training sets the trend inputs for the day after the cutoff; scoring another day computes its own from
    the sequences (sales of the 2 weeks before it) without changing the model."""
    purchases, content, cutoff, _ = small
    model = trained.model
    data = build_sequences(purchases, content.shape[0], cutoff, TINY.max_len, torch.Generator().manual_seed(0))
    as_of = cutoff + dt.timedelta(days=1)
    assert int(model.trend_day) == (as_of - dt.date(1970, 1, 1)).days and model.trend_for(data, as_of) is None
    assert torch.equal(trend_table(data, as_of)[:2].T, model.current_trend)
    later = cutoff + dt.timedelta(days=8)
    customers, candidates = data.customers.numpy()[:20], np.arange(content.shape[0])
    expected = model.score(model.customer_vectors(data, torch.arange(20), later), trend=model.trend_for(data, later))
    articles, days, lengths, _ = model._batch(data, torch.arange(20))  # + the repeat term of their own articles
    expected = add_repeat_scores(model, expected, articles, days, lengths, (later - dt.date(1970, 1, 1)).days)
    recs = top_k(trained, data, customers, candidates, later, k=5)
    best = torch.topk(expected, 5).values.detach().numpy()
    assert np.allclose(recs["score"].to_numpy().reshape(20, 5), best, atol=1e-5)
    assert int(model.trend_day) == (as_of - dt.date(1970, 1, 1)).days


def test_weights_finite_and_loss_falls(trained):
    assert finite(trained.model)
    assert trained.history[-1]["loss"] < trained.history[0]["loss"]
    # the gate's figure: the loss over every target on the same fixed negatives, before and after training
    assert trained.loss_fell


def test_top_k_is_bounded_and_ranked(small, trained):
    purchases, content, cutoff, _ = small
    data = build_sequences(purchases, content.shape[0], cutoff, TINY.max_len, torch.Generator().manual_seed(0))
    candidates = np.arange(0, content.shape[0], 2)
    asked = np.concatenate([data.customers.numpy()[:30], [10**6]])  # the last one has no history: skipped
    recs = top_k(trained, data, asked, candidates, cutoff + dt.timedelta(days=1), k=10, chunk=7)
    assert recs.height == 300 and set(recs["article_idx"]) <= set(candidates.tolist())
    assert set(recs["customer_idx"]) == set(asked[:30].tolist())
    ordered = recs.group_by("customer_idx").agg(pl.col("score").sort_by("rank").diff().max()).to_series(1)
    assert (ordered <= 0).all() and recs["rank"].min() == 1 and recs["rank"].max() == 10
    assert recs.schema == {"customer_idx": pl.Int64, "article_idx": pl.Int64, "score": pl.Float64, "rank": pl.Int16}


def test_learns_planted_structure_better_than_popularity():
    """Train on all weeks but the last; recall@100 on the last week's purchases must beat the popularity of the
    2 weeks before the cutoff (on the same customers: those with history) by a clear margin. An untrained
    model (its popularity prior plus random customer vectors) does not."""
    purchases, content = synthetic(SyntheticConfig(customers=2000, weeks=10, seed=3, purchase_rate=1.5))
    cutoff = purchases["t_dat"].max() - dt.timedelta(days=7)
    held_out = purchases.filter(pl.col("t_dat") > cutoff).select("customer_idx", "article_idx").unique()
    past = purchases.filter(pl.col("t_dat") <= cutoff)
    known = held_out.filter(pl.col("customer_idx").is_in(past["customer_idx"].unique().implode()))
    baseline = popularity_retrieval(
        past.filter(pl.col("t_dat") > cutoff - dt.timedelta(days=14)), known, content.shape[0]
    )
    config = SequenceConfig(batch_size=64, epochs=12)
    result = train_sequence_model(purchases, content, cutoff, config, held_out=held_out, log=quiet)
    learned = result.history[-1]
    untrained = train_sequence_model(purchases, content, cutoff, SequenceConfig(epochs=0), log=quiet)
    data = build_sequences(purchases, content.shape[0], cutoff, config.max_len, torch.Generator().manual_seed(0))
    prior = evaluate(untrained.model, data, held_out, cutoff + dt.timedelta(days=1))
    print(
        f"sequence recall@100 {learned['recall_at_100']:.3f} AUC {learned['auc']:.3f} "
        f"({learned['customers']} customers) vs popularity {baseline.recall_at_k:.3f} / {baseline.auc:.3f}, "
        f"untrained {prior.recall_at_k:.3f} / {prior.auc:.3f}"
    )
    assert learned["customers"] == baseline.customers
    assert learned["recall_at_100"] > baseline.recall_at_k + 0.04, (learned, baseline)
    assert learned["auc"] > baseline.auc + 0.02, (learned, baseline)
    assert prior.recall_at_k < baseline.recall_at_k + 0.04


def same_lists(a: pl.DataFrame, b: pl.DataFrame) -> float:
    """Share of (customer, article) rows of `a` also in `b`."""
    return a.join(b, on=["customer_idx", "article_idx"], how="semi").height / max(a.height, 1)


@pytest.mark.parametrize("method", ["flat", "ivf"])
def test_searched_lists_match_the_exact_ones_with_the_repeat_term(small, trained, method):
    """faiss's search, on [vector, bias] with the repeat term merged in, finds the brute force's lists."""
    purchases, content, cutoff, _ = small
    data = build_sequences(purchases, content.shape[0], cutoff, TINY.max_len, torch.Generator().manual_seed(0))
    assert trained.model.repeat is not None  # the repeat term is part of what is compared
    customers, candidates, as_of = data.customers.numpy(), np.arange(content.shape[0]), cutoff + dt.timedelta(days=1)
    exact = top_k(trained, data, customers, candidates, as_of, k=10)
    search = ArticleSearch(SearchConfig(method=method, target_recall=0.95))
    found = top_k(trained, data, customers, candidates, as_of, k=10, chunk=64, search=search)
    assert found.height == exact.height and found.schema == exact.schema
    assert same_lists(found, exact) >= (0.999 if method == "flat" else 0.95)
