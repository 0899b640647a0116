"""Seconds and peak RSS of the stages that score with the ranker, before and after their ranking inputs were built
once per week (issue 20): `ranker_model`, `recommendations`, `evaluation_report`, `baseline_recommendations` and,
where the checkout has it, `ranking_inputs` itself.

    python benchmarks/ranking_inputs.py --scale 0.05 --label after [--week 2020-09-09]
    PYTHONPATH=<a checkout before issue 20> python benchmarks/ranking_inputs.py --scale 0.05 --label before

1. Data: the generator at `scale` x H&M's size (`full_scale.generated_source`), and the 56 weeks up to the
   measured week T ingested and validated once, cached under .hm_recs/bench/ (ingestion is the same code before
   and after, so both labels start from the same warehouse).
2. The weeks before T, built by the checkout that `hm_recs` imports from (not measured): T-4..T-1 their
   features, segments, candidates and (after) ranking inputs, so that `ranker_model` finds the stored labelled
   sets and inputs a running schedule leaves; T-1 also its baselines, ranker and recommendations, which
   `evaluation_report` at T scores and re-ranks. No retrieval model is trained (torch would dominate the
   hour): the candidate union is the heuristic sources', the same before and after. The ranker is let serve
   (rule `mean`, ratio 0), so that `recommendations` always takes the ranker's path being measured.
3. Week T's stages, each in a fresh process on that warehouse, in the weekly job's order: the step's own
   seconds and peak RSS (`measured`, in its metadata) and the process's peak RSS. `--scaled-chunks` divides
   the customer chunks (100,000 read, 25,000 scored at once) by the shop's share of H&M's customers, so that
   the stages work as many chunks as at full size (14 and 55; the evaluation's buyers about 12): what grows
   with the number of chunks (a chunk joined with the whole week's inputs) shows at a small size.

`--chunk-join` measures instead, from the generated files alone (no pipeline, no warehouse; at `--scale 1`
H&M's size, minutes): the week's inputs built for every customer (seconds, size in memory) and one scoring
chunk's feature matrix joined with those whole inputs (what each scorer did before, per chunk) and with the
chunk's own rows (`core/stored_inputs`, what a scorer reads now), checking that both matrices are equal.

Results: benchmarks/results/ranking_inputs_<scale>_<label>.json (the figures are in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="hm_recs_bench_home_"))

from full_scale import CACHE, HM_CUSTOMERS, RESULTS, generated_source  # noqa: E402

INGESTED_WEEKS = 57  # the weeks before T+1 ingested: T-4's inputs read the segments' 52 weeks
EARLIER_WEEKS = 4
MEASURED = ("ranking_inputs", "baseline_recommendations", "ranker_model", "recommendations", "evaluation_report")
OUTPUTS = {  # a multi-asset's step materialises all its outputs
    "ranking_inputs": ("ranking_inputs", "ranking_week_inputs"),
    "baseline_recommendations": ("baseline_recommendations", "baseline_validation"),
}


def resources(source: Path, work: Path) -> dict:
    from hm_recs.resources import ServingPolicy, default_resources

    chosen = default_resources(
        source=str(source),
        warehouse=str(work / "warehouse.duckdb"),
        artefacts=str(work / "artefacts"),
        exports=str(work / "exports"),
    )
    chosen["serving_policy"] = ServingPolicy(rule="mean", required_ratio=0.0)  # the ranker's path, always
    return chosen


def present(names) -> list[str]:
    """The assets among `names` that this checkout defines (before issue 20 there is no `ranking_inputs`)."""
    from hm_recs.definitions import EVERY_ASSET

    return [name for name in names if name in EVERY_ASSET]


CHUNKED = ("ranking_inputs", "baseline_recommendations", "recommendations")


def materialize(source: Path, work: Path, week: dt.date, names, chunk: int | None = None) -> dict:
    """`names` (and their multi-asset siblings) at `week` in this process, `chunk` customers per chunk (None:
    the defaults); the steps' metadata numbers."""
    import dagster as dg

    from hm_recs.definitions import all_assets

    keys = [key for name in present(names) for key in OUTPUTS.get(name, (name,))]
    ops = {name: {"config": {"chunk_customers": chunk}} for name in present(names) if name in CHUNKED}
    result = dg.materialize(
        all_assets,
        partition_key=week.isoformat(),
        resources=resources(source, work),
        selection=dg.AssetSelection.assets(*keys),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={"ops": ops} if chunk else None,
    )
    if not result.success:
        errors = [e.event_specific_data.error.message for e in result.get_step_failure_events()]
        raise RuntimeError(f"week {week} {keys} failed: {errors}")
    return {
        e.materialization.asset_key.to_user_string(): {
            k: v.value for k, v in e.materialization.metadata.items() if isinstance(v.value, (int, float, str, list))
        }
        for e in result.get_asset_materialization_events()
    }


