"""The code location as Dagster tools load it: definitions, job, schedule, workspace, CLI."""

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

from hm_recs.definitions import defs
from hm_recs_tests.conftest import WEEK
from hm_recs_tests.support import REPO


def test_definitions_resolve_job_schedule_and_every_asset_has_a_blocking_check():
    job = defs.resolve_job_def("weekly_job")
    assert job.partitions_def.get_partition_keys()[0] == "2018-09-19"  # a Wednesday
    schedule = defs.resolve_schedule_def("weekly_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    graph = defs.resolve_asset_graph()
    checked = {key.asset_key for key in graph.asset_check_keys if graph.get_check_spec(key).blocking}
    tables = {
        k
        for k in graph.get_all_asset_keys()
        if not k.to_user_string().startswith(("quarantine_", "baseline_validation"))
    }
    assert tables <= checked, tables - checked


def test_schedule_requests_the_week_that_just_closed():
    schedule = defs.resolve_schedule_def("weekly_schedule")
    assert schedule.cron_schedule == "0 6 * * 3"  # Wednesdays 06:00
    tick = dt.datetime(2020, 9, 23, 6, 0, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2020-09-16"]


def test_workspace_and_cloud_files():
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == "hm_recs.definitions"
    cloud = yaml.safe_load((REPO / "dagster_cloud.yaml").read_text())
    assert cloud["locations"][0]["code_source"]["module_name"] == "hm_recs.definitions"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def hm_recs(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "hm-recs"), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_cli_synth_is_deterministic(tmp_path):
    for out in ("a", "b"):
        result = hm_recs(
            "synth",
            "--customers",
            "200",
            "--weeks",
            "3",
            "--out",
            str(tmp_path / out),
            "--format",
            "parquet",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
    for name in ("articles.parquet", "customers.parquet", "transactions_train.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_cli_backtest_report(small_source, with_history, tmp_path):
    with_history(small_source, tmp_path)  # the history weeks already in the warehouse: the CLI skips them
    scored = WEEK + dt.timedelta(weeks=1)  # WEEK itself is the warm-up week
    result = hm_recs(
        "backtest",
        "--source",
        str(small_source),
        "--weeks",
        str(scored),
        "--report",
        "report.json",
        "--warmup-weeks",
        "1",
        "--warehouse",
        str(tmp_path / "warehouse.duckdb"),
        "--artefacts",
        str(tmp_path / "art"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["weeks"]) == {str(scored)}
    assert report["warmup_weeks"] == 1 and f"warm-up week {WEEK}" in result.stdout
    # who served each scored week, with the ranker's gate figures; the ranker's own lists are scored every week
    for week, served in report["serving"].items():
        gate = served["ranker_gate"]
        assert served["served_by"] in {"ranker", "popularity", "trending", "repurchase"} and served["reason"]
        assert gate["best_baseline"] in gate["baseline_map_at_12"] and gate["validation_buyers"] > 0
        assert "ranker" in report["weeks"][week] and f"week {week}: served by {served['served_by']}" in result.stdout
    assert {"model", "popularity", "trending", "repurchase", "source/trending", "source/two_tower"} <= set(
        report["mean"]
    )
    for figures in report["mean"].values():
        assert {"map_at_12", "recall_at_12", "coverage", "novelty", "mean_price"} <= set(figures)
        assert 0 <= figures["map_at_12"] <= 1
    assert 0.5 <= report["mean"]["model"]["rank_coverage_auc"] <= 1  # Heinz et al.'s rank coverage, ranker
    stages = report["stages"]
    assert stages["rows"]["recommendations"] > 0 and stages["seconds"]["validate_transactions"] > 0
    assert stages["peak_rss_mb"]["customer_features"] > 0
    assert "model" in result.stdout and "report.json" in result.stdout


def test_cli_run_reports_a_clear_failure(tmp_path):
    (tmp_path / "src").mkdir()
    result = hm_recs(
        "run",
        "--source",
        str(tmp_path / "src"),
        "--week",
        "2020-09-16",
        "--warehouse",
        str(tmp_path / "warehouse.duckdb"),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "file not found in the source" in result.stderr


def test_warehouse_tables_gain_new_columns_in_place(tmp_path):
    """A release that adds a column to an asset (as `relevance_tier` was added to `recommendations`) writes into
    the existing table: the column is added, earlier partitions read null, nothing is rewritten."""
    import duckdb
    import polars as pl

    from hm_recs.storage.duckdb_warehouse import WarehouseIOManager
    from hm_recs.storage.warehouse import WAREHOUSE_SCHEMA

    weeks = dg.StaticPartitionsDefinition(["2020-09-02", "2020-09-09"])
    io_manager = WarehouseIOManager(database=str(tmp_path / "w.duckdb"), schema=WAREHOUSE_SCHEMA)

    def release(columns: dict):
        @dg.asset(name="lists", partitions_def=weeks, metadata={"partition_expr": "week"})
        def lists(context: dg.AssetExecutionContext) -> pl.DataFrame:
            return pl.DataFrame({"week": [context.partition_key] * 2, **columns}).with_columns(
                pl.col("week").str.to_date()
            )

        return lists

    old = release({"customer_id": ["a", "b"]})
    new = release({"customer_id": ["a", "b"], "relevance_tier": ["high", "low"]})
    for week in ("2020-09-02", "2020-09-09"):
        assert dg.materialize([old], partition_key=week, resources={"io_manager": io_manager}).success
    # the new release re-runs a stored week: the column is added, then the week replaced (DuckDB refuses an
    # alter after the partition's delete in one transaction)
    assert dg.materialize([new], partition_key="2020-09-09", resources={"io_manager": io_manager}).success
    assert dg.materialize([new], partition_key="2020-09-09", resources={"io_manager": io_manager}).success  # re-run
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as c:
        table = c.execute(f"select * from {WAREHOUSE_SCHEMA}.lists order by week, customer_id").pl()
    assert table.columns == ["week", "customer_id", "relevance_tier"]
    assert table["relevance_tier"].to_list() == [None, None, "high", "low"]


def test_a_failed_partition_write_keeps_the_last_good_rows(tmp_path):
    """Replacing a week is one transaction: when the insert fails after the old rows were deleted, the old
    rows are still there (the stock IO manager autocommits the delete and would lose them)."""
    import duckdb
    import polars as pl

    from hm_recs.storage.duckdb_warehouse import WarehouseIOManager
    from hm_recs.storage.warehouse import WAREHOUSE_SCHEMA

    io_manager = WarehouseIOManager(database=str(tmp_path / "w.duckdb"), schema=WAREHOUSE_SCHEMA)
    weeks = dg.StaticPartitionsDefinition(["2020-09-02"])

    def release(rank_values: list):
        @dg.asset(name="lists", partitions_def=weeks, metadata={"partition_expr": "week"})
        def lists() -> pl.DataFrame:
            return pl.DataFrame({"week": [dt.date(2020, 9, 2)] * 2, "rank": rank_values})

        return lists

    assert dg.materialize([release([1, 2])], partition_key="2020-09-02", resources={"io_manager": io_manager}).success
    broken = dg.materialize(
        [release(["first", "second"])],
        partition_key="2020-09-02",  # text into an integer column
        resources={"io_manager": io_manager},
        raise_on_error=False,
    )
    assert not broken.success
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as c:
        assert c.execute(f"select rank from {WAREHOUSE_SCHEMA}.lists order by rank").fetchall() == [(1,), (2,)]


KILLED_WRITER = """
import sys, time, datetime as dt
import dagster as dg, polars as pl
from hm_recs.storage.warehouse import WAREHOUSE_SCHEMA
from hm_recs.storage.duckdb_warehouse import ByNameDuckDBPolarsTypeHandler, WarehouseIOManager

rows, hang = int(sys.argv[2]), sys.argv[3] == "hang"

class Handler(ByNameDuckDBPolarsTypeHandler):
    def handle_output(self, context, table_slice, obj, connection):
        if hang:  # the IO manager has deleted the week's old rows; the new ones are not inserted yet
            print("WRITTEN", flush=True)
            time.sleep(600)
        super().handle_output(context, table_slice, obj, connection)

class IOManager(WarehouseIOManager):
    @staticmethod
    def type_handlers():
        return [Handler()]

WEEK = dg.StaticPartitionsDefinition(["2020-09-02"])

@dg.asset(name="lists", partitions_def=WEEK, metadata={"partition_expr": "week"})
def lists() -> pl.DataFrame:
    return pl.DataFrame({"week": [dt.date(2020, 9, 2)] * rows, "rank": pl.int_range(rows, eager=True)})

io_manager = IOManager(database=sys.argv[1], schema=WAREHOUSE_SCHEMA)
assert dg.materialize([lists], partition_key="2020-09-02", resources={"io_manager": io_manager}).success
print("DONE", flush=True)
"""


def test_a_run_killed_while_writing_leaves_the_previous_week_then_reruns_cleanly(tmp_path):
    """SIGKILL while the IO manager replaces a week, between deleting the old rows and inserting the new ones:
    the file reopens with the previous week's rows (DuckDB discards the uncommitted transaction), and a re-run
    then writes the new week once, without duplicates. (The stock dagster-duckdb client autocommits the delete:
    the same kill left the week empty.)"""
    import os
    import signal

    import duckdb

    database = str(tmp_path / "w.duckdb")

    def write(rows: int, hang: bool = False) -> str:
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, database, str(rows), "hang" if hang else "-"],
            stdout=subprocess.PIPE,
            text=True,
        )
        if not hang:
            return child.communicate(timeout=300)[0]
        assert child.stdout.readline().strip() == "WRITTEN"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        return "killed"

    def rows() -> tuple[int, int]:
        with duckdb.connect(database, read_only=True) as c:
            return c.execute("select count(*), count(distinct rank) from hm.lists").fetchone()

    assert "DONE" in write(1_000)
    assert write(500_000, hang=True) == "killed"
    assert rows() == (1_000, 1_000)  # the previous complete week, nothing partial
    assert "DONE" in write(2_000)
    assert rows() == (2_000, 2_000)


def test_two_weeks_run_at_the_same_time_on_one_warehouse(small_source):
    """Two processes, two weeks, one DuckDB file, started together: both succeed (the writer that finds the file
    locked waits and retries). `benchmarks/concurrent_weeks.py` repeats this 20 times."""
    from hm_recs_tests.support import repetition

    result = repetition(str(small_source), ("2020-07-01", "2020-07-08"))
    assert result["success"], result["outcomes"]


def test_the_critical_path_is_never_starved_by_its_own_ancestors():
    """Steps carry `dagster/priority` (hm_recs/deploy.py) so that, with fewer slots than ready steps, the long
    two-tower chain starts first. That only works if nothing it waits for ranks lower: every ancestor of a
    prioritised step, ingestion and validation aside (everything waits for them), has at least its priority."""
    from hm_recs.definitions import all_assets

    priority, parents, group = {}, {}, {}
    for assets_def in all_assets:
        for key in assets_def.keys:
            name = key.to_user_string()
            priority[name] = int(assets_def.op.tags.get("dagster/priority", 0))
            parents[name] = {k.to_user_string() for k in assets_def.asset_deps[key]}
            group[name] = assets_def.group_names_by_key[key]

    def ancestors(name: str) -> set[str]:
        seen, stack = set(), list(parents.get(name, ()))
        while stack:
            parent = stack.pop()
            if parent not in seen:
                seen.add(parent)
                stack.extend(parents.get(parent, ()))
        return seen

    assert priority["two_tower_data"] > priority["sequence_model"]
    # the baselines are the champion recommendations waits for: never behind it
    assert priority["baseline_recommendations"] == priority["recommendations"] > 0
    starved = {
        (name, parent)
        for name, level in priority.items()
        if level > 0
        for parent in ancestors(name)
        if parent in priority and group[parent] not in ("ingestion", "validation") and priority[parent] < level
    }
    assert not starved, f"ancestors ranked below the step that waits for them: {sorted(starved)}"


def test_local_runs_hold_one_large_memory_step_at_a_time():
    """The step that builds the week's ranking inputs for every customer, their readers and the export never
    overlap under the local multiprocess executor, whatever else runs beside them; a run may still choose the
    in-process executor (the CLI, the benchmarks' smoke test)."""
    from hm_recs.definitions import all_assets
    from hm_recs.deploy import LARGE_MEMORY_TAG

    job = defs.resolve_job_def("weekly_job")
    run_config = job.get_run_config_for_partition_key(WEEK.isoformat())  # what the schedule and the UI launch
    executor = dg.validate_run_config(job, run_config)["execution"]["multi_or_in_process_executor"]
    ((key, value),) = LARGE_MEMORY_TAG.items()
    assert executor["multiprocess"]["tag_concurrency_limits"] == [{"key": key, "value": value, "limit": 1}]
    large = {k.to_user_string() for a in all_assets if a.op.tags.get(key) == value for k in a.keys}
    assert large == {
        "ranking_inputs",
        "ranking_week_inputs",
        "ranker_model",
        "recommendations",
        "evaluation_report",
        "recommendations_export",
    }
    in_process = dg.validate_run_config(job, {"execution": {"config": {"in_process": {}}}})
    assert "in_process" in in_process["execution"]["multi_or_in_process_executor"]
