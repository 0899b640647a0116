"""The generator's configuration (`SyntheticConfig`), its version and the shop profiles."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from hm_recs.synthetic.vocabulary import CLUB_STATUSES, NEWS_FREQUENCIES, SEGMENTS


@dataclass(frozen=True)
class SyntheticConfig:
    """All knobs of the generator; the defaults give an H&M-like shop (see the module docstring)."""

    customers: int = 2000
    weeks: int = 12
    seed: int = 7
    #: A Tuesday; the data covers ``weeks`` whole Wednesday..Tuesday weeks ending on it.
    last_day: dt.date = dt.date(2020, 9, 22)
    #: Catalogue size; None scales with customers (H&M ratio, never below ``min_articles``).
    articles: int | None = None
    #: Mean transaction rows per customer per week (H&M: 305k / 1.37M).
    purchase_rate: float = 0.22

    # catalogue: size, products and colour variants, launches
    articles_per_customer: float = 105_542 / 1_371_980
    min_articles: int = 300
    variants_per_product: float = 2.23
    prelaunch_share: float = 0.35
    prelaunch_max_weeks: int = 52
    late_variant_share: float = 0.2
    late_variant_max_weeks: int = 8
    detail_desc_null_share: float = 0.004
    name_suffix_share: float = 0.05
    denim_appearance_share: float = 0.8
    # popularity and lifecycle
    #: product popularity = rank ** -popularity_zipf (random ranks)
    popularity_zipf: float = 0.65
    variant_popularity_sigma: float = 0.5
    lifecycle_rise_weeks: float = 1.5
    lifecycle_decay_weeks: float = 8.0
    lifecycle_decay_sigma: float = 0.5
    basics_decay_multiplier: float = 4.0
    # seasonality
    season_strength: float = 1.5
    summer_peak_doy: int = 196
    winter_peak_doy: int = 15
    demand_season_amplitude: float = 0.1
    # prices and promotions
    price_median: float = 0.025
    price_sigma: float = 0.45
    price_min: float = 0.004
    price_max: float = 0.5
    #: base prices are multiples of this many 1/59000 units, minus one (like 999/59000)
    price_grid_step: int = 50
    promo_share: float = 0.06
    promo_block_weeks: int = 2
    promo_depth_min: float = 0.2
    promo_depth_max: float = 0.5
    promo_elasticity: float = 3.0
    price_noise_share: float = 0.15
    price_noise_max: float = 0.1
    # repeat purchases and baskets
    #: probability that an occasion tries a re-buy (then accepted with the type's propensity)
    repeat_share: float = 0.3
    history_size: int = 8
    basket_size_probs: tuple[float, ...] = (0.55, 0.25, 0.13, 0.07)
    same_product_share: float = 0.4
    partners_per_article: int = 4
    partner_window: int = 8
    unit_probs: tuple[float, ...] = (0.93, 0.055, 0.015)
    # customers and segments
    #: shares of ``SEGMENTS``: follower, index_loyal, discount_hunter, seasonal, default
    segment_shares: tuple[float, float, float, float, float] = (0.1, 0.2, 0.1, 0.1, 0.5)
    follower_copy_share: float = 0.85
    follower_top_n: int = 24
    loyal_index_share: float = 0.9
    hunter_promo_boost: float = 200.0
    hunter_taste_share: float = 0.3
    seasonal_activity_strength: float = 2.0
    never_buy_share: float = 0.1
    #: log-normal sigma of the customers' relative occasion rate (heavy-tailed activity)
    activity_sigma: float = 1.1
    male_share: float = 0.12
    parent_share: float = 0.45
    taste_sigma: float = 0.5
    section_age_width: float = 12.0
    #: Beta(a, b) of each customer's probability to shop online (U-shaped, mean ~2/3 as in H&M)
    online_beta: tuple[float, float] = (0.9, 0.45)
    #: Relative number of purchase occasions on Wed, Thu, Fri, Sat, Sun, Mon, Tue.
    weekday_weights: tuple[float, ...] = (1.0, 1.0, 1.1, 1.25, 1.05, 0.95, 0.95)
    # customer attributes
    young_age_share: float = 0.6
    young_age_mean: float = 25.0
    young_age_sd: float = 5.0
    old_age_mean: float = 50.0
    old_age_sd: float = 11.0
    age_min: int = 16
    age_max: int = 99
    age_null_share: float = 0.01
    fn_share: float = 0.35
    active_given_fn: float = 0.96
    active_given_no_fn: float = 0.005
    #: Probabilities of ``CLUB_STATUSES`` (ACTIVE, PRE-CREATE, LEFT CLUB, null).
    club_status_probs: tuple[float, ...] = (0.927, 0.066, 0.0025, 0.0045)
    #: Probabilities of ``NEWS_FREQUENCIES`` (NONE, Regularly, Monthly, null) for FN = 1 / FN null.
    news_probs_fn: tuple[float, ...] = (0.01, 0.97, 0.01, 0.01)
    news_probs_no_fn: tuple[float, ...] = (0.98, 0.005, 0.0, 0.015)
    postal_codes_per_customer: float = 0.26
    common_postal_share: float = 0.09
    postal_popularity_sigma: float = 1.0
    # -- effects added with the shop profiles (issue 18); each draws from its own random stream, so
    # switching one on or off leaves every other draw as it was
    #: probability that a colour variant draws its own colour and appearance; otherwise it copies
    #: its product's first variant, so the variants share every catalogue attribute (grocery: flavours)
    variant_attribute_share: float = 1.0
    #: floor of every product type's repeat propensity (grocery: everything is re-bought)
    repeat_propensity_min: float = 0.0
    #: median re-buy cycle in weeks (0 = none: a re-buy picks a remembered article uniformly); with a
    #: cycle, a re-buy favours articles bought often and about one cycle ago (lognormal per product)
    rebuy_cycle_weeks: float = 0.0
    rebuy_cycle_sigma: float = 0.5
    #: hidden visual styles: every product has one; no catalogue column names it, the description
    #: mentions it (``style_desc_share`` of the products) and the image vectors carry it
    styles: int = 12
    #: log-normal sigma of each customer's taste for the styles (0 = no visual taste)
    style_taste_sigma: float = 2.0
    style_desc_share: float = 0.6
    #: length of the optional image vectors (``article_images``; 0 = not generated)
    image_dim: int = 0
    #: demand shifts (a campaign, a launch): every ``demand_shift_every_weeks`` weeks (counted back from
    #: the last week, the latest starting in the second-to-last week) ``demand_shift_share`` of the
    #: occasions start with one of ``demand_shift_articles`` articles that sold far less until then
    #: (at least 10x their usual rate), for ``demand_shift_duration`` weeks (0 = never)
    demand_shift_every_weeks: int = 8
    demand_shift_articles: int = 5
    demand_shift_share: float = 0.15
    demand_shift_duration: int = 2

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError with a clear message for an unusable configuration (the first problem found)."""
        self._validate_sizes()
        self._validate_weights()
        self._validate_shares_and_ranges()
        self._validate_profile_knobs()

    def _validate_sizes(self) -> None:
        """The shop's sizes, its calendar and the structural counts."""
        if not _is_count(self.customers, 1):
            raise ValueError(f"customers must be an int >= 1, got {self.customers!r}")
        if not _is_count(self.weeks, 1):
            raise ValueError(f"weeks must be an int >= 1, got {self.weeks!r}")
        if (
            not isinstance(self.last_day, dt.date)
            or isinstance(self.last_day, dt.datetime)
            or self.last_day.weekday() != 1
        ):
            raise ValueError(f"last_day must be a Tuesday (H&M weeks run Wednesday..Tuesday), got {self.last_day!r}")
        if self.articles is not None and not _is_count(self.articles, 1):
            raise ValueError(f"articles must be None or an int >= 1, got {self.articles!r}")
        if not self.purchase_rate >= 0:
            raise ValueError(f"purchase_rate must be >= 0, got {self.purchase_rate!r}")
        if self.follower_top_n < 1:
            raise ValueError("follower_top_n must be >= 1")
        if self.history_size < 1 or self.partners_per_article < 1 or self.partner_window < 1:
            raise ValueError("history_size, partners_per_article and partner_window must be >= 1")
        if self.partners_per_article > 2 * self.partner_window:
            raise ValueError("partners_per_article must be <= 2 * partner_window")
        if self.promo_block_weeks < 1:
            raise ValueError("promo_block_weeks must be >= 1")
        if len(self.weekday_weights) != 7:
            raise ValueError("weekday_weights needs 7 values (Wednesday..Tuesday)")

    def _validate_weights(self) -> None:
        """The categorical weights: non-negative, a positive sum and one value per category."""
        for name in _WEIGHT_FIELDS:
            probs = np.asarray(getattr(self, name), dtype=float)
            if probs.size == 0 or (probs < 0).any() or probs.sum() <= 0:
                raise ValueError(f"{name} must be non-negative weights with a positive sum")
        if len(self.segment_shares) != len(SEGMENTS):
            raise ValueError(f"segment_shares needs {len(SEGMENTS)} values in order {SEGMENTS}")
        if len(self.club_status_probs) != len(CLUB_STATUSES):
            raise ValueError(f"club_status_probs needs {len(CLUB_STATUSES)} values")
        if {len(self.news_probs_fn), len(self.news_probs_no_fn)} != {len(NEWS_FREQUENCIES)}:
            raise ValueError(f"news_probs_* need {len(NEWS_FREQUENCIES)} values")

    def _validate_shares_and_ranges(self) -> None:
        """The shares within [0, 1] and the ordered ranges (promotion depth, price, variants, age)."""
        _validate_shares(self, _SHARE_FIELDS)
        if not 0.0 <= self.promo_depth_min <= self.promo_depth_max < 1.0:
            raise ValueError("need 0 <= promo_depth_min <= promo_depth_max < 1")
        if not 0.0 < self.price_min <= self.price_max:
            raise ValueError("need 0 < price_min <= price_max")
        if self.variants_per_product < 1.0:
            raise ValueError("variants_per_product must be >= 1")
        if not self.age_min <= self.age_max:
            raise ValueError("need age_min <= age_max")

    def _validate_profile_knobs(self) -> None:
        """The knobs the shop profiles turn: variant attributes, styles, images, re-buy cycles, demand shifts."""
        _validate_shares(self, _PROFILE_SHARE_FIELDS)
        if not _is_count(self.styles, 1):
            raise ValueError(f"styles must be an int >= 1, got {self.styles!r}")
        if not _is_count(self.image_dim, 0):
            raise ValueError(f"image_dim must be an int >= 0, got {self.image_dim!r}")
        if self.rebuy_cycle_weeks < 0 or self.style_taste_sigma < 0 or self.rebuy_cycle_sigma < 0:
            raise ValueError("rebuy_cycle_weeks, rebuy_cycle_sigma and style_taste_sigma must be >= 0")
        if not _is_count(self.demand_shift_every_weeks, 0) or not _is_count(self.demand_shift_articles, 0):
            raise ValueError("demand_shift_every_weeks and demand_shift_articles must be ints >= 0")
        if not _is_count(self.demand_shift_duration, 1):
            raise ValueError("demand_shift_duration must be an int >= 1")

    @property
    def n_articles(self) -> int:
        """Catalogue size actually generated."""
        if self.articles is not None:
            return self.articles
        return max(self.min_articles, round(self.customers * self.articles_per_customer))

    @property
    def first_day(self) -> dt.date:
        """The Wednesday that starts the first week."""
        return self.last_day - dt.timedelta(days=7 * self.weeks - 1)


