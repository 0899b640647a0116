"""The two-tower models: the week's training data (built once), the global model, one fine-tuned model per
segment, and their retrieval candidates. Each model goes through the registry's gate before it is stored."""

import dataclasses

import dagster as dg
import polars as pl

from hm_recs.assets.common import measured, preview
from hm_recs.assets.content import content_matrix
from hm_recs.assets.retrieval import candidate_set_check, candidates_check_spec, source_sits_out
from hm_recs.assets.training import (
    CandidatesPerCustomerConfig,
    SegmentModelConfig,
    TwoTowerDataConfig,
    TwoTowerModelConfig,
    content_week_of,
    loss_plot,
    trained_with_warm_start,
    warm_start_plan,
)
from hm_recs.configs import core_config
from hm_recs.core.segments import BEHAVIOUR_SEGMENTS, DEFAULT
from hm_recs.deploy import TRAINING_STEP_TAGS, TWO_TOWER_PRIORITY, use_step_threads
from hm_recs.partitions import history_of, partition_week, weekly_partitions
from hm_recs.registry import ModelRegistry
from hm_recs.resources import PipelineSettings
from hm_recs.storage.reads import catalogue_tables, history, partition_rows
from hm_recs.storage.staged import StagedTable
from hm_recs.storage.warehouse import PARTITIONED, Warehouse

MODELLED_SEGMENTS = (*BEHAVIOUR_SEGMENTS, DEFAULT)
"""Segments with a model of their own (cold-start customers have no history to fine-tune on)."""


@dg.asset(
    op_tags=TWO_TOWER_PRIORITY,
    partitions_def=weekly_partitions,
    group_name="models",
    kinds={"polars", "pytorch"},
    deps=[history_of("transactions"), "customers", "articles", "article_content"],
    check_specs=[
        dg.AssetCheckSpec(
            "two_tower_data_stored",
            asset="two_tower_data",
            blocking=True,
            description=(
                "training purchases present; every feature tensor finite; the stored file reloads with its hash"
            ),
        )
    ],
)
def two_tower_data(
    context: dg.AssetExecutionContext,
    config: TwoTowerDataConfig,
    pipeline_settings: PipelineSettings,
    warehouse: Warehouse,
    model_registry: ModelRegistry,
):
    """The week's two-tower inputs (`models.training_data.TwoTowerData`): customer and article feature snapshots
    of the label weeks with their purchases, week W's held-out purchases and the serving features as of W.
    Built once per week and stored in the registry (`training_data/two_tower/`); the global, per-segment and
    retrieval steps load it instead of each rebuilding it."""
    from hm_recs.models.training_data import TwoTowerData

    week = partition_week(context)
    with measured(context, "two_tower_data") as figures:
        customers, articles, transactions = catalogue_tables(warehouse, week, pipeline_settings.history_weeks)
        data = TwoTowerData.build(
            transactions,
            customers,
            articles,
            week,
            content_matrix(warehouse, week, articles),
            label_weeks=pipeline_settings.label_weeks,
        )
        uri, digest, size = model_registry.store_training_data(
            week, pipeline_settings.two_tower_windows(), data.state()
        )
        if removed := model_registry.prune_training_data(week, config.training_data_keep_weeks):
            context.log.info(f"two_tower_data: removed the training data of {', '.join(removed)} (local retention)")
    not_finite = data.not_finite()
    context.log.info(
        f"two_tower_data: {data.labels.height:,} training purchases, {data.held_out.height:,} held-out pairs, "
        f"{len(data.customers):,} customers x {len(data.articles):,} articles, {size / 2**20:.0f} MiB at {uri}"
    )
    yield dg.MaterializeResult(
        metadata={
            "artefact": uri,
            "artefact_hash": digest,
            "size_mib": round(size / 2**20, 1),
            "training_purchases": data.labels.height,
            "held_out_pairs": data.held_out.height,
            "customers": len(data.customers),
            "articles": len(data.articles),
            "snapshots": data.train_inputs.n_snapshots,
            "windows": dg.MetadataValue.json(pipeline_settings.two_tower_windows()),
            **figures,
        }
    )
    stored = model_registry.training_data_digest(week)
    checks = {
        "training_purchases": data.labels.height > 0,
        "finite": not not_finite,
        "reloads_with_hash": stored == digest,
    }
    yield dg.AssetCheckResult(
        passed=all(checks.values()),
        metadata={**checks, "artefact_hash": stored, "not_finite": ", ".join(not_finite) or "none"},
    )


def load_two_tower_data(registry: ModelRegistry, week, settings: PipelineSettings):
    """Week W's `TwoTowerData` as `two_tower_data` stored it, built with the windows `settings` names."""
    from hm_recs.models.training_data import TwoTowerData

    return TwoTowerData.from_state(registry.training_data(week, settings.two_tower_windows()))


