"""The retrieval models' training loops and exact top-k at H&M's shape, on whatever device is there (issue 20):
a standalone script (torch and the standard library only: the device machine has neither polars nor this
project's package, and the tensors are generated on the device, not shipped).

    python benchmarks/device_steps.py [--device cpu|cuda|auto] [--scale 1.0] [--budget-s 420] [--out results.json]
                                      [--encoder lstm|transformer]

Shapes at scale 1.0: 1,371,980 customers, 105,542 articles, 935,000 customers with history (the ones retrieval
scores and the sequence model has a sequence for), 305,000 purchases a week, articles drawn from a power law
(p ~ rank^-0.9, as `model_parts.py --hm-shaped`). The configs' defaults are read from
hm_recs/models/configs.py (with `ast`, nothing of the package is imported; built-in copies where the file is
not there); --scale scales the customers, articles and purchases, never the per-epoch caps.

Timed parts (float32 only; TF32 switched off on CUDA, no autocast), each with seconds, throughput and peak memory:
1. content encoder, one epoch (mirrors `models/content.py` `ContentEncoder` and `_train_epoch`): 7 attribute
   embeddings + a mean of description-word embeddings -> MLP (hidden, dim); a customer embedding per sampled
   customer (`max_customers`, dense Adam over it as in the module), BCE against `negatives` sampled negatives
   (`common.sample_negatives`), at most `max_pairs_per_epoch` purchases, batches of `batch_size`.
2. two-tower, one epoch (`models/two_tower.py` `TwoTowerModel`, `_PairLoss`, `_train_epoch`; inputs as
   `models/tower_inputs.py` lays them out, 5 weekly snapshots): customer tower over numeric + categorical
   features, article tower over numeric features + content vectors, per-article bias + trend term, the article
   identity embedding (sparse, `common.IdentityOptimiser`), the repeat term over a sorted `PurchaseHistory`,
   `negatives` + `history_negatives` negatives, sampled softmax with the log-q correction, `max_pairs_per_epoch`
   pairs in batches of `batch_size`.
3. two-tower top-k (`two_tower.top_k` with the exact search, `article_search.ArticleSearch.top`): customer vectors,
   scores = U @ V.T + bias, the repeat entries added, torch.topk(k=100), chunks of 4,096 customers, results
   copied to the host (as `ranked_frame` needs them).
4. sequence model, one epoch (`models/sequence.py` `SequenceModel`, `models/sequence_training.py` `batch_loss`,
   `epoch_batches`, `prefix_matches`): the encoder (LSTM, or the causal transformer, per `encoder`) over the
   projected content vectors of the past articles + time features, teacher-forced next-basket targets against
   `negatives` + `history_negatives` negatives, trend bias per target week, repeat term, log-q correction, BCE;
   `max_sequences_per_epoch` sequences in length-sorted batches of `batch_size`.
5. sequence top-k (`sequence.top_k`, exact search): the encoder pass over every customer's sequence (chunks of
   2,048, each cut to its longest), the own-article repeat scores, U @ V.T + bias, torch.topk(k=100).

--budget-s bounds the whole run: each part gets an equal share of what is left (its data generation included),
and a part that cannot finish in it times a prefix of its steps or chunks and extrapolates linearly, labelled
"extrapolated from N of M chunks" (or steps). One untimed warm-up step or chunk precedes each timing. CUDA is
synchronised before every timer read. Writes a JSON (device, torch version, threads, load average, each part).

Approximated (costs mirrored, not the code): the catalogue's attribute and customer-feature vocabulary sizes
(H&M's, hard-coded), 20 known description words per article on average, no image vectors (the content encoder
reads them only where a week has them), sequence lengths log-normal (median 4.5, clipped to `max_len`; mean ~8
items: 26 weeks x 305k purchases over 935k customers), baskets of ~2.5 items, 8 history articles per customer and
snapshot, random feature values; the exact search is timed, not the serving default (`SearchConfig.method="auto"`:
faiss IVF at H&M's catalogue size). The configs' switches (trend, repeat, identity, loss, log-q) are mirrored as
their defaults; a configs.py that changes one is reported in the output's `config_differences`.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import math
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "hm_recs" / "models" / "configs.py"
HM_CUSTOMERS, HM_ARTICLES, HM_WITH_HISTORY, HM_WEEKLY_PURCHASES = 1_371_980, 105_542, 935_000, 305_000
K = 100
TT_CHUNK, SEQ_CHUNK = 4096, 2048  # `two_tower.top_k`, `sequence.top_k` defaults
CONTENT_SIZES = [132, 31, 51, 300, 11, 58, 22]  # H&M's CONTENT_COLUMNS values + 1 (unknown)
MAX_TOKENS = 32  # `content.TextVocabulary.max_tokens`
CUSTOMER_NUMERIC, ARTICLE_NUMERIC, TREND_INPUTS = 10, 8, 3  # `tower_inputs.customer_numeric` etc.
CUSTOMER_SIZES = [8, 51, 22]  # age_group, favourite_colour, favourite_garment_group + 1
SNAPSHOTS = 5  # `label_weeks` (4) + week W
HISTORY_PER_SNAPSHOT = 8  # distinct earlier articles per customer with history
HISTORY_WEEKS, TREND_WEEKS, REPEAT_FEATURES, DAY_SCALE = 26, 2, 4, 5.0
CUTOFF_DAY = 18_527  # 2020-09-22 as days since 1970-01-01
# fmt: off
BUILT_IN = {  # hm_recs/models/configs.py defaults, for a tree without it
    "ContentConfig": dict(
        dim=32, embedding_dim=12, hidden=64, batch_size=2048, lr=5e-3, negatives=8, popularity_negative_share=0.5,
        max_customers=150_000, max_pairs_per_epoch=1_000_000, text_dim=16, text_vocabulary=2000, image_dim=16,
    ),
    "TwoTowerConfig": dict(
        dim=64, hidden=128, id_dim=0, embedding_dim=8, batch_size=1024, lr=3e-3, weight_decay=1e-6, negatives=16,
        popularity_negative_share=0.1, loss="sampled_softmax", trend=True, article_bias=True, logq_correction=True,
        max_pairs_per_epoch=200_000, article_identity=True, id_min_sales=5, id_dropout=0.5, id_weight_decay=1e-4,
        repeat=True, repeat_hidden=16, history_negatives=4,
    ),
    "SequenceConfig": dict(
        dim=64, hidden=128, encoder="lstm", max_len=50, negatives=20, loss="bce", batch_size=256, lr=2e-3,
        weight_decay=1e-6, popularity_negative_share=0.5, article_bias=True, day_of_year=True, logq_correction=True,
        trend=True, transformer_layers=2, transformer_heads=4, repeat=True, repeat_hidden=16, history_negatives=4,
        article_identity=True, id_min_sales=5, id_dropout=0.5, id_weight_decay=1e-4, max_sequences_per_epoch=150_000,
    ),
}
MIRRORED = {  # the switches the mirrors below hard-code (a config that differs is reported, not followed)
    "TwoTowerConfig": dict(
        id_dim=0, loss="sampled_softmax", trend=True, article_bias=True, logq_correction=True, article_identity=True,
        repeat=True,
    ),
    "SequenceConfig": dict(
        loss="bce", article_bias=True, day_of_year=True, logq_correction=True, trend=True, repeat=True,
        article_identity=True,
    ),
}
# fmt: on


# ------------------------------------------------------------------------------------------------ configs, shapes
def read_configs() -> tuple[dict[str, SimpleNamespace], str]:
    """The three configs' defaults from configs.py (literal defaults only), over the built-in copies."""
    values = {name: dict(fields) for name, fields in BUILT_IN.items()}
    if not CONFIGS.exists():
        return {n: SimpleNamespace(**v) for n, v in values.items()}, "built-in copies"
    for node in ast.parse(CONFIGS.read_text()).body:
        if isinstance(node, ast.ClassDef) and node.name in values:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None:
                    try:
                        values[node.name][item.target.id] = ast.literal_eval(item.value)
                    except ValueError:
                        pass
    return {n: SimpleNamespace(**v) for n, v in values.items()}, str(CONFIGS.relative_to(ROOT))


