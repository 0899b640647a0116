"""What the week-by-week simulation keeps: the transactions so far, each customer's history and the week's
weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hm_recs.synthetic.catalogue import INDEX_POS, Catalogue
from hm_recs.synthetic.common import Calendar, bump, categorical, season_factors
from hm_recs.synthetic.config import SyntheticConfig
from hm_recs.synthetic.population import Population
from hm_recs.synthetic.vocabulary import ALL_YEAR, SEASONAL, SECTIONS, SUMMER, WINTER

# --------------------------------------------------------------------------------------------

_TX_FIELDS: tuple[str, ...] = ("day", "customer", "article", "price", "channel")


@dataclass
class Transactions:
    """Transaction rows as integer codes (strings are attached at the end by gathering)."""

    day: np.ndarray  # day index in the window (0 = first Wednesday)
    customer: np.ndarray  # customer position
    article: np.ndarray  # internal article position
    price: np.ndarray
    channel: np.ndarray

    def take(self, order: np.ndarray) -> Transactions:
        return Transactions(*(getattr(self, f)[order] for f in _TX_FIELDS))

    @staticmethod
    def concat(chunks: list[Transactions]) -> Transactions:
        if not chunks:
            dtypes = (np.int32, np.int32, np.int32, np.float64, np.int8)
            return Transactions(*(np.zeros(0, dtype=d) for d in dtypes))
        return Transactions(*(np.concatenate([getattr(c, f) for c in chunks]) for f in _TX_FIELDS))


@dataclass
class History:
    """Ring buffer of each customer's last ``size`` purchased articles (for re-buys)."""

    articles: np.ndarray  # (customers, size)
    weeks: np.ndarray  # (customers, size) week of each remembered purchase
    count: np.ndarray  # purchases recorded so far

    @staticmethod
    def empty(n_customers: int, size: int) -> History:
        return History(
            articles=np.zeros((n_customers, size), dtype=np.int32),
            weeks=np.zeros((n_customers, size), dtype=np.int32),
            count=np.zeros(n_customers, dtype=np.int64),
        )

    def record(self, customer: np.ndarray, article: np.ndarray, week: int) -> None:
        """Append purchases (vectorised; later ones win when a customer overflows the buffer)."""
        if customer.size == 0:
            return
        order = np.argsort(customer, kind="stable")
        cust = customer[order]
        rank = np.arange(cust.size) - np.searchsorted(cust, cust, side="left")
        size = self.articles.shape[1]
        slot = (self.count[cust] + rank) % size
        self.articles[cust, slot] = article[order]
        self.weeks[cust, slot] = week
        buyers, bought = np.unique(cust, return_counts=True)
        self.count[buyers] += bought

    def sample(self, customer: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random remembered article per customer, and whether the customer has any."""
        filled = np.minimum(self.count[customer], self.articles.shape[1])
        slot = (rng.random(customer.size) * np.maximum(filled, 1)).astype(np.int64)
        return self.articles[customer, slot], filled > 0

    def sample_due(
        self, customer: np.ndarray, rng: np.random.Generator, week: int, cycle: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A remembered article per customer drawn by what makes a re-buy due: how often the customer
        bought it (its slots in the buffer) and how close the weeks since the latest purchase are to the
        article's cycle; and whether the customer has any.  Rows in chunks (a (rows, size, size) test)."""
        size = self.articles.shape[1]
        article = np.zeros(customer.size, dtype=self.articles.dtype)
        for lo in range(0, customer.size, _DUE_CHUNK):
            cust = customer[lo : lo + _DUE_CHUNK]
            arts, weeks = self.articles[cust], self.weeks[cust]
            valid = np.arange(size)[None, :] < np.minimum(self.count[cust], size)[:, None]
            same = (arts[:, :, None] == arts[:, None, :]) & valid[:, None, :]
            times = same.sum(axis=2)
            slot = np.arange(size)
            later = same & (
                (weeks[:, None, :] > weeks[:, :, None])
                | ((weeks[:, None, :] == weeks[:, :, None]) & (slot[None, None, :] < slot[None, :, None]))
            )
            latest = valid & ~later.any(axis=2)  # one slot per article: its latest purchase
            c = np.maximum(cycle[arts], 0.5)
            due = np.exp(-0.5 * ((week - weeks - c) / (0.5 * c + 0.5)) ** 2) + 0.05
            weight = np.where(latest, times * due, 0.0)
            weight[~valid[:, 0], 0] = 1.0  # no history: any slot (flagged below)
            article[lo : lo + _DUE_CHUNK] = arts[np.arange(len(cust)), categorical(weight, rng)]
        return article, self.count[customer] > 0


#: Customers per chunk in ``History.sample_due``.
_DUE_CHUNK = 20_000


@dataclass
class WeekWeights:
    """Sampling weights of the articles in one week for the regular and the hunter chooser."""

    live: np.ndarray  # launched (on sale) this week
    depth: np.ndarray  # promotion depth this week (0 = full price)
    cum: tuple[np.ndarray, np.ndarray]  # cumulative weights with a leading 0 (regular, hunter)
    section_total: np.ndarray  # (2, sections) weight per section (regular, hunter)
    #: with visual taste: cumulative weights in (section, style) order (regular, hunter) and the
    #: (2, sections, styles) weight per block
    style_cum: tuple[np.ndarray, np.ndarray] | None = None
    style_total: np.ndarray | None = None


@dataclass(frozen=True)
class Context:
    """Everything the weekly simulation needs that does not change from week to week."""

    config: SyntheticConfig
    catalogue: Catalogue
    population: Population
    article_season: np.ndarray  # (3, weeks)
    customer_season: np.ndarray  # (3, weeks)
    demand: np.ndarray  # (weeks,) relative total demand, mean 1
    age_affinity: np.ndarray  # (age, sections) shopper-age affinity of each section
    section_index: np.ndarray  # (sections,) index position of each section
    activity_members: tuple[np.ndarray, ...]  # customers of each activity group (see below)
    activity_cum: tuple[np.ndarray, ...]  # cumulative activity within each group
    style_order: np.ndarray  # articles sorted by (section, style)
    style_block_start: np.ndarray  # first position of each (section, style) block in style_order
    shift_starts: frozenset[int]  # weeks in which a demand shift starts


def _activity_groups(pop: Population) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Customers grouped by how their activity varies over the year: all-year (every segment
    but seasonal), summer and winter shoppers (seasonal segment), with cumulative activity."""
    group = np.where(pop.segment == SEASONAL, pop.season, ALL_YEAR)
    members = tuple(np.flatnonzero(group == g) for g in (ALL_YEAR, SUMMER, WINTER))
    return members, tuple(np.cumsum(pop.activity[m]) for m in members)


def context(config: SyntheticConfig, calendar: Calendar, cat: Catalogue, pop: Population) -> Context:
    demand = 1.0 + config.demand_season_amplitude * np.cos(
        2 * np.pi * (calendar.week_doy - config.summer_peak_doy) / 365.0
    )
    section_age = np.array([s[3] for s in SECTIONS])
    ages = np.arange(config.age_max + 1, dtype=np.float64)
    members, cum = _activity_groups(pop)
    block = cat.section.astype(np.int64) * config.styles + cat.style
    style_order = np.argsort(block, kind="stable")
    every = config.demand_shift_every_weeks
    shift_starts = frozenset(
        w
        for w in range(SHIFT_MIN_AGE, config.weeks)
        if every and config.demand_shift_articles and (config.weeks - 2 - w) % every == 0
    )
    return Context(
        config=config,
        catalogue=cat,
        population=pop,
        article_season=season_factors(config, calendar, config.season_strength),
        customer_season=season_factors(config, calendar, config.seasonal_activity_strength),
        demand=demand / demand.mean(),
        age_affinity=bump(ages[:, None], section_age[None, :], config.section_age_width),
        section_index=np.array([INDEX_POS[s[2]] for s in SECTIONS]),
        activity_members=members,
        activity_cum=cum,
        style_order=style_order,
        style_block_start=np.searchsorted(block[style_order], np.arange(len(SECTIONS) * config.styles + 1)),
        shift_starts=shift_starts,
    )


#: A demand shift lifts articles on sale for at least this many weeks (they have a usual rate), and
#: never starts before this week.
SHIFT_MIN_AGE = 4
