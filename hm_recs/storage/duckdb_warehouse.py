"""The DuckDB warehouse (the local default): `DuckDBWarehouse` for SQL reads and `WarehouseIOManager`, dagster-duckdb's
polars IO manager with writes by column name, staged tables, schema evolution by addition and one transaction per
partition write (docs/pipeline.md, "The DuckDB warehouse")."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_polars import DuckDBPolarsIOManager, DuckDBPolarsTypeHandler

from hm_recs.settings import DEFAULT_WAREHOUSE
from hm_recs.storage.staged import StagedTable
from hm_recs.storage.warehouse import Warehouse, registered, table_metadata

LOCK_RETRY_SECONDS = 120.0
LOCK_WAIT_REPORT_SECONDS = 0.2  # a longer wait for the file lock is logged (it means two processes collided)
SLOW_OPEN_REPORT_SECONDS = 1.0  # an IO-manager open this slow is logged (its client retries a held lock inside)
LOGGER = dg.get_dagster_logger("hm_recs.warehouse")
DUCKDB_CONFIG = {"custom_user_agent": "dagster"}


def _is_lock_error(exc: Exception) -> bool:
    return "lock" in str(exc).lower()


class DuckDBWarehouse(Warehouse):
    """Short-lived DuckDB connections for reads the IO manager cannot express (history up to a week).

    DuckDB admits one process at a time, so connections are opened per query and retried while another
    step holds the file (docs/pipeline.md, "The DuckDB warehouse")."""

    path: str = DEFAULT_WAREHOUSE

    def describe(self) -> str:
        return self.path

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        deadline, collided = started + LOCK_RETRY_SECONDS, False
        while True:
            try:
                # Same config as dagster-duckdb's IO manager: DuckDB refuses a second connection in one
                # process to the same file with a different configuration.
                connection = duckdb.connect(self.path, read_only=False, config=DUCKDB_CONFIG)
                break
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    raise
                collided = True
                time.sleep(0.5)
        if collided and (waited := time.monotonic() - started) > LOCK_WAIT_REPORT_SECONDS:
            LOGGER.warning(f"waited {waited:.1f} s for the warehouse lock on {self.path} (another process was writing)")
        try:
            yield connection
        finally:
            connection.close()

    def exists(self, name: str) -> bool:
        with self.connect() as c:
            return bool(
                c.execute(
                    "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                    [self.schema_name, name],
                ).fetchone()[0]
            )

    def query(
        self, sql: str, params: Sequence | None = None, frames: dict[str, pl.DataFrame] | None = None
    ) -> pl.DataFrame:
        with self.connect() as c:
            return registered(c, frames).execute(sql, params or []).pl()


def _evolve_table(context: dg.OutputContext, table_slice: TableSlice, relation: str, connection) -> None:
    """Create the slice's table from `relation`'s columns (also from no rows, so that readers of an empty
    partition such as a clean quarantine find it with its schema) and add the columns new to it (schema
    evolution by addition, as a release adds a column: earlier weeks read it as null)."""
    target = f"{table_slice.schema}.{table_slice.table}"
    connection.execute(f"create schema if not exists {table_slice.schema};")
    connection.execute(f"create table if not exists {target} as select * from {relation} limit 0;")
    existing = {row[0] for row in connection.execute(f"describe {target}").fetchall()}
    for name, column_type, *_ in connection.execute(f"describe select * from {relation}").fetchall():
        if name not in existing:
            context.log.info(f"{target}: adding column {name} {column_type} (earlier partitions read null)")
            connection.execute(f'alter table {target} add column "{name}" {column_type}')


def _insert_by_name(context: dg.OutputContext, table_slice: TableSlice, relation: str, connection) -> None:
    """Insert the rows of `relation` (SQL: a registered frame, `read_parquet(...)`) BY NAME into the slice's table
    (`_evolve_table` first: in the partition's transaction only when the IO manager has not done it already)."""
    _evolve_table(context, table_slice, relation, connection)
    connection.execute(f"insert into {table_slice.schema}.{table_slice.table} by name select * from {relation}")


class ByNameDuckDBPolarsTypeHandler(DuckDBPolarsTypeHandler):
    """Inserts BY NAME (the stock handler inserts by position) and creates the table even for an empty
    frame (`_insert_by_name`)."""

    @staticmethod
    @contextlib.contextmanager
    def relation(obj: pl.DataFrame, connection) -> Iterator[str]:
        """The frame as a relation the SQL can name."""
        connection.register("obj_arrow", obj.to_arrow())
        try:
            yield "obj_arrow"
        finally:
            connection.unregister("obj_arrow")

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection):
        with self.relation(obj, connection) as relation:
            _insert_by_name(context, table_slice, relation, connection)
        context.add_output_metadata(table_metadata(obj.height, obj.schema, table_slice.table))


