"""Two-tower retrieval model: a customer tower and an article tower whose dot product, plus a per-article bias and
a trend term, scores a purchase.

Customer tower: the pipeline's customer features (numeric + categorical), optionally with a customer id
embedding (`id_dim`, off by default: it memorised the few training purchases of each customer).
Article tower: the article's content vector (Fashion DNA, so new articles are scored) and article features.
Score = customer . article + b + w . trend, as in the sequence model (`sequence.py`): b a learned per-article bias,
w a learned weighting of the article's log sales shares in the two weeks before the scored week (`article_trend`),
read from the same weekly snapshot as the features, so serving inputs score with the served week's sales. It
starts at the popularity prior (weight 1 on the two weeks' share, customer tower output 0): untrained, the model
ranks as the popularity baseline of the gate does.
Trained on (customer, article) purchases with sampled negatives (uniform mixed with popularity-weighted) and a
sampled softmax over the positive and the negatives (or BCE), the logits corrected by -log q of the sampling
distribution (`logq_correction`). A segment's model warm-starts from the global one (`init_from`).
Repeat-aware and item identity (`repeat`, `article_identity`; docs/models.md): the customer's own earlier articles
get a learned repeat term (how often, how long ago, over the article's usual cycle; read from the inputs'
`PurchaseHistory`), and articles with enough sales a learned identity embedding added to their article vector.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl
import torch
from torch import nn

from hm_recs.models.article_search import ArticleSearch
from hm_recs.models.common import (
    IdentityOptimiser,
    RetrievalFigures,
    evaluation_due,
    fixed_sample,
    identity_embedding,
    negative_distribution,
    repeat_features,
    repeat_mlp,
    repeat_term,
    retrieval_metrics,
    sample_negatives,
    set_seed,
    take_rows,
    with_identity,
)
from hm_recs.models.configs import EXACT_SEARCH, SearchConfig, TwoTowerConfig
from hm_recs.models.content import CategoricalEmbedding
from hm_recs.models.retrieval import in_columns, ranked_frame
from hm_recs.models.tower_inputs import (
    TowerInputs,
)
from hm_recs.models.warm_start import ARTICLE_ROWS, carry_weights


class TwoTowerModel(nn.Module):
    def __init__(self, inputs: TowerInputs, config: TwoTowerConfig):
        super().__init__()
        self.config = config
        self.inputs = inputs
        n_customers = inputs.customer_numeric.shape[1]
        self.customer_id = nn.Embedding(n_customers, config.id_dim) if config.id_dim else None
        if self.customer_id is not None:
            nn.init.normal_(self.customer_id.weight, std=0.01)
        self.customer_categorical = CategoricalEmbedding(inputs.vocabulary.sizes, config.embedding_dim)
        c_in = inputs.customer_numeric.shape[2] + self.customer_categorical.out_dim + config.id_dim
        self.customer_tower = nn.Sequential(
            nn.Linear(c_in, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.dim)
        )
        a_in = inputs.article_numeric.shape[2] + inputs.article_content.shape[1]
        self.article_tower = nn.Sequential(
            nn.Linear(a_in, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.dim)
        )
        self.bias = nn.Parameter(torch.zeros(inputs.n_articles)) if config.article_bias else None
        self.repeat = None
        if config.repeat and inputs.history is not None:
            self.repeat = repeat_mlp(config.repeat_hidden)  # starts at 0: the popularity prior still holds
        self.article_id = identity_embedding(inputs.n_articles, config.dim) if config.article_identity else None
        if self.article_id is not None:
            self.register_buffer("known_article", torch.zeros(inputs.n_articles, dtype=torch.bool))
        self.trend = nn.Linear(inputs.article_trend.shape[2], 1, bias=False) if config.trend else None
        if self.trend is not None:  # the popularity prior: untrained, the model ranks as popularity does
            with torch.no_grad():
                self.trend.weight.zero_()
                self.trend.weight[0, -1] = 1.0  # the share of both weeks (`article_trend`'s last column)
            nn.init.zeros_(self.customer_tower[-1].weight)
            nn.init.zeros_(self.customer_tower[-1].bias)

    def _snapshot(self, idx: torch.Tensor, snapshot: torch.Tensor | int) -> torch.Tensor:
        if isinstance(snapshot, int):
            return torch.full_like(idx, snapshot % self.inputs.n_snapshots)
        return snapshot

    def customer_vectors(self, idx: torch.Tensor, snapshot: torch.Tensor | int = -1) -> torch.Tensor:
        """Vectors of customers `idx` with their features of `snapshot` (default: the latest)."""
        s = self._snapshot(idx, snapshot)
        parts = [self.inputs.customer_numeric[s, idx], self.customer_categorical(self.inputs.customer_codes[s, idx])]
        if self.customer_id is not None:
            parts.append(self.customer_id(idx))
        return self.customer_tower(torch.cat(parts, dim=1))

    def article_vectors(self, idx: torch.Tensor | None = None, snapshot: torch.Tensor | int = -1) -> torch.Tensor:
        """Vectors of articles `idx` (default: all) with the features of `snapshot` (default: the latest;
        a tensor gives one snapshot per article row)."""
        if idx is None:
            idx = torch.arange(self.inputs.n_articles)
        numeric = self.inputs.article_numeric[self._snapshot(idx, snapshot), idx]
        vectors = self.article_tower(torch.cat([numeric, self.inputs.article_content[idx]], dim=1))
        return with_identity(
            vectors, self.article_id, getattr(self, "known_article", None), idx, self.config.id_dropout, self.training
        )

    def article_bias(self, idx: torch.Tensor | None = None, snapshot: torch.Tensor | int = -1) -> torch.Tensor:
        """[len(idx)] learned bias + trend term of articles `idx` (default: all) as of `snapshot` (default: the
        latest; a tensor gives one snapshot per article row): the part of the score every customer shares."""
        if idx is None:
            idx = torch.arange(self.inputs.n_articles)
        bias = torch.zeros(len(idx)) if self.bias is None else take_rows(self.bias, idx)
        if self.trend is not None:
            bias = bias + self.trend(self.inputs.article_trend[self._snapshot(idx, snapshot), idx]).squeeze(-1)
        return bias

    def repeat_term(
        self, items: torch.Tensor, found: torch.Tensor, times: torch.Tensor, since: torch.Tensor
    ) -> torch.Tensor:
        """[B, K] repeat term of `items` from `PurchaseHistory.lookup` of them (bought before, how often, days since);
        0 for articles not bought before."""
        if self.repeat is None:
            return torch.zeros(items.shape)
        return repeat_term(self.repeat, items, found, times, since, self.inputs.history.cycle_days)

    def repeat_entries(
        self, customer_idx: torch.Tensor, snapshot: int = -1
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(row of `customer_idx`, article_idx, repeat term) of each customer's own earlier articles as of
        `snapshot`; None without a repeat term."""
        if self.repeat is None:
            return None
        history = self.inputs.history
        snap = self._snapshot(customer_idx, snapshot)
        lo, hi = history.ranges(customer_idx, snap)
        counts = hi - lo
        row = torch.repeat_interleave(torch.arange(len(customer_idx)), counts)
        entry = (
            torch.repeat_interleave(lo, counts)
            + torch.arange(int(counts.sum()))
            - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        )
        article = history.key[entry] % history.n_articles
        value = self.repeat(
            repeat_features(history.times[entry], history.since_days[entry], history.cycle_days[article])
        ).squeeze(-1)
        return row, article, value

    def add_repeat(
        self, scores: torch.Tensor, customer_idx: torch.Tensor, columns: torch.Tensor | None = None, snapshot: int = -1
    ) -> torch.Tensor:
        """`scores` [B, C] plus the repeat term at each customer's own earlier articles (columns: article_idx ->
        column, -1 for articles not scored; default: column = article_idx), as of `snapshot`. Added in place (a copy
        of a chunk's [B, n_articles] scores cost as much as the rest of its held-out figures): pass scores of your
        own."""
        entries = self.repeat_entries(customer_idx, snapshot)
        if entries is None:
            return scores
        row, column, value = in_columns(entries, columns)
        return scores.index_put_((row, column), value, accumulate=True)

    def scores(
        self,
        customer_idx: torch.Tensor,
        article_idx: torch.Tensor | None = None,
        article_vectors: torch.Tensor | None = None,
        article_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, n_articles] (or [B, len(article_idx)]) scores customer . article + bias + trend term (+ the repeat term
        of the customer's own earlier articles) with the inputs' latest snapshot (serving inputs: the served week's
        features, sales and histories). `article_vectors` and `article_bias` (of `article_idx`, or of all articles)
        may be passed precomputed by a caller that scores many chunks of customers."""
        vectors = self.article_vectors(article_idx) if article_vectors is None else article_vectors
        bias = self.article_bias(article_idx) if article_bias is None else article_bias
        scores = torch.addmm(bias, self.customer_vectors(customer_idx), vectors.T)
        columns = None
        if article_idx is not None:
            columns = torch.full((self.inputs.n_articles,), -1, dtype=torch.long)
            columns[article_idx] = torch.arange(len(article_idx))
        return self.add_repeat(scores, customer_idx, columns)


@dataclass
class TwoTowerResult:
    model: TwoTowerModel
    # epoch 0 = before training (the fixed loss); later epochs: mean loss while training, examples (pairs trained
    # on), + held-out figures after the last epoch (and every `evaluate_every` epochs)
    history: list[dict]
    config: TwoTowerConfig
    # training loss before any update, on a fixed sample of pairs (all up to max_pairs_per_epoch) and negatives
    starting_loss: float
    final_loss: float  # the same after training

    @property
    def loss_fell(self) -> bool:
        return self.final_loss < self.starting_loss

    def state(self) -> dict:
        return {
            "config": asdict(self.config),
            "weights": self.model.state_dict(),
            "history": self.history,
            "vocabulary": self.model.inputs.vocabulary.values,
        }


def load(state: dict, inputs: TowerInputs) -> TwoTowerModel:
    # artefacts written before the trend term (or the identity embedding) have no switch for it: trained without
    model = TwoTowerModel(
        inputs, TwoTowerConfig(**{"trend": False, "article_bias": False, "article_identity": False, **state["config"]})
    )
    model.load_state_dict(state["weights"])
    return model


def carried_model(state: dict, inputs: TowerInputs, articles: list[str]) -> tuple[TwoTowerModel | None, str | None]:
    """Last week's model (`state`, with its `article_ids`) on this week's `inputs` over the catalogue `articles`
    (`warm_start.carry_weights`), or None and why it does not fit (the customer vocabulary changed, a shape)."""
    if "article_ids" not in state:
        return None, "last week's artefact does not record its articles"
    if state.get("vocabulary") != inputs.vocabulary.values:
        return None, "the customer feature vocabulary changed since last week"
    model = TwoTowerModel(inputs, TwoTowerConfig(**state["config"]))
    reason = carry_weights(model, state["weights"], state["article_ids"], articles, ARTICLE_ROWS)
    return (None, reason) if reason else (model, None)


def _loss(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """logits [B, 1 + negatives], column 0 the purchase."""
    if kind == "sampled_softmax":
        return nn.functional.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    return nn.functional.binary_cross_entropy_with_logits(logits, labels)


def _purchase_pairs(purchases: pl.DataFrame, n_snapshots: int) -> torch.Tensor:
    """[N, 3] (customer_idx, article_idx, snapshot) of `purchases`, the latest snapshot where none is given."""
    if "snapshot" not in purchases.columns:
        purchases = purchases.with_columns(pl.lit(n_snapshots - 1).alias("snapshot"))
    return torch.as_tensor(
        purchases.select("customer_idx", "article_idx", "snapshot").to_numpy().copy(), dtype=torch.long
    )


class _PairLoss:
    """The training loss of (customer, article, snapshot) pairs against sampled negatives: uniform and
    popularity-weighted ones, plus `draws` of the customer's own earlier articles when the model has a repeat term."""

    def __init__(self, model: TwoTowerModel, popularity: torch.Tensor, generator: torch.Generator):
        self.model, self.config, self.popularity, self.generator = model, model.config, popularity, generator
        self.n_articles = model.inputs.n_articles
        share = self.config.popularity_negative_share
        self.log_q = torch.log(negative_distribution(self.n_articles, popularity, share)).float()
        self.bought = model.inputs.history if model.repeat is not None else None
        self.draws = self.config.history_negatives if self.bought is not None else 0

    def negatives(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """[n, `config.negatives`] negatives from q (uniform mixed with popularity-weighted)."""
        shape = (n, self.config.negatives)
        return sample_negatives(
            self.n_articles, shape, generator, self.popularity, self.config.popularity_negative_share
        )

    def own_items(self, batch: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`draws` of each customer's own earlier articles at the batch's snapshots (a popularity negative for a
        customer without history) and their number of earlier articles."""
        bought, draws, n_articles = self.bought, self.draws, self.n_articles
        lo, hi = bought.ranges(batch[:, 0], batch[:, 2])
        n = (hi - lo).clamp(min=1)
        entry = lo.unsqueeze(1) + (torch.rand((len(batch), draws), generator=gen) * n.unsqueeze(1)).long()
        own = bought.key[entry.clamp(max=max(len(bought.key) - 1, 0))] % n_articles
        share = self.config.popularity_negative_share
        fallback = sample_negatives(n_articles, (len(batch), draws), gen, self.popularity, share)
        return torch.where((hi > lo).unsqueeze(1), own, fallback), (hi - lo)

    def __call__(
        self,
        batch: torch.Tensor,
        negatives: torch.Tensor | None = None,
        own: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Mean loss of `batch` [B, 3]; negatives (and own articles) drawn with the training generator if not given."""
        model, config, draws, n_articles = self.model, self.config, self.draws, self.n_articles
        if negatives is None:
            negatives = self.negatives(len(batch), self.generator)
        if draws:  # `draws` more negatives from the customer's own history
            own_articles, n_own = own if own is not None else self.own_items(batch, self.generator)
            negatives = torch.cat([negatives, own_articles], dim=1)
        items = torch.cat([batch[:, 1:2], negatives], dim=1)
        keys = batch[:, 2:3] * n_articles + items  # (snapshot, article) pairs, each tower pass done once
        unique, inverse = torch.unique(keys, return_inverse=True)
        item_vectors = take_rows(model.article_vectors(unique % n_articles, unique // n_articles), inverse)
        logits = (model.customer_vectors(batch[:, 0], batch[:, 2]).unsqueeze(1) * item_vectors).sum(-1)
        logits = logits + take_rows(model.article_bias(unique % n_articles, unique // n_articles), inverse)
        if draws:  # what each customer bought before the snapshot: the repeat term's inputs and the log-q's draws
            found, times, since = self.bought.lookup(batch[:, 0], batch[:, 2], items)
            logits = logits + model.repeat_term(items, found, times, since)
        if config.logq_correction:
            if draws:  # expected draws of each item: `negatives` from q, `draws` from the customer's history
                expected = config.negatives * self.log_q[items].exp() + draws * found / n_own.clamp(min=1).unsqueeze(1)
                logits = logits - torch.log(expected)
            else:
                logits = logits - self.log_q[items]
        if draws:  # a customer's own article drawn as a negative for its own re-buy is no negative
            hit = torch.zeros_like(items, dtype=torch.bool)
            hit[:, 1:] = items[:, 1:] == items[:, :1]
            logits = logits.masked_fill(hit, float("-inf") if config.loss == "sampled_softmax" else -1e4)
        return _loss(logits, config.loss)


@dataclass
class _FixedPairs:
    """The gate's "loss fell" compares the training loss before and after training on the same pairs and negatives
    (epoch losses use fresh negatives each time and are noisy on small data such as a segment)."""

    pairs: torch.Tensor
    negatives: torch.Tensor
    own: tuple[torch.Tensor, torch.Tensor] | None

    @classmethod
    def draw(cls, loss: _PairLoss, pairs: torch.Tensor) -> _FixedPairs:
        """Up to `max_pairs_per_epoch` pairs and their negatives, each drawn from a generator of its own seed."""
        config = loss.config
        fixed_pairs = pairs[fixed_sample(len(pairs), config.max_pairs_per_epoch, config.seed + 2)]
        negatives = loss.negatives(len(fixed_pairs), torch.Generator().manual_seed(config.seed + 1))
        own = loss.own_items(fixed_pairs, torch.Generator().manual_seed(config.seed + 3)) if loss.draws else None
        return cls(fixed_pairs, negatives, own)

    def loss(self, loss: _PairLoss) -> float:
        """Mean loss over the fixed pairs, in eval mode and without gradients."""
        loss.model.eval()
        size = loss.config.batch_size
        with torch.no_grad():
            losses = [
                loss(
                    self.pairs[i : i + size],
                    self.negatives[i : i + size],
                    None if self.own is None else tuple(t[i : i + size] for t in self.own),
                ).item()
                * len(self.pairs[i : i + size])
                for i in range(0, len(self.pairs), size)
            ]
        return sum(losses) / max(len(self.pairs), 1)


def _train_epoch(loss: _PairLoss, optimiser: IdentityOptimiser, pairs: torch.Tensor, epoch: int) -> dict:
    """One epoch over a random order of all pairs, or a fresh random sample of `max_pairs_per_epoch` of them: its
    history record (epoch, mean loss, seconds, examples)."""
    config = loss.config
    started, total, batches = time.perf_counter(), 0.0, 0
    loss.model.train()
    order = torch.randperm(len(pairs), generator=loss.generator)[: config.max_pairs_per_epoch]
    for start in range(0, len(order), config.batch_size):
        batch_loss = loss(pairs[order[start : start + config.batch_size]])
        optimiser.zero_grad()
        batch_loss.backward()
        optimiser.step()
        total, batches = total + batch_loss.item(), batches + 1
    return {
        "epoch": epoch + 1,
        "loss": total / max(batches, 1),
        "seconds": round(time.perf_counter() - started, 3),
        "examples": len(order),
    }


def train_two_tower(
    inputs: TowerInputs,
    purchases: pl.DataFrame,
    config: TwoTowerConfig = TwoTowerConfig(),
    held_out: pl.DataFrame | None = None,
    init_from: TwoTowerModel | None = None,
    log: Callable[[str], None] = print,
    name: str = "two-tower",
    warm_start: bool = False,
) -> TwoTowerResult:
    """purchases: customer_idx, article_idx and `snapshot` (index into the article feature snapshots; default the
    latest); held_out: customer_idx, article_idx, scored with the latest snapshot. Each epoch trains on at most
    `max_pairs_per_epoch` purchases (a fresh sample when there are more). Logs loss and seconds per epoch, and
    held-out AUC/recall@100 after the last (or every `evaluate_every`)."""
    generator = set_seed(config.seed)
    model = TwoTowerModel(inputs, config)
    if init_from is not None:
        model.load_state_dict(copy.deepcopy(init_from.state_dict()))
    pairs = _purchase_pairs(purchases, inputs.n_snapshots)
    popularity = torch.bincount(pairs[:, 1], minlength=inputs.n_articles)
    optimiser = IdentityOptimiser(model, model.article_id, config.lr, config.weight_decay, config.id_weight_decay)
    if model.article_id is not None and (init_from is None or warm_start):
        # a segment's fine-tune keeps the articles its global model knows; last week's model adds this week's
        with torch.no_grad():
            known = popularity >= config.id_min_sales
            model.known_article.copy_(known if init_from is None else model.known_article | known)
    loss = _PairLoss(model, popularity, generator)
    fixed = _FixedPairs.draw(loss, pairs)
    starting_loss = fixed.loss(loss)  # random init, or the model warm-started from
    history = [{"epoch": 0, "loss": starting_loss, "seconds": 0.0, "examples": len(fixed.pairs)}]
    for epoch in range(config.epochs):
        figures = _train_epoch(loss, optimiser, pairs, epoch)
        if held_out is not None and held_out.height and evaluation_due(epoch + 1, config.epochs, config.evaluate_every):
            figures.update(evaluate(model, held_out).as_dict())
        history.append(figures)
        extra = f", AUC {figures['auc']:.3f}, recall@100 {figures['recall_at_100']:.3f}" if "auc" in figures else ""
        log(
            f"{name} epoch {figures['epoch']}: loss {figures['loss']:.4f} ({figures['examples']:,} of {len(pairs):,} "
            f"pairs, {figures['seconds']:.1f} s){extra}"
        )
    final_loss = fixed.loss(loss)
    log(f"{name}: training loss on fixed negatives {starting_loss:.4f} -> {final_loss:.4f}")
    return TwoTowerResult(model, history, config, starting_loss, final_loss)


def evaluate(model: TwoTowerModel, held_out: pl.DataFrame, k: int = 100):
    """Held-out figures of `held_out` (customer_idx, article_idx) scored with the inputs' latest snapshot."""
    model.eval()
    with torch.no_grad():
        vectors, bias = model.article_vectors(), model.article_bias()
        return retrieval_metrics(
            lambda c: model.scores(c, article_vectors=vectors, article_bias=bias), held_out, vectors.shape[0], k=k
        )


def top_k(
    model: TwoTowerModel,
    customer_idx: np.ndarray,
    candidate_articles: np.ndarray,
    k: int = 100,
    chunk: int = 4096,
    search: ArticleSearch | None = None,
) -> pl.DataFrame:
    """customer_idx, article_idx, score, rank for each customer against the candidate articles, found by `search`
    (default: exact); memory is bounded by chunk x len(candidates)."""
    model.eval()
    search = search or ArticleSearch(EXACT_SEARCH)
    # writable copies: polars hands out read-only arrays, which torch warns about
    customer_idx = np.array(customer_idx, dtype=np.int64)
    candidates = torch.from_numpy(np.array(candidate_articles, dtype=np.int64))
    k = min(k, len(candidates))
    parts = []
    with torch.no_grad():
        vectors, bias = model.article_vectors(candidates), model.article_bias(candidates)
        columns = torch.full((model.inputs.n_articles,), -1, dtype=torch.long)
        columns[candidates] = torch.arange(len(candidates))
        for start in range(0, len(customer_idx) if k else 0, chunk):
            batch = torch.from_numpy(customer_idx[start : start + chunk])
            queries = model.customer_vectors(batch)
            search.fit(candidates, vectors, bias, queries, k)
            entries = model.repeat_entries(batch)
            scores, positions = search.top(queries, k, None if entries is None else in_columns(entries, columns))
            parts.append(ranked_frame(customer_idx[start : start + chunk], candidates[positions], scores))
    return pl.concat(parts) if parts else ranked_frame(customer_idx[:0], candidates[:0].view(0, 0), torch.zeros(0, 0))


@dataclass
class TwoTowerRetriever:
    """A two-tower model as a `retrieval.Retriever`, with the tower inputs of the snapshot it scores from."""

    model: TwoTowerModel
    search: ArticleSearch = field(default_factory=ArticleSearch)  # kept across calls: one index per article set

    @classmethod
    def load(cls, state: dict, inputs: TowerInputs, search: SearchConfig = SearchConfig()) -> TwoTowerRetriever:
        return cls(load(state, inputs), ArticleSearch(search))

    def top_k(self, customer_idx: np.ndarray, candidate_articles: np.ndarray, k: int) -> pl.DataFrame:
        return top_k(self.model, customer_idx, candidate_articles, k=k, search=self.search)

    def evaluate(self, held_out: pl.DataFrame, k: int = 100) -> RetrievalFigures:
        return evaluate(self.model, held_out, k=k)