@dg.asset(
    op_tags={**TRAINING_STEP_TAGS, **TWO_TOWER_PRIORITY},
    partitions_def=weekly_partitions,
    group_name="models",
    kinds={"pytorch"},
    deps=["two_tower_data"],
    check_specs=[
        dg.AssetCheckSpec(
            "two_tower_gate",
            asset="two_tower_global",
            blocking=True,
            description=(
                "loss fell on fixed negatives, finite weights; the stored artefact reloads with its hash and "
                "version (beating popularity decides admission, recorded beside it, not this check)"
            ),
        )
    ],
)
def two_tower_global(
    context: dg.AssetExecutionContext,
    config: TwoTowerModelConfig,
    pipeline_settings: PipelineSettings,
    model_registry: ModelRegistry,
):
    """The global two-tower model, trained on weeks W-L..W-1 and validated on week W's purchases."""
    from hm_recs.models.common import held_out_sample, popularity_retrieval
    from hm_recs.models.configs import TwoTowerConfig
    from hm_recs.models.retrieval import retrieval_gate

    use_step_threads()
    week = partition_week(context)
    with measured(context, "two_tower_global") as figures:
        data = load_two_tower_data(model_registry, week, pipeline_settings)
        two_tower_config = core_config(TwoTowerConfig, config, seed=pipeline_settings.seed)
        held_out = held_out_sample(data.held_out, config.max_held_out_customers, pipeline_settings.seed)
        result, start, lineage = train_week_model(
            context,
            model_registry,
            pipeline_settings,
            week,
            "two_tower_global",
            data,
            data.labels,
            two_tower_config,
            config.warm_epochs,
            held_out=held_out,
        )
        popularity = popularity_retrieval(
            data.labels.filter(pl.col("snapshot") >= pipeline_settings.label_weeks - 2), held_out, len(data.articles)
        )
    gate, admission, scores = retrieval_gate(result, popularity, config.admission_margin)
    scores["training_pairs"] = data.labels.height
    stored = model_registry.gate_then_store(
        context, "two_tower_global", week, {**result.state(), **lineage}, gate, scores
    )
    is_admitted = model_registry.record_admission(context, "two_tower_global", week, admission, scores)
    yield dg.MaterializeResult(
        metadata={
            **stored.metadata(),
            "admitted": is_admitted,
            **admission,
            **scores,
            **start.metadata(),
            "config": dg.MetadataValue.json(result.state()["config"]),
            "history": dg.MetadataValue.json(result.history),
            "loss_curve": loss_plot(result.history, "two-tower (global)"),
            **figures,
        }
    )
    yield model_registry.check(stored, gate)


def _segment_check_specs(name: str) -> list[dg.AssetCheckSpec]:
    """The segment model's checks: its decision stored (blocking) and the fine-tune's own gate (a warning)."""
    return [
        dg.AssetCheckSpec(
            "segment_model_gate",
            asset=name,
            blocking=True,
            description="the segment's decision is stored; where its own model serves, that artefact reloads "
            "with its hash and version",
        ),
        dg.AssetCheckSpec(
            "segment_model_trained",
            asset=name,
            blocking=False,
            description=(
                "the fine-tune is finite with falling loss (or the segment has no members to learn from); "
                "when not, it is not stored and the global model serves the segment"
            ),
        ),
    ]


def _store_fine_tune(context, registry: ModelRegistry, name: str, week, decision: dict, result, lineage: dict):
    """The fine-tune's gate figures and its stored artefact (its state with `lineage`): None when there is no
    fine-tune or its gate fails (then the global model serves the segment and `decision` says why)."""
    gate = {"finite": True, "loss_fell": True}
    stored = None
    if result is not None:
        from hm_recs.models.common import finite

        gate = {"finite": bool(finite(result.model)), "loss_fell": result.loss_fell}
        try:
            stored = registry.gate_then_store(context, name, week, {**result.state(), **lineage}, gate)
        except dg.Failure as failure:  # a challenger that fails is not stored: the global model serves
            decision.update({"serves": "global", "reason": failure.description})
            context.log.warning(f"{name}: {failure.description}; the global model serves the segment")
    return gate, stored


def _segment_check_results(registry: ModelRegistry, stored, gate: dict, decision: dict):
    """The results of `_segment_check_specs`: the stored artefact's check (a pass noting why where none is stored)
    and the fine-tune's gate."""
    yield (
        registry.check(stored, gate, check_name="segment_model_gate")
        if stored is not None
        else dg.AssetCheckResult(
            check_name="segment_model_gate", passed=True, metadata={"note": decision.get("reason", "")}
        )
    )
    yield dg.AssetCheckResult(
        check_name="segment_model_trained",
        passed=all(gate.values()),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={f"gate/{k}": v for k, v in gate.items()},
    )


