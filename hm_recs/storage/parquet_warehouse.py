"""The warehouse as Parquet objects on S3 (or in a folder): the configuration for several pods at once.

A DuckDB file admits one process at a time and lives on one volume; here every partition of every table is
its own object, so steps in different pods write different weeks side by side and share nothing but the bucket.
Layout under the root URI (`s3://bucket/prefix` or a folder):

    tables/<asset>/week=<YYYY-MM-DD>/data.parquet   one object per weekly partition (the partition key)
    tables/<asset>/data.parquet                     an unpartitioned asset

- Writes (`ParquetWarehouseIOManager`): a partition is one Parquet object written with a single PUT (locally a
  temporary file and a rename), so a reader finds the old week or the new one, never half of it, and a re-run
  replaces the week without duplicates. Empty frames are written too, with their schema. The object is named by
  the partition key, whatever the `week` column holds: recommendation tables (`TARGET_WEEK_PARTITIONED`) carry
  week W+1 in partition W, as in the DuckDB file.
- Reads (`ParquetWarehouse`): `query(sql)` opens an in-memory DuckDB where schema `hm` has a view per table the
  SQL names, over a pyarrow dataset of the table's objects (one LIST per table). DuckDB pushes projections and
  filters (`week = ?`, `week between ? and ?`) into the pyarrow scan, which skips the row groups, and so the
  objects, that the footers' statistics rule out; footers are read once per object version (ETag) and process.
  DuckDB's httpfs extension is not used: it would be downloaded at run time.
- Credentials: the AWS default chain (environment, IRSA web identity, instance role) in boto3 and pyarrow;
  nothing here reads, stores or logs them.

A partition replaced while a query reads it can fail that query (the footer it read belongs to the previous
version); the weekly job writes a week before anything reads it, so this needs a second writer of the same week.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import duckdb
import polars as pl

from hm_recs.storage.location import Entry, Location, is_missing
from hm_recs.storage.staged import StagedTable
from hm_recs.storage.warehouse import WAREHOUSE_SCHEMA, Warehouse, registered, table_metadata

TABLES = "tables"
OBJECT = "data.parquet"
FOOTER_THREADS = 8
"""Footers of new objects are read in parallel (one ranged GET each on S3)."""
FRAGMENT_CACHE_SIZE = 20_000
_DIMENSION_NAMES = {"WEEKLY": "week", "DAILY": "day", "HOURLY": "hour", "MONTHLY": "month"}


# ---------------------------------------------------------------------------------------------------- layout
def _dimension_name(partitions_def: dg.PartitionsDefinition) -> str:
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return _DIMENSION_NAMES.get(getattr(partitions_def.schedule_type, "value", ""), "partition")
    return "partition"


def partition_folder(partitions_def: dg.PartitionsDefinition | None, key: str | dg.MultiPartitionKey | None) -> str:
    """The folder of one partition under its table: `week=2020-07-01`; for multi-partitions one level per
    dimension (`region=eu/week=2020-07-01`); "" for an unpartitioned asset."""
    if partitions_def is None or key is None:
        return ""
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        by_dimension = (
            key if isinstance(key, dg.MultiPartitionKey) else partitions_def.get_partition_key_from_str(key)
        ).keys_by_dimension
        return "/".join(f"{dim}={by_dimension[dim]}" for dim in sorted(by_dimension))
    return f"{_dimension_name(partitions_def)}={key}"


def object_name(table: str, folder: str = "") -> str:
    """The object of a partition (`folder` from `partition_folder`), relative to the warehouse root."""
    return f"{TABLES}/{table}/{folder}/{OBJECT}" if folder else f"{TABLES}/{table}/{OBJECT}"


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, statistics=True)  # min/max per row group: what lets readers skip other weeks
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------- writing
def _split_by_partition(context: dg.OutputContext, frame: pl.DataFrame) -> list[tuple[str, pl.DataFrame]]:
    """(folder, rows) per partition of the output. One partition: the whole frame (as the DuckDB IO manager, it
    trusts the asset to emit that partition's rows). Several (a single-run backfill): the rows are assigned by
    the asset's `partition_expr`, evaluated by DuckDB exactly as dagster-duckdb's WHERE clause would; a key
    without rows gets an empty object (the run replaced it with nothing), a row of no key is an error."""
    if not context.has_asset_partitions:
        return [("", frame)]
    partitions_def = context.asset_partitions_def
    keys = context.asset_partition_keys
    if len(keys) == 1:
        return [(partition_folder(partitions_def, keys[0]), frame)]
    expression = (context.definition_metadata or {}).get("partition_expr")
    if isinstance(partitions_def, dg.MultiPartitionsDefinition) or not isinstance(expression, str):
        raise dg.DagsterInvariantViolationError(
            f"{context.asset_key.to_user_string()}: one output for {len(keys)} partitions needs a single-dimension "
            "partitioning and a string 'partition_expr' to split its rows; write one partition per run instead"
        )
    numbered = frame.with_row_index("__hm_row")
    claimed = pl.Series("__hm_row", [], dtype=pl.UInt32)
    parts = []
    with duckdb.connect() as connection:
        connection.register("arrow_frame", numbered.to_arrow())
        for key in keys:
            if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
                window = partitions_def.time_window_for_partition_key(key)
                start, end = (t.strftime("%Y-%m-%d %H:%M:%S") for t in (window.start, window.end))
                condition = f"({expression}) >= '{start}' and ({expression}) < '{end}'"
            else:
                condition = f"({expression}) = '{key.replace(chr(39), chr(39) * 2)}'"
            rows = connection.execute(f"select __hm_row from arrow_frame where {condition}").pl()["__hm_row"]
            claimed = pl.concat([claimed, rows.cast(pl.UInt32)])
            parts.append(
                (
                    partition_folder(partitions_def, key),
                    numbered.filter(pl.col("__hm_row").is_in(rows.implode())).drop("__hm_row"),
                )
            )
    if claimed.n_unique() != frame.height:
        raise dg.DagsterInvariantViolationError(
            f"{context.asset_key.to_user_string()}: {frame.height - claimed.n_unique()} row(s) fall in none of the"
            f" run's partitions {keys[0]}..{keys[-1]} by partition_expr {expression!r}; nothing written"
        )
    return parts


class ParquetWarehouseIOManager(dg.ConfigurableIOManager):
    """Polars frames as Parquet objects under `uri` (`s3://bucket/prefix` or a folder), one object per partition
    (layout in the module docstring), through `Location` (boto3 with standard retries). Inputs read the partitions
    the downstream step asks for; a partition that was never written is an error naming its object."""

    uri: str
    endpoint_url: str | None = None

    def location(self) -> Location:
        return Location(self.uri, self.endpoint_url)

    @staticmethod
    def _table(context: dg.OutputContext | dg.InputContext) -> str:
        return context.asset_key.path[-1] if context.has_asset_key else context.name

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | StagedTable) -> None:
        if isinstance(obj, StagedTable):
            self._write_staged(context, obj)
            return
        if isinstance(obj, pl.LazyFrame):
            obj = obj.collect()
        if not isinstance(obj, pl.DataFrame):
            raise dg.DagsterInvariantViolationError(
                f"ParquetWarehouseIOManager stores polars DataFrames; output {context.name} is {type(obj).__name__}. "
                "An asset that stores nothing returns a MaterializeResult (or annotates -> None)."
            )
        table = self._table(context)
        location = self.location()
        written = [
            location.write_bytes(object_name(table, folder), _parquet_bytes(part))  # one PUT each
            for folder, part in _split_by_partition(context, obj)
        ]
        context.add_output_metadata(
            {
                **table_metadata(obj.height, obj.schema, table),
                "dagster/table_name": f"{WAREHOUSE_SCHEMA}.{table}",
                "object": written[0] if len(written) == 1 else dg.MetadataValue.json(written),
            }
        )

    def _write_staged(self, context: dg.OutputContext, staged: StagedTable) -> None:
        """A `StagedTable`'s parts streamed into the partition's one object (a local file, then one upload), the
        parts deleted: the rows never sit in memory as one frame."""
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()}: a staged table is written one partition per run"
            )
        folder = (
            partition_folder(context.asset_partitions_def, context.asset_partition_keys[0])
            if context.has_asset_partitions
            else ""
        )
        try:
            local = staged.folder / OBJECT
            staged.scan().sink_parquet(local, statistics=True)
            written = self.location().write_file(object_name(self._table(context), folder), local)
        finally:
            staged.discard()
        context.add_output_metadata(
            {
                **table_metadata(staged.rows, staged.schema, self._table(context)),
                "dagster/table_name": f"{WAREHOUSE_SCHEMA}.{self._table(context)}",
                "object": written,
            }
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame | pl.LazyFrame:
        upstream = context.upstream_output
        table = context.asset_key.path[-1] if context.has_asset_key else upstream.name
        if context.has_asset_partitions:
            folders = [
                (key, partition_folder(context.asset_partitions_def, key)) for key in context.asset_partition_keys
            ]
        else:
            folders = [(None, "")]
        location = self.location()
        frames = []
        for key, folder in folders:
            name = object_name(table, folder)
            try:
                data = location.read_bytes(name)
            except Exception as exc:
                if not is_missing(exc):
                    raise
                partition = f"partition {key} of " if key is not None else ""
                raise FileNotFoundError(
                    f"{location.describe(name)} does not exist: {partition}{table} was never materialized in this "
                    f"warehouse ({self.uri}); materialize it before {context.op_def.name} reads it"
                ) from None
            frames.append(pl.read_parquet(data))
        frame = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
        columns = (context.definition_metadata or {}).get("columns")
        if columns:
            frame = frame.select(columns)
        return frame.lazy() if context.dagster_type.typing_type is pl.LazyFrame else frame


# ---------------------------------------------------------------------------------------------------- reading
_FRAGMENTS: dict[tuple, object] = {}
_FRAGMENTS_LOCK = threading.Lock()


def _fragments(location: Location, entries: Sequence[Entry]) -> list:
    """A pyarrow Parquet fragment per object, with its footer (schema, row-group statistics) read once per object
    version and process: later queries prune with the cached statistics and fetch only the row groups they keep."""
    import pyarrow.dataset as ds

    filesystem, root = location.arrow_filesystem()

    def cache_key(entry: Entry) -> tuple:
        return location.uri, location.endpoint_url, entry.name, entry.signature

    with _FRAGMENTS_LOCK:
        found = {cache_key(e): _FRAGMENTS[cache_key(e)] for e in entries if cache_key(e) in _FRAGMENTS}
    new = [e for e in entries if cache_key(e) not in found]

    def load(entry: Entry):
        fragment = ds.ParquetFileFormat().make_fragment(f"{root}/{entry.name}", filesystem, file_size=entry.size)
        fragment.ensure_complete_metadata()
        return fragment

    if new:
        with ThreadPoolExecutor(min(FOOTER_THREADS, len(new))) as pool:
            loaded = dict(zip(map(cache_key, new), pool.map(load, new), strict=True))
        found.update(loaded)
        with _FRAGMENTS_LOCK:
            if len(_FRAGMENTS) + len(loaded) > FRAGMENT_CACHE_SIZE:
                _FRAGMENTS.clear()
            _FRAGMENTS.update(loaded)
    return [found[cache_key(e)] for e in entries]


class ParquetWarehouse(Warehouse):
    """`Warehouse` over the Parquet objects `ParquetWarehouseIOManager` writes under `uri`: each query runs in an
    in-memory DuckDB where schema `hm` has a view per table the SQL names (module docstring: how reads work)."""

    uri: str
    endpoint_url: str | None = None

    def describe(self) -> str:
        return self.uri

    def location(self) -> Location:
        return Location(self.uri, self.endpoint_url)

    def objects(self, name: str) -> list[Entry]:
        """The partition objects of table `name` (one LIST; names relative to the warehouse root)."""
        return sorted(
            (e for e in self.location().listing(f"{TABLES}/{name}") if e.name.rsplit("/", 1)[-1] == OBJECT),
            key=lambda e: e.name,
        )

    def exists(self, name: str) -> bool:
        return bool(self.objects(name))

    def tables(self) -> list[str]:
        """Every table with at least one object."""
        return sorted(
            {
                e.name.split("/")[1]
                for e in self.location().listing(TABLES)
                if e.name.count("/") >= 2 and e.name.rsplit("/", 1)[-1] == OBJECT
            }
        )

    def dataset(self, name: str):
        """A pyarrow dataset over table `name`'s objects (None when it has none); columns are the union of the
        partitions' columns (a column added by a release reads null in earlier weeks, as in the DuckDB file)."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        entries = self.objects(name)
        if not entries:
            return None
        location = self.location()
        fragments = _fragments(location, entries)
        try:
            schema = pa.unify_schemas([f.physical_schema for f in fragments], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise TypeError(
                f"{self.table(name)}: the partitions under {location.describe(f'{TABLES}/{name}')} "
                f"have incompatible column types: {exc}"
            ) from exc
        filesystem, _ = location.arrow_filesystem()
        return ds.FileSystemDataset(fragments, schema, ds.ParquetFileFormat(), filesystem)

    def referenced_tables(self, sql: str) -> set[str]:
        """The tables of schema `hm` that `sql` names (`hm.transactions`, `"hm"."transactions"`)."""
        schema = re.escape(self.schema_name)
        pattern = rf'(?<![\w."])"?{schema}"?\s*\.\s*"?([A-Za-z_][A-Za-z0-9_]*)"?'
        return set(re.findall(pattern, sql, flags=re.IGNORECASE))

    @contextlib.contextmanager
    def _connection(self, names: Sequence[str] | set[str]) -> Iterator[duckdb.DuckDBPyConnection]:
        names = sorted(names)
        if len(names) > 1:
            with ThreadPoolExecutor(min(FOOTER_THREADS, len(names))) as pool:
                datasets = dict(zip(names, pool.map(self.dataset, names), strict=True))
        else:
            datasets = {name: self.dataset(name) for name in names}
        connection = duckdb.connect()  # in memory: nothing on disk, nothing shared
        try:
            connection.execute(f'create schema "{self.schema_name}"')
            for name, dataset in datasets.items():
                if dataset is None:
                    continue  # as in the DuckDB file: the query fails naming the missing table
                connection.register(f"__parquet_{name}", dataset)
                connection.execute(f'create view "{self.schema_name}"."{name}" as select * from "__parquet_{name}"')
            yield connection
        finally:
            connection.close()

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB connection with a view per table (every table: prefer `query`, which opens only
        the tables its SQL names)."""
        with self._connection(self.tables()) as connection:
            yield connection

    def query(
        self, sql: str, params: Sequence | None = None, frames: dict[str, pl.DataFrame] | None = None
    ) -> pl.DataFrame:
        with self._connection(self.referenced_tables(sql)) as connection:
            return registered(connection, frames).execute(sql, params or []).pl()