#: Bumped whenever a change alters what a configuration generates (caches of generated data name it).
GENERATOR_VERSION = 2


#: Shop profiles (``hm-recs synth --profile``): field overrides of :class:`SyntheticConfig`.
#: ``fashion`` is the default configuration (an H&M-like shop: few re-buys, about one article per
#: combination of catalogue attributes, customers who buy now and then).  ``grocery`` follows the real
#: shops in the H&M layout that issue 18 measured: about half of a week's distinct customer-article
#: purchases re-buy an article the customer bought before, 5-15 articles share each combination of
#: catalogue attributes (flavours, sizes and brands of one product), and most customers buy most weeks.
PROFILES: dict[str, dict[str, object]] = {
    "fashion": {},
    "grocery": {
        "purchase_rate": 2.2,
        "variants_per_product": 9.0,
        "variant_attribute_share": 0.05,
        "variant_popularity_sigma": 0.8,
        "repeat_share": 0.5,
        "repeat_propensity_min": 0.75,
        "history_size": 24,
        "rebuy_cycle_weeks": 3.0,
        "basket_size_probs": (0.35, 0.3, 0.2, 0.1, 0.05),
        "same_product_share": 0.3,
        "unit_probs": (0.88, 0.1, 0.02),
        "activity_sigma": 0.5,
        "never_buy_share": 0.02,
        "prelaunch_share": 0.85,
        "prelaunch_max_weeks": 104,
        "lifecycle_decay_weeks": 60.0,
        "season_strength": 0.6,
        "seasonal_activity_strength": 0.6,
        "promo_share": 0.04,
    },
}


