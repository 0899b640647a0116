"""The production warehouse: Parquet objects on S3 (moto's server on loopback, real HTTP) or in a folder, written
by ParquetWarehouseIOManager and queried by ParquetWarehouse in an in-memory DuckDB."""

import datetime as dt
import shutil
from urllib.parse import unquote

import boto3
import dagster as dg
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recs.core.schema import PROVENANCE_COLUMNS
from hm_recs.definitions import all_assets
from hm_recs.partitions import weekly_partitions
from hm_recs.resources import RawSource, default_resources, production_resources
from hm_recs.storage.duckdb_warehouse import DuckDBWarehouse
from hm_recs.storage.parquet_warehouse import ParquetWarehouse, ParquetWarehouseIOManager
from hm_recs.storage.warehouse import PARTITIONED, TARGET_WEEK_PARTITIONED, Warehouse
from hm_recs_tests.conftest import INGESTION, WEEKS, materialize_week, resources_for
from hm_recs_tests.support import Throttle

W1, W2, W3 = (WEEKS[0], WEEKS[1], WEEKS[2])


def lists_asset(rows: dict[dt.date, int], offset: int = 0):
    """A weekly asset with `rows[week]` rows (ids offset by `offset`, so a re-run is told apart)."""

    @dg.asset(name="lists", partitions_def=weekly_partitions, metadata=PARTITIONED)
    def lists(context: dg.AssetExecutionContext) -> pl.DataFrame:
        week = dt.date.fromisoformat(context.partition_key)
        n = rows[week]
        return pl.DataFrame(
            {"customer_id": [f"c{offset + i}" for i in range(n)], "rank": list(range(n)), "week": [week] * n},
            schema={"customer_id": pl.String, "rank": pl.Int64, "week": pl.Date},
        )

    return lists


@dg.asset(partitions_def=weekly_partitions, metadata=TARGET_WEEK_PARTITIONED)
def next_week_lists(lists: pl.DataFrame) -> pl.DataFrame:
    """Reads `lists` through the IO manager; its rows carry the week after the partition, as recommendations do."""
    return lists.with_columns((pl.col("week") + dt.timedelta(weeks=1)).alias("week"))


def run(assets, week: dt.date, resources: dict, selection=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets, partition_key=week.isoformat(), resources=resources, selection=selection, raise_on_error=False
    )


@pytest.fixture(params=["s3", "folder"])
def root(request, tmp_path) -> tuple[str, str | None]:
    """The warehouse root: a prefix in a bucket of moto's server, or a local folder."""
    if request.param == "folder":
        return str(tmp_path / "warehouse"), None
    endpoint = request.getfixturevalue("s3_endpoint")
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="hm-warehouse-unit")
    return "s3://hm-warehouse-unit/prod", endpoint


def objects(uri: str, endpoint: str | None) -> set[str]:
    from hm_recs.storage.location import Location

    return {e.name for e in Location(uri, endpoint).listing()}


def test_one_object_per_partition_rerun_replaces_queries_filter(root):
    uri, endpoint = root
    resources = {
        "io_manager": ParquetWarehouseIOManager(uri=uri, endpoint_url=endpoint),
        "warehouse": ParquetWarehouse(uri=uri, endpoint_url=endpoint),
    }
    warehouse: Warehouse = resources["warehouse"]
    assert not warehouse.exists("lists")
    first = run([lists_asset({W1: 3, W2: 2, W3: 0})], W1, resources)
    assert first.success
    assert run([lists_asset({W1: 3, W2: 2, W3: 0})], W2, resources).success
    assert run([lists_asset({W1: 3, W2: 2, W3: 0})], W3, resources).success  # an empty week: written, with its schema
    (materialization,) = first.asset_materializations_for_node("lists")
    assert materialization.metadata["dagster/row_count"].value == 3
    assert [c.name for c in materialization.metadata["dagster/column_schema"].value.columns] == [
        "customer_id",
        "rank",
        "week",
    ]
    assert materialization.metadata["object"].value.endswith(f"tables/lists/week={W1}/data.parquet")

    rerun = run([lists_asset({W1: 1, W2: 2, W3: 0}, offset=100)], W1, resources)  # week 1 again, other rows
    assert rerun.success
    assert objects(uri, endpoint) == {f"tables/lists/week={w}/data.parquet" for w in (W1, W2, W3)}
    counts = warehouse.query("select week, count(*) as n from hm.lists group by week order by week")
    assert counts.rows() == [(W1, 1), (W2, 2)]  # no duplicates; week 2 intact; week 3 has no rows
    assert warehouse.query("select customer_id from hm.lists where week = ?", [W1])["customer_id"].to_list() == ["c100"]
    only = warehouse.query("select * from hm.lists where week = ?", [W2])
    assert only.columns == ["customer_id", "rank", "week"] and set(only["week"]) == {W2} and only.height == 2
    empty = warehouse.query("select * from hm.lists where week = ?", [W3])
    assert empty.height == 0 and empty.schema == {"customer_id": pl.String, "rank": pl.Int64, "week": pl.Date}

    # inputs: the partition asked for, through the IO manager; the target-week shape is stored under its key
    both = [lists_asset({W1: 1, W2: 2, W3: 0}), next_week_lists]
    assert run(both, W2, resources, selection=[next_week_lists]).success
    assert f"tables/next_week_lists/week={W2}/data.parquet" in objects(uri, endpoint)
    assert warehouse.query("select distinct week from hm.next_week_lists")["week"].to_list() == [
        W2 + dt.timedelta(weeks=1)
    ]

    missing = run(both, WEEKS[5], resources, selection=[next_week_lists])  # `lists` was never built for it
    assert not missing.success
    (failure,) = missing.get_step_failure_events()
    error = failure.event_specific_data.error
    message = error.message + (error.cause.message if error.cause else "")  # the IO manager's error is the cause
    assert (
        f"tables/lists/week={WEEKS[5]}/data.parquet does not exist" in message
        and "partition 2020-08-05 of lists" in message
    )

    with warehouse.connect() as connection:  # every table as a view of schema hm
        assert connection.execute("select count(*) from hm.next_week_lists").fetchone()[0] == 2


