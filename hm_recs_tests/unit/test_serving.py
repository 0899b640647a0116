"""Who serves a week (core/serving.py, core/tiers.py's list tiers, fallback.py) and the export's gap marker,
without Dagster runs: the end-to-end paths are in test_pipeline.py."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from hm_recs.core.metrics import average_precision, map_at_k, paired_bootstrap
from hm_recs.core.publishing import (
    LATEST,
    UNAVAILABLE,
    latest_published,
    mark_unavailable,
    publish_week,
    read_published,
)
from hm_recs.core.serving import RANKER, GateRule, ServingDecision, champion, decide, training_weeks, validation_weeks
from hm_recs.core.tiers import ListTiers
from hm_recs.fallback import RunOutcome, plan
from hm_recs.storage.location import Location

WEEKS = [dt.date(2020, 9, 16) - dt.timedelta(weeks=i) for i in range(10)]  # newest first


def test_validation_pools_the_latest_weeks_until_enough_buyers():
    buyers = {w: 70 for w in WEEKS}
    rule = GateRule(min_validation_buyers=200, max_validation_weeks=6)
    assert validation_weeks(buyers, WEEKS[0], rule) == WEEKS[:3]  # 70 + 70 + 70 >= 200
    assert validation_weeks({**buyers, WEEKS[1]: 0}, WEEKS[0], rule) == [WEEKS[0], WEEKS[2], WEEKS[3]]
    assert (
        validation_weeks(buyers, WEEKS[0], GateRule(min_validation_buyers=10_000, max_validation_weeks=4)) == WEEKS[:4]
    )
    assert validation_weeks({w: 5_000 for w in WEEKS}, WEEKS[2], rule) == [WEEKS[2]]  # never a week after W


def test_training_weeks_add_earlier_weeks_until_enough_positive_groups():
    asked = []

    def positives(week):
        asked.append(week)
        return 40

    chosen, groups = training_weeks(WEEKS[3:], positives, min_weeks=3, min_positive_groups=200, max_weeks=12)
    assert chosen == WEEKS[3:8] and groups == 200 and asked == chosen  # 5 weeks of 40; nothing asked beyond
    chosen, _ = training_weeks(WEEKS[3:], lambda w: 5_000, min_weeks=3, min_positive_groups=200, max_weeks=12)
    assert chosen == WEEKS[3:6]  # a large shop: the minimum, unchanged
    chosen, groups = training_weeks(WEEKS[3:], lambda w: 1, min_weeks=3, min_positive_groups=200, max_weeks=4)
    assert chosen == WEEKS[3:7] and groups == 4


def queries(aps):
    return pl.DataFrame({"query": [f"q{i}" for i in range(len(aps))], "ap": aps})


def test_the_ranker_serves_only_when_it_beats_the_best_baseline():
    rng = np.random.default_rng(0)
    baseline = rng.random(600) * (rng.random(600) < 0.2)
    better, worse = np.clip(baseline + 0.05, 0, 1), baseline * 0.8
    baselines = {
        "repurchase": queries(baseline),
        "trending": queries(baseline * 0.5),
        "popularity": queries(baseline * 0.1),
    }
    wins = decide(queries(better), baselines, GateRule())
    assert wins.served_by == RANKER and wins.best_baseline == "repurchase" and wins.ranker_serves
    assert wins.interval[0] < wins.difference < wins.interval[1] and wins.interval[0] > 0
    loses = decide(queries(worse), baselines, GateRule())
    assert loses.served_by == "repurchase" and not loses.ranker_serves and "worse than 1 x repurchase" in loses.reason
    assert loses.interval[1] < 0  # the default rule (not_worse) refuses only a loss beyond noise
    assert decide(queries(worse), baselines, GateRule(rule="mean")).served_by == "repurchase"
    # the interval rule refuses a ranker whose win is within the noise of the paired difference
    noisy = rng.permutation(baseline) + 0.001  # as good on average, a little better, paired with noise
    assert decide(queries(noisy), baselines, GateRule(rule="mean")).served_by == RANKER
    assert decide(queries(noisy), baselines, GateRule(rule="interval")).served_by == "repurchase"
    # a ranker a little worse within noise: the point estimate refuses it, not_worse keeps it serving
    tied = np.clip(rng.permutation(baseline) - 0.001, 0, 1)
    assert decide(queries(tied), baselines, GateRule(rule="mean")).served_by == "repurchase"
    kept = decide(queries(tied), baselines, GateRule())
    assert kept.served_by == RANKER and kept.difference < 0 < kept.interval[1] and "not worse" in kept.reason
    empty = decide(queries(np.zeros(600)), baselines, GateRule())
    assert empty.served_by == "repurchase" and "is 0" in empty.reason
    assert ServingDecision.load(wins.state()) == wins
    with pytest.raises(ValueError, match="rule must be one of"):
        GateRule(rule="median")


def test_paired_bootstrap_interval_covers_the_mean_and_shrinks_with_buyers():
    rng = np.random.default_rng(1)
    small, large = rng.normal(0.01, 0.1, 100), rng.normal(0.01, 0.1, 10_000)
    mean, low, high = paired_bootstrap(small, samples=500, level=0.9, seed=3)
    assert low < mean < high and mean == pytest.approx(small.mean())
    _, low_l, high_l = paired_bootstrap(large, samples=500, level=0.9, seed=3)
    assert high_l - low_l < (high - low) / 5
    assert paired_bootstrap(small, samples=500, seed=3) == paired_bootstrap(small, samples=500, seed=3)


def test_average_precision_is_what_map_averages():
    recs = pl.DataFrame({"customer_id": ["a", "a", "b", "b"], "article_id": ["x", "y", "x", "z"], "rank": [1, 2, 1, 2]})
    bought = pl.DataFrame({"customer_id": ["a", "b", "c"], "article_id": ["y", "x", "x"]})
    per = average_precision(recs, bought)
    assert per["customer_id"].to_list() == ["a", "b", "c"] and per["ap"].to_list() == [0.5, 1.0, 0.0]
    assert map_at_k(recs, bought) == pytest.approx(0.5)


def test_champion_is_the_best_baseline_over_the_pooled_validation_weeks():
    rows = [
        ("repurchase", WEEKS[0], 0.10, 60),
        ("trending", WEEKS[0], 0.12, 60),
        ("repurchase", WEEKS[1], 0.20, 90),
        ("trending", WEEKS[1], 0.05, 90),
        ("repurchase", WEEKS[2], 0.00, 500),
        ("trending", WEEKS[2], 0.90, 500),
    ]  # beyond the pool
    validation = pl.DataFrame(
        rows,
        schema={"recommender": pl.String, "validated_on": pl.Date, "map_at_12": pl.Float64, "buyers": pl.Int64},
        orient="row",
    )
    name, maps, weeks, buyers = champion(validation, WEEKS[0], GateRule(min_validation_buyers=150))
    assert name == "repurchase" and weeks == WEEKS[:2] and buyers == 150
    assert maps["repurchase"] == pytest.approx((0.10 * 60 + 0.20 * 90) / 150)  # buyer-weighted
    assert champion(validation, WEEKS[0], GateRule(min_validation_buyers=50))[0] == "trending"  # one week only
    assert champion(validation.clear(), WEEKS[0], GateRule()) is None


def test_list_tiers_rank_rows_by_their_validated_purchase_rate():
    rng = np.random.default_rng(0)
    rows = []
    for c in range(600):
        for r in range(1, 13):
            own = r <= 3 and c % 3 == 0
            rows.append((f"c{c}", f"own{c}_{r}" if own else f"t{r}", r, "repurchase" if own else "trending"))
    lists = pl.DataFrame(rows, schema=["customer_id", "article_id", "rank", "source"], orient="row")
    hit = np.where(lists["source"] == "repurchase", 0.3, np.where(lists["rank"] == 1, 0.05, 0.0))
    bought = lists.filter(pl.Series(rng.random(lists.height) < hit)).select("customer_id", "article_id")
    tiers = ListTiers.fit(lists, bought)
    assigned = lists.with_columns(tiers.assign(lists).alias("tier"))
    assert set(assigned.filter(pl.col("tier") == "high")["source"]) == {"repurchase"}  # the re-buys first
    summary = {row["tier"]: row for row in tiers.summary().iter_rows(named=True)}
    assert summary["high"]["hit_rate"] > summary["medium"]["hit_rate"] > summary["low"]["hit_rate"]
    assert summary["high"]["share"] == pytest.approx(0.10, abs=0.04)
    shuffled = ListTiers.fit(lists.sample(fraction=1.0, shuffle=True, seed=5), bought)
    assert shuffled.state() == tiers.state() and ListTiers.load(tiers.state()) == tiers  # order-independent, stored


EVERY = frozenset(
    {
        "raw_transactions",
        "transactions",
        "article_features",
        "baseline_recommendations",
        "baseline_validation",
        "article_content",
        "candidates",
        "ranker_model",
        "recommendations",
        "recommendations_export",
        "evaluation_report",
    }
)
DATA = frozenset({"raw_transactions", "transactions", "article_features"})


def outcome(materialized, failed_steps=None, failed_checks=(), fallback_for=None, targeted=EVERY):
    return RunOutcome(
        "r1",
        "2020-09-09",
        frozenset(targeted),
        frozenset(materialized),
        failed_steps or {},
        frozenset(failed_checks),
        fallback_for,
    )


def test_fallback_plan_publishes_the_champion_only_when_its_inputs_passed():
    built = {"raw_transactions", "transactions", "article_features", "baseline_recommendations", "baseline_validation"}
    model_failed = plan(outcome(built, {"article_content": "gate failed"}), DATA)
    assert model_failed.publish and model_failed.rerun == (
        "recommendations",
        "recommendations_export",
        "evaluation_report",
    )
    assert "article_content: gate failed" in model_failed.reason
    config = model_failed.run_config({"loggers": {"console": {}}, "ops": {"ranker_model": {"config": {}}}})
    assert config["loggers"] and set(config["ops"]) == {"recommendations"}  # no settings for steps it does not run
    assert config["ops"]["recommendations"]["config"]["serve"] == "champion"
    data_failed = plan(outcome({"raw_transactions"}, {"validate_transactions": "too many bad rows"}), DATA)
    assert not data_failed.publish and "a data gate failed (article_features, transactions)" in data_failed.reason
    assert not plan(outcome(built, failed_checks={"transactions:transactions_suite"}), DATA).publish
    assert not plan(outcome(built - {"baseline_validation"}), DATA).publish
    assert not plan(outcome(built, fallback_for="r0"), DATA).publish  # a failed fallback is not retried
    assert plan(outcome(built | {"recommendations"}), DATA) is None  # published: nothing to do
    assert plan(outcome({"transactions"}, targeted={"transactions"}), DATA) is None  # did not try to publish


def test_a_week_without_lists_is_marked_and_latest_never_hands_out_last_weeks(tmp_path):
    location = Location(str(tmp_path))
    week, next_week = dt.date(2020, 9, 16), dt.date(2020, 9, 23)
    publish_week(location, week, "run1", {"recommendations.csv": b"customer_id,prediction\n"}, {"rows": 0})
    marker = mark_unavailable(location, next_week, "run2", "validate_transactions: too many bad rows")
    assert marker == f"week={next_week}/{UNAVAILABLE}"
    assert latest_published(location) == (next_week, marker)
    with pytest.raises(ValueError, match=f"week {next_week} has no recommendations.*too many bad rows"):
        read_published(location, location.read_bytes(LATEST).decode())
    assert mark_unavailable(location, week, "run3", "a re-run failed") is None  # its published lists stay
    assert latest_published(location) == (next_week, marker)
    publish_week(location, next_week, "run4", {"recommendations.csv": b"customer_id,prediction\n"}, {"rows": 0})
    assert latest_published(location) == (next_week, f"week={next_week}/run=run4")  # published after all


def test_a_small_shop_learns_from_more_weeks_and_is_judged_on_pooled_buyers(history_template, tmp_path):
    """`ranker_data.assemble` on a warehouse where no labelled set was ever stored (a new deployment): the weeks
    are built from the history; more positive groups asked for means more training weeks, more validation buyers
    asked for means more validation weeks, and the two never overlap."""
    import shutil

    from hm_recs.assets.ranking import ranker_sources
    from hm_recs.core.ranking_features import InputWindows
    from hm_recs.models.configs import RankerConfig
    from hm_recs.models.ranker_data import TrainingWeeks, assemble
    from hm_recs.storage.duckdb_warehouse import DuckDBWarehouse
    from hm_recs_tests.conftest import HISTORY_WEEKS
    from hm_recs_tests.conftest import WEEKS as DATA_WEEKS

    shutil.copy(history_template, tmp_path / "warehouse.duckdb")
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    week, windows = DATA_WEEKS[HISTORY_WEEKS - 1], InputWindows(feature_weeks=4, segment_weeks=4)

    def weeks_for(training: TrainingWeeks, rule: GateRule):
        return assemble(
            week,
            ranker_sources(warehouse, week, training, rule, windows),
            training,
            rule,
            RankerConfig(),
            windows,
            log=lambda message: None,
        )

    few = weeks_for(
        TrainingWeeks(min_training_weeks=2, min_positive_groups=1, max_training_weeks=4),
        GateRule(min_validation_buyers=1),
    )
    assert few.validation_weeks == [week] and few.training_weeks == [
        DATA_WEEKS[HISTORY_WEEKS - 2],
        DATA_WEEKS[HISTORY_WEEKS - 3],
    ]
    many = weeks_for(
        TrainingWeeks(min_training_weeks=2, min_positive_groups=10**6, max_training_weeks=4),
        GateRule(min_validation_buyers=1000),
    )
    assert many.validation_weeks == [week, DATA_WEEKS[HISTORY_WEEKS - 2]]  # about 680 buyers a week
    assert many.training_weeks == DATA_WEEKS[HISTORY_WEEKS - 3 : HISTORY_WEEKS - 7 : -1]
    assert not set(many.validation_weeks) & set(many.training_weeks)
    assert set(many.built_here) == set(many.validation_weeks) | set(many.training_weeks)
    assert many.positive_groups > few.positive_groups > 0 and set(many.train["week"]) == set(many.training_weeks)
    judged = set(many.validation_purchases["customer_id"])
    assert len(judged) > 1000 and all("|" in q for q in list(judged)[:10])  # one query = one buyer in one week
    assert set(many.validation["customer_id"]) <= judged
    for ap in many.baseline_ap.values():
        assert set(ap["query"]) == judged