def config_differences(configs: dict[str, SimpleNamespace]) -> list[str]:
    """The configs' switches that differ from what the mirrors hard-code (their timings then mirror the defaults
    of the day the script was written, not the configs)."""
    return [
        f"{name}.{field}={getattr(configs[name], field)!r} (mirrored: {value!r})"
        for name, fields in MIRRORED.items()
        for field, value in fields.items()
        if getattr(configs[name], field, value) != value
    ]


@dataclass(frozen=True)
class Shapes:
    customers: int
    articles: int
    with_history: int
    weekly_purchases: int

    @classmethod
    def at(cls, scale: float) -> Shapes:
        return cls(
            *(max(int(round(n * scale)), 256) for n in (HM_CUSTOMERS, HM_ARTICLES, HM_WITH_HISTORY)),
            max(int(round(HM_WEEKLY_PURCHASES * scale)), 256),
        )


# ------------------------------------------------------------------------------------ what `models/common.py` does
def take_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return x.index_select(0, idx.reshape(-1)).view(*idx.shape, *x.shape[1:])


def sample_negatives(n_items: int, shape: tuple, gen: torch.Generator, popularity=None, share: float = 0.5):
    uniform = torch.randint(0, n_items, shape, generator=gen, device=gen.device)
    if popularity is None or share <= 0:
        return uniform
    weights = popularity.float().clamp(min=0) + 1e-6
    popular = torch.multinomial(weights, math.prod(shape), replacement=True, generator=gen).view(shape)
    mask = torch.rand(shape, generator=gen, device=gen.device) < share
    return torch.where(mask, popular, uniform)


def negative_distribution(n_items: int, popularity: torch.Tensor, share: float) -> torch.Tensor:
    uniform = torch.full((n_items,), 1.0 / n_items, dtype=torch.float64, device=popularity.device)
    weights = popularity.double().clamp(min=0) + 1e-6
    return (1 - share) * uniform + share * weights / weights.sum()


def repeat_mlp(hidden: int) -> nn.Module:
    mlp = nn.Sequential(nn.Linear(REPEAT_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, 1))
    nn.init.zeros_(mlp[-1].weight)
    nn.init.zeros_(mlp[-1].bias)
    return mlp


def repeat_features(times: torch.Tensor, since_days: torch.Tensor, cycle_days: torch.Tensor) -> torch.Tensor:
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


def repeat_term(network, items, bought, times, since_days, cycle_days) -> torch.Tensor:
    hit = bought.nonzero(as_tuple=True)
    features = repeat_features(times[hit], since_days[hit], cycle_days[items[hit]])
    return torch.zeros(items.shape, device=items.device).index_put(hit, network(features).squeeze(-1))


def with_identity(vectors, identity, known, idx, dropout: float, training: bool) -> torch.Tensor:
    keep = known[idx]
    if training and dropout > 0:
        keep = keep & (torch.rand(len(idx), device=idx.device) >= dropout)
    rows = keep.nonzero().squeeze(1)
    return vectors.index_add(0, rows, identity(idx[rows]))


def identity_embedding(n_articles: int, dim: int) -> nn.Embedding:
    embedding = nn.Embedding(n_articles, dim, sparse=True)
    nn.init.zeros_(embedding.weight)
    return embedding


