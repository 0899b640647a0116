"""Staged tables (storage/staged.py): a partition written part by part, loaded whole by either warehouse's IO
manager."""

import datetime as dt

import boto3
import dagster as dg
import polars as pl
import pytest

from hm_recs.partitions import weekly_partitions
from hm_recs.storage.duckdb_warehouse import DuckDBWarehouse, WarehouseIOManager
from hm_recs.storage.parquet_warehouse import ParquetWarehouse, ParquetWarehouseIOManager
from hm_recs.storage.staged import StagedTable
from hm_recs.storage.warehouse import PARTITIONED
from hm_recs_tests.conftest import WEEKS

W1, W2 = WEEKS[0], WEEKS[1]
SCHEMA = {"customer_id": pl.String, "score": pl.Float32, "label": pl.Int8, "week": pl.Date}


def chunk(week: dt.date, start: int, n: int, label_null: bool = False) -> pl.DataFrame:
    frame = pl.DataFrame(
        {"customer_id": [f"c{start + i:05d}" for i in range(n)], "score": [float(i) for i in range(n)]},
        schema={"customer_id": pl.String, "score": pl.Float32},
    )
    label = pl.lit(None) if label_null else pl.lit(1, dtype=pl.Int8)  # a Null-typed column, as a serving set's label
    return frame.with_columns(label.alias("label"), pl.lit(week).alias("week"))


def staged_asset(chunks: dict[dt.date, list[int]], seen: list, fail_after_staging: bool = False):
    """A weekly asset writing `chunks[week]` chunks (sizes) as one staged table; `seen` collects the tables."""

    @dg.asset(name="candidates_like", partitions_def=weekly_partitions, metadata=PARTITIONED)
    def candidates_like(context: dg.AssetExecutionContext):
        week = dt.date.fromisoformat(context.partition_key)
        staged, start = StagedTable("candidates_like"), 0
        for i, n in enumerate(chunks[week]):
            staged.append(chunk(week, start, n, label_null=i % 2 == 1))
            start += n
        seen.append(staged)
        if fail_after_staging:
            staged.parts[-1].unlink()  # a part lost before the write: the load fails inside the partition's write
        return staged

    return candidates_like


@dg.asset(partitions_def=weekly_partitions, metadata=PARTITIONED)
def downstream(candidates_like: pl.DataFrame) -> pl.DataFrame:
    """Reads the staged asset's partition as an ordinary polars input."""
    return candidates_like.group_by("week").agg(pl.len().alias("n"), pl.col("label").null_count().alias("nulls"))


@pytest.fixture(params=["duckdb", "parquet_folder", "parquet_s3"])
def warehouse_resources(request, tmp_path) -> dict:
    if request.param == "duckdb":
        path = str(tmp_path / "w.duckdb")
        return {"io_manager": WarehouseIOManager(database=path, schema="hm"), "warehouse": DuckDBWarehouse(path=path)}
    if request.param == "parquet_folder":
        uri, endpoint = str(tmp_path / "warehouse"), None
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="hm-staged-unit")
        uri = "s3://hm-staged-unit/prod"
    return {
        "io_manager": ParquetWarehouseIOManager(uri=uri, endpoint_url=endpoint),
        "warehouse": ParquetWarehouse(uri=uri, endpoint_url=endpoint),
    }


