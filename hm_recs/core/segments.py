"""Customer segments (behaviour groups) as of the end of a week; nothing after its Tuesday is read.

Segments (``SEGMENTS``): ``cold_start`` (no purchase up to the cutoff), four behaviour groups and
``default``.  Every customer gets exactly one *primary* segment; the behaviour memberships
(``member_<segment>``) may overlap and are kept for reporting (``overlaps``).

Indices
-------
Each behaviour group has an index in [0, 1] per customer, computed from the customer's purchases
up to the week's Tuesday (``history_until``).  The unit of evidence is a purchase *line*: one
distinct (customer, day, article); H&M writes every extra unit as a duplicate row, and three socks
of one kind are not three decisions (``n_purchases`` still counts rows, like ``customer_features``).
Every share is *smoothed* towards the population's pooled share with ``prior_weight``
pseudo-units, ``(hits + prior_weight * pooled) / (units + prior_weight)``, so that a customer
needs repeated evidence to reach the top of a distribution (with a pooled share of 0.1, 4 hits out
of 4 score 0.61 and 18 out of 20 score 0.80).  Indices are null where undefined (no eligible unit).

* ``bestseller_index`` -- share of the customer's purchase *days* after the history's first week
  with at least one line among the bestsellers of the *previous* week of the customer's age group
  (``features.age_group``; customers of unknown age use the ranking over all buyers).  Bestsellers:
  rank by rows sold <= ``min(top_n, ceil(top_share * articles the group bought that week))``, ties
  included; the ``top_share`` cap keeps "bestseller" selective on small catalogues (at H&M scale
  ``top_n`` binds).  A day counts once because a basket's extra items (another colour, a matching
  piece) follow its first pick: on the synthetic data this separates followers better than lines.
* ``loyalty_index`` -- share of the customer's lines in their most frequent ``loyalty_column``
  (default ``index_name``: 10 values such as Ladieswear / Divided / Menswear / Baby sizes, the
  shop-in-shop a customer walks into; ``section_name`` (~56 values) splits an index by garment and
  age, so a customer loyal to one index scatters over its sections).  Lines of articles missing
  from the catalogue are not counted.
* ``discount_index`` -- share of the customer's lines paid at least ``discount_depth`` below the
  article's usual price: the median over the article's selling *days* (history up to the cutoff) of
  the day's highest price paid (a line's price is that of its first row).  One price per day, the
  day's highest, keeps the usual price at the list price although a promotion multiplies an
  article's sales (a median over rows drifts towards the promotion price) and member discounts
  lower single rows.
* ``seasonal_index`` -- concentration of the customer's purchase *days* over the four seasons
  (``features.season``), measured against the population instead of a uniform spread (the history
  may cover the seasons unevenly, and demand is seasonal): with q_s the population's share of
  purchase days in season s and p_s the customer's smoothed share,
  ``max_s (p_s - q_s) / (1 - q_s)``: 0 = shops like everybody, 1 = only in one season.  Short
  histories: null for everyone unless the history spans at least ``seasonal_min_history_weeks``
  weeks (26 by default, which always covers two seasons); a single basket is one day, so the
  smoothing needs several days before the index rises.

Thresholds (``thresholds``)
---------------------------
Read from the distribution among *qualified* customers (at least ``min_purchases`` purchase rows,
index not null): ``threshold = max(quantile_q(index), median(index) + min_margin, floor)`` with
``q = quantile`` and a per-segment absolute ``floor``.  The margin above the median means a
population whose indices are all alike produces no members (the upper quantile then equals the
median); the floor keeps a segment meaningful (e.g. loyal means a majority of lines in one index).
Membership: qualified and ``index >= threshold``.  With no qualified value the threshold is
``math.inf`` (no member).

Assignment (``assign_segments``)
--------------------------------
``n_purchases == 0`` -> ``cold_start``; ``0 < n_purchases < min_purchases`` -> ``default``;
otherwise the first segment of ``priority`` (default ``config.priority``: discount_hunter >
seasonal > index_loyal > bestseller_follower) the customer is a member of, else ``default``.
Behaviour segments left out of ``priority`` are never primary.  Finally a behaviour segment with
fewer than ``min_segment_size`` primary customers folds into ``default`` (never into cold_start).

Everything is vectorised polars on integer codes (customer, article, age group); the history is
read once and aggregated per customer, so memory stays proportional to the transaction count.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import polars as pl

from hm_recs.core.features import AGE_GROUPS, age_group, history_until, season
from hm_recs.core.weeks import week_end, week_of

COLD_START = "cold_start"
DEFAULT = "default"
BEHAVIOUR_SEGMENTS: tuple[str, ...] = ("bestseller_follower", "index_loyal", "discount_hunter", "seasonal")
SEGMENTS: tuple[str, ...] = (COLD_START, *BEHAVIOUR_SEGMENTS, DEFAULT)
INDEX_COLUMNS: dict[str, str] = {
    "bestseller_follower": "bestseller_index",
    "index_loyal": "loyalty_index",
    "discount_hunter": "discount_index",
    "seasonal": "seasonal_index",
}
"""Behaviour segment -> the column of `segment_indices` that defines it."""
INDICES_COLUMNS: list[str] = ["customer_id", "n_purchases", *INDEX_COLUMNS.values()]
DEFAULT_PRIORITY: tuple[str, ...] = ("discount_hunter", "seasonal", "index_loyal", "bestseller_follower")

_AGE_CODES: dict[str, int] = {name: i for i, (_, _, name) in enumerate(AGE_GROUPS)}
_UNKNOWN_CODE = len(AGE_GROUPS)  # customers of unknown age look up the ranking over all buyers
_SEASON_CODES: dict[str, int] = {"winter": 0, "spring": 1, "summer": 2, "autumn": 3}


@dataclass(frozen=True)
class SegmentConfig:
    # who is segmented
    min_purchases: int = 5  # purchase rows up to the cutoff; fewer (but > 0) -> default
    min_segment_size: int = 50  # a behaviour segment with fewer primary customers folds into default
    priority: tuple[str, ...] = DEFAULT_PRIORITY
    # thresholds: max(quantile, median + min_margin, floor)
    quantile: float = 0.85
    min_margin: float = 0.05
    bestseller_floor: float = 0.25
    loyalty_floor: float = 0.5
    discount_floor: float = 0.25
    seasonal_floor: float = 0.15
    # indices
    prior_weight: float = 3.0  # pseudo-lines smoothing every share towards the population's
    top_n: int = 50  # bestsellers of the previous week per age group ...
    top_share: float = 0.25  # ... but at most this share of the articles the group bought that week
    discount_depth: float = 0.10  # "below the usual price" means at least this fraction below
    loyalty_column: str = "index_name"
    seasonal_min_history_weeks: int = 26

    def floor(self, segment: str) -> float:
        return {
            "bestseller_follower": self.bestseller_floor,
            "index_loyal": self.loyalty_floor,
            "discount_hunter": self.discount_floor,
            "seasonal": self.seasonal_floor,
        }[segment]


def _check_priority(priority: tuple[str, ...]) -> tuple[str, ...]:
    priority = tuple(priority)
    unknown = [s for s in priority if s not in BEHAVIOUR_SEGMENTS]
    if unknown or len(set(priority)) != len(priority):
        raise ValueError(f"priority must list distinct behaviour segments of {BEHAVIOUR_SEGMENTS}, got {priority}")
    return priority


def _smoothed(hits: str, total: str, frame: pl.DataFrame, weight: float) -> pl.Expr:
    """(hits + weight * pooled) / (total + weight), pooled = the population's sum(hits) / sum(total);
    null where the customer has no eligible unit."""
    all_hits, all_total = frame.select(pl.col(hits).sum(), pl.col(total).sum()).row(0)
    pooled = all_hits / all_total if all_total else 0.0
    return pl.when(pl.col(total) > 0).then((pl.col(hits) + weight * pooled) / (pl.col(total) + weight))


def segment_indices(
    customers: pl.DataFrame,
    transactions: pl.DataFrame,
    articles: pl.DataFrame,
    week: dt.date,
    config: SegmentConfig = SegmentConfig(),
) -> pl.DataFrame:
    """One row per customer of `customers` (in its order): customer_id, n_purchases and the four
    indices (see the module doc); customers without purchases get n_purchases 0 and null indices."""
    if transactions.schema["t_dat"] == pl.String:
        transactions = transactions.with_columns(pl.col("t_dat").str.to_date())
    people = customers.select(
        "customer_id",
        age_group(pl.col("age")).replace_strict(_AGE_CODES, default=_UNKNOWN_CODE, return_dtype=pl.UInt8).alias("_g"),
    ).with_row_index("_c")
    catalogue = articles.select(
        "article_id", pl.col(config.loyalty_column).rank("dense").cast(pl.UInt32).alias("_ix")
    ).with_row_index("_a")
    history = history_until(transactions.select("t_dat", "customer_id", "article_id", "price"), week)
    out = people.select("_c", "customer_id")
    first_day = history["t_dat"].min()
    if first_day is None:  # no history at all: everybody is cold start
        return out.select(
            "customer_id",
            pl.lit(0, dtype=pl.Int64).alias("n_purchases"),
            *[pl.lit(None, dtype=pl.Float64).alias(c) for c in INDEX_COLUMNS.values()],
        )
    n_days = (week_end(week) - first_day).days + 1
    n_articles = max(catalogue.height, 1)
    rows = _coded_rows(history, people, catalogue, first_day)
    del history  # memory: the coded rows replace it
    n_rows = rows.filter(pl.col("_c").is_not_null()).group_by("_c").agg(pl.len().alias("n_purchases"))
    top = _bestseller_keys(rows, n_articles, config)
    usual = _usual_prices(rows, catalogue.height)
    lines = _purchase_lines(rows, n_days, catalogue.height, people.height)
    del rows
    return _indices(out, lines, n_rows, top, usual, n_articles, first_day, n_days, config)


def _coded_rows(
    history: pl.DataFrame, people: pl.DataFrame, catalogue: pl.DataFrame, first_day: dt.date
) -> pl.DataFrame:
    """Every row up to the cutoff on integer codes: customer, article, index, age group, day and week since
    `first_day`.  Rows of customers outside `people` keep a null _c (they count for the bestseller rankings
    and usual prices only); rows of articles outside the catalogue keep a null _a (they only count in n_purchases)."""
    first_week = week_of(first_day)
    return (
        history.lazy()
        .join(people.lazy(), on="customer_id", how="left")
        .join(catalogue.lazy(), on="article_id", how="left")
        .select(
            "_c",
            "_a",
            "_ix",
            "price",
            pl.col("_g").fill_null(_UNKNOWN_CODE),
            (pl.col("t_dat") - pl.lit(first_day)).dt.total_days().cast(pl.UInt32).alias("_day"),
            ((pl.col("t_dat") - pl.lit(first_week)).dt.total_days() // 7).cast(pl.UInt32).alias("_w"),
        )
        .collect()
    )


def _purchase_lines(rows: pl.DataFrame, n_days: int, n_catalogue: int, n_people: int) -> pl.DataFrame:
    """Purchase lines: one per distinct (customer, day, article) of known customers and articles, keyed by
    integers (one u64 key dedupes far cheaper than a multi-column unique); a line's price is its first row's.
    _cd keys the line's (customer, day)."""
    n_articles = max(n_catalogue, 1)
    day_key = pl.col("_c").cast(pl.UInt64) * n_days + pl.col("_day")
    if n_catalogue * n_days * max(n_people, 1) < 2**63:
        first_of_line = (day_key * n_articles + pl.col("_a")).is_first_distinct()
    else:  # astronomically large inputs: fall back to the (memory-hungrier) struct key
        first_of_line = pl.struct("_c", "_day", "_a").is_first_distinct()
    return (
        rows.filter(pl.col("_c").is_not_null() & pl.col("_a").is_not_null())
        .filter(first_of_line)
        .with_columns(day_key.alias("_cd"))
    )


