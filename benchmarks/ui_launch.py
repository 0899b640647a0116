"""Launch to success of `weekly_job` started through the webserver's GraphQL API, as an operator starts it.

    python benchmarks/ui_launch.py [--repetitions 3]

Generates the test suite's small synthetic shop (2,000 customers x 12 weeks), ingests the 9 weeks before the
built week once, then per repetition: a copy of that warehouse, `dagster dev` (webserver + daemon) on a free
loopback port with its own DAGSTER_HOME, one `weekly_job` run for the week submitted through dagster-graphql's
client, the seconds from submission to SUCCESS, and `dagster dev` stopped as a process group. Prints each
repetition and the spread. `running_dagster_dev` and `wait_for_run` are what `hm_recs_tests/test_ui.py` uses.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="hm_recs_bench_home_"))
    import dagster as dg

    from hm_recs.definitions import INGESTION_ASSETS, all_assets
    from hm_recs.resources import default_resources
    from hm_recs.synthetic import SyntheticConfig, generate, write

    work = Path(tempfile.mkdtemp(prefix="hm_recs_ui_launch_"))
    source = work / "source"
    write(generate(SyntheticConfig(customers=2000, weeks=12, seed=11, purchase_rate=1.2)), source, "csv")
    weeks = [dt.date(2020, 7, 1) + dt.timedelta(weeks=i) for i in range(12)]
    history, week = weeks[:9], weeks[9]
    template = work / "history"
    resources = default_resources(
        source=str(source),
        warehouse=str(template / "warehouse.duckdb"),
        artefacts=str(template / "artefacts"),
        exports=str(template / "exports"),
    )
    instance = dg.DagsterInstance.ephemeral()
    for w in history:
        assert dg.materialize(
            all_assets, partition_key=w.isoformat(), resources=resources, instance=instance, selection=INGESTION_ASSETS
        ).success
    seconds = []
    for repetition in range(1, args.repetitions + 1):
        folder = work / f"run_{repetition}"
        folder.mkdir()
        shutil.copy(template / "warehouse.duckdb", folder / "warehouse.duckdb")
        with running_dagster_dev(folder, source) as (client, startup):
            run_id, status, elapsed = launch_to_success(client, week)
        print(
            f"repetition {repetition}: weekly_job for {week} launched through GraphQL: {status} after {elapsed:.1f} s "
            f"(dagster dev answered after {startup:.1f} s; run {run_id})",
            flush=True,
        )
        if status != "SUCCESS":
            print((folder / "dagster_dev.log").read_text()[-3000:])
            return 1
        seconds.append(elapsed)
    print(
        f"launch to success: {', '.join(f'{s:.1f}' for s in seconds)} s; median {statistics.median(seconds):.1f} s "
        f"({dt.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores)"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
