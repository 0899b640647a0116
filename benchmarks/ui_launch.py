"""Launch to success of `weekly_job` started through the webserver's GraphQL API, as an operator starts it.

    python benchmarks/ui_launch.py [--repetitions 3]

Generates the test suite's small synthetic shop (2,000 customers x 12 weeks), ingests the 9 weeks before the
built week once, then per repetition: a copy of that warehouse, `dagster dev` (webserver + daemon) on a free
loopback port with its own DAGSTER_HOME, one `weekly_job` run for the week submitted through dagster-graphql's
client, the seconds from submission to SUCCESS, and `dagster dev` stopped as a process group. Prints each
repetition and the spread. `running_dagster_dev` and `launch_to_success` live in `hm_recs_tests/support.py`,
shared with `test_ui.py`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hm_recs_tests.support import launch_to_success, running_dagster_dev  # noqa: E402


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
