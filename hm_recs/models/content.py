"""Article content encoder ("Fashion DNA"): catalogue attributes -> a dense article vector.

As in Bracher et al. (2016), the encoder is trained on purchases: a customer embedding dotted with the
article's content vector predicts whether the customer bought it (BCE with sampled negatives). Only
catalogue attributes enter the article side, so articles never sold get a vector too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
import torch
from torch import nn

from hm_recs.models.common import fixed_sample, sample_negatives, set_seed, take_rows

CONTENT_COLUMNS: tuple[str, ...] = (
    "product_type_no", "graphical_appearance_no", "colour_group_code", "department_no",
    "index_code", "section_no", "garment_group_no",
)


@dataclass(frozen=True)
class CategoricalVocabulary:
    """Per column, the known values; code 0 is reserved for unknown/missing values."""

    values: dict[str, list[str]]

    @classmethod
    def fit(cls, frame: pl.DataFrame, columns: Sequence[str]) -> "CategoricalVocabulary":
        return cls({c: sorted(frame[c].drop_nulls().cast(pl.String).unique().to_list()) for c in columns})

    @property
    def sizes(self) -> list[int]:
        return [len(v) + 1 for v in self.values.values()]

    def codes(self, frame: pl.DataFrame) -> torch.Tensor:
        """[rows, columns] int64 codes (0 = unknown)."""
        out = []
        for column, values in self.values.items():
            mapping = pl.DataFrame({"__v": values, "__code": np.arange(1, len(values) + 1)},
                                   schema={"__v": pl.String, "__code": pl.Int64})
            codes = (frame.select(pl.col(column).cast(pl.String).alias("__v"))
                     .join(mapping, on="__v", how="left", maintain_order="left")["__code"].fill_null(0))
            out.append(codes.to_numpy().astype(np.int64))
        return torch.as_tensor(np.stack(out, axis=1))


class CategoricalEmbedding(nn.Module):
    """Concatenated embeddings of several categorical columns."""

    def __init__(self, sizes: list[int], dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, dim) for n in sizes)
        self.out_dim = dim * len(sizes)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([table(codes[:, i]) for i, table in enumerate(self.tables)], dim=1)


@dataclass(frozen=True)
class ContentConfig:
    dim: int = 32
    embedding_dim: int = 12
    hidden: int = 64
    epochs: int = 4
    batch_size: int = 2048
    lr: float = 5e-3
    negatives: int = 8
    popularity_negative_share: float = 0.5
    seed: int = 0
    # Bounded cost per week whatever the number of customers. The customer embedding (a training aid: only the
    # article encoder is kept) has a row per customer that Adam updates every step (measured, 1 thread: 45 ms a
    # step at 137k customers, 391 ms at 1.37M), so it learns from the purchases of at most `max_customers`
    # customers (a fixed seeded sample when there are more), and an epoch from at most `max_pairs_per_epoch` of
    # them (a fresh sample each epoch). Neither samples anything up to about 150k customers (10 % of H&M: 137k
    # customers, ~0.8M purchases in 26 weeks); at full size (1.37M customers) the training is then about the
    # size of the 10 % one.
    max_customers: int = 150_000
    max_pairs_per_epoch: int = 1_000_000

    def __post_init__(self):
        if self.max_customers < 1 or self.max_pairs_per_epoch < 1:
            raise ValueError(f"max_customers and max_pairs_per_epoch must be >= 1, "
                             f"got {self.max_customers} and {self.max_pairs_per_epoch}")


class ContentEncoder(nn.Module):
    def __init__(self, sizes: list[int], config: ContentConfig):
        super().__init__()
        self.embedding = CategoricalEmbedding(sizes, config.embedding_dim)
        self.mlp = nn.Sequential(nn.Linear(self.embedding.out_dim, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.dim))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embedding(codes))


@dataclass
class ContentModel:
    encoder: ContentEncoder
    vocabulary: CategoricalVocabulary
    config: ContentConfig
    history: list[dict]

    def vectors(self, articles: pl.DataFrame) -> torch.Tensor:
        """Content vectors of any articles (sold or not): [rows, dim]."""
        with torch.no_grad():
            return self.encoder(self.vocabulary.codes(articles))

    def state(self) -> dict:
        return {"config": asdict(self.config), "vocabulary": self.vocabulary.values,
                "weights": self.encoder.state_dict(), "history": self.history}

    @classmethod
    def load(cls, state: dict) -> "ContentModel":
        config = ContentConfig(**state["config"])
        vocabulary = CategoricalVocabulary(state["vocabulary"])
        encoder = ContentEncoder(vocabulary.sizes, config)
        encoder.load_state_dict(state["weights"])
        return cls(encoder, vocabulary, config, state["history"])


def train_content_encoder(
    articles: pl.DataFrame,
    purchases: pl.DataFrame,
    config: ContentConfig = ContentConfig(),
    log: Callable[[str], None] = print,
) -> ContentModel:
    """articles: the catalogue (CONTENT_COLUMNS); purchases: customer_idx, article_idx (row of `articles`). Learns
    from the purchases of at most `max_customers` customers, each epoch from at most `max_pairs_per_epoch` of them
    (samples when there are more); the history records per epoch its loss, seconds and examples (purchases
    trained on)."""
    generator = set_seed(config.seed)
    vocabulary = CategoricalVocabulary.fit(articles, CONTENT_COLUMNS)
    codes = vocabulary.codes(articles)
    encoder = ContentEncoder(vocabulary.sizes, config)
    pairs = torch.as_tensor(purchases.select("customer_idx", "article_idx").to_numpy().copy(), dtype=torch.long)
    buyers = torch.unique(pairs[:, 0])
    if len(buyers) > config.max_customers:  # their purchases, customers renumbered 0..max_customers-1
        kept = buyers[fixed_sample(len(buyers), config.max_customers, config.seed + 2)]
        pairs = pairs[torch.isin(pairs[:, 0], kept)]
        pairs[:, 0] = torch.searchsorted(kept, pairs[:, 0].contiguous())
        log(f"content encoder: the purchases of {len(kept):,} of {len(buyers):,} customers ({len(pairs):,})")
    n_customers = int(pairs[:, 0].max()) + 1
    customers = nn.Embedding(n_customers, config.dim)
    nn.init.normal_(customers.weight, std=0.1)
    optimiser = torch.optim.Adam(list(encoder.parameters()) + list(customers.parameters()), lr=config.lr)
    popularity = torch.bincount(pairs[:, 1], minlength=len(articles))
    history = []
    for epoch in range(config.epochs):
        started, total, batches = time.perf_counter(), 0.0, 0
        # a random order of all purchases, or a fresh random sample of max_pairs_per_epoch of them
        order = torch.randperm(len(pairs), generator=generator)[:config.max_pairs_per_epoch]
        for start in range(0, len(order), config.batch_size):
            batch = pairs[order[start:start + config.batch_size]]
            negatives = sample_negatives(len(articles), (len(batch), config.negatives), generator, popularity,
                                         config.popularity_negative_share)
            items = torch.cat([batch[:, 1:2], negatives], dim=1)
            unique, inverse = torch.unique(items, return_inverse=True)
            item_vectors = take_rows(encoder(codes[unique]), inverse)  # [B, 1 + n, dim]
            logits = (customers(batch[:, 0]).unsqueeze(1) * item_vectors).sum(-1)
            labels = torch.zeros_like(logits)
            labels[:, 0] = 1.0
            loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, batches = total + loss.item(), batches + 1
        figures = {"epoch": epoch + 1, "loss": total / max(batches, 1), "seconds": round(time.perf_counter() - started, 3),
                   "examples": len(order)}
        history.append(figures)
        log(f"content encoder epoch {figures['epoch']}: loss {figures['loss']:.4f} ({len(order):,} of {len(pairs):,} "
            f"purchases, {figures['seconds']:.1f} s)")
    return ContentModel(encoder, vocabulary, config, history)
