"""The best MAP@12 any model could reach on each generator profile's shop, against its baselines in the same run.

    python benchmarks/generator_ceiling.py [--customers 50000] [--weeks 4] [--profiles fashion,grocery]
                                           [--draws 200 400]

A synthetic shop is a known random process: `hm_recs.synthetic.ceiling` lists, as each scored week begins,
every customer's articles most often bought in `--draws` simulated occasions drawn from the simulation's own
state (the customer's taste, segment and re-buys due, the week's demand shift). Those lists' MAP@12 on the
week's real purchases is the shop's ceiling: what a model that knew everything the generator knows would
score. It is printed beside the baselines' MAP@12 on the same weeks (`benchmarks/shop_profiles.py`'s, lists
built at the week before), as the ceiling over the best baseline: a target above that ratio cannot be met.
More draws estimate the probabilities better (the ceiling rises towards its limit): each `--draws` value is
printed so the estimate's convergence shows. The shop is the one `benchmarks/backtest.py` generates and
caches (same profile and sizes); the script checks that the regenerated transactions are the cached ones.
Writes benchmarks/results/generator_ceiling.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backtest import RESULTS, shift_weeks_of, synthetic_source  # noqa: E402
from shop_profiles import baselines, load  # noqa: E402

from hm_recs.core.metrics import map_at_k  # noqa: E402
from hm_recs.synthetic import SyntheticConfig, generate, profile_config  # noqa: E402
from hm_recs.synthetic.ceiling import best_lists  # noqa: E402
from hm_recs.synthetic.simulation import WeekStart  # noqa: E402
from hm_recs.synthetic.tables import article_ids  # noqa: E402

HISTORY_WEEKS = 104


def ceiling_lists(config: SyntheticConfig, weeks: list[int], draws: list[int]) -> tuple[dict, int, float]:
    """{(draws, week index): lists frame (customer_id, article_id, rank)} for the generator's `weeks` of the shop
    `config` generates, its transaction rows, and the seconds the draws took."""
    found: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
    ids: dict[str, pl.Series] = {}
    seconds = 0.0

    def observe(start: WeekStart) -> None:
        nonlocal seconds
        if start.week not in weeks:
            return
        ids.setdefault("article", article_ids(start.ctx.catalogue))
        began = time.perf_counter()
        for n in draws:
            found[(n, start.week)] = best_lists(start, n, np.random.default_rng([config.seed, start.week, n]))
        seconds += time.perf_counter() - began

    data = generate(config, observe)
    customer_ids = data.planted_segments["customer_id"]  # in the simulation's customer order
    lists = {
        key: pl.DataFrame(
            {
                "customer_id": customer_ids.gather(customer),
                "article_id": ids["article"].gather(article),
                "rank": rank.astype(np.int16),
            }
        )
        for key, (customer, article, rank) in found.items()
    }
    return lists, data.transactions.height, seconds


def run(profile: str, customers: int, n_weeks: int, draws: list[int]) -> dict:
    started = time.perf_counter()
    source = synthetic_source(customers, HISTORY_WEEKS, profile=profile)
    articles, cust, tx = load(source)
    config = profile_config(profile, customers=customers, weeks=HISTORY_WEEKS)
    weeks = list(range(HISTORY_WEEKS - n_weeks, HISTORY_WEEKS))
    lists, rows, draw_seconds = ceiling_lists(config, weeks, draws)
    if rows != tx.height:
        raise RuntimeError(f"regenerated {profile} shop has {rows} rows, the cached {source} {tx.height}")
    scored = baselines(articles, cust, tx, n_weeks, set(shift_weeks_of(source)))
    per_week = {}
    for week in weeks:
        day = config.first_day + dt.timedelta(weeks=week)
        bought = tx.filter(pl.col("week") == day).select("customer_id", "article_id").unique()
        row = dict(scored[day.isoformat()])
        for n in draws:
            row[f"ceiling_{n}"] = map_at_k(lists[(n, week)], bought)
        per_week[day.isoformat()] = row
    report = {
        "source": str(source),
        "draws": draws,
        "weeks": per_week,
        "draw_seconds": round(draw_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return report


def summarise(reports: dict) -> None:
    for name, r in reports.items():
        names = ["popularity", "trending", "repurchase"] + [f"ceiling_{n}" for n in r["draws"]]
        top = f"ceiling_{max(r['draws'])}"
        print(f"\n[{name}] MAP@12 per scored week (lists built at the week before; draws took {r['draw_seconds']} s)")
        print(f"{'week':<26}" + "".join(f"{n:>14}" for n in names) + f"{'ceiling x best':>16}")
        for week, w in r["weeks"].items():
            best = max(w[b] for b in names[:3])
            flag = " (demand shift)" if w["demand_shift"] else ""
            print(f"{week + flag:<26}" + "".join(f"{w[n]:>14.4f}" for n in names) + f"{w[top] / best:>16.2f}")
        means = {n: float(np.mean([w[n] for w in r["weeks"].values()])) for n in names}
        best = max(names[:3], key=means.get)
        print(
            f"{'mean':<26}"
            + "".join(f"{means[n]:>14.4f}" for n in names)
            + f"{means[top] / means[best]:>16.2f}  (best baseline by mean: {best})"
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--weeks", type=int, default=4, help="scored weeks (the last ones)")
    parser.add_argument("--profiles", default="fashion,grocery")
    parser.add_argument("--draws", type=int, nargs="+", default=[200, 400], help="simulated occasions per customer")
    args = parser.parse_args()
    reports = {
        f"{p}_{args.customers}x{HISTORY_WEEKS}": run(p, args.customers, args.weeks, sorted(args.draws))
        for p in args.profiles.split(",")
    }
    summarise(reports)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "generator_ceiling.json").write_text(json.dumps(reports, indent=2, default=str))
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
