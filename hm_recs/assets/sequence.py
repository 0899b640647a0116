"""The global sequence model (after Heinz et al. 2017) and its retrieval candidates. The model goes through the
registry's gate before it is stored; serving reads the sequences up to W (the sequence is the input, nothing
to retrain)."""

import dataclasses
import datetime as dt

import dagster as dg
import polars as pl

from hm_recs.assets.common import measured, preview
from hm_recs.assets.content import content_matrix
from hm_recs.assets.retrieval import candidate_set_check, candidates_check_spec, source_sits_out
from hm_recs.assets.training import (
    CandidatesPerCustomerConfig,
    SequenceModelConfig,
    content_week_of,
    loss_plot,
    trained_with_warm_start,
    warm_start_plan,
)
from hm_recs.configs import core_config
from hm_recs.deploy import SEQUENCE_PRIORITY, TRAINING_STEP_TAGS, use_step_threads
from hm_recs.partitions import history_of, partition_week, weekly_partitions
from hm_recs.registry import ModelRegistry
from hm_recs.resources import PipelineSettings
from hm_recs.storage.reads import catalogue_tables
from hm_recs.storage.staged import StagedTable
from hm_recs.storage.warehouse import PARTITIONED, Warehouse


def purchase_sequences(warehouse: Warehouse, week: dt.date, history_weeks: int):
    """The inputs both sequence-model assets read: catalogue tables, purchases as (customer_idx, article_idx,
    t_dat) over the catalogue's indexes, and week W's content vectors."""
    from hm_recs.models.common import IdIndex, encode_purchases

    customers, articles, transactions = catalogue_tables(warehouse, week, history_weeks)
    customer_index, article_index = IdIndex.of(customers["customer_id"]), IdIndex.of(articles["article_id"])
    purchases = encode_purchases(transactions, customer_index, article_index)
    return customer_index, article_index, transactions, purchases, content_matrix(warehouse, week, articles)


@dg.asset(
    op_tags={**TRAINING_STEP_TAGS, **SEQUENCE_PRIORITY},
    partitions_def=weekly_partitions,
    group_name="models",
    kinds={"pytorch"},
    deps=[history_of("transactions"), "article_content"],
    check_specs=[
        dg.AssetCheckSpec(
            "sequence_model_gate",
            asset="sequence_model",
            blocking=True,
            description=(
                "loss fell on fixed negatives, finite weights; the stored artefact reloads with its hash and "
                "version (beating popularity decides admission, recorded beside it, not this check)"
            ),
        )
    ],
)
def sequence_model(
    context: dg.AssetExecutionContext,
    config: SequenceModelConfig,
    pipeline_settings: PipelineSettings,
    warehouse: Warehouse,
    model_registry: ModelRegistry,
):
    """Every customer's purchase sequence up to W-1's Tuesday as content vectors with time stamps through an LSTM
    (or a transformer), validated on week W's purchases of the customers with history."""
    from hm_recs.models.common import held_out_sample, popularity_retrieval
    from hm_recs.models.retrieval import retrieval_gate
    from hm_recs.models.sequence import state

    use_step_threads()
    week = partition_week(context)
    cutoff = week - dt.timedelta(days=1)  # W-1's Tuesday
    with measured(context, "sequence_model") as figures:
        _, article_index, _, purchases, content = purchase_sequences(warehouse, week, pipeline_settings.history_weeks)
        training = purchases.filter(pl.col("t_dat") <= pl.lit(cutoff))
        with_history = training.select("customer_idx").unique()
        held_out = (
            purchases.filter(pl.col("t_dat") > pl.lit(cutoff))
            .select("customer_idx", "article_idx")
            .unique()
            .join(with_history, on="customer_idx", how="semi")
        )
        held_out = held_out_sample(held_out, config.max_held_out_customers, pipeline_settings.seed)
        articles = article_index.ids.to_list()
        result, start = _train(
            context, config, pipeline_settings, model_registry, week, training, content, held_out, articles
        )
        # the same bar as the two-tower gate: last two weeks' sales counts, on the same held-out customers
        popularity = popularity_retrieval(
            training.filter(pl.col("t_dat") > pl.lit(cutoff - dt.timedelta(days=14))), held_out, len(article_index)
        )
    gate, admission, scores = retrieval_gate(result, popularity, config.admission_margin)
    scores.update({"customers_with_history": with_history.height, "training_purchases": training.height})
    stored_state = {**state(result), "lineage": start.lineage.state(), "article_ids": articles}
    stored = model_registry.gate_then_store(context, "sequence", week, stored_state, gate, scores)
    is_admitted = model_registry.record_admission(context, "sequence", week, admission, scores)
    yield dg.MaterializeResult(
        metadata={
            **stored.metadata(),
            "admitted": is_admitted,
            **admission,
            **scores,
            **start.metadata(),
            "config": dg.MetadataValue.json(state(result)["config"]),
            "history": dg.MetadataValue.json(result.history),
            "loss_curve": loss_plot(result.history, f"sequence model ({config.encoder})"),
            **figures,
        }
    )
    yield model_registry.check(stored, gate)


