"""`ranking_inputs` in a real Dagster run on a DuckDB warehouse: one row per customer, its check, and what its
readers get back for a chunk of customers: the feature matrix `week_inputs` builds in memory, bit for bit."""

import dagster as dg
import pytest

from hm_recs.assets.ranking_inputs import INPUTS, StoredInputs
from hm_recs.core.candidates import build_candidates
from hm_recs.core.ranking_features import InputWindows, ranking_features, week_inputs
from hm_recs.core.weeks import shift_weeks
from hm_recs.definitions import all_assets
from hm_recs.storage.reads import catalogue_tables
from hm_recs_tests.conftest import HISTORY_WEEKS, WEEKS
from hm_recs_tests.support import assert_run_ok

WEEK = WEEKS[HISTORY_WEEKS - 1]  # the last ingested week of the history template


@pytest.fixture(scope="module")
def stored(small_source, with_history, tmp_path_factory):
    resources = with_history(small_source, tmp_path_factory.mktemp("ranking_inputs"))
    config = {"ops": {"ranking_inputs": {"config": {"chunk_customers": 700}}}}  # three chunks of the 2,000
    result = dg.materialize(
        all_assets,
        partition_key=WEEK.isoformat(),
        resources=resources,
        selection=dg.AssetSelection.assets(*INPUTS),
        instance=dg.DagsterInstance.ephemeral(),
        run_config=config,
        raise_on_error=False,
    )
    return resources, result


def test_one_row_per_customer_and_the_check_passes(stored, small_data):
    resources, result = stored
    assert_run_ok(result)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert all(c.passed for c in checks.values()) and len(checks) == 2
    check = checks["every_customer_finite_inputs"]
    assert check.metadata["customers_without_a_row"].value == 0
    assert check.metadata["customer_rows"].value == small_data.customers.height
    week = checks["every_article_finite_inputs"].metadata
    assert week["article_rows"].value == week["catalogue_articles"].value == small_data.articles.height
    metadata = {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    customer = metadata["ranking_inputs"]
    assert customer["rows/customers"].value == small_data.customers.height
    assert customer["rows/bought_article"].value > 0 and customer["peak_rss_mb"].value > 0
    assert "| customer_id |" in customer["preview"].value
    warehouse = resources["warehouse"]
    counts = warehouse.query("select week, count(*) n, count(distinct customer_id) d from hm.ranking_inputs group by 1")
    assert counts.rows() == [(WEEK, small_data.customers.height, small_data.customers.height)]
    assert warehouse.query("select count(*) n from hm.ranking_week_inputs")["n"][0] == 1
    for table in INPUTS:  # the UI's Columns panel describes every column
        schema = metadata[table]["dagster/column_schema"].value
        assert [c.name for c in schema.columns if not c.description] == [], table


def test_a_chunk_read_back_gives_the_in_memory_feature_matrix(stored):
    resources, _ = stored
    warehouse = resources["warehouse"]
    windows = resources["pipeline_settings"].input_windows()
    customers, articles, transactions = catalogue_tables(
        warehouse, WEEK, max(windows.feature_weeks, windows.segment_weeks)
    )
    chunk = customers["customer_id"].sort().slice(500, 400)
    candidates = build_candidates(customers, transactions, articles, WEEK, customer_ids=chunk)

    inputs, origin = StoredInputs.load(warehouse, WEEK, windows)
    assert inputs is not None and origin.startswith("stored")
    from_store = ranking_features(inputs.of(chunk), candidates)
    in_memory = ranking_features(week_inputs(customers, articles, transactions, WEEK, windows), candidates)
    assert from_store.height == candidates.height > 0
    assert from_store.equals(in_memory)
    assert inputs.of(chunk.head(0)).customers.height == 0  # no customers asked for: no rows, same columns


def test_absent_weeks_and_other_windows_are_built_by_the_reader(stored):
    resources, _ = stored
    warehouse = resources["warehouse"]
    absent, why = StoredInputs.load(warehouse, shift_weeks(WEEK, -1), InputWindows())
    assert absent is None and "no ranking_week_inputs stored" in why
    other, why = StoredInputs.load(warehouse, WEEK, InputWindows(feature_weeks=4))
    assert other is None and "feature_weeks=4" in why
