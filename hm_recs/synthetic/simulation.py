"""The week-by-week simulation of purchase occasions (and the planted demand-shift weeks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hm_recs.synthetic.catalogue import Catalogue
from hm_recs.synthetic.choices import basket_items, first_items, item_prices
from hm_recs.synthetic.common import Calendar, normalised, stream
from hm_recs.synthetic.config import SyntheticConfig
from hm_recs.synthetic.population import Population
from hm_recs.synthetic.state import SHIFT_MIN_AGE, Context, History, Transactions, WeekWeights, context
from hm_recs.synthetic.vocabulary import ALL_YEAR, SECTIONS


def _shift_articles(
    config: SyntheticConfig, rng: np.random.Generator, recent_units: np.ndarray, occasions: float
) -> np.ndarray:
    """The articles of a demand shift: sold in each of the last ``SHIFT_MIN_AGE`` weeks
    (``recent_units``: (weeks, articles) units), each at most a twelfth of the occasions the shift
    will give it (share x occasions / k), the best sellers among those (the top 10 k), so that the shift
    lifts each at least tenfold."""
    k = config.demand_shift_articles
    usual = recent_units.mean(axis=0)
    pool = np.flatnonzero((recent_units > 0).all(axis=0) & (usual <= config.demand_shift_share * occasions / k / 12))
    pool = pool[np.argsort(-usual[pool], kind="stable")][: 10 * k]
    if pool.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(rng.choice(pool, size=min(k, pool.size), replace=False))


@dataclass(frozen=True)
class WeekStart:
    """The simulation's state as a week begins, before its occasions are drawn: what the week's choices depend
    on (for an observer such as `synthetic.ceiling`, which must not change it or draw from its streams)."""

    ctx: Context
    week: int
    history: History
    previous: tuple[np.ndarray, np.ndarray] | None  # last week's (article, age band) of every item sold
    campaign: np.ndarray | None  # the articles of a running demand shift


def simulate(
    config: SyntheticConfig,
    rng: np.random.Generator,
    calendar: Calendar,
    cat: Catalogue,
    pop: Population,
    observe: Callable[[WeekStart], None] | None = None,
) -> tuple[Transactions, list[tuple[int, int]]]:
    """Simulate the weeks in order (re-buys and bestseller followers depend on the past); `observe`, when
    given, sees each week's `WeekStart`.  Returns the transactions and the (week, article) of every article
    lifted by a demand shift.

    The number of occasions per week targets ``purchase_rate`` rows per customer-week: it starts
    from the planned rows per occasion and then uses the realised value so far (basket extras that
    are not on sale yet are dropped, which would otherwise bias the total down)."""
    ctx = context(config, calendar, cat, pop)
    history = History.empty(config.customers, config.history_size)
    rows_per_occasion = _planned_rows_per_occasion(config)
    rows_done = occasions_done = 0
    chunks: list[Transactions] = []
    previous: tuple[np.ndarray, np.ndarray] | None = None  # last week's (article, age band)
    shift_rng = stream(config, "shifts")
    shifts: list[tuple[int, int]] = []  # (week, article) of every lifted article-week
    shifted, shift_until = np.zeros(0, dtype=np.int64), -1
    recent_units = np.zeros((SHIFT_MIN_AGE, cat.product.size), dtype=np.int64)  # units of the last weeks
    for week in range(config.weeks):
        if occasions_done:
            rows_per_occasion = rows_done / occasions_done
        expected = config.customers * config.purchase_rate * ctx.demand[week] / rows_per_occasion
        if week in ctx.shift_starts:
            shifted = _shift_articles(config, shift_rng, recent_units, expected)
            shift_until = week + config.demand_shift_duration
        campaign = shifted if week < shift_until and shifted.size else None
        if campaign is not None:
            shifts.extend((week, int(a)) for a in campaign)
        if observe is not None:
            observe(WeekStart(ctx, week, history, previous, campaign))
        customer = _occasion_customers(ctx, rng, week, rng.poisson(expected))
        if customer.size == 0:
            continue
        chunk = _simulate_week(ctx, rng, week, customer, history, previous, (campaign, shift_rng))
        rows_done += chunk.day.size
        occasions_done += customer.size
        recent_units = np.roll(recent_units, 1, axis=0)
        recent_units[0] = np.bincount(chunk.article, minlength=cat.product.size)
        previous = (chunk.article, pop.age_band[chunk.customer])
        chunks.append(chunk.take(np.lexsort((chunk.article, chunk.customer, chunk.day))))
    return Transactions.concat(chunks), shifts


def _planned_rows_per_occasion(config: SyntheticConfig) -> float:
    """Expected rows per occasion if no basket extra were dropped."""
    basket = normalised(config.basket_size_probs)
    units = normalised(config.unit_probs)
    return float(np.dot(np.arange(1, basket.size + 1), basket) * np.dot(np.arange(1, units.size + 1), units))


def _occasion_customers(ctx: Context, rng: np.random.Generator, week: int, n_occasions: int) -> np.ndarray:
    """Customers of ``n_occasions`` occasions, drawn proportional to their activity this week
    (equivalent to independent Poisson counts per customer).  Only the seasonal segment's
    activity changes with the week, so the occasions are first split between the activity groups
    (all-year, summer, winter shoppers), then drawn within a group from its fixed cumulative
    activity."""
    group_factor = ctx.customer_season[:, week].copy()
    group_factor[ALL_YEAR] = 1.0
    mass = np.array([c[-1] if c.size else 0.0 for c in ctx.activity_cum]) * group_factor
    if n_occasions == 0 or mass.sum() <= 0:
        return np.zeros(0, dtype=np.int64)
    per_group = rng.multinomial(n_occasions, mass / mass.sum())
    parts = []
    for members, cum, n in zip(ctx.activity_members, ctx.activity_cum, per_group, strict=True):
        if n == 0:
            continue
        pick = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
        parts.append(members[np.minimum(pick, members.size - 1)])
    return np.concatenate(parts)


def _simulate_week(
    ctx: Context,
    rng: np.random.Generator,
    week: int,
    customer: np.ndarray,
    history: History,
    previous: tuple[np.ndarray, np.ndarray] | None,
    campaign: tuple[np.ndarray | None, np.random.Generator],
) -> Transactions:
    """Rows of one week: first items, basket extras, prices, units, days and channels."""
    config, cat, pop = ctx.config, ctx.catalogue, ctx.population
    n = customer.size
    weights = week_weights(ctx, week)
    first = first_items(ctx, rng, weights, history, previous, customer, week, campaign)
    occasion, article = basket_items(config, rng, cat, weights, first)
    day = week * 7 + rng.choice(7, size=n, p=normalised(config.weekday_weights))
    channel = np.where(rng.random(n) < pop.online[customer], 2, 1).astype(np.int8)
    price = item_prices(config, rng, cat, weights, article)
    item_customer = customer[occasion]
    history.record(item_customer, article, week)
    units = 1 + rng.choice(len(config.unit_probs), size=article.size, p=normalised(config.unit_probs))
    rows = np.repeat(np.arange(article.size), units)  # duplicate rows for extra units
    return Transactions(
        day=day[occasion][rows].astype(np.int32),
        customer=item_customer[rows].astype(np.int32),
        article=article[rows].astype(np.int32),
        price=price[rows],
        channel=channel[occasion][rows],
    )


def week_weights(ctx: Context, week: int) -> WeekWeights:
    """popularity x lifecycle x season x promotion lift, zero before launch."""
    config, cat = ctx.config, ctx.catalogue
    season_factor = ctx.article_season[:, week]
    age = week - cat.launch
    live = age >= 0
    a = np.maximum(age, 0).astype(np.float64)
    lifecycle = (1.0 - np.exp(-(a + 1.0) / config.lifecycle_rise_weeks)) * np.exp(-a / cat.decay)
    depth = cat.promo_depth[week // config.promo_block_weeks].astype(np.float64)
    lift = np.exp(config.promo_elasticity * depth)
    regular = np.where(live, cat.popularity * lifecycle * season_factor[cat.season] * lift, 0.0)
    hunter = regular * np.where(depth > 0, config.hunter_promo_boost, 1.0)
    cum_regular, cum_hunter = (np.concatenate([[0.0], np.cumsum(w)]) for w in (regular, hunter))
    totals = np.stack([np.diff(c[cat.section_start]) for c in (cum_regular, cum_hunter)])
    style_cum = style_total = None
    if ctx.population.style_taste is not None:
        style_cum = tuple(np.concatenate([[0.0], np.cumsum(w[ctx.style_order])]) for w in (regular, hunter))
        style_total = np.stack([np.diff(c[ctx.style_block_start]) for c in style_cum]).reshape(
            2, len(SECTIONS), config.styles
        )
    return WeekWeights(
        live=live,
        depth=depth,
        cum=(cum_regular, cum_hunter),
        section_total=totals,
        style_cum=style_cum,
        style_total=style_total,
    )
