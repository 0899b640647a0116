"""Backtest of the whole weekly job (models, candidates, ranker) as `hm-recs backtest` runs it.

    python benchmarks/backtest.py [--data all|real|fashion|grocery|synthetic] [--weeks 4]

real:            ../shared/data/hm_real_sample, the last 4 weeks it holds as scoring weeks.
fashion/grocery: 50k customers x 104 weeks of that generator profile (generated once, cached), last 4 weeks
                 (`synthetic` = fashion). `all` (the default): the real sample and both profiles, then one table.
Prints MAP@12 per recommender (the published `model`, each baseline, each candidate source alone: mean,
spread, ratio to trending measured in the same run), Heinz et al.'s rank coverage, the candidate union's and
each source's recall on the labelled weeks, seconds and peak RSS per stage; writes the JSON reports under
benchmarks/results/.
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


def synthetic_source(customers: int, weeks: int, purchase_rate: float | None = None, profile: str = "fashion") -> Path:
    """The generator's `profile` shop, written once as Parquet under the benchmark cache (the path names the
    generator's version, so a changed generator never reuses old files)."""
    from hm_recs.synthetic import GENERATOR_VERSION, generate, profile_config, write

    rate = "" if purchase_rate is None else f"_r{purchase_rate:g}"
    out = CACHE / f"{profile}_v{GENERATOR_VERSION}_{customers}x{weeks}{rate}"
    if not (out / "transactions_train.parquet").exists():
        started = time.perf_counter()
        sizes = {"customers": customers, "weeks": weeks}
        if purchase_rate is not None:
            sizes["purchase_rate"] = purchase_rate
        write(generate(profile_config(profile, **sizes)), out, "parquet")
        print(f"generated {out} in {time.perf_counter() - started:.0f} s")
    return out


def run(name: str, source: Path, n_weeks: int, history_weeks: int, warmup_weeks: int = 3) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"hm_recs_bench_{name}_"))
    pipeline = Pipeline(
        str(source),
        warehouse=str(work / "warehouse.duckdb"),
        artefacts=str(work / "artefacts"),
        exports=str(work / "exports"),
        history_weeks=history_weeks,
    )
    available = pipeline.source_weeks()
    scored = available[-n_weeks:]
    built = [shift_weeks(w, -1) for w in scored]
    print(
        f"\n[{name}] source {source}: {len(available)} weeks; building {built[0]}..{built[-1]}, "
        f"scoring {scored[0]}..{scored[-1]}",
        flush=True,
    )
    started = time.perf_counter()
    # The weekly job's warm state: the weeks before the first built one already ran (not scored here), so the
    # ranker finds the labelled candidate sets and the baselines' validation of earlier weeks stored.
    report = backtest(pipeline, built, log=lambda m: print(m, flush=True), warmup_weeks=warmup_weeks)
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    report["work"] = str(work)  # warehouse and artefacts, kept for benchmarks/ranker_ablation.py
    report["candidate_recall"] = candidate_recall_by_source(pipeline, built)
    report["admission"] = admissions(pipeline, built)
    report["segment_models"] = segment_decisions(pipeline, built)
    report["demand_shift_weeks"] = shift_weeks_of(source)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"backtest_{name}.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def candidate_recall_by_source(pipeline, built: list[dt.date]) -> dict[str, dict[str, float]]:
    """Mean over the built weeks of each source's and the union's recall of that week's purchases (the labelled
    set: week W's buyers' candidates as of W-1), with candidates per customer."""
    import polars as pl

    from hm_recs.core.candidate_labels import candidate_recall

    warehouse = pipeline.warehouse
    frames = []
    for week in built:
        labelled = warehouse.query(
            f"select * from {warehouse.table('candidates')} where week = ? and target_week = ?", [week, week]
        )
        bought = warehouse.query(
            f"select customer_id, article_id from {warehouse.table('transactions')} where week = ?", [week]
        )
        if labelled.height and bought.height:
            frames.append(candidate_recall(labelled, bought))
    if not frames:
        return {}
    mean = (
        pl.concat(frames)
        .group_by("source", maintain_order=True)
        .agg(pl.col("candidates_per_customer", "recall_all_buyers").mean())
    )
    return {
        row["source"]: {"candidates_per_customer": row["candidates_per_customer"], "recall": row["recall_all_buyers"]}
        for row in mean.iter_rows(named=True)
    }


def admissions(pipeline, built: list[dt.date]) -> dict[str, dict[str, bool | None]]:
    """Per built week: whether each learned source was admitted to the union (None: no record, e.g. it failed)."""
    from hm_recs.assets.evaluation import LEARNED_SOURCES

    registry = pipeline.resources["model_registry"]
    return {
        week.isoformat(): {model: registry.admitted(model, week) for model in LEARNED_SOURCES.values()}
        for week in built
    }