class IdentityOptimiser:
    """Adam over the dense parameters, SparseAdam over the identity embedding with its own weight decay."""

    def __init__(self, model: nn.Module, identity: nn.Embedding, lr: float, weight_decay: float, id_decay: float):
        own = list(identity.parameters())
        others = [p for p in model.parameters() if all(p is not q for q in own)]
        self.dense = torch.optim.Adam(others, lr=lr, weight_decay=weight_decay)
        self.identity, self.id_decay = own, id_decay
        self.sparse = torch.optim.SparseAdam(own, lr=lr)

    def zero_grad(self) -> None:
        self.dense.zero_grad()
        self.sparse.zero_grad()

    def step(self) -> None:
        self.dense.step()
        for weight in self.identity:
            if weight.grad is not None and self.id_decay:
                grad = weight.grad.coalesce()
                decayed = grad.values() + self.id_decay * weight.data[grad.indices()[0]]
                weight.grad = torch.sparse_coo_tensor(
                    grad.indices(), decayed, grad.shape, is_coalesced=True, check_invariants=False
                )
        self.sparse.step()


def draw_articles(shape: tuple, n_articles: int, gen: torch.Generator, order: torch.Tensor) -> torch.Tensor:
    """Article indices with p ~ rank^-0.9 (P(rank <= x) = (x / n)^0.1), ranks mapped to ids by `order`."""
    u = torch.rand(shape, generator=gen, device=gen.device)
    return order[(u.pow(10) * n_articles).long().clamp(max=n_articles - 1)]


# --------------------------------------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Budget:
    """The run's deadline, shared out equally among the parts still to run."""

    def __init__(self, seconds: float, parts: int):
        self.started = time.perf_counter()
        self.deadline = self.started + 0.92 * seconds  # room for the steps and chunks that overrun
        self.parts_left = parts

    def start_part(self, device: torch.device) -> float:
        """The deadline of the part starting now; resets the device's peak memory figure."""
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        now = time.perf_counter()
        share = max(self.deadline - now, 0.0) / max(self.parts_left, 1)
        self.parts_left -= 1
        return now + share


def measure(name: str, step, n_steps: int, work: int, unit: str, what: str, deadline: float, device) -> dict:
    """Times `step(i)` for i in 0..n_steps-1 after one untimed warm-up step (step 0), or a prefix of them when the
    deadline comes first (then extrapolated linearly): the part's record. `work` units in all n_steps."""
    warm_started = time.perf_counter()
    step(0)
    sync(device)
    warm_up = time.perf_counter() - warm_started
    started, done = time.perf_counter(), 0
    while done < n_steps:
        step(done)
        sync(device)
        done += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - started
    seconds = elapsed * n_steps / done
    measured = done == n_steps
    status = f"measured ({n_steps} {what})" if measured else f"extrapolated from {done} of {n_steps} {what}"
    record = {
        "part": name,
        "seconds": round(seconds, 3),
        "measured": measured,
        "status": status,
        "steps_timed": done,
        "steps_total": n_steps,
        "timed_seconds": round(elapsed, 3),
        "warm_up_seconds": round(warm_up, 3),
        "work": work,
        "unit": unit,
        "throughput_per_s": round(work / seconds, 1),
        "peak_memory_mb": round(peak_mb(device), 1),
    }
    print(f"  {name}: {seconds:.2f} s, {status}", flush=True)
    return record


