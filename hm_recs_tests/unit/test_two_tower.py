"""The content encoder and the two-tower model: shapes, learning, determinism, artefacts, planted taste, the trend
term."""

import datetime as dt

import polars as pl
import pytest
import torch

from hm_recs.core.weeks import week_of
from hm_recs.models.article_search import ArticleSearch
from hm_recs.models.common import (
    IdIndex,
    RetrievalFigures,
    encode_purchases,
    finite,
    fixed_sample,
    popularity_retrieval,
    serving_choice,
)
from hm_recs.models.configs import ContentConfig, SearchConfig, TwoTowerConfig
from hm_recs.models.content import CategoricalVocabulary, ContentModel, train_content_encoder
from hm_recs.models.tower_inputs import TowerInputs, article_trend
from hm_recs.models.training_data import TwoTowerData
from hm_recs.models.two_tower import evaluate, load, top_k, train_two_tower
from hm_recs.storage.encoding import from_bytes, to_bytes
from hm_recs.synthetic import SyntheticConfig, generate

FAST = TwoTowerConfig(epochs=2, dim=16, hidden=32)


@pytest.fixture(scope="module")
def tables():
    """Typed tables as the pipeline stores them, from synthetic data with strong planted taste."""
    data = generate(SyntheticConfig(customers=3000, weeks=12, seed=3, purchase_rate=1.0))
    ints = [
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
    articles = data.articles.with_columns([pl.col(c).cast(pl.Int64) for c in ints]).sort("article_id")
    customers = data.customers.with_columns(pl.col("age").cast(pl.Int16))
    transactions = data.transactions.with_columns(
        pl.col("t_dat").str.to_date(), pl.col("sales_channel_id").cast(pl.Int8)
    )
    week = week_of(transactions["t_dat"].max())  # the last week: held out
    return articles, customers, transactions, week


@pytest.fixture(scope="module")
def content(tables):
    articles, customers, transactions, week = tables
    past = transactions.filter(pl.col("t_dat") < week)
    purchases = encode_purchases(past, IdIndex.of(customers["customer_id"]), IdIndex.of(articles["article_id"]))
    return train_content_encoder(articles, purchases, ContentConfig(epochs=3), log=lambda m: None)


@pytest.fixture(scope="module")
def data(tables, content):
    articles, customers, transactions, week = tables
    return TwoTowerData.build(transactions, customers, articles, week, content.vectors(articles))


def test_content_encoder_vectors_for_unsold_articles_and_round_trip(tables, content):
    articles = tables[0]
    assert content.history[-1]["loss"] < content.history[0]["loss"]
    unseen = articles.head(3).with_columns(
        pl.lit("9999999001").alias("article_id"), pl.lit(999999).alias("department_no")
    )
    vectors = content.vectors(unseen)
    assert vectors.shape == (3, content.config.dim) and torch.isfinite(vectors).all()
    restored = ContentModel.load(from_bytes(to_bytes(content.state())[0]))
    assert torch.equal(restored.vectors(articles), content.vectors(articles))


def test_content_encoder_trains_on_at_most_its_budget_per_epoch(tables, content):
    articles, customers, transactions, week = tables
    purchases = encode_purchases(
        transactions.filter(pl.col("t_dat") < week),
        IdIndex.of(customers["customer_id"]),
        IdIndex.of(articles["article_id"]),
    )
    assert [h["examples"] for h in content.history] == [purchases.height] * 3  # the default budget: every purchase
    small = train_content_encoder(
        articles, purchases, ContentConfig(epochs=2, max_pairs_per_epoch=1000), log=lambda m: None
    )
    assert [h["examples"] for h in small.history] == [1000, 1000]
    # and from the purchases of a fixed sample of at most max_customers customers (its embedding table's rows)
    buyers = purchases["customer_idx"].unique().sort()
    kept = buyers.gather(
        pl.Series(fixed_sample(buyers.len(), 300, seed=ContentConfig().seed + 2).numpy())
    )  # its sample
    theirs = purchases.filter(pl.col("customer_idx").is_in(kept.implode())).height
    lines = []
    few = train_content_encoder(articles, purchases, ContentConfig(epochs=2, max_customers=300), log=lines.append)
    assert [h["examples"] for h in few.history] == [theirs] * 2 and theirs < purchases.height // 5
    assert any(f"300 of {buyers.len():,} customers" in line for line in lines)


def test_training_data_reads_nothing_after_w(tables, content):
    articles, customers, transactions, week = tables
    later = transactions.head(500).with_columns(pl.lit(week + dt.timedelta(days=8)).alias("t_dat"))
    a = TwoTowerData.build(transactions, customers, articles, week, content.vectors(articles))
    b = TwoTowerData.build(pl.concat([transactions, later]), customers, articles, week, content.vectors(articles))
    assert a.labels.equals(b.labels) and a.held_out.sort(pl.all()).equals(b.held_out.sort(pl.all()))
    assert torch.equal(a.serving_inputs.article_numeric, b.serving_inputs.article_numeric)
    assert a.labels["snapshot"].min() == 0 and a.labels["snapshot"].max() == 3
    assert a.train_inputs.article_numeric.shape[0] == 5  # 4 label weeks + the held-out week's snapshot


def test_training_data_stored_and_loaded_is_the_built_data_and_trains_alike(data):
    """The week's data is built once and loaded by every two-tower step: what loads is what was built, ids,
    purchases, feature tensors and vocabulary alike, and a model trained on it is the same model."""
    blob, _ = to_bytes(data.state())
    back = TwoTowerData.from_state(from_bytes(blob))
    assert back.customers.ids.equals(data.customers.ids) and back.articles.ids.equals(data.articles.ids)
    assert back.labels.equals(data.labels) and back.held_out.equals(data.held_out)
    for side in ("train_inputs", "serving_inputs"):
        built, loaded = getattr(data, side), getattr(back, side)
        assert loaded.vocabulary.values == built.vocabulary.values
        for name in built.TENSORS:
            assert torch.equal(getattr(loaded, name), getattr(built, name)), (side, name)
    a, b = trained_on_one_thread((data.train_inputs, data.labels), (back.train_inputs, back.labels))
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def trained_on_one_thread(*datasets):
    """A FAST model trained on each (inputs, labels), one torch thread each time: bitwise-repeatable."""
    torch.set_num_threads(1)
    try:
        return [train_two_tower(inputs, labels, FAST, log=lambda m: None) for inputs, labels in datasets]
    finally:
        torch.set_num_threads(2)


def test_shapes_and_a_step_reduces_loss(data):
    model_result = train_two_tower(data.train_inputs, data.labels, FAST, log=lambda m: None)
    model = model_result.model
    customers = torch.arange(5)
    assert model.customer_vectors(customers).shape == (5, FAST.dim)
    assert model.article_vectors().shape == (len(data.articles), FAST.dim)
    assert model.scores(customers).shape == (5, len(data.articles))
    assert model_result.loss_fell and finite(model)


def test_deterministic_for_a_seed_and_round_trip(data):
    a, b = trained_on_one_thread((data.train_inputs, data.labels), (data.train_inputs, data.labels))
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    restored = load(from_bytes(to_bytes(a.state())[0]), data.serving_inputs)
    served = load(a.state(), data.serving_inputs)
    customers, candidates = torch.arange(50).numpy(), torch.arange(len(data.articles)).numpy()
    assert top_k(restored, customers, candidates, k=20).equals(top_k(served, customers, candidates, k=20))
    # serving scores with the served week's sales (the serving inputs' one snapshot), not the training weeks'
    with torch.no_grad():
        expected = served.bias + served.trend(data.serving_inputs.article_trend[-1]).squeeze(-1)
        assert torch.equal(restored.article_bias(), expected)
        assert not torch.equal(expected, load(a.state(), data.train_inputs).article_bias())


def test_repeatable_with_several_torch_threads(tables, data):
    """In-process runs train with every core (`runner.every_core_for_torch`): the weights must not depend on how
    torch's threads interleave. Indexing a tensor that requires grad by repeated indices (`x[inverse]`) did:
    its backward accumulates with atomic adds, and the demo's MAP@12 differed between identical runs."""
    articles, customers, transactions, week = tables
    past = transactions.filter(pl.col("t_dat") < week)
    purchases = encode_purchases(past, IdIndex.of(customers["customer_id"]), IdIndex.of(articles["article_id"]))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        contents = [
            train_content_encoder(articles, purchases, ContentConfig(epochs=2), log=lambda m: None).encoder
            for _ in range(2)
        ]
        towers = [
            train_two_tower(data.train_inputs, data.labels, FAST, held_out=data.held_out, log=lambda m: None)
            for _ in range(2)
        ]
    finally:
        torch.set_num_threads(threads)
    for a, b in [contents, [t.model for t in towers]]:
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert towers[0].history[-1]["auc"] == towers[1].history[-1]["auc"]


def test_an_artefact_from_before_the_trend_term_still_loads(data):
    """States written before the trend term have no trend/article_bias in their config (and an id embedding)."""
    old = train_two_tower(
        data.train_inputs,
        data.labels,
        TwoTowerConfig(epochs=1, dim=16, hidden=32, id_dim=16, trend=False, article_bias=False),
        log=lambda m: None,
    ).state()
    for key in ("trend", "article_bias", "logq_correction"):
        del old["config"][key]
    restored = load(from_bytes(to_bytes(old)[0]), data.serving_inputs)
    assert restored.trend is None and restored.bias is None and restored.customer_id is not None


def test_warm_start_copies_the_global_model(data):
    base = train_two_tower(data.train_inputs, data.labels, FAST, log=lambda m: None)
    warm = train_two_tower(
        data.train_inputs,
        data.labels.head(10),
        TwoTowerConfig(epochs=0, dim=16, hidden=32),
        init_from=base.model,
        log=lambda m: None,
    )
    assert torch.equal(warm.model.article_vectors(), base.model.article_vectors())


def test_top_k_is_bounded_and_ranked(data):
    result = train_two_tower(data.train_inputs, data.labels, FAST, log=lambda m: None)
    candidates = torch.arange(0, len(data.articles), 2).numpy()
    recs = top_k(result.model, torch.arange(30).numpy(), candidates, k=10, chunk=7)
    assert recs.height == 300 and set(recs["article_idx"]) <= set(candidates.tolist())
    ordered = recs.group_by("customer_idx").agg(pl.col("score").sort_by("rank").diff().max()).to_series(1)
    assert (ordered <= 0).all() and recs["rank"].max() == 10


def test_lists_and_held_out_figures_rank_by_the_models_scores(data):
    """The lists' exact search (scores split into [vector, bias] and repeat entries) and the held-out figures'
    scorer (article side computed once) rank by the one formula, `TwoTowerModel.scores`, repeat term included."""
    result = train_two_tower(data.train_inputs, data.labels, FAST, log=lambda m: None)
    model = load(result.state(), data.serving_inputs).eval()
    assert model.repeat is not None
    customers, candidates = torch.arange(40), torch.arange(1, len(data.articles), 3)
    with torch.no_grad():
        scores = model.scores(customers, candidates)
        whole = model.scores(customers)
        precomputed = model.scores(
            customers, article_vectors=model.article_vectors(), article_bias=model.article_bias()
        )
    assert torch.equal(precomputed, whole) and torch.allclose(whole[:, candidates], scores, atol=1e-5)
    repeated = whole - torch.addmm(model.article_bias(), model.customer_vectors(customers), model.article_vectors().T)
    assert repeated.abs().max() > 0  # some customers' own earlier articles carry a repeat term
    recs = top_k(model, customers.numpy(), candidates.numpy(), k=5)
    best = scores.topk(5, dim=1)
    expected = candidates[best.indices].flatten().tolist()
    listed = recs.sort(["customer_idx", "rank"])
    assert listed["article_idx"].to_list() == expected
    assert torch.allclose(torch.tensor(listed["score"].to_numpy()).float(), best.values.flatten(), atol=1e-5)


def test_learns_planted_taste_better_than_popularity(data):
    """Recall@100 on the held-out week: the model must beat last weeks' popularity (fails if it learned nothing)."""
    result = train_two_tower(data.train_inputs, data.labels, held_out=data.held_out, log=lambda m: None)
    baseline = popularity_retrieval(data.labels.filter(pl.col("snapshot") >= 2), data.held_out, len(data.articles))
    learned = result.history[-1]
    print(
        f"two-tower recall@100 {learned['recall_at_100']:.3f} AUC {learned['auc']:.3f} vs popularity"
        f" {baseline.recall_at_k:.3f} / {baseline.auc:.3f}"
    )
    assert learned["recall_at_100"] > baseline.recall_at_k + 0.015, (learned, baseline)
    assert learned["auc"] > baseline.auc + 0.02, (learned, baseline)


def test_training_starts_from_the_popularity_prior(data):
    """Untrained, the model ranks every customer's articles as popularity does (last two weeks' sales), so
    training starts no worse than the gate's bar; without the trend term it starts at chance."""
    bar = popularity_retrieval(data.labels.filter(pl.col("snapshot") >= 2), data.held_out, len(data.articles))

    def untrained(config: TwoTowerConfig):
        return evaluate(
            train_two_tower(data.train_inputs, data.labels, config, log=lambda m: None).model, data.held_out
        )

    prior = untrained(TwoTowerConfig(epochs=0))
    assert (prior.auc, prior.recall_at_k) == pytest.approx((bar.auc, bar.recall_at_k), abs=1e-9)
    assert untrained(TwoTowerConfig(epochs=0, trend=False)).auc < bar.auc - 0.1


def shifting_demand(
    seed: int = 0,
    customers: int = 2000,
    articles: int = 300,
    label_weeks: int = 4,
    per_week: int = 3000,
    drift: float = 0.7,
):
    """Tower inputs, labels and held-out purchases where each article's demand drifts week to week (log demand a
    random walk, steps of sd `drift`) and nothing but the trend term shows it: every customer alike, article
    features constant, random content. Snapshot s scores week s with the sales of weeks s-1 and s-2, as
    `TwoTowerData` does; the last snapshot scores the held-out week."""
    g = torch.Generator().manual_seed(seed)
    log_demand, bought = torch.randn(articles, generator=g), {}
    for week in range(-2, label_weeks + 1):
        log_demand = log_demand + drift * torch.randn(articles, generator=g)
        bought[week] = torch.multinomial(log_demand.exp(), per_week, replacement=True, generator=g)
    sales = {week: torch.bincount(a, minlength=articles).numpy() for week, a in bought.items()}
    snapshots = label_weeks + 1
    trend = [
        article_trend(pl.DataFrame({"sales_last_week": sales[s - 1], "sales_previous_week": sales[s - 2]}))
        for s in range(snapshots)
    ]
    inputs = TowerInputs(
        customer_numeric=torch.zeros(snapshots, customers, 1),
        customer_codes=torch.zeros(snapshots, customers, 1, dtype=torch.long),
        article_numeric=torch.zeros(snapshots, articles, 1),
        article_content=torch.randn(articles, 8, generator=g),
        article_trend=torch.stack(trend),
        vocabulary=CategoricalVocabulary({"segment": []}),
    )

    def purchases(week: int) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "customer_idx": torch.randint(0, customers, (per_week,), generator=g).numpy(),
                "article_idx": bought[week].numpy(),
            }
        )

    labels = pl.concat([purchases(w).with_columns(pl.lit(w).alias("snapshot")) for w in range(label_weeks)])
    return inputs, labels, purchases(label_weeks).unique()