def test_a_query_reads_only_the_objects_its_filter_keeps(s3_endpoint):
    """Footers are read once per object version; afterwards `week = ?` fetches that week's object and no other
    (the other weeks are ruled out by their cached statistics). A re-written week is seen at once (new ETag)."""
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="hm-warehouse-pruning")
    proxy = Throttle(s3_endpoint, failures=0)  # a recording proxy in front of moto
    uri = "s3://hm-warehouse-pruning/prod"
    resources = {
        "io_manager": ParquetWarehouseIOManager(uri=uri, endpoint_url=s3_endpoint),
        "warehouse": ParquetWarehouse(uri=uri, endpoint_url=proxy.url),
    }  # the reads through the proxy
    rows = {w: 5 for w in WEEKS[:4]}
    for week in WEEKS[:4]:
        assert run([lists_asset(rows)], week, resources).success
    warehouse = resources["warehouse"]
    assert warehouse.query("select count(*) as n from hm.lists")["n"][0] == 20  # reads every footer once
    proxy.requests.clear()
    assert warehouse.query("select * from hm.lists where week = ?", [WEEKS[2]]).height == 5
    gets = [unquote(path) for method, path in proxy.requests if method == "GET" and "list-type" not in path]
    assert gets and all(f"week={WEEKS[2]}" in path for path in gets), proxy.requests

    assert run([lists_asset({**rows, WEEKS[2]: 2})], WEEKS[2], resources).success
    assert warehouse.query("select count(*) as n from hm.lists where week = ?", [WEEKS[2]])["n"][0] == 2


def test_default_resources_select_parquet_for_an_s3_warehouse(tmp_path):
    resources = default_resources(
        source=str(tmp_path),
        warehouse="s3://bucket/warehouse",
        artefacts=str(tmp_path / "a"),
        exports=str(tmp_path / "e"),
    )
    assert (
        isinstance(resources["warehouse"], ParquetWarehouse) and resources["warehouse"].uri == "s3://bucket/warehouse"
    )
    assert isinstance(resources["io_manager"], ParquetWarehouseIOManager)
    local = default_resources(source=str(tmp_path), warehouse=str(tmp_path / "w.duckdb"))
    assert isinstance(local["warehouse"], DuckDBWarehouse) and isinstance(local["warehouse"], Warehouse)


PIPELINE = (
    INGESTION
    | dg.AssetSelection.groups("features", "segments")
    | dg.AssetSelection.assets(
        "baseline_recommendations", "baseline_validation", "ranking_inputs", "ranking_week_inputs"
    )
)
"""Everything up to the baseline recommendations (a target-week table) and the ranking inputs (nested lists),
no model training."""


