"""Week W's ranking inputs as two stored tables, built once (the `ranking_inputs` stage) and read back by every
scorer of the week, a chunk of customers at a time.

- The customer table (`customer_table`): one row per customer, sorted by customer_id, with the columns of
  `RankingInputs.customers` and each per-customer table (`bought_article`, `bought_product`, ...) nested as the
  list of that customer's rows (null where there are none). A chunk of customers reads its own rows only.
- The week table (`week_table`): one row with the customer-independent tables (the articles, the age groups'
  popularity) and the lists that complete short lists (`TopUpLists`), each nested as the list of its rows, and
  the input windows they were built over (a scorer whose ranker learnt on other windows builds its own).

`inputs_of(week, customers)` gives back the `RankingInputs` of those customers. Nesting keeps every column's
name, type and value, and `ranking_features` joins each table on unique keys, so the matrix of a chunk's
candidates from the stored tables equals the one from `week_inputs` in memory, bit for bit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import polars as pl

from hm_recs.core.baselines import TopUpLists
from hm_recs.core.ranking_columns import SHARE_KEYS
from hm_recs.core.ranking_features import InputWindows, RankingInputs

CUSTOMER_PARTS: tuple[str, ...] = (
    "bought_article",
    "bought_product",
    "bought_department",
    *(f"bought_{level}" for level in SHARE_KEYS),
)
"""The per-customer tables of `RankingInputs` (keyed by `c`), nested in the customer table under these names."""
WEEK_PARTS: tuple[str, ...] = ("articles", "group_popularity", "top_up_groups", "top_up_fallback")
"""The customer-independent tables, nested in the week table under these names."""


def customer_parts(inputs: RankingInputs) -> dict[str, pl.DataFrame]:
    """The per-customer tables by their `CUSTOMER_PARTS` name."""
    return {
        "bought_article": inputs.bought_article,
        "bought_product": inputs.bought_product,
        "bought_department": inputs.bought_department,
        **{f"bought_{level}": inputs.bought_levels[level] for level in SHARE_KEYS},
    }


def customer_table(inputs: RankingInputs, customer_ids: pl.Series | None = None) -> pl.DataFrame:
    """The stored customer table of `customer_ids` (every customer when None), sorted by customer_id: one row per
    customer, each per-customer table's rows of that customer as a list of structs (null where none)."""
    table = inputs.customers
    if customer_ids is not None:
        table = table.filter(pl.col("customer_id").is_in(customer_ids.implode()))
    keys = table.select("c")
    for name, part in customer_parts(inputs).items():
        rows = part.join(keys, on="c", how="semi").sort(part.columns[:2])  # (c, its key): lists in a fixed order
        nested = rows.group_by("c").agg(pl.struct(pl.exclude("c")).alias(name))
        table = table.join(nested, on="c", how="left", maintain_order="left")
    return table.sort("customer_id")


def _nested(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.select(pl.struct(pl.all()).implode().alias(name))


def _unnested(row: pl.DataFrame, name: str) -> pl.DataFrame:
    return row.select(name).explode(name).drop_nulls(name).unnest(name)


def week_table(inputs: RankingInputs, top_up: TopUpLists, windows: InputWindows) -> pl.DataFrame:
    """The stored week table: one row with the windows (`feature_weeks`, `segment_weeks`, `recent_weeks`), the
    top-up lists' length `top_up_k` and each of `WEEK_PARTS` as the list of its rows."""
    parts = {
        "articles": inputs.articles,
        "group_popularity": inputs.group_popularity.sort("customer_age_group", "a"),  # a fixed order
        "top_up_groups": top_up.group_lists,
        "top_up_fallback": top_up.fallback,
    }
    return pl.concat(
        [
            pl.DataFrame({**asdict(windows), "top_up_k": top_up.k}, schema_overrides={"top_up_k": pl.Int32}),
            *(_nested(frame, name) for name, frame in parts.items()),
        ],
        how="horizontal",
    )


@dataclass(frozen=True)
class WeekInputs:
    """The week table read back: what every chunk of customers shares."""

    week: dt.date
    windows: InputWindows
    articles: pl.DataFrame
    group_popularity: pl.DataFrame
    top_up: TopUpLists

    @classmethod
    def of(cls, week: dt.date, row: pl.DataFrame) -> WeekInputs:
        windows = InputWindows(**{name: row[name][0] for name in asdict(InputWindows())})
        top_up = TopUpLists(_unnested(row, "top_up_groups"), _unnested(row, "top_up_fallback"), row["top_up_k"][0])
        return cls(week, windows, _unnested(row, "articles"), _unnested(row, "group_popularity"), top_up)


def inputs_of(week: WeekInputs, customers: pl.DataFrame) -> RankingInputs:
    """The `RankingInputs` of the customers whose stored rows are given (`customer_table`'s columns): any chunk
    of customers gets, for its own candidates, the features it would get from the whole week's inputs."""
    parts = {name: customers.select("c", name).drop_nulls(name).explode(name).unnest(name) for name in CUSTOMER_PARTS}
    return RankingInputs(
        week=week.week,
        customers=customers.drop(*CUSTOMER_PARTS),
        articles=week.articles,
        group_popularity=week.group_popularity,
        bought_article=parts["bought_article"],
        bought_product=parts["bought_product"],
        bought_department=parts["bought_department"],
        bought_levels={level: parts[f"bought_{level}"] for level in SHARE_KEYS},
    )


def non_finite_values(frame: pl.DataFrame) -> int:
    """Values of the frame's float columns that are NaN or infinite (nulls are missing values, not counted)."""
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    if not floats or not frame.height:
        return 0
    counts = frame.select((~pl.col(c).is_finite()).fill_null(False).sum() for c in floats).row(0)
    return int(sum(counts))


def inputs_figures(inputs: RankingInputs, top_up: TopUpLists) -> dict[str, int]:
    """Rows per stored table, and the non-finite values of the customer table's and of the week table's parts
    (what the stage's checks read)."""
    per_customer = {"customers": inputs.customers, **customer_parts(inputs)}
    per_week = {
        "articles": inputs.articles,
        "group_popularity": inputs.group_popularity,
        "top_up_groups": top_up.group_lists,
        "top_up_fallback": top_up.fallback,
    }
    return {
        **{f"rows/{name}": frame.height for name, frame in {**per_customer, **per_week}.items()},
        "non_finite/customer_table": sum(non_finite_values(frame) for frame in per_customer.values()),
        "non_finite/week_table": sum(non_finite_values(frame) for frame in per_week.values()),
    }
