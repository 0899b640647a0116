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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from hm_recs.core.schema import ARTICLE_COLUMNS  # the H&M layout, one place

__all__ = [
    "GENERATOR_VERSION",
    "PROFILES",
    "SEGMENTS",
    "SyntheticConfig",
    "SyntheticData",
    "generate",
    "profile_config",
    "write",
]

# --------------------------------------------------------------------------------------------
# Vocabularies (code <-> name pairs as used in the H&M articles file)
# --------------------------------------------------------------------------------------------

#: Prices in the H&M file are SEK amounts divided by this constant.
PRICE_SCALE = 59_000.0

#: Planted customer segments, in the order used by ``SyntheticConfig.segment_shares``.
SEGMENTS: tuple[str, ...] = (
    "bestseller_follower",
    "index_loyal",
    "discount_hunter",
    "seasonal",
    "default",
)
_FOLLOWER, _LOYAL, _HUNTER, _SEASONAL, _DEFAULT = range(len(SEGMENTS))

#: index_code, index_name, index_group_no, index_group_name
INDEXES: tuple[tuple[str, str, int, str], ...] = (
    ("A", "Ladieswear", 1, "Ladieswear"),
    ("B", "Lingeries/Tights", 1, "Ladieswear"),
    ("C", "Ladies Accessories", 1, "Ladieswear"),
    ("D", "Divided", 2, "Divided"),
    ("F", "Menswear", 3, "Menswear"),
    ("G", "Baby Sizes 50-98", 4, "Baby/Children"),
    ("H", "Children Sizes 92-140", 4, "Baby/Children"),
    ("I", "Children Sizes 134-170", 4, "Baby/Children"),
    ("J", "Children Accessories, Swimwear", 4, "Baby/Children"),
    ("S", "Sport", 26, "Sport"),
)

#: Index taste by sex and age, one row per entry of ``INDEXES``:
#: (female base, female youth boost, female maturity boost,
#:  male base, male youth boost, male maturity boost, parent boost, parent age centre).
#: Youth boosts apply below ``YOUTH_AGE``, maturity boosts above ``MATURITY_AGE`` (logistic), the
#: parent boost is a bump of width ``PARENT_AGE_WIDTH`` around the age of a parent of such children.
INDEX_TASTE: tuple[tuple[float, ...], ...] = (
    (1.00, 0.0, 2.0, 0.05, 0.0, 0.10, 0.0, 0.0),  # A Ladieswear
    (0.80, 0.0, 0.2, 0.02, 0.0, 0.00, 0.0, 0.0),  # B Lingeries/Tights
    (0.70, 0.5, 0.0, 0.10, 0.0, 0.00, 0.0, 0.0),  # C Ladies Accessories
    (0.30, 3.0, 0.0, 0.20, 1.0, 0.00, 0.0, 0.0),  # D Divided
    (0.20, 0.0, 0.1, 5.00, 0.0, 0.00, 0.0, 0.0),  # F Menswear
    (0.08, 0.0, 0.0, 0.05, 0.0, 0.00, 3.0, 31.0),  # G Baby
    (0.08, 0.0, 0.0, 0.05, 0.0, 0.00, 3.0, 37.0),  # H Children 92-140
    (0.08, 0.0, 0.0, 0.05, 0.0, 0.00, 2.5, 43.0),  # I Children 134-170
    (0.05, 0.0, 0.0, 0.03, 0.0, 0.00, 1.2, 37.0),  # J Children accessories
    (0.35, 0.2, 0.0, 0.80, 0.2, 0.00, 0.0, 0.0),  # S Sport
)
YOUTH_AGE = 26.0
YOUTH_AGE_SCALE = 3.0
MATURITY_AGE = 35.0
MATURITY_AGE_SCALE = 5.0
PARENT_AGE_WIDTH = 7.0
#: Parenthood probability peaks at this age (bump of width ``PARENT_PROB_WIDTH``).
PARENT_PROB_AGE = 37.0
PARENT_PROB_WIDTH = 9.0
#: Age band edges used by bestseller followers ("popular in my age group").
AGE_BAND_EDGES: tuple[float, ...] = (25.0, 35.0, 50.0)

#: section_no, section_name, index_code, age centre of its shoppers
SECTIONS: tuple[tuple[int, str, str, float], ...] = (
    (16, "Womens Everyday Basics", "A", 38.0),
    (15, "Womens Everyday Collection", "A", 42.0),
    (18, "Womens Trend", "A", 27.0),
    (14, "Womens Premium", "A", 52.0),
    (11, "Womens Tailoring", "A", 45.0),
    (61, "Womens Lingerie", "B", 32.0),
    (62, "Womens Nightwear, Socks & Tigh", "B", 42.0),
    (60, "Womens Swimwear, beachwear", "B", 30.0),
    (66, "Womens Small accessories", "C", 30.0),
    (64, "Womens Shoes", "C", 36.0),
    (65, "Womens Big accessories", "C", 40.0),
    (53, "Divided Collection", "D", 21.0),
    (51, "Divided Basics", "D", 22.0),
    (52, "Divided Accessories", "D", 20.0),
    (21, "Contemporary Casual", "F", 30.0),
    (20, "Contemporary Smart", "F", 42.0),
    (26, "Men Underwear", "F", 38.0),
    (27, "Men Shoes", "F", 36.0),
    (44, "Baby Essentials & Complements", "G", 31.0),
    (40, "Baby Girl", "G", 32.0),
    (41, "Baby Boy", "G", 32.0),
    (76, "Kids Girl", "H", 37.0),
    (46, "Kids Boy", "H", 37.0),
    (45, "Kids Outerwear", "H", 38.0),
    (77, "Young Girl", "I", 43.0),
    (47, "Young Boy", "I", 43.0),
    (43, "Kids Accessories, Swimwear & D", "J", 38.0),
    (42, "Kids & Baby Shoes", "J", 35.0),
    (5, "Ladies H&M Sport", "S", 30.0),
    (22, "Men H&M Sport", "S", 32.0),
)

#: garment_group_no -> garment_group_name
GARMENT_GROUPS: dict[int, str] = {
    1002: "Jersey Basic",
    1003: "Knitwear",
    1005: "Jersey Fancy",
    1006: "Woven/Jersey/Knitted mix Baby",
    1007: "Outdoor",
    1009: "Trousers",
    1010: "Blouses",
    1011: "Shirts",
    1013: "Dresses Ladies",
    1014: "Dresses/Skirts girls",
    1016: "Trousers Denim",
    1017: "Under-, Nightwear",
    1018: "Swimwear",
    1019: "Accessories",
    1020: "Shoes",
    1021: "Socks and Tights",
}
#: Garment group whose articles mostly have the "Denim" graphical appearance.
DENIM_GARMENT_GROUP = 1016

