"""What a customer picks on an occasion: the first item (re-buy, bestseller, taste, style) and the basket."""

from __future__ import annotations

import numpy as np

from hm_recs.synthetic.catalogue import Catalogue
from hm_recs.synthetic.common import categorical, normalised
from hm_recs.synthetic.config import SyntheticConfig
from hm_recs.synthetic.state import Context, History, WeekWeights
from hm_recs.synthetic.vocabulary import AGE_BAND_EDGES, FOLLOWER, HUNTER, PRICE_SCALE


def first_items(
    ctx: Context,
    rng: np.random.Generator,
    weights: WeekWeights,
    history: History,
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

    follower = (pop.segment[customer] == FOLLOWER) & (result < 0) & (rng.random(n) < config.follower_copy_share)
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


def _taste_draw(ctx: Context, rng: np.random.Generator, weights: WeekWeights, customer: np.ndarray) -> np.ndarray:
    """index by personal taste -> section by age affinity x section sales -> article by weight."""
    config, cat, pop = ctx.config, ctx.catalogue, ctx.population
    n = customer.size
    cum = pop.index_cum[customer]
    u = rng.random(n)[:, None] * cum[:, -1:]
    index = np.minimum((cum <= u).sum(axis=1), cum.shape[1] - 1)
    kind = (pop.segment[customer] == HUNTER).astype(np.int64)  # 0 regular, 1 hunter
    base = weights.section_total[kind] * ctx.age_affinity[pop.age.astype(np.int64)[customer]]
    masked = base * (ctx.section_index[None, :] == index[:, None])
    # discount hunters mostly follow the promotions, wherever they are
    bargain = (kind == 1) & (rng.random(n) >= config.hunter_taste_share)
    masked[bargain] = base[bargain]
    empty = masked.sum(axis=1) <= 0
    masked[empty] = base[empty]  # chosen index has nothing on sale: any section will do
    section = categorical(masked, rng)
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
    ctx: Context,
    rng: np.random.Generator,
    weights: WeekWeights,
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
    block = section * styles + categorical(mass, rng)
    lo, hi = ctx.style_block_start[block], ctx.style_block_start[block + 1]
    article = np.empty(customer.size, dtype=np.int64)
    for k in (0, 1):
        rows = np.flatnonzero(kind == k)
        c = weights.style_cum[k]
        target = c[lo[rows]] + rng.random(rows.size) * (c[hi[rows]] - c[lo[rows]])
        pos = np.clip(np.searchsorted(c, target, side="right") - 1, lo[rows], hi[rows] - 1)
        article[rows] = ctx.style_order[pos]
    return article


def basket_items(
    config: SyntheticConfig,
    rng: np.random.Generator,
    cat: Catalogue,
    weights: WeekWeights,
    first: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Expand occasions to their distinct items: (occasion index, article) per item.

    Extra items are another colour of the first item's product or one of its fixed partners
    (falling back to another colour when the partner is not on sale yet); extras that are not
    on sale are dropped."""
    n = first.size
    basket_p = normalised(config.basket_size_probs)
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


def item_prices(
    config: SyntheticConfig,
    rng: np.random.Generator,
    cat: Catalogue,
    weights: WeekWeights,
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