def _indices(
    out: pl.DataFrame,
    lines: pl.DataFrame,
    n_rows: pl.DataFrame,
    top: pl.Series,
    usual: pl.Series,
    n_articles: int,
    first_day: dt.date,
    n_days: int,
    config: SegmentConfig,
) -> pl.DataFrame:
    """The customers of `out` (_c, customer_id) with n_purchases and their four smoothed indices; the seasonal one
    only where the history spans ``seasonal_min_history_weeks`` (null otherwise)."""
    w = config.prior_weight
    for part in (
        _bestseller_counts(lines, top, n_articles),
        _discount_counts(lines, usual, config),
        _loyalty_counts(lines),
    ):
        out = out.join(part, on="_c", how="left", maintain_order="left")
    out = out.join(n_rows, on="_c", how="left", maintain_order="left").with_columns(
        _smoothed("_bs_hits", "_bs_n", out, w).alias("bestseller_index"),
        _smoothed("_ix_top", "_ix_n", out, w).alias("loyalty_index"),
        _smoothed("_disc_hits", "_disc_n", out, w).alias("discount_index"),
    )
    if n_days >= 7 * config.seasonal_min_history_weeks:
        out = out.join(_seasonal_index(lines, first_day, n_days, w), on="_c", how="left", maintain_order="left")
    else:
        out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias("seasonal_index"))
    return out.with_columns(pl.col("n_purchases").fill_null(0).cast(pl.Int64)).select(INDICES_COLUMNS)


