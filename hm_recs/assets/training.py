"""What the model stages share: their run configuration (each model's own settings derived from its core dataclass,
`hm_recs.configs`; windows and seed from the `pipeline_settings` resource) and the loss plot of their metadata."""

import dataclasses
import datetime as dt

import dagster as dg

from hm_recs.assets.common import png_markdown
from hm_recs.configs import config_of, core_config
from hm_recs.models.configs import ContentConfig, SearchConfig, SequenceConfig, TwoTowerConfig


class WarmStartConfig(dg.Config):
    # epochs of a warm-started week (fine-tuning last week's model, `models/warm_start.py`); a full retrain runs the
    # model's `epochs`
    warm_epochs: int = 2


class HeldOutConfig(WarmStartConfig):
    # the gates score each model (and popularity) on the held-out purchases of at most this many customers (a
    # seeded sample): each is scored against every article, so this bounds the gate's seconds
    max_held_out_customers: int = 20_000


class RetrievalModelConfig(HeldOutConfig):
    # a retrieval model's candidates join the union only when its held-out AUC and recall@100 beat popularity's
    # by more than this (absolute); otherwise the source sits the week out
    admission_margin: float = 0.0


class ContentModelConfig(config_of(ContentConfig, exclude=("seed",))):
    """`article_content`: the content encoder's settings (`models.content.ContentConfig`)."""


class TwoTowerDataConfig(dg.Config):
    # local artefact folders keep the stored two-tower training data of this many weeks before the week built
    # (hundreds of MB a week at H&M's size; S3: the bucket's lifecycle rule)
    training_data_keep_weeks: int = 8


class TwoTowerModelConfig(config_of(TwoTowerConfig, exclude=("seed",)), RetrievalModelConfig):
    """`two_tower_global`: the two-tower settings (`models.two_tower.TwoTowerConfig`) and its admission."""


class SegmentModelConfig(
    config_of(TwoTowerConfig, exclude=("seed",), epochs=3, lr=1e-3, batch_size=256), HeldOutConfig
):
    """A segment's fine-tune from the global model: fewer epochs, a smaller step and batch; a warm-started week
    fine-tunes the segment's own model of last week instead, for `warm_epochs`."""

    warm_epochs: int = 1


class SequenceModelConfig(config_of(SequenceConfig, exclude=("seed",), epochs=8, batch_size=128), RetrievalModelConfig):
    """`sequence_model`: the sequence model's settings (`models.sequence.SequenceConfig`; small batches learn more
    per epoch: docs/models.md) and its admission."""


class CandidatesPerCustomerConfig(config_of(SearchConfig)):
    """A retrieval model's candidate sets: how deep, in what chunks, and the article search
    (`models.article_search.SearchConfig`: `auto` = faiss's inverted-file index tuned to `target_recall` from
    `ann_min_articles` articles on sale, `exact` = the brute-force reference)."""

    # the depth stored per customer: what the union reads (`CandidateConfig.two_tower`/`sequence`: 30) and the
    # evaluation scores (MAP@12, rank coverage over these ranks). A union limit above it reads only this many.
    candidates_per_customer: int = 30
    retrieval_chunk_customers: int = 100_000  # customers ranked and staged at once: memory is chunk x K rows

    def search(self) -> SearchConfig:
        return core_config(SearchConfig, self)


def loss_plot(history: list[dict], title: str) -> dg.MetadataValue:
    """Training loss per epoch, with the held-out recall@100 where it was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.plot([h["epoch"] for h in history], [h["loss"] for h in history], marker="o", label="training loss")
    validated = [h for h in history if "recall_at_100" in h]
    if validated:
        ax2 = ax.twinx()
        ax2.plot(
            [h["epoch"] for h in validated],
            [h["recall_at_100"] for h in validated],
            color="#dd8452",
            marker="s",
            label="held-out recall@100",
        )
        ax2.set_ylabel("recall@100")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    value = png_markdown(fig)
    plt.close(fig)
    return value


def last_week_artefact(registry, model: str, week) -> tuple[dict, str] | None:
    """Week W-1's stored `model` state and artefact hash (what a warm start reads), None when there is none."""
    try:
        return registry.load(model, week - dt.timedelta(weeks=1))
    except dg.Failure:
        return None


def content_week_of(registry, week) -> str:
    """The full-retrain week of the content encoder whose vectors week W's models read (its lineage)."""
    from hm_recs.models.warm_start import Lineage

    lineage = Lineage.of(registry.load("content", week)[0])
    return lineage.full_retrain_week if lineage else week.isoformat()


def warm_start_plan(registry, model: str, week, core, settings, content_week: str | None = None):
    """`warm_start.plan` of week W's `model` (its dataclass config `core`) from W-1's artefact."""
    from hm_recs.models.warm_start import plan

    previous = last_week_artefact(registry, model, week)
    return plan(week, previous, dataclasses.asdict(core), settings.full_retrain_weeks, content_week)


def trained_with_warm_start(start, train, carry, warm_epochs: int, log):
    """The week's training result and the plan it followed: `train(init_from, epochs)` from last week's model
    carried to this week (`carry(state) -> (model or None, why not)`) for `warm_epochs` when the plan is warm, and
    from scratch (`train(None, None)`: the configured epochs) when it is not, when last week's model does not fit,
    or when the warm start fails its gate (loss fell, finite weights): a week never loses its model to a warm start."""
    from hm_recs.models.common import finite

    init = None
    if start.warm:
        init, reason = carry(start.previous)
        if init is None:
            start = start.cold(f"last week's model does not fit: {reason}")
    if init is not None:
        log.info(f"warm start from {start.lineage.warm_started_from['week']} for {warm_epochs} epochs ({start.reason})")
        result = train(init, warm_epochs)
        if result.loss_fell and finite(result.model):
            return result, start
        start = start.cold("the warm start did not pass its gate (loss fell, finite): retrained from scratch")
        log.warning(start.reason)
    else:
        log.info(f"full retrain: {start.reason}")
    return train(None, None), start
