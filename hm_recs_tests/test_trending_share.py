"""`benchmarks/trending_share.py`: the share of a week's purchases that are of the previous week's 12 best
sellers, on a hand-made shop where the answer is known."""

import datetime as dt
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from trending_share import trending_share  # noqa: E402


def test_share_of_next_week_in_last_weeks_top_12(tmp_path):
    first, second = dt.date(2020, 9, 2), dt.date(2020, 9, 9)  # two Wednesday weeks
    # week 1: articles 0..11 sold 3 times each, 12..19 once: the top 12 is 0..11
    week1 = [
        (first + dt.timedelta(days=i % 7), f"c{i}", f"{a:010d}")
        for i, a in enumerate([a for a in range(12) for _ in range(3)] + list(range(12, 20)))
    ]
    # week 2: 10 rows, 4 of them of last week's top 12 (one of those a second unit of the same article)
    week2 = [
        (second + dt.timedelta(days=i % 7), f"c{i}", f"{a:010d}")
        for i, a in enumerate([0, 0, 5, 11, 12, 13, 19, 20, 21, 22])
    ]
    rows = week1 + week2
    pl.DataFrame(
        {
            "t_dat": [r[0] for r in rows],
            "customer_id": [r[1] for r in rows],
            "article_id": [r[2] for r in rows],
            "price": [0.01] * len(rows),
            "sales_channel_id": [1] * len(rows),
        }
    ).write_parquet(tmp_path / "transactions_train.parquet")
    pl.DataFrame({"article_id": [f"{a:010d}" for a in range(23)]}).write_parquet(tmp_path / "articles.parquet")
    pl.DataFrame({"customer_id": [f"c{i}" for i in range(44)]}).write_parquet(tmp_path / "customers.parquet")

    result = trending_share(tmp_path, n_weeks=1)
    assert result["share_by_week"] == {"2020-09-09": 0.4}
    assert result["articles"] == 23 and result["customers"] == 44 and result["rows_per_week"] == 10
