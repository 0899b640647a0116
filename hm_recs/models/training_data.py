"""Training, validation and serving inputs of the two-tower model for a week W, from the pipeline's tables.

- labels: purchases of the `label_weeks` weeks before W (W-L .. W-1); a purchase of week t is scored with the
  customer and article features as of week t-1 (its snapshot);
- held out: week W's purchases (distinct pairs), the model gate's validation set;
- serving: customer and article features as of W, for recommendations for week W+1;
- purchase histories for the repeat term: per snapshot, what each customer bought up to the snapshot's week (and
  the articles' usual re-buy cycles, from the purchases before the first label week; serving: up to W).
Nothing after W's Tuesday is read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl
import torch

from hm_recs.core.features import article_features, customer_features, history_until
from hm_recs.core.weeks import shift_weeks, week_end, week_expr
from hm_recs.models.common import IdIndex, encode_purchases
from hm_recs.models.content import CategoricalVocabulary
from hm_recs.models.tower_inputs import PurchaseHistory, TowerInputs


@dataclass(frozen=True)
class _Tables:
    """The pipeline's tables of a week (transactions up to it) and their id indexes: what the week's tower inputs,
    labels and purchase histories are built from."""

    transactions: pl.DataFrame
    customers: pl.DataFrame
    articles: pl.DataFrame
    customer_index: IdIndex
    article_index: IdIndex
    content_vectors: torch.Tensor

    def encode(self, frame: pl.DataFrame) -> pl.DataFrame:
        return encode_purchases(frame, self.customer_index, self.article_index)

    def inputs(self, weeks: list[dt.date], vocabulary: CategoricalVocabulary | None = None) -> TowerInputs:
        """Tower inputs with one customer and one article feature snapshot per week of `weeks`."""
        return TowerInputs.build(
            [customer_features(self.customers, self.transactions, self.articles, w) for w in weeks],
            self.customer_index,
            [article_features(self.articles, self.transactions, self.customers, w) for w in weeks],
            self.article_index,
            self.content_vectors,
            vocabulary=vocabulary,
        )

    def histories(self, encoded: pl.DataFrame, weeks: list[dt.date], cycles_until: dt.date) -> PurchaseHistory:
        """What each customer bought up to each week of `weeks` (scored the week after), and the articles' re-buy
        cycles from the `encoded` purchases up to `cycles_until`."""
        return PurchaseHistory.build(
            [
                encoded.filter(pl.col("t_dat") <= pl.lit(week_end(w))).with_columns(
                    pl.lit(shift_weeks(w, 1)).alias("scored")
                )
                for w in weeks
            ],
            encoded.filter(pl.col("t_dat") <= pl.lit(week_end(cycles_until))),
            len(self.customer_index.ids),
            len(self.article_index.ids),
        )


@dataclass
class TwoTowerData:
    customers: IdIndex
    articles: IdIndex
    train_inputs: TowerInputs
    labels: pl.DataFrame  # customer_idx, article_idx, snapshot
    held_out: pl.DataFrame  # customer_idx, article_idx
    serving_inputs: TowerInputs

    @classmethod
    def build(
        cls,
        transactions: pl.DataFrame,
        customers: pl.DataFrame,
        articles: pl.DataFrame,
        week: dt.date,
        content_vectors: torch.Tensor,
        label_weeks: int = 4,
    ) -> TwoTowerData:
        """`content_vectors` rows follow `articles` sorted by article_id."""
        transactions = history_until(transactions, week)
        customer_index, article_index = IdIndex.of(customers["customer_id"]), IdIndex.of(articles["article_id"])
        first_label_week = shift_weeks(week, -label_weeks)
        feature_week = shift_weeks(first_label_week, -1)
        # features as of t-1 for a purchase in week t; the last snapshot (W-1) scores the held-out week W
        snapshot_weeks = [shift_weeks(feature_week, i) for i in range(label_weeks + 1)]
        tables = _Tables(transactions, customers, articles, customer_index, article_index, content_vectors)
        train_inputs = tables.inputs(snapshot_weeks)
        encoded = tables.encode(transactions).select("customer_idx", "article_idx", "t_dat")
        train_inputs.history = tables.histories(encoded, snapshot_weeks, feature_week)
        in_window = transactions.filter(
            pl.col("t_dat").is_between(pl.lit(first_label_week), pl.lit(shift_weeks(week, 0) - dt.timedelta(days=1)))
        )
        labels = (
            tables.encode(in_window)
            .with_columns(
                ((week_expr(pl.col("t_dat")) - pl.lit(first_label_week)).dt.total_days() // 7)
                .cast(pl.Int64)
                .alias("snapshot")
            )
            .select("customer_idx", "article_idx", "snapshot")
        )
        held_out = (
            tables.encode(transactions.filter(pl.col("t_dat") >= pl.lit(week)))
            .select("customer_idx", "article_idx")
            .unique()
            .sort("customer_idx", "article_idx")
        )  # a stored artefact: the same bytes every run
        serving_inputs = tables.inputs([week], vocabulary=train_inputs.vocabulary)
        serving_inputs.history = tables.histories(encoded, [week], week)
        return cls(customer_index, article_index, train_inputs, labels, held_out, serving_inputs)

    def not_finite(self) -> list[str]:
        """The floating feature tensors (`train_inputs.x`, `serving_inputs.x`) holding a NaN or an infinity."""
        tensors = {
            f"{side}.{name}": getattr(getattr(self, side), name)
            for side in ("train_inputs", "serving_inputs")
            for name in self.train_inputs.TENSORS
        }
        return sorted(
            name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())
        )

    def state(self) -> dict:
        """Tensors and plain values (`storage.encoding.to_bytes`): the week's data is built once and every
        two-tower step of the week loads it (the build reads 26 weeks of history six times over)."""

        def columns(frame: pl.DataFrame) -> dict:
            return {c: torch.as_tensor(frame[c].to_numpy().copy()) for c in frame.columns}

        return {
            "customer_ids": self.customers.state(),
            "article_ids": self.articles.state(),
            "train_inputs": self.train_inputs.state(),
            "serving_inputs": self.serving_inputs.state(),
            "labels": columns(self.labels),
            "held_out": columns(self.held_out),
        }

    @classmethod
    def from_state(cls, state: dict) -> TwoTowerData:
        def frame(columns: dict) -> pl.DataFrame:
            return pl.DataFrame({c: values.numpy() for c, values in columns.items()})

        return cls(
            IdIndex.from_state(state["customer_ids"]),
            IdIndex.from_state(state["article_ids"]),
            TowerInputs.from_state(state["train_inputs"]),
            frame(state["labels"]),
            frame(state["held_out"]),
            TowerInputs.from_state(state["serving_inputs"]),
        )
