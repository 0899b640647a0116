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
pseudo-lines, ``(hits + prior_weight * pooled) / (lines + prior_weight)``, so that a customer
needs repeated evidence to reach the top of a distribution (4 lines out of 4 rank below 18 out of
20).  Indices are null where undefined (no eligible line).

* ``bestseller_index`` -- share of the customer's lines that were, in the week of purchase, among
  the ``top_n`` articles of the *previous* week among buyers of the customer's age group
  (``features.age_group``; rank by rows sold, ties at the boundary included; customers of unknown
  age use the ranking over all buyers).  Lines of the first week of the history have no previous
  week and are not counted.
* ``loyalty_index`` -- share of the customer's lines in their most frequent ``loyalty_column``
  (default ``index_name``: 10 values such as Ladieswear / Divided / Menswear / Baby sizes, the level
  at which H&M organises its shops; ``section_name`` (~57 values) mostly splits an index by age and
  garment and makes every customer look loyal).  Lines of articles missing from the catalogue are
  not counted.
* ``discount_index`` -- share of the customer's lines paid at least ``discount_depth`` below the
  article's usual price: the median over the article's selling *days* (history up to the cutoff) of
  the day's highest price paid.  Taking one price per day, the day's highest, keeps the usual price
  at the list price although a promotion multiplies an article's sales (a median over rows would
  drift towards the promotion price) and member discounts lower single rows.
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

from hm_recs.core.features import AGE_GROUPS, UNKNOWN_AGE_GROUP, age_group, history_until, season
from hm_recs.core.weeks import week_end, week_expr, week_of

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
    discount_floor: float = 0.15
    seasonal_floor: float = 0.15
    # indices
    prior_weight: float = 3.0  # pseudo-lines smoothing every share towards the population's
    top_n: int = 50  # bestsellers of the previous week per age group
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


def _smoothed(hits: pl.Expr, total: pl.Expr, pooled: float | None, weight: float) -> pl.Expr:
    """(hits + weight * pooled) / (total + weight); null where the customer has no eligible line."""
    prior = 0.0 if pooled is None else weight * pooled
    return pl.when(total > 0).then((hits + prior) / (total + (weight if pooled is not None else 0.0)))


def _pooled(frame: pl.DataFrame, hits: str, total: str) -> float | None:
    sums = frame.select(pl.col(hits).sum(), pl.col(total).sum()).row(0)
    return sums[0] / sums[1] if sums[1] else None


def segment_indices(
    customers: pl.DataFrame,
    transactions: pl.DataFrame,
    articles: pl.DataFrame,
    week: dt.date,
    config: SegmentConfig = SegmentConfig(),
) -> pl.DataFrame:
    """One row per customer of `customers`: customer_id, n_purchases and the four indices (see module doc)."""
    if transactions.schema["t_dat"] == pl.String:
        transactions = transactions.with_columns(pl.col("t_dat").str.to_date())
    people = customers.select(
        "customer_id",
        age_group(pl.col("age")).replace_strict(_AGE_CODES, default=_UNKNOWN_CODE, return_dtype=pl.UInt8).alias("_g"),
    ).with_row_index("_c")
    catalogue = articles.select(
        "article_id", pl.col(config.loyalty_column).rank("dense").cast(pl.UInt32).alias("_ix")
    ).with_row_index("_a")

    # Every row up to the cutoff, on integer codes (customers outside `customers` keep a null _c:
    # they still count for the bestseller rankings and the usual prices).
    rows = (
        history_until(transactions, week).lazy()
        .select("t_dat", "customer_id", "article_id", "price")
        .join(people.lazy(), on="customer_id", how="left")
        .join(catalogue.lazy(), on="article_id", how="left")
        .select("_c", "_a", "_ix", "t_dat", "price", pl.col("_g").fill_null(_UNKNOWN_CODE),
                week_expr(pl.col("t_dat")).alias("_week"))
        .collect()
    )
    n_rows = rows.filter(pl.col("_c").is_not_null()).group_by("_c").agg(pl.len().alias("n_purchases"))
    # purchase lines: one distinct (customer, day, article)
    lines = rows.filter(pl.col("_c").is_not_null() & pl.col("_a").is_not_null()).unique(["_c", "t_dat", "_a"])

    parts = [
        _bestseller_counts(rows, lines, config),
        _discount_counts(rows, lines, config),
        _loyalty_counts(lines),
    ]
    first_day = rows["t_dat"].min()
    seasonal = _seasonal_counts(rows) if (
        first_day is not None and (week_end(week) - first_day).days + 1 >= 7 * config.seasonal_min_history_weeks
    ) else None

    out = people.select("_c", "customer_id").join(n_rows, on="_c", how="left")
    for part in parts:
        out = out.join(part, on="_c", how="left")
    w = config.prior_weight
    out = out.with_columns(
        _smoothed(pl.col("_bs_hits"), pl.col("_bs_n"), _pooled(out, "_bs_hits", "_bs_n"), w).alias("bestseller_index"),
        _smoothed(pl.col("_ix_top"), pl.col("_ix_n"), _pooled(out, "_ix_top", "_ix_n"), w).alias("loyalty_index"),
        _smoothed(pl.col("_disc_hits"), pl.col("_disc_n"), _pooled(out, "_disc_hits", "_disc_n"), w)
        .alias("discount_index"),
    )
    if seasonal is None:
        out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias("seasonal_index"))
    else:
        out = out.join(_seasonal_index(seasonal, w), on="_c", how="left")
    return (
        out.sort("_c")
        .with_columns(pl.col("n_purchases").fill_null(0).cast(pl.Int64))
        .select(INDICES_COLUMNS)
    )


