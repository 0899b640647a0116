"""What each generator profile's shop is like, against the real sample: statistics and baselines' MAP@12.

    python benchmarks/shop_profiles.py [--customers 50000] [--weeks 4] [--profiles fashion,grocery] [--no-real]

For each profile (50k customers x 104 weeks, generated once and cached like `benchmarks/backtest.py`'s) and
the real H&M sample (`../shared/data/hm_real_sample`, when present): the shop statistics of
`hm_recs.core.shop_statistics` (re-buy share of a week's distinct customer-article purchases, articles per
combination of the content encoder's attribute columns, median share of weeks with a purchase, the weeks
with a demand shift), and the three baselines' MAP@12 on the last `--weeks` weeks (built from the data up to
the week before, as the weekly job builds them; pure `hm_recs.core.baselines`, no Dagster), with the
demand-shift weeks among them marked. Writes benchmarks/results/shop_profiles.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backtest import REAL, RESULTS, synthetic_source  # noqa: E402

from hm_recs.core.baselines import RECOMMENDERS  # noqa: E402
from hm_recs.core.metrics import map_at_k  # noqa: E402
from hm_recs.core.shop_statistics import as_date, shop_statistics  # noqa: E402
from hm_recs.core.weeks import shift_weeks, week_expr  # noqa: E402
from hm_recs.models.content import CONTENT_COLUMNS  # noqa: E402


def load(source: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """articles, customers (customer_id, age), transactions (t_dat Date, customer_id, article_id, week)."""

    def read(stem: str) -> pl.DataFrame:
        parquet = source / f"{stem}.parquet"
        if parquet.exists():
            return pl.read_parquet(parquet)
        return pl.read_csv(source / f"{stem}.csv", infer_schema=False)

    articles = read("articles")
    customers = read("customers").select("customer_id", pl.col("age").cast(pl.Float64, strict=False))
    tx = read("transactions_train").select(
        as_date(pl.col("t_dat")),
        "customer_id",
        pl.col("article_id").cast(pl.String),
    )
    return articles, customers, tx.with_columns(week_expr(pl.col("t_dat")).alias("week"))


def baselines(articles, customers, tx, n_weeks: int, shift_weeks_set: set[str]) -> dict:
    """Each baseline's MAP@12 per scored week (lists built at the week before it)."""
    weeks = sorted(tx["week"].unique().to_list())[-n_weeks:]
    per_week = {}
    for scored in weeks:
        built = shift_weeks(scored, -1)
        bought = tx.filter(pl.col("week") == scored).select("customer_id", "article_id").unique()
        buyers = bought.select("customer_id").unique()
        wanted = customers.join(buyers, on="customer_id", how="semi")
        row = {"demand_shift": scored.isoformat() in shift_weeks_set}
        for name, fn in RECOMMENDERS.items():
            recs = fn(customers, tx, articles, built, wanted=wanted["customer_id"])
            row[name] = map_at_k(recs, bought)
        per_week[scored.isoformat()] = row
    return per_week


def run(name: str, source: Path, n_weeks: int) -> dict:
    started = time.perf_counter()
    articles, customers, tx = load(source)
    stats = shop_statistics(articles, tx.drop("week"), CONTENT_COLUMNS, last_weeks=8)
    scores = baselines(articles, customers, tx, n_weeks, set(stats.demand_shift_weeks))
    report = {
        "source": str(source),
        "statistics": stats.as_dict(),
        "baselines": scores,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(f"[{name}] {json.dumps(report['statistics'])[:400]}", flush=True)
    return report


def summarise(reports: dict) -> None:
    print(
        f"\n{'shop':<22} {'customers':>9} {'articles':>8} {'rows':>10} {'re-buy':>7} {'art/comb':>8} {'wk share':>8}"
        f" {'shift wks':>9}  MAP@12 (mean of scored weeks) popularity trending repurchase  best"
    )
    for name, r in reports.items():
        s = r["statistics"]
        means = {b: sum(w[b] for w in r["baselines"].values()) / len(r["baselines"]) for b in RECOMMENDERS}
        best = max(means, key=means.get)
        print(
            f"{name:<22} {s['customers_who_bought']:>9,} {s['articles']:>8,} {s['transactions']:>10,} "
            f"{s['rebuy_share_mean']:>7.1%} {s['articles_per_attribute_combination']:>8.2f} "
            f"{s['buying_weeks_share_median']:>8.1%} {len(s['demand_shift_weeks']):>9}  "
            f"{'':>29} {means['popularity']:>10.4f} {means['trending']:>8.4f} {means['repurchase']:>10.4f}  {best}"
        )
        for week, w in r["baselines"].items():
            flag = " (demand shift)" if w["demand_shift"] else ""
            print(f"{'':<22} {week}{flag:<15} " + " ".join(f"{b} {w[b]:.4f}" for b in RECOMMENDERS))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--weeks", type=int, default=4, help="scored weeks (the last ones)")
    parser.add_argument("--profiles", default="fashion,grocery")
    parser.add_argument("--no-real", action="store_true")
    args = parser.parse_args()
    reports = {}
    if not args.no_real and REAL.exists():
        reports["real_sample"] = run("real_sample", REAL, args.weeks)
    for profile in args.profiles.split(","):
        reports[f"{profile}_{args.customers}x104"] = run(
            profile, synthetic_source(args.customers, 104, profile=profile), args.weeks
        )
    summarise(reports)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "shop_profiles.json").write_text(json.dumps(reports, indent=2, default=str))
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
