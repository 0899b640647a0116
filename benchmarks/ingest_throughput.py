"""Ingestion + validation of one week at full H&M size, as a ratio to polars' bare read of the same file.

    python benchmarks/ingest_throughput.py [--customers 1371980]

Generates (once, cached) one synthetic week at full size (~305k transactions, 1.37M customers, 105k
articles) in the weekly-drop layout, then measures in the same run:
  reference  polars' bare `pl.read_csv` of each file (best of 3)
  core       hm_recs.core: read_raw (text + lineage), split (typing + rules), the GX suite
  dagster    the real ingestion + validation assets for that week (materialize, in process, DuckDB writes,
             checks re-verifying the stored partition)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from hm_recs.core.profiling import best_of, timed

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".hm_recs" / "bench"
WEEK = dt.date(2020, 9, 16)
os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="hm_recs_bench_home_"))


def full_week(customers: int) -> Path:
    from hm_recs.synthetic import SyntheticConfig, generate, write

    out = CACHE / f"week_{customers}"
    week_file = out / "transactions" / f"week={WEEK}.csv"
    if not week_file.exists():
        data = generate(SyntheticConfig(customers=customers, weeks=1, purchase_rate=0.2228))
        write(data, out, "csv")
        week_file.parent.mkdir(parents=True, exist_ok=True)
        (out / "transactions_train.csv").rename(week_file)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_371_980)
    args = parser.parse_args()
    import dagster as dg

    from hm_recs.core.expectations import run_suite
    from hm_recs.core.source import SourceFile, read_raw
    from hm_recs.core.validation import RuleContext, split
    from hm_recs.definitions import INGESTION_ASSETS, all_assets
    from hm_recs.resources import default_resources

    source = full_week(args.customers)
    files = {
        "transactions": source / "transactions" / f"week={WEEK}.csv",
        "customers": source / "customers.csv",
        "articles": source / "articles.csv",
    }
    print(f"data: {source}; " + ", ".join(f"{k} {v.stat().st_size / 2**20:.0f} MiB" for k, v in files.items()))
    reference = {t: best_of(3, lambda p=p: pl.read_csv(p)) for t, p in files.items()}

    core = {}
    raws = {}
    for table in ("articles", "customers", "transactions"):
        name = files[table].relative_to(source).as_posix()
        raws[table], t_read = timed(lambda: read_raw(files[table], SourceFile(table, name, "csv", False), week=WEEK))
        ctx = (
            RuleContext(week=WEEK)
            if table != "transactions"
            else RuleContext(
                week=WEEK,
                known_article_ids=raws["articles"]["article_id"],
                known_customer_ids=raws["customers"]["customer_id"],
            )
        )
        result, t_split = timed(lambda: split(table, raws[table], ctx))
        _, t_gx = timed(lambda: run_suite(table, raws[table], ctx))
        core[table] = {
            "rows": raws[table].height,
            "read": t_read,
            "split": t_split,
            "gx": t_gx,
            "quarantined": result.quarantine.height,
        }

    work = Path(tempfile.mkdtemp(prefix="hm_recs_ingest_"))
    resources = default_resources(source=str(source), warehouse=str(work / "w.duckdb"), artefacts=str(work / "a"))
    started = time.perf_counter()
    result = dg.materialize(
        all_assets,
        partition_key=WEEK.isoformat(),
        resources=resources,
        selection=INGESTION_ASSETS,
        instance=dg.DagsterInstance.ephemeral(),
    )
    dagster_wall = time.perf_counter() - started
    assert result.success
    steps = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.get_step_success_events()}
    step_of = {
        "transactions": ("raw_transactions", "validate_transactions"),
        "customers": ("raw_customers", "validate_customers"),
        "articles": ("raw_articles", "validate_articles"),
    }

    print(
        f"\n{'table':<13} {'rows':>10} {'polars read':>12} {'core read':>10} {'+rules':>8} {'+GX':>8} "
        f"{'core/ref':>9} {'dagster':>9} {'dagster/ref':>12} {'rows/s (dagster)':>17}"
    )
    for table in ("transactions", "customers", "articles"):
        c = core[table]
        total = c["read"] + c["split"] + c["gx"]
        d = sum(steps[s] for s in step_of[table])
        print(
            f"{table:<13} {c['rows']:>10,} {reference[table]:>11.2f}s {c['read']:>9.2f}s {c['split']:>7.2f}s"
            f" {c['gx']:>7.2f}s {total / reference[table]:>8.1f}x {d:>8.2f}s {d / reference[table]:>11.1f}x"
            f" {c['rows'] / d:>17,.0f}"
        )
    print(
        f"\nwhole ingestion + validation of the week through Dagster: {dagster_wall:.1f} s wall (steps: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items())
        + ")"
    )
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