def segment_decisions(pipeline, built: list[dt.date]) -> dict[str, dict[str, dict]]:
    """Per built week and modelled segment: which model serves it (its own where it beat the global one on the
    segment's held-out customers, as the Ziolo study asked) and both recall@100 figures."""
    from hm_recs.core.segments import BEHAVIOUR_SEGMENTS, DEFAULT

    registry = pipeline.resources["model_registry"]
    out = {}
    for week in built:
        out[week.isoformat()] = {}
        for segment in (*BEHAVIOUR_SEGMENTS, DEFAULT):
            decision = registry.read_record(registry.segment_decision_key(segment, week))
            if decision is None:  # not modelled, or no members
                continue
            out[week.isoformat()][segment] = {
                k: decision.get(k) for k in ("serves", "segment_recall_at_100", "global_recall_at_100")
            }
    return out


def print_segments(reports: dict) -> None:
    print(
        "\n== per-segment two-tower models: weeks where the segment's own model beat the global one (held-out"
        " recall@100) =="
    )
    for name, r in reports.items():
        wins: dict[str, list[str]] = {}
        for segments in r.get("segment_models", {}).values():
            for segment, d in segments.items():
                if d.get("segment_recall_at_100") is not None:
                    mark = "own" if d["serves"] == "segment" else "global"
                    wins.setdefault(segment, []).append(
                        f"{mark} {d['segment_recall_at_100']:.3f}/{d['global_recall_at_100']:.3f}"
                    )
        line = "; ".join(
            f"{segment}: {sum(w.startswith('own') for w in weeks)}/{len(weeks)} ({', '.join(weeks)})"
            for segment, weeks in wins.items()
        )
        print(f"  {name}: {line or 'no segment decisions'}")


def shift_weeks_of(source: Path) -> list[str]:
    """The weeks with a demand shift (`core.shop_statistics.demand_shifts` on the source's transactions)."""
    import polars as pl

    from hm_recs.core.shop_statistics import demand_shifts

    parquet, csv = source / "transactions_train.parquet", source / "transactions_train.csv"
    tx = pl.scan_parquet(parquet) if parquet.exists() else pl.scan_csv(csv, infer_schema=False)
    return sorted({w.isoformat() for w in demand_shifts(tx.select("t_dat", "customer_id", "article_id"))["week"]})


def summary_table(reports: dict) -> None:
    """One line per shop: the published model against the best baseline (best mean over the weeks), each learned
    source, admissions, and the model against the better of popularity and trending in demand-shift weeks."""
    print("\n== all shops: MAP@12 mean (sd) over the scored weeks ==")
    print(
        f"{'shop':<22} {'model':>15} {'best baseline':>24} {'x best':>7} {'x trending':>10} {'source/sequence':>16} "
        f"{'source/two_tower':>17} {'admitted tt/seq':>16}  demand-shift weeks: model vs max(popularity, trending)"
    )
    for name, r in reports.items():
        mean, sd = r["mean"], r["spread"]
        baselines = {b: mean[b]["map_at_12"] for b in ("popularity", "trending", "repurchase") if b in mean}
        best = max(baselines, key=baselines.get)
        model = mean.get("model", {}).get("map_at_12") or 0.0
        admitted = r.get("admission", {}).values()
        tt = sum(1 for a in admitted if a.get("two_tower_global"))
        sq = sum(1 for a in admitted if a.get("sequence"))
        shifted = []
        for built, scores in r["weeks"].items():
            scored = (dt.date.fromisoformat(built) + dt.timedelta(weeks=1)).isoformat()
            if scored in r.get("demand_shift_weeks", []) and "model" in scores:
                bar = max(scores["popularity"]["map_at_12"], scores["trending"]["map_at_12"])
                shifted.append(
                    f"{scored} {scores['model']['map_at_12']:.4f} vs {bar:.4f}"
                    f" ({scores['model']['map_at_12'] / bar:.2f}x)"
                )
        source = {s: mean.get(f"source/{s}", {}).get("map_at_12") for s in ("sequence", "two_tower")}
        print(
            f"{name:<22} {model:>8.4f} ({sd.get('model', {}).get('map_at_12', 0):.4f}) {best:>11} {baselines[best]:.4f}"
            f" ({sd[best]['map_at_12']:.4f}) {model / baselines[best]:>7.2f} {model / baselines['trending']:>10.2f}"
            f" {source['sequence'] or 0:>16.4f} {source['two_tower'] or 0:>17.4f}"
            f" {f'{tt}/{len(admitted)}, {sq}/{len(admitted)}':>16}  " + ("; ".join(shifted) or "none")
        )


