"""What the two towers read (no Dagster): customer and article features of weekly snapshots as tensors, with the
customers' earlier purchases (`PurchaseHistory`, for the repeat term), indexed like the model's ids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from hm_recs.models.common import (
    IdIndex,
    log_shares,
    purchase_cycles,
)
from hm_recs.models.content import CategoricalVocabulary

CUSTOMER_CATEGORICAL = ("age_group", "favourite_colour", "favourite_garment_group")
TREND_COLUMNS = ("sales_last_week", "sales_previous_week")
"""Article features the trend term reads: the sales of a snapshot's week and of the week before it, i.e. the two
weeks before the week it scores (the popularity baseline's counts)."""


def customer_numeric(features: pl.DataFrame) -> np.ndarray:
    """Scaled numeric customer features (missing values become 0 with an indicator where it matters)."""
    return (
        features.select(
            (pl.col("age").cast(pl.Float32).fill_null(0) / 100).alias("age"),
            pl.col("age").is_null().cast(pl.Float32).alias("age_missing"),
            pl.col("n_purchases").cast(pl.Float32).log1p(),
            pl.col("n_purchases_recent").cast(pl.Float32).log1p(),
            (pl.col("days_since_last_purchase").cast(pl.Float32).fill_null(365).log1p() / 6).alias("recency"),
            (pl.col("mean_price").cast(pl.Float32).fill_null(0) * 20).alias("price"),
            pl.col("online_share", "ladies_share", "men_share", "kids_share").cast(pl.Float32),
        )
        .to_numpy()
        .astype(np.float32)
    )


def article_trend(features: pl.DataFrame) -> torch.Tensor:
    """[n_articles, 3] trend inputs of one snapshot: log sales shares (`common.log_shares`, over the catalogue) of
    its week, of the week before, and of both weeks together (what the popularity baseline ranks by)."""
    counts = torch.as_tensor(features.select(pl.col(TREND_COLUMNS).fill_null(0).cast(pl.Float32)).to_numpy())
    return log_shares(torch.cat([counts, counts.sum(1, keepdim=True)], dim=1), dim=0)


def article_numeric(features: pl.DataFrame) -> np.ndarray:
    return (
        features.select(
            pl.col("n_sales").cast(pl.Float32).log1p() / 5,
            pl.col("sales_last_week").cast(pl.Float32).log1p() / 3,
            pl.col("trend").cast(pl.Float32).log(),
            (pl.col("mean_price").cast(pl.Float32).fill_null(0) * 20).alias("price"),
            pl.col("online_share", "seasonal_share").cast(pl.Float32).fill_null(0),
            (pl.col("days_on_sale").cast(pl.Float32).fill_null(0).log1p() / 6).alias("age_on_sale"),
            (pl.col("n_sales") == 0).cast(pl.Float32).alias("never_sold"),
        )
        .to_numpy()
        .astype(np.float32)
    )


@dataclass(frozen=True)
class PurchaseHistory:
    """What each customer bought before each snapshot's scored week, for the repeat term: one row per (snapshot,
    customer, article), sorted by `key` = (snapshot * n_customers + customer) * n_articles + article."""

    key: torch.Tensor  # [K] int64, ascending
    times: torch.Tensor  # [K] purchases of the article by the customer (distinct days)
    since_days: torch.Tensor  # [K] days from the last of them to the scored week's Wednesday
    cycle_days: torch.Tensor  # [n_articles] each article's usual re-buy cycle (`common.purchase_cycles`)
    n_customers: int
    n_articles: int

    TENSORS = ("key", "times", "since_days", "cycle_days")

    @classmethod
    def build(
        cls, snapshots: list[pl.DataFrame], cycles_from: pl.DataFrame, n_customers: int, n_articles: int
    ) -> PurchaseHistory:
        """snapshots: per snapshot, the purchases it may see (customer_idx, article_idx, t_dat) and the day scored
        (`scored` column: its week's Wednesday); cycles_from: purchases (customer_idx, article_idx, t_dat)."""
        parts = []
        for s, frame in enumerate(snapshots):
            parts.append(
                frame.group_by("customer_idx", "article_idx")
                .agg(
                    pl.col("t_dat").n_unique().alias("times"),
                    (pl.col("scored").first() - pl.col("t_dat").max()).dt.total_days().alias("since"),
                )
                .select(
                    (
                        (pl.lit(s, pl.Int64) * n_customers + pl.col("customer_idx")) * n_articles
                        + pl.col("article_idx")
                    ).alias("key"),
                    "times",
                    "since",
                )
            )
        table = (
            pl.concat(parts).sort("key")
            if parts
            else pl.DataFrame(schema={"key": pl.Int64, "times": pl.Int64, "since": pl.Int64})
        )
        cycles = purchase_cycles(
            cycles_from.select(
                pl.col("customer_idx").alias("customer"),
                pl.col("article_idx").alias("article"),
                pl.col("t_dat").cast(pl.Int32).alias("day"),
            ),
            n_articles,
        )
        return cls(
            torch.as_tensor(table["key"].to_numpy().copy()),
            torch.as_tensor(table["times"].to_numpy().astype(np.float32)),
            torch.as_tensor(table["since"].to_numpy().astype(np.float32)),
            cycles,
            n_customers,
            n_articles,
        )

    def base(self, customer_idx: torch.Tensor, snapshot: torch.Tensor) -> torch.Tensor:
        return (snapshot * self.n_customers + customer_idx) * self.n_articles

    def lookup(
        self, customer_idx: torch.Tensor, snapshot: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """For items [B, K] of customers [B] at snapshots [B]: (found [B, K] bool, times, since_days)."""
        query = self.base(customer_idx, snapshot).unsqueeze(1) + items
        pos = torch.searchsorted(self.key, query).clamp(max=max(len(self.key) - 1, 0))
        if len(self.key) == 0:
            zeros = torch.zeros(items.shape)
            return torch.zeros(items.shape, dtype=torch.bool), zeros, zeros
        found = self.key[pos] == query
        return found, self.times[pos], self.since_days[pos]

    def ranges(self, customer_idx: torch.Tensor, snapshot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B] first and end row of each customer's history at its snapshot."""
        base = self.base(customer_idx, snapshot)
        return torch.searchsorted(self.key, base), torch.searchsorted(self.key, base + self.n_articles)

    def state(self) -> dict:
        return {
            **{name: getattr(self, name) for name in self.TENSORS},
            "n_customers": self.n_customers,
            "n_articles": self.n_articles,
        }

    @classmethod
    def from_state(cls, state: dict) -> PurchaseHistory:
        return cls(
            **{name: state[name] for name in cls.TENSORS},
            n_customers=int(state["n_customers"]),
            n_articles=int(state["n_articles"]),
        )


@dataclass
class TowerInputs:
    """Every tensor the towers read, row i = customer/article index i."""

    customer_numeric: torch.Tensor  # [n_snapshots, n_customers, p]: customer features week by week
    customer_codes: torch.Tensor  # [n_snapshots, n_customers, q]
    article_numeric: torch.Tensor  # [n_snapshots, n_articles, r]: article features week by week
    article_content: torch.Tensor  # [n_articles, d]
    article_trend: torch.Tensor  # [n_snapshots, n_articles, 3]: `article_trend` week by week
    vocabulary: CategoricalVocabulary
    history: PurchaseHistory | None = None  # what each customer bought before each snapshot (the repeat term)

    @property
    def n_articles(self) -> int:
        return self.article_content.shape[0]

    @classmethod
    def build(
        cls,
        customer_features: list[pl.DataFrame],
        customers: IdIndex,
        article_features: list[pl.DataFrame],
        articles: IdIndex,
        content_vectors: torch.Tensor,
        vocabulary: CategoricalVocabulary | None = None,
    ) -> TowerInputs:
        """Features aligned to the indexes (`content_vectors` rows follow `articles`). The feature frames are
        weekly snapshots, oldest first, one per snapshot for each side: a purchase of snapshot s is scored with
        both sides' features as of the week before it; the last snapshot scores held-out or served weeks."""
        assert len(customer_features) == len(article_features), "one customer and one article snapshot per week"
        customer_frames = [
            customers.ids.to_frame("customer_id").join(f, on="customer_id", how="left", maintain_order="left")
            for f in customer_features
        ]
        article_frames = [
            articles.ids.to_frame("article_id").join(f, on="article_id", how="left", maintain_order="left")
            for f in article_features
        ]
        vocabulary = vocabulary or CategoricalVocabulary.fit(pl.concat(customer_frames), CUSTOMER_CATEGORICAL)
        return cls(
            customer_numeric=torch.as_tensor(np.stack([np.nan_to_num(customer_numeric(f)) for f in customer_frames])),
            customer_codes=torch.stack([vocabulary.codes(f) for f in customer_frames]),
            article_numeric=torch.as_tensor(np.stack([np.nan_to_num(article_numeric(f)) for f in article_frames])),
            article_content=content_vectors.float(),
            article_trend=torch.stack([article_trend(f) for f in article_frames]),
            vocabulary=vocabulary,
        )

    @property
    def n_snapshots(self) -> int:
        return self.article_numeric.shape[0]

    TENSORS = ("customer_numeric", "customer_codes", "article_numeric", "article_content", "article_trend")

    def state(self) -> dict:
        """Tensors and plain values (`common.to_bytes` stores them weights-only)."""
        return {
            **{name: getattr(self, name) for name in self.TENSORS},
            "vocabulary": self.vocabulary.values,
            "history": self.history.state() if self.history is not None else None,
        }

    @classmethod
    def from_state(cls, state: dict) -> TowerInputs:
        history = PurchaseHistory.from_state(state["history"]) if state.get("history") else None
        return cls(
            **{name: state[name] for name in cls.TENSORS},
            vocabulary=CategoricalVocabulary(state["vocabulary"]),
            history=history,
        )
