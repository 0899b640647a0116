"""Training of the sequence model (`models/sequence.py`): teacher-forced next-purchase prediction against sampled
negatives, with the loss on fixed negatives (the gate's "loss fell") and the held-out figures per epoch."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import numpy as np
import polars as pl
import torch
from torch import nn

from hm_recs.models.common import (
    IdentityOptimiser,
    evaluation_due,
    fixed_sample,
    negative_distribution,
    sample_negatives,
    set_seed,
    take_rows,
)
from hm_recs.models.configs import SequenceConfig
from hm_recs.models.sequence import DATA_BUFFERS, SequenceModel, TrainingResult, evaluate
from hm_recs.models.sequence_data import (
    TREND_WEEKS,
    SequenceData,
    article_cycles,
    build_sequences,
    day_number,
    trend_table,
    week_bin,
)


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


def _sampled_items(
    model: SequenceModel,
    articles: torch.Tensor,
    seq: torch.Tensor,
    pos: torch.Tensor,
    generator: torch.Generator,
    popularity: torch.Tensor | None,
) -> torch.Tensor:
    """[T, 1 + n] each target's positive (column 0) and its negatives: from q, then (with a repeat term) some of the
    customer's own earlier items, drawn in that order with `generator`."""
    config = model.config
    positive = articles[seq, pos + 1].long()
    negatives = sample_negatives(
        model.n_articles, (len(seq), config.negatives), generator, popularity, config.popularity_negative_share
    )
    if model.repeat is not None and config.history_negatives:  # the customer's own earlier items: when is a re-buy due
        earlier = (
            torch.rand((len(seq), config.history_negatives), generator=generator) * (pos + 1).unsqueeze(1)
        ).long()
        negatives = torch.cat([negatives, articles[seq.unsqueeze(1), earlier].long()], dim=1)
    return torch.cat([positive.unsqueeze(1), negatives], dim=1)


def _item_bias(
    model: SequenceModel,
    data: SequenceData,
    target_days: torch.Tensor,
    items: torch.Tensor,
    unique: torch.Tensor,
    inverse: torch.Tensor,
    trend: torch.Tensor | None,
) -> torch.Tensor:
    """[T, 1 + n] the items' bias: with a trend term, as of the week of each target's day (`target_days` [T])."""
    if model.trend is None:
        return take_rows(model.article_bias(unique), inverse)
    if trend is None:
        trend = trend_table(data, data.cutoff + dt.timedelta(days=1))
    target_bin = week_bin(target_days, data.cutoff + dt.timedelta(days=1)).unsqueeze(1)  # [T, 1]
    item_trend = torch.stack([trend[target_bin + 1 + w, items] for w in range(TREND_WEEKS)], dim=-1)
    return model.article_bias(items.reshape(-1), item_trend.reshape(-1, TREND_WEEKS)).view(items.shape)


def _expected_draws(
    model: SequenceModel,
    items: torch.Tensor,
    popularity: torch.Tensor | None,
    times: torch.Tensor | None,
    pos: torch.Tensor,
) -> torch.Tensor:
    """The expected number of draws of each item (the log-q correction): k from q (uniform + popularity) and, when
    the customer's own earlier items are drawn too, H from the prefix (an item's share of it)."""
    config = model.config
    history_draws = config.history_negatives if model.repeat is not None else 0
    q = negative_distribution(model.n_articles, popularity, config.popularity_negative_share)
    expected = config.negatives * q[items]
    if history_draws:
        expected = expected + history_draws * times / (pos + 1).unsqueeze(1)
    return expected


