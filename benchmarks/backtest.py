"""Backtest of the baselines through the real weekly job, as `hm-recs backtest` runs it.

    python benchmarks/backtest_baselines.py [--data real|synthetic|both] [--weeks 4]

real:      ../shared/data/hm_real_sample, the last 4 weeks it holds as scoring weeks.
synthetic: 50k customers x 104 weeks from hm_recs.synthetic (generated once, cached), last 4 weeks.
Prints MAP@12 per recommender (mean, spread, ratio to trending), seconds and peak RSS per stage;
writes the JSON reports under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / ".hm_recs" / "bench"
REAL = ROOT.parent / "shared" / "data" / "hm_real_sample"
os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="hm_recs_bench_home_"))

from hm_recs.cli import backtest  # noqa: E402
from hm_recs.core.weeks import shift_weeks  # noqa: E402
from hm_recs.runner import Pipeline  # noqa: E402


def synthetic_source(customers: int, weeks: int) -> Path:
    from hm_recs.synthetic import SyntheticConfig, generate, write

    out = CACHE / f"synthetic_{customers}x{weeks}"
    if not (out / "transactions_train.parquet").exists():
        started = time.perf_counter()
        write(generate(SyntheticConfig(customers=customers, weeks=weeks)), out, "parquet")
        print(f"generated {out} in {time.perf_counter() - started:.0f} s")
    return out


def run(name: str, source: Path, n_weeks: int, history_weeks: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"hm_recs_bench_{name}_"))
    pipeline = Pipeline(str(source), warehouse=str(work / "warehouse.duckdb"), artefacts=str(work / "artefacts"))
    available = pipeline.source_weeks()
    scored = available[-n_weeks:]
    built = [shift_weeks(w, -1) for w in scored]
    print(f"\n[{name}] source {source}: {len(available)} weeks; building {built[0]}..{built[-1]}, "
          f"scoring {scored[0]}..{scored[-1]}", flush=True)
    started = time.perf_counter()
    report = backtest(pipeline, built, history_weeks, log=lambda m: print(m, flush=True))
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"backtest_{name}.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def summarise(name: str, report: dict) -> None:
    trending = report["mean"]["trending"]["map_at_12"]
    print(f"\n== {name}: MAP@12 over {len(report['weeks'])} scoring weeks ==")
    print(f"{'recommender':<12} {'mean':>8} {'sd':>8} {'x trending':>11}  per week")
    for r, m in report["mean"].items():
        weeks = " ".join(f"{s[r]['map_at_12']:.4f}" for s in report["weeks"].values() if r in s)
        print(f"{r:<12} {m['map_at_12']:>8.4f} {report['spread'][r]['map_at_12']:>8.4f} "
              f"{m['map_at_12'] / trending if trending else float('nan'):>11.2f}  {weeks}")
    stages = report["stages"]
    print(f"{'stage':<26} {'rows (last)':>12} {'seconds (sum)':>14} {'peak RSS MB':>12}")
    for step, seconds in sorted(stages["seconds"].items(), key=lambda kv: -kv[1]):
        asset = {"validate_transactions": "transactions", "validate_customers": "customers",
                 "validate_articles": "articles"}.get(step, step)
        print(f"{step:<26} {stages['rows'].get(asset, ''):>12} {seconds:>14.1f} {stages['peak_rss_mb'].get(asset, ''):>12}")
    print(f"wall {report['wall_seconds']} s; process peak RSS {report['peak_rss_mb_process']} MB")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", choices=["real", "synthetic", "both"], default="both")
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--history-weeks", type=int, default=26)
    parser.add_argument("--customers", type=int, default=50_000)
    args = parser.parse_args()
    reports = {}
    if args.data in ("real", "both"):
        if REAL.exists():
            reports["real_sample"] = run("real_sample", REAL, args.weeks, args.history_weeks)
        else:
            print(f"skipping the real sample: {REAL} not found")
    if args.data in ("synthetic", "both"):
        source = synthetic_source(args.customers, 104)
        reports[f"synthetic_{args.customers}x104"] = run(f"synthetic_{args.customers}x104", source, args.weeks, args.history_weeks)
    for name, report in reports.items():
        summarise(name, report)
    print(f"\nbenchmark process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
          f"({dt.datetime.now():%Y-%m-%d %H:%M})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