class StagedTableTypeHandler(DbTypeHandler[StagedTable]):
    """A `StagedTable` output (storage/staged.py): DuckDB reads its Parquet parts straight into the partition, inside
    the partition's transaction (the rows never sit in this process's memory as one frame); then the parts are
    deleted. Downstream assets read the table as polars frames (the polars handler) or by SQL."""

    @staticmethod
    @contextlib.contextmanager
    def relation(obj: StagedTable, connection) -> Iterator[str]:
        try:
            yield f"read_parquet({obj.parquet_list_sql()})"
        except BaseException:  # the write will not happen: its parts go, as after a failed insert
            obj.discard()
            raise

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: StagedTable, connection):
        try:
            _insert_by_name(context, table_slice, f"read_parquet({obj.parquet_list_sql()})", connection)
        finally:
            obj.discard()
        context.add_output_metadata(table_metadata(obj.rows, obj.schema, table_slice.table))

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> StagedTable:
        raise dg.DagsterInvariantViolationError(
            f"{table_slice.table} is written from staged parts; read it as a polars DataFrame or by SQL"
        )

    @property
    def supported_types(self):
        return [StagedTable]


class TransactionalDuckDbClient(DuckDbClient):
    """dagster-duckdb's client, with each partition write in one transaction: the stock client deletes the
    partition and inserts the new rows as separate autocommitted statements, so a reader could find the week
    missing or half-written, and a run killed or failing between them would lose the last good rows. Here the
    delete, any schema change and the insert commit together or not at all (DuckDB rolls back what was not
    committed, also after a crash)."""

    @staticmethod
    def delete_table_slice(context: dg.OutputContext, table_slice: TableSlice, connection) -> None:
        # The stock method swallows the error of a missing table, but inside a transaction a failed statement
        # aborts the transaction: ask first.
        if connection.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [table_slice.schema, table_slice.table],
        ).fetchone()[0]:
            DuckDbClient.delete_table_slice(context, table_slice, connection)

    @staticmethod
    @contextlib.contextmanager
    def connect(context, table_slice):
        started = time.monotonic()
        with DuckDbClient.connect(context, table_slice) as connection:  # retries while another process writes
            if (waited := time.monotonic() - started) > SLOW_OPEN_REPORT_SECONDS:
                # the stock client retries a held lock without saying so: a slow open is either that or a busy
                # machine (a large file opened beside other steps), and the message says both
                LOGGER.warning(
                    f"took {waited:.1f} s to open the warehouse for {table_slice.table} (another process held its"
                    " lock, or the machine is busy)"
                )
            connection.begin()
            try:
                yield connection
            except BaseException:
                connection.rollback()
                connection.close()  # the stock client closes only on success: a failed write would hold the file
                raise
            connection.commit()


class EvolvingDbIOManager(DbIOManager):
    """dagster's DbIOManager, with the table's new columns added in a transaction of their own before the
    partition is replaced: DuckDB refuses to commit a transaction that deleted a table's rows and then altered
    it ("another transaction has altered this table"), so a release adding a column could not re-run a stored
    week. Adding the column first is harmless if the write then fails: earlier weeks read it as null."""

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        handler = self._resolve_handler(type(obj)) if obj is not None else None
        if hasattr(handler, "relation"):
            table_slice = self._get_table_slice(context, context)
            with (
                self._db_client.connect(context, table_slice) as connection,
                handler.relation(obj, connection) as relation,
            ):
                _evolve_table(context, table_slice, relation, connection)
        super().handle_output(context, obj)


class WarehouseIOManager(DuckDBPolarsIOManager):
    """dagster-duckdb's polars IO manager with the by-name handler, staged tables, and one transaction per
    partition write."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [ByNameDuckDBPolarsTypeHandler(), StagedTableTypeHandler()]

    def create_io_manager(self, context) -> DbIOManager:
        # DuckDB cannot create the folder, and the stock manager retries a failed open silently.
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        return EvolvingDbIOManager(
            db_client=TransactionalDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="WarehouseIOManager",
        )