#: department_no, department_name, section_no, garment_group_no, product types, relative size
DEPARTMENTS: tuple[tuple[int, str, int, int, tuple[int, ...], float], ...] = (
    (1676, "Jersey Basic", 16, 1002, (253, 255, 273), 3.0),
    (1626, "Knit Basic", 16, 1003, (252, 245), 1.0),
    (1643, "Jersey", 15, 1005, (254, 255, 265), 4.0),
    (1722, "Knitwear", 15, 1003, (252, 245), 3.0),
    (1747, "Trouser", 15, 1009, (272, 274), 3.0),
    (1641, "Blouse", 15, 1010, (258, 259), 3.0),
    (1644, "Dress", 15, 1013, (265, 267), 3.0),
    (1515, "Trend Jersey", 18, 1005, (254, 267), 2.0),
    (1510, "Trend Denim", 18, 1016, (272, 274, 275), 2.0),
    (1342, "Premium Quality", 14, 1010, (258, 265, 252), 1.5),
    (1340, "Premium Outerwear", 14, 1007, (262, 263), 1.0),
    (1310, "Tailoring", 11, 1009, (272, 275, 262), 2.0),
    (1339, "Clean Lingerie", 61, 1017, (306, 286), 3.0),
    (1334, "Expressive Lingerie", 61, 1017, (306, 286), 2.0),
    (3608, "Tights basic", 62, 1021, (304, 302), 2.0),
    (1313, "Nightwear", 62, 1017, (297,), 1.5),
    (1240, "Swimwear", 60, 1018, (59, 298, 57), 2.0),
    (3209, "Jewellery", 66, 1019, (70, 74), 2.0),
    (3210, "Small Accessories", 66, 1019, (81, 67, 74), 1.5),
    (3509, "Shoes", 64, 1020, (94, 87, 91), 2.0),
    (3212, "Bags", 65, 1019, (66,), 1.0),
    (3230, "Hats & Scarves", 65, 1019, (75, 80), 1.0),
    (5883, "Divided Jersey", 53, 1005, (254, 255, 253), 4.0),
    (5828, "Divided Trousers", 53, 1009, (272, 274), 3.0),
    (5830, "Divided Dresses", 53, 1013, (265, 267, 275), 3.0),
    (5820, "Divided Knit", 53, 1003, (252, 308), 2.0),
    (5999, "Divided Basics Jersey", 51, 1002, (255, 253, 273), 3.0),
    (5962, "Divided Accessories", 52, 1019, (70, 75, 81, 66), 2.0),
    (5963, "Divided Shoes", 52, 1020, (94, 91), 1.0),
    (7930, "Men Jersey", 21, 1005, (255, 308), 3.0),
    (7920, "Men Trousers", 21, 1009, (272, 274), 2.0),
    (7940, "Men Denim", 21, 1016, (272,), 2.0),
    (7616, "Men Shirts", 20, 1011, (259,), 2.0),
    (7617, "Men Knitwear", 20, 1003, (252, 245), 1.5),
    (7618, "Men Outerwear", 20, 1007, (262, 263), 1.0),
    (7560, "Men Underwear & Socks", 26, 1017, (286, 302), 2.0),
    (7480, "Men Shoes", 27, 1020, (94, 87), 1.0),
    (6515, "Baby basics", 44, 1006, (256, 268, 270), 3.0),
    (6520, "Baby Socks", 44, 1021, (302, 304), 1.5),
    (6542, "Baby Girl Jersey", 40, 1006, (270, 265, 256), 2.0),
    (6543, "Baby Boy Jersey", 41, 1006, (270, 268, 256), 2.0),
    (8310, "Kids Girl Jersey Fancy", 76, 1005, (254, 265, 273), 3.0),
    (8316, "Kids Girl Dresses", 76, 1014, (265, 275), 1.5),
    (8510, "Kids Boy Jersey Fancy", 46, 1005, (255, 308, 272), 3.0),
    (8512, "Kids Boy Denim", 46, 1016, (272, 274), 1.5),
    (8710, "Kids Outerwear", 45, 1007, (262, 263), 1.5),
    (8610, "Young Girl Jersey Fancy", 77, 1005, (254, 255, 265), 2.5),
    (8615, "Young Girl Trouser", 77, 1009, (272, 273, 274), 1.5),
    (8810, "Young Boy Jersey Fancy", 47, 1005, (255, 308), 2.0),
    (8815, "Young Boy Trouser", 47, 1009, (272, 274), 1.5),
    (8050, "Kids Swimwear", 43, 1018, (57, 59, 298), 1.5),
    (8052, "Kids Accessories", 43, 1019, (75, 74, 66), 1.5),
    (8040, "Kids Shoes", 42, 1020, (94, 87, 91), 1.5),
    (4242, "Ladies Sport Bottoms", 5, 1005, (273, 274), 1.5),
    (4244, "Ladies Sport Bras", 5, 1017, (306, 253), 1.0),
    (4252, "Men Sport Wear", 22, 1005, (255, 274, 308), 1.0),
)

#: Season tendency codes -> probabilities of (all-year, summer, winter) profiles.
SEASON_TENDENCY: dict[str, tuple[float, float, float]] = {
    "A": (0.80, 0.10, 0.10),
    "M": (0.50, 0.30, 0.20),
    "S": (0.05, 0.90, 0.05),
    "W": (0.05, 0.05, 0.90),
}
_ALL_YEAR, _SUMMER, _WINTER = 0, 1, 2

#: product_type_no, product_type_name, product_group_name, price multiplier, season tendency,
#: repeat propensity (probability that a re-buy attempt of this type goes ahead)
PRODUCT_TYPES: tuple[tuple[int, str, str, float, str, float], ...] = (
    (253, "Vest top", "Garment Upper body", 0.6, "M", 0.7),
    (255, "T-shirt", "Garment Upper body", 0.6, "A", 0.6),
    (254, "Top", "Garment Upper body", 0.7, "M", 0.35),
    (252, "Sweater", "Garment Upper body", 1.3, "W", 0.2),
    (258, "Blouse", "Garment Upper body", 1.0, "M", 0.2),
    (259, "Shirt", "Garment Upper body", 1.1, "A", 0.25),
    (262, "Jacket", "Garment Upper body", 2.2, "W", 0.1),
    (263, "Coat", "Garment Upper body", 3.2, "W", 0.05),
    (308, "Hoodie", "Garment Upper body", 1.2, "W", 0.2),
    (245, "Cardigan", "Garment Upper body", 1.2, "W", 0.2),
    (256, "Bodysuit", "Garment Upper body", 0.5, "A", 0.6),
    (272, "Trousers", "Garment Lower body", 1.3, "A", 0.35),
    (274, "Shorts", "Garment Lower body", 0.8, "S", 0.2),
    (275, "Skirt", "Garment Lower body", 0.9, "S", 0.15),
    (273, "Leggings/Tights", "Garment Lower body", 0.6, "A", 0.7),
    (265, "Dress", "Garment Full body", 1.3, "S", 0.1),
    (267, "Jumpsuit/Playsuit", "Garment Full body", 1.2, "S", 0.1),
    (270, "Garment Set", "Garment Full body", 0.9, "A", 0.3),
    (268, "Dungarees", "Garment Full body", 0.9, "A", 0.2),
    (286, "Underwear bottom", "Underwear", 0.3, "A", 0.9),
    (306, "Bra", "Underwear", 0.8, "A", 0.8),
    (302, "Socks", "Socks & Tights", 0.3, "A", 0.9),
    (304, "Underwear Tights", "Socks & Tights", 0.4, "W", 0.85),
    (59, "Swimwear bottom", "Swimwear", 0.5, "S", 0.3),
    (298, "Bikini top", "Swimwear", 0.6, "S", 0.3),
    (57, "Swimsuit", "Swimwear", 0.9, "S", 0.2),
    (297, "Pyjama set", "Nightwear", 0.9, "A", 0.3),
    (94, "Sneakers", "Shoes", 1.8, "A", 0.1),
    (87, "Boots", "Shoes", 2.5, "W", 0.05),
    (91, "Sandals", "Shoes", 1.2, "S", 0.1),
    (66, "Bag", "Accessories", 1.0, "A", 0.05),
    (70, "Earring", "Accessories", 0.4, "A", 0.3),
    (75, "Hat/beanie", "Accessories", 0.5, "W", 0.1),
    (81, "Sunglasses", "Accessories", 0.4, "S", 0.1),
    (80, "Scarf", "Accessories", 0.6, "W", 0.1),
    (67, "Belt", "Accessories", 0.5, "A", 0.1),
    (74, "Hair/alice band", "Accessories", 0.3, "A", 0.5),
)
#: Types at least this re-buyable that are all-year count as basics (slow lifecycle decay).
BASICS_MIN_REPEAT_PROPENSITY = 0.6

#: colour_group_code, colour_group_name, perceived_colour_value_id, perceived_colour_master_id,
#: relative frequency
COLOURS: tuple[tuple[int, str, int, int, float], ...] = (
    (9, "Black", 4, 5, 22.0),
    (73, "Dark Blue", 4, 2, 12.0),
    (10, "White", 3, 9, 9.5),
    (51, "Light Pink", 1, 4, 5.8),
    (7, "Grey", 2, 12, 4.5),
    (12, "Light Beige", 1, 11, 3.4),
    (72, "Blue", 5, 2, 3.3),
    (42, "Red", 5, 18, 3.1),
    (71, "Light Blue", 1, 2, 3.0),
    (19, "Greenish Khaki", 2, 20, 2.8),
    (8, "Dark Grey", 4, 12, 2.7),
    (11, "Off White", 1, 9, 2.7),
    (13, "Beige", 2, 11, 2.7),
    (43, "Dark Red", 4, 18, 2.3),
    (93, "Dark Green", 4, 19, 2.1),
    (6, "Light Grey", 3, 12, 2.1),
    (52, "Pink", 2, 4, 2.1),
    (22, "Yellow", 5, 8, 1.6),
    (17, "Yellowish Brown", 2, 13, 1.5),
    (5, "Gold", 7, 15, 1.4),
    (32, "Orange", 5, 3, 0.8),
    (62, "Purple", 7, 6, 0.2),
    (82, "Turquoise", 7, 7, 0.4),
)
PERCEIVED_COLOUR_VALUES: dict[int, str] = {
    1: "Dusty Light",
    2: "Medium Dusty",
    3: "Light",
    4: "Dark",
    5: "Bright",
    7: "Medium",
}
PERCEIVED_COLOUR_MASTERS: dict[int, str] = {
    2: "Blue",
    3: "Orange",
    4: "Pink",
    5: "Black",
    6: "Lilac Purple",
    7: "Turquoise",
    8: "Yellow",
    9: "White",
    11: "Beige",
    12: "Grey",
    13: "Brown",
    15: "Metal",
    18: "Red",
    19: "Green",
    20: "Khaki green",
}

