"""The stored ranking inputs (`core/stored_inputs.py`): a week's inputs as a customer table and a week row, read
back through DuckDB for a chunk of customers, give that chunk's candidates the feature matrix of the whole
week's inputs in memory, bit for bit."""

import datetime as dt

import duckdb
import polars as pl
import pytest

from hm_recs.core.baselines import TopUpLists
from hm_recs.core.candidates import build_candidates
from hm_recs.core.ranking_features import InputWindows, ranking_features, week_inputs
from hm_recs.core.stored_inputs import (
    CUSTOMER_PARTS,
    WeekInputs,
    customer_table,
    inputs_figures,
    inputs_of,
    non_finite_values,
    week_table,
)
from hm_recs.synthetic import SyntheticConfig, generate

WEEK = dt.date(2020, 9, 9)
WINDOWS = InputWindows(feature_weeks=6, segment_weeks=8)


@pytest.fixture(scope="module")
def shop():
    data = generate(SyntheticConfig(customers=400, weeks=10, seed=5, purchase_rate=0.8))
    transactions = data.transactions.with_columns(pl.col("t_dat").str.to_date())
    inputs = week_inputs(data.customers, data.articles, transactions, WEEK, WINDOWS)
    top_up = TopUpLists.build(data.customers, transactions, data.articles, WEEK)
    return data, transactions, inputs, top_up


def through_duckdb(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame written to a DuckDB table and read back (as the warehouse stores and reads it)."""
    with duckdb.connect() as connection:
        connection.register("frame", frame.to_arrow())
        connection.execute("create table stored as select * from frame")
        return connection.execute("select * from stored").pl()


def test_a_chunk_s_features_from_the_stored_tables_equal_the_in_memory_ones(shop):
    data, transactions, inputs, top_up = shop
    chunk = data.customers["customer_id"].sort().slice(100, 150)
    candidates = build_candidates(data.customers, transactions, data.articles, WEEK, customer_ids=chunk)
    stored_customers = through_duckdb(customer_table(inputs)).filter(pl.col("customer_id").is_in(chunk.implode()))
    week = WeekInputs.of(WEEK, through_duckdb(week_table(inputs, top_up, WINDOWS)))

    from_store = ranking_features(inputs_of(week, stored_customers), candidates)
    in_memory = ranking_features(inputs, candidates)
    assert from_store.height == candidates.height > 0 and from_store.equals(in_memory)
    assert week.windows == WINDOWS
    assert week.top_up.group_lists.equals(top_up.group_lists) and week.top_up.fallback.equals(top_up.fallback)
    assert week.top_up.k == top_up.k


def test_one_row_per_customer_with_their_purchases_nested(shop):
    data, _, inputs, top_up = shop
    table = customer_table(inputs)
    assert table.height == data.customers.height and table["customer_id"].is_sorted()
    assert table["customer_id"].n_unique() == table.height
    figures = inputs_figures(inputs, top_up)
    assert figures["non_finite/customer_table"] == figures["non_finite/week_table"] == 0
    for name in CUSTOMER_PARTS:  # every purchase row is under its customer, once
        assert table[name].list.len().sum() == figures[f"rows/{name}"] > 0
    never_bought = table.filter(pl.col("_rows").is_null())
    assert never_bought["bought_article"].null_count() == never_bought.height
    # a chunk's table is the whole table's rows of the chunk
    chunk = table["customer_id"].slice(10, 30)
    assert customer_table(inputs, chunk).equals(table.filter(pl.col("customer_id").is_in(chunk.implode())))


def test_non_finite_values_are_counted_and_nulls_are_not():
    frame = pl.DataFrame(
        {"x": [1.0, None, float("nan"), float("inf")], "y": [0.5, 0.1, 0.2, None], "s": ["a", "b", "c", "d"]},
        schema={"x": pl.Float32, "y": pl.Float64, "s": pl.String},
    )
    assert non_finite_values(frame) == 2
    assert non_finite_values(frame.head(0)) == 0
