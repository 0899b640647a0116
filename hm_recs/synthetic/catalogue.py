"""The generated catalogue: products, colour variants, launches, partners, promotions and image vectors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hm_recs.synthetic.common import normalised, stream
from hm_recs.synthetic.config import SyntheticConfig
from hm_recs.synthetic.vocabulary import (
    ALL_YEAR,
    BASICS_MIN_REPEAT_PROPENSITY,
    COLOURS,
    DENIM_APPEARANCE,
    DENIM_GARMENT_GROUP,
    DEPARTMENTS,
    DESC_FEATURES,
    DESC_FITS,
    DESC_MATERIALS,
    GRAPHICAL_APPEARANCES,
    INDEXES,
    NAME_STEMS,
    PRICE_SCALE,
    PRODUCT_TYPES,
    SEASON_TENDENCY,
    SECTIONS,
)


@dataclass
class Catalogue:
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


def build_catalogue(config: SyntheticConfig, rng: np.random.Generator) -> Catalogue:
    """Draw products, their colour variants, launch weeks, prices, partners and promotions."""
    n_articles = config.n_articles
    n_products = min(n_articles, max(1, round(n_articles / config.variants_per_product)))
    products = _draw_products(config, rng, n_products)
    variants = _draw_variants(config, rng, products, n_articles)
    product = variants.product
    partners = _draw_partners(config, rng, variants.section, variants.section_start)
    promo_depth = _draw_promotions(config, rng, n_articles)
    style, desc_style, cycle = _draw_profile_effects(config, n_products, variants)
    return Catalogue(
        product_code=products.product_code[product],
        variant_no=variants.variant_no,
        product=product,
        product_start=variants.product_start,
        product_size=variants.sizes,
        variant_rank=variants.variant_rank,
        department=products.department[product],
        section=variants.section,
        section_start=variants.section_start,
        product_type=products.product_type[product],
        colour=variants.colour,
        appearance_no=variants.appearance_no,
        appearance_name_idx=variants.appearance_name_idx,
        name_stem=products.name_stem[product],
        name_suffix=variants.name_suffix,
        desc_fit=products.desc_fit[product],
        desc_material=products.desc_material[product],
        desc_feature=products.desc_feature[product],
        desc_null=products.desc_null[product],
        launch=variants.launch,
        popularity=variants.popularity,
        decay=products.decay[product],
        season=products.season[product],
        base_units=products.base_units[product],
        repeat_propensity=np.maximum(products.repeat, config.repeat_propensity_min)[product],
        partners=partners,
        promo_depth=promo_depth,
        style=style[product],
        desc_style=desc_style[product],
        rebuy_cycle=cycle[product],
    )


@dataclass
class _Products:
    """Product-level arrays (one entry per product, in internal order) that its variants inherit."""

    department: np.ndarray
    section: np.ndarray
    product_type: np.ndarray
    season: np.ndarray
    launch: np.ndarray
    popularity: np.ndarray
    base_units: np.ndarray
    repeat: np.ndarray  # the product type's repeat propensity (before the config's minimum)
    decay: np.ndarray
    product_code: np.ndarray
    name_stem: np.ndarray
    desc_fit: np.ndarray
    desc_material: np.ndarray
    desc_feature: np.ndarray
    desc_null: np.ndarray


def _draw_products(config: SyntheticConfig, rng: np.random.Generator, n_products: int) -> _Products:
    """The products: placement in the shop, launch week, popularity, price, lifecycle, code and description
    (drawn in the order written, the constructor's arguments included: the seeded output depends on it)."""
    department, section, product_type, season, launch = _draw_product_placement(config, rng, n_products)
    popularity = (rng.permutation(n_products) + 1.0) ** -config.popularity_zipf
    base_units = _draw_base_prices(config, rng, product_type)
    repeat = np.array([t[5] for t in PRODUCT_TYPES])[product_type]
    is_basic = (repeat >= BASICS_MIN_REPEAT_PROPENSITY) & (season == ALL_YEAR)
    decay = (
        config.lifecycle_decay_weeks
        * rng.lognormal(0.0, config.lifecycle_decay_sigma, n_products)
        * np.where(is_basic, config.basics_decay_multiplier, 1.0)
    )
    return _Products(
        department=department,
        section=section,
        product_type=product_type,
        season=season,
        launch=launch,
        popularity=popularity,
        base_units=base_units,
        repeat=repeat,
        decay=decay,
        product_code=_draw_product_codes(rng, launch),
        name_stem=rng.integers(0, len(NAME_STEMS), n_products),
        desc_fit=rng.integers(0, len(DESC_FITS), n_products),
        desc_material=rng.integers(0, len(DESC_MATERIALS), n_products),
        desc_feature=rng.integers(0, len(DESC_FEATURES), n_products),
        desc_null=rng.random(n_products) < config.detail_desc_null_share,
    )


def _draw_product_placement(
    config: SyntheticConfig, rng: np.random.Generator, n_products: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Department, section, product type, season profile and launch week of each product, sorted into the
    internal order: by section, then launch week (partners are launch-time neighbours)."""
    dept_weights = normalised([d[5] for d in DEPARTMENTS])
    department = rng.choice(len(DEPARTMENTS), size=n_products, p=dept_weights)
    section_of_dept = np.array([_SECTION_POS[d[2]] for d in DEPARTMENTS])
    section = section_of_dept[department]
    product_type = _draw_product_types(rng, department)
    season = _draw_season_profiles(rng, product_type)
    launch = _draw_launch_weeks(config, rng, n_products, section)
    order = np.lexsort((launch, section))
    department, section, product_type, season, launch = (
        a[order] for a in (department, section, product_type, season, launch)
    )
    return department, section, product_type, season, launch


def _draw_base_prices(config: SyntheticConfig, rng: np.random.Generator, product_type: np.ndarray) -> np.ndarray:
    """Base price of each product in 1/PRICE_SCALE units: lognormal around the type's level, clipped and
    snapped to the price grid (just under a grid step, as in x.99 prices)."""
    type_price = np.array([t[3] for t in PRODUCT_TYPES])[product_type]
    price = np.clip(
        config.price_median * type_price * rng.lognormal(0.0, config.price_sigma, len(product_type)),
        config.price_min,
        config.price_max,
    )
    step = config.price_grid_step
    return np.maximum(np.round(price * PRICE_SCALE / step) * step - 1, step - 1)


@dataclass
class _Variants:
    """Article-level arrays: each product's colour variants, in internal order."""

    sizes: np.ndarray  # number of variants of each product
    product: np.ndarray
    product_start: np.ndarray
    variant_rank: np.ndarray
    variant_no: np.ndarray
    launch: np.ndarray
    colour: np.ndarray
    appearance_name_idx: np.ndarray
    appearance_no: np.ndarray
    popularity: np.ndarray
    name_suffix: np.ndarray
    section: np.ndarray
    section_start: np.ndarray


def _draw_variants(
    config: SyntheticConfig, rng: np.random.Generator, products: _Products, n_articles: int
) -> _Variants:
    """Split the articles over the products (at least one each) and draw each variant's number, launch
    (some launch a few weeks after their product), colour, appearance, popularity and name suffix."""
    n_products = len(products.launch)
    sizes = 1 + rng.multinomial(n_articles - n_products, np.full(n_products, 1.0 / n_products))
    product = np.repeat(np.arange(n_products), sizes)
    product_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    variant_rank = np.arange(n_articles) - product_start[product]
    variant_no = _draw_variant_numbers(rng, variant_rank, product_start, product, int(sizes.max()))
    late = (variant_rank > 0) & (rng.random(n_articles) < config.late_variant_share)
    late_weeks = np.where(late, rng.integers(1, config.late_variant_max_weeks + 1, n_articles), 0)
    colour = rng.choice(len(COLOURS), size=n_articles, p=normalised([c[4] for c in COLOURS]))
    appearance_name_idx, appearance_no = _draw_appearances(config, rng, products.department[product])
    popularity = products.popularity[product] * rng.lognormal(0.0, config.variant_popularity_sigma, n_articles)
    name_suffix = rng.random(n_articles) < config.name_suffix_share
    section = products.section[product]
    return _Variants(
        sizes=sizes,
        product=product,
        product_start=product_start,
        variant_rank=variant_rank,
        variant_no=variant_no,
        launch=products.launch[product] + late_weeks,
        colour=colour,
        appearance_name_idx=appearance_name_idx,
        appearance_no=appearance_no,
        popularity=popularity,
        name_suffix=name_suffix,
        section=section,
        section_start=np.searchsorted(section, np.arange(len(SECTIONS) + 1)),
    )


def _draw_profile_effects(
    config: SyntheticConfig, n_products: int, variants: _Variants
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shop profiles' effects, from their own stream: each product's hidden style, whether its description
    names it and its re-buy cycle; below ``variant_attribute_share`` a variant copies (in place) its product's
    first variant's colour and appearance."""
    extra = stream(config, "catalogue")
    style = extra.integers(0, config.styles, n_products)
    desc_style = extra.random(n_products) < config.style_desc_share
    cycle = config.rebuy_cycle_weeks * extra.lognormal(0.0, config.rebuy_cycle_sigma, n_products)
    if config.variant_attribute_share < 1.0:
        first = variants.product_start[variants.product]
        copies = (variants.variant_rank > 0) & (extra.random(len(variants.product)) >= config.variant_attribute_share)
        variants.colour = np.where(copies, variants.colour[first], variants.colour)
        variants.appearance_name_idx = np.where(
            copies, variants.appearance_name_idx[first], variants.appearance_name_idx
        )
        variants.appearance_no = np.where(copies, variants.appearance_no[first], variants.appearance_no)
    return style, desc_style, cycle


_SECTION_POS: dict[int, int] = {s[0]: i for i, s in enumerate(SECTIONS)}


INDEX_POS: dict[str, int] = {ix[0]: i for i, ix in enumerate(INDEXES)}


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
    idx = rng.choice(len(GRAPHICAL_APPEARANCES), size=n, p=normalised([g[2] for g in GRAPHICAL_APPEARANCES]))
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


def image_vectors(config: SyntheticConfig, cat: Catalogue) -> np.ndarray:
    """(articles, image_dim) unit vectors such as a vision model gives: the hidden style dominates, then
    the product type and the colour, then what makes the product and the article photo unique."""
    rng = stream(config, "images")
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
