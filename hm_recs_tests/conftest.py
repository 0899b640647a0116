"""Shared fixtures: small synthetic sources and pipelines on temporary warehouses."""

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

# Runs of the CLI driver go to a throw-away Dagster instance, never the developer's .hm_recs/.
os.environ["DAGSTER_HOME"] = tempfile.mkdtemp(prefix="hm_recs_dagster_home_")

from hm_recs.definitions import all_assets  # noqa: E402
from hm_recs.resources import default_resources  # noqa: E402
from hm_recs.synthetic import SyntheticConfig, generate, write  # noqa: E402
from hm_recs_tests.support import free_port  # noqa: E402  (the S3 fixtures bind loopback ports)

SMALL = SyntheticConfig(customers=2000, weeks=12, seed=11, purchase_rate=1.2)
WEEKS = [dt.date(2020, 7, 1) + dt.timedelta(weeks=i) for i in range(12)]  # last_day 2020-09-22
HISTORY_WEEKS = 9
"""Weeks ingested before a full-graph week: the sequence model needs about this much history to beat
popularity on the held-out week (docs/models.md), and its gate rightly blocks the week otherwise."""
WEEK = WEEKS[HISTORY_WEEKS]
"""The first week the tests build in full (features, models, recommendations)."""
REAL_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "hm_real_sample"


@pytest.fixture(scope="session")
def small_data():
    return generate(SMALL)


@pytest.fixture(scope="session")
def small_source(small_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small_source")
    write(small_data, out, "csv")
    return out


@pytest.fixture
def source_copy(small_source, tmp_path) -> Path:
    """A private, editable copy of the small source."""
    target = tmp_path / "source"
    shutil.copytree(small_source, target)
    return target


def materialize_week(week: dt.date, resources: dict, selection=None, instance=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        all_assets,
        partition_key=week.isoformat(),
        resources=resources,
        selection=selection,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def resources_for(source: Path | str, tmp: Path, **kw) -> dict:
    return default_resources(
        source=str(source),
        warehouse=str(tmp / "warehouse.duckdb"),
        artefacts=str(tmp / "artefacts"),
        exports=str(tmp / "exports"),
        **kw,
    )


def read_table(resources: dict, sql: str) -> pl.DataFrame:
    with duckdb.connect(resources["warehouse"].path, read_only=True) as c:
        return c.execute(sql).pl()


INGESTION = dg.AssetSelection.groups("ingestion", "validation")


@pytest.fixture
def s3_endpoint(monkeypatch):
    """moto's S3 server on loopback (real HTTP), with the environment boto3 and pyarrow read. Its state lives as
    long as the test process (every server shares moto's in-process backend): give each test buckets of its own."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def history_template(small_source, tmp_path_factory) -> Path:
    """A warehouse with the HISTORY_WEEKS weeks before WEEK ingested from `small_source`, built once."""
    tmp = tmp_path_factory.mktemp("history_template")
    resources = resources_for(small_source, tmp)
    instance = dg.DagsterInstance.ephemeral()
    for week in WEEKS[:HISTORY_WEEKS]:
        result = materialize_week(week, resources, INGESTION, instance)
        assert result.success, [e.event_specific_data.error.message for e in result.get_step_failure_events()]
    return tmp / "warehouse.duckdb"


@pytest.fixture(scope="session")
def with_history(history_template):
    """resources over `source` whose warehouse starts as a copy of the ingested history (weeks before WEEK). The
    tests' sources are copies of the small source (edited, or moved to S3): the same shop's new delivery."""

    def make(source: Path | str, tmp: Path, **kw) -> dict:
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copy(history_template, tmp / "warehouse.duckdb")
        return resources_for(source, tmp, **{"new_delivery": True, **kw})

    return make


WITHOUT_MODELS = dg.AssetSelection.all() - dg.AssetSelection.groups("models", "segment_models", "ranking").downstream()
"""For tests of a single week without history: the model gates rightly fail with nothing to learn from (so
the ranker's `recommendations` and what reads them are left out too)."""