#: graphical_appearance_no, graphical_appearance_name, relative frequency (Denim handled apart)
GRAPHICAL_APPEARANCES: tuple[tuple[int, str, float], ...] = (
    (1010016, "Solid", 50.0),
    (1010001, "All over pattern", 17.0),
    (1010010, "Melange", 6.0),
    (1010017, "Stripe", 5.0),
    (1010008, "Front print", 3.2),
    (1010014, "Placement print", 3.1),
    (1010004, "Check", 2.2),
    (1010005, "Colour blocking", 1.8),
    (1010021, "Lace", 1.5),
)
DENIM_APPEARANCE: tuple[int, str] = (1010023, "Denim")

#: Words for generated product names and descriptions.
NAME_STEMS: tuple[str, ...] = (
    "Luna",
    "Tilly",
    "Bella",
    "Jade",
    "Mona",
    "Rex",
    "Timmy",
    "Skinny",
    "Slim",
    "Relaxed",
    "Wide",
    "Cropped",
    "Basic",
    "Soft",
    "Cosy",
    "Sunny",
    "Ivy",
    "Nora",
    "Vera",
    "Mia",
    "Zoe",
    "Lola",
    "Ella",
    "Kim",
    "Max",
    "Leo",
    "Sam",
    "Alba",
    "Rosa",
    "Maja",
    "Lily",
    "Stella",
    "Chloe",
    "Ava",
    "Tova",
    "Ines",
    "Dixie",
    "Perrie",
    "Jordan",
    "Hudson",
)
DESC_FITS: tuple[str, ...] = (
    "Fitted",
    "Relaxed-fit",
    "Oversized",
    "Short",
    "Long",
    "Soft",
    "Loose-fit",
    "Straight-cut",
)
DESC_MATERIALS: tuple[str, ...] = (
    "soft cotton jersey",
    "fine-knit viscose",
    "woven fabric",
    "washed denim",
    "ribbed modal",
    "recycled polyester",
    "organic cotton",
    "sturdy twill",
)
#: Sentences naming a hidden visual style (``SyntheticConfig.styles`` wraps around this list).
DESC_STYLES: tuple[str, ...] = (
    "A minimalist look",
    "A romantic feel",
    "A sporty edge",
    "A vintage touch",
    "A boho mood",
    "A clean Scandinavian line",
    "A bold graphic statement",
    "A soft pastel mood",
    "A utility style",
    "An elegant evening feel",
    "A playful twist",
    "A classic preppy look",
    "A festival vibe",
    "A relaxed weekend feel",
    "A sleek monochrome look",
    "A retro seventies feel",
)
DESC_FEATURES: tuple[str, ...] = (
    "a round neckline",
    "short sleeves",
    "an elasticated waist",
    "side pockets",
    "a concealed zip",
    "adjustable straps",
    "ribbing at the hems",
    "a V-neck",
    "long sleeves",
    "a drawstring",
)

