"""What every model shares: id indexes, seeding, negative sampling, retrieval metrics, safe artefacts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch


def set_seed(seed: int) -> torch.Generator:
    """Seed torch and numpy globally (determinism of init) and return a generator for sampling."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def take_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """`x[idx]` (rows of `x`, shape idx.shape + x.shape[1:]) by `index_select`. Training must not index a tensor
    that requires grad by a tensor with repeated indices: the backward of `x[idx]` on CPU (index_put_ with
    accumulate) adds the repeated rows' gradients with atomic adds across torch's threads, in an order that varies
    from run to run, so with more than one thread the weights (and the week's MAP@12) differed between identical
    runs. `index_select`'s backward adds them in index order, the same every run, and is faster."""
    return x.index_select(0, idx.reshape(-1)).view(*idx.shape, *x.shape[1:])


@dataclass(frozen=True)
class IdIndex:
    """A stable mapping between string ids (customer_id / article_id) and contiguous integers."""

    ids: pl.Series  # sorted, unique

    @classmethod
    def of(cls, ids: pl.Series) -> IdIndex:
        return cls(ids.unique().sort().alias("id"))

    def __len__(self) -> int:
        return self.ids.len()

    def encode(self, frame: pl.DataFrame, column: str, alias: str | None = None) -> pl.DataFrame:
        """Replace `column` by its integer index (`alias`, default `<column>_idx`); unknown ids are dropped."""
        lookup = self.ids.to_frame().with_row_index("__idx")
        return (
            frame.join(lookup, left_on=column, right_on="id", how="inner")
            .rename({"__idx": alias or f"{column}_idx"})
            .with_columns(pl.col(alias or f"{column}_idx").cast(pl.Int64))
        )

    def decode(self, idx: pl.Series | np.ndarray) -> pl.Series:
        return self.ids.gather(pl.Series(np.asarray(idx), dtype=pl.UInt32))

    def state(self) -> dict[str, torch.Tensor]:
        """The ids as two tensors, their UTF-8 bytes end to end and the end offset of each: a stored state of 1.4
        million customer ids as a list of strings took the weights-only unpickler 9 s to read back."""
        ends = self.ids.str.len_bytes().cast(pl.Int64).cum_sum().to_numpy()
        text = self.ids.str.join("").item().encode()
        return {
            "utf8": torch.frombuffer(bytearray(text), dtype=torch.uint8) if text else torch.zeros(0, dtype=torch.uint8),
            "ends": torch.as_tensor(ends.copy()),
        }

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor] | list[str]) -> IdIndex:
        """The index `state()` stored (or a plain list of ids, the layout of states stored before it)."""
        if isinstance(state, list):
            return cls(pl.Series("id", state, dtype=pl.String))
        import pyarrow as pa

        ends = state["ends"].numpy()
        offsets = np.concatenate([np.zeros(1, dtype=np.int64), ends])
        strings = pa.LargeStringArray.from_buffers(
            len(ends), pa.py_buffer(offsets), pa.py_buffer(state["utf8"].numpy().tobytes())
        )
        return cls(pl.Series("id", strings, dtype=pl.String))


def encode_purchases(frame: pl.DataFrame, customers: IdIndex, articles: IdIndex) -> pl.DataFrame:
    """`frame` with `customer_idx` and `article_idx` (rows with unknown ids dropped)."""
    return customers.encode(articles.encode(frame, "article_id", "article_idx"), "customer_id", "customer_idx")


def sample_negatives(
    n_items: int,
    shape: tuple[int, ...],
    generator: torch.Generator,
    popularity: torch.Tensor | None = None,
    popularity_share: float = 0.5,
) -> torch.Tensor:
    """Negative item indices: uniform, mixed with popularity-weighted draws when `popularity` is given
    (popular items are the hard negatives a popularity-biased scorer must learn to separate)."""
    uniform = torch.randint(0, n_items, shape, generator=generator)
    if popularity is None or popularity_share <= 0:
        return uniform
    weights = popularity.float().clamp(min=0) + 1e-6
    popular = torch.multinomial(weights, int(np.prod(shape)), replacement=True, generator=generator).view(shape)
    mask = torch.rand(shape, generator=generator) < popularity_share
    return torch.where(mask, popular, uniform)