def ingested(scale: float, week: dt.date, cache: Path, log=print) -> tuple[Path, Path]:
    """The source and a warehouse with the weeks up to `week` ingested (`INGESTED_WEEKS` before T+1, cached)."""
    from full_scale import ingested_history

    source = generated_source(scale, cache=cache, log=log)
    pipeline = ingested_history(source, week + dt.timedelta(weeks=1), 0, INGESTED_WEEKS, cache, log)
    return source, Path(pipeline.warehouse.path)


def prepared(source: Path, warehouse: Path, week: dt.date, work: Path, log=print) -> None:
    """The weeks before `week` built by this checkout (module docstring, step 2), and week T's upstream."""
    shutil.copy(warehouse, work / "warehouse.duckdb")
    upstream = ("customer_features", "article_features", "customer_segments", "candidates", "ranking_inputs")
    for back in range(EARLIER_WEEKS, 0, -1):
        earlier = week - dt.timedelta(weeks=back)
        started = time.perf_counter()
        materialize(source, work, earlier, upstream)
        if back == 1:
            materialize(source, work, earlier, ("baseline_recommendations", "ranker_model", "recommendations"))
        log(f"  built {earlier} in {time.perf_counter() - started:.0f} s")
    materialize(source, work, week, upstream[:4])


def process_peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not carried over from the parent)."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return round(kib / 1024, 1)


def step(source: Path, work: Path, week: dt.date, name: str, share: float | None) -> dict:
    """One measured stage in this process: its metadata's seconds and peak RSS, the process's peak RSS; with
    `share`, its chunks scaled by it (module docstring)."""
    chunk = None
    if share is not None:
        from hm_recs.models import ranker

        chunk = max(round(100_000 * share), 1)
        ranker.SCORING_CHUNK_CUSTOMERS = max(round(ranker.SCORING_CHUNK_CUSTOMERS * share), 1)  # read at each call
    started = time.perf_counter()
    metadata = materialize(source, work, week, (name,), chunk)[name]
    return {
        "stage_seconds": metadata.get("stage_seconds"),
        "peak_rss_mb": metadata.get("peak_rss_mb"),
        "process_peak_rss_mb": process_peak_rss_mb(),
        "run_seconds": round(time.perf_counter() - started, 1),
        "ranking_inputs": metadata.get("ranking_inputs") or metadata.get("ranking_inputs_stored"),
        "inputs_built_here": metadata.get("ranking_inputs_built_here"),
        "rows": metadata.get("rows") or metadata.get("dagster/row_count"),
    }


