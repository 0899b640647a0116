"""Global sequence model after Heinz, Bracher & Vollgraf (2017), "An LSTM-based dynamic customer model for
fashion recommendation".

A customer's purchase history is a time-ordered sequence of article content vectors ("Fashion DNA", a fixed
input matrix, so unseen articles have a vector too) with time stamps. A recurrent encoder (LSTM, or a causal
transformer encoder: `encoder`) reads it; each step's input is the projected content vector of the article
bought, concatenated with time features. Its output at the last purchase, projected to `dim`, is the customer's
style vector s. An article tower projects content vectors to `dim` (a). Score = s . a + b + w . trend, with b a
learned per-article bias (`article_bias`) and w . trend a learned weighting of the article's log sales shares in
the 2 weeks before the scored date (`trend`: fashion demand follows launches, lifecycles and promotions, which a
static bias cannot; 50k synthetic customers: held-out recall@100 0.39 with it, 0.31 without). The trend
inputs of `score` are those of the day `trend_day` (training sets the day after its cutoff); `top_k` and
`evaluate` compute them from the sequences for any other `as_of`.

Training is teacher-forced next-purchase prediction: the output at position t (having read items 0..t) predicts
the item at t + 1, against `negatives` sampled negatives (uniform mixed with popularity-weighted,
`common.sample_negatives`), with BCE or "sigmoid_rank" (-log sigmoid(pos - neg), averaged). The logits in the
loss are corrected by -log(k q(i)), q being the exact negative sampling distribution (`logq_correction`): the
optimal BCE logit against sampled negatives is log p(i | history) / (k q(i)), so the score itself estimates
log p(i | history) and popularity-weighted (hard) negatives do not teach the model to discount popular articles
(without it, recall@100 on 50k synthetic customers falls from 0.39 to 0.26, below popularity's 0.28).
Negatives equal to the positive are ignored. Training starts from the popularity prior (trend weights 1/2 each,
or the bias = overall log shares).

Repeat-aware (`repeat`, a repeat/explore mixture as in the next-basket literature): an article the customer bought
before gets a learned repeat term added to its score, from what predicts a re-buy: how often the customer bought it,
the days since the last time, and those days over the article's usual cycle (the median days between two purchases
of it by one customer in the training data, `cycle_days`). The term starts at 0 (the popularity prior still holds);
to learn when a re-buy is due and when not, each target also gets `history_negatives` negatives drawn from the
customer's own earlier items. The content vector cannot tell apart articles that share every attribute: with
`article_identity`, articles sold at least `id_min_sales` times in training also get a learned identity embedding
added to their article vector, replaced by zeros with probability `id_dropout` while training (so the content side stays
usable alone, for new articles) and regularised (`id_weight_decay`).

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
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
import torch
from torch import nn

from hm_recs.models.common import (
    DAY_SCALE,
    IdentityOptimiser,
    evaluation_due,
    fixed_sample,
    identity_embedding,
    log_shares,
    negative_distribution,
    purchase_cycles,
    repeat_features,
    repeat_mlp,
    repeat_term,
    retrieval_metrics,
    sample_negatives,
    set_seed,
    take_rows,
    with_identity,
)

EPOCH = dt.date(1970, 1, 1)


TREND_WEEKS = 2


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01 (what polars stores for a Date)."""
    return (day - EPOCH).days


