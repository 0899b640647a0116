"""Article content encoder ("Fashion DNA"): catalogue attributes, description words and image vectors -> a dense
article vector.

As in Bracher et al. (2016), the encoder is trained on purchases: a customer embedding dotted with the
article's content vector predicts whether the customer bought it (BCE with sampled negatives). Only what the
catalogue says of an article enters it, so articles never sold get a vector too:
- the categorical attributes (`CONTENT_COLUMNS`), one embedding each;
- the words of `prod_name` and `detail_desc` (`TextVocabulary`: the catalogue's own words, no downloaded weights),
  a mean of learned word embeddings: what tells apart the articles that share every attribute;
- the retailer's image vectors when it provides them (`article_images`, any vision model's), projected linearly,
  with a flag for the articles that have none.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
import torch
from torch import nn

from hm_recs.models.common import fixed_sample, sample_negatives, set_seed, take_rows
from hm_recs.models.configs import ContentConfig

CONTENT_COLUMNS: tuple[str, ...] = (
    "product_type_no",
    "graphical_appearance_no",
    "colour_group_code",
    "department_no",
    "index_code",
    "section_no",
    "garment_group_no",
)


@dataclass(frozen=True)
class CategoricalVocabulary:
    """Per column, the known values; code 0 is reserved for unknown/missing values."""

    values: dict[str, list[str]]

    @classmethod
    def fit(cls, frame: pl.DataFrame, columns: Sequence[str]) -> CategoricalVocabulary:
        return cls({c: sorted(frame[c].drop_nulls().cast(pl.String).unique().to_list()) for c in columns})

    @property
    def sizes(self) -> list[int]:
        return [len(v) + 1 for v in self.values.values()]

    def codes(self, frame: pl.DataFrame) -> torch.Tensor:
        """[rows, columns] int64 codes (0 = unknown)."""
        out = []
        for column, values in self.values.items():
            mapping = pl.DataFrame(
                {"__v": values, "__code": np.arange(1, len(values) + 1)}, schema={"__v": pl.String, "__code": pl.Int64}
            )
            codes = (
                frame.select(pl.col(column).cast(pl.String).alias("__v"))
                .join(mapping, on="__v", how="left", maintain_order="left")["__code"]
                .fill_null(0)
            )
            out.append(codes.to_numpy().astype(np.int64))
        return torch.as_tensor(np.stack(out, axis=1))


TEXT_COLUMNS: tuple[str, ...] = ("prod_name", "detail_desc")
_WORD = re.compile(r"[a-z]+")


def _words(text: str | None) -> list[str]:
    return _WORD.findall(text.lower()) if text else []


@dataclass(frozen=True)
class TextVocabulary:
    """The catalogue's own words (of `TEXT_COLUMNS`): those in at least `min_articles` articles and at most
    `max_share` of them (words every article has say nothing), the `size` most frequent; index 0 pads."""

    words: list[str]
    max_tokens: int = 32

    @classmethod
    def fit(
        cls, articles: pl.DataFrame, size: int, min_articles: int = 2, max_share: float = 0.5, max_tokens: int = 32
    ) -> TextVocabulary:
        counts: Counter = Counter()
        for text in _texts(articles):
            counts.update(set(_words(text)))
        limit = max_share * max(articles.height, 1)
        kept = sorted((w for w, n in counts.items() if min_articles <= n <= limit), key=lambda w: (-counts[w], w))
        return cls(kept[:size], max_tokens)

    def tokens(self, articles: pl.DataFrame) -> torch.Tensor:
        """[rows, max_tokens] word indexes (1-based; 0 pads and stands for unknown words, which are dropped)."""
        index = {w: i + 1 for i, w in enumerate(self.words)}
        out = np.zeros((articles.height, self.max_tokens), dtype=np.int64)
        for row, text in enumerate(_texts(articles)):
            known = [index[w] for w in dict.fromkeys(_words(text)) if w in index][: self.max_tokens]
            out[row, : len(known)] = known
        return torch.as_tensor(out)


def _texts(articles: pl.DataFrame) -> list[str]:
    present = [c for c in TEXT_COLUMNS if c in articles.columns]
    if not present:
        return [""] * articles.height
    return (
        articles.select(pl.concat_str([pl.col(c).fill_null("") for c in present], separator=" ")).to_series().to_list()
    )


def image_matrix(articles: pl.DataFrame, images: pl.DataFrame | None, dim: int) -> torch.Tensor:
    """[rows of `articles`, dim + 1]: each article's image vector (zeros where it has none) and a has-image flag."""
    if images is None or images.height == 0 or dim == 0:
        return torch.zeros((articles.height, dim + 1))
    joined = articles.select("article_id").join(
        images.select("article_id", "image"), on="article_id", how="left", maintain_order="left"
    )
    has = joined["image"].is_not_null().to_numpy()
    matrix = np.zeros((articles.height, dim + 1), dtype=np.float32)
    if has.any():
        matrix[has, :dim] = np.stack(joined.filter(pl.col("image").is_not_null())["image"].to_numpy())
    matrix[:, dim] = has
    return torch.as_tensor(matrix)


