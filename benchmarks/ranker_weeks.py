"""How many weeks the ranker learns from and is judged on: the defaults of `min_positive_groups` (training) and
`min_validation_buyers` (the serving gate), measured.

    python benchmarks/ranker_weeks.py --data real|synthetic [--customers 2000] [--purchase-rate 0.22] [--weeks 4]
        [--groups 0,100,300,1000] [--buyers 1,200,500,1000]

One backtest state is built once, as `benchmarks/backtest.py` builds it (26 history weeks ingested, 3 warm-up
weeks and the scored weeks through the whole weekly job with the defaults), and cached. Then, for each setting
of one sweep (the other setting at its default) and each scored week W, `ranker_model` at W is trained again
with that setting and `evaluation_report` at W+1 scores the ranker's own lists (`ranker`) and every baseline on
W+1. Printed per setting: the ranker's MAP@12 on the next weeks (mean, per week), what the serving gate would
have published (the ranker where it won the gate, else the champion it lost to) and the best baseline's mean,
all from the same run, with the training weeks and groups with a positive. Results: benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="hm_recs_bench_home_"))

import dagster as dg  # noqa: E402
from backtest import CACHE, REAL, RESULTS, synthetic_source  # noqa: E402

from hm_recs.cli import backtest  # noqa: E402
from hm_recs.core.weeks import shift_weeks  # noqa: E402
from hm_recs.resources import ServingPolicy  # noqa: E402
from hm_recs.runner import Pipeline  # noqa: E402

BASELINES = ("popularity", "trending", "repurchase")


def prepared(name: str, source: Path, n_weeks: int, history_weeks: int) -> tuple[Path, list]:
    """The cached backtest state (warehouse, artefacts) and the built weeks."""
    work = CACHE / f"ranker_weeks_{name}"
    pipeline = Pipeline(
        str(source),
        warehouse=str(work / "warehouse.duckdb"),
        artefacts=str(work / "artefacts"),
        exports=str(work / "exports"),
        history_weeks=history_weeks,
    )
    built = [shift_weeks(w, -1) for w in pipeline.source_weeks()[-n_weeks:]]
    marker = work / "built.json"
    if not marker.exists() or json.loads(marker.read_text()) != [str(w) for w in built]:
        started = time.perf_counter()
        backtest(pipeline, built, log=lambda m: print(m, flush=True), warmup_weeks=3)
        marker.write_text(json.dumps([str(w) for w in built]))
        print(f"[{name}] backtest state built in {time.perf_counter() - started:.0f} s", flush=True)
    return work, built


def measure(source: Path, work: Path, built: list, policy: ServingPolicy, ranker: dict) -> dict:
    pipeline = Pipeline(
        str(source),
        warehouse=str(work / "warehouse.duckdb"),
        artefacts=str(work / "artefacts"),
        exports=str(work / "exports"),
        serving_policy=policy,
    )
    weeks = {}
    for week in built:
        started = time.perf_counter()
        config = {**pipeline.run_config, "ops": {"ranker_model": {"config": ranker}}}
        result = pipeline.execute(week, dg.AssetSelection.assets("ranker_model"), config)
        (meta,) = [
            {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()
        ]
        seconds = time.perf_counter() - started
        scores = pipeline.evaluate_week(week, log=lambda m: None)
        served = meta["served_by"]
        weeks[str(week)] = {
            "ranker": scores["ranker"]["map_at_12"],
            "published": scores[served]["map_at_12"],
            **{b: scores[b]["map_at_12"] for b in BASELINES},
            "served_by": served,
            "validation_ranker": meta["map_at_12"],
            "validation_best_baseline": meta["best_baseline_map_at_12"],
            "validation_weeks": len(meta["validation_weeks"]),
            "validation_queries": meta["validation_queries"],
            "training_weeks": len(meta["training_weeks"]),
            "groups": meta["training_groups_with_a_positive"],
            "seconds": round(seconds, 1),
        }
    return weeks


def summary(weeks: dict) -> dict:
    mean = {
        k: statistics.fmean(w[k] for w in weeks.values())
        for k in ("ranker", "published", *BASELINES, "training_weeks", "groups", "validation_weeks", "seconds")
    }
    mean["best_baseline"] = max(mean[b] for b in BASELINES)
    mean["ranker_serves"] = sum(w["served_by"] == "ranker" for w in weeks.values())
    return mean


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", choices=["real", "synthetic"], default="real")
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--purchase-rate", type=float, default=0.22)
    parser.add_argument("--history-weeks", type=int, default=26)
    parser.add_argument("--groups", default="0,100,300,1000", help="min_positive_groups sweep")
    parser.add_argument("--buyers", default="1,200,500,1000", help="min_validation_buyers sweep")
    parser.add_argument("--refit", action="store_true", help="also sweep the buyers with the served ranker refit")
    args = parser.parse_args()
    if args.data == "real":
        name, source = "real_sample", REAL
    else:
        name = f"synthetic_{args.customers}x104_r{args.purchase_rate:g}"
        source = synthetic_source(args.customers, 104, args.purchase_rate)
    work, built = prepared(name, source, args.weeks, args.history_weeks)
    default_groups, default_buyers = 300, 500  # the sweeps' fixed values (session 9's first defaults)
    runs = []
    for groups in (int(g) for g in args.groups.split(",")):
        runs.append(
            (
                "min_positive_groups",
                groups,
                ServingPolicy(min_validation_buyers=default_buyers),
                {"min_positive_groups": groups, "max_training_weeks": 12, "refit": "never"},
            )
        )
    for buyers in (int(b) for b in args.buyers.split(",")):
        runs.append(
            (
                "min_validation_buyers",
                buyers,
                ServingPolicy(min_validation_buyers=buyers),
                {"min_positive_groups": default_groups, "refit": "never"},
            )
        )
    if args.refit:
        for buyers in (int(b) for b in args.buyers.split(",")):
            runs.append(
                (
                    "refit, min_validation_buyers",
                    buyers,
                    ServingPolicy(min_validation_buyers=buyers),
                    {"min_positive_groups": default_groups, "refit": "always"},
                )
            )
    results = []
    for sweep, value, policy, ranker in runs:
        print(f"[{name}] {sweep}={value}", flush=True)
        weeks = measure(source, work, built, policy, ranker)
        results.append({"sweep": sweep, "value": value, "weeks": weeks, "mean": summary(weeks)})
        print(json.dumps(results[-1]["mean"]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"ranker_weeks_{name}.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\n== {name}: {len(built)} scored weeks ({built[0]}..{built[-1]} built), MAP@12 on the next week ==")
    print(
        f"{'setting':<36} {'ranker':>7} {'published':>9} {'best base':>9} {'x best':>7} {'served':>6} "
        f"{'train wks':>9} {'groups':>7} {'val wks':>7} {'s/week':>6}  ranker per week"
    )
    for r in results:
        m = r["mean"]
        per = " ".join(f"{w['ranker']:.4f}" for w in r["weeks"].values())
        print(
            f"{r['sweep'] + '=' + str(r['value']):<36} {m['ranker']:>7.4f} {m['published']:>9.4f}"
            f" {m['best_baseline']:>9.4f}"
            f" {m['published'] / m['best_baseline'] if m['best_baseline'] else float('nan'):>7.2f}"
            f" {m['ranker_serves']:>4}/{len(r['weeks'])} {m['training_weeks']:>9.1f} {m['groups']:>7.0f}"
            f" {m['validation_weeks']:>7.1f} {m['seconds']:>6.0f}  {per}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
