"""Customers' purchase sequences as the sequence model reads them (no Dagster), and the sales figures derived
from them (trend bins, re-buy cycles).

Layout and conventions (`SequenceData`):
- sequences are LEFT-aligned (position 0 = oldest kept item) and right-padded. Both encoders are causal, so
  padding after a sequence never reaches its outputs (no packing needed); a customer's vector is the output at
  `length - 1`; batches are sequences of similar length, cut to their longest;
- several units of one article bought by a customer on one day (H&M writes one row per unit) are one item;
- a basket = the items of one customer with the same t_dat. Items are shuffled within the basket with the
  seeded generator, and only the FIRST item of each basket is a target (predicted from the prefix ending with
  the last item of the previous basket); the other items are inputs only;
- only the last `max_len` items of each customer are kept;
- time features of step t, with target date T = the day of item t + 1 (training) or `as_of` (the last step,
  when scoring): log1p(days since the previous item) / 5, log1p(days from item t to T) / 5 (0 within a basket)
  and, with `day_of_year`, sin and cos of T's annual phase.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from hm_recs.models.common import log_shares, purchase_cycles

EPOCH = dt.date(1970, 1, 1)


TREND_WEEKS = 2


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01 (what polars stores for a Date)."""
    return (day - EPOCH).days


@dataclass
class SequenceData:
    """Purchase sequences of every customer with history up to `cutoff`, one row per customer.

    Left-aligned and right-padded to `max_length` = min(max_len, longest sequence): row r holds its
    `lengths[r]` items at positions 0..lengths[r]-1, oldest first; padding has article `n_articles`
    (a zero content row), day 0 and basket_start False."""

    customers: torch.Tensor  # [N] int64 customer_idx of each row, ascending
    articles: torch.Tensor  # [N, L] int32 article_idx (padding: n_articles)
    days: torch.Tensor  # [N, L] int32 days since 1970-01-01 (padding: 0)
    basket_start: torch.Tensor  # [N, L] bool: the item is the first (after shuffling) of its basket
    lengths: torch.Tensor  # [N] int64, 1..L
    n_articles: int
    cutoff: dt.date

    def __len__(self) -> int:
        return len(self.customers)

    @property
    def max_length(self) -> int:
        return self.articles.shape[1]

    @property
    def targets(self) -> torch.Tensor:
        """[N, L] bool: item t is a training target (first item of a basket, t >= 1), predicted from 0..t-1."""
        targets = self.basket_start.clone()
        targets[:, 0] = False
        return targets

    def rows(self, customer_idx: np.ndarray | torch.Tensor) -> np.ndarray:
        """Row of each customer_idx, -1 for customers without history."""
        idx = np.asarray(customer_idx, dtype=np.int64).reshape(-1)
        known = self.customers.numpy()
        pos = np.searchsorted(known, idx)
        pos_clipped = np.minimum(pos, max(len(known) - 1, 0))
        found = (pos < len(known)) & (known[pos_clipped] == idx) if len(known) else np.zeros(len(idx), dtype=bool)
        return np.where(found, pos_clipped, -1)


