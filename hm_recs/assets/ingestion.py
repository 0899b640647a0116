"""Raw ingestion: the source's files for week W, as text, with lineage (file, row) and checksums."""

import datetime as dt

import dagster as dg
import polars as pl

from hm_recs.assets.common import measured, preview
from hm_recs.core.schema import TABLE_COLUMNS
from hm_recs.core.source import SourceError, read_raw, resolve
from hm_recs.partitions import partition_week, weekly_partitions
from hm_recs.resources import RawSource
from hm_recs.storage.reads import partition_rows
from hm_recs.storage.warehouse import PARTITIONED, Warehouse


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
            description=(
                f"{chosen.name}: no transactions dated in week {week}..{week + dt.timedelta(days=6)} [rule:"
                " week_has_rows]"
            ),
            metadata={"file": location.describe(chosen.name), "rule": "week_has_rows"},
        )
    metadata = {
        "source_file": location.describe(chosen.name),
        "checksum": checksum,
        "history_file": chosen.history,
        "rows": frame.height,
        "preview": preview(frame.drop("source_file")),
    }
    # provenance of the stored week: which source, and which file at which checksum (one warehouse, one shop)
    return (
        frame.with_columns(
            pl.lit(source.identity()).alias("source_uri"),
            pl.lit(checksum).alias("source_sha256"),
            pl.lit(week).alias("week"),
        ),
        metadata,
    )


def stored_deliveries(warehouse: Warehouse, weeks: tuple[dt.date, dt.date] | None = None) -> pl.DataFrame:
    """Per stored week of raw transactions: the source it was ingested from, the file and its checksum (weeks
    ingested before provenance was recorded have nulls). `weeks`: only those between the two (inclusive)."""
    if not warehouse.exists("raw_transactions"):
        return pl.DataFrame(
            schema={"week": pl.Date, "source_uri": pl.String, "source_file": pl.String, "source_sha256": pl.String}
        )
    columns = set(warehouse.query(f"select * from {warehouse.table('raw_transactions')} limit 0").columns)
    provenance = (
        "any_value(source_uri) as source_uri, any_value(source_sha256) as source_sha256"
        if "source_uri" in columns
        else "null::varchar as source_uri, null::varchar as source_sha256"
    )
    where, params = ("where week between ? and ?", list(weeks)) if weeks else ("", [])
    return warehouse.query(
        f"select week, {provenance}, any_value(source_file) as source_file "
        f"from {warehouse.table('raw_transactions')} {where} group by week order by week",
        params,
    )


def foreign_weeks(deliveries: pl.DataFrame, source: str) -> pl.DataFrame:
    """The stored weeks that came from another source than `source`."""
    return deliveries.filter(pl.col("source_uri").is_not_null() & (pl.col("source_uri") != source))


def one_shop_message(warehouse: Warehouse, foreign: pl.DataFrame, source: str) -> str:
    """One line: which warehouse holds whose weeks, what this run reads, and the two ways on."""
    stored = ", ".join(sorted(set(foreign["source_uri"])))
    return (
        f"warehouse {warehouse.describe()} holds {foreign.height} week(s)"
        f" ({foreign['week'].min()}..{foreign['week'].max()}) ingested from {stored}, and this run reads {source}: for"
        " another shop use another warehouse (--warehouse); if it is the same shop's new delivery, say so"
        " (--new-delivery, RawSource.new_delivery) and its stored weeks are re-ingested from it"
    )


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
        description=(
            f"The source's {table} file{' (a snapshot as of week W)' if snapshot else ' rows of week W'}, "
            "all columns as text, with source_file and source_row."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                "source_readable",
                asset=name,
                blocking=True,
                description="file present and readable, H&M columns, stored rows = rows read",
            )
        ],
    )
    def _raw(context: dg.AssetExecutionContext, raw_source: RawSource, warehouse: Warehouse):
        week = partition_week(context)
        if table == "transactions" and not raw_source.new_delivery:  # one warehouse, one shop: never a silent mix
            foreign = foreign_weeks(stored_deliveries(warehouse).filter(pl.col("week") != week), raw_source.identity())
            if foreign.height:
                raise dg.Failure(
                    description=one_shop_message(warehouse, foreign, raw_source.identity()),
                    metadata={"rule": "one_shop"},
                )
        with measured(context, name) as figures:
            frame, metadata = ingest(raw_source, table, week)
        yield dg.Output(frame, metadata={**metadata, **figures})
        stored = partition_rows(warehouse, name, week, "count(*) as n")["n"][0]
        expected_columns = list(TABLE_COLUMNS[table])
        yield dg.AssetCheckResult(
            check_name="source_readable",
            passed=bool(stored == frame.height and frame.columns[: len(expected_columns)] == expected_columns),
            metadata={
                "rows_read": frame.height,
                "rows_stored": int(stored),
                "checksum": metadata["checksum"],
                "source_file": metadata["source_file"],
            },
        )

    return _raw


raw_articles = raw_asset("articles")
raw_customers = raw_asset("customers")
raw_transactions = raw_asset("transactions")