@dataclass(frozen=True)
class SequenceConfig:
    dim: int = 64
    hidden: int = 128
    encoder: str = "lstm"  # "lstm" | "transformer"
    max_len: int = 50
    negatives: int = 20
    loss: str = "bce"  # "bce" | "sigmoid_rank"
    epochs: int = 5
    batch_size: int = 256  # sequences (customers) per batch
    lr: float = 2e-3
    weight_decay: float = 1e-6
    popularity_negative_share: float = 0.5
    seed: int = 0
    # options beyond the paper's core (defaults measured on synthetic data, see the module docstring)
    article_bias: bool = True  # learned per-article bias
    day_of_year: bool = True  # annual phase (sin, cos) of the target date as a time feature
    logq_correction: bool = True
    trend: bool = True  # learned weight on the articles' sales shares of the 2 weeks before the target date
    transformer_layers: int = 2
    transformer_heads: int = 4
    # repeat-aware scoring (module docstring): a learned term for the customer's own earlier articles
    repeat: bool = True
    repeat_hidden: int = 16
    history_negatives: int = 4
    # article identity embedding (added to the article vector) for articles with enough sales
    article_identity: bool = True
    id_min_sales: int = 5
    id_dropout: float = 0.5
    id_weight_decay: float = 1e-4
    # Bounded cost per week whatever the number of customers: an epoch trains on at most this many customers'
    # sequences, a fresh seeded sample each epoch when there are more (the gate's fixed loss reads a fixed sample
    # of as many). 150,000 samples nothing up to about 150k customers (10 % of H&M: 137k customers, all of them
    # trained on as before); at full size (1.37M) an epoch then costs about 1.1-1.6x one at 10 %, not 10x.
    max_sequences_per_epoch: int = 150_000
    # held-out figures (a pass over every held-out customer x article) after the last epoch only (0), or also
    # every n epochs; the training loss is logged every epoch
    evaluate_every: int = 0

    def __post_init__(self):
        if self.max_sequences_per_epoch < 1 or self.evaluate_every < 0:
            raise ValueError(
                "max_sequences_per_epoch must be >= 1 and evaluate_every >= 0, "
                f"got {self.max_sequences_per_epoch} and {self.evaluate_every}"
            )


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


def _bin(days: torch.Tensor, as_of: dt.date) -> torch.Tensor:
    return (day_number(as_of) - 1 - days.long()) // 7


