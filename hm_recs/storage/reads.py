"""The named SQL reads the stages share: a partition's rows, a range of partitions, one customer chunk's rows,
the purchase history up to a week and the week's catalogue. A new table's shared read goes here; every read is
bounded by week in SQL (nothing later than the partition is read)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from hm_recs.storage.warehouse import Warehouse


def partition_rows(
    warehouse: Warehouse, table: str, week: dt.date, columns: str = "*", *, target_week: bool = False
) -> pl.DataFrame:
    """The stored rows of one weekly partition (empty if the table does not exist yet)."""
    if not warehouse.exists(table):
        return pl.DataFrame()
    key = week + dt.timedelta(weeks=1) if target_week else week
    return warehouse.query(f"select {columns} from {warehouse.table(table)} where week = ?", [key])


def partition_rows_between(
    warehouse: Warehouse, table: str, week: dt.date, weeks: int, columns: str = "*", *, target_week: bool = True
) -> pl.DataFrame:
    """The stored rows of the `weeks` partitions up to `week` (a recommendation table's rows carry the week they
    are for: `target_week`); empty if the table does not exist yet."""
    if not warehouse.exists(table):
        return pl.DataFrame()
    last = week + dt.timedelta(weeks=1) if target_week else week
    return warehouse.query(
        f"select {columns} from {warehouse.table(table)} where week between ? and ?",
        [last - dt.timedelta(weeks=weeks - 1), last],
    )


def customer_rows(
    warehouse: Warehouse,
    table: str,
    week: dt.date,
    customers: pl.Series,
    columns: str = "*",
    where: str = "",
    params: list | None = None,
) -> pl.DataFrame:
    """The rows of partition `week` of `table` for the given customers only, sorted by customer: the semi-join
    runs in DuckDB, so the rest of the partition never reaches this process. `where` adds SQL conditions
    (`and target_week = ?`) with their `params`. A range filter on the chunk's first and last id lets DuckDB
    skip the row groups of other customers (the tables are written in customer order)."""
    if not customers.len() or not warehouse.exists(table):
        return pl.DataFrame()
    wanted = pl.DataFrame({"customer_id": customers.cast(pl.String)})
    return warehouse.query(
        f"select {columns} from {warehouse.table(table)} where week = ? and customer_id between ? and ? {where} "
        "and customer_id in (select customer_id from wanted_customers) order by customer_id",
        [week, customers.min(), customers.max(), *(params or [])],
        frames={"wanted_customers": wanted},
    )


HISTORY_COLUMNS = "t_dat, customer_id, article_id, price, sales_channel_id"


def history(warehouse: Warehouse, week: dt.date, weeks: int, columns: str = HISTORY_COLUMNS) -> pl.DataFrame:
    """Validated transactions of the `weeks` weeks up to and including `week` (never later ones)."""
    first = week - dt.timedelta(weeks=weeks - 1)
    return warehouse.query(
        f"select {columns} from {warehouse.table('transactions')} where week between ? and ? order by t_dat",
        [first, week],
    )


def catalogue(warehouse: Warehouse, week: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Week W's validated customers and articles (sorted by article_id)."""
    customers = partition_rows(warehouse, "customers", week).drop("week")
    articles = partition_rows(warehouse, "articles", week).drop("week").sort("article_id")
    return customers, articles


def catalogue_tables(
    warehouse: Warehouse, week: dt.date, history_weeks: int
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Week W's validated customers and articles (sorted by article_id) and the transactions up to W."""
    return *catalogue(warehouse, week), history(warehouse, week, history_weeks)