def test_trend_term_follows_demand_that_shifts_between_weeks():
    """Where demand moves from week to week, the model with the trend term scores the held-out week by the sales
    just before it (as well as popularity does); without it, the model can only learn the training weeks' average.
    (On the pipeline's data the article tower also sees recent sales as features: docs/models.md has the figures.)"""
    inputs, labels, held_out = shifting_demand()
    # the identity embedding off in both: it learns the training weeks' average too, and this test is the trend's
    with_trend = train_two_tower(
        inputs, labels, TwoTowerConfig(epochs=3, dim=16, hidden=32, article_identity=False), log=lambda m: None
    )
    without = train_two_tower(
        inputs,
        labels,
        TwoTowerConfig(epochs=3, dim=16, hidden=32, trend=False, article_identity=False),
        log=lambda m: None,
    )
    bar = popularity_retrieval(labels.filter(pl.col("snapshot") >= 2), held_out, inputs.n_articles)
    learned, static = evaluate(with_trend.model, held_out), evaluate(without.model, held_out)
    print(
        f"recall@100 with the trend {learned.recall_at_k:.3f}, without {static.recall_at_k:.3f}, popularity"
        f" {bar.recall_at_k:.3f}"
    )
    assert with_trend.loss_fell and without.loss_fell
    assert learned.recall_at_k > static.recall_at_k + 0.15 and learned.auc > static.auc + 0.08
    assert learned.recall_at_k > bar.recall_at_k - 0.02 and learned.auc > bar.auc - 0.02