class SequenceModel(nn.Module):
    def __init__(self, article_content: torch.Tensor, config: SequenceConfig):
        super().__init__()
        if config.encoder not in ("lstm", "transformer"):
            raise ValueError(f"unknown encoder {config.encoder!r}")
        if config.loss not in ("bce", "sigmoid_rank"):
            raise ValueError(f"unknown loss {config.loss!r}")
        self.config = config
        content = article_content.float()
        self.n_articles, n_features = content.shape
        # row n_articles = padding (zeros); not saved in the state dict: the content matrix is an input
        self.register_buffer("content", torch.cat([content, torch.zeros(1, n_features)]), persistent=False)
        self.n_time = 4 if config.day_of_year else 2
        h = config.hidden
        self.input_projection = nn.Sequential(nn.Linear(n_features, h), nn.ReLU())
        if config.encoder == "lstm":
            self.lstm = nn.LSTM(h + self.n_time, h, batch_first=True)
        else:
            self.transformer_input = nn.Linear(h + self.n_time, h)
            self.position = nn.Embedding(max(config.max_len, 1), h)
            nn.init.normal_(self.position.weight, std=0.02)
            layer = nn.TransformerEncoderLayer(
                h, config.transformer_heads, dim_feedforward=2 * h, dropout=0.0, batch_first=True, norm_first=True
            )
            self.transformer = nn.TransformerEncoder(layer, config.transformer_layers, enable_nested_tensor=False)
            self.transformer_norm = nn.LayerNorm(h)
        self.head = nn.Linear(h, config.dim)
        self.article_tower = nn.Sequential(nn.Linear(n_features, h), nn.ReLU(), nn.Linear(h, config.dim))
        self.bias = nn.Parameter(torch.zeros(self.n_articles)) if config.article_bias else None
        # identity: an embedding row per article, used for those with `known_article` (set by training)
        self.article_id = identity_embedding(self.n_articles, config.dim) if config.article_identity else None
        if self.article_id is not None:
            self.register_buffer("known_article", torch.zeros(self.n_articles, dtype=torch.bool))
        if config.repeat:
            self.repeat = repeat_mlp(config.repeat_hidden)
            self.register_buffer("cycle_days", torch.full((self.n_articles,), 28.0))
        else:
            self.repeat = None
        if config.trend:
            self.trend = nn.Linear(TREND_WEEKS, 1, bias=False)
            nn.init.zeros_(self.trend.weight)
            # log sales shares of the TREND_WEEKS weeks before the day `trend_day` that `score` is for (set by
            # training: the day after its cutoff; `set_trend` moves it); saved with the weights
            self.register_buffer("current_trend", torch.zeros(self.n_articles, TREND_WEEKS))
            self.register_buffer("trend_day", torch.tensor(0, dtype=torch.int64))
        else:
            self.trend = None

    # -- customer side --------------------------------------------------------------------------------------
    def _time_features(self, days: torch.Tensor, lengths: torch.Tensor, as_of_day: int) -> torch.Tensor:
        """[B, L, n_time]; the target date of step t is the day of item t + 1, `as_of_day` at the last item."""
        days = days.long()
        b, width = days.shape
        since = torch.zeros_like(days)
        since[:, 1:] = days[:, 1:] - days[:, :-1]
        target = torch.cat([days[:, 1:], torch.zeros(b, 1, dtype=days.dtype)], dim=1)
        target[torch.arange(b), lengths - 1] = as_of_day
        valid = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
        since = since.clamp(min=0).float().log1p() / DAY_SCALE
        until = (target - days).clamp(min=0).float().log1p() / DAY_SCALE
        features = [since, until]
        if self.config.day_of_year:
            phase = target.float() * (2 * math.pi / 365.25)
            features += [torch.sin(phase), torch.cos(phase)]
        return torch.stack(features, dim=-1) * valid.unsqueeze(-1)

    def encode(self, articles: torch.Tensor, days: torch.Tensor, lengths: torch.Tensor, as_of_day: int) -> torch.Tensor:
        """Style vectors after every position: [B, L, dim] (causal: position t has read items 0..t only)."""
        x = torch.cat(
            [self.input_projection(self.content[articles.long()]), self._time_features(days, lengths, as_of_day)],
            dim=-1,
        )
        if self.config.encoder == "lstm":
            out, _ = self.lstm(x)
        else:
            width = x.shape[1]
            if width > self.position.num_embeddings:
                raise ValueError(f"sequences of {width} items, the model was built for max_len {self.config.max_len}")
            x = self.transformer_input(x) + self.position(torch.arange(width))
            mask = nn.Transformer.generate_square_subsequent_mask(width)
            out = self.transformer_norm(self.transformer(x, mask=mask, is_causal=True))
        return self.head(out)

    def _batch(self, data: SequenceData, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        rows = torch.as_tensor(rows, dtype=torch.long)
        lengths = data.lengths[rows]
        width = int(lengths.max()) if len(rows) else 1
        return data.articles[rows, :width], data.days[rows, :width], lengths, rows

    def customer_vectors(self, data: SequenceData, customer_rows: torch.Tensor, as_of: dt.date) -> torch.Tensor:
        """[B, dim] style vectors of the customers at rows `customer_rows` of `data` (see `SequenceData.rows`),
        for predicting purchases from `as_of` on."""
        articles, days, lengths, _ = self._batch(data, customer_rows)
        if len(lengths) == 0:
            return torch.zeros(0, self.config.dim)
        out = self.encode(articles, days, lengths, day_number(as_of))
        return out[torch.arange(len(lengths)), lengths - 1]

    # -- article side and scores ----------------------------------------------------------------------------
    def article_vectors(self, article_idx: torch.Tensor | None = None) -> torch.Tensor:
        """[n_articles, dim] (or the given articles'): the content tower, plus the identity embedding of the
        articles that have one (while training, dropped to zeros with probability `id_dropout`)."""
        idx = torch.arange(self.n_articles) if article_idx is None else article_idx.long()
        vectors = self.article_tower(self.content[idx])
        return with_identity(
            vectors, self.article_id, getattr(self, "known_article", None), idx, self.config.id_dropout, self.training
        )

    def repeat_term(self, items: torch.Tensor, times: torch.Tensor, since_days: torch.Tensor) -> torch.Tensor:
        """The repeat term of `items` [B, K] that the customer bought `times` times before, the last time
        `since_days` before the day scored (`prefix_matches`); 0 for items never bought before."""
        if self.repeat is None:
            return torch.zeros(items.shape)
        return repeat_term(self.repeat, items, times > 0, times, since_days, self.cycle_days)

    def own_repeat_scores(
        self, articles: torch.Tensor, days: torch.Tensor, lengths: torch.Tensor, as_of_day: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The repeat term of every article in each sequence (rows of `articles` [B, L]), scored for `as_of_day`:
        (row, article_idx, value) of each (customer, article) once."""
        width = articles.shape[1]
        valid = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
        a = articles.long()
        same = (a.unsqueeze(2) == a.unsqueeze(1)) & valid.unsqueeze(1) & valid.unsqueeze(2)  # [B, L, L]
        later = same & (torch.arange(width).view(1, 1, -1) > torch.arange(width).view(1, -1, 1))
        last = valid & ~later.any(-1)  # the latest occurrence of each article stands for it
        row, pos = last.nonzero(as_tuple=True)
        times = same[row, pos].sum(-1)
        article = a[row, pos]
        value = self.repeat(
            repeat_features(times, as_of_day - days[row, pos].long(), self.cycle_days[article])
        ).squeeze(-1)
        return row, article, value

    def article_bias(self, article_idx: torch.Tensor | None = None, trend: torch.Tensor | None = None) -> torch.Tensor:
        """Learned bias + trend term of all (or the given) articles; `trend` [..., TREND_WEEKS] log shares of
        those articles (default: `current_trend`)."""
        n = self.n_articles if article_idx is None else len(article_idx)
        bias = (
            torch.zeros(n)
            if self.bias is None
            else (self.bias if article_idx is None else take_rows(self.bias, article_idx))
        )
        if self.trend is not None:
            if trend is None:
                trend = self.current_trend if article_idx is None else self.current_trend[article_idx]
            bias = bias + self.trend(trend).squeeze(-1)
        return bias

    def set_trend(self, data: SequenceData, as_of: dt.date) -> None:
        """Make `score` use the sales of the TREND_WEEKS weeks before `as_of` in `data`."""
        if self.trend is not None:
            self.current_trend.copy_(trend_table(data, as_of)[:TREND_WEEKS].T)
            self.trend_day.fill_(day_number(as_of))

    def trend_for(self, data: SequenceData, as_of: dt.date) -> torch.Tensor | None:
        """[n_articles, TREND_WEEKS] trend inputs for scoring as of `as_of`: None (= `current_trend`) when that
        is the day it was set for, else computed from `data` (the model is not changed)."""
        if self.trend is None or int(self.trend_day) == day_number(as_of):
            return None
        return trend_table(data, as_of)[:TREND_WEEKS].T

    def score(
        self,
        customer_vectors: torch.Tensor,
        article_idx: torch.Tensor | None = None,
        article_vectors: torch.Tensor | None = None,
        trend: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, n_articles] (or [B, len(article_idx)]) scores s . a + b (+ the trend term, as of `trend_day`).
        `article_vectors` (of `article_idx`, or of all articles) may be passed precomputed; `trend`: all
        articles' trend inputs (`trend_for`) to score as of another day."""
        if article_idx is not None:
            article_idx = torch.as_tensor(article_idx, dtype=torch.long)
        vectors = self.article_vectors(article_idx) if article_vectors is None else article_vectors
        if trend is not None and article_idx is not None:
            trend = trend[article_idx]
        return customer_vectors @ vectors.T + self.article_bias(article_idx, trend)


@dataclass
class TrainingResult:
    model: SequenceModel
    # per epoch: epoch, loss, seconds, examples (sequences trained on); + auc, recall_at_100, customers with
    # held_out after the last epoch (and every `evaluate_every` epochs)
    history: list[dict]
    config: SequenceConfig
    # loss over the targets of a fixed sample of sequences (all up to max_sequences_per_epoch) before training,
    # on a fixed set of negatives
    starting_loss: float = float("nan")
    final_loss: float = float("nan")  # the same after training

    @property
    def loss_fell(self) -> bool:
        return self.final_loss < self.starting_loss


def prefix_matches(
    articles: torch.Tensor,
    days: torch.Tensor,
    lengths: torch.Tensor,
    seq: torch.Tensor,
    pos: torch.Tensor,
    items: torch.Tensor,
    n_articles: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each target t (sequence `seq[t]` of the batch `articles` [B, L] in time order, predicted from its items
    0..`pos[t]`) and each of its `items` [T, K]: how often the item is among those earlier items, and the day of the
    latest of them (any day where never). One sort of the batch's (sequence, article, position) keys and two binary
    searches per pair: the cost grows with T x K x log(B x L), not with T x K x L."""
    b, width = articles.shape
    valid = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
    position = torch.arange(width).expand(b, width)
    pair = torch.arange(b).unsqueeze(1) * (n_articles + 1) + articles.long()  # (sequence, article)
    keys, _ = (pair * width + position)[valid].sort()
    base = (seq.unsqueeze(1) * (n_articles + 1) + items) * width  # [T, K]
    first = torch.searchsorted(keys, base)
    after = torch.searchsorted(keys, base + pos.unsqueeze(1), right=True)  # occurrences at positions <= pos
    times = after - first
    latest = keys[(after - 1).clamp(min=0)] % width if len(keys) else torch.zeros_like(base)
    return times, days.long()[seq.unsqueeze(1), latest]


def batch_loss(
    model: SequenceModel,
    data: SequenceData,
    rows: torch.Tensor,
    generator: torch.Generator,
    popularity: torch.Tensor | None = None,
    trend: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """Mean loss over the targets of the sequences at `rows` and their number; negatives drawn with `generator`
    (pass a generator seeded alike to get the same negatives twice). `trend`: `trend_table(data, cutoff + 1)`
    (computed here if the model has a trend term and none is given)."""
    config = model.config
    articles, days, lengths, _ = model._batch(data, rows)
    targets = data.basket_start[torch.as_tensor(rows, dtype=torch.long), : articles.shape[1]]  # a copy
    targets[:, 0] = False
    seq, pos = targets[:, 1:].nonzero(as_tuple=True)  # predicting item pos + 1 from the output at pos
    if len(seq) == 0:
        return torch.zeros((), requires_grad=True), 0
    out = model.encode(articles, days, lengths, day_number(data.cutoff + dt.timedelta(days=1)))
    style = out[seq, pos]  # [T, dim]
    positive = articles[seq, pos + 1].long()
    negatives = sample_negatives(
        model.n_articles, (len(seq), config.negatives), generator, popularity, config.popularity_negative_share
    )
    if model.repeat is not None and config.history_negatives:  # the customer's own earlier items: when is a re-buy due
        earlier = (
            torch.rand((len(seq), config.history_negatives), generator=generator) * (pos + 1).unsqueeze(1)
        ).long()
        negatives = torch.cat([negatives, articles[seq.unsqueeze(1), earlier].long()], dim=1)
    items = torch.cat([positive.unsqueeze(1), negatives], dim=1)  # [T, 1 + n]
    unique, inverse = torch.unique(items, return_inverse=True)
    vectors = take_rows(model.article_vectors(unique), inverse)  # [T, 1 + n, dim]
    if model.trend is not None:
        if trend is None:
            trend = trend_table(data, data.cutoff + dt.timedelta(days=1))
        target_bin = _bin(days[seq, pos + 1], data.cutoff + dt.timedelta(days=1)).unsqueeze(1)  # [T, 1]
        item_trend = torch.stack([trend[target_bin + 1 + w, items] for w in range(TREND_WEEKS)], dim=-1)
        bias = model.article_bias(items.reshape(-1), item_trend.reshape(-1, TREND_WEEKS)).view(items.shape)
    else:
        bias = take_rows(model.article_bias(unique), inverse)
    logits = torch.einsum("td,tkd->tk", style, vectors) + bias  # a batched matmul: no [T, 1 + n, dim] product
    history_draws = config.history_negatives if model.repeat is not None else 0
    if model.repeat is not None:
        times, last_day = prefix_matches(articles, days, lengths, seq, pos, items, model.n_articles)
        logits = logits + model.repeat_term(items, times, days[seq, pos + 1].long().unsqueeze(1) - last_day)
    if config.logq_correction:
        # the expected number of draws of each item: k from q (uniform + popularity) and, when the customer's own
        # earlier items are drawn too, H from the prefix (an item's share of it)
        q = negative_distribution(model.n_articles, popularity, config.popularity_negative_share)
        expected = config.negatives * q[items]
        if history_draws:
            expected = expected + history_draws * times / (pos + 1).unsqueeze(1)
        logits = logits - torch.log(expected).float()
    weight = torch.ones_like(logits)
    weight[:, 1:] = (items[:, 1:] != positive.unsqueeze(1)).float()  # accidental hits are no negatives
    if config.loss == "bce":
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1.0
        losses = nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        loss = (losses * weight).sum() / weight.sum()
    elif config.loss == "sigmoid_rank":
        losses = -nn.functional.logsigmoid(logits[:, :1] - logits[:, 1:])
        loss = (losses * weight[:, 1:]).sum() / weight[:, 1:].sum().clamp(min=1)
    else:
        raise ValueError(f"unknown loss {config.loss!r}")
    return loss, len(seq)


def fixed_loss(
    model: SequenceModel,
    data: SequenceData,
    rows: torch.Tensor,
    popularity: torch.Tensor | None,
    trend: torch.Tensor | None,
    seed: int,
    batch_size: int,
) -> float:
    """Mean loss over every target of `rows`, with negatives drawn from a generator seeded with `seed`: the same
    negatives before and after training, so the gate's "loss fell" is not the noise of fresh negatives."""
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for batch in torch.split(rows, batch_size):
            loss, n_targets = batch_loss(model, data, batch, generator, popularity, trend)
            total, count = total + loss.item() * n_targets, count + n_targets
    return total / max(count, 1)


def add_repeat_scores(
    model: SequenceModel,
    scores: torch.Tensor,
    articles: torch.Tensor,
    days: torch.Tensor,
    lengths: torch.Tensor,
    as_of_day: int,
    columns: torch.Tensor | None = None,
) -> torch.Tensor:
    """`scores` [B, C] plus each customer's repeat term at their own earlier articles (columns: article_idx ->
    column of `scores`, -1 for articles not scored; default: column = article_idx)."""
    if model.repeat is None:
        return scores
    row, article, value = model.own_repeat_scores(articles, days, lengths, as_of_day)
    column = article if columns is None else columns[article]
    keep = column >= 0
    return scores.index_put((row[keep], column[keep]), value[keep], accumulate=True)


def _scorer(model: SequenceModel, data: SequenceData, as_of: dt.date) -> Callable[[torch.Tensor], torch.Tensor]:
    vectors, trend = model.article_vectors(), model.trend_for(data, as_of)

    def score_chunk(customer_idx: torch.Tensor) -> torch.Tensor:
        rows = torch.as_tensor(data.rows(customer_idx.numpy()))
        scores = model.score(model.customer_vectors(data, rows, as_of), article_vectors=vectors, trend=trend)
        articles, days, lengths, _ = model._batch(data, rows)
        return add_repeat_scores(model, scores, articles, days, lengths, day_number(as_of))

    return score_chunk


def evaluate(model: SequenceModel, data: SequenceData, held_out: pl.DataFrame, as_of: dt.date, k: int = 100):
    """Retrieval figures on `held_out` (customer_idx, article_idx) for the customers with history in `data`."""
    known = held_out.filter(pl.col("customer_idx").is_in(pl.Series(data.customers.numpy()).implode()))
    model.eval()
    with torch.no_grad():
        return retrieval_metrics(_scorer(model, data, as_of), known, model.n_articles, k=k)


def train_sequence_model(
    purchases: pl.DataFrame,
    article_content: torch.Tensor,
    cutoff: dt.date,
    config: SequenceConfig = SequenceConfig(),
    held_out: pl.DataFrame | None = None,
    log: Callable[[str], None] = print,
) -> TrainingResult:
    """Trains on the purchases up to `cutoff` (customer_idx, article_idx, t_dat as pl.Date), each epoch on at
    most `max_sequences_per_epoch` customers' sequences (a fresh sample when there are more); logs one line per
    epoch: loss, seconds and, given `held_out` (customer_idx, article_idx of purchases after cutoff), after the last
    epoch (or every `evaluate_every`) AUC and recall@100 via `common.retrieval_metrics` with customer vectors as of
    the day after cutoff, on the held-out customers with history (a sequence model has nothing to say about the
    others)."""
    generator = set_seed(config.seed)
    n_articles = article_content.shape[0]
    data = build_sequences(purchases, n_articles, cutoff, config.max_len, generator)
    model = SequenceModel(article_content, config)
    valid = torch.arange(data.max_length).unsqueeze(0) < data.lengths.unsqueeze(1)
    popularity = torch.bincount(data.articles[valid].long(), minlength=n_articles)
    optimiser = IdentityOptimiser(model, model.article_id, config.lr, config.weight_decay, config.id_weight_decay)
    with torch.no_grad():
        if model.article_id is not None:
            model.known_article.copy_(popularity >= config.id_min_sales)
        if model.repeat is not None:
            model.cycle_days.copy_(article_cycles(data))
    log(
        f"sequence ({config.encoder}): {len(data):,} customers' sequences"
        + (
            f", identity embeddings for {int(model.known_article.sum()):,} of {n_articles:,} articles (>="
            f" {config.id_min_sales} sales)"
            if model.article_id is not None
            else ""
        )
        + (
            f", repeat term (median cycle {float(model.cycle_days.median()):.0f} days)"
            if model.repeat is not None
            else ""
        )
    )
    with torch.no_grad():  # start from a popularity prior: the recent sales shares, else the overall ones
        if model.trend is not None:
            model.trend.weight.fill_(1.0 / TREND_WEEKS)
        elif model.bias is not None:
            model.bias.copy_(torch.log((popularity.float() + 1) / (popularity.sum() + n_articles)))
    trainable = torch.nonzero(data.targets.any(1)).squeeze(1)
    as_of = cutoff + dt.timedelta(days=1)
    trend = trend_table(data, as_of) if model.trend is not None else None
    model.set_trend(data, as_of)
    budget = config.max_sequences_per_epoch
    loss_rows = trainable[fixed_sample(len(trainable), budget, config.seed + 2)]
    by_length = loss_rows[torch.argsort(data.lengths[loss_rows], stable=True)]  # little padding per batch
    starting_loss = fixed_loss(model, data, by_length, popularity, trend, config.seed + 1, config.batch_size)
    history = []
    for epoch in range(config.epochs):
        started, total, count = time.perf_counter(), 0.0, 0
        model.train()
        rows = trainable
        if len(rows) > budget:
            rows = rows[torch.randperm(len(rows), generator=generator)[:budget]]
        # batches of sequences of similar length (little padding), in random order
        tiebreak = torch.rand(len(rows), generator=generator, dtype=torch.float64).numpy()
        order = rows[np.lexsort((tiebreak, data.lengths[rows].numpy()))]
        batches = list(torch.split(order, config.batch_size))
        for b in torch.randperm(len(batches), generator=generator).tolist():
            loss, n_targets = batch_loss(model, data, batches[b], generator, popularity, trend)
            if n_targets == 0:
                continue
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, count = total + loss.item() * n_targets, count + n_targets
        figures = {
            "epoch": epoch + 1,
            "loss": total / max(count, 1),
            "seconds": round(time.perf_counter() - started, 3),
            "examples": len(rows),
        }
        if held_out is not None and held_out.height and evaluation_due(epoch + 1, config.epochs, config.evaluate_every):
            figures.update(evaluate(model, data, held_out, as_of).as_dict())
        history.append(figures)
        extra = f", AUC {figures['auc']:.3f}, recall@100 {figures['recall_at_100']:.3f}" if "auc" in figures else ""
        log(
            f"sequence ({config.encoder}) epoch {figures['epoch']}: loss {figures['loss']:.4f} "
            f"({len(rows):,} of {len(trainable):,} sequences, {figures['seconds']:.1f} s){extra}"
        )
    final_loss = fixed_loss(model, data, by_length, popularity, trend, config.seed + 1, config.batch_size)
    log(f"sequence ({config.encoder}): training loss on fixed negatives {starting_loss:.4f} -> {final_loss:.4f}")
    model.eval()
    return TrainingResult(model, history, config, starting_loss, final_loss)


def top_k(
    result_or_model: TrainingResult | SequenceModel,
    data: SequenceData,
    customer_idx: np.ndarray,
    candidate_articles: np.ndarray,
    as_of: dt.date,
    k: int = 100,
    chunk: int = 2048,
) -> pl.DataFrame:
    """customer_idx, article_idx, score, rank (1..k) for each requested customer with history in `data`, scored
    against the candidate article indices only, in chunks of customers (memory: chunk x len(candidates)).
    Customer vectors and the trend term are as of `as_of`."""
    model = result_or_model.model if isinstance(result_or_model, TrainingResult) else result_or_model
    model.eval()
    customer_idx = np.asarray(customer_idx, dtype=np.int64).reshape(-1)
    rows = data.rows(customer_idx)
    customer_idx, rows = customer_idx[rows >= 0], rows[rows >= 0]
    candidates = torch.from_numpy(
        np.array(candidate_articles, dtype=np.int64)
    )  # a writable copy (polars hands out read-only arrays)
    k = min(k, len(candidates))
    as_of_day = day_number(as_of)
    parts = []
    with torch.no_grad():
        trend = model.trend_for(data, as_of)
        vectors = model.article_vectors(candidates)
        bias = model.article_bias(candidates, None if trend is None else trend[candidates])
        columns = torch.full((model.n_articles,), -1, dtype=torch.long)
        columns[candidates] = torch.arange(len(candidates))
        for start in range(0, len(rows) if k else 0, chunk):
            batch = torch.as_tensor(rows[start : start + chunk])
            articles, days, lengths, _ = model._batch(data, batch)
            style = model.encode(articles, days, lengths, as_of_day)[torch.arange(len(batch)), lengths - 1]
            full = add_repeat_scores(model, style @ vectors.T + bias, articles, days, lengths, as_of_day, columns)
            scores, positions = torch.topk(full, k, dim=1)
            parts.append(
                pl.DataFrame(
                    {
                        "customer_idx": np.repeat(customer_idx[start : start + chunk], k),
                        "article_idx": candidates[positions].reshape(-1).numpy().astype(np.int64),
                        "score": scores.reshape(-1).numpy().astype(np.float64),
                        "rank": np.tile(np.arange(1, k + 1, dtype=np.int16), len(batch)),
                    }
                )
            )
    return (
        pl.concat(parts)
        if parts
        else pl.DataFrame(
            schema={"customer_idx": pl.Int64, "article_idx": pl.Int64, "score": pl.Float64, "rank": pl.Int16}
        )
    )


def state(result: TrainingResult) -> dict:
    """Everything needed to rebuild the model with the same content matrix (plain values and tensors only, so
    `common.from_bytes` loads it with weights_only=True)."""
    return {
        "config": asdict(result.config),
        "weights": result.model.state_dict(),
        "content_shape": list(result.model.content[:-1].shape),
        "history": result.history,
    }


def load(state: dict, article_content: torch.Tensor) -> SequenceModel:
    if list(article_content.shape) != list(state["content_shape"]):
        raise ValueError(
            f"content matrix {tuple(article_content.shape)} does not match the trained {tuple(state['content_shape'])}"
        )
    # artefacts written before the repeat term and the identity embedding were trained without them
    model = SequenceModel(
        article_content, SequenceConfig(**{"repeat": False, "article_identity": False, **state["config"]})
    )
    model.load_state_dict(state["weights"])
    model.eval()
    return model
