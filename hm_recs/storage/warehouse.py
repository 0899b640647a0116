"""The warehouse as the stages see it: the `Warehouse` interface (table names, SQL reads, existence), the
partitioning metadata of its tables, and the column metadata both implementations record on every write.

Implementations: `duckdb_warehouse.DuckDBWarehouse` (one DuckDB file, the local default) and
`parquet_warehouse.ParquetWarehouse` (Parquet objects in a folder or on S3: the multi-pod configuration)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import dagster as dg
import duckdb
import polars as pl

from hm_recs.core.schema import column_description

WAREHOUSE_SCHEMA = "hm"

PARTITIONED = {"partition_expr": "week"}
TARGET_WEEK_PARTITIONED = {"partition_expr": "CAST(week - INTERVAL 7 DAY AS DATE)"}
"""Recommendation tables carry the week they are *for* (W+1); their partition is the week built (W)."""


class Warehouse(dg.ConfigurableResource):
    """The warehouse as assets read it: `table(name)` is the SQL name of an asset's table, `query(sql, params)`
    runs DuckDB SQL over the tables and returns a polars frame, `exists(name)`, `connect()` a DuckDB connection.

    Assets annotate `warehouse: Warehouse`; Dagster binds the `warehouse` resource by name, so either
    implementation serves: `DuckDBWarehouse` (one DuckDB file, the local default) or
    `hm_recs.storage.parquet_warehouse.ParquetWarehouse` (Parquet objects on S3 or in a folder, read by an in-memory
    DuckDB: the multi-pod configuration)."""

    schema_name: str = WAREHOUSE_SCHEMA

    def table(self, name: str) -> str:
        return f"{self.schema_name}.{name}"

    def describe(self) -> str:
        """Where the tables are (a file, a folder or an S3 prefix), for messages."""
        raise NotImplementedError

    def connect(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def query(
        self, sql: str, params: Sequence | None = None, frames: dict[str, pl.DataFrame] | None = None
    ) -> pl.DataFrame:
        """`sql` (DuckDB) with `params`; `frames` are polars frames the SQL names as tables (a chunk's customer
        ids to join with: the join runs in DuckDB, so only the matching rows come back)."""
        raise NotImplementedError


def registered(
    connection: duckdb.DuckDBPyConnection, frames: dict[str, pl.DataFrame] | None
) -> duckdb.DuckDBPyConnection:
    """`connection` with each of `frames` registered under its name (for `Warehouse.query`)."""
    for name, frame in (frames or {}).items():
        connection.register(name, frame.to_arrow())
    return connection


def table_metadata(rows: int, schema: pl.Schema, table: str | None = None) -> dict:
    """Row count and column schema (with each column's description, `core.schema.column_description`)."""
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(name=n, type=str(t), description=column_description(table, n)) for n, t in schema.items()
            ]
        ),
    }