def test_each_epoch_trains_on_at_most_its_budget_and_figures_come_at_the_end(data):
    """Above `max_pairs_per_epoch` an epoch trains on a fresh sample of that many pairs, and the gate's fixed loss
    reads a fixed sample of as many; held-out figures only after the last epoch unless `evaluate_every` asks."""
    pairs = data.labels.height
    everyone = train_two_tower(data.train_inputs, data.labels, FAST, held_out=data.held_out, log=lambda m: None)
    assert [h["examples"] for h in everyone.history] == [pairs] * 3  # the default budget: every pair, as before
    assert ["auc" in h for h in everyone.history] == [False, False, True]
    lines = []
    budget = pairs // 5
    config = TwoTowerConfig(epochs=3, dim=16, hidden=32, max_pairs_per_epoch=budget, evaluate_every=2)
    sampled = train_two_tower(data.train_inputs, data.labels, config, held_out=data.held_out, log=lines.append)
    assert [h["examples"] for h in sampled.history] == [budget] * 4  # the fixed loss's sample, then each epoch's
    assert ["auc" in h for h in sampled.history] == [False, False, True, True]
    assert f"{budget:,} of {pairs:,} pairs" in lines[0] and sampled.loss_fell
    with pytest.raises(ValueError):
        TwoTowerConfig(max_pairs_per_epoch=0)