def _train(context, config, settings, registry, week, training, content, held_out, articles: list[str]):
    """The week's sequence model (over the catalogue `articles`) from last week's (warm start) or from scratch, and
    the plan it followed."""
    from hm_recs.models.configs import SequenceConfig
    from hm_recs.models.sequence import carried_model
    from hm_recs.models.sequence_training import train_sequence_model

    cutoff = week - dt.timedelta(days=1)
    sequence_config = core_config(SequenceConfig, config, seed=settings.seed)
    start = warm_start_plan(registry, "sequence", week, sequence_config, settings, content_week_of(registry, week))

    def train(init_from, epochs):
        run_config = sequence_config if epochs is None else dataclasses.replace(sequence_config, epochs=epochs)
        return train_sequence_model(
            training, content, cutoff, run_config, held_out=held_out, log=context.log.info, init_from=init_from
        )

    return trained_with_warm_start(
        start, train, lambda state: carried_model(state, content, articles), config.warm_epochs, context.log
    )


@dg.asset(
    op_tags=SEQUENCE_PRIORITY,
    partitions_def=weekly_partitions,
    group_name="models",
    kinds={"pytorch", "duckdb"},
    metadata=PARTITIONED,
    deps=["sequence_model", "article_content", history_of("transactions")],
    check_specs=[candidates_check_spec("sequence_candidates")],
)
def sequence_candidates(
    context: dg.AssetExecutionContext,
    config: CandidatesPerCustomerConfig,
    pipeline_settings: PipelineSettings,
    warehouse: Warehouse,
    model_registry: ModelRegistry,
):
    """Top-K retrieval candidates per customer with history from the sequence model, among articles sold in the
    last `on_sale_weeks` weeks, scored in chunks of customers (memory: chunk x articles on sale), for the serving
    set (sequences up to W's Tuesday) and the labelled set (up to W-1's, as in the model's own validation)."""
    from hm_recs.models.retrieval import candidate_sets, set_figures, stage_retrieval
    from hm_recs.models.sequence import SequenceRetriever, load

    use_step_threads()
    week = partition_week(context)
    if disabled := source_sits_out(context, model_registry, "sequence", week, with_model_column=False):
        yield from disabled
        return
    with measured(context, "sequence_candidates") as figures:
        customer_index, article_index, transactions, purchases, content = purchase_sequences(
            warehouse, week, pipeline_settings.history_weeks
        )
        model = load(model_registry.load("sequence", week)[0], content)
        sets = candidate_sets(transactions, week, pipeline_settings.on_sale_weeks, article_index)
        table, counts, searches = StagedTable("sequence_candidates"), {}, {}
        for candidate_set in sets:
            wanted = customer_index.encode(candidate_set.customers, "customer_id", "customer_idx")
            retriever = SequenceRetriever.of(
                model, purchases, candidate_set.as_of, pipeline_settings.seed, config.search()
            )
            counts[candidate_set.target_week] = stage_retrieval(
                table,
                retriever,
                wanted["customer_idx"].sort().to_numpy(),
                candidate_set.on_sale,
                config.candidates_per_customer,
                customer_index,
                article_index,
                {"target_week": candidate_set.target_week, "week": week},
                config.retrieval_chunk_customers,
            )
            searches[candidate_set.kind] = retriever.search.figures()
    yield dg.Output(
        table,
        metadata={
            "rows": table.rows,
            "search": dg.MetadataValue.json(searches),
            "preview": preview(table.scan().head(5).collect()),
            **set_figures(sets),
            **figures,
        },
    )
    yield candidate_set_check(counts, sets, config.candidates_per_customer)
