"""Global sequence model after Heinz, Bracher & Vollgraf (2017), "An LSTM-based dynamic customer model for
fashion recommendation".

A customer's purchase history is a time-ordered sequence of article content vectors ("Fashion DNA", a fixed
input matrix, so unseen articles have a vector too) with time stamps. A recurrent encoder (LSTM, or a causal
transformer encoder: `encoder`) reads it; each step's input is the projected content vector of the article
bought, concatenated with time features. Its output at the last purchase, projected to `dim`, is the customer's
style vector s. An article tower projects content vectors to `dim` (a). Score = s . a + b + w . trend, with b a
learned per-article bias (`article_bias`) and w . trend a learned weighting of the article's log sales shares in
the 2 weeks before the scored date (`trend`: fashion demand follows launches, lifecycles and promotions, which a
static bias cannot; its effect: docs/models.md). The trend
inputs of `score` are those of the day `trend_day` (training sets the day after its cutoff); `top_k` and
`evaluate` compute them from the sequences for any other `as_of`.

Training is teacher-forced next-purchase prediction: the output at position t (having read items 0..t) predicts
the item at t + 1, against `negatives` sampled negatives (uniform mixed with popularity-weighted,
`common.sample_negatives`), with BCE or "sigmoid_rank" (-log sigmoid(pos - neg), averaged). The logits in the
loss are corrected by -log(k q(i)), q being the exact negative sampling distribution (`logq_correction`): the
optimal BCE logit against sampled negatives is log p(i | history) / (k q(i)), so the score itself estimates
log p(i | history) and popularity-weighted (hard) negatives do not teach the model to discount popular articles
(without it the model falls below popularity's recall@100: docs/models.md).
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

The sequences it reads, their layout and their time features: `models/sequence_data.py`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl
import torch
from torch import nn

from hm_recs.models.article_search import ArticleSearch
from hm_recs.models.common import (
    DAY_SCALE,
    RetrievalFigures,
    identity_embedding,
    repeat_features,
    repeat_mlp,
    repeat_term,
    retrieval_metrics,
    set_seed,
    take_rows,
    with_identity,
)
from hm_recs.models.configs import EXACT_SEARCH, SearchConfig, SequenceConfig
from hm_recs.models.retrieval import in_columns, ranked_frame
from hm_recs.models.sequence_data import (
    TREND_WEEKS,
    SequenceData,
    build_sequences,
    day_number,
    trend_table,
)
from hm_recs.models.warm_start import ARTICLE_ROWS, carry_weights


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
        return torch.addmm(self.article_bias(article_idx, trend), customer_vectors, vectors.T)


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


def repeat_entries(
    model: SequenceModel, articles: torch.Tensor, days: torch.Tensor, lengths: torch.Tensor, as_of_day: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(row, article_idx, repeat term) of each customer's own earlier articles; None without a repeat term."""
    return None if model.repeat is None else model.own_repeat_scores(articles, days, lengths, as_of_day)


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
    column of `scores`, -1 for articles not scored; default: column = article_idx), added in place (see
    `TwoTowerModel.add_repeat`)."""
    entries = repeat_entries(model, articles, days, lengths, as_of_day)
    if entries is None:
        return scores
    row, column, value = in_columns(entries, columns)
    return scores.index_put_((row, column), value, accumulate=True)


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


def top_k(
    result_or_model: TrainingResult | SequenceModel,
    data: SequenceData,
    customer_idx: np.ndarray,
    candidate_articles: np.ndarray,
    as_of: dt.date,
    k: int = 100,
    chunk: int = 2048,
    search: ArticleSearch | None = None,
) -> pl.DataFrame:
    """customer_idx, article_idx, score, rank (1..k) for each requested customer with history in `data`, scored
    against the candidate article indices only, found by `search` (default: exact), in chunks of customers
    (memory: chunk x len(candidates)). Customer vectors and the trend term are as of `as_of`."""
    model = result_or_model.model if isinstance(result_or_model, TrainingResult) else result_or_model
    model.eval()
    search = search or ArticleSearch(EXACT_SEARCH)
    customer_idx = np.asarray(customer_idx, dtype=np.int64).reshape(-1)
    rows = data.rows(customer_idx)
    customer_idx, rows = customer_idx[rows >= 0], rows[rows >= 0]
    # a writable copy (polars hands out read-only arrays)
    candidates = torch.from_numpy(np.array(candidate_articles, dtype=np.int64))
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
            search.fit(candidates, vectors, bias, style, k)
            entries = repeat_entries(model, articles, days, lengths, as_of_day)
            scores, positions = search.top(style, k, None if entries is None else in_columns(entries, columns))
            parts.append(ranked_frame(customer_idx[start : start + chunk], candidates[positions], scores))
    return pl.concat(parts) if parts else ranked_frame(customer_idx[:0], candidates[:0].view(0, 0), torch.zeros(0, 0))


def state(result: TrainingResult) -> dict:
    """Everything needed to rebuild the model with the same content matrix (plain values and tensors only, so
    `common.from_bytes` loads it with weights_only=True)."""
    return {
        "config": asdict(result.config),
        "weights": result.model.state_dict(),
        "content_shape": list(result.model.content[:-1].shape),
        "history": result.history,
    }


DATA_BUFFERS = ("cycle_days", "current_trend", "trend_day")
"""What `sequence_training.start_from_data` and `set_trend` derive from the week's sequences: a warm start does
not carry them."""


def carried_model(
    state: dict, article_content: torch.Tensor, articles: list[str]
) -> tuple[SequenceModel | None, str | None]:
    """Last week's model (`state`, with its `article_ids`) over this week's catalogue `articles` and content
    matrix (`warm_start.carry_weights`), or None and why it does not fit."""
    if "article_ids" not in state:
        return None, "last week's artefact does not record its articles"
    model = SequenceModel(article_content, SequenceConfig(**state["config"]))
    reason = carry_weights(model, state["weights"], state["article_ids"], articles, ARTICLE_ROWS, DATA_BUFFERS)
    return (None, reason) if reason else (model, None)


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


@dataclass
class SequenceRetriever:
    """The sequence model as a `retrieval.Retriever`: customers' sequences up to `as_of` (inclusive) scored as
    of the next day."""

    model: SequenceModel
    data: SequenceData
    as_of: dt.date
    search: ArticleSearch = field(default_factory=ArticleSearch)  # kept across calls: one index per article set

    @classmethod
    def of(
        cls,
        model: SequenceModel,
        purchases: pl.DataFrame,
        as_of: dt.date,
        seed: int,
        search: SearchConfig = SearchConfig(),
    ) -> SequenceRetriever:
        """`purchases` (customer_idx, article_idx, t_dat) read up to `as_of`, the baskets shuffled with `seed`."""
        data = build_sequences(purchases, model.n_articles, as_of, model.config.max_len, set_seed(seed))
        return cls(model, data, as_of, ArticleSearch(search))

    def top_k(self, customer_idx: np.ndarray, candidate_articles: np.ndarray, k: int) -> pl.DataFrame:
        as_of = self.as_of + dt.timedelta(days=1)
        return top_k(self.model, self.data, customer_idx, candidate_articles, as_of, k=k, search=self.search)

    def evaluate(self, held_out: pl.DataFrame, k: int = 100) -> RetrievalFigures:
        return evaluate(self.model, self.data, held_out, self.as_of + dt.timedelta(days=1), k=k)