class CategoricalEmbedding(nn.Module):
    """Concatenated embeddings of several categorical columns."""

    def __init__(self, sizes: list[int], dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, dim) for n in sizes)
        self.out_dim = dim * len(sizes)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([table(codes[:, i]) for i, table in enumerate(self.tables)], dim=1)


@dataclass(frozen=True)
class ArticleInputs:
    """What the encoder reads of a set of articles: attribute codes, word indexes, image vectors + flag."""

    codes: torch.Tensor  # [rows, columns]
    tokens: torch.Tensor  # [rows, max_tokens] (0 columns without text features)
    images: torch.Tensor  # [rows, image input dim + 1] (the flag only without images)

    def rows(self, idx: torch.Tensor) -> ArticleInputs:
        return ArticleInputs(self.codes[idx], self.tokens[idx], self.images[idx])


class ContentEncoder(nn.Module):
    def __init__(self, sizes: list[int], config: ContentConfig, n_words: int = 0, image_input: int = 0):
        super().__init__()
        self.embedding = CategoricalEmbedding(sizes, config.embedding_dim)
        width = self.embedding.out_dim
        self.words = (
            nn.EmbeddingBag(n_words + 1, config.text_dim, mode="sum", padding_idx=0)
            if n_words and config.text_dim
            else None
        )
        width += config.text_dim if self.words is not None else 0
        self.image = nn.Linear(image_input, config.image_dim) if image_input and config.image_dim else None
        width += config.image_dim + 1 if self.image is not None else 0
        self.mlp = nn.Sequential(nn.Linear(width, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.dim))

    def forward(self, inputs: ArticleInputs) -> torch.Tensor:
        parts = [self.embedding(inputs.codes)]
        if self.words is not None:  # mean of the known words' embeddings (0 for an article without any)
            counts = (inputs.tokens > 0).sum(1, keepdim=True).clamp(min=1)
            parts.append(self.words(inputs.tokens) / counts)
        if self.image is not None:
            parts += [self.image(inputs.images[:, :-1]), inputs.images[:, -1:]]
        return self.mlp(torch.cat(parts, dim=1))


@dataclass
class ContentModel:
    encoder: ContentEncoder
    vocabulary: CategoricalVocabulary
    config: ContentConfig
    history: list[dict]
    text: TextVocabulary | None = None
    image_input: int = 0  # length of the image vectors it was trained with (0: none)

    def inputs(self, articles: pl.DataFrame, images: pl.DataFrame | None = None) -> ArticleInputs:
        tokens = (
            self.text.tokens(articles) if self.text is not None else torch.zeros((articles.height, 0), dtype=torch.long)
        )
        return ArticleInputs(self.vocabulary.codes(articles), tokens, image_matrix(articles, images, self.image_input))

    def vectors(self, articles: pl.DataFrame, images: pl.DataFrame | None = None) -> torch.Tensor:
        """Content vectors of any articles (sold or not, with or without an image vector): [rows, dim]."""
        with torch.no_grad():
            return self.encoder(self.inputs(articles, images))

    def state(self) -> dict:
        return {
            "config": asdict(self.config),
            "vocabulary": self.vocabulary.values,
            "weights": self.encoder.state_dict(),
            "history": self.history,
            "text": {"words": self.text.words, "max_tokens": self.text.max_tokens} if self.text else None,
            "image_input": self.image_input,
        }

    @classmethod
    def load(cls, state: dict) -> ContentModel:
        # artefacts written before the text and image inputs have neither: they were trained on attributes only
        config = ContentConfig(**{"text_dim": 0, "image_dim": 0, **state["config"]})
        vocabulary = CategoricalVocabulary(state["vocabulary"])
        text = TextVocabulary(**state["text"]) if state.get("text") else None
        image_input = int(state.get("image_input", 0))
        encoder = ContentEncoder(vocabulary.sizes, config, len(text.words) if text else 0, image_input)
        encoder.load_state_dict(state["weights"])
        return cls(encoder, vocabulary, config, state["history"], text, image_input)


def _untrained_model(articles: pl.DataFrame, config: ContentConfig, images: pl.DataFrame | None) -> ContentModel:
    """A fresh encoder over the catalogue's attribute values, its own words (when `text_dim`) and the images'
    vector length (when given and `image_dim`)."""
    vocabulary = CategoricalVocabulary.fit(articles, CONTENT_COLUMNS)
    text = TextVocabulary.fit(articles, config.text_vocabulary) if config.text_dim else None
    text = text if text is not None and text.words else None
    image_input = len(images["image"][0]) if images is not None and images.height and config.image_dim else 0
    return ContentModel(
        ContentEncoder(vocabulary.sizes, config, len(text.words) if text else 0, image_input),
        vocabulary,
        config,
        [],
        text,
        image_input,
    )


