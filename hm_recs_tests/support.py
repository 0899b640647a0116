"""What the tests share with the benchmarks that repeat them: a free loopback port, `dagster dev` started and
stopped as an operator would (`test_ui.py`, `benchmarks/ui_launch.py`), and two weekly runs at once on one DuckDB
file (`test_definitions.py`, `benchmarks/concurrent_weeks.py`). Benchmarks import this module; no test imports a
benchmark."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[1]
LOCATION = "hm_recs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_dagster_dev(folder: Path, source: Path, startup_timeout: float = 180) -> Iterator[tuple[object, float]]:
    """`dagster dev` on the repository's workspace over the warehouse `folder/warehouse.duckdb` and raw `source`
    (DAGSTER_HOME, artefacts and exports under `folder`); yields the GraphQL client and the seconds until it
    answered. Its own process group, ended as a whole (the daemon and code server outlive a plain kill of the
    parent); its output goes to `folder/dagster_dev.log`."""
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    (folder / "home").mkdir(exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(folder / "home"),
        "HM_RECS_SOURCE": str(source),
        "HM_RECS_WAREHOUSE": str(folder / "warehouse.duckdb"),
        "HM_RECS_ARTEFACTS": str(folder / "artefacts"),
        "HM_RECS_EXPORTS": str(folder / "exports"),
        "HM_RECS_HOME": str(folder / "hm_recs"),
    }
    log = open(folder / "dagster_dev.log", "w")
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=30)
    try:
        deadline = time.time() + startup_timeout
        while True:
            try:
                client._execute("{ version }")
                break
            except (DagsterGraphQLClientError, Exception) as error:
                if time.time() > deadline or process.poll() is not None:
                    raise RuntimeError(
                        f"dagster dev did not come up: {(folder / 'dagster_dev.log').read_text()[-3000:]}"
                    ) from error
                time.sleep(1)
        yield client, time.perf_counter() - started
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def wait_for_run(client, run_id: str, timeout: float = 600) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(2)
    raise TimeoutError(f"run {run_id} still running after {timeout} s")


def launch_to_success(client, week: dt.date) -> tuple[str, str, float]:
    """Submit `weekly_job` for `week` through GraphQL; (run id, final status, seconds from submission)."""
    launched = time.perf_counter()
    run_id = client.submit_job_execution(
        "weekly_job", repository_location_name=LOCATION, tags={"dagster/partition": week.isoformat()}
    )
    status = wait_for_run(client, run_id)
    return run_id, status, time.perf_counter() - launched


WORKER = """
import json, sys, time, dagster as dg
from hm_recs.definitions import all_assets
from hm_recs.resources import default_resources
source, tmp, week = sys.argv[1:4]
selection = dg.AssetSelection.groups("ingestion", "validation", "features")
started = time.perf_counter()
result = dg.materialize(all_assets, partition_key=week, selection=selection, raise_on_error=False,
                        resources=default_resources(source=source, warehouse=f"{tmp}/warehouse.duckdb",
                                                    artefacts=f"{tmp}/artefacts", exports=f"{tmp}/exports"),
                        instance=dg.DagsterInstance.ephemeral())
errors = [e.event_specific_data.error.message for e in result.get_step_failure_events()]
print(json.dumps({"week": week, "success": result.success, "seconds": round(time.perf_counter() - started, 1),
                  "errors": errors}))
"""


def repetition(source: str, weeks: tuple[str, str]) -> dict:
    tmp = tempfile.mkdtemp(prefix="hm_recs_concurrent_")
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, source, tmp, week],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for week in weeks
    ]
    outcomes, lock_waits = [], 0
    for child in children:
        out, err = child.communicate(timeout=900)
        lock_waits += err.count("for the warehouse lock")
        lines = [line for line in out.splitlines() if line.startswith("{")]
        outcomes.append(json.loads(lines[-1]) if lines else {"success": False, "errors": [err[-2000:]]})
    return {
        "success": all(o["success"] for o in outcomes),
        "outcomes": outcomes,
        "lock_waits": lock_waits,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def assert_run_ok_but(result: dg.ExecuteInProcessResult, warnings: set[str]):
    """The run succeeded, and the checks that failed are exactly `warnings` (non-blocking, severity WARN)."""
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert result.success, [e.event_specific_data.error.message for e in result.get_step_failure_events()]
    assert {c.check_name for c in failed} == warnings and all(c.severity == dg.AssetCheckSeverity.WARN for c in failed)


def assert_run_ok(result: dg.ExecuteInProcessResult):
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert result.success, [e.event_specific_data.error.message for e in result.get_step_failure_events()]
    assert not failed, failed


class Throttle:
    """An HTTP proxy in front of moto that answers the first `failures` requests with S3's 503 SlowDown, or
    500, before forwarding: what S3 does under load."""

    def __init__(self, upstream: str, failures: int):
        import http.client
        import http.server
        import threading
        from urllib.parse import urlparse

        target = urlparse(upstream)
        owner = self
        self.failures, self.seen, self.failed = failures, 0, 0
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.seen += 1
                owner.requests.append((self.command, self.path))
                if owner.failed < owner.failures:
                    owner.failed += 1
                    status, code = (503, "SlowDown") if owner.failed % 2 else (500, "InternalError")
                    payload = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                upstream_conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                answer = upstream_conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