def segment_model_asset(segment: str):
    """The two-tower model of one segment: warm-started from the global model, fine-tuned on the segment's
    purchases, and serving the segment only where it beats the global model on the segment's held-out week."""
    name = f"two_tower_{segment}"

    @dg.asset(
        name=name,
        op_tags={**TRAINING_STEP_TAGS, **TWO_TOWER_PRIORITY},
        partitions_def=weekly_partitions,
        group_name="segment_models",
        kinds={"pytorch"},
        deps=["two_tower_global", "customer_segments", "two_tower_data"],
        check_specs=_segment_check_specs(name),
    )
    def _segment_model(
        context: dg.AssetExecutionContext,
        config: SegmentModelConfig,
        pipeline_settings: PipelineSettings,
        warehouse: Warehouse,
        model_registry: ModelRegistry,
    ):
        use_step_threads()
        week = partition_week(context)
        with measured(context, name) as figures:
            members = partition_rows(warehouse, "customer_segments", week, "customer_id, segment").filter(
                pl.col("segment") == segment
            )
            data = load_two_tower_data(model_registry, week, pipeline_settings)
            decision, result, lineage = fine_tune_segment(
                context, config, pipeline_settings, model_registry, data, members, segment, week
            )
        gate, stored = _store_fine_tune(context, model_registry, name, week, decision, result, lineage)
        context.log.info(f"{name}: serves {decision['serves']} ({decision})")
        model_registry.record_segment_decision(segment, week, decision)
        metadata = {**{k: v for k, v in decision.items() if v is not None}, "artefact": "", **figures}
        if stored is not None:
            metadata.update({**stored.metadata(), "loss_curve": loss_plot(result.history, name)})
        yield dg.MaterializeResult(metadata=metadata)
        yield from _segment_check_results(model_registry, stored, gate, decision)

    return _segment_model


def fine_tune_segment(
    context, config: SegmentModelConfig, settings, registry: ModelRegistry, data, members, segment: str, week
):
    """The segment's decision record, its fine-tuned model (None when the segment has nobody to learn from) and
    what its stored state records beside the model (lineage, articles). The decision says "segment" only where
    the fine-tune beats the global model on the segment's held-out week. A warm-started week fine-tunes the
    segment's own model of last week (`models/warm_start.py`), else this week's global model."""
    from hm_recs.models.common import held_out_sample, serving_choice
    from hm_recs.models.configs import TwoTowerConfig
    from hm_recs.models.two_tower import TwoTowerRetriever

    seed = settings.seed
    member_idx = data.customers.encode(members, "customer_id", "customer_idx")["customer_idx"].implode()
    labels = data.labels.filter(pl.col("customer_idx").is_in(member_idx))
    held_out = held_out_sample(
        data.held_out.filter(pl.col("customer_idx").is_in(member_idx)), config.max_held_out_customers, seed
    )
    decision = {
        "segment": segment,
        "week": str(week),
        "customers": members.height,
        "training_pairs": labels.height,
        "held_out_customers": held_out["customer_idx"].n_unique(),
        "serves": "global",
    }
    if not (labels.height and held_out.height):
        decision["reason"] = "no members with purchases in the training window and the held-out week"
        return decision, None, {}
    global_model = TwoTowerRetriever.load(registry.load("two_tower_global", week)[0], data.train_inputs)
    global_figures = global_model.evaluate(held_out)
    fine_tuning = core_config(TwoTowerConfig, config, seed=seed)
    # held-out figures once, after training (not inside it too): they decide which model serves
    name = f"two_tower_{segment}"
    result, start, lineage = train_week_model(
        context, registry, settings, week, name, data, labels, fine_tuning, config.warm_epochs, base=global_model.model
    )
    decision.update(start.metadata())
    own = TwoTowerRetriever(result.model).evaluate(held_out)
    decision.update(
        {
            "global_auc": global_figures.auc,
            "global_recall_at_100": global_figures.recall_at_k,
            "segment_auc": own.auc,
            "segment_recall_at_100": own.recall_at_k,
            "serves": serving_choice(global_figures, own),
        }
    )
    return decision, result, lineage