def chunk_join(scale: float, week: dt.date, cache: Path, log=print) -> dict:
    """`--chunk-join` (module docstring): one scoring chunk of `SCORING_CHUNK_CUSTOMERS` customers at `scale`."""
    import polars as pl

    from hm_recs.core.baselines import TopUpLists
    from hm_recs.core.candidates import build_candidates
    from hm_recs.core.profiling import StageMeter, current_rss_bytes
    from hm_recs.core.ranking_features import InputWindows, ranking_features, week_inputs
    from hm_recs.core.stored_inputs import WeekInputs, customer_table, inputs_of, week_table
    from hm_recs.core.weeks import shift_weeks, week_end
    from hm_recs.models.ranker import SCORING_CHUNK_CUSTOMERS

    source = generated_source(scale, cache=cache, log=log)
    windows = InputWindows()
    customers = pl.read_parquet(source / "customers.parquet")
    articles = pl.read_parquet(source / "articles.parquet").sort("article_id")
    transactions = (
        pl.scan_parquet(source / "transactions_train.parquet")
        .with_columns(pl.col("t_dat").str.to_date())
        .filter(pl.col("t_dat").is_between(shift_weeks(week, -(windows.segment_weeks - 1)), week_end(week)))
        .collect()
    )
    log(f"{customers.height:,} customers, {transactions.height:,} transactions over {windows.segment_weeks} weeks")
    figures: dict = {"customers": customers.height, "transactions": transactions.height}
    with StageMeter() as meter:
        inputs = week_inputs(customers, articles, transactions, week, windows)
    figures |= {"inputs_seconds": round(meter.seconds, 1), "inputs_peak_rss_mb": meter.peak_rss_mb}
    tables = [inputs.customers, inputs.articles, inputs.group_popularity, inputs.bought_article]
    tables += [inputs.bought_product, inputs.bought_department, *inputs.bought_levels.values()]
    figures["inputs_mb"] = round(sum(t.estimated_size() for t in tables) / 2**20, 1)
    figures["transactions_mb"] = round(transactions.estimated_size() / 2**20, 1)
    chunk = customers["customer_id"].sort().head(SCORING_CHUNK_CUSTOMERS)
    candidates = build_candidates(customers, transactions, articles, week, customer_ids=chunk)
    week_row = WeekInputs.of(
        week, week_table(inputs, TopUpLists.build(customers, transactions, articles, week), windows)
    )
    started = time.perf_counter()
    rows = customer_table(inputs, chunk)  # what a scorer reads back for its chunk
    figures["chunk_rows_seconds"] = round(time.perf_counter() - started, 2)
    mine = inputs_of(week_row, rows)
    for name, chunk_inputs in (("whole_inputs", inputs), ("chunk_inputs", mine)):
        best, matrix = None, None
        for _ in range(3):
            started = time.perf_counter()
            matrix = ranking_features(chunk_inputs, candidates)
            best = min(best or 1e9, time.perf_counter() - started)
        figures[f"matrix_seconds_{name}"] = round(best, 2)
        figures[f"matrix_{name}"] = matrix
    figures["candidate_rows"] = candidates.height
    figures["equal"] = figures.pop("matrix_whole_inputs").equals(figures.pop("matrix_chunk_inputs"))
    figures["rss_mb_at_end"] = round(current_rss_bytes() / 2**20, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--week", type=dt.date.fromisoformat, default=dt.date(2020, 9, 9))
    parser.add_argument("--label", required=True, help="before | after (names the results file)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the data and ingested weeks are kept")
    parser.add_argument("--scaled-chunks", action="store_true", help="as many customer chunks as at full size")
    parser.add_argument("--keep", action="store_true", help="keep the prepared warehouse (its folder is printed)")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: one measured stage, in a fresh process
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chunk-join", action="store_true", help="one chunk's matrix from whole or chunk inputs")
    args = parser.parse_args()
    if args.chunk_join:
        report = chunk_join(args.scale, args.week, args.cache)
        print(json.dumps(report, indent=2))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"ranking_inputs_chunk_join_{args.scale:g}.json").write_text(json.dumps(report, indent=2))
        return
    if args.step:
        source = generated_source(args.scale, cache=args.cache, log=lambda m: None)
        share = max(round(HM_CUSTOMERS * args.scale), 500) / HM_CUSTOMERS if args.scaled_chunks else None
        print(json.dumps(step(source, args.work, args.week, args.step, share)))
        return
    source, warehouse = ingested(args.scale, args.week, args.cache)
    work = Path(tempfile.mkdtemp(prefix=f"hm_recs_ranking_inputs_{args.label}_"))
    print(f"[{args.label}] preparing the weeks before {args.week} in {work}", flush=True)
    prepared(source, warehouse, args.week, work)
    report = {
        "scale": args.scale,
        "week": str(args.week),
        "label": args.label,
        "scaled_chunks": args.scaled_chunks,
        "steps": {},
    }
    for name in present(MEASURED):
        out = subprocess.run(
            [sys.executable, __file__, "--scale", str(args.scale), "--week", str(args.week), "--label", args.label]
            + ["--cache", str(args.cache), "--step", name, "--work", str(work)]
            + (["--scaled-chunks"] if args.scaled_chunks else []),
            capture_output=True,
            text=True,
            check=True,
        )
        report["steps"][name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"[{args.label}] {name}: {report['steps'][name]}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"ranking_inputs_{args.scale:g}_{args.label}{'_scaled_chunks' if args.scaled_chunks else ''}.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