def _describe_inputs(model: ContentModel, codes: ArticleInputs, n_articles: int) -> str:
    """The log line of what the encoder reads: attributes, description words, image vectors."""
    text, image_input = model.text, model.image_input
    return (
        f"content encoder: {len(CONTENT_COLUMNS)} attributes, {len(text.words) if text else 0} description words, "
        + (
            f"image vectors of {image_input} values ({int(codes.images[:, -1].sum()):,} of {n_articles:,} articles)"
            if image_input
            else "no image vectors"
        )
    )


def _training_pairs(purchases: pl.DataFrame, config: ContentConfig, log: Callable[[str], None]) -> torch.Tensor:
    """[N, 2] (customer, article_idx) of the purchases of at most `max_customers` customers (a seeded sample when
    there are more, renumbered 0..max_customers-1)."""
    pairs = torch.as_tensor(purchases.select("customer_idx", "article_idx").to_numpy().copy(), dtype=torch.long)
    buyers = torch.unique(pairs[:, 0])
    if len(buyers) > config.max_customers:
        kept = buyers[fixed_sample(len(buyers), config.max_customers, config.seed + 2)]
        pairs = pairs[torch.isin(pairs[:, 0], kept)]
        pairs[:, 0] = torch.searchsorted(kept, pairs[:, 0].contiguous())
        log(f"content encoder: the purchases of {len(kept):,} of {len(buyers):,} customers ({len(pairs):,})")
    return pairs


def _train_epoch(
    encoder: ContentEncoder,
    customers: nn.Embedding,
    optimiser: torch.optim.Optimizer,
    codes: ArticleInputs,
    pairs: torch.Tensor,
    popularity: torch.Tensor,
    generator: torch.Generator,
    config: ContentConfig,
) -> dict:
    """One epoch (BCE of customer . article against sampled negatives) over a random order of all purchases, or a
    fresh random sample of `max_pairs_per_epoch` of them: its history record but the epoch number."""
    n_articles = len(codes.codes)  # the catalogue's rows
    started, total, batches = time.perf_counter(), 0.0, 0
    order = torch.randperm(len(pairs), generator=generator)[: config.max_pairs_per_epoch]
    for start in range(0, len(order), config.batch_size):
        batch = pairs[order[start : start + config.batch_size]]
        negatives = sample_negatives(
            n_articles, (len(batch), config.negatives), generator, popularity, config.popularity_negative_share
        )
        items = torch.cat([batch[:, 1:2], negatives], dim=1)
        unique, inverse = torch.unique(items, return_inverse=True)
        item_vectors = take_rows(encoder(codes.rows(unique)), inverse)  # [B, 1 + n, dim]
        logits = (customers(batch[:, 0]).unsqueeze(1) * item_vectors).sum(-1)
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1.0
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total, batches = total + loss.item(), batches + 1
    return {"loss": total / max(batches, 1), "seconds": round(time.perf_counter() - started, 3), "examples": len(order)}


def train_content_encoder(
    articles: pl.DataFrame,
    purchases: pl.DataFrame,
    config: ContentConfig = ContentConfig(),
    log: Callable[[str], None] = print,
    images: pl.DataFrame | None = None,
) -> ContentModel:
    """articles: the catalogue (CONTENT_COLUMNS, TEXT_COLUMNS); purchases: customer_idx, article_idx (row of
    `articles`); images: article_id, image (fixed-length float lists), optional. Learns from the purchases of at
    most `max_customers` customers, each epoch from at most `max_pairs_per_epoch` of them (samples when there are
    more); the history records per epoch its loss, seconds and examples (purchases trained on)."""
    generator = set_seed(config.seed)
    model = _untrained_model(articles, config, images)
    codes = model.inputs(articles, images)
    encoder = model.encoder
    log(_describe_inputs(model, codes, articles.height))
    pairs = _training_pairs(purchases, config, log)
    n_customers = int(pairs[:, 0].max()) + 1
    customers = nn.Embedding(n_customers, config.dim)
    nn.init.normal_(customers.weight, std=0.1)
    optimiser = torch.optim.Adam(list(encoder.parameters()) + list(customers.parameters()), lr=config.lr)
    popularity = torch.bincount(pairs[:, 1], minlength=len(articles))
    history = []
    for epoch in range(config.epochs):
        figures = {
            "epoch": epoch + 1,
            **_train_epoch(encoder, customers, optimiser, codes, pairs, popularity, generator, config),
        }
        history.append(figures)
        log(
            f"content encoder epoch {figures['epoch']}: loss {figures['loss']:.4f} ({figures['examples']:,} of "
            f"{len(pairs):,} purchases, {figures['seconds']:.1f} s)"
        )
    model.history = history
    return model
