"""Where one step's seconds go: cProfile of one asset of one week, rebuilt in process on a benchmark's work folder.

    python benchmarks/profile_step.py WORK --source SOURCE --week 2020-09-09 --step recommendations [--top 30]
        [--in-place] [--out benchmarks/results/profile_recommendations_2020-09-09.prof]

WORK is a folder as `full_scale.py` leaves it (warehouse.duckdb, artefacts/, exports/; e.g. a cached warm state or a
refresh's work folder) with the step's inputs for `week` stored; SOURCE the raw folder it was built from. The
step is rebuilt (with any asset its op also yields) through the CLI's `Pipeline.execute` (in process, its checks
included) on a copy of WORK (copying a folder at H&M's size takes a minute or two; `--in-place` rebuilds in WORK itself,
overwriting the step's stored output). In process, torch uses every core (`runner.every_core_for_torch`), where the
multiprocess executor gives a step one thread: compare a profile's wall seconds with other profiles, not with a
weekly run's step seconds. Prints the step's wall seconds and the functions with the most cumulative and own time
(the standard library's pstats); the whole profile is written to --out for `python -m pstats` or snakeviz.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
if __name__ == "__main__":  # the profiled run goes to a scratch Dagster instance, not the demo's
    os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="hm_recs_bench_home_"))

from full_scale import RESULTS, _set_environment, work_pipeline  # noqa: E402


def profile_step(source: Path, work: Path, week: dt.date, step: str) -> tuple[float, pstats.Stats]:
    """Wall seconds and the profile of rebuilding asset `step` of `week` in `work`."""
    import dagster as dg

    _set_environment(source, work)
    pipeline = work_pipeline(source, work)
    selection = dg.AssetSelection.assets(step).required_multi_asset_neighbors()  # with what its op also yields
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    try:
        pipeline.execute(week, selection)
    finally:
        profiler.disable()
    return time.perf_counter() - started, pstats.Stats(profiler)


def summary(stats: pstats.Stats, top: int) -> str:
    """The `top` functions by cumulative time, then by own time."""
    text = io.StringIO()
    stats.stream = text
    for order in ("cumulative", "tottime"):
        text.write(f"\n--- top {top} by {order} ---\n")
        stats.sort_stats(order).print_stats(top)
    return text.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="a work folder (warehouse.duckdb, artefacts/, exports/)")
    parser.add_argument("--source", type=Path, required=True, help="the raw folder the work folder was built from")
    parser.add_argument("--week", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--step", required=True, help="the asset to rebuild, e.g. recommendations")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--in-place", action="store_true", help="rebuild in WORK itself (no copy)")
    parser.add_argument("--out", type=Path, help="where the profile is written (default: benchmarks/results/)")
    args = parser.parse_args(argv)
    if not (args.work / "warehouse.duckdb").exists():
        parser.error(f"{args.work} holds no warehouse.duckdb: not a benchmark's work folder")
    scratch = None
    work = args.work
    if not args.in_place:
        scratch = Path(tempfile.mkdtemp(prefix=f"hm_recs_profile_{args.step}_")) / "work"
        print(f"copying {args.work} to {scratch} ...", flush=True)
        shutil.copytree(args.work, scratch)
        work = scratch
    try:
        seconds, stats = profile_step(args.source, work, args.week, args.step)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch.parent, ignore_errors=True)
    out = args.out or RESULTS / f"profile_{args.step}_{args.week}.prof"
    out.parent.mkdir(parents=True, exist_ok=True)
    stats.dump_stats(out)
    print(f"{args.step} of week {args.week}: {seconds:.1f} s wall in process; profile in {out}")
    print(summary(stats, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