def profile_config(profile: str = "fashion", **fields: object) -> SyntheticConfig:
    """The configuration of a shop ``profile`` (a key of :data:`PROFILES`), with ``fields`` (sizes, seed,
    ...) overriding it; e.g. ``profile_config("grocery", customers=50_000, weeks=104)``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return SyntheticConfig(**{**PROFILES[profile], **fields})


def _is_count(value: object, minimum: int) -> bool:
    """An integer (not a bool) of at least ``minimum``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and int(value) >= minimum


#: The categorical weights that ``validate`` checks (non-negative, with a positive sum).
_WEIGHT_FIELDS = (
    "basket_size_probs",
    "unit_probs",
    "segment_shares",
    "club_status_probs",
    "news_probs_fn",
    "news_probs_no_fn",
    "weekday_weights",
)

#: The shares that ``validate`` checks are within [0, 1], first the shop's, then the profile knobs'.
_SHARE_FIELDS = (
    "prelaunch_share",
    "late_variant_share",
    "detail_desc_null_share",
    "name_suffix_share",
    "denim_appearance_share",
    "promo_share",
    "price_noise_share",
    "repeat_share",
    "hunter_taste_share",
    "same_product_share",
    "follower_copy_share",
    "loyal_index_share",
    "never_buy_share",
    "male_share",
    "parent_share",
    "young_age_share",
    "age_null_share",
    "fn_share",
    "active_given_fn",
    "active_given_no_fn",
    "common_postal_share",
)
_PROFILE_SHARE_FIELDS = ("variant_attribute_share", "repeat_propensity_min", "style_desc_share", "demand_shift_share")


def _validate_shares(config: SyntheticConfig, names: tuple[str, ...]) -> None:
    """Raise ValueError for the first of the fields ``names`` of ``config`` outside [0, 1]."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {value!r}")
