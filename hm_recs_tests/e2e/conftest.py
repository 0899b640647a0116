"""Fixtures of the end-to-end tests."""

import shutil

import pytest

from hm_recs_tests.support import running_dagster_dev


@pytest.fixture(scope="module")
def dagster_dev(small_source, history_template, tmp_path_factory):
    """`dagster dev` over a copy of the ingested history (`support.running_dagster_dev`)."""
    tmp = tmp_path_factory.mktemp("ui")
    shutil.copy(history_template, tmp / "warehouse.duckdb")
    with running_dagster_dev(tmp, small_source) as (client, startup):
        yield client, tmp, startup