CLUB_STATUSES: tuple[str | None, ...] = ("ACTIVE", "PRE-CREATE", "LEFT CLUB", None)
NEWS_FREQUENCIES: tuple[str | None, ...] = ("NONE", "Regularly", "Monthly", None)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


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
        """Raise ValueError with a clear message for an unusable configuration."""
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
        for name in (
            "basket_size_probs",
            "unit_probs",
            "segment_shares",
            "club_status_probs",
            "news_probs_fn",
            "news_probs_no_fn",
            "weekday_weights",
        ):
            probs = np.asarray(getattr(self, name), dtype=float)
            if probs.size == 0 or (probs < 0).any() or probs.sum() <= 0:
                raise ValueError(f"{name} must be non-negative weights with a positive sum")
        if len(self.segment_shares) != len(SEGMENTS):
            raise ValueError(f"segment_shares needs {len(SEGMENTS)} values in order {SEGMENTS}")
        if len(self.club_status_probs) != len(CLUB_STATUSES):
            raise ValueError(f"club_status_probs needs {len(CLUB_STATUSES)} values")
        if {len(self.news_probs_fn), len(self.news_probs_no_fn)} != {len(NEWS_FREQUENCIES)}:
            raise ValueError(f"news_probs_* need {len(NEWS_FREQUENCIES)} values")
        for name in (
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
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if not 0.0 <= self.promo_depth_min <= self.promo_depth_max < 1.0:
            raise ValueError("need 0 <= promo_depth_min <= promo_depth_max < 1")
        if not 0.0 < self.price_min <= self.price_max:
            raise ValueError("need 0 < price_min <= price_max")
        if self.variants_per_product < 1.0:
            raise ValueError("variants_per_product must be >= 1")
        if not self.age_min <= self.age_max:
            raise ValueError("need age_min <= age_max")
        for name in ("variant_attribute_share", "repeat_propensity_min", "style_desc_share", "demand_shift_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
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


@dataclass(frozen=True)
class SyntheticData:
    """The three H&M tables plus the planted ground truth (not part of the H&M files)."""

    articles: pl.DataFrame
    customers: pl.DataFrame
    transactions: pl.DataFrame
    planted_segments: pl.DataFrame  # customer_id, segment
    #: article_id, image (fixed-length float32 list); None unless ``image_dim`` > 0
    article_images: pl.DataFrame | None = None
    #: the planted demand shifts: week (its Wednesday, ISO), article_id
    demand_shifts: pl.DataFrame | None = None


def generate(config: SyntheticConfig) -> SyntheticData:
    """Generate the synthetic H&M tables for ``config`` (deterministic in the config)."""
    config.validate()
    rng = np.random.Generator(np.random.PCG64(config.seed))
    calendar = _Calendar.build(config)
    catalogue = _build_catalogue(config, rng)
    population = _build_population(config, rng)
    tx, shifts = _simulate(config, rng, calendar, catalogue, population)
    customers, customer_ids = _customers_frame(config, rng, population)
    articles, article_ids = _articles_frame(catalogue)
    images = None
    if config.image_dim:
        vectors = _image_vectors(config, catalogue)
        images = pl.DataFrame(
            {"article_id": article_ids, "image": pl.Series(vectors, dtype=pl.Array(pl.Float32, config.image_dim))}
        ).sort("article_id")
    demand_shifts = pl.DataFrame(
        {
            "week": pl.Series([calendar.day_strings[7 * w] for w, _ in shifts], dtype=pl.String),
            "article_id": article_ids.gather(np.array([a for _, a in shifts], dtype=np.int64)),
        }
    )
    transactions = pl.DataFrame(
        {
            "t_dat": pl.Series(calendar.day_strings).gather(tx.day),
            "customer_id": customer_ids.gather(tx.customer),
            "article_id": article_ids.gather(tx.article),
            "price": tx.price,
            "sales_channel_id": tx.channel.astype(np.int64),
        }
    )
    planted = pl.DataFrame(
        {
            "customer_id": customer_ids,
            "segment": pl.Series(SEGMENTS).gather(population.segment),
        }
    )
    return SyntheticData(
        articles=articles,
        customers=customers,
        transactions=transactions,
        planted_segments=planted,
        article_images=images,
        demand_shifts=demand_shifts,
    )


def write(data: SyntheticData, out_dir: str | Path, fmt: str = "csv") -> dict[str, Path]:
    """Write articles.<fmt>, customers.<fmt>, transactions_train.<fmt> (fmt csv|parquet) into
    out_dir (created); return {"articles": path, "customers": path, "transactions": path}.

    The CSV layout matches the Kaggle files: header line, ``,`` separator, unquoted article ids with
    their leading zero, empty fields for nulls, floats such as ``23.0``.  planted_segments is not
    written (it is ground truth, not H&M data).  Image vectors, when generated, go to
    ``article_images.<fmt>`` (key "images"): Parquet with a fixed-length list column ``image``, CSV
    with columns ``v0..vN-1``.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = {
        "articles": ("articles", data.articles),
        "customers": ("customers", data.customers),
        "transactions": ("transactions_train", data.transactions),
    }
    paths: dict[str, Path] = {}
    for key, (stem, frame) in frames.items():
        path = out / f"{stem}.{fmt}"
        if fmt == "csv":
            frame.write_csv(path)
        else:
            frame.write_parquet(path)
        paths[key] = path
    if data.article_images is not None:
        path = out / f"article_images.{fmt}"
        if fmt == "csv":
            dim = data.article_images.schema["image"].size
            data.article_images.select(
                "article_id", *(pl.col("image").arr.get(i).alias(f"v{i}") for i in range(dim))
            ).write_csv(path)
        else:
            data.article_images.write_parquet(path)
        paths["images"] = path
    return paths


#: Independent random streams of the effects added after the first release (issue 18): each is seeded
#: from the config's seed and its own number, so an effect never shifts the draws of the others.
_STREAMS = {"catalogue": 1, "population": 2, "shifts": 3, "images": 4}


def _stream(config: SyntheticConfig, name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([config.seed, _STREAMS[name]]))


# --------------------------------------------------------------------------------------------
# Calendar
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    """Days and weeks of the data window; week ``w`` covers days ``7w .. 7w+6`` (Wed..Tue)."""

    day_strings: list[str]
    week_doy: np.ndarray  # day of year of each week's middle day (Saturday)

    @staticmethod
    def build(config: SyntheticConfig) -> _Calendar:
        first = config.first_day
        days = [first + dt.timedelta(days=i) for i in range(7 * config.weeks)]
        mid_days = days[3::7]
        return _Calendar(
            day_strings=[d.isoformat() for d in days],
            week_doy=np.array([d.timetuple().tm_yday for d in mid_days], dtype=np.float64),
        )


def _season_wave(doy: np.ndarray, peak_doy: float, strength: float) -> np.ndarray:
    """exp(strength * cos(distance to peak)), normalised to mean 1 over a year."""
    year = np.arange(1, 366, dtype=np.float64)
    norm = np.exp(strength * np.cos(2 * np.pi * (year - peak_doy) / 365.0)).mean()
    return np.exp(strength * np.cos(2 * np.pi * (doy - peak_doy) / 365.0)) / norm


def _season_factors(config: SyntheticConfig, calendar: _Calendar, strength: float) -> np.ndarray:
    """(3, weeks) factors for the all-year, summer and winter profiles."""
    doy = calendar.week_doy
    return np.stack(
        [
            np.ones_like(doy),
            _season_wave(doy, config.summer_peak_doy, strength),
            _season_wave(doy, config.winter_peak_doy, strength),
        ]
    )


# --------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------


@dataclass
class _Catalogue:
    """Per-article arrays in internal order (sorted by section, then launch week)."""

    product_code: np.ndarray
    variant_no: np.ndarray
    product: np.ndarray  # product index of each article
    product_start: np.ndarray  # first article of each product
    product_size: np.ndarray  # number of variants of each product
    variant_rank: np.ndarray  # 0-based rank of the article within its product
    department: np.ndarray  # index into DEPARTMENTS
    section: np.ndarray  # index into SECTIONS
    section_start: np.ndarray  # first article of each section (len = sections + 1)
    product_type: np.ndarray  # index into PRODUCT_TYPES
    colour: np.ndarray  # index into COLOURS
    appearance_no: np.ndarray
    appearance_name_idx: np.ndarray  # index into GRAPHICAL_APPEARANCES, -1 = Denim
    name_stem: np.ndarray
    name_suffix: np.ndarray
    desc_fit: np.ndarray
    desc_material: np.ndarray
    desc_feature: np.ndarray
    desc_null: np.ndarray
    launch: np.ndarray  # first week the article sells (may be negative)
    popularity: np.ndarray
    decay: np.ndarray
    season: np.ndarray  # 0 all-year, 1 summer, 2 winter
    base_units: np.ndarray  # base price in 1/PRICE_SCALE units
    repeat_propensity: np.ndarray
    partners: np.ndarray  # (articles, partners_per_article)
    promo_depth: np.ndarray  # (promo blocks, articles), 0 = no promotion
    style: np.ndarray  # hidden visual style of each article (its product's)
    desc_style: np.ndarray  # whether the description names the style
    rebuy_cycle: np.ndarray  # usual weeks between re-buys (0 = no cycle)


def _normalised(weights: tuple[float, ...] | np.ndarray) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return p / p.sum()


def _build_catalogue(config: SyntheticConfig, rng: np.random.Generator) -> _Catalogue:
    """Draw products, their colour variants, launch weeks, prices, partners and promotions."""
    n_articles = config.n_articles
    n_products = min(n_articles, max(1, round(n_articles / config.variants_per_product)))

    # product level -------------------------------------------------------------------------
    dept_weights = _normalised([d[5] for d in DEPARTMENTS])
    department = rng.choice(len(DEPARTMENTS), size=n_products, p=dept_weights)
    section_of_dept = np.array([_SECTION_POS[d[2]] for d in DEPARTMENTS])
    section = section_of_dept[department]
    product_type = _draw_product_types(rng, department)
    season = _draw_season_profiles(rng, product_type)
    launch = _draw_launch_weeks(config, rng, n_products, section)
    # internal order: by section, then launch week (partners are launch-time neighbours)
    order = np.lexsort((launch, section))
    department, section, product_type, season, launch = (
        a[order] for a in (department, section, product_type, season, launch)
    )
    popularity = (rng.permutation(n_products) + 1.0) ** -config.popularity_zipf
    type_price = np.array([t[3] for t in PRODUCT_TYPES])[product_type]
    price = np.clip(
        config.price_median * type_price * rng.lognormal(0.0, config.price_sigma, n_products),
        config.price_min,
        config.price_max,
    )
    step = config.price_grid_step
    base_units = np.maximum(np.round(price * PRICE_SCALE / step) * step - 1, step - 1)
    repeat = np.array([t[5] for t in PRODUCT_TYPES])[product_type]
    is_basic = (repeat >= BASICS_MIN_REPEAT_PROPENSITY) & (season == _ALL_YEAR)
    decay = (
        config.lifecycle_decay_weeks
        * rng.lognormal(0.0, config.lifecycle_decay_sigma, n_products)
        * np.where(is_basic, config.basics_decay_multiplier, 1.0)
    )
    product_code = _draw_product_codes(rng, launch)
    name_stem = rng.integers(0, len(NAME_STEMS), n_products)
    desc_fit = rng.integers(0, len(DESC_FITS), n_products)
    desc_material = rng.integers(0, len(DESC_MATERIALS), n_products)
    desc_feature = rng.integers(0, len(DESC_FEATURES), n_products)
    desc_null = rng.random(n_products) < config.detail_desc_null_share

    # article level (colour variants) -------------------------------------------------------
    sizes = 1 + rng.multinomial(n_articles - n_products, np.full(n_products, 1.0 / n_products))
    product = np.repeat(np.arange(n_products), sizes)
    product_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    variant_rank = np.arange(n_articles) - product_start[product]
    variant_no = _draw_variant_numbers(rng, variant_rank, product_start, product, int(sizes.max()))
    late = (variant_rank > 0) & (rng.random(n_articles) < config.late_variant_share)
    article_launch = launch[product] + np.where(late, rng.integers(1, config.late_variant_max_weeks + 1, n_articles), 0)
    colour = rng.choice(len(COLOURS), size=n_articles, p=_normalised([c[4] for c in COLOURS]))
    appearance_name_idx, appearance_no = _draw_appearances(config, rng, department[product])
    article_popularity = popularity[product] * rng.lognormal(0.0, config.variant_popularity_sigma, n_articles)
    name_suffix = rng.random(n_articles) < config.name_suffix_share
    article_section = section[product]
    section_start = np.searchsorted(article_section, np.arange(len(SECTIONS) + 1))
    partners = _draw_partners(config, rng, article_section, section_start)
    promo_depth = _draw_promotions(config, rng, n_articles)

    # the profiles' effects, from their own stream --------------------------------------------
    extra = _stream(config, "catalogue")
    style = extra.integers(0, config.styles, n_products)
    desc_style = extra.random(n_products) < config.style_desc_share
    cycle = config.rebuy_cycle_weeks * extra.lognormal(0.0, config.rebuy_cycle_sigma, n_products)
    if config.variant_attribute_share < 1.0:
        first = product_start[product]
        copies = (variant_rank > 0) & (extra.random(n_articles) >= config.variant_attribute_share)
        colour = np.where(copies, colour[first], colour)
        appearance_name_idx = np.where(copies, appearance_name_idx[first], appearance_name_idx)
        appearance_no = np.where(copies, appearance_no[first], appearance_no)

    return _Catalogue(
        product_code=product_code[product],
        variant_no=variant_no,
        product=product,
        product_start=product_start,
        product_size=sizes,
        variant_rank=variant_rank,
        department=department[product],
        section=article_section,
        section_start=section_start,
        product_type=product_type[product],
        colour=colour,
        appearance_no=appearance_no,
        appearance_name_idx=appearance_name_idx,
        name_stem=name_stem[product],
        name_suffix=name_suffix,
        desc_fit=desc_fit[product],
        desc_material=desc_material[product],
        desc_feature=desc_feature[product],
        desc_null=desc_null[product],
        launch=article_launch,
        popularity=article_popularity,
        decay=decay[product],
        season=season[product],
        base_units=base_units[product],
        repeat_propensity=np.maximum(repeat, config.repeat_propensity_min)[product],
        partners=partners,
        promo_depth=promo_depth,
        style=style[product],
        desc_style=desc_style[product],
        rebuy_cycle=cycle[product],
    )


_SECTION_POS: dict[int, int] = {s[0]: i for i, s in enumerate(SECTIONS)}
_INDEX_POS: dict[str, int] = {ix[0]: i for i, ix in enumerate(INDEXES)}
_TYPE_POS: dict[int, int] = {t[0]: i for i, t in enumerate(PRODUCT_TYPES)}


def _draw_product_types(rng: np.random.Generator, department: np.ndarray) -> np.ndarray:
    """Uniform choice among each department's product types (vectorised via a padded table)."""
    width = max(len(d[4]) for d in DEPARTMENTS)
    table = np.zeros((len(DEPARTMENTS), width), dtype=np.int64)
    counts = np.array([len(d[4]) for d in DEPARTMENTS])
    for i, d in enumerate(DEPARTMENTS):  # loop over a small vocabulary table
        table[i, : len(d[4])] = [_TYPE_POS[t] for t in d[4]]
    pick = (rng.random(len(department)) * counts[department]).astype(np.int64)
    return table[department, pick]


def _draw_season_profiles(rng: np.random.Generator, product_type: np.ndarray) -> np.ndarray:
    """All-year / summer / winter profile from the product type's season tendency."""
    cum = np.cumsum(np.array([SEASON_TENDENCY[t[4]] for t in PRODUCT_TYPES]), axis=1)[product_type]
    u = rng.random(len(product_type))
    return np.minimum((cum <= u[:, None]).sum(axis=1), 2)


def _draw_launch_weeks(
    config: SyntheticConfig, rng: np.random.Generator, n_products: int, section: np.ndarray
) -> np.ndarray:
    """Prelaunched products get a week in [-prelaunch_max_weeks, 0]; the others are spread
    round-robin over all weeks so that new products appear every week.  The first product of each
    section is prelaunched so every populated section always has something on sale."""
    prelaunched = rng.random(n_products) < config.prelaunch_share
    _, first_in_section = np.unique(section, return_index=True)
    prelaunched[first_in_section] = True
    n_new = int((~prelaunched).sum())
    launch = -rng.integers(0, config.prelaunch_max_weeks + 1, n_products)
    launch[~prelaunched] = rng.permutation(np.arange(n_new) % config.weeks)
    return launch


def _draw_product_codes(rng: np.random.Generator, launch: np.ndarray) -> np.ndarray:
    """Unique 6-7 digit product codes, increasing with launch week (as in H&M)."""
    n = len(launch)
    low, high = (108_000, 960_000) if n <= 400_000 else (100_000, 10_000_000)
    codes = np.sort(rng.choice(high - low, size=n, replace=False)) + low
    order = np.lexsort((rng.random(n), launch))
    result = np.empty(n, dtype=np.int64)
    result[order] = codes
    return result


def _draw_variant_numbers(
    rng: np.random.Generator,
    variant_rank: np.ndarray,
    product_start: np.ndarray,
    product: np.ndarray,
    max_size: int,
) -> np.ndarray:
    """3-digit variant numbers (001, 002, 015, ...), strictly increasing within a product."""
    max_gap = max(1, min(12, 990 // max_size))
    steps = np.where(
        variant_rank == 0,
        rng.integers(1, 4, len(product)),
        rng.integers(1, max_gap + 1, len(product)),
    )
    cum = np.cumsum(steps)
    offset = np.concatenate([[0], cum])[product_start]
    return cum - offset[product]


def _draw_appearances(
    config: SyntheticConfig, rng: np.random.Generator, department: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Graphical appearance per article; denim departments are mostly "Denim"."""
    n = len(department)
    idx = rng.choice(len(GRAPHICAL_APPEARANCES), size=n, p=_normalised([g[2] for g in GRAPHICAL_APPEARANCES]))
    garment = np.array([d[3] for d in DEPARTMENTS])[department]
    denim = (garment == DENIM_GARMENT_GROUP) & (rng.random(n) < config.denim_appearance_share)
    idx = np.where(denim, -1, idx)
    regular_numbers = np.array([g[0] for g in GRAPHICAL_APPEARANCES])[idx]
    numbers = np.where(denim, DENIM_APPEARANCE[0], regular_numbers)
    return idx, numbers


def _draw_partners(
    config: SyntheticConfig,
    rng: np.random.Generator,
    article_section: np.ndarray,
    section_start: np.ndarray,
) -> np.ndarray:
    """Fixed co-purchase partners: distinct neighbours within +-partner_window positions in the
    section's launch order (same section, launched about the same time), wrapping inside the
    section."""
    n = len(article_section)
    window = config.partner_window
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
    keys = rng.random((n, offsets.size))
    chosen = offsets[np.argsort(keys, axis=1)[:, : config.partners_per_article]]
    start = section_start[article_section]
    size = section_start[article_section + 1] - start
    local = np.arange(n) - start
    return start[:, None] + (local[:, None] + chosen) % size[:, None]


def _draw_promotions(config: SyntheticConfig, rng: np.random.Generator, n_articles: int) -> np.ndarray:
    """(blocks, articles) discount depth; promo_share of articles are on promotion per block."""
    n_blocks = -(-config.weeks // config.promo_block_weeks)
    on = rng.random((n_blocks, n_articles)) < config.promo_share
    depth = rng.uniform(config.promo_depth_min, config.promo_depth_max, (n_blocks, n_articles))
    return np.where(on, depth, 0.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Customers
# --------------------------------------------------------------------------------------------


@dataclass
class _Population:
    """Per-customer latent arrays (index = position in the sorted customer_id list)."""

    age: np.ndarray  # latent age (always known; ~1% is hidden in the output)
    age_band: np.ndarray
    segment: np.ndarray
    season: np.ndarray  # 1 summer / 2 winter (used by the seasonal segment)
    index_cum: np.ndarray  # (customers, indexes) cumulative index preference, float32
    online: np.ndarray  # probability an occasion is online
    activity: np.ndarray  # relative occasion rate (0 for never-buyers)
    style_taste: np.ndarray | None  # (customers, styles) taste for the hidden styles, None = none


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _bump(x: np.ndarray, centre: float | np.ndarray, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - centre) / width) ** 2)


def _build_population(config: SyntheticConfig, rng: np.random.Generator) -> _Population:
    """Ages, segments, taste, channel preference and activity of every customer."""
    n = config.customers
    young = rng.random(n) < config.young_age_share
    age = np.where(
        young,
        rng.normal(config.young_age_mean, config.young_age_sd, n),
        rng.normal(config.old_age_mean, config.old_age_sd, n),
    )
    age = np.clip(np.round(age), config.age_min, config.age_max)
    segment = rng.choice(len(SEGMENTS), size=n, p=_normalised(config.segment_shares))
    male = rng.random(n) < config.male_share
    parent = rng.random(n) < config.parent_share * _bump(age, PARENT_PROB_AGE, PARENT_PROB_WIDTH)
    pref = _index_preferences(age, male, parent) * rng.lognormal(0.0, config.taste_sigma, (n, len(INDEXES)))
    pref /= pref.sum(axis=1, keepdims=True)
    pref = _apply_index_loyalty(config, rng, pref, segment == _LOYAL)
    activity = rng.lognormal(0.0, config.activity_sigma, n)
    activity[rng.random(n) < config.never_buy_share] = 0.0
    return _Population(
        age=age,
        age_band=np.digitize(age, AGE_BAND_EDGES),
        segment=segment,
        season=rng.integers(_SUMMER, _WINTER + 1, n),
        index_cum=np.cumsum(pref, axis=1).astype(np.float32),
        online=rng.beta(*config.online_beta, n),
        activity=activity,
        style_taste=(
            _stream(config, "population")
            .lognormal(0.0, config.style_taste_sigma, (n, config.styles))
            .astype(np.float32)
            if config.style_taste_sigma > 0
            else None
        ),
    )


def _index_preferences(age: np.ndarray, male: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """(customers, indexes) unnormalised taste from ``INDEX_TASTE``."""
    taste = np.array(INDEX_TASTE)
    youth = _logistic((YOUTH_AGE - age) / YOUTH_AGE_SCALE)[:, None]
    maturity = _logistic((age - MATURITY_AGE) / MATURITY_AGE_SCALE)[:, None]
    female_pref = taste[:, 0] + taste[:, 1] * youth + taste[:, 2] * maturity
    male_pref = taste[:, 3] + taste[:, 4] * youth + taste[:, 5] * maturity
    pref = np.where(male[:, None], male_pref, female_pref)
    parent_boost = taste[:, 6] * _bump(age[:, None], taste[:, 7], PARENT_AGE_WIDTH)
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


def _customers_frame(
    config: SyntheticConfig, rng: np.random.Generator, population: _Population
) -> tuple[pl.DataFrame, pl.Series]:
    """The customers table (sorted by customer_id, as in H&M) and the id series."""
    n = config.customers
    ids = _hex_ids(rng, n).sort()
    fn = rng.random(n) < config.fn_share
    active = rng.random(n) < np.where(fn, config.active_given_fn, config.active_given_no_fn)
    club = rng.choice(len(CLUB_STATUSES), size=n, p=_normalised(config.club_status_probs))
    news = np.where(
        fn,
        rng.choice(len(NEWS_FREQUENCIES), size=n, p=_normalised(config.news_probs_fn)),
        rng.choice(len(NEWS_FREQUENCIES), size=n, p=_normalised(config.news_probs_no_fn)),
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


# --------------------------------------------------------------------------------------------
# Articles frame
# --------------------------------------------------------------------------------------------


def _column(values: list, idx: np.ndarray) -> pl.Series:
    """``values[idx]`` as a polars Series: a vocabulary lookup without a loop over rows."""
    return pl.Series(values).gather(idx)


def _coded_names(names: dict[int, str], codes: np.ndarray) -> pl.Series:
    """Names of integer ``codes`` from a code -> name vocabulary."""
    keys = sorted(names)
    return _column([names[k] for k in keys], np.searchsorted(keys, codes))


def _text_columns(cat: _Catalogue) -> tuple[pl.Series, pl.Series]:
    """prod_name ("Luna vest top", sometimes "(1)" suffixed) and detail_desc (a short sentence,
    null for a few products)."""
    type_lower = _column([t[1].lower() for t in PRODUCT_TYPES], cat.product_type)
    stem = _column(list(NAME_STEMS), cat.name_stem)
    names = pl.DataFrame({"stem": stem, "type": type_lower, "suffix": cat.name_suffix})
    prod_name = names.select(
        pl.concat_str(
            [
                pl.col("stem"),
                pl.lit(" "),
                pl.col("type"),
                pl.when(pl.col("suffix")).then(pl.lit(" (1)")).otherwise(pl.lit("")),
            ]
        )
    ).to_series()
    parts = pl.DataFrame(
        {
            "fit": _column(list(DESC_FITS), cat.desc_fit),
            "type": type_lower,
            "material": _column(list(DESC_MATERIALS), cat.desc_material),
            "feature": _column(list(DESC_FEATURES), cat.desc_feature),
            "null": cat.desc_null,
            "style": _column(list(DESC_STYLES), cat.style % len(DESC_STYLES)),
            "named": cat.desc_style,
        }
    )
    sentence = pl.format("{} {} in {} with {}.", "fit", "type", "material", "feature")
    sentence = (
        pl.when(pl.col("named"))
        .then(pl.concat_str([sentence, pl.lit(" "), pl.col("style"), pl.lit(".")]))
        .otherwise(sentence)
    )
    desc = parts.select(pl.when(pl.col("null")).then(None).otherwise(sentence)).to_series()
    return prod_name, desc


def _articles_frame(cat: _Catalogue) -> tuple[pl.DataFrame, pl.Series]:
    """The articles table (sorted by article_id, as in H&M) and the article_id series in internal
    order (for gathering transaction ids)."""
    codes = cat.product_code * 1000 + cat.variant_no
    article_ids = pl.Series(codes).cast(pl.String).str.zfill(10)
    dept, sec, ptype, colour = cat.department, cat.section, cat.product_type, cat.colour
    index = np.array([_INDEX_POS[s[2]] for s in SECTIONS])[sec]
    colour_value = np.array([c[2] for c in COLOURS])[colour]
    colour_master = np.array([c[3] for c in COLOURS])[colour]
    garment = np.array([d[3] for d in DEPARTMENTS])[dept]
    appearance = np.where(cat.appearance_name_idx < 0, len(GRAPHICAL_APPEARANCES), cat.appearance_name_idx)
    prod_name, desc = _text_columns(cat)
    frame = pl.DataFrame(
        {
            "article_id": article_ids,
            "product_code": cat.product_code.astype(np.int64),
            "prod_name": prod_name,
            "product_type_no": _column([t[0] for t in PRODUCT_TYPES], ptype),
            "product_type_name": _column([t[1] for t in PRODUCT_TYPES], ptype),
            "product_group_name": _column([t[2] for t in PRODUCT_TYPES], ptype),
            "graphical_appearance_no": cat.appearance_no.astype(np.int64),
            "graphical_appearance_name": _column(
                [g[1] for g in GRAPHICAL_APPEARANCES] + [DENIM_APPEARANCE[1]], appearance
            ),
            "colour_group_code": _column([c[0] for c in COLOURS], colour),
            "colour_group_name": _column([c[1] for c in COLOURS], colour),
            "perceived_colour_value_id": colour_value.astype(np.int64),
            "perceived_colour_value_name": _coded_names(PERCEIVED_COLOUR_VALUES, colour_value),
            "perceived_colour_master_id": colour_master.astype(np.int64),
            "perceived_colour_master_name": _coded_names(PERCEIVED_COLOUR_MASTERS, colour_master),
            "department_no": _column([d[0] for d in DEPARTMENTS], dept),
            "department_name": _column([d[1] for d in DEPARTMENTS], dept),
            "index_code": _column([ix[0] for ix in INDEXES], index),
            "index_name": _column([ix[1] for ix in INDEXES], index),
            "index_group_no": _column([ix[2] for ix in INDEXES], index),
            "index_group_name": _column([ix[3] for ix in INDEXES], index),
            "section_no": _column([s[0] for s in SECTIONS], sec),
            "section_name": _column([s[1] for s in SECTIONS], sec),
            "garment_group_no": garment.astype(np.int64),
            "garment_group_name": _coded_names(GARMENT_GROUPS, garment),
            "detail_desc": desc,
        }
    )
    return frame.select(ARTICLE_COLUMNS).sort("article_id"), article_ids


# --------------------------------------------------------------------------------------------
# Transactions
# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------

_TX_FIELDS: tuple[str, ...] = ("day", "customer", "article", "price", "channel")


@dataclass
class _Transactions:
    """Transaction rows as integer codes (strings are attached at the end by gathering)."""

    day: np.ndarray  # day index in the window (0 = first Wednesday)
    customer: np.ndarray  # customer position
    article: np.ndarray  # internal article position
    price: np.ndarray
    channel: np.ndarray

    def take(self, order: np.ndarray) -> _Transactions:
        return _Transactions(*(getattr(self, f)[order] for f in _TX_FIELDS))

    @staticmethod
    def concat(chunks: list[_Transactions]) -> _Transactions:
        if not chunks:
            dtypes = (np.int32, np.int32, np.int32, np.float64, np.int8)
            return _Transactions(*(np.zeros(0, dtype=d) for d in dtypes))
        return _Transactions(*(np.concatenate([getattr(c, f) for c in chunks]) for f in _TX_FIELDS))


@dataclass
class _History:
    """Ring buffer of each customer's last ``size`` purchased articles (for re-buys)."""

    articles: np.ndarray  # (customers, size)
    weeks: np.ndarray  # (customers, size) week of each remembered purchase
    count: np.ndarray  # purchases recorded so far

    @staticmethod
    def empty(n_customers: int, size: int) -> _History:
        return _History(
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
            article[lo : lo + _DUE_CHUNK] = arts[np.arange(len(cust)), _categorical(weight, rng)]
        return article, self.count[customer] > 0


#: Customers per chunk in ``_History.sample_due``.
_DUE_CHUNK = 20_000


@dataclass
class _WeekWeights:
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
class _Context:
    """Everything the weekly simulation needs that does not change from week to week."""

    config: SyntheticConfig
    catalogue: _Catalogue
    population: _Population
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


def _activity_groups(pop: _Population) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Customers grouped by how their activity varies over the year: all-year (every segment
    but seasonal), summer and winter shoppers (seasonal segment), with cumulative activity."""
    group = np.where(pop.segment == _SEASONAL, pop.season, _ALL_YEAR)
    members = tuple(np.flatnonzero(group == g) for g in (_ALL_YEAR, _SUMMER, _WINTER))
    return members, tuple(np.cumsum(pop.activity[m]) for m in members)


def _context(config: SyntheticConfig, calendar: _Calendar, cat: _Catalogue, pop: _Population) -> _Context:
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
        for w in range(_SHIFT_MIN_AGE, config.weeks)
        if every and config.demand_shift_articles and (config.weeks - 2 - w) % every == 0
    )
    return _Context(
        config=config,
        catalogue=cat,
        population=pop,
        article_season=_season_factors(config, calendar, config.season_strength),
        customer_season=_season_factors(config, calendar, config.seasonal_activity_strength),
        demand=demand / demand.mean(),
        age_affinity=_bump(ages[:, None], section_age[None, :], config.section_age_width),
        section_index=np.array([_INDEX_POS[s[2]] for s in SECTIONS]),
        activity_members=members,
        activity_cum=cum,
        style_order=style_order,
        style_block_start=np.searchsorted(block[style_order], np.arange(len(SECTIONS) * config.styles + 1)),
        shift_starts=shift_starts,
    )


#: A demand shift lifts articles on sale for at least this many weeks (they have a usual rate), and
#: never starts before this week.
_SHIFT_MIN_AGE = 4


def _shift_articles(
    config: SyntheticConfig, rng: np.random.Generator, recent_units: np.ndarray, occasions: float
) -> np.ndarray:
    """The articles of a demand shift: sold in each of the last ``_SHIFT_MIN_AGE`` weeks
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


def _simulate(
    config: SyntheticConfig,
    rng: np.random.Generator,
    calendar: _Calendar,
    cat: _Catalogue,
    pop: _Population,
) -> _Transactions:
    """Simulate the weeks in order (re-buys and bestseller followers depend on the past).

    The number of occasions per week targets ``purchase_rate`` rows per customer-week: it starts
    from the planned rows per occasion and then uses the realised value so far (basket extras that
    are not on sale yet are dropped, which would otherwise bias the total down)."""
    ctx = _context(config, calendar, cat, pop)
    history = _History.empty(config.customers, config.history_size)
    rows_per_occasion = _planned_rows_per_occasion(config)
    rows_done = occasions_done = 0
    chunks: list[_Transactions] = []
    previous: tuple[np.ndarray, np.ndarray] | None = None  # last week's (article, age band)
    shift_rng = _stream(config, "shifts")
    shifts: list[tuple[int, int]] = []  # (week, article) of every lifted article-week
    shifted, shift_until = np.zeros(0, dtype=np.int64), -1
    recent_units = np.zeros((_SHIFT_MIN_AGE, cat.product.size), dtype=np.int64)  # units of the last weeks
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
    return _Transactions.concat(chunks), shifts


def _planned_rows_per_occasion(config: SyntheticConfig) -> float:
    """Expected rows per occasion if no basket extra were dropped."""
    basket = _normalised(config.basket_size_probs)
    units = _normalised(config.unit_probs)
    return float(np.dot(np.arange(1, basket.size + 1), basket) * np.dot(np.arange(1, units.size + 1), units))


def _occasion_customers(ctx: _Context, rng: np.random.Generator, week: int, n_occasions: int) -> np.ndarray:
    """Customers of ``n_occasions`` occasions, drawn proportional to their activity this week
    (equivalent to independent Poisson counts per customer).  Only the seasonal segment's
    activity changes with the week, so the occasions are first split between the activity groups
    (all-year, summer, winter shoppers), then drawn within a group from its fixed cumulative
    activity."""
    group_factor = ctx.customer_season[:, week].copy()
    group_factor[_ALL_YEAR] = 1.0
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
    ctx: _Context,
    rng: np.random.Generator,
    week: int,
    customer: np.ndarray,
    history: _History,
    previous: tuple[np.ndarray, np.ndarray] | None,
    campaign: tuple[np.ndarray | None, np.random.Generator],
) -> _Transactions:
    """Rows of one week: first items, basket extras, prices, units, days and channels."""
    config, cat, pop = ctx.config, ctx.catalogue, ctx.population
    n = customer.size
    weights = _week_weights(ctx, ctx.article_season[:, week], week)
    first = _first_items(ctx, rng, weights, history, previous, customer, week, campaign)
    occasion, article = _basket_items(config, rng, cat, weights, first)
    day = week * 7 + rng.choice(7, size=n, p=_normalised(config.weekday_weights))
    channel = np.where(rng.random(n) < pop.online[customer], 2, 1).astype(np.int8)
    price = _item_prices(config, rng, cat, weights, article)
    item_customer = customer[occasion]
    history.record(item_customer, article, week)
    units = 1 + rng.choice(len(config.unit_probs), size=article.size, p=_normalised(config.unit_probs))
    rows = np.repeat(np.arange(article.size), units)  # duplicate rows for extra units
    return _Transactions(
        day=day[occasion][rows].astype(np.int32),
        customer=item_customer[rows].astype(np.int32),
        article=article[rows].astype(np.int32),
        price=price[rows],
        channel=channel[occasion][rows],
    )


def _week_weights(ctx: _Context, season_factor: np.ndarray, week: int) -> _WeekWeights:
    """popularity x lifecycle x season x promotion lift, zero before launch."""
    config, cat = ctx.config, ctx.catalogue
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
    return _WeekWeights(
        live=live,
        depth=depth,
        cum=(cum_regular, cum_hunter),
        section_total=totals,
        style_cum=style_cum,
        style_total=style_total,
    )


def _categorical(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of a (rows, k) weight matrix (rows must have a positive sum)."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum <= u[:, None]).sum(axis=1), weights.shape[1] - 1)


def _first_items(
    ctx: _Context,
    rng: np.random.Generator,
    weights: _WeekWeights,
    history: _History,
    previous: tuple[np.ndarray, np.ndarray] | None,
    customer: np.ndarray,
    week: int,
    campaign: tuple[np.ndarray | None, np.random.Generator],
) -> np.ndarray:
    """First article of each occasion: in a demand shift, one of its articles (its share of the
    occasions); otherwise a re-buy, a copy of last week's age-band bestsellers (followers) or a
    taste-driven draw index -> section -> (style ->) article."""
    config, cat, pop = ctx.config, ctx.catalogue, ctx.population
    n = customer.size
    result = np.full(n, -1, dtype=np.int64)

    articles, shift_rng = campaign
    if articles is not None:  # a demand shift: its share of the occasions start with its articles
        take = np.flatnonzero(shift_rng.random(n) < config.demand_shift_share)
        result[take] = articles[shift_rng.integers(0, articles.size, take.size)]

    if config.rebuy_cycle_weeks > 0:
        remembered, has_history = history.sample_due(customer, rng, week, cat.rebuy_cycle)
    else:
        remembered, has_history = history.sample(customer, rng)
    repeat = (
        (result < 0)
        & has_history
        & (rng.random(n) < config.repeat_share)
        & (rng.random(n) < cat.repeat_propensity[remembered])
    )
    result[repeat] = remembered[repeat]

    follower = (pop.segment[customer] == _FOLLOWER) & (result < 0) & (rng.random(n) < config.follower_copy_share)
    if previous is not None and follower.any():
        result[follower] = _copy_bestsellers(rng, previous, pop.age_band[customer[follower]], config.follower_top_n)

    todo = np.flatnonzero(result < 0)
    if todo.size:
        result[todo] = _taste_draw(ctx, rng, weights, customer[todo])
    return result


def _copy_bestsellers(
    rng: np.random.Generator,
    previous: tuple[np.ndarray, np.ndarray],
    band: np.ndarray,
    top_n: int,
) -> np.ndarray:
    """An article among last week's ``top_n`` bestsellers of the customer's age band, drawn
    proportional to last week's units (-1 where the band bought nothing)."""
    prev_article, prev_band = previous
    n_bands = len(AGE_BAND_EDGES) + 1
    if prev_article.size == 0:
        return np.full(band.size, -1, dtype=np.int64)
    n_articles = int(prev_article.max()) + 1
    band_article = prev_band.astype(np.int64) * n_articles + prev_article
    keys, counts = np.unique(band_article, return_counts=True)
    key_band = keys // n_articles
    order = np.lexsort((keys, -counts, key_band))  # per band, bestsellers first
    keys, counts, key_band = keys[order], counts[order], key_band[order]
    rank = np.arange(keys.size) - np.searchsorted(key_band, key_band, side="left")
    top = rank < top_n
    keys, counts, key_band = keys[top], counts[top], key_band[top]
    cum = np.cumsum(counts)
    band_end = np.searchsorted(key_band, np.arange(n_bands), side="right")
    band_start = np.searchsorted(key_band, np.arange(n_bands), side="left")
    before = np.concatenate([[0], cum])[band_start]
    total = np.concatenate([[0], cum])[band_end] - before
    target = before[band] + rng.random(band.size) * total[band]
    pick = np.minimum(np.searchsorted(cum, target, side="right"), keys.size - 1)
    return np.where(total[band] > 0, keys[pick] % n_articles, -1)


def _taste_draw(ctx: _Context, rng: np.random.Generator, weights: _WeekWeights, customer: np.ndarray) -> np.ndarray:
    """index by personal taste -> section by age affinity x section sales -> article by weight."""
    config, cat, pop = ctx.config, ctx.catalogue, ctx.population
    n = customer.size
    cum = pop.index_cum[customer]
    u = rng.random(n)[:, None] * cum[:, -1:]
    index = np.minimum((cum <= u).sum(axis=1), cum.shape[1] - 1)
    kind = (pop.segment[customer] == _HUNTER).astype(np.int64)  # 0 regular, 1 hunter
    base = weights.section_total[kind] * ctx.age_affinity[pop.age.astype(np.int64)[customer]]
    masked = base * (ctx.section_index[None, :] == index[:, None])
    # discount hunters mostly follow the promotions, wherever they are
    bargain = (kind == 1) & (rng.random(n) >= config.hunter_taste_share)
    masked[bargain] = base[bargain]
    empty = masked.sum(axis=1) <= 0
    masked[empty] = base[empty]  # chosen index has nothing on sale: any section will do
    section = _categorical(masked, rng)
    if pop.style_taste is not None:
        return _style_draw(ctx, rng, weights, customer, kind, section)
    article = np.empty(n, dtype=np.int64)
    for k in (0, 1):  # regular chooser, hunter chooser
        rows = np.flatnonzero(kind == k)
        if rows.size == 0:
            continue
        c = weights.cum[k]
        lo, hi = cat.section_start[section[rows]], cat.section_start[section[rows] + 1]
        target = c[lo] + rng.random(rows.size) * (c[hi] - c[lo])
        idx = np.searchsorted(c, target, side="right") - 1
        article[rows] = np.clip(idx, lo, hi - 1)
    return article


def _style_draw(
    ctx: _Context,
    rng: np.random.Generator,
    weights: _WeekWeights,
    customer: np.ndarray,
    kind: np.ndarray,
    section: np.ndarray,
) -> np.ndarray:
    """Within the chosen section: a style by the section's sales of it x the customer's visual
    taste, then an article of that (section, style) block by weight."""
    styles = ctx.config.styles
    mass = weights.style_total[kind, section] * ctx.population.style_taste[customer]
    empty = mass.sum(axis=1) <= 0
    mass[empty] = 1.0  # a section with nothing on sale (cannot be chosen, but stay defined)
    block = section * styles + _categorical(mass, rng)
    lo, hi = ctx.style_block_start[block], ctx.style_block_start[block + 1]
    article = np.empty(customer.size, dtype=np.int64)
    for k in (0, 1):
        rows = np.flatnonzero(kind == k)
        c = weights.style_cum[k]
        target = c[lo[rows]] + rng.random(rows.size) * (c[hi[rows]] - c[lo[rows]])
        pos = np.clip(np.searchsorted(c, target, side="right") - 1, lo[rows], hi[rows] - 1)
        article[rows] = ctx.style_order[pos]
    return article


def _image_vectors(config: SyntheticConfig, cat: _Catalogue) -> np.ndarray:
    """(articles, image_dim) unit vectors such as a vision model gives: the hidden style dominates, then
    the product type and the colour, then what makes the product and the article photo unique."""
    rng = _stream(config, "images")
    d = config.image_dim
    style, ptype, colour = (rng.normal(size=(k, d)) for k in (config.styles, len(PRODUCT_TYPES), len(COLOURS)))
    product = rng.normal(size=(int(cat.product.max()) + 1, d))
    v = (
        1.0 * style[cat.style]
        + 0.7 * ptype[cat.product_type]
        + 0.5 * colour[cat.colour]
        + 0.4 * product[cat.product]
        + 0.2 * rng.normal(size=(cat.product.size, d))
    )
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _basket_items(
    config: SyntheticConfig,
    rng: np.random.Generator,
    cat: _Catalogue,
    weights: _WeekWeights,
    first: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Expand occasions to their distinct items: (occasion index, article) per item.

    Extra items are another colour of the first item's product or one of its fixed partners
    (falling back to another colour when the partner is not on sale yet); extras that are not
    on sale are dropped."""
    n = first.size
    basket_p = _normalised(config.basket_size_probs)
    size = 1 + rng.choice(basket_p.size, size=n, p=basket_p)
    occ_parts, art_parts = [np.arange(n)], [first]
    product = cat.product[first]
    n_variants = cat.product_size[product]
    partner_start = rng.integers(0, config.partners_per_article, n)
    for slot in range(1, basket_p.size):  # loop over basket positions
        rows = np.flatnonzero(size > slot)
        if rows.size == 0:
            break
        f, nv = first[rows], n_variants[rows]
        shift = 1 + (rng.random(rows.size) * np.maximum(nv - 1, 1)).astype(np.int64)
        other_colour = cat.product_start[product[rows]] + (cat.variant_rank[f] + shift) % nv
        slot_col = (partner_start[rows] + slot - 1) % config.partners_per_article
        partner = cat.partners[f, slot_col]
        has_colour = (nv > 1) & weights.live[other_colour]
        use_colour = has_colour & (rng.random(rows.size) < config.same_product_share)
        partner_ok = weights.live[partner] & (partner != f)
        extra = np.where(use_colour | (~partner_ok & has_colour), other_colour, partner)
        keep = weights.live[extra] & (extra != f)
        occ_parts.append(rows[keep])
        art_parts.append(extra[keep])
    return np.concatenate(occ_parts), np.concatenate(art_parts)


def _item_prices(
    config: SyntheticConfig,
    rng: np.random.Generator,
    cat: _Catalogue,
    weights: _WeekWeights,
    article: np.ndarray,
) -> np.ndarray:
    """Base price x (1 - promotion depth) x occasional member discount, on H&M's price grid
    (whole 1/59000 units, written with at most 16 decimals like the Kaggle file)."""
    noise = np.where(
        rng.random(article.size) < config.price_noise_share,
        1.0 - rng.random(article.size) * config.price_noise_max,
        1.0,
    )
    discounted = cat.base_units[article] * (1.0 - weights.depth[article]) * noise
    return np.round(np.maximum(np.round(discounted), 1.0) / PRICE_SCALE, 16)
