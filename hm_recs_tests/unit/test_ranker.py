"""The LightGBM ranker on planted candidates: one feature carries the purchase signal (with noise), the rest
are noise. The ranker must find it, beat a shuffled-label control, serialise without pickle, score in chunks,
and its relevance tiers must keep their ordering on a held-out week."""

import dataclasses
import json
import math

import numpy as np
import polars as pl
import pytest

from hm_recs.core import tiers as T
from hm_recs.core.metrics import map_at_k
from hm_recs.models import ranker as R

FEATURES = ["signal", "noise_a", "noise_b", "colour"]
CATEGORICAL = ["colour"]
CUSTOMERS, CANDIDATES = 300, 100
TRAIN_WEEKS, VALIDATION_WEEK, TEST_WEEK = (1, 2, 3), 4, 5
# One thread (the default): LightGBM's OpenMP threads slow down about tenfold on oversubscribed cores.
FAST = R.RankerConfig(n_estimators=150, early_stopping_rounds=20, num_threads=1, log_every=5)


def planted(seed: int = 0) -> pl.DataFrame:
    """CUSTOMERS x CANDIDATES rows per week; P(bought) = sigmoid(-5 + 2 * latent), `signal` = latent + noise
    (about 3 % of candidates bought, so ~3 purchases per customer and a few customers with none)."""
    rng = np.random.default_rng(seed)
    weeks = []
    for week in (*TRAIN_WEEKS, VALIDATION_WEEK, TEST_WEEK):
        n = CUSTOMERS * CANDIDATES
        latent = rng.normal(size=n)
        bought = rng.uniform(size=n) < 1 / (1 + np.exp(5.0 - 2.0 * latent))
        weeks.append(
            pl.DataFrame(
                {
                    "week": np.full(n, week, dtype=np.int32),
                    "customer_id": np.repeat([f"c{i:04d}" for i in range(CUSTOMERS)], CANDIDATES),
                    "article_id": np.tile([f"a{j:04d}" for j in range(CANDIDATES)], CUSTOMERS),
                    "signal": latent + rng.normal(scale=0.7, size=n),
                    "noise_a": rng.normal(size=n),
                    "noise_b": rng.uniform(size=n),
                    "colour": rng.integers(0, 8, size=n),
                    "label": bought.astype(np.int8),
                }
            )
        )
    return pl.concat(weeks)


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    return planted()


@pytest.fixture(scope="module")
def weeks(data):
    train = data.filter(pl.col("week").is_in(TRAIN_WEEKS))
    validation = data.filter(pl.col("week") == VALIDATION_WEEK)
    test = data.filter(pl.col("week") == TEST_WEEK)
    # Every fifth customer also bought an article that was never a candidate: it counts, as on Kaggle.
    missed = pl.DataFrame({"customer_id": [f"c{i:04d}" for i in range(0, CUSTOMERS, 5)], "article_id": "z9999"})
    purchases = pl.concat([validation.filter(pl.col("label") == 1).select("customer_id", "article_id"), missed])
    return train, validation, test, purchases


@pytest.fixture(scope="module")
def trained(weeks):
    train, validation, _, purchases = weeks
    lines: list[str] = []
    result = R.train_ranker(
        train, validation, FEATURES, CATEGORICAL, FAST, log=lines.append, validation_purchases=purchases
    )
    return result, lines


def test_ranker_beats_shuffled_label_control(weeks, trained):
    train, validation, _, purchases = weeks
    result, _ = trained
    shuffled = train.with_columns(pl.col("label").shuffle(seed=1))
    control = R.train_ranker(
        shuffled, validation, FEATURES, CATEGORICAL, FAST, log=lambda _: None, validation_purchases=purchases
    )
    assert result.validation["map_at_12"] > control.validation["map_at_12"] + 0.10
    assert result.validation["map_at_12"] > 0.2
    assert result.importances["feature"][0] == "signal"
    assert result.importances["gain_share"].sum() == pytest.approx(1.0)


def test_figures_history_and_log_lines(trained):
    result, lines = trained
    figures = result.validation
    assert 1 <= figures["best_iteration"] <= FAST.n_estimators
    assert result.booster.num_trees() == figures["best_iteration"]  # the served booster holds the best trees only
    assert figures["buying_customers"] > 0 and 0 < figures["recall_at_12"] <= 1
    assert [h["iteration"] for h in result.history] == list(range(1, len(result.history) + 1))
    assert any("iteration 5:" in line for line in lines) and "best iteration" in lines[-1]


def test_validation_counts_purchases_the_candidates_missed(weeks, trained):
    _, validation, _, purchases = weeks
    result, _ = trained
    recommended = R.top_k(result.score(validation))
    assert result.validation["map_at_12"] == pytest.approx(map_at_k(recommended, purchases))
    labelled_only = map_at_k(recommended, validation.filter(pl.col("label") == 1))
    assert result.validation["map_at_12"] < labelled_only


