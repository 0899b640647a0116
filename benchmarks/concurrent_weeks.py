"""Two weekly runs for different weeks at the same time on one DuckDB warehouse, repeated.

    python benchmarks/concurrent_weeks.py [--repetitions 20] [--source .hm_recs/demo_data]

Each repetition starts from an empty warehouse and launches two processes at once, each materialising the
ingestion, validation and feature assets of its own week (one Dagster run per process, as two runs launched
from the UI would be). DuckDB allows one writing process per file: the second waits on the lock (the IO
manager's and the `Warehouse` resource's retries), so both must succeed, one after the other where they
collide. Prints successes, how often a writer waited for the lock (logged when over 0.2 s), and wall
seconds per repetition.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

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
            cwd=ROOT,
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--source", default=str(ROOT / ".hm_recs" / "demo_data"))
    parser.add_argument("--weeks", default="2020-09-02,2020-09-09")
    args = parser.parse_args()
    weeks = tuple(args.weeks.split(","))
    results = []
    for i in range(args.repetitions):
        result = repetition(args.source, weeks)
        results.append(result)
        print(
            f"repetition {i + 1}: {'both succeeded' if result['success'] else 'FAILED'} in {result['wall_seconds']} s "
            f"({', '.join(str(o.get('seconds')) for o in result['outcomes'])} s per run); "
            f"lock waits {result['lock_waits']}",
            flush=True,
        )
        for o in result["outcomes"]:
            if not o["success"]:
                print("   ", o["errors"][:1], flush=True)
    ok = sum(r["success"] for r in results)
    print(f"\n{ok} of {len(results)} repetitions: both weeks succeeded")
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