def summarise(name: str, report: dict) -> None:
    trending = report["mean"]["trending"]["map_at_12"]
    baselines = {r: report["mean"][r]["map_at_12"] for r in ("popularity", "trending", "repurchase")}
    best = max(baselines, key=baselines.get)
    print(f"\n== {name}: MAP@12 over {len(report['weeks'])} scoring weeks ==")
    print(f"{'recommender':<20} {'mean':>8} {'sd':>8} {'x trending':>11} {'x ' + best:>14}  per week")
    for r, m in report["mean"].items():
        weeks = " ".join(f"{s[r]['map_at_12']:.4f}" for s in report["weeks"].values() if r in s)
        print(
            f"{r:<20} {m['map_at_12']:>8.4f} {report['spread'][r]['map_at_12']:>8.4f} "
            f"{m['map_at_12'] / trending if trending else float('nan'):>11.2f} "
            f"{m['map_at_12'] / baselines[best] if baselines[best] else float('nan'):>14.2f}  {weeks}"
        )
    coverage = {r: m for r, m in report["mean"].items() if "rank_coverage_auc" in m}
    if coverage:
        print(f"\nrank coverage (Heinz et al.): {'recommender':<18} {'10%':>7} {'50%':>7} {'90%':>7} {'AUC':>7}")
        for r, m in coverage.items():
            print(
                f"{'':<29}{r:<18} {m['rank_coverage_recs_for_10pct']:>7.0f} {m['rank_coverage_recs_for_50pct']:>7.0f} "
                f"{m['rank_coverage_recs_for_90pct']:>7.0f} {m['rank_coverage_auc']:>7.3f}"
            )
    if report.get("candidate_recall"):
        print("\ncandidate recall of the labelled weeks (mean):")
        for source, figures in report["candidate_recall"].items():
            print(f"  {source:<14} {figures['recall']:.3f} ({figures['candidates_per_customer']:.1f} per customer)")
    stages = report["stages"]
    print(f"{'stage':<26} {'rows (last)':>12} {'seconds (sum)':>14} {'peak RSS MB':>12}")
    for step, seconds in sorted(stages["seconds"].items(), key=lambda kv: -kv[1]):
        asset = {
            "validate_transactions": "transactions",
            "validate_customers": "customers",
            "validate_articles": "articles",
        }.get(step, step)
        print(
            f"{step:<26} {stages['rows'].get(asset, ''):>12} {seconds:>14.1f}"
            f" {stages['peak_rss_mb'].get(asset, ''):>12}"
        )
    print(f"wall {report['wall_seconds']} s; process peak RSS {report['peak_rss_mb_process']} MB")
    print("\nwho served each week (the ranker's gate on the pooled validation buyers; `model` = what was published):")
    for week, served in report.get("serving", {}).items():
        gate = served.get("ranker_gate") or {}
        scores = report["weeks"].get(week, {})
        line = f"  built {week}: {served['served_by'] or 'nothing'}"
        if gate.get("ranker_map_at_12") is not None:
            line += (
                f"; gate: ranker {gate['ranker_map_at_12']:.4f} vs {gate['best_baseline']} "
                f"{gate['baseline_map_at_12'][gate['best_baseline']]:.4f}, difference {gate['difference']:+.4f} "
                f"[{gate['interval'][0]:+.4f}, {gate['interval'][1]:+.4f}] on {gate['validation_buyers']} buyers "
                f"of {len(gate['validation_weeks'])} week(s)"
            )
        line += "; next week: " + ", ".join(
            f"{r} {scores[r]['map_at_12']:.4f}" for r in ("model", "ranker") if r in scores
        )
        print(line)
    if report.get("weeks_not_published"):
        print(f"weeks not published (stale: no `model` score that week): {report['weeks_not_published']}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data",
        choices=["all", "real", "fashion", "grocery", "synthetic", "both"],
        default="all",
        help="all: the real sample and both profiles; synthetic = fashion; both = real + fashion",
    )
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--history-weeks", type=int, default=26)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument(
        "--purchase-rate", type=float, default=None, help="synthetic: rows per customer-week (default: the profile's)"
    )
    parser.add_argument("--warmup-weeks", type=int, default=3, help="weeks built (not scored) before the first")
    args = parser.parse_args()
    reports = {}
    if args.data in ("real", "both", "all"):
        if REAL.exists():
            reports["real_sample"] = run("real_sample", REAL, args.weeks, args.history_weeks, args.warmup_weeks)
        else:
            print(f"skipping the real sample: {REAL} not found")
    profiles = {"all": ["fashion", "grocery"], "both": ["fashion"], "synthetic": ["fashion"]}.get(
        args.data, [args.data]
    )
    for profile in (p for p in profiles if p != "real"):
        source = synthetic_source(args.customers, 104, args.purchase_rate, profile=profile)
        name = f"{profile}_{args.customers}x104"
        reports[name] = run(name, source, args.weeks, args.history_weeks, args.warmup_weeks)
    for name, report in reports.items():
        summarise(name, report)
    summary_table(reports)
    print_segments(reports)
    print(
        f"\nbenchmark process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
        f"({dt.datetime.now():%Y-%m-%d %H:%M})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