def test_downsampling_keeps_positives_and_drops_empty_groups(weeks):
    train = weeks[0]
    rows = R.downsample(train, R.RankerConfig(negatives_per_positive=5))
    per_group = rows.group_by("week", "customer_id").agg(pl.col("label").sum().alias("pos"), pl.len().alias("n"))
    assert rows["label"].sum() == train["label"].sum()
    assert (per_group["pos"] > 0).all()
    assert ((per_group["n"] - per_group["pos"]) <= per_group["pos"] * 5).all()
    assert rows.equals(rows.sort("week", "customer_id", "article_id"))  # query groups contiguous
    everything = R.downsample(train, R.RankerConfig(objective="binary", negatives_per_positive=None))
    assert everything.height == train.height


def test_binary_trains_and_the_configured_objective_serves(weeks):
    train, validation, _, purchases = weeks
    for served, compared in (("lambdarank", ["binary"]), ("binary", ["lambdarank", "binary"])):
        config = R.RankerConfig(**{**dataclasses.asdict(FAST), "objective": served})
        result, figures = R.compare_objectives(
            train,
            validation,
            FEATURES,
            CATEGORICAL,
            config,
            log=lambda _: None,
            validation_purchases=purchases,
            compared=compared,
        )
        assert set(figures) == {"lambdarank", "binary"}
        assert all(value > 0.2 for value in figures.values())
        # served as configured, whichever scored higher on the validation week (no choice on the gate's week)
        assert result.config.objective == served and result.validation["map_at_12"] == figures[served]


def test_fixed_rounds_by_default(weeks):
    train, validation, _, purchases = weeks
    config = R.RankerConfig(n_estimators=30, num_threads=1)
    assert R.RankerConfig().early_stopping_rounds is None
    result = R.train_ranker(
        train, validation, FEATURES, CATEGORICAL, config, log=lambda _: None, validation_purchases=purchases
    )
    assert result.booster.num_trees() == 30 and result.validation["best_iteration"] == 30
    assert len(result.history) == 30  # the learning curve is still recorded


def test_same_seed_same_model(weeks, trained):
    train, validation, _, purchases = weeks
    result, _ = trained
    again = R.train_ranker(
        train, validation, FEATURES, CATEGORICAL, FAST, log=lambda _: None, validation_purchases=purchases
    )
    assert again.booster.model_to_string() == result.booster.model_to_string()
    # map_at_k's mean follows polars' group order, so its last bit may differ between calls.
    assert again.validation["map_at_12"] == pytest.approx(result.validation["map_at_12"], rel=1e-12)


def test_state_round_trip_scores_identically(weeks, trained):
    _, _, test, _ = weeks
    result, _ = trained
    state = json.loads(json.dumps(result.state()))  # JSON-able: no pickle anywhere
    loaded = R.RankerResult.load(state)
    assert np.array_equal(loaded.score(test)["score"].to_numpy(), result.score(test)["score"].to_numpy())
    assert loaded.config == result.config and loaded.tiers == result.tiers
    assert loaded.importances.equals(result.importances) and loaded.validation == result.validation


def test_chunked_scoring_equals_unchunked(weeks, trained):
    _, _, test, _ = weeks
    result, _ = trained
    whole = R.score(result.booster, test, FEATURES, chunk_rows=test.height)
    chunked = R.score(result.booster, test, FEATURES, chunk_rows=777)
    assert np.array_equal(whole["score"].to_numpy(), chunked["score"].to_numpy())
    assert chunked.drop("score").equals(test)
    assert R.score(result.booster, test.head(0), FEATURES).height == 0


def test_scores_are_the_same_on_any_number_of_threads(weeks, trained):
    """The scoring steps predict on every core of their step (`deploy.scoring_threads`), the training on one: the
    published scores must not depend on the count."""
    _, _, test, _ = weeks
    result, _ = trained
    one = result.score(test, chunk_rows=5_000, num_threads=1)["score"].to_numpy()
    for threads in (2, 4):
        assert np.array_equal(result.score(test, chunk_rows=5_000, num_threads=threads)["score"].to_numpy(), one)


def test_top_k_twelve_distinct_ranked_per_customer(weeks, trained):
    _, _, test, _ = weeks
    result, _ = trained
    top = R.top_k(result.score(test))
    per_customer = top.group_by("customer_id").agg(
        pl.len().alias("n"), pl.col("article_id").n_unique().alias("distinct"), pl.col("rank").sort().alias("ranks")
    )
    assert per_customer.height == CUSTOMERS
    assert (per_customer["n"] == 12).all() and (per_customer["distinct"] == 12).all()
    assert all(ranks == list(range(1, 13)) for ranks in per_customer["ranks"].to_list())
    steps = top.sort("customer_id", "rank").select(pl.col("score").diff().over("customer_id").fill_null(0))
    assert (steps["score"] <= 0).all()


