"""The raw-source sensor and the run-failure report, evaluated as Dagster evaluates them."""

import http.server
import json
import threading

import dagster as dg
import pytest

from hm_recs.definitions import defs
from hm_recs.resources import RawSource
from hm_recs.sensors import ALERT_WEBHOOK_ENV, failure_summary
from hm_recs_tests.conftest import WEEK, materialize_week, resources_for

HEADER = "t_dat,customer_id,article_id,price,sales_channel_id\n"


def evaluate(sensor_name: str, source, cursor=None):
    context = dg.build_sensor_context(cursor=cursor, resources={"raw_source": RawSource(uri=str(source))})
    result = defs.resolve_sensor_def(sensor_name)(context)
    return result, context.cursor


def test_raw_week_sensor_requests_new_and_replaced_weeks_once(tmp_path):
    weekly = tmp_path / "transactions"
    weekly.mkdir()
    (tmp_path / "articles.csv").write_text("article_id\n")  # other files are not weeks
    for week in ("2020-09-02", "2020-09-09"):
        (weekly / f"week={week}.csv").write_text(HEADER)
    (weekly / "week=2999-01-02.csv").write_text(HEADER)  # a week that has not closed: not requested yet
    requests, cursor = evaluate("raw_week_sensor", tmp_path)
    assert [r.partition_key for r in requests] == ["2020-09-02", "2020-09-09"]
    assert all(r.tags["hm_recs/trigger"] == "raw_week_sensor" for r in requests)
    again, cursor = evaluate("raw_week_sensor", tmp_path, cursor)
    assert isinstance(again, dg.SkipReason)
    (weekly / "week=2020-09-09.csv").write_text(HEADER + "2020-09-09,c,a,0.1,2\n")  # a corrected drop
    replaced, cursor = evaluate("raw_week_sensor", tmp_path, cursor)
    assert [r.partition_key for r in replaced] == ["2020-09-09"] and replaced[0].run_key != requests[1].run_key
    assert set(json.loads(cursor)) == {"2020-09-02", "2020-09-09"}


class Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def webhook(monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(ALERT_WEBHOOK_ENV, f"http://127.0.0.1:{server.server_port}/hook")
    Hook.received.clear()
    yield Hook.received
    server.shutdown()


def test_run_failure_report_names_the_stage_and_the_reason(source_copy, tmp_path, webhook):
    (source_copy / "customers.csv").unlink()
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_week(WEEK, resources_for(source_copy, tmp_path), instance=instance)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    summary = failure_summary(run, instance)
    assert summary["partition"] == WEEK.isoformat()
    assert "customers.csv: file not found in the source" in summary["failed_steps"]["raw_customers"]
    failure = result.get_run_failure_event()
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_report", dagster_event=failure, dagster_instance=instance, dagster_run=run
    ).for_run_failure()
    defs.resolve_sensor_def("run_failure_report")(context)
    (message,) = webhook
    assert f"week {WEEK}" in message["text"] and "raw_customers: " in message["text"]
    assert "file not found" in message["text"]


def test_sensors_are_off_until_turned_on():
    for name in ("raw_week_sensor", "run_failure_report"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.STOPPED
