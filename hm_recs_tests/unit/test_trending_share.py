"""`core.shop_statistics.trending_share_by_week` (what `benchmarks/trending_share.py` reports): the share of a
week's purchases that are of the previous week's 12 best sellers, on a hand-made shop where the answer is known."""

import datetime as dt

import polars as pl

from hm_recs.core.shop_statistics import trending_share_by_week


def test_share_of_next_week_in_last_weeks_top_12():
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
    transactions = pl.DataFrame(
        {"t_dat": [str(r[0]) for r in rows], "customer_id": [r[1] for r in rows], "article_id": [r[2] for r in rows]}
    )
    assert trending_share_by_week(transactions, [first, second]) == {"2020-09-09": 0.4}
    # dates read as dates (Parquet) give the same
    dated = transactions.with_columns(pl.col("t_dat").str.to_date())
    assert trending_share_by_week(dated.lazy(), [first, second]) == {"2020-09-09": 0.4}
