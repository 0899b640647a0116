"""How strong the trending baseline is on a dataset, from the data alone: the share of each week's purchases that
are of the previous week's 12 best-selling articles (what "trending" recommends to everyone), mean over the
last weeks, with the catalogue size.

    python benchmarks/trending_share.py [--customers 50000] [--scale 0.1 1.0] [--weeks 4]

The generator's article popularity is a power law over a catalogue that scales with the customers (H&M's
ratio), so a small synthetic shop concentrates its sales on fewer articles than H&M's 105k, and the same 12
articles capture more of next week's purchases. A MAP@12 ratio to trending therefore depends on the shop's
size: issue 5's 1.7x was measured by the public solutions at H&M's full size. Data are the benchmarks' own,
generated once and cached (`backtest.synthetic_source`, `full_scale.generated_source`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl
from full_scale import HM_WEEKS, generated_source, scan_raw, source_weeks


def trending_share(source: Path, n_weeks: int) -> dict:
    """Mean and per-week share of week t's purchase rows whose article was among week t-1's 12 best sellers
    (`core.shop_statistics.trending_share_by_week`), with the shop's size."""
    from hm_recs.core.shop_statistics import as_date, trending_share_by_week

    transactions = scan_raw(source, "transactions_train").select("t_dat", "article_id")
    weeks = source_weeks(source)[-(n_weeks + 1) :]
    shares = trending_share_by_week(transactions, weeks)
    rows = transactions.filter(as_date(pl.col("t_dat")) >= weeks[1]).select(pl.len()).collect().item()
    articles = scan_raw(source, "articles").select(pl.len()).collect().item()
    customers = scan_raw(source, "customers").select(pl.len()).collect().item()
    return {
        "customers": customers,
        "articles": articles,
        "rows_per_week": rows / len(shares),
        "share_mean": sum(shares.values()) / len(shares),
        "share_by_week": shares,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--customers",
        type=int,
        nargs="*",
        default=[50_000],
        help="synthetic shops of this many customers x 104 weeks (the backtest's data)",
    )
    parser.add_argument("--scale", type=float, nargs="*", default=[0.1, 1.0], help="shares of H&M's size")
    parser.add_argument("--weeks", type=int, default=4, help="last weeks averaged")
    args = parser.parse_args(argv)
    from backtest import synthetic_source

    sources = [(f"synthetic {n:,} customers", synthetic_source(n, 104)) for n in args.customers]
    sources += [(f"H&M size x {s:g}", generated_source(s, HM_WEEKS)) for s in args.scale]
    print(f"{'data':<28} {'customers':>10} {'articles':>9} {'rows/week':>10}  top-12 share of next week's purchases")
    for name, source in sources:
        r = trending_share(source, args.weeks)
        weeks = " ".join(f"{v:.3f}" for v in r["share_by_week"].values())
        print(
            f"{name:<28} {r['customers']:>10,} {r['articles']:>9,} {r['rows_per_week']:>10,.0f}  "
            f"{r['share_mean']:.3f}  ({weeks})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