def test_segment_serving_choice():
    global_model = RetrievalFigures(auc=0.8, recall_at_k=0.70, customers=100, k=100)
    assert serving_choice(global_model, RetrievalFigures(0.7, 0.71, 100, 100)) == "segment"  # recall decides
    assert serving_choice(global_model, RetrievalFigures(0.9, 0.70, 100, 100)) == "global"  # a tie keeps global
    assert serving_choice(global_model, RetrievalFigures(0.9, 0.60, 100, 100)) == "global"


def test_segment_model_fine_tunes_on_its_customers(data):
    """Warm-started from the global model and fine-tuned on one group's purchases, the training loss on that
    group falls and the model stays usable for the choice."""
    base = train_two_tower(data.train_inputs, data.labels, FAST, log=lambda m: None)
    group = data.labels["customer_idx"].unique().sort().head(400).implode()
    labels = data.labels.filter(pl.col("customer_idx").is_in(group))
    held = data.held_out.filter(pl.col("customer_idx").is_in(group))
    tuned = train_two_tower(
        data.train_inputs,
        labels,
        TwoTowerConfig(epochs=2, dim=16, hidden=32, lr=1e-3, batch_size=256),
        held_out=held,
        init_from=base.model,
        log=lambda m: None,
    )
    assert tuned.loss_fell and tuned.starting_loss < base.starting_loss  # it started from the trained model
    assert serving_choice(evaluate(base.model, held), evaluate(tuned.model, held)) in {"segment", "global"}


