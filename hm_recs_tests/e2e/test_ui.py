"""The operators' path, for real: `dagster dev` (webserver + daemon) on a free loopback port, a run launched
through the webserver's GraphQL API, the warehouse read back afterwards (the backfill: `test_ui_backfill.py`)."""

import datetime as dt

import duckdb

from hm_recs_tests.conftest import WEEK
from hm_recs_tests.support import launch_to_success

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