def fixed_sample(n: int, budget: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded sample of `budget` of n items, or all n when n <= budget: the same sample every
    call, for a figure compared before and after training (the gates' loss on fixed negatives) at a bounded cost."""
    if n <= budget:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:budget].sort().values


def evaluation_due(epoch: int, epochs: int, every: int) -> bool:
    """Whether held-out figures are computed after `epoch` (1-based) of `epochs`: after the last, and every `every`
    epochs when every > 0. Each is a pass over every held-out customer x article, so not per epoch by default."""
    return epoch == epochs or (every > 0 and epoch % every == 0)


def negative_distribution(n_items: int, popularity: torch.Tensor | None, share: float) -> torch.Tensor:
    """The exact distribution `sample_negatives` draws from (uniform / popularity-weighted mixture)."""
    uniform = torch.full((n_items,), 1.0 / n_items, dtype=torch.float64)
    if popularity is None or share <= 0:
        return uniform
    weights = popularity.double().clamp(min=0) + 1e-6
    return (1 - share) * uniform + share * weights / weights.sum()


def log_shares(counts: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log of add-one smoothed sales shares along `dim`: log((n_i + 1) / (sum n + N)), N items. The trend terms of
    the retrieval models read these: finite for unsold items, and a week without sales is uniform (no information)."""
    return torch.log((counts + 1) / (counts.sum(dim, keepdim=True) + counts.shape[dim]))


@dataclass(frozen=True)
class RetrievalFigures:
    auc: float
    recall_at_k: float
    customers: int
    k: int

    def as_dict(self) -> dict:
        return {"auc": self.auc, f"recall_at_{self.k}": self.recall_at_k, "customers": self.customers}


def held_out_sample(held_out: pl.DataFrame, max_customers: int, seed: int = 0) -> pl.DataFrame:
    """The held-out purchases (customer_idx, ...) of at most `max_customers` customers, a seeded sample (all of them
    when there are fewer): what a gate scores every model on, so that the evaluation (each customer against every
    article) costs the same whatever the number of buyers."""
    customers = held_out["customer_idx"].unique().sort()
    if customers.len() <= max_customers:
        return held_out
    kept = customers.sample(max_customers, seed=seed)
    return held_out.filter(pl.col("customer_idx").is_in(kept.implode()))


def retrieval_metrics(
    score_chunk: Callable[[torch.Tensor], torch.Tensor],
    held_out: pl.DataFrame,
    n_items: int,
    k: int = 100,
    chunk: int = 1024,
) -> RetrievalFigures:
    """AUC and recall@k of a scorer on held-out purchases.

    score_chunk(customer_idx [B]) -> scores [B, n_items]; held_out: customer_idx, article_idx (distinct pairs).
    AUC: mean over held-out pairs of the share of items scored below the purchased one (ties count half).
    recall@k: mean over customers of |top-k ∩ bought| / |bought|. Scored in chunks: memory O(chunk × n_items).
    """
    # sorted: the AUC terms are float32 sums over rows, so their order must not follow `held_out`'s (an unordered
    # polars `unique()` or join upstream): the same figures every run
    pairs = held_out.select("customer_idx", "article_idx").unique().sort("customer_idx", "article_idx")
    customers = pairs["customer_idx"].unique().sort()
    pair_customers = torch.as_tensor(pairs["customer_idx"].to_numpy().copy(), dtype=torch.long)
    pair_articles = torch.as_tensor(pairs["article_idx"].to_numpy().copy(), dtype=torch.long)
    rank_buffer = torch.empty(RANKED_PAIRS_AT_ONCE, n_items)
    auc_sum, recall_sum, first_pair = 0.0, 0.0, 0
    for start in range(0, customers.len(), chunk):
        batch_t = torch.as_tensor(customers.slice(start, chunk).to_numpy().copy(), dtype=torch.long)
        with torch.no_grad():
            scores = score_chunk(batch_t).float()
        # the chunk's pairs are the next ones of `pairs` (both sorted by customer); rows: their rows of `scores`
        n_chunk_pairs = int(torch.searchsorted(pair_customers, batch_t[-1], right=True)) - first_pair
        chunk_pairs = slice(first_pair, first_pair + n_chunk_pairs)
        first_pair += n_chunk_pairs
        rows = torch.searchsorted(batch_t, pair_customers[chunk_pairs])
        cols = pair_articles[chunk_pairs]
        auc_sum += float((_items_below(scores, rows, cols, rank_buffer) / max(n_items - 1, 1)).sum())
        top = torch.topk(scores, min(k, n_items), dim=1).indices
        hit = (top[rows] == cols.unsqueeze(1)).any(1).float()
        per_customer = torch.zeros(len(batch_t)).index_add_(0, rows, hit)
        bought = torch.zeros(len(batch_t)).index_add_(0, rows, torch.ones(len(rows)))
        recall_sum += float((per_customer / bought.clamp(min=1)).sum())
    n_customers = customers.len()
    return RetrievalFigures(
        auc=auc_sum / max(first_pair, 1), recall_at_k=recall_sum / max(n_customers, 1), customers=n_customers, k=k
    )


RANKED_PAIRS_AT_ONCE = 64
"""Held-out pairs whose score rows `_items_below` copies at a time: a small buffer, reused (a fresh copy of every
pair's row, the earlier way, cost more in page faults and bool sums than the scoring itself)."""


def _items_below(scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, buffer: torch.Tensor) -> torch.Tensor:
    """Per pair (row, col): the items of `scores[row]` scored below `scores[row, col]`, ties counting half (the
    item itself excluded). One pass per pair: with S = sum(sign(scores[row] - positive)) = above - below and
    above + below + ties = n, below + (ties - 1) / 2 = (n - 1 - S) / 2, exact in float32 below 2**24 items."""
    positive = scores[rows, cols].unsqueeze(1)
    signed = torch.empty(len(rows))
    step = buffer.shape[0]
    for start in range(0, len(rows), step):
        part = slice(start, start + step)
        copied = torch.index_select(scores, 0, rows[part], out=buffer[: len(rows[part])])
        signed[part] = copied.sub_(positive[part]).sign_().sum(1)
    return 0.5 * (scores.shape[1] - 1 - signed)


def finite(module: torch.nn.Module) -> bool:
    """No NaN or inf in any parameter."""
    return all(torch.isfinite(p).all() for p in module.parameters())


def popularity_retrieval(
    purchases: pl.DataFrame, held_out: pl.DataFrame, n_items: int, k: int = 100
) -> RetrievalFigures:
    """The popularity scorer's figures (counts of `purchases` per article), the bar every model gate uses."""
    counts = torch.bincount(
        torch.as_tensor(purchases["article_idx"].to_numpy().copy(), dtype=torch.long), minlength=n_items
    ).float()
    return retrieval_metrics(lambda c: counts.expand(len(c), -1), held_out, n_items, k=k)


def serving_choice(global_figures: RetrievalFigures, segment_figures: RetrievalFigures) -> str:
    """Which model serves a segment: its own only where it beats the global model's held-out recall@k on the
    segment's customers (ties keep the global model: one model less to run and explain)."""
    return "segment" if segment_figures.recall_at_k > global_figures.recall_at_k else "global"


# ---------------------------------------------------------------------------------------------- repeat purchases
REPEAT_FEATURES = 4
"""Inputs of the retrieval models' repeat term (`repeat_features`)."""
DAY_SCALE = 5.0  # log1p(days) / DAY_SCALE: about 1 for a year


def repeat_features(times: torch.Tensor, since_days: torch.Tensor, cycle_days: torch.Tensor) -> torch.Tensor:
    """[..., REPEAT_FEATURES] what predicts that a customer re-buys an article: log purchases of it, log days since
    the last one, log of those days over the article's usual cycle, log cycle."""
    since = since_days.clamp(min=0).float()
    return torch.stack(
        [
            times.float().log1p(),
            since.log1p() / DAY_SCALE,
            torch.log((since + 1) / (cycle_days + 1)),
            cycle_days.log1p() / DAY_SCALE,
        ],
        dim=-1,
    )


def repeat_term(
    network: torch.nn.Module,
    items: torch.Tensor,
    bought: torch.Tensor,
    times: torch.Tensor,
    since_days: torch.Tensor,
    cycle_days: torch.Tensor,
) -> torch.Tensor:
    """The repeat network's term for `items` [...] where the customer `bought` them before (`times` times, the last
    `since_days` before the day scored; `cycle_days` [n_articles]), 0 elsewhere; the network reads those pairs only."""
    hit = bought.nonzero(as_tuple=True)
    features = repeat_features(times[hit], since_days[hit], cycle_days[items[hit]])
    return torch.zeros(items.shape).index_put(hit, network(features).squeeze(-1))


def purchase_cycles(items: pl.DataFrame, n_articles: int, default: float = 28.0) -> torch.Tensor:
    """[n_articles] each article's usual re-buy cycle: the median days between two consecutive purchases of it by one
    customer in `items` (customer, article, day as ints); articles never re-bought get the median over all re-buys
    (`default` when there are none)."""
    # one sort, then each row's gap to the row before where both are the same customer's purchases of the same
    # article; repeated (customer, article, day) rows give gaps of 0, dropped with the first purchases' nulls (a
    # `unique()` and a windowed diff over the pairs did the same in six times the time: 18 s at H&M's size)
    same_pair = (pl.col("customer") == pl.col("customer").shift()) & (pl.col("article") == pl.col("article").shift())
    gaps = (
        items.select("customer", "article", "day")
        .sort("customer", "article", "day")
        .select("article", gap=pl.when(same_pair).then(pl.col("day").diff()))
        .filter(pl.col("gap") > 0)
    )
    overall = float(gaps["gap"].median()) if gaps.height else default
    cycles = torch.full((n_articles,), overall)
    if gaps.height:
        per = gaps.group_by("article").agg(pl.col("gap").median())
        cycles[torch.as_tensor(per["article"].to_numpy().copy())] = torch.as_tensor(
            per["gap"].to_numpy().copy(), dtype=torch.float32
        )
    return cycles


def repeat_mlp(hidden: int) -> torch.nn.Module:
    """The repeat term's network (REPEAT_FEATURES -> hidden -> 1), started at 0: untrained, it changes no score."""
    mlp = torch.nn.Sequential(torch.nn.Linear(REPEAT_FEATURES, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    torch.nn.init.zeros_(mlp[-1].weight)
    torch.nn.init.zeros_(mlp[-1].bias)
    return mlp


def with_identity(
    vectors: torch.Tensor,
    identity: torch.nn.Embedding | None,
    known: torch.Tensor | None,
    idx: torch.Tensor,
    dropout: float,
    training: bool,
) -> torch.Tensor:
    """Article vectors plus the identity embedding of the articles `known` to have enough sales; while training each
    row's identity is dropped to zeros with probability `dropout` (the content side must stand alone for new
    articles). Only the rows that get an identity read the embedding, so a step's sparse gradient and lazy Adam
    update touch those rows alone."""
    if identity is None:
        return vectors
    keep = known[idx]
    if training and dropout > 0:
        keep = keep & (torch.rand(len(idx)) >= dropout)
    rows = keep.nonzero().squeeze(1)
    return vectors.index_add(0, rows, identity(idx[rows]))


def identity_embedding(n_articles: int, dim: int) -> torch.nn.Embedding:
    """An article identity embedding, started at zero (untrained, it adds nothing), with sparse gradients: a step
    updates only the rows its batch used (`IdentityOptimiser`), not every article's."""
    embedding = torch.nn.Embedding(n_articles, dim, sparse=True)
    torch.nn.init.zeros_(embedding.weight)
    return embedding


class IdentityOptimiser:
    """Adam over the model's dense parameters and a lazy Adam (`SparseAdam`) over the identity embedding, whose own
    (larger) weight decay is applied to the rows a step touched: a dense step would update a row per catalogue
    article every step, whatever the batch used (docs/models.md)."""

    def __init__(
        self,
        model: torch.nn.Module,
        identity: torch.nn.Embedding | None,
        lr: float,
        weight_decay: float,
        id_weight_decay: float,
    ):
        own = [] if identity is None else list(identity.parameters())
        others = [p for p in model.parameters() if all(p is not q for q in own)]
        self.dense = torch.optim.Adam(others, lr=lr, weight_decay=weight_decay)
        self.identity, self.id_weight_decay = own, id_weight_decay
        self.sparse = torch.optim.SparseAdam(own, lr=lr) if own else None

    def zero_grad(self) -> None:
        self.dense.zero_grad()
        if self.sparse is not None:
            self.sparse.zero_grad()

    def step(self) -> None:
        self.dense.step()
        if self.sparse is None:
            return
        for weight in self.identity:
            if weight.grad is not None and self.id_weight_decay:
                grad = weight.grad.coalesce()
                decayed = grad.values() + self.id_weight_decay * weight.data[grad.indices()[0]]
                weight.grad = torch.sparse_coo_tensor(
                    grad.indices(), decayed, grad.shape, is_coalesced=True, check_invariants=False
                )
        self.sparse.step()