def _bestseller_keys(rows: pl.DataFrame, n_articles: int, config: SegmentConfig) -> pl.Series:
    """Keys (week index, age group, article) of each week's bestsellers per age group: rank by rows
    sold <= min(top_n, ceil(top_share * articles the group bought that week)), ties included.  The
    unknown-age group gets the ranking over all buyers."""
    n_groups = _UNKNOWN_CODE + 1
    sold = (
        rows.filter(pl.col("_a").is_not_null())
        .group_by(((pl.col("_w").cast(pl.UInt64) * n_groups + pl.col("_g")) * n_articles + pl.col("_a")).alias("_key"))
        .agg(pl.len().alias("_sold"))
        .with_columns(
            (pl.col("_key") // (n_groups * n_articles)).alias("_w"),
            (pl.col("_key") // n_articles % n_groups).alias("_g"),
            (pl.col("_key") % n_articles).alias("_a"),
        )
    )
    overall = sold.group_by("_w", "_a").agg(pl.col("_sold").sum()).with_columns(pl.lit(_UNKNOWN_CODE).alias("_g"))
    keys = ["_w", "_g"]
    n_top = pl.min_horizontal(
        pl.lit(float(config.top_n)), (config.top_share * pl.len().over(keys)).ceil().clip(lower_bound=1.0)
    )
    return (
        pl.concat(
            [
                sold.filter(pl.col("_g") != _UNKNOWN_CODE).select("_w", "_g", "_a", "_sold"),
                overall.select("_w", pl.col("_g").cast(pl.UInt64), "_a", "_sold"),
            ]
        )
        .filter(pl.col("_sold").rank("min", descending=True).over(keys) <= n_top)
        .select(((pl.col("_w") * n_groups + pl.col("_g")) * n_articles + pl.col("_a")).alias("_key"))
        .to_series()
    )


def _usual_prices(rows: pl.DataFrame, n_articles: int) -> pl.Series:
    """Per article (catalogue position): median over its selling days of the day's highest price."""
    n_days = int(rows["_day"].max()) + 1
    per_article = (
        rows.filter(pl.col("_a").is_not_null())
        .group_by((pl.col("_a").cast(pl.UInt64) * n_days + pl.col("_day")).alias("_ad"))
        .agg(pl.col("price").max())
        .select((pl.col("_ad") // n_days).cast(pl.UInt32).alias("_a"), "price")
        .group_by("_a")
        .agg(pl.col("price").median())
    )
    return pl.DataFrame({"_a": pl.arange(0, n_articles, eager=True).cast(pl.UInt32)}).join(
        per_article, on="_a", how="left", maintain_order="left"
    )["price"]


def _bestseller_counts(lines: pl.DataFrame, top: pl.Series, n_articles: int) -> pl.DataFrame:
    """Per customer: purchase days after the first week of the history (_bs_n), and those with at
    least one line among the previous week's bestsellers of the customer's age group (_bs_hits)."""
    n_groups = _UNKNOWN_CODE + 1
    previous = ((pl.col("_w").cast(pl.UInt64) - 1) * n_groups + pl.col("_g")) * n_articles + pl.col("_a")
    eligible = lines.filter(pl.col("_w") > 0).select("_c", "_cd", previous.is_in(top.implode()).alias("_hit"))
    days = eligible.filter(pl.col("_cd").is_first_distinct()).group_by("_c").agg(pl.len().alias("_bs_n"))
    hits = (
        eligible.filter(pl.col("_hit"))
        .filter(pl.col("_cd").is_first_distinct())
        .group_by("_c")
        .agg(pl.len().alias("_bs_hits"))
    )
    return days.join(hits, on="_c", how="left").with_columns(pl.col("_bs_hits").fill_null(0))


def _discount_counts(lines: pl.DataFrame, usual: pl.Series, config: SegmentConfig) -> pl.DataFrame:
    """Per customer: lines of articles with a usual price (_disc_n) and those paid at least
    discount_depth below it (_disc_hits)."""
    return (
        lines.select("_c", "price", pl.lit(usual).gather(pl.col("_a")).alias("_usual"))
        .filter(pl.col("_usual").is_not_null())
        .group_by("_c")
        .agg(
            pl.len().alias("_disc_n"),
            (pl.col("price") <= (1.0 - config.discount_depth) * pl.col("_usual")).sum().alias("_disc_hits"),
        )
    )


def _loyalty_counts(lines: pl.DataFrame) -> pl.DataFrame:
    """Per customer: lines with a known index (_ix_n) and lines in the most frequent one (_ix_top)."""
    n_ix = int(lines["_ix"].max() or 0) + 1
    return (
        lines.filter(pl.col("_ix").is_not_null())
        .group_by((pl.col("_c").cast(pl.UInt64) * n_ix + pl.col("_ix")).alias("_cix"))
        .agg(pl.len().alias("_k"))
        .group_by((pl.col("_cix") // n_ix).cast(pl.UInt32).alias("_c"))
        .agg(pl.col("_k").sum().alias("_ix_n"), pl.col("_k").max().alias("_ix_top"))
    )


def _seasonal_index(lines: pl.DataFrame, first_day: dt.date, n_days: int, weight: float) -> pl.DataFrame:
    """max_s (p_s - q_s) / (1 - q_s) over the customer's purchase days (module doc).  Only seasons the
    customer shopped in need evaluating: the shares sum to 1 on both sides, so some shopped season
    has p_s > q_s, while a season without purchase days has p_s < q_s."""
    calendar = pl.select(pl.date_range(first_day, first_day + dt.timedelta(days=n_days - 1)).alias("_d"))
    season_of_day = calendar.select(
        season(pl.col("_d")).replace_strict(_SEASON_CODES, return_dtype=pl.UInt64)
    ).to_series()
    days = (
        lines.filter(pl.col("_cd").is_first_distinct())
        .group_by((pl.col("_c").cast(pl.UInt64) * 4 + pl.lit(season_of_day).gather(pl.col("_day"))).alias("_cs"))
        .agg(pl.len().alias("_days"))
        .select((pl.col("_cs") // 4).cast(pl.UInt32).alias("_c"), (pl.col("_cs") % 4).alias("_s"), "_days")
    )
    population = (
        days.group_by("_s")
        .agg(pl.col("_days").sum())
        .with_columns((pl.col("_days") / pl.col("_days").sum()).alias("_q"))
        .select("_s", "_q")
    )
    if population.height < 2:  # a single season: concentration is undefined
        return days.select("_c").unique().with_columns(pl.lit(None, dtype=pl.Float64).alias("seasonal_index"))
    return (
        days.join(population, on="_s", how="left")
        .with_columns(
            ((pl.col("_days") + weight * pl.col("_q")) / (pl.col("_days").sum().over("_c") + weight)).alias("_p")
        )
        .group_by("_c")
        .agg(((pl.col("_p") - pl.col("_q")) / (1.0 - pl.col("_q"))).max().clip(0.0, 1.0).alias("seasonal_index"))
    )


def thresholds(indices: pl.DataFrame, config: SegmentConfig = SegmentConfig()) -> dict[str, float]:
    """Behaviour segment -> threshold on its index: max(upper quantile, median + margin, floor) (module doc)."""
    qualified = indices.filter(pl.col("n_purchases") >= config.min_purchases)
    result: dict[str, float] = {}
    for segment, column in INDEX_COLUMNS.items():
        values = qualified[column].drop_nulls()
        if values.len() == 0:
            result[segment] = math.inf
            continue
        upper = values.quantile(config.quantile, interpolation="linear")
        result[segment] = float(max(upper, values.median() + config.min_margin, config.floor(segment)))
    return result


def assign_segments(
    indices: pl.DataFrame,
    thresholds: dict[str, float],
    config: SegmentConfig = SegmentConfig(),
    priority: tuple[str, ...] | None = None,
) -> pl.DataFrame:
    """customer_id, segment (primary), member_<segment> for the four behaviour groups, n_purchases."""
    priority = _check_priority(config.priority if priority is None else priority)
    qualified = pl.col("n_purchases") >= config.min_purchases
    members = indices.select(
        "customer_id",
        "n_purchases",
        *[
            (qualified & (pl.col(column) >= thresholds.get(segment, math.inf)).fill_null(False)).alias(
                f"member_{segment}"
            )
            for segment, column in INDEX_COLUMNS.items()
        ],
    )
    primary = pl.when(pl.col("n_purchases") == 0).then(pl.lit(COLD_START))
    for segment in priority:
        primary = primary.when(pl.col(f"member_{segment}")).then(pl.lit(segment))
    assigned = members.with_columns(primary.otherwise(pl.lit(DEFAULT)).alias("segment"))
    sizes = assigned.group_by("segment").agg(pl.len().alias("_size"))
    small = sizes.filter(pl.col("segment").is_in(BEHAVIOUR_SEGMENTS) & (pl.col("_size") < config.min_segment_size))
    return assigned.with_columns(
        pl.when(pl.col("segment").is_in(small["segment"].implode()))
        .then(pl.lit(DEFAULT))
        .otherwise(pl.col("segment"))
        .alias("segment")
    ).select("customer_id", "segment", *[f"member_{s}" for s in BEHAVIOUR_SEGMENTS], "n_purchases")


def segment_sizes(assignment: pl.DataFrame) -> pl.DataFrame:
    """segment, n_customers, share: one row per segment of SEGMENTS (zero where empty), in that order."""
    counts = assignment.group_by("segment").agg(pl.len().alias("n_customers"))
    total = max(assignment.height, 1)
    return (
        pl.DataFrame({"segment": list(SEGMENTS)})
        .join(counts, on="segment", how="left", maintain_order="left")
        .with_columns(pl.col("n_customers").fill_null(0).cast(pl.Int64))
        .with_columns((pl.col("n_customers") / total).alias("share"))
    )


def overlaps(assignment: pl.DataFrame) -> pl.DataFrame:
    """Behaviour segment x behaviour segment: customers who are members of both (diagonal: of the segment)."""
    flags = assignment.select([pl.col(f"member_{s}").cast(pl.Int64) for s in BEHAVIOUR_SEGMENTS])
    return pl.DataFrame({"segment": list(BEHAVIOUR_SEGMENTS)}).with_columns(
        pl.Series(
            other,
            [int((flags[f"member_{s}"] * flags[f"member_{other}"]).sum()) for s in BEHAVIOUR_SEGMENTS],
            dtype=pl.Int64,
        )
        for other in BEHAVIOUR_SEGMENTS
    )
