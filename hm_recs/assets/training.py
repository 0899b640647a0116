"""What the model stages share: their run configuration (each model's own settings derived from its core dataclass,
`hm_recs.configs`; windows and seed from the `pipeline_settings` resource) and the loss plot of their metadata."""

import dagster as dg

from hm_recs.assets.common import png_markdown
from hm_recs.configs import config_of, core_config
from hm_recs.models.configs import ContentConfig, SearchConfig, SequenceConfig, TwoTowerConfig


class HeldOutConfig(dg.Config):
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
    """A segment's fine-tune from the global model: fewer epochs, a smaller step and batch."""


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
