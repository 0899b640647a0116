"""When a week's model warm-starts from last week's artefact, and how weights follow their articles."""

import datetime as dt

import torch

from hm_recs.models.warm_start import Lineage, carry_weights, plan

W = dt.date(2020, 9, 16)
CONFIG = {"dim": 8, "epochs": 6, "lr": 0.01}


def previous(full_retrain_week=dt.date(2020, 9, 2), config=CONFIG, content_week="2020-09-02"):
    lineage = Lineage(full_retrain_week.isoformat(), None, content_week)
    return {"config": config, "lineage": lineage.state(), "weights": {}}, "f" * 64


def test_warm_from_last_week_within_the_retrain_cycle():
    start = plan(W, previous(), {**CONFIG, "epochs": 2}, 4, "2020-09-02")  # epochs may differ
    assert start.warm and start.lineage.full_retrain_week == "2020-09-02"
    assert start.lineage.warm_started_from == {"week": "2020-09-09", "artefact_hash": "f" * 64}
    assert start.metadata()["warm_started_from"] == "2020-09-09 (ffffffffffff)"
    assert "week 3 of 4" in start.reason


def test_each_reason_to_retrain_from_scratch_is_named():
    cases = {
        "no stored artefact for 2020-09-09": plan(W, None, CONFIG, 4, "2020-09-02"),
        "written before warm starts": plan(W, ({"config": CONFIG}, "h"), CONFIG, 4, "2020-09-02"),
        "configuration changed since last week: dim, lr": plan(
            W, previous(), {**CONFIG, "dim": 4, "lr": 1}, 4, "2020-09-02"
        ),
        "the content encoder changed": plan(W, previous(), CONFIG, 4, "2020-09-16"),
        "full retrain due: every 2 weeks": plan(W, previous(), CONFIG, 2, "2020-09-02"),
        "warm starts off": plan(W, previous(), CONFIG, 1, "2020-09-02"),
    }
    for reason, start in cases.items():
        assert not start.warm and reason in start.reason, (reason, start.reason)
        assert start.lineage.full_retrain_week == W.isoformat() and start.lineage.warm_started_from is None


def test_a_warm_plan_turned_cold_starts_a_new_chain_this_week():
    start = plan(W, previous(), CONFIG, 4, "2020-09-02").cold("the warm start did not pass its gate")
    assert not start.warm and start.lineage.full_retrain_week == W.isoformat()
    assert start.metadata()["warm_started_from"] == "none (full retrain)"


def test_per_article_rows_follow_their_article_and_new_articles_keep_their_start():
    class Model(torch.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.full((n,), -1.0))
            self.dense = torch.nn.Linear(2, 2)
            self.register_buffer("cycle", torch.zeros(n))

    old = Model(3)
    with torch.no_grad():
        old.bias.copy_(torch.tensor([10.0, 20.0, 30.0]))
        old.cycle.fill_(5.0)
    new = Model(4)
    reason = carry_weights(new, old.state_dict(), ["a", "b", "c"], ["b", "d", "a", "c"], ("bias", "cycle"), ("cycle",))
    assert reason is None
    assert new.bias.tolist() == [20.0, -1.0, 10.0, 30.0]  # d is new: its starting value
    assert torch.equal(new.dense.weight, old.dense.weight)
    assert new.cycle.tolist() == [0.0] * 4  # derived from this week's data: not carried
    other = torch.nn.Module()
    other.dense = torch.nn.Linear(3, 2)
    assert "dense.weight is (2, 2) last week and (2, 3) now" in carry_weights(other, old.state_dict(), [], [], ())
