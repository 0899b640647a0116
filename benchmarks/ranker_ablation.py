"""What the learned sources add to the ranker: its MAP@12 with and without them, on the weeks a backtest built.

    python benchmarks/ranker_ablation.py --shop fashion_50000x104 [--work DIR]

Run `benchmarks/backtest.py` first: this reads its work folder (warehouse and artefacts; default the newest
`hm_recs_bench_<shop>_*` under the temporary folder, or the `work` its JSON report names). For each week W it
built, the ranker is trained twice on the same labelled weeks with the same configuration:
- `with`: the stored labelled candidate sets, as `ranker_model` trained (two-tower and sequence rows included
  in the weeks they were admitted);
- `without`: every labelled week rebuilt from the history with the heuristic sources only (what
  `models/ranker_data.py` does for a week it finds unstored), so the union is the one a shop without the two
  models would have, not the stored one with rows deleted (the cap of 100 keeps other heuristic rows then).
Each then ranks week W+1's buyers' serving candidates built the same way (stored / heuristic only, as of W) and
is scored on their purchases: MAP@12 of both in the same run and their ratio, with the gain share of the
learned sources' features in the `with` ranker. The stored ranker's own figure from the backtest is printed
beside them as a check that `with` reproduces it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from backtest import RESULTS  # noqa: E402  (sets DAGSTER_HOME before Dagster is imported)


def learned_gain_share(importances) -> float:
    import polars as pl

    from hm_recs.core.candidates import MODEL_SOURCES
    from hm_recs.core.ranking_features import source_features

    names = [name for source in MODEL_SOURCES for name in source_features(source)]
    return float(importances.filter(pl.col("feature").is_in(names))["gain_share"].sum())


def week_figures(warehouse, week, log) -> dict:
    """MAP@12 on week W+1 of the ranker trained with and without the learned sources at W (module docstring)."""

    from hm_recs.assets.ranking import ranker_sources, serving_set
    from hm_recs.core.candidates import build_candidates
    from hm_recs.core.metrics import K, map_at_k
    from hm_recs.core.ranking_features import (
        CATEGORICAL_FEATURES,
        FEATURE_COLUMNS,
        InputWindows,
        ranking_features,
        week_inputs,
    )
    from hm_recs.core.serving import GateRule
    from hm_recs.core.weeks import shift_weeks
    from hm_recs.models.configs import RankerConfig
    from hm_recs.models.ranker import rank_in_chunks, train_ranker
    from hm_recs.models.ranker_data import TrainingWeeks, WeekSources, assemble, refit
    from hm_recs.storage.reads import catalogue_tables, partition_rows

    rule, weeks, config, windows = GateRule(), TrainingWeeks(), RankerConfig(), InputWindows()
    target = shift_weeks(week, 1)
    purchases = partition_rows(warehouse, "transactions", target, "customer_id, article_id")
    buyers = purchases["customer_id"].unique()
    customers, articles, transactions = catalogue_tables(
        warehouse, week, max(windows.feature_weeks, windows.segment_weeks)
    )
    inputs = week_inputs(customers, articles, transactions, week, windows)
    stored = ranker_sources(warehouse, week, weeks, rule, windows)
    heuristic = WeekSources(stored.buyers_per_week, lambda t: None, lambda t: None, stored.tables)
    serving = {
        "with": serving_set(warehouse, week, buyers),
        "without": build_candidates(customers, transactions, articles, week, customer_ids=buyers),
    }
    out = {}
    for variant, sources in (("with", stored), ("without", heuristic)):
        started = time.perf_counter()
        assembled = assemble(week, sources, weeks, rule, config, windows, log=lambda m: None)
        result = train_ranker(
            assembled.train,
            assembled.validation,
            FEATURE_COLUMNS,
            CATEGORICAL_FEATURES,
            config,
            lambda m: None,
            assembled.validation_purchases,
        )
        if assembled.refits("pooled") and result.tiers:  # as the asset refits by default
            result = refit(assembled, result, FEATURE_COLUMNS, CATEGORICAL_FEATURES, config, lambda m: None)
        ranked = rank_in_chunks(result, serving[variant], lambda chunk: ranking_features(inputs, chunk), K)
        out[variant] = {
            "map_at_12": map_at_k(ranked, purchases),
            "learned_gain_share": learned_gain_share(result.importances),
            "training_rows": assembled.train.height,
            "seconds": round(time.perf_counter() - started, 1),
        }
        log(
            f"  built {week} ({variant} the learned sources): MAP@12 {out[variant]['map_at_12']:.4f} on week {target}, "
            f"learned features' gain share {out[variant]['learned_gain_share']:.3f}, {out[variant]['training_rows']:,} "
            f"training rows, {out[variant]['seconds']} s"
        )
    return out


def work_folder(shop: str, given: str | None) -> Path:
    if given:
        return Path(given)
    report = RESULTS / f"backtest_{shop}.json"
    if report.exists() and json.loads(report.read_text()).get("work"):
        return Path(json.loads(report.read_text())["work"])
    found = sorted(glob.glob(os.path.join(tempfile.gettempdir(), f"hm_recs_bench_{shop}_*")), key=os.path.getmtime)
    if not found:
        raise SystemExit(f"no backtest work folder for {shop}: run benchmarks/backtest.py first, or pass --work")
    return Path(found[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shop", required=True, help="the backtest's shop name, e.g. real_sample, fashion_50000x104")
    parser.add_argument("--work", default=None, help="the backtest's work folder (default: found from the shop name)")
    args = parser.parse_args()
    import datetime as dt

    from hm_recs.storage.duckdb_warehouse import DuckDBWarehouse

    report = json.loads((RESULTS / f"backtest_{args.shop}.json").read_text())
    work = work_folder(args.shop, args.work)
    warehouse = DuckDBWarehouse(path=str(work / "warehouse.duckdb"))
    print(f"[{args.shop}] work folder {work}", flush=True)
    figures = {}
    for built, scores in report["weeks"].items():
        figures[built] = week_figures(warehouse, dt.date.fromisoformat(built), lambda m: print(m, flush=True))
        figures[built]["stored_ranker"] = scores.get("ranker", {}).get("map_at_12")
    with_, without = ([figures[w][v]["map_at_12"] for w in figures] for v in ("with", "without"))
    share = [figures[w]["with"]["learned_gain_share"] for w in figures]
    print(f"\n== {args.shop}: ranker MAP@12 with and without the learned sources ({len(figures)} weeks) ==")
    print(
        f"{'built week':<12} {'with':>8} {'without':>8} {'ratio':>7} {'stored ranker':>14} {'learned gain share':>19}"
    )
    for w, f in figures.items():
        stored = f"{f['stored_ranker']:.4f}" if f["stored_ranker"] is not None else "-"
        print(
            f"{w:<12} {f['with']['map_at_12']:>8.4f} {f['without']['map_at_12']:>8.4f}"
            f" {f['with']['map_at_12'] / f['without']['map_at_12']:>7.3f} {stored:>14}"
            f" {f['with']['learned_gain_share']:>19.3f}"
        )
    print(
        f"{'mean':<12} {statistics.fmean(with_):>8.4f} {statistics.fmean(without):>8.4f} "
        f"{statistics.fmean(with_) / statistics.fmean(without):>7.3f} {'':>14} {statistics.fmean(share):>19.3f}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"ranker_ablation_{args.shop}.json").write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