def test_a_staged_partition_is_loaded_whole_replaced_on_rerun_and_read_downstream(warehouse_resources):
    seen: list[StagedTable] = []
    warehouse = warehouse_resources["warehouse"]

    def run(chunks, week, assets=None, **kwargs):
        return dg.materialize(
            assets or [staged_asset(chunks, seen, **kwargs)],
            partition_key=week.isoformat(),
            resources=warehouse_resources,
            raise_on_error=False,
        )

    first = run({W1: [3, 0, 4], W2: [2, 5]}, W1)
    assert first.success and run({W1: [3, 0, 4], W2: [2, 5]}, W2).success
    (materialization,) = first.asset_materializations_for_node("candidates_like")
    assert materialization.metadata["dagster/row_count"].value == 7
    assert [c.name for c in materialization.metadata["dagster/column_schema"].value.columns] == list(SCHEMA)
    assert all(not table.folder.exists() for table in seen)  # the parts are deleted once loaded
    stored = warehouse.query("select * from hm.candidates_like order by week, customer_id")
    assert dict(stored.schema) == SCHEMA
    assert stored.group_by("week").len().sort("week").rows() == [(W1, 7), (W2, 7)]
    assert stored.filter(pl.col("week") == W2)["label"].null_count() == 5  # the second chunk's nulls, cast to Int8

    assert run({W1: [1], W2: [2, 5]}, W1).success  # a re-run replaces the week: no duplicates, the other week intact
    assert warehouse.query("select week, count(*) as n from hm.candidates_like group by week order by week").rows() == [
        (W1, 1),
        (W2, 7),
    ]

    assets = [staged_asset({W1: [1], W2: [2, 5]}, seen), downstream]
    read = dg.materialize(assets, partition_key=W2.isoformat(), resources=warehouse_resources, selection=[downstream])
    assert read.output_for_node("downstream").rows() == [(W2, 7, 5)]

    broken = run({W1: [4, 4], W2: [2, 5]}, W1, fail_after_staging=True)  # the write fails: the last good week stays
    assert not broken.success
    assert warehouse.query("select count(*) as n from hm.candidates_like where week = ?", [W1])["n"][0] == 1
    assert not seen[-1].folder.exists()  # parts are cleaned up on failure too


def test_staged_parts_keep_the_first_schema_and_refuse_other_columns(tmp_path):
    staged = StagedTable("t", directory=tmp_path)
    staged.append(chunk(W1, 0, 2))
    staged.append(chunk(W1, 2, 3, label_null=True))  # Null-typed label: cast to Int8
    assert staged.rows == 5 and len(staged.parts) == 2
    assert dict(staged.scan().collect().schema) == SCHEMA
    with pytest.raises(ValueError, match="has columns"):
        staged.append(chunk(W1, 5, 1).drop("label"))
    assert staged.rows == 5
    staged.discard()
    assert not staged.folder.exists()
    with pytest.raises(ValueError, match="no parts"):
        StagedTable("empty", directory=tmp_path).scan()


def test_chunk_summaries_are_plain_counts_and_previews_detached():
    from hm_recs.assets.common import detached, tally

    chunk = pl.DataFrame(
        {
            "customer_id": [f"{'c' * 60}{i:04d}" for i in range(1000)],
            "source": ["two_tower|repurchase", "trending"] * 500,
            "rank": list(range(1000)),
        }
    )
    counts = tally(chunk, "source") + tally(chunk.head(10), "source")
    assert counts == {"two_tower|repurchase": 505, "trending": 505}
    assert all(type(k) is str and type(v) is int for k, v in counts.items())  # nothing keeps the chunk alive
    first = detached(chunk.head(5))
    assert first.equals(chunk.head(5)) and first.schema == chunk.schema
    assert _shares_memory(chunk.head(5), chunk) and not _shares_memory(first, chunk)
    # a large subset (what ranker_model keeps of each earlier week) too, every column type unchanged
    subset = (
        chunk.with_columns(pl.col("source").cast(pl.Categorical), pl.lit(None, pl.Float32).alias("score"))
        .sort("rank", descending=True)
        .filter(pl.col("rank") % 3 == 0)
    )
    kept = detached(subset)
    assert kept.equals(subset) and kept.schema == subset.schema and not _shares_memory(kept, chunk)


def _shares_memory(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    """Whether any Arrow buffer of `a` overlaps one of `b` (as exported, zero-copy)."""

    def spans(frame):
        return [
            (buf.address, buf.size)
            for column in frame.to_arrow().columns
            for chunk in column.chunks
            for buf in chunk.buffers()
            if buf is not None and buf.size
        ]

    return any(x < y + ys and y < x + xs for x, xs in spans(a) for y, ys in spans(b))
