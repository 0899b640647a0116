"""A backfill started through the webserver's GraphQL API of `dagster dev` and run by its daemon, in a module of
its own (its own `dagster dev`) so that it runs beside the GraphQL-launched weekly run of `test_ui.py`."""

import datetime as dt
import time

import dagster as dg
import duckdb

from hm_recs_tests.conftest import WEEK

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
ASSETS = [
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


def materialised_at(instance: dg.DagsterInstance, asset: str, week: str) -> float:
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[week]), limit=1
    ).records
    return record.timestamp


def test_backfill_through_graphql_materialises_every_partition_in_history_order(dagster_dev):
    """A backfill of the ingestion, validation and feature assets over two weeks named per asset (a new one,
    WEEK, and an earlier one built again), run by the daemon. WEEK's features read the earlier week's
    transactions (the declared history dependency), so the daemon builds them only after those are rebuilt."""
    client, tmp, _ = dagster_dev
    new, earlier = WEEK.isoformat(), (WEEK - dt.timedelta(weeks=9)).isoformat()
    # the weeks named, per asset: `partitionNames` over an asset selection would also target every partition
    # downstream of the rebuilt weeks through the history dependency (the features of the 25 weeks after each)
    weeks = {"ranges": [{"start": week, "end": week} for week in (new, earlier)]}
    targets = [{"assetKey": {"path": [asset]}, "partitions": weeks} for asset in ASSETS]
    answer = client._execute(BACKFILL, {"params": {"partitionsByAssets": targets}})
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
            assert {new, earlier} <= stored, (table, sorted({new, earlier} - stored))
    with dg.DagsterInstance.from_config(str(tmp / "home")) as instance:
        built = instance.fetch_materializations(dg.AssetKey("customer_features"), limit=100).records
        assert {r.partition_key for r in built} == {new, earlier}  # nothing beyond the weeks named
        rebuilt = materialised_at(instance, "transactions", earlier)
        assert materialised_at(instance, "customer_features", new) > rebuilt
        assert materialised_at(instance, "article_features", new) > rebuilt