def test_pipeline_on_s3_matches_the_duckdb_warehouse(s3_endpoint, small_source, tmp_path):
    """Two weeks of ingestion, validation, features, segments and baselines with every resource on S3 (raw drops
    too) give the same tables, row for row, as the DuckDB file; each table is one object per partition."""
    from hm_recs.runner import Pipeline

    # the shop's files plus image vectors (a list column on both warehouses)
    source = tmp_path / "source"
    shutil.copytree(small_source, source)
    articles = pl.read_csv(source / "articles.csv", columns=["article_id"], schema_overrides={"article_id": pl.String})
    pl.DataFrame(
        {
            "article_id": articles["article_id"],
            "image": np.random.default_rng(0).normal(size=(articles.height, 4)).astype(np.float32).tolist(),
        }
    ).write_parquet(source / "article_images.parquet")
    small_source = source
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for bucket in ("hm-prod-raw", "hm-prod-artefacts", "hm-prod-exports"):
        s3.create_bucket(Bucket=bucket)
    for path in small_source.iterdir():
        s3.upload_file(str(path), "hm-prod-raw", f"drops/{path.name}")
    resources = production_resources(
        "s3://hm-prod-artefacts/warehouse",
        "s3://hm-prod-raw/drops",
        "s3://hm-prod-artefacts/hm_recs",
        "s3://hm-prod-exports/recommendations",
        endpoint_url=s3_endpoint,
    )
    resources["raw_source"] = RawSource(
        uri="s3://hm-prod-raw/drops", endpoint_url=s3_endpoint, cache_dir=str(tmp_path / "cache")
    )
    local = resources_for(small_source, tmp_path / "duckdb")
    weeks = WEEKS[:2]
    instance = dg.DagsterInstance.ephemeral()
    checks: dict[str, dict] = {"s3": {}, "duckdb": {}}
    for week in weeks:
        for name, chosen in (("s3", resources), ("duckdb", local)):
            result = materialize_week(week, chosen, PIPELINE, instance)
            assert result.success, [e.event_specific_data.error.message for e in result.get_step_failure_events()]
            checks[name].update(
                {
                    (week, c.asset_key.to_user_string(), c.check_name): c.passed
                    for c in result.get_asset_check_evaluations()
                }
            )
    assert checks["s3"] == checks["duckdb"] and checks["s3"]

    tables = sorted(k.to_user_string() for k in PIPELINE.resolve(all_assets))
    stored = {e.name for e in resources["warehouse"].location().listing("tables")}
    assert stored == {f"tables/{t}/week={w}/data.parquet" for t in tables for w in weeks}
    for table in tables:
        on_s3 = resources["warehouse"].query(f"select * from hm.{table}")
        in_duckdb = local["warehouse"].query(f"select * from hm.{table}")
        assert on_s3.height > 0 or table.startswith("quarantine_"), table
        assert sorted(on_s3.columns) == sorted(in_duckdb.columns), table
        # every column but the provenance, which names the source each run read (S3 here, a folder there)
        columns = sorted(set(in_duckdb.columns) - set(PROVENANCE_COLUMNS))
        if "source_uri" in on_s3.columns:
            assert set(on_s3["source_uri"]) == {"s3://hm-prod-raw/drops"}, table
        try:
            assert_frame_equal(
                on_s3.select(columns).sort(columns, nulls_last=True),
                in_duckdb.select(columns).sort(columns, nulls_last=True),
            )
        except AssertionError as exc:
            raise AssertionError(f"{table}: {exc}") from exc
    recs = resources["warehouse"].query("select distinct week from hm.baseline_recommendations order by week")
    assert recs["week"].to_list() == [w + dt.timedelta(weeks=1) for w in weeks]  # stored under W, rows for W+1

    # the CLI's driver over the same warehouse: HM_RECS_WAREHOUSE=s3://... selects it (endpoint from AWS_ENDPOINT_URL)
    pipeline = Pipeline("s3://hm-prod-raw/drops", warehouse="s3://hm-prod-artefacts/warehouse")
    assert isinstance(pipeline.warehouse, ParquetWarehouse)
    assert pipeline.stored_weeks() == set(weeks)
    rows = pipeline.stage_rows(weeks[1])
    assert (
        rows["transactions"]
        == local["warehouse"].query("select count(*) n from hm.transactions where week = ?", [weeks[1]])["n"][0]
    )
    assert rows["baseline_recommendations"] > 0


def ranged_asset(extra_week: dt.date | None = None):
    """A target-week asset run over a range of weeks at once (a single-run backfill); no rows for W2."""

    @dg.asset(
        name="ranged",
        partitions_def=weekly_partitions,
        metadata=TARGET_WEEK_PARTITIONED,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def ranged(context: dg.AssetExecutionContext) -> pl.DataFrame:
        weeks = [dt.date.fromisoformat(k) for k in context.partition_keys if k != W2.isoformat()]
        weeks += [extra_week] if extra_week else []
        return pl.DataFrame({"week": [w + dt.timedelta(weeks=1) for w in weeks for _ in range(2)]})

    return ranged


@pytest.mark.filterwarnings("ignore:Parameter `backfill_policy`")
def test_a_run_over_several_weeks_is_split_by_partition_expr(tmp_path):
    """No asset writes several partitions in one run today; if one did, each week still gets its own object."""
    uri = str(tmp_path / "warehouse")
    tags = {"dagster/asset_partition_range_start": W1.isoformat(), "dagster/asset_partition_range_end": W3.isoformat()}

    def execute(asset) -> dg.ExecuteInProcessResult:
        defs = dg.Definitions(
            assets=[asset],
            jobs=[dg.define_asset_job("backfill", selection=[asset])],
            resources={"io_manager": ParquetWarehouseIOManager(uri=uri)},
        )
        return defs.resolve_job_def("backfill").execute_in_process(tags=tags, raise_on_error=False)

    assert execute(ranged_asset()).success
    assert objects(uri, None) == {f"tables/ranged/week={w}/data.parquet" for w in (W1, W2, W3)}
    counts = ParquetWarehouse(uri=uri).query(
        "select week - interval 7 day as built, count(*) as n from hm.ranged group by all order by 1"
    )
    assert [(d.date(), n) for d, n in counts.rows()] == [(W1, 2), (W3, 2)]  # W2 replaced by an empty object

    stray = execute(ranged_asset(extra_week=WEEKS[6]))
    assert not stray.success
    assert (
        "2 row(s) fall in none of the run's partitions"
        in stray.get_step_failure_events()[0].event_specific_data.error.message
    )