def build_sequences(
    purchases: pl.DataFrame, n_articles: int, cutoff: dt.date, max_len: int, generator: torch.Generator
) -> SequenceData:
    """purchases: customer_idx (int), article_idx (int), t_dat (pl.Date); only rows with t_dat <= cutoff are used
    (cutoff = the last day of data the model may see). Duplicate rows (units) are one item; items are shuffled
    within each basket with `generator` (draws in (customer, day, article) order, so the result does not depend
    on the row order of `purchases`). Vectorised: one polars sort, numpy scatter into the padded tensors."""
    items = (
        purchases.lazy()
        .filter(pl.col("t_dat") <= pl.lit(cutoff))
        .select(
            pl.col("customer_idx").cast(pl.Int64),
            pl.col("article_idx").cast(pl.Int64),
            pl.col("t_dat").cast(pl.Date).cast(pl.Int32).alias("day"),
        )
        .unique()
        .sort("customer_idx", "day", "article_idx")
        .collect()
    )
    n = items.height
    shuffle_key = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
    items = items.with_columns(pl.Series("key", shuffle_key)).sort("customer_idx", "day", "key")
    customer = items["customer_idx"].to_numpy()
    article = items["article_idx"].to_numpy()
    day = items["day"].to_numpy()
    if n and (article.min() < 0 or article.max() >= n_articles):
        raise ValueError(f"article_idx outside 0..{n_articles - 1}")

    new_basket = np.ones(n, dtype=bool)
    if n:
        new_basket[1:] = (customer[1:] != customer[:-1]) | (day[1:] != day[:-1])
    customers, starts, counts = np.unique(customer, return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(customers)), counts)
    position = np.arange(n) - starts[group]
    lengths = np.minimum(counts, max_len)
    skip = counts - lengths  # truncation: keep the last max_len items
    keep = position >= skip[group]
    position = position[keep] - skip[group][keep]
    group = group[keep]
    width = int(lengths.max()) if len(lengths) else 1

    articles = np.full((len(customers), width), n_articles, dtype=np.int32)
    days = np.zeros((len(customers), width), dtype=np.int32)
    basket_start = np.zeros((len(customers), width), dtype=bool)
    articles[group, position] = article[keep]
    days[group, position] = day[keep]
    basket_start[group, position] = new_basket[keep]
    return SequenceData(
        customers=torch.as_tensor(customers.astype(np.int64)),
        articles=torch.as_tensor(articles),
        days=torch.as_tensor(days),
        basket_start=torch.as_tensor(basket_start),
        lengths=torch.as_tensor(lengths.astype(np.int64)),
        n_articles=n_articles,
        cutoff=cutoff,
    )


def trend_table(data: SequenceData, as_of: dt.date) -> torch.Tensor:
    """[weeks + TREND_WEEKS, n_articles] log sales shares (add-one smoothed) of the items in `data` per 7-day bin
    before `as_of`: bin j covers as_of - 7(j + 1) .. as_of - 7j - 1. A purchase on day T is scored with bins
    j(T) + 1 .. j(T) + TREND_WEEKS (the whole weeks before its own bin; nothing of day T or later); `as_of`
    itself with bins 0 .. TREND_WEEKS - 1. Bins without sales are uniform (no information)."""
    valid = torch.arange(data.max_length).unsqueeze(0) < data.lengths.unsqueeze(1)
    day, article = data.days[valid].long(), data.articles[valid].long()
    keep = day < day_number(as_of)
    bins = (day_number(as_of) - 1 - day[keep]) // 7
    n_bins = (int(bins.max()) + 1 if len(bins) else 0) + TREND_WEEKS
    counts = torch.zeros(n_bins, data.n_articles)
    counts.index_put_((bins, article[keep]), torch.ones(len(bins)), accumulate=True)
    return log_shares(counts, dim=1)


def article_cycles(data: SequenceData) -> torch.Tensor:
    """[n_articles] usual re-buy cycle of each article in the sequences (`common.article_cycles`)."""
    a, d = data.articles.long(), data.days.long()
    valid = torch.arange(data.max_length).unsqueeze(0) < data.lengths.unsqueeze(1)
    items = pl.DataFrame(
        {
            "customer": torch.arange(len(a)).unsqueeze(1).expand_as(a)[valid].numpy(),
            "article": a[valid].numpy(),
            "day": d[valid].numpy(),
        }
    )
    return purchase_cycles(items, data.n_articles)


def week_bin(days: torch.Tensor, as_of: dt.date) -> torch.Tensor:
    """The 7-day bin of each day number, counted back from `as_of` (bin 0: the 7 days before it)."""
    return (day_number(as_of) - 1 - days.long()) // 7
