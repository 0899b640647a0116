"""The operators' path, for real: `dagster dev` (webserver + daemon) on a free loopback port, runs launched and
a backfill started through the webserver's GraphQL API, the warehouse read back afterwards."""

import datetime as dt
import shutil
import time

import duckdb
import pytest

from hm_recs_tests.conftest import WEEK
from hm_recs_tests.support import launch_to_success, running_dagster_dev

BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey }
  }
}"""
BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status partitionStatuses { results { partitionName runStatus } } }
    ... on PythonError { message }
  }
}"""
CHECKS = """
query($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run { status assetCheckSelection { name } }
  }
  logsForRun(runId: $runId, limit: 5000) {
    ... on EventConnection {
      events { __typename ... on AssetCheckEvaluationEvent { evaluation { checkName success } } }
    }
  }
}"""


@pytest.fixture(scope="module")
def dagster_dev(small_source, history_template, tmp_path_factory):
    """`dagster dev` over a copy of the ingested history (`support.running_dagster_dev`)."""
    tmp = tmp_path_factory.mktemp("ui")
    shutil.copy(history_template, tmp / "warehouse.duckdb")
    with running_dagster_dev(tmp, small_source) as (client, startup):
        yield client, tmp, startup


def test_weekly_job_launched_through_graphql_succeeds_with_every_check(dagster_dev):
    client, tmp, startup = dagster_dev
    run_id, status, seconds = launch_to_success(client, WEEK)
    assert status == "SUCCESS", (tmp / "dagster_dev.log").read_text()[-3000:]
    events = client._execute(CHECKS, {"runId": run_id})["logsForRun"]["events"]
    checks = [e["evaluation"] for e in events if e["__typename"] == "AssetCheckEvaluationEvent"]
    assert len(checks) >= 20 and all(c["success"] for c in checks), [c for c in checks if not c["success"]]
    target = WEEK + dt.timedelta(weeks=1)
    with duckdb.connect(str(tmp / "warehouse.duckdb"), read_only=True) as c:
        rows, customers = c.execute(
            "select count(*), count(distinct customer_id) from hm.recommendations where week = ?", [target]
        ).fetchone()
    assert rows == 12 * customers > 0
    (tmp / "launch_to_success_seconds.txt").write_text(f"{seconds:.1f} (dagster dev up in {startup:.1f} s)\n")
    print(
        f"GraphQL-launched weekly_job for {WEEK}: launch to success {seconds:.1f} s; dagster dev up in {startup:.1f} s"
    )


def test_backfill_through_graphql_materialises_every_partition(dagster_dev):
    """A backfill of the ingestion, validation and feature assets over two weeks (a new one and an earlier one
    built again), run by the daemon."""
    client, tmp, _ = dagster_dev
    weeks = [(WEEK + dt.timedelta(weeks=1)).isoformat(), (WEEK - dt.timedelta(weeks=9)).isoformat()]
    assets = [
        "raw_articles",
        "raw_customers",
        "raw_transactions",
        "articles",
        "customers",
        "transactions",
        "quarantine_articles",
        "quarantine_customers",
        "quarantine_transactions",
        "customer_features",
        "article_features",
    ]
    answer = client._execute(
        BACKFILL, {"params": {"partitionNames": weeks, "assetSelection": [{"path": [a]} for a in assets]}}
    )
    launched = answer["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline = time.time() + 600
    while time.time() < deadline:
        status = client._execute(BACKFILL_STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"]
        if status.get("status") in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"):
            break
        time.sleep(3)
    assert status["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), status
    with duckdb.connect(str(tmp / "warehouse.duckdb"), read_only=True) as c:
        for table in ("transactions", "customer_features", "article_features"):
            stored = {str(r[0]) for r in c.execute(f"select distinct week from hm.{table}").fetchall()}
            assert set(weeks) <= stored, (table, sorted(set(weeks) - stored))
