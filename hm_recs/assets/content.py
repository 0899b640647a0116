"""The article content encoder (Fashion DNA): every catalogue article's vector, read by both retrieval models.

Trained from the warehouse's validated history up to W (short DuckDB reads, then no connection while
training); stored through the model registry's gate. Torch is imported inside the functions: every step
re-imports the code location."""

import dagster as dg
import polars as pl

from hm_recs.assets.common import measured
from hm_recs.assets.training import ContentModelConfig, loss_plot, warm_start_plan
from hm_recs.configs import core_config
from hm_recs.deploy import CONTENT_PRIORITY, TRAINING_STEP_TAGS, use_step_threads
from hm_recs.partitions import history_of, partition_week, weekly_partitions
from hm_recs.registry import ModelRegistry
from hm_recs.resources import PipelineSettings
from hm_recs.storage.reads import catalogue_tables, partition_rows
from hm_recs.storage.warehouse import PARTITIONED, Warehouse


@dg.asset(
    op_tags={**TRAINING_STEP_TAGS, **CONTENT_PRIORITY},
    partitions_def=weekly_partitions,
    group_name="models",
    kinds={"pytorch", "duckdb"},
    metadata=PARTITIONED,
    deps=[history_of("transactions"), "articles", "customers", "article_images"],
    check_specs=[
        dg.AssetCheckSpec(
            "content_encoder_gate",
            asset="article_content",
            blocking=True,
            description=(
                "loss fell, finite weights, a finite vector for every catalogue article; the stored artefact "
                "reloads with its hash and version"
            ),
        )
    ],
)
def article_content(
    context: dg.AssetExecutionContext,
    config: ContentModelConfig,
    pipeline_settings: PipelineSettings,
    warehouse: Warehouse,
    model_registry: ModelRegistry,
):
    """Fashion-DNA content vectors of every catalogue article (sold or not) from its attributes, description words and
    image vector (when the source has them), trained on purchases up to W."""
    import torch

    from hm_recs.models.common import IdIndex, encode_purchases, finite
    from hm_recs.models.configs import ContentConfig
    from hm_recs.models.content import train_content_encoder

    use_step_threads()
    week = partition_week(context)
    with measured(context, "article_content") as figures:
        customers, articles, transactions = catalogue_tables(warehouse, week, pipeline_settings.history_weeks)
        purchases = encode_purchases(
            transactions, IdIndex.of(customers["customer_id"]), IdIndex.of(articles["article_id"])
        )
        content_config = core_config(ContentConfig, config, seed=pipeline_settings.seed)
        images = partition_rows(warehouse, "article_images", week, "article_id, image")
        images = images if images.height else None
        start = warm_start_plan(model_registry, "content", week, content_config, pipeline_settings)
        model, start = reused_encoder(start, images, content_config, context.log)
        if model is None:
            model = train_content_encoder(articles, purchases, content_config, log=context.log.info, images=images)
        vectors = model.vectors(articles, images)
    gate = {
        "loss_fell": model.history[-1]["loss"] < model.history[0]["loss"],
        "finite": bool(finite(model.encoder)),
        "every_article": vectors.shape[0] == articles.height and bool(torch.isfinite(vectors).all()),
    }
    state = {**model.state(), "lineage": start.lineage.state()}
    stored = model_registry.gate_then_store(context, "content", week, state, gate)
    table = articles.select("article_id").with_columns(
        pl.Series("vector", vectors.numpy().tolist(), dtype=pl.List(pl.Float32)), pl.lit(week).alias("week")
    )
    yield dg.Output(
        table,
        metadata={
            "rows": table.height,
            "dim": vectors.shape[1],
            **stored.metadata(),
            "description_words": len(model.text.words) if model.text else 0,
            "image_vector_length": model.image_input,
            "articles_with_images": 0 if images is None else images.height,
            **start.metadata(),
            "history": dg.MetadataValue.json(model.history),
            "loss_curve": loss_plot(model.history, "content encoder"),
            **figures,
        },
    )
    yield model_registry.check(stored, gate)


def reused_encoder(start, images: pl.DataFrame | None, config, log):
    """Last week's encoder as it is, when the warm-start plan allows and it reads this week's image vectors
    (`models/warm_start.py`: its readers then keep reading the same representation), else None (train); and the
    plan it followed."""
    from hm_recs.models.content import ContentModel

    model = ContentModel.load(start.previous) if start.warm else None
    image_input = len(images["image"][0]) if images is not None and images.height and config.image_dim else 0
    if model is not None and model.image_input != image_input:
        model, start = None, start.cold(f"image vectors of {image_input} values now, {model.image_input} last week")
    if model is None:
        log.info(f"content encoder: full retrain ({start.reason})")
    else:
        log.info(f"content encoder: last week's weights kept ({start.reason})")
    return model, start


def content_matrix(warehouse: Warehouse, week, articles: pl.DataFrame):
    """The stored content vectors of week W in the order of `articles` (sorted by article_id)."""
    import numpy as np
    import torch

    stored = partition_rows(warehouse, "article_content", week, "article_id, vector")
    aligned = articles.select("article_id").join(stored, on="article_id", how="left", maintain_order="left")
    return torch.as_tensor(np.asarray(aligned["vector"].to_list(), dtype=np.float32))