def _sampled_loss(logits: torch.Tensor, items: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean `kind` loss of logits [T, 1 + n] (column 0 the positive); accidental hits are no negatives."""
    weight = torch.ones_like(logits)
    weight[:, 1:] = (items[:, 1:] != items[:, :1]).float()
    if kind == "bce":
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1.0
        losses = nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        return (losses * weight).sum() / weight.sum()
    if kind == "sigmoid_rank":
        losses = -nn.functional.logsigmoid(logits[:, :1] - logits[:, 1:])
        return (losses * weight[:, 1:]).sum() / weight[:, 1:].sum().clamp(min=1)
    raise ValueError(f"unknown loss {kind!r}")


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
    articles, days, lengths, _ = model._batch(data, rows)
    targets = data.basket_start[torch.as_tensor(rows, dtype=torch.long), : articles.shape[1]]  # a copy
    targets[:, 0] = False
    seq, pos = targets[:, 1:].nonzero(as_tuple=True)  # predicting item pos + 1 from the output at pos
    if len(seq) == 0:
        return torch.zeros((), requires_grad=True), 0
    out = model.encode(articles, days, lengths, day_number(data.cutoff + dt.timedelta(days=1)))
    style = out[seq, pos]  # [T, dim]
    items = _sampled_items(model, articles, seq, pos, generator, popularity)  # [T, 1 + n]
    unique, inverse = torch.unique(items, return_inverse=True)
    vectors = take_rows(model.article_vectors(unique), inverse)  # [T, 1 + n, dim]
    bias = _item_bias(model, data, days[seq, pos + 1], items, unique, inverse, trend)
    logits = torch.einsum("td,tkd->tk", style, vectors) + bias  # a batched matmul: no [T, 1 + n, dim] product
    times = None
    if model.repeat is not None:
        times, last_day = prefix_matches(articles, days, lengths, seq, pos, items, model.n_articles)
        logits = logits + model.repeat_term(items, times, days[seq, pos + 1].long().unsqueeze(1) - last_day)
    if model.config.logq_correction:
        logits = logits - torch.log(_expected_draws(model, items, popularity, times, pos)).float()
    return _sampled_loss(logits, items, model.config.loss), len(seq)


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


def start_from_data(model: SequenceModel, data: SequenceData, popularity: torch.Tensor) -> None:
    """What the model reads of the training sequences before any step: which articles get an identity, the
    articles' re-buy cycles, and a popularity prior (the recent sales shares, else the overall ones)."""
    config, n_articles = model.config, model.n_articles
    with torch.no_grad():
        if model.article_id is not None:
            model.known_article.copy_(popularity >= config.id_min_sales)
        if model.repeat is not None:
            model.cycle_days.copy_(article_cycles(data))
        if model.trend is not None:
            model.trend.weight.fill_(1.0 / TREND_WEEKS)
        elif model.bias is not None:
            model.bias.copy_(torch.log((popularity.float() + 1) / (popularity.sum() + n_articles)))


def warm_start_from(model: SequenceModel, init_from: SequenceModel) -> None:
    """`init_from`'s weights into `model` (after `start_from_data`), but this week's data buffers; the identity
    embedding knows the articles `init_from` knew and those this week's sales qualify."""
    fresh_known = model.known_article.clone() if model.article_id is not None else None
    own = {k: v for k, v in init_from.state_dict().items() if k not in DATA_BUFFERS}
    model.load_state_dict(own, strict=False)
    if fresh_known is not None:
        with torch.no_grad():
            model.known_article |= fresh_known


def _describe(model: SequenceModel, data: SequenceData) -> str:
    """The log line of what is trained: sequences, identity embeddings and the repeat term's cycles."""
    config = model.config
    return (
        f"sequence ({config.encoder}): {len(data):,} customers' sequences"
        + (
            f", identity embeddings for {int(model.known_article.sum()):,} of {model.n_articles:,} articles (>="
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


def epoch_batches(
    data: SequenceData, trainable: torch.Tensor, budget: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The epoch's sequences (all trainable ones, or a fresh sample of `budget`) and their batches, of sequences
    of similar length (little padding), in random order."""
    rows = trainable
    if len(rows) > budget:
        rows = rows[torch.randperm(len(rows), generator=generator)[:budget]]
    tiebreak = torch.rand(len(rows), generator=generator, dtype=torch.float64).numpy()
    order = rows[np.lexsort((tiebreak, data.lengths[rows].numpy()))]
    batches = list(torch.split(order, batch_size))
    return rows, [batches[b] for b in torch.randperm(len(batches), generator=generator).tolist()]


def _train_epoch(
    model: SequenceModel,
    data: SequenceData,
    optimiser: IdentityOptimiser,
    trainable: torch.Tensor,
    generator: torch.Generator,
    popularity: torch.Tensor,
    trend: torch.Tensor | None,
) -> dict:
    """One epoch's steps: its history record but the epoch number (mean loss per target, seconds, examples)."""
    config = model.config
    started, total, count = time.perf_counter(), 0.0, 0
    model.train()
    rows, batches = epoch_batches(data, trainable, config.max_sequences_per_epoch, config.batch_size, generator)
    for batch in batches:
        loss, n_targets = batch_loss(model, data, batch, generator, popularity, trend)
        if n_targets == 0:
            continue
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total, count = total + loss.item() * n_targets, count + n_targets
    return {"loss": total / max(count, 1), "seconds": round(time.perf_counter() - started, 3), "examples": len(rows)}


def train_sequence_model(
    purchases: pl.DataFrame,
    article_content: torch.Tensor,
    cutoff: dt.date,
    config: SequenceConfig = SequenceConfig(),
    held_out: pl.DataFrame | None = None,
    log: Callable[[str], None] = print,
    init_from: SequenceModel | None = None,
) -> TrainingResult:
    """Trains (from `init_from`'s weights when given: last week's model carried to this catalogue,
    `warm_start.carry_weights`) on the purchases up to `cutoff` (customer_idx, article_idx, t_dat as pl.Date),
    each epoch on at most `max_sequences_per_epoch` customers' sequences (a fresh sample when there are more); logs
    one line per epoch: loss, seconds and, given `held_out` (customer_idx, article_idx of purchases after cutoff),
    after the last epoch (or every `evaluate_every`) AUC and recall@100 via `common.retrieval_metrics` with
    customer vectors as of the day after cutoff, on the held-out customers with history (a sequence model has
    nothing to say about the others)."""
    generator = set_seed(config.seed)
    n_articles = article_content.shape[0]
    data = build_sequences(purchases, n_articles, cutoff, config.max_len, generator)
    model = SequenceModel(article_content, config)
    valid = torch.arange(data.max_length).unsqueeze(0) < data.lengths.unsqueeze(1)
    popularity = torch.bincount(data.articles[valid].long(), minlength=n_articles)
    optimiser = IdentityOptimiser(model, model.article_id, config.lr, config.weight_decay, config.id_weight_decay)
    start_from_data(model, data, popularity)
    if init_from is not None:
        warm_start_from(model, init_from)
    log(_describe(model, data))
    trainable = torch.nonzero(data.targets.any(1)).squeeze(1)
    as_of = cutoff + dt.timedelta(days=1)
    trend = trend_table(data, as_of) if model.trend is not None else None
    model.set_trend(data, as_of)
    loss_rows = trainable[fixed_sample(len(trainable), config.max_sequences_per_epoch, config.seed + 2)]
    by_length = loss_rows[torch.argsort(data.lengths[loss_rows], stable=True)]  # little padding per batch
    starting_loss = fixed_loss(model, data, by_length, popularity, trend, config.seed + 1, config.batch_size)
    history = []
    for epoch in range(config.epochs):
        figures = {"epoch": epoch + 1, **_train_epoch(model, data, optimiser, trainable, generator, popularity, trend)}
        if held_out is not None and held_out.height and evaluation_due(epoch + 1, config.epochs, config.evaluate_every):
            figures.update(evaluate(model, data, held_out, as_of).as_dict())
        history.append(figures)
        extra = f", AUC {figures['auc']:.3f}, recall@100 {figures['recall_at_100']:.3f}" if "auc" in figures else ""
        log(
            f"sequence ({config.encoder}) epoch {figures['epoch']}: loss {figures['loss']:.4f} "
            f"({figures['examples']:,} of {len(trainable):,} sequences, {figures['seconds']:.1f} s){extra}"
        )
    final_loss = fixed_loss(model, data, by_length, popularity, trend, config.seed + 1, config.batch_size)
    log(f"sequence ({config.encoder}): training loss on fixed negatives {starting_loss:.4f} -> {final_loss:.4f}")
    model.eval()
    return TrainingResult(model, history, config, starting_loss, final_loss)
