"""Structured logs: with HM_RECS_LOG_FORMAT=json every console line of a real run is one JSON object that names
the run, partition, step and event; a failure names its error. Text stays the default."""

import json

import pytest

from hm_recs.definitions import INGESTION_ASSETS, build_definitions
from hm_recs.observability import LOG_FORMAT_ENV, run_loggers
from hm_recs_tests.conftest import WEEKS, resources_for


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines if line.startswith("{")]
    assert parsed and len(parsed) >= len(lines) - 5, lines[:10]  # (a stray warning from a library may be plain text)
    return parsed


def run_ingestion(source, tmp_path):
    defs = build_definitions(resources_for(source, tmp_path), log_format="json")
    job = defs.resolve_job_def("weekly_job")
    selection = INGESTION_ASSETS.resolve(defs.resolve_asset_graph())
    return job.execute_in_process(
        partition_key=WEEKS[0].isoformat(), asset_selection=list(selection), raise_on_error=False
    )


def test_a_run_logs_one_json_object_per_line(small_source, tmp_path, capfd):
    result = run_ingestion(small_source, tmp_path)
    assert result.success
    lines = json_lines(capfd.readouterr().err)
    assert {line["run_id"] for line in lines} == {result.run_id}
    assert all(
        line["partition"] == WEEKS[0].isoformat() and line["level"] and line["time"].endswith("+00:00")
        for line in lines
    )
    materialized = {line["asset"] for line in lines if line.get("event") == "ASSET_MATERIALIZATION"}
    assert {"raw_transactions", "transactions", "customers", "articles"} <= materialized
    steps = {line["step"] for line in lines if line.get("event") == "STEP_SUCCESS"}
    assert "validate_transactions" in steps or "transactions" in " ".join(steps)
    # what the assets themselves logged, with their step
    assert any(line.get("step") and "event" not in line for line in lines)
    # no metadata payloads (previews, plots) in the log
    assert max(len(json.dumps(line)) for line in lines if "stack" not in line) < 4000


def test_a_failure_names_the_step_and_its_error(source_copy, tmp_path, capfd):
    (source_copy / "customers.csv").write_text("not,the,customers,header\n1,2,3,4\n")
    result = run_ingestion(source_copy, tmp_path)
    assert not result.success
    failures = [line for line in json_lines(capfd.readouterr().err) if line.get("event") == "STEP_FAILURE"]
    assert failures and all(line["step"] and line["level"] == "ERROR" for line in failures)
    assert any("customers" in line["error"] for line in failures)


def test_text_stays_the_default(monkeypatch):
    monkeypatch.delenv(LOG_FORMAT_ENV, raising=False)
    assert run_loggers() is None
    monkeypatch.setenv(LOG_FORMAT_ENV, "JSON")
    assert set(run_loggers()) == {"console"}
    with pytest.raises(ValueError, match=LOG_FORMAT_ENV):
        run_loggers("xml")