# ------------------------------------------------------------------------------------------------ content encoder
class ContentEncoder(nn.Module):
    """`content.ContentEncoder` without image vectors: attribute embeddings + mean word embedding -> MLP."""

    def __init__(self, config: SimpleNamespace):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, config.embedding_dim) for n in CONTENT_SIZES)
        self.words = nn.EmbeddingBag(config.text_vocabulary + 1, config.text_dim, mode="sum", padding_idx=0)
        width = config.embedding_dim * len(CONTENT_SIZES) + config.text_dim
        self.mlp = nn.Sequential(nn.Linear(width, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.dim))

    def forward(self, codes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        parts = [table(codes[:, i]) for i, table in enumerate(self.tables)]
        counts = (tokens > 0).sum(1, keepdim=True).clamp(min=1)
        parts.append(self.words(tokens) / counts)
        return self.mlp(torch.cat(parts, dim=1))


def catalogue(n_articles: int, config: SimpleNamespace, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, 7] attribute codes and [n, MAX_TOKENS] word indexes (about 20 known words each, 0 pads)."""
    device = gen.device
    sizes = torch.tensor(CONTENT_SIZES, device=device)
    codes = (torch.rand((n_articles, len(CONTENT_SIZES)), generator=gen, device=device) * sizes).long()
    n_words = torch.randint(8, MAX_TOKENS + 1, (n_articles, 1), generator=gen, device=device)
    words = torch.randint(1, config.text_vocabulary + 1, (n_articles, MAX_TOKENS), generator=gen, device=device)
    return codes, torch.where(torch.arange(MAX_TOKENS, device=device) < n_words, words, 0)


def time_content(config: SimpleNamespace, shapes: Shapes, budget: Budget, device: torch.device) -> dict:
    deadline = budget.start_part(device)
    gen = torch.Generator(device=device).manual_seed(1)
    torch.manual_seed(1)
    order = torch.randperm(shapes.articles, generator=gen, device=device)
    codes, tokens = catalogue(shapes.articles, config, gen)
    n_customers = min(config.max_customers, shapes.with_history)
    per_customer = HISTORY_WEEKS * shapes.weekly_purchases / shapes.with_history
    n_pairs = int(n_customers * per_customer)
    pairs = torch.stack(
        [
            torch.randint(0, n_customers, (n_pairs,), generator=gen, device=device),
            draw_articles((n_pairs,), shapes.articles, gen, order),
        ],
        dim=1,
    )
    encoder = ContentEncoder(config).to(device)
    customers = nn.Embedding(n_customers, config.dim).to(device)
    nn.init.normal_(customers.weight, std=0.1)
    optimiser = torch.optim.Adam(list(encoder.parameters()) + list(customers.parameters()), lr=config.lr)
    popularity = torch.bincount(pairs[:, 1], minlength=shapes.articles)
    epoch = torch.randperm(n_pairs, generator=gen, device=device)[: config.max_pairs_per_epoch]
    size = config.batch_size

    def step(i: int) -> None:
        batch = pairs[epoch[i * size : (i + 1) * size]]
        negatives = sample_negatives(
            shapes.articles, (len(batch), config.negatives), gen, popularity, config.popularity_negative_share
        )
        items = torch.cat([batch[:, 1:2], negatives], dim=1)
        unique, inverse = torch.unique(items, return_inverse=True)
        item_vectors = take_rows(encoder(codes[unique], tokens[unique]), inverse)
        logits = (customers(batch[:, 0]).unsqueeze(1) * item_vectors).sum(-1)
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1.0
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        loss.item()

    n_steps = math.ceil(len(epoch) / size)
    record = measure("content encoder epoch", step, n_steps, len(epoch), "pairs", "steps", deadline, device)
    record["examples_available"] = n_pairs
    return record


# ------------------------------------------------------------------------------------------------------ two-tower
@dataclass
class TowerData:
    """`tower_inputs.TowerInputs` and `PurchaseHistory` at H&M's shape, and the label pairs."""

    customer_numeric: torch.Tensor  # [S, C, p]
    customer_codes: torch.Tensor  # [S, C, q]
    article_numeric: torch.Tensor  # [S, A, r]
    article_content: torch.Tensor  # [A, content dim]
    article_trend: torch.Tensor  # [S, A, 3]
    key: torch.Tensor  # [H] sorted (snapshot * C + customer) * A + article
    times: torch.Tensor
    since_days: torch.Tensor
    cycle_days: torch.Tensor  # [A]
    pairs: torch.Tensor  # [N, 3] customer, article, snapshot
    scored: torch.Tensor  # customers with history, ascending
    n_customers: int
    n_articles: int


def tower_data(shapes: Shapes, content_dim: int, gen: torch.Generator) -> TowerData:
    device, n_c, n_a = gen.device, shapes.customers, shapes.articles
    order = torch.randperm(n_a, generator=gen, device=device)
    scored = torch.randperm(n_c, generator=gen, device=device)[: shapes.with_history].sort().values
    n_history = shapes.with_history * HISTORY_PER_SNAPSHOT
    keys = []
    for s in range(SNAPSHOTS):
        who = scored[torch.randint(0, len(scored), (n_history,), generator=gen, device=device)]
        keys.append((s * n_c + who) * n_a + draw_articles((n_history,), n_a, gen, order))
    key = torch.cat(keys).sort().values
    n_pairs = (SNAPSHOTS - 1) * shapes.weekly_purchases
    pair_customers = scored[torch.randint(0, len(scored), (n_pairs,), generator=gen, device=device)]
    sizes = torch.tensor(CUSTOMER_SIZES, device=device)

    def randn(*shape):
        return torch.randn(shape, generator=gen, device=device)

    return TowerData(
        customer_numeric=randn(SNAPSHOTS, n_c, CUSTOMER_NUMERIC),
        customer_codes=(torch.rand((SNAPSHOTS, n_c, len(sizes)), generator=gen, device=device) * sizes).long(),
        article_numeric=randn(SNAPSHOTS, n_a, ARTICLE_NUMERIC),
        article_content=randn(n_a, content_dim),
        article_trend=randn(SNAPSHOTS, n_a, TREND_INPUTS) - math.log(n_a),
        key=key,
        times=torch.randint(1, 4, (len(key),), generator=gen, device=device).float(),
        since_days=torch.randint(0, 7 * HISTORY_WEEKS, (len(key),), generator=gen, device=device).float(),
        cycle_days=torch.rand(n_a, generator=gen, device=device) * 60 + 7,
        pairs=torch.stack(
            [
                pair_customers,
                draw_articles((n_pairs,), n_a, gen, order),
                torch.randint(0, SNAPSHOTS - 1, (n_pairs,), generator=gen, device=device),
            ],
            dim=1,
        ),
        scored=scored,
        n_customers=n_c,
        n_articles=n_a,
    )


class TwoTower(nn.Module):
    """`two_tower.TwoTowerModel` with its defaults (no customer id embedding, trend, bias, identity, repeat)."""

    def __init__(self, data: TowerData, config: SimpleNamespace):
        super().__init__()
        self.data, self.config = data, config
        self.categorical = nn.ModuleList(nn.Embedding(n, config.embedding_dim) for n in CUSTOMER_SIZES)
        c_in = CUSTOMER_NUMERIC + config.embedding_dim * len(CUSTOMER_SIZES)
        self.customer_tower = nn.Sequential(
            nn.Linear(c_in, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.dim)
        )
        a_in = ARTICLE_NUMERIC + data.article_content.shape[1]
        self.article_tower = nn.Sequential(
            nn.Linear(a_in, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.dim)
        )
        self.bias = nn.Parameter(torch.zeros(data.n_articles))
        self.repeat = repeat_mlp(config.repeat_hidden)
        self.article_id = identity_embedding(data.n_articles, config.dim)
        self.register_buffer("known_article", torch.zeros(data.n_articles, dtype=torch.bool))
        self.trend = nn.Linear(TREND_INPUTS, 1, bias=False)

    def customer_vectors(self, idx: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        codes = self.data.customer_codes[s, idx]
        parts = [self.data.customer_numeric[s, idx], *(t(codes[:, i]) for i, t in enumerate(self.categorical))]
        return self.customer_tower(torch.cat(parts, dim=1))

    def article_vectors(self, idx: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([self.data.article_numeric[s, idx], self.data.article_content[idx]], dim=1)
        vectors = self.article_tower(inputs)
        config = self.config
        return with_identity(vectors, self.article_id, self.known_article, idx, config.id_dropout, self.training)

    def article_bias(self, idx: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return take_rows(self.bias, idx) + self.trend(self.data.article_trend[s, idx]).squeeze(-1)


def history_ranges(data: TowerData, customer: torch.Tensor, s: torch.Tensor):
    base = (s * data.n_customers + customer) * data.n_articles
    return torch.searchsorted(data.key, base), torch.searchsorted(data.key, base + data.n_articles)


def own_items(model: TwoTower, batch: torch.Tensor, gen: torch.Generator, popularity: torch.Tensor):
    """`_PairLoss.own_items`: `history_negatives` of each customer's earlier articles (else popular ones)."""
    data, draws, config = model.data, model.config.history_negatives, model.config
    lo, hi = history_ranges(data, batch[:, 0], batch[:, 2])
    n = (hi - lo).clamp(min=1)
    entry = (
        lo.unsqueeze(1) + (torch.rand((len(batch), draws), generator=gen, device=gen.device) * n.unsqueeze(1)).long()
    )
    own = data.key[entry.clamp(max=len(data.key) - 1)] % data.n_articles
    fallback = sample_negatives(data.n_articles, (len(batch), draws), gen, popularity, config.popularity_negative_share)
    return torch.where((hi > lo).unsqueeze(1), own, fallback), hi - lo


def pair_loss(model: TwoTower, batch: torch.Tensor, gen, popularity, log_q) -> torch.Tensor:
    """`_PairLoss.__call__` with the defaults: sampled softmax, log-q correction, repeat term, accidental hits."""
    data, config, n_a = model.data, model.config, model.data.n_articles
    negatives = sample_negatives(n_a, (len(batch), config.negatives), gen, popularity, config.popularity_negative_share)
    own, n_own = own_items(model, batch, gen, popularity)
    items = torch.cat([batch[:, 1:2], negatives, own], dim=1)
    unique, inverse = torch.unique(batch[:, 2:3] * n_a + items, return_inverse=True)
    item_vectors = take_rows(model.article_vectors(unique % n_a, unique // n_a), inverse)
    logits = (model.customer_vectors(batch[:, 0], batch[:, 2]).unsqueeze(1) * item_vectors).sum(-1)
    logits = logits + take_rows(model.article_bias(unique % n_a, unique // n_a), inverse)
    query = ((batch[:, 2] * data.n_customers + batch[:, 0]) * n_a).unsqueeze(1) + items  # `PurchaseHistory.lookup`
    pos = torch.searchsorted(data.key, query).clamp(max=len(data.key) - 1)
    found = data.key[pos] == query
    logits = logits + repeat_term(model.repeat, items, found, data.times[pos], data.since_days[pos], data.cycle_days)
    draws = config.history_negatives
    expected = config.negatives * log_q[items].exp() + draws * found / n_own.clamp(min=1).unsqueeze(1)
    logits = logits - torch.log(expected)
    hit = torch.zeros_like(items, dtype=torch.bool)
    hit[:, 1:] = items[:, 1:] == items[:, :1]
    logits = logits.masked_fill(hit, float("-inf"))
    return nn.functional.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def time_two_tower(config: SimpleNamespace, content_dim: int, shapes: Shapes, budget: Budget, device) -> list[dict]:
    deadline = budget.start_part(device)
    gen = torch.Generator(device=device).manual_seed(2)
    torch.manual_seed(2)
    data = tower_data(shapes, content_dim, gen)
    model = TwoTower(data, config).to(device)
    popularity = torch.bincount(data.pairs[:, 1], minlength=data.n_articles)
    with torch.no_grad():
        model.known_article.copy_(popularity >= config.id_min_sales)
        model.trend.weight.zero_()
        model.trend.weight[0, -1] = 1.0
    log_q = torch.log(negative_distribution(data.n_articles, popularity, config.popularity_negative_share)).float()
    optimiser = IdentityOptimiser(model, model.article_id, config.lr, config.weight_decay, config.id_weight_decay)
    epoch = torch.randperm(len(data.pairs), generator=gen, device=device)[: config.max_pairs_per_epoch]
    size = config.batch_size
    model.train()

    def step(i: int) -> None:
        loss = pair_loss(model, data.pairs[epoch[i * size : (i + 1) * size]], gen, popularity, log_q)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        loss.item()

    n_steps = math.ceil(len(epoch) / size)
    training = measure("two-tower epoch", step, n_steps, len(epoch), "pairs", "steps", deadline, device)
    training["examples_available"] = len(data.pairs)
    return [training, two_tower_top_k(model, budget, device)]


def two_tower_top_k(model: TwoTower, budget: Budget, device: torch.device) -> dict:
    """`two_tower.top_k` with the exact search over every article, for every customer with history."""
    deadline = budget.start_part(device)
    data, n_a = model.data, model.data.n_articles
    model.eval()
    latest = SNAPSHOTS - 1
    with torch.no_grad():
        every = torch.arange(n_a, device=device)
        vectors = model.article_vectors(every, torch.full_like(every, latest))
        bias = model.article_bias(every, torch.full_like(every, latest))

    def step(i: int) -> None:
        with torch.no_grad():
            batch = data.scored[i * TT_CHUNK : (i + 1) * TT_CHUNK]
            snapshot = torch.full_like(batch, latest)
            queries = model.customer_vectors(batch, snapshot)
            lo, hi = history_ranges(data, batch, snapshot)  # `repeat_entries`
            counts = hi - lo
            row = torch.repeat_interleave(torch.arange(len(batch), device=device), counts)
            starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
            entry = torch.repeat_interleave(lo, counts) + torch.arange(len(row), device=device) - starts
            article = data.key[entry] % n_a
            features = repeat_features(data.times[entry], data.since_days[entry], data.cycle_days[article])
            scores = queries @ vectors.T + bias
            scores = scores.index_put((row, article), model.repeat(features).squeeze(-1), accumulate=True)
            top = torch.topk(scores, K, dim=1)
            top.values.cpu(), top.indices.cpu()

    n_chunks = math.ceil(len(data.scored) / TT_CHUNK)
    record = measure("two-tower top-100", step, n_chunks, len(data.scored), "customers", "chunks", deadline, device)
    record["score_cells"] = len(data.scored) * n_a
    return record


# ------------------------------------------------------------------------------------------------- sequence model
@dataclass
class Sequences:
    """`sequence_data.SequenceData` of every customer with history (left-aligned, padding article = n_articles)."""

    articles: torch.Tensor  # [N, L] int32
    days: torch.Tensor  # [N, L] int32
    basket_start: torch.Tensor  # [N, L] bool
    lengths: torch.Tensor  # [N] int64
    trend: torch.Tensor  # [HISTORY_WEEKS + TREND_WEEKS, A] log shares per week before the day after the cutoff
    n_articles: int


def sequences(shapes: Shapes, max_len: int, gen: torch.Generator) -> Sequences:
    device, n, n_a = gen.device, shapes.with_history, shapes.articles
    order = torch.randperm(n_a, generator=gen, device=device)
    lengths = (math.log(4.5) + 1.1 * torch.randn(n, generator=gen, device=device)).exp().round()
    lengths = lengths.clamp(1, max_len).long()
    valid = torch.arange(max_len, device=device) < lengths.unsqueeze(1)
    articles = torch.where(valid, draw_articles((n, max_len), n_a, gen, order), n_a).int()
    basket_start = (torch.rand((n, max_len), generator=gen, device=device) < 0.4) & valid
    basket_start[:, 0] = True
    gaps = torch.randint(1, 21, (n, max_len), generator=gen, device=device) * basket_start
    gaps[:, 0] = 0
    first = CUTOFF_DAY - 7 * HISTORY_WEEKS + torch.randint(0, 60, (n, 1), generator=gen, device=device)
    days = torch.where(valid, (first + gaps.cumsum(1)).clamp(max=CUTOFF_DAY), 0).int()
    trend = torch.randn((HISTORY_WEEKS + TREND_WEEKS, n_a), generator=gen, device=device) - math.log(n_a)
    return Sequences(articles, days, basket_start, lengths, trend, n_a)


class SequenceNet(nn.Module):
    """`sequence.SequenceModel` with its defaults (bias, day of year, trend, repeat, identity)."""

    def __init__(self, content: torch.Tensor, config: SimpleNamespace):
        super().__init__()
        self.config, self.n_articles, h = config, content.shape[0], config.hidden
        self.register_buffer("content", torch.cat([content, torch.zeros(1, content.shape[1])]), persistent=False)
        self.input_projection = nn.Sequential(nn.Linear(content.shape[1], h), nn.ReLU())
        if config.encoder == "lstm":
            self.lstm = nn.LSTM(h + 4, h, batch_first=True)
        else:
            self.transformer_input = nn.Linear(h + 4, h)
            self.position = nn.Embedding(config.max_len, h)
            layer = nn.TransformerEncoderLayer(
                h, config.transformer_heads, dim_feedforward=2 * h, dropout=0.0, batch_first=True, norm_first=True
            )
            self.transformer = nn.TransformerEncoder(layer, config.transformer_layers, enable_nested_tensor=False)
            self.transformer_norm = nn.LayerNorm(h)
        self.head = nn.Linear(h, config.dim)
        self.article_tower = nn.Sequential(nn.Linear(content.shape[1], h), nn.ReLU(), nn.Linear(h, config.dim))
        self.bias = nn.Parameter(torch.zeros(self.n_articles))
        self.article_id = identity_embedding(self.n_articles, config.dim)
        self.register_buffer("known_article", torch.zeros(self.n_articles, dtype=torch.bool))
        self.repeat = repeat_mlp(config.repeat_hidden)
        self.register_buffer("cycle_days", torch.full((self.n_articles,), 28.0))
        self.trend = nn.Linear(TREND_WEEKS, 1, bias=False)

    def encode(self, articles: torch.Tensor, days: torch.Tensor, lengths: torch.Tensor, as_of_day: int):
        x = torch.cat(
            [self.input_projection(self.content[articles.long()]), time_features(days, lengths, as_of_day)], dim=-1
        )
        if self.config.encoder == "lstm":
            out, _ = self.lstm(x)
        else:
            width = x.shape[1]
            x = self.transformer_input(x) + self.position(torch.arange(width, device=x.device))
            mask = nn.Transformer.generate_square_subsequent_mask(width, device=x.device)
            out = self.transformer_norm(self.transformer(x, mask=mask, is_causal=True))
        return self.head(out)

    def article_vectors(self, idx: torch.Tensor) -> torch.Tensor:
        vectors = self.article_tower(self.content[idx])
        config = self.config
        return with_identity(vectors, self.article_id, self.known_article, idx, config.id_dropout, self.training)

    def article_bias(self, idx: torch.Tensor, trend: torch.Tensor) -> torch.Tensor:
        return take_rows(self.bias, idx) + self.trend(trend).squeeze(-1)


def time_features(days: torch.Tensor, lengths: torch.Tensor, as_of_day: int) -> torch.Tensor:
    """`SequenceModel._time_features` with day of year: [B, L, 4]."""
    days = days.long()
    b, width = days.shape
    since = torch.zeros_like(days)
    since[:, 1:] = days[:, 1:] - days[:, :-1]
    target = torch.cat([days[:, 1:], torch.zeros(b, 1, dtype=days.dtype, device=days.device)], dim=1)
    target[torch.arange(b, device=days.device), lengths - 1] = as_of_day
    valid = torch.arange(width, device=days.device).unsqueeze(0) < lengths.unsqueeze(1)
    since = since.clamp(min=0).float().log1p() / DAY_SCALE
    until = (target - days).clamp(min=0).float().log1p() / DAY_SCALE
    phase = target.float() * (2 * math.pi / 365.25)
    return torch.stack([since, until, torch.sin(phase), torch.cos(phase)], dim=-1) * valid.unsqueeze(-1)


def prefix_matches(articles, days, lengths, seq, pos, items, n_articles: int):
    """`sequence_training.prefix_matches`: times each item is among the target's earlier items, and the day of the
    latest of them."""
    b, width = articles.shape
    device = articles.device
    valid = torch.arange(width, device=device).unsqueeze(0) < lengths.unsqueeze(1)
    position = torch.arange(width, device=device).expand(b, width)
    pair = torch.arange(b, device=device).unsqueeze(1) * (n_articles + 1) + articles.long()
    keys, _ = (pair * width + position)[valid].sort()
    base = (seq.unsqueeze(1) * (n_articles + 1) + items) * width
    first = torch.searchsorted(keys, base)
    after = torch.searchsorted(keys, base + pos.unsqueeze(1), right=True)
    latest = keys[(after - 1).clamp(min=0)] % width
    return after - first, days.long()[seq.unsqueeze(1), latest]


def sequence_loss(model: SequenceNet, data: Sequences, rows: torch.Tensor, gen, popularity) -> torch.Tensor:
    """`sequence_training.batch_loss` with the defaults (BCE, trend per target week, repeat term, log-q)."""
    config, n_a = model.config, model.n_articles
    lengths = data.lengths[rows]
    width = int(lengths.max())
    articles, days = data.articles[rows, :width], data.days[rows, :width]
    targets = data.basket_start[rows, :width].clone()
    targets[:, 0] = False
    seq, pos = targets[:, 1:].nonzero(as_tuple=True)
    style = model.encode(articles, days, lengths, CUTOFF_DAY + 1)[seq, pos]
    negatives = sample_negatives(n_a, (len(seq), config.negatives), gen, popularity, config.popularity_negative_share)
    draws = torch.rand((len(seq), config.history_negatives), generator=gen, device=gen.device)
    earlier = articles[seq.unsqueeze(1), (draws * (pos + 1).unsqueeze(1)).long()].long()
    items = torch.cat([articles[seq, pos + 1].long().unsqueeze(1), negatives, earlier], dim=1)
    unique, inverse = torch.unique(items, return_inverse=True)
    vectors = take_rows(model.article_vectors(unique), inverse)
    target_days = days[seq, pos + 1].long()
    target_bin = ((CUTOFF_DAY - target_days) // 7).clamp(0, len(data.trend) - TREND_WEEKS - 1).unsqueeze(1)
    item_trend = torch.stack([data.trend[target_bin + 1 + w, items] for w in range(TREND_WEEKS)], dim=-1)
    bias = model.article_bias(items.reshape(-1), item_trend.reshape(-1, TREND_WEEKS)).view(items.shape)
    logits = torch.einsum("td,tkd->tk", style, vectors) + bias
    times, last_day = prefix_matches(articles, days, lengths, seq, pos, items, n_a)
    since = target_days.unsqueeze(1) - last_day
    logits = logits + repeat_term(model.repeat, items, times > 0, times, since, model.cycle_days)
    q = negative_distribution(n_a, popularity, config.popularity_negative_share)
    expected = config.negatives * q[items] + config.history_negatives * times / (pos + 1).unsqueeze(1)
    logits = logits - torch.log(expected).float()
    weight = torch.ones_like(logits)
    weight[:, 1:] = (items[:, 1:] != items[:, :1]).float()
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    losses = nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (losses * weight).sum() / weight.sum()


def epoch_batches(data: Sequences, budget: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """`sequence_training.epoch_batches`: a sample of the trainable sequences in batches of similar length."""
    trainable = torch.nonzero(data.basket_start[:, 1:].any(1)).squeeze(1)
    rows = trainable[torch.randperm(len(trainable), generator=gen, device=gen.device)[:budget]]
    order = rows[torch.argsort(data.lengths[rows], stable=True)]
    batches = list(torch.split(order, batch_size))
    return [batches[b] for b in torch.randperm(len(batches), generator=gen, device=gen.device).tolist()]


def time_sequence(config: SimpleNamespace, content_dim: int, shapes: Shapes, budget: Budget, device) -> list[dict]:
    deadline = budget.start_part(device)
    gen = torch.Generator(device=device).manual_seed(3)
    torch.manual_seed(3)
    data = sequences(shapes, config.max_len, gen)
    model = SequenceNet(torch.randn((shapes.articles, content_dim), generator=gen, device=device), config).to(device)
    valid = torch.arange(config.max_len, device=device) < data.lengths.unsqueeze(1)
    popularity = torch.bincount(data.articles[valid].long(), minlength=shapes.articles)
    with torch.no_grad():
        model.known_article.copy_(popularity >= config.id_min_sales)
        model.cycle_days.uniform_(7, 67)
        model.trend.weight.fill_(1.0 / TREND_WEEKS)
    del valid
    optimiser = IdentityOptimiser(model, model.article_id, config.lr, config.weight_decay, config.id_weight_decay)
    batches = epoch_batches(data, config.max_sequences_per_epoch, config.batch_size, gen)
    model.train()

    def step(i: int) -> None:
        loss = sequence_loss(model, data, batches[i], gen, popularity)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        loss.item()

    examples = sum(len(b) for b in batches)
    name = f"sequence ({config.encoder}) epoch"
    training = measure(name, step, len(batches), examples, "sequences", "steps", deadline, device)
    training["examples_available"] = int(data.basket_start[:, 1:].any(1).sum())
    return [training, sequence_top_k(model, data, budget, device)]


def own_repeat_scores(model: SequenceNet, articles, days, lengths, as_of_day: int):
    """`SequenceModel.own_repeat_scores`: (row, article, repeat term) of each sequence's own articles."""
    width, device = articles.shape[1], articles.device
    valid = torch.arange(width, device=device).unsqueeze(0) < lengths.unsqueeze(1)
    a = articles.long()
    same = (a.unsqueeze(2) == a.unsqueeze(1)) & valid.unsqueeze(1) & valid.unsqueeze(2)
    later = same & (
        torch.arange(width, device=device).view(1, 1, -1) > torch.arange(width, device=device).view(1, -1, 1)
    )
    last = valid & ~later.any(-1)
    row, pos = last.nonzero(as_tuple=True)
    article = a[row, pos]
    features = repeat_features(same[row, pos].sum(-1), as_of_day - days[row, pos].long(), model.cycle_days[article])
    return row, article, model.repeat(features).squeeze(-1)


def sequence_top_k(model: SequenceNet, data: Sequences, budget: Budget, device: torch.device) -> dict:
    """`sequence.top_k` with the exact search: every customer's sequence encoded, scored against every article."""
    deadline = budget.start_part(device)
    model.eval()
    as_of_day = CUTOFF_DAY + 1
    with torch.no_grad():
        vectors = model.article_vectors(torch.arange(model.n_articles, device=device))
        bias = model.article_bias(torch.arange(model.n_articles, device=device), data.trend[:TREND_WEEKS].T)

    def step(i: int) -> None:
        with torch.no_grad():
            lengths = data.lengths[i * SEQ_CHUNK : (i + 1) * SEQ_CHUNK]
            width = int(lengths.max())
            articles = data.articles[i * SEQ_CHUNK : (i + 1) * SEQ_CHUNK, :width]
            days = data.days[i * SEQ_CHUNK : (i + 1) * SEQ_CHUNK, :width]
            out = model.encode(articles, days, lengths, as_of_day)
            style = out[torch.arange(len(lengths), device=device), lengths - 1]
            row, article, value = own_repeat_scores(model, articles, days, lengths, as_of_day)
            scores = (style @ vectors.T + bias).index_put((row, article), value, accumulate=True)
            top = torch.topk(scores, K, dim=1)
            top.values.cpu(), top.indices.cpu()

    n = len(data.lengths)
    name = f"sequence ({model.config.encoder}) top-100"
    record = measure(name, step, math.ceil(n / SEQ_CHUNK), n, "customers", "chunks", deadline, device)
    record["score_cells"] = n * model.n_articles
    return record


# --------------------------------------------------------------------------------------------------------- report
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device, args, source: str, shapes: Shapes) -> dict:
    cuda = device.type == "cuda"
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else cpu_name(),
        "host_cpu": cpu_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "precision": "float32 (no autocast; TF32 off for matmul and cuDNN)",
        "scale": args.scale,
        "budget_s": args.budget_s,
        "configs_from": source,
        "shapes": {
            "customers": shapes.customers,
            "articles": shapes.articles,
            "customers_with_history": shapes.with_history,
            "weekly_purchases": shapes.weekly_purchases,
        },
    }


def table(parts: list[dict], memory: str) -> str:
    """One line per part: seconds, measured or extrapolated, work, throughput, peak memory."""
    rows = [("part", "seconds", "status", "work", "throughput", memory)]
    for p in parts:
        rows.append(
            (p["part"], f"{p['seconds']:.2f}", p["status"], f"{p['work']:,} {p['unit']}",
             f"{p['throughput_per_s']:,.0f} {p['unit']}/s", f"{p['peak_memory_mb']:,.0f}")
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) if i in (0, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    )


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    return torch.device(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--scale", type=float, default=1.0, help="x H&M's customers, articles and purchases")
    parser.add_argument("--budget-s", type=float, default=420.0, help="the whole run's seconds (parts extrapolate)")
    parser.add_argument("--encoder", choices=["lstm", "transformer"], default=None, help="default: SequenceConfig's")
    parser.add_argument("--out", type=Path, default=None, help="JSON of the results")
    args = parser.parse_args()
    budget = Budget(args.budget_s, parts=5)
    device = pick_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    configs, source = read_configs()
    if args.encoder:
        configs["SequenceConfig"].encoder = args.encoder
    shapes = Shapes.at(args.scale)
    report = environment(device, args, source, shapes)
    report["config_differences"] = config_differences(configs)
    for difference in report["config_differences"]:
        print(f"warning: {difference}", flush=True)
    print(
        f"{report['device_name']} ({device}), torch {torch.__version__}, {report['threads']} threads, "
        f"load average {report['load_average_at_start']}, configs from {source}",
        flush=True,
    )
    content_dim = configs["ContentConfig"].dim
    parts = [time_content(configs["ContentConfig"], shapes, budget, device)]
    parts += time_two_tower(configs["TwoTowerConfig"], content_dim, shapes, budget, device)
    parts += time_sequence(configs["SequenceConfig"], content_dim, shapes, budget, device)
    report["parts"] = parts
    report["total_wall_s"] = round(time.perf_counter() - budget.started, 1)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["peak_host_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if device.type == "cuda":
        report["peak_gpu_allocated_mb_last_part"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    memory = "peak GPU MB" if device.type == "cuda" else "peak RSS MB"
    print("\n" + table(parts, memory))
    print(
        f"\nwall {report['total_wall_s']} s (budget {args.budget_s:g} s); peak RSS {report['peak_host_rss_mb']:,.0f} MB"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
