"""Deterministic synthetic data in the exact layout of the H&M Personalized Fashion
Recommendations data (Kaggle).

The generator produces the three Kaggle tables (``articles``, ``customers``,
``transactions_train``) with the same columns, column order, value formats and code/name
vocabularies as the real files, at any scale from a few hundred customers (tests) to full H&M
scale (1.37M customers, ~105k articles, ~31.8M transactions over 104 weeks).  Unlike random data
it contains *planted structure* that a good recommender can learn and that the tests measure.
Each planted effect is controlled by named fields of :class:`SyntheticConfig`:

1. **Popularity and lifecycle** -- product popularity is Zipf-like (``popularity_zipf``; colour
   variants spread by ``variant_popularity_sigma``).  The whole catalogue is listed in
   ``articles`` from the start (as in H&M), but an article only sells from its launch week:
   ``prelaunch_share`` of the products were launched before the window (up to
   ``prelaunch_max_weeks`` earlier), the rest launch spread over *every* week; some colour
   variants follow later (``late_variant_share``, ``late_variant_max_weeks``).  Sales follow the
   lifecycle ``(1 - exp(-(age+1)/rise)) * exp(-age/decay)`` (``lifecycle_rise_weeks``,
   ``lifecycle_decay_weeks``, ``lifecycle_decay_sigma``; all-year basics decay
   ``basics_decay_multiplier`` times slower), so last week's sales ("trending") predict next
   week better than all-time sales.
2. **Seasonality** -- each product is all-year, summer or winter (drawn from its product type's
   tendency, ``PRODUCT_TYPES`` / ``SEASON_TENDENCY``); seasonal products sell
   ``exp(season_strength * cos(2*pi*(doy - peak)/365))`` times as much, peaks at
   ``summer_peak_doy`` / ``winter_peak_doy`` (each week is mapped to the day of year of its
   middle day).  Total weekly demand also swings by ``demand_season_amplitude``.
3. **Repeat purchases** -- an occasion starts with a re-buy of one of the customer's last
   ``history_size`` articles with probability ``repeat_share`` times the product type's repeat
   propensity (socks, underwear, bodysuits, jersey basics are re-bought most).
4. **Baskets** -- an occasion has 1-4 distinct articles (``basket_size_probs``); each extra item
   is another colour of the same product (``same_product_share``) or one of the first item's
   ``partners_per_article`` fixed co-purchase partners (articles of the same section launched at
   about the same time, within ``partner_window`` positions), so "bought together" is learnable.
   Each line is bought in 1-3 units (``unit_probs``), written as identical duplicate rows like
   H&M does.
5. **Segments and age-dependent taste** -- each customer has a planted segment
   (``segment_shares``, returned in ``planted_segments``): ``bestseller_follower`` copy
   (``follower_copy_share``) last week's ``follower_top_n`` bestsellers of their age band;
   ``index_loyal`` put ``loyal_index_share`` of their index choice on one index;
   ``discount_hunter`` weight promoted articles ``hunter_promo_boost`` times more and follow
   their index taste only ``hunter_taste_share`` of the time; ``seasonal`` shop mostly in one season
   (``seasonal_activity_strength``); ``default`` have none of these.  Age shifts the index
   preference (young -> Divided, older -> Ladieswear, ``male_share`` -> Menswear, parents
   (``parent_share``) -> Baby/Children; table ``INDEX_TASTE``) and, within an index, the section
   (each section has a shopper age centre, width ``section_age_width``); every customer also has
   individual taste noise (``taste_sigma``).
6. **Price promotions** -- every product has a base price on H&M's price grid (whole SEK/59000
   units; ``price_median``, ``price_sigma``, ``price_grid_step``); in blocks of
   ``promo_block_weeks`` weeks ``promo_share`` of the articles are discounted by
   ``promo_depth_min``..``promo_depth_max`` and their demand lifts by
   ``exp(promo_elasticity * depth)``; the paid price reflects the discount, and
   ``price_noise_share`` of the lines get up to ``price_noise_max`` extra off (member prices).
7. **Channel** -- each customer has an online propensity ~ Beta(``online_beta``); each occasion
   is online (2) or in store (1) accordingly.

Customer activity is heavy tailed (log-normal, ``activity_sigma``) and ``never_buy_share`` of the
customers never buy (cold start).  The mean number of transaction rows per customer-week is
``purchase_rate``.

Everything is vectorised with numpy/polars (the only Python loops run over weeks, basket slots
and small vocabulary tables): full H&M scale generates in well under a minute of compute.  A
single ``numpy.random.Generator(PCG64(seed))`` drives every draw in a fixed order, so the same
config always gives identical frames and identical files.

Because the shop is a known random process, :mod:`hm_recs.synthetic.ceiling` can list what a model that
knew the simulation's hidden state would list in a week (``generate(config, observe)`` hands it the state as
each week begins): the ceiling a target on a generated shop is measured against
(``benchmarks/generator_ceiling.py``).
"""

from hm_recs.synthetic.config import GENERATOR_VERSION, PROFILES, SyntheticConfig, profile_config
from hm_recs.synthetic.generator import SyntheticData, generate, write
from hm_recs.synthetic.vocabulary import PRODUCT_TYPES, SEGMENTS

__all__ = [
    "GENERATOR_VERSION",
    "PRODUCT_TYPES",
    "PROFILES",
    "SEGMENTS",
    "SyntheticConfig",
    "SyntheticData",
    "generate",
    "profile_config",
    "write",
]
