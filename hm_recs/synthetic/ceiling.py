"""The generator's own best lists: what a recommender that knew the shop's hidden state would list.

A synthetic shop is a known random process, so the best lists any model could publish for a week can be
estimated: as the week begins (`simulation.WeekStart`), draw every customer's next occasion many times from
the simulation's own choice functions (re-buy due, bestseller copy, taste, demand shift, basket extras) with a
separate random stream, count how often each article is bought, and list each customer's most frequent
articles.  Ranking by the probability of purchase is (up to the sampling noise of a finite number of draws)
the best a model can do on average at MAP@k, so the MAP@k of these lists on the week's real purchases is a
ceiling for the generator's shop: a target above it cannot be met by any model.  The lists use what no
recommender sees (each customer's taste and segment, the week's demand-shift articles), which is what makes
them a ceiling and not a baseline.
"""

from __future__ import annotations

import numpy as np

from hm_recs.synthetic.choices import basket_items, first_items
from hm_recs.synthetic.simulation import WeekStart, week_weights


def purchase_counts(
    start: WeekStart, draws: int, rng: np.random.Generator, batch_draws: int = 25
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer, article, count): in how many of `draws` simulated occasions of each customer the article was
    bought, for every pair bought at least once; sorted by customer, then count (most first), then article."""
    ctx = start.ctx
    n_customers, n_articles = ctx.population.segment.size, ctx.catalogue.product.size
    weights = week_weights(ctx, start.week)
    everyone = np.arange(n_customers, dtype=np.int64)
    keys, counts = [], []
    for done in range(0, draws, batch_draws):
        customer = np.tile(everyone, min(batch_draws, draws - done))
        first = first_items(
            ctx, rng, weights, start.history, start.previous, customer, start.week, (start.campaign, rng)
        )
        occasion, article = basket_items(ctx.config, rng, ctx.catalogue, weights, first)
        # an article counts once per occasion (two basket slots can draw the same extra)
        bought = np.unique(occasion * n_articles + article)
        key, count = np.unique(customer[bought // n_articles] * n_articles + bought % n_articles, return_counts=True)
        keys.append(key)
        counts.append(count)
    key = np.concatenate(keys)
    count = np.concatenate(counts)
    order = np.argsort(key, kind="stable")
    key, count = key[order], count[order]
    first_of = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    key, count = key[first_of], np.add.reduceat(count, first_of)
    customer, article = key // n_articles, key % n_articles
    order = np.lexsort((article, -count, customer))
    return customer[order], article[order], count[order]


def best_lists(start: WeekStart, draws: int, rng: np.random.Generator, k: int = 12) -> tuple[np.ndarray, ...]:
    """(customer, article, rank 1..k): each customer's k articles most often bought in `draws` simulated
    occasions (ties by article position; customers who would buy nothing get no list)."""
    customer, article, _ = purchase_counts(start, draws, rng)
    rank = np.arange(customer.size) - np.searchsorted(customer, customer, side="left") + 1
    keep = rank <= k
    return customer[keep], article[keep], rank[keep]