def test_top_k_ties_by_article_and_duplicates_once():
    scored = pl.DataFrame(
        {
            "customer_id": ["c1"] * 5 + ["c2"] * 2,
            "article_id": ["a3", "a1", "a2", "a1", "a0", "b1", "b0"],
            "score": [1.0, 1.0, 1.0, 0.5, 0.2, 0.0, 0.0],
        }
    )
    top = R.top_k(scored, k=3)
    assert top.filter(pl.col("customer_id") == "c1")["article_id"].to_list() == ["a1", "a2", "a3"]
    assert top.filter(pl.col("customer_id") == "c2")["article_id"].to_list() == ["b0", "b1"]  # fewer than k
    five = R.top_k(scored, k=5).filter(pl.col("customer_id") == "c1")
    assert five["article_id"].to_list() == ["a1", "a2", "a3", "a0"]  # a1 once, at its best score


def test_tiers_monotone_and_ordered_on_held_out_week(weeks, trained):
    _, _, test, _ = weeks
    result, _ = trained
    bands = result.tiers
    assert [row["tier"] for row in bands.summary] == list(T.TIERS)
    assert bands.summary[0]["share"] == pytest.approx(FAST.tier_high_share, abs=0.03)
    held_out = R.top_k(result.score(test))
    order = np.argsort(held_out["score"].to_numpy())
    level = {"low": 0, "medium": 1, "high": 2}
    tiers = [level[t] for t in T.assign_tiers(held_out["score"], bands).gather(order).to_list()]
    assert tiers == sorted(tiers)  # never a lower tier for a higher score
    summary = T.tier_summary(held_out["score"], held_out["label"], bands)
    high, medium, low = summary["hit_rate"].to_list()
    assert high > medium > low
    assert (summary["rows"] > 0).all()


def test_calibration_recovers_planted_probabilities():
    rng = np.random.default_rng(4)
    scores = rng.uniform(-3, 3, size=40_000)
    truth = 1 / (1 + np.exp(-scores))
    labels = rng.uniform(size=scores.size) < truth
    bands = T.fit_tiers(scores, labels, high_share=0.2, medium_share=0.3, bins=50)
    grid = np.linspace(-2.5, 2.5, 11)
    assert np.abs(bands.calibrate(grid) - 1 / (1 + np.exp(-grid))).max() < 0.06
    assert np.all(np.diff(bands.calibrate(np.sort(scores))) >= 0)
    assert bands.high_score == pytest.approx(np.quantile(scores, 0.8), abs=1e-3)
    assert [row["share"] for row in bands.summary] == pytest.approx([0.2, 0.3, 0.5], abs=1e-3)


def test_rejects_bad_inputs(weeks):
    train, validation, _, _ = weeks
    with pytest.raises(ValueError, match="categorical"):
        R.train_ranker(train, validation, ["signal"], ["colour"], FAST, log=lambda _: None)
    with pytest.raises(ValueError, match="objective"):
        R.RankerConfig(objective="xendcg_typo")
    with pytest.raises(ValueError, match="validation"):
        R.train_ranker(
            train, validation.with_columns(pl.lit(0).alias("label")), FEATURES, CATEGORICAL, FAST, log=lambda _: None
        )
    assert math.isfinite(T.fit_tiers([1.0], [0]).high_score)


def test_rank_in_chunks_equals_whole_and_keeps_columns(weeks, trained):
    _, _, test, _ = weeks
    result, _ = trained
    candidates = test.with_columns(pl.format("src{}", pl.col("colour")).alias("sources"))
    built = []

    def features(chunk: pl.DataFrame) -> pl.DataFrame:
        built.append(chunk["customer_id"].n_unique())
        return chunk.select("customer_id", "article_id", *FEATURES)

    whole = R.rank_in_chunks(result, candidates, features, k=12, chunk_customers=CUSTOMERS, keep=["sources"])
    chunked = R.rank_in_chunks(result, candidates, features, k=12, chunk_customers=70, keep=["sources"])
    assert built[1:] == [70, 70, 70, 70, 20]  # bounded chunks, every customer once
    assert chunked.equals(whole) and whole.height == 12 * CUSTOMERS
    expected = R.top_k(result.score(test).select("customer_id", "article_id", "score"))
    assert whole.select(expected.columns).equals(expected)
    joined = whole.join(candidates.select("customer_id", "article_id", "sources"), on=["customer_id", "article_id"])
    assert (joined["sources"] == joined["sources_right"]).all()
    assert whole["relevance_tier"].to_list() == T.assign_tiers(whole["score"], result.tiers).to_list()


def test_split_customers_is_stable_and_disjoint():
    ids = pl.Series("customer_id", [f"c{i:04d}" for i in range(2000)])
    train, held = R.split_customers(ids, 0.25, seed=3)
    assert set(train) | set(held) == set(ids) and not set(train) & set(held)
    assert 0.2 < held.len() / ids.len() < 0.3
    again_train, again_held = R.split_customers(ids.sample(fraction=1.0, shuffle=True, seed=1).head(1500), 0.25, seed=3)
    assert set(again_held) <= set(held) and set(again_train) <= set(train)
