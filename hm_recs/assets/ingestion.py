"""Raw ingestion: the source's files for week W, as text, with lineage (file, row) and checksums."""


import datetime as dt

import dagster as dg
import polars as pl

from hm_recs.assets.common import PARTITIONED, measured, partition_rows, preview
from hm_recs.core.schema import TABLE_COLUMNS
from hm_recs.core.source import SourceError, read_raw, resolve
from hm_recs.partitions import partition_week, weekly_partitions
from hm_recs.resources import RawSource, Warehouse


def ingest(source: RawSource, table: str, week: dt.date) -> tuple[pl.DataFrame, dict]:
    """Read one table of the source for `week`; a `SourceError` becomes a Failure naming file and rule."""
    location = source.location()
    try:
        names = location.names()
        chosen = resolve(table, names, week if table == "transactions" else None, source.format)
        path, checksum = location.local_path(chosen.name)
        frame = read_raw(path, chosen, week=week, allow_extra_columns=source.allow_extra_columns)
    except SourceError as exc:
        raise dg.Failure(
            description=str(exc),
            metadata={"file": location.describe(exc.file), "rule": exc.rule, "error": exc.message},
        ) from exc
    except FileNotFoundError as exc:
        raise dg.Failure(description=f"{source.uri}: {exc}", metadata={"rule": "source_present"}) from exc
    if frame.height == 0:
        raise dg.Failure(
            description=f"{chosen.name}: no transactions dated in week {week}..{week + dt.timedelta(days=6)} [rule: week_has_rows]",
            metadata={"file": location.describe(chosen.name), "rule": "week_has_rows"},
        )
    metadata = {
        "source_file": location.describe(chosen.name),
        "checksum": checksum,
        "history_file": chosen.history,
        "rows": frame.height,
        "preview": preview(frame.drop("source_file")),
    }
    return frame.with_columns(pl.lit(week).alias("week")), metadata


def raw_asset(table: str):
    """The raw asset of `table` with its blocking check: stored rows match what was read, schema as expected."""
    name = f"raw_{table}"
    snapshot = table != "transactions"

    @dg.asset(
        name=name,
        partitions_def=weekly_partitions,
        group_name="ingestion",
        kinds={"duckdb", "polars"},
        metadata=PARTITIONED,
        description=(f"The source's {table} file{' (a snapshot as of week W)' if snapshot else ' rows of week W'}, "
                     "all columns as text, with source_file and source_row."),
        check_specs=[dg.AssetCheckSpec("source_readable", asset=name, blocking=True,
                                       description="file present and readable, H&M columns, stored rows = rows read")],
    )
    def _raw(context: dg.AssetExecutionContext, raw_source: RawSource, warehouse: Warehouse):
        week = partition_week(context)
        with measured(context, name) as figures:
            frame, metadata = ingest(raw_source, table, week)
        yield dg.Output(frame, metadata={**metadata, **figures})
        stored = partition_rows(warehouse, name, week, "count(*) as n")["n"][0]
        expected_columns = list(TABLE_COLUMNS[table])
        yield dg.AssetCheckResult(
            check_name="source_readable",
            passed=bool(stored == frame.height and frame.columns[: len(expected_columns)] == expected_columns),
            metadata={"rows_read": frame.height, "rows_stored": int(stored), "checksum": metadata["checksum"],
                      "source_file": metadata["source_file"]},
        )

    return _raw


raw_articles = raw_asset("articles")
raw_customers = raw_asset("customers")
raw_transactions = raw_asset("transactions")
