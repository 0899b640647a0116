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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hm_recs_tests.support import repetition  # noqa: E402


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
