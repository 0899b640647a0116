"""The generated customers: segments, ages, index taste and the `customers` table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from hm_recs.synthetic.common import bump, logistic, normalised, stream
from hm_recs.synthetic.config import SyntheticConfig
from hm_recs.synthetic.vocabulary import (
    AGE_BAND_EDGES,
    CLUB_STATUSES,
    INDEX_TASTE,
    INDEXES,
    LOYAL,
    MATURITY_AGE,
    MATURITY_AGE_SCALE,
    NEWS_FREQUENCIES,
    PARENT_AGE_WIDTH,
    PARENT_PROB_AGE,
    PARENT_PROB_WIDTH,
    SEGMENTS,
    SUMMER,
    WINTER,
    YOUTH_AGE,
    YOUTH_AGE_SCALE,
)


@dataclass
class Population:
    """Per-customer latent arrays (index = position in the sorted customer_id list)."""

    age: np.ndarray  # latent age (always known; ~1% is hidden in the output)
    age_band: np.ndarray
    segment: np.ndarray
    season: np.ndarray  # 1 summer / 2 winter (used by the seasonal segment)
    index_cum: np.ndarray  # (customers, indexes) cumulative index preference, float32
    online: np.ndarray  # probability an occasion is online
    activity: np.ndarray  # relative occasion rate (0 for never-buyers)
    style_taste: np.ndarray | None  # (customers, styles) taste for the hidden styles, None = none


def build_population(config: SyntheticConfig, rng: np.random.Generator) -> Population:
    """Ages, segments, taste, channel preference and activity of every customer."""
    n = config.customers
    young = rng.random(n) < config.young_age_share
    age = np.where(
        young,
        rng.normal(config.young_age_mean, config.young_age_sd, n),
        rng.normal(config.old_age_mean, config.old_age_sd, n),
    )
    age = np.clip(np.round(age), config.age_min, config.age_max)
    segment = rng.choice(len(SEGMENTS), size=n, p=normalised(config.segment_shares))
    male = rng.random(n) < config.male_share
    parent = rng.random(n) < config.parent_share * bump(age, PARENT_PROB_AGE, PARENT_PROB_WIDTH)
    pref = _index_preferences(age, male, parent) * rng.lognormal(0.0, config.taste_sigma, (n, len(INDEXES)))
    pref /= pref.sum(axis=1, keepdims=True)
    pref = _apply_index_loyalty(config, rng, pref, segment == LOYAL)
    activity = rng.lognormal(0.0, config.activity_sigma, n)
    activity[rng.random(n) < config.never_buy_share] = 0.0
    return Population(
        age=age,
        age_band=np.digitize(age, AGE_BAND_EDGES),
        segment=segment,
        season=rng.integers(SUMMER, WINTER + 1, n),
        index_cum=np.cumsum(pref, axis=1).astype(np.float32),
        online=rng.beta(*config.online_beta, n),
        activity=activity,
        style_taste=(
            stream(config, "population").lognormal(0.0, config.style_taste_sigma, (n, config.styles)).astype(np.float32)
            if config.style_taste_sigma > 0
            else None
        ),
    )


def _index_preferences(age: np.ndarray, male: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """(customers, indexes) unnormalised taste from ``INDEX_TASTE``."""
    taste = np.array(INDEX_TASTE)
    youth = logistic((YOUTH_AGE - age) / YOUTH_AGE_SCALE)[:, None]
    maturity = logistic((age - MATURITY_AGE) / MATURITY_AGE_SCALE)[:, None]
    female_pref = taste[:, 0] + taste[:, 1] * youth + taste[:, 2] * maturity
    male_pref = taste[:, 3] + taste[:, 4] * youth + taste[:, 5] * maturity
    pref = np.where(male[:, None], male_pref, female_pref)
    parent_boost = taste[:, 6] * bump(age[:, None], taste[:, 7], PARENT_AGE_WIDTH)
    return pref + parent[:, None] * parent_boost


def _apply_index_loyalty(
    config: SyntheticConfig, rng: np.random.Generator, pref: np.ndarray, loyal: np.ndarray
) -> np.ndarray:
    """Index-loyal customers put loyal_index_share of their choice on one (taste-drawn) index."""
    cum = np.cumsum(pref, axis=1)
    favourite = np.minimum((cum <= rng.random(len(pref))[:, None]).sum(axis=1), pref.shape[1] - 1)
    onehot = np.zeros_like(pref)
    onehot[np.arange(len(pref)), favourite] = 1.0
    share = config.loyal_index_share
    return np.where(loyal[:, None], share * onehot + (1 - share) * pref, pref)


def _hex_ids(rng: np.random.Generator, n: int) -> pl.Series:
    """n random 64-char lowercase hex strings (like H&M's hashed ids), built without loops."""
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    lut = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    chars = np.empty((n, 64), dtype=np.uint8)
    chars[:, 0::2] = lut[raw >> 4]
    chars[:, 1::2] = lut[raw & 15]
    return pl.Series(chars.view("S64").ravel()).cast(pl.String)


def customers_frame(
    config: SyntheticConfig, rng: np.random.Generator, population: Population
) -> tuple[pl.DataFrame, pl.Series]:
    """The customers table (sorted by customer_id, as in H&M) and the id series."""
    n = config.customers
    ids = _hex_ids(rng, n).sort()
    fn = rng.random(n) < config.fn_share
    active = rng.random(n) < np.where(fn, config.active_given_fn, config.active_given_no_fn)
    club = rng.choice(len(CLUB_STATUSES), size=n, p=normalised(config.club_status_probs))
    news = np.where(
        fn,
        rng.choice(len(NEWS_FREQUENCIES), size=n, p=normalised(config.news_probs_fn)),
        rng.choice(len(NEWS_FREQUENCIES), size=n, p=normalised(config.news_probs_no_fn)),
    )
    age = np.where(rng.random(n) < config.age_null_share, np.nan, population.age)
    n_postal = max(1, round(n * config.postal_codes_per_customer))
    postal_pool = _hex_ids(rng, n_postal)
    postal_weights = rng.lognormal(0.0, config.postal_popularity_sigma, n_postal)
    postal = rng.choice(n_postal, size=n, p=postal_weights / postal_weights.sum())
    postal[rng.random(n) < config.common_postal_share] = 0
    frame = pl.DataFrame(
        {
            "customer_id": ids,
            "FN": pl.Series(np.where(fn, 1.0, np.nan)).fill_nan(None),
            "Active": pl.Series(np.where(active, 1.0, np.nan)).fill_nan(None),
            "club_member_status": pl.Series(CLUB_STATUSES, dtype=pl.String).gather(club),
            "fashion_news_frequency": pl.Series(NEWS_FREQUENCIES, dtype=pl.String).gather(news),
            "age": pl.Series(age).fill_nan(None),
            "postal_code": postal_pool.gather(postal),
        }
    )
    return frame, ids