def test_held_out_sample_keeps_whole_customers_up_to_the_bound():
    """The gates' held-out set: at most `max_customers` customers (seeded, the same each call), each with all of
    their held-out purchases; untouched when there are fewer customers."""
    from hm_recs.models.common import held_out_sample

    held_out = pl.DataFrame(
        {
            "customer_idx": [c for c in range(50) for _ in range(c % 3 + 1)],
            "article_idx": [a for c in range(50) for a in range(c % 3 + 1)],
        }
    )
    assert held_out_sample(held_out, 50).equals(held_out)
    sample = held_out_sample(held_out, 20, seed=3)
    assert sample["customer_idx"].n_unique() == 20 and sample.equals(held_out_sample(held_out, 20, seed=3))
    kept = held_out.filter(pl.col("customer_idx").is_in(sample["customer_idx"].unique().implode()))
    assert sample.sort(sample.columns).equals(kept.sort(kept.columns))


def test_a_step_without_its_weeks_training_data_fails_clearly(tmp_path):
    """The two-tower steps load the week's `two_tower_data`: missing, or built with other windows than the step
    is configured with, is a failure that says what to do, never a silent rebuild or a mismatched model."""
    import dagster as dg

    from hm_recs.assets.two_tower import load_two_tower_data
    from hm_recs.registry import ModelRegistry
    from hm_recs.resources import PipelineSettings

    store, week = ModelRegistry(uri=str(tmp_path)), dt.date(2020, 9, 9)
    with pytest.raises(dg.Failure, match="materialize `two_tower_data` for this week"):
        load_two_tower_data(store, week, PipelineSettings())
    store.store_training_data(week, {"history_weeks": 26, "label_weeks": 3}, {})
    with pytest.raises(dg.Failure, match="built with .*'label_weeks': 3.*configured with .*'label_weeks': 4"):
        load_two_tower_data(store, week, PipelineSettings())


