"""The operators' path, for real: `dagster dev` (webserver + daemon) on a free loopback port, runs launched and
a backfill started through the webserver's GraphQL API, the warehouse read back afterwards."""

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from hm_recs_tests.conftest import WEEK

REPO = Path(__file__).resolve().parents[1]
LOCATION = "hm_recs"

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
    ... on EventConnection { events { __typename ... on AssetCheckEvaluationEvent { evaluation { checkName success } } } }
  }
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dagster_dev(small_source, history_template, tmp_path_factory):
    """`dagster dev` on the repository's workspace, over a copy of the ingested history; its own process group,
    ended as a whole (the daemon and code server outlive a plain kill of the parent)."""
    tmp = tmp_path_factory.mktemp("ui")
    shutil.copy(history_template, tmp / "warehouse.duckdb")
    (tmp / "home").mkdir()
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp / "home"), "HM_RECS_SOURCE": str(small_source),
           "HM_RECS_WAREHOUSE": str(tmp / "warehouse.duckdb"), "HM_RECS_ARTEFACTS": str(tmp / "artefacts"),
           "HM_RECS_EXPORTS": str(tmp / "exports"), "HM_RECS_HOME": str(tmp / "hm_recs")}
    log = open(tmp / "dagster_dev.log", "w")
    started = time.perf_counter()
    process = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                                "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=30)
    try:
        deadline = time.time() + 180
        while True:
            try:
                client._execute("{ version }")
                break
            except (DagsterGraphQLClientError, Exception):
                if time.time() > deadline or process.poll() is not None:
                    raise RuntimeError(f"dagster dev did not come up: {(tmp / 'dagster_dev.log').read_text()[-3000:]}")
                time.sleep(1)
        yield client, tmp, time.perf_counter() - started
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def wait_for_run(client: DagsterGraphQLClient, run_id: str, timeout: float = 600) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(2)
    raise TimeoutError(f"run {run_id} still running after {timeout} s")


def test_weekly_job_launched_through_graphql_succeeds_with_every_check(dagster_dev):
    client, tmp, startup = dagster_dev
    launched = time.perf_counter()
    run_id = client.submit_job_execution("weekly_job", repository_location_name=LOCATION,
                                         tags={"dagster/partition": WEEK.isoformat()})
    assert wait_for_run(client, run_id) == "SUCCESS", (tmp / "dagster_dev.log").read_text()[-3000:]
    seconds = time.perf_counter() - launched
    events = client._execute(CHECKS, {"runId": run_id})["logsForRun"]["events"]
    checks = [e["evaluation"] for e in events if e["__typename"] == "AssetCheckEvaluationEvent"]
    assert len(checks) >= 20 and all(c["success"] for c in checks), [c for c in checks if not c["success"]]
    target = WEEK + dt.timedelta(weeks=1)
    with duckdb.connect(str(tmp / "warehouse.duckdb"), read_only=True) as c:
        rows, customers = c.execute("select count(*), count(distinct customer_id) from hm.recommendations where week = ?",
                                    [target]).fetchone()
    assert rows == 12 * customers > 0
    (tmp / "launch_to_success_seconds.txt").write_text(f"{seconds:.1f} (dagster dev up in {startup:.1f} s)\n")
    print(f"GraphQL-launched weekly_job for {WEEK}: launch to success {seconds:.1f} s; dagster dev up in {startup:.1f} s")


def test_three_week_backfill_through_graphql_materialises_every_partition(dagster_dev):
    """A backfill of the ingestion, validation and feature assets over three weeks, run by the daemon."""
    client, tmp, _ = dagster_dev
    weeks = [(WEEK + dt.timedelta(weeks=i)).isoformat() for i in (1, 2)] + [(WEEK - dt.timedelta(weeks=9)).isoformat()]
    assets = ["raw_articles", "raw_customers", "raw_transactions", "articles", "customers", "transactions",
              "quarantine_articles", "quarantine_customers", "quarantine_transactions", "customer_features", "article_features"]
    answer = client._execute(BACKFILL, {"params": {"partitionNames": weeks, "assetSelection": [{"path": [a]} for a in assets]}})
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
