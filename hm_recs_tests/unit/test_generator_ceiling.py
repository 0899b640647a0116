"""The generator's ceiling: lists from the simulation's own state, and an observer that changes nothing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from hm_recs.core.baselines import repurchase
from hm_recs.core.metrics import map_at_k
from hm_recs.core.shop_statistics import as_date
from hm_recs.synthetic import generate, profile_config
from hm_recs.synthetic.ceiling import best_lists
from hm_recs.synthetic.simulation import WeekStart
from hm_recs.synthetic.tables import article_ids

CONFIG = profile_config("grocery", customers=3_000, weeks=20, seed=3)
SCORED = CONFIG.weeks - 1


def _ceiling(draws: int) -> tuple[pl.DataFrame, object]:
    found = {}

    def observe(start: WeekStart) -> None:
        if start.week == SCORED:
            customer, article, rank = best_lists(start, draws, np.random.default_rng(0))
            found["lists"] = pl.DataFrame(
                {"customer": customer, "article_id": article_ids(start.ctx.catalogue).gather(article), "rank": rank}
            )

    data = generate(CONFIG, observe)
    ids = data.planted_segments["customer_id"]
    lists = found["lists"]
    return lists.with_columns(customer_id=ids.gather(lists["customer"])).drop("customer"), data


def test_observing_the_simulation_changes_nothing_it_generates() -> None:
    plain = generate(CONFIG)
    _, observed = _ceiling(draws=20)
    assert_frame_equal(observed.transactions, plain.transactions)
    assert_frame_equal(observed.demand_shifts, plain.demand_shifts)


def test_the_ceilings_lists_beat_what_the_history_alone_gives() -> None:
    lists, data = _ceiling(draws=200)
    # k distinct articles per customer, ranked 1..k
    per_customer = lists.group_by("customer_id").agg(pl.len().alias("n"), pl.col("article_id").n_unique().alias("u"))
    assert per_customer["n"].max() == 12 and (per_customer["n"] == per_customer["u"]).all()
    assert lists.group_by("customer_id").agg(pl.col("rank").min())["rank"].max() == 1

    tx = data.transactions.with_columns(as_date(pl.col("t_dat")))
    week = CONFIG.first_day + dt.timedelta(weeks=SCORED)
    bought = tx.filter(pl.col("t_dat") >= week).select("customer_id", "article_id").unique()
    history = tx.filter(pl.col("t_dat") < week)
    customers = data.customers.select("customer_id", pl.col("age").cast(pl.Float64, strict=False))
    baseline = repurchase(customers, history, data.articles, week - dt.timedelta(weeks=1))
    ceiling, repurchase_map = map_at_k(lists, bought), map_at_k(baseline, bought)
    # knowing each customer's re-buys due and taste is worth more than the recency-weighted history
    assert ceiling > 1.1 * repurchase_map > 0
    # and the ceiling's lists hold the customer's own past articles where re-buying dominates
    own = lists.join(history.select("customer_id", "article_id").unique(), on=["customer_id", "article_id"], how="semi")
    assert own.height / lists.height > 0.5