def test_local_retention_of_training_data_keeps_recent_and_newer_weeks(tmp_path):
    """Building week W removes local training data more than `keep_weeks` before W, and never a newer week's
    (a backfill of older weeks must not delete what the latest week's steps load)."""
    from hm_recs.registry import ModelRegistry

    store, week = ModelRegistry(uri=str(tmp_path)), dt.date(2020, 9, 9)
    weeks = [week - dt.timedelta(weeks=n) for n in (-2, 0, 1, 8, 9, 20)]
    for w in weeks:
        store.location().write_bytes(store.training_data_key(w), b"x")
    assert store.prune_training_data(week, keep_weeks=8) == [f"week={week - dt.timedelta(weeks=n)}" for n in (20, 9)]
    assert {n.split("/")[2] for n in store.location().names()} == {
        f"week={week - dt.timedelta(weeks=n)}" for n in (-2, 0, 1, 8)
    }


@pytest.mark.parametrize("method", ["flat", "ivf"])
def test_searched_lists_match_the_exact_ones_with_the_repeat_term(data, method):
    """faiss's search, on [vector, bias] with the repeat term merged in, finds the brute force's lists."""
    result = train_two_tower(data.train_inputs, data.labels, FAST, log=lambda m: None)
    model = load(result.state(), data.serving_inputs)
    assert model.repeat is not None  # the repeat term is part of what is compared
    customers, candidates = (
        torch.arange(model.inputs.customer_numeric.shape[1]).numpy(),
        torch.arange(len(data.articles)).numpy(),
    )
    exact = top_k(model, customers, candidates, k=10)
    search = ArticleSearch(SearchConfig(method=method, target_recall=0.95))
    found = top_k(model, customers, candidates, k=10, chunk=256, search=search)
    assert found.height == exact.height and found.schema == exact.schema
    shared = found.join(exact, on=["customer_idx", "article_idx"], how="semi").height / exact.height
    assert shared >= (0.999 if method == "flat" else 0.95), shared