def _bestseller_counts(rows: pl.DataFrame, lines: pl.DataFrame, config: SegmentConfig) -> pl.DataFrame:
    """Per customer: lines with a previous week in the history (_bs_n), and those in its top-N (_bs_hits)."""
    by_group = rows.filter(pl.col("_a").is_not_null()).group_by("_week", "_g", "_a").agg(pl.len().alias("_sold"))
    known = by_group.filter(pl.col("_g") != _UNKNOWN_CODE)
    overall = by_group.group_by("_week", "_a").agg(pl.col("_sold").sum()).with_columns(
        pl.lit(_UNKNOWN_CODE, dtype=pl.UInt8).alias("_g"))
    top = (
        pl.concat([known, overall.select(known.columns)])
        .filter(pl.col("_sold").rank("min", descending=True).over("_week", "_g") <= config.top_n)
        .select((pl.col("_week") + pl.duration(weeks=1)).alias("_week"), "_g", "_a", pl.lit(True).alias("_top"))
    )
    first_week = week_of(rows["t_dat"].min()) if rows.height else None
    return (
        lines.filter(pl.col("_week") > pl.lit(first_week))
        .join(top, on=["_week", "_g", "_a"], how="left")
        .group_by("_c").agg(pl.len().alias("_bs_n"), pl.col("_top").fill_null(False).sum().alias("_bs_hits"))
    )


def _discount_counts(rows: pl.DataFrame, lines: pl.DataFrame, config: SegmentConfig) -> pl.DataFrame:
    """Per customer: lines (_disc_n) and lines paid at least discount_depth below the usual price (_disc_hits)."""
    usual = (
        rows.filter(pl.col("_a").is_not_null())
        .group_by("_a", "t_dat").agg(pl.col("price").max())
        .group_by("_a").agg(pl.col("price").median().alias("_usual"))
    )
    # a line's price: the lowest paid for it that day (units of one line are duplicate rows)
    paid = rows.filter(pl.col("_c").is_not_null() & pl.col("_a").is_not_null()).group_by("_c", "t_dat", "_a").agg(
        pl.col("price").min())
    return (
        paid.join(usual, on="_a", how="inner")
        .group_by("_c").agg(
            pl.len().alias("_disc_n"),
            (pl.col("price") <= (1.0 - config.discount_depth) * pl.col("_usual")).sum().alias("_disc_hits"),
        )
    )


def _loyalty_counts(lines: pl.DataFrame) -> pl.DataFrame:
    """Per customer: lines with a known index (_ix_n) and lines in the most frequent one (_ix_top)."""
    return (
        lines.filter(pl.col("_ix").is_not_null())
        .group_by("_c", "_ix").agg(pl.len().alias("_k"))
        .group_by("_c").agg(pl.col("_k").sum().alias("_ix_n"), pl.col("_k").max().alias("_ix_top"))
    )


def _seasonal_counts(rows: pl.DataFrame) -> pl.DataFrame:
    """Purchase days per (customer, season); a customer's null _c rows only count for the population."""
    return (
        rows.select("_c", "t_dat").unique()
        .with_columns(season(pl.col("t_dat")).alias("_s"))
        .group_by("_c", "_s").agg(pl.len().alias("_days"))
    )


def _seasonal_index(days: pl.DataFrame, weight: float) -> pl.DataFrame:
    """max_s (p_s - q_s) / (1 - q_s), p the smoothed share of the customer's purchase days in season s."""
    population = days.group_by("_s").agg(pl.col("_days").sum()).with_columns(
        (pl.col("_days") / pl.col("_days").sum()).alias("_q")).select("_s", "_q")
    if population.height < 2:  # one season only: concentration is undefined
        return days.select("_c").unique().with_columns(pl.lit(None, dtype=pl.Float64).alias("seasonal_index"))
    customer = days.filter(pl.col("_c").is_not_null())
    # every season of the population for every customer (seasons they never shopped in have 0 days)
    grid = (
        customer.select("_c").unique().join(population, how="cross")
        .join(customer, on=["_c", "_s"], how="left")
        .with_columns(pl.col("_days").fill_null(0))
        .with_columns(pl.col("_days").sum().over("_c").alias("_n"))
        .with_columns(((pl.col("_days") + weight * pl.col("_q")) / (pl.col("_n") + weight)).alias("_p"))
    )
    return grid.group_by("_c").agg(
        ((pl.col("_p") - pl.col("_q")) / (1.0 - pl.col("_q"))).max().clip(0.0, 1.0).alias("seasonal_index"))


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
        "customer_id", "n_purchases",
        *[(qualified & (pl.col(column) >= thresholds.get(segment, math.inf)).fill_null(False)).alias(f"member_{segment}")
          for segment, column in INDEX_COLUMNS.items()],
    )
    primary = pl.when(pl.col("n_purchases") == 0).then(pl.lit(COLD_START))
    for segment in priority:
        primary = primary.when(pl.col(f"member_{segment}")).then(pl.lit(segment))
    assigned = members.with_columns(primary.otherwise(pl.lit(DEFAULT)).alias("segment"))
    sizes = assigned.group_by("segment").agg(pl.len().alias("_size"))
    small = sizes.filter(pl.col("segment").is_in(BEHAVIOUR_SEGMENTS) & (pl.col("_size") < config.min_segment_size))
    return assigned.with_columns(
        pl.when(pl.col("segment").is_in(small["segment"].implode())).then(pl.lit(DEFAULT))
        .otherwise(pl.col("segment")).alias("segment")
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
        pl.Series(other, [int((flags[f"member_{s}"] * flags[f"member_{other}"]).sum()) for s in BEHAVIOUR_SEGMENTS],
                  dtype=pl.Int64)
        for other in BEHAVIOUR_SEGMENTS
    )