def train_week_model(
    context, registry, settings, week, name: str, data, labels, config, warm_epochs: int, held_out=None, base=None
):
    """Week W's two-tower model `name` on `labels`: fine-tuned from its own model of last week when the warm-start
    plan allows (`models/warm_start.py`), else trained from `base` (a segment's: this week's global model) or from
    scratch. Returns the result, the plan it followed and what its stored state records beside the model."""
    from hm_recs.models.two_tower import carried_model, train_two_tower

    start = warm_start_plan(registry, name, week, config, settings, content_week_of(registry, week))
    articles = data.articles.ids.to_list()

    def train(init_from, epochs):
        return train_two_tower(
            data.train_inputs,
            labels,
            config if epochs is None else dataclasses.replace(config, epochs=epochs),
            held_out=held_out,
            init_from=base if init_from is None else init_from,
            log=context.log.info,
            name=name.replace("_", " ").replace("two tower", "two-tower"),
            warm_start=init_from is not None,
        )

    result, start = trained_with_warm_start(
        start, train, lambda state: carried_model(state, data.train_inputs, articles), warm_epochs, context.log
    )
    return result, start, {"lineage": start.lineage.state(), "article_ids": articles}


segment_models = [segment_model_asset(s) for s in MODELLED_SEGMENTS]


def _serving_models(registry: ModelRegistry, week) -> dict[str, str]:
    """Per modelled segment, the model serving it: its own where the segment's decision says so, else the global."""
    return {
        segment: f"two_tower_{segment}"
        if registry.segment_decision(segment, week)["serves"] == "segment"
        else "two_tower_global"
        for segment in MODELLED_SEGMENTS
    }


def _customer_models(data, customers: pl.DataFrame, segments: pl.DataFrame, serving: dict[str, str]) -> pl.DataFrame:
    """`customers` with their `customer_idx` and the `model` serving their segment (no segment: the default's)."""
    return (
        data.customers.encode(customers, "customer_id", "customer_idx")
        .join(segments, on="customer_id", how="left")
        .with_columns(
            pl.col("segment").fill_null(DEFAULT).replace_strict(serving, default="two_tower_global").alias("model")
        )
    )


@dg.asset(
    op_tags=TWO_TOWER_PRIORITY,
    partitions_def=weekly_partitions,
    group_name="models",
    kinds={"pytorch", "duckdb"},
    metadata=PARTITIONED,
    deps=[
        "two_tower_global",
        "two_tower_data",
        history_of("transactions"),
        "customer_segments",
        *[f"two_tower_{s}" for s in MODELLED_SEGMENTS],
    ],
    check_specs=[candidates_check_spec("two_tower_candidates")],
)
def two_tower_candidates(
    context: dg.AssetExecutionContext,
    config: CandidatesPerCustomerConfig,
    pipeline_settings: PipelineSettings,
    warehouse: Warehouse,
    model_registry: ModelRegistry,
):
    """Top-K retrieval candidates per customer from the two-tower model serving the customer's segment (its own
    where it validated better, else the global one), among articles sold in the last `on_sale_weeks` weeks, for
    the serving and labelled sets (`models/retrieval.py`; the labelled set reads the features as of W-1)."""
    from hm_recs.models.retrieval import candidate_sets, set_figures, stage_retrieval
    from hm_recs.models.two_tower import TwoTowerRetriever

    use_step_threads()
    week = partition_week(context)
    if disabled := source_sits_out(context, model_registry, "two_tower_global", week, with_model_column=True):
        yield from disabled
        return
    with measured(context, "two_tower_candidates") as figures:
        transactions = history(warehouse, week, pipeline_settings.history_weeks)
        data = load_two_tower_data(model_registry, week, pipeline_settings)
        segments = partition_rows(warehouse, "customer_segments", week, "customer_id, segment")
        serving = _serving_models(model_registry, week)
        sets = candidate_sets(transactions, week, pipeline_settings.on_sale_weeks, data.articles)
        table, counts, states, searches = StagedTable("two_tower_candidates"), {}, {}, {}
        for candidate_set in sets:
            inputs = data.serving_inputs if candidate_set.serving else data.train_inputs
            wanted = _customer_models(data, candidate_set.customers, segments, serving)
            for (model_name,), group in sorted(wanted.group_by("model"), key=lambda g: g[0]):
                if model_name not in states:
                    states[model_name] = model_registry.load(model_name, week)[0]
                retriever = TwoTowerRetriever.load(states[model_name], inputs, config.search())
                counts.setdefault(candidate_set.target_week, []).extend(
                    stage_retrieval(
                        table,
                        retriever,
                        group["customer_idx"].sort().to_numpy(),
                        candidate_set.on_sale,
                        config.candidates_per_customer,
                        data.customers,
                        data.articles,
                        {"model": model_name, "target_week": candidate_set.target_week, "week": week},
                        config.retrieval_chunk_customers,
                    )
                )
                searches[f"{model_name} {candidate_set.kind}"] = retriever.search.figures()
    yield dg.Output(
        table,
        metadata={
            "rows": table.rows,
            "serving": dg.MetadataValue.json(serving),
            "search": dg.MetadataValue.json(searches),
            "preview": preview(table.scan().head(5).collect()),
            **set_figures(sets),
            **figures,
        },
    )
    yield candidate_set_check(counts, sets, config.candidates_per_customer)
