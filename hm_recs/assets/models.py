"""Learned models: the article content encoder, the global two-tower model and its retrieval candidates.

Models are trained from the warehouse's validated history up to W (short DuckDB reads, then no connection
while training). A model gate is evaluated *before* its artefact is written: a model that fails is never
stored, so the last good week's artefact stays the newest. The blocking check then reloads the stored
artefact (weights_only=True) and verifies its hash. Torch is imported inside the functions: every step
re-imports the code location.
"""

import datetime as dt
from collections.abc import Callable

import dagster as dg
import numpy as np
import polars as pl

from hm_recs.assets.common import measured, png_markdown, preview
from hm_recs.core.segments import BEHAVIOUR_SEGMENTS, DEFAULT
from hm_recs.core.weeks import shift_weeks
from hm_recs.deploy import CONTENT_PRIORITY, SEQUENCE_PRIORITY, TRAINING_STEP_TAGS, TWO_TOWER_PRIORITY, use_step_threads
from hm_recs.partitions import partition_week, weekly_partitions
from hm_recs.resources import ArtefactStore
from hm_recs.storage.location import content_digest
from hm_recs.storage.reads import catalogue_tables, history, partition_rows
from hm_recs.storage.staged import StagedTable
from hm_recs.storage.warehouse import PARTITIONED, Warehouse


class ModelConfig(dg.Config):
    history_weeks: int = 26
    label_weeks: int = 4  # weeks of purchases the two-tower model learns from (before the held-out week)
    epochs: int = 6
    content_epochs: int = 4
    segment_epochs: int = 3  # fine-tuning epochs of a segment model, warm-started from the global one
    candidates_per_customer: int = 100
    retrieval_chunk_customers: int = 100_000  # customers ranked and staged at once: memory is chunk x K rows
    on_sale_weeks: int = 4  # retrieval candidates: articles sold in the last N weeks
    sequence_epochs: int = 8
    sequence_batch_size: int = (
        128  # customers per batch (measured in docs/models.md: small batches learn more per epoch)
    )
    sequence_encoder: str = "lstm"  # "lstm" (Heinz et al. 2017) | "transformer"
    # a retrieval model's candidates join the union only when its held-out AUC and recall@100 beat popularity's
    # by more than this (absolute); otherwise the source sits the week out
    admission_margin: float = 0.0
    # Training examples per epoch (issue 7): above these each epoch trains on a fresh seeded sample, so a week's
    # training cost is bounded whatever the number of customers. The defaults (the model configs') sample nothing
    # up to about 150k customers (10 % of H&M); at full size an epoch costs 1.1-1.6x one at 10 % (docs/models.md).
    sequence_max_sequences_per_epoch: int = 150_000  # customers' purchase sequences
    two_tower_max_pairs_per_epoch: int = 200_000  # purchases (customer, article); also the segment fine-tunes
    content_max_pairs_per_epoch: int = 1_000_000  # purchases
    content_max_customers: int = 150_000  # customers whose purchases the content encoder learns from
    evaluate_every: int = 0  # held-out figures of the retrieval models every n epochs; 0: after the last only
    # the gates score each model (and popularity) on the held-out purchases of at most this many customers (a
    # seeded sample): each is scored against every article, 20k keeps that to seconds; 10 % scale has ~14k
    max_held_out_customers: int = 20_000
    # local artefact folders keep the stored two-tower training data of this many weeks before the week built
    # (hundreds of MB a week at H&M's size; S3: the bucket's lifecycle rule)
    training_data_keep_weeks: int = 8
    seed: int = 0


JSON_MODELS = frozenset({"ranker"})
"""Models stored as JSON (the LightGBM ranker: its text model inside); the torch models as weights-only files."""


def artefact_key(model: str, week: dt.date) -> str:
    return f"models/{model}/week={week.isoformat()}/model.{'json' if model in JSON_MODELS else 'pt'}"


def _encode(model: str, state: dict) -> tuple[bytes, str]:
    import json

    if model in JSON_MODELS:
        data = json.dumps(state, sort_keys=True, allow_nan=True).encode()
        return data, content_digest(data)
    from hm_recs.models.common import to_bytes

    return to_bytes(state)


def _decode(model: str, data: bytes) -> dict:
    import json

    if model in JSON_MODELS:
        return json.loads(data)
    from hm_recs.models.common import from_bytes

    return from_bytes(data)


def loss_plot(history: list[dict], title: str) -> dg.MetadataValue:
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


def store_artefact(context, store: ArtefactStore, model: str, week: dt.date, state: dict) -> tuple[str, str]:
    data, digest = _encode(model, state)
    uri = store.location().write_bytes(artefact_key(model, week), data)
    context.log.info(f"{model}: artefact {uri} ({len(data) / 2**20:.1f} MiB, {digest[:19]}...)")
    return uri, digest


def load_artefact(store: ArtefactStore, model: str, week: dt.date) -> tuple[dict, str]:
    data = store.location().read_bytes(artefact_key(model, week))
    return _decode(model, data), content_digest(data)


def retrieval_gate(result, popularity, margin: float = 0.0) -> tuple[dict, dict, dict]:
    """A retrieval model (two-tower, sequence) is judged twice.
    gate (blocking: no artefact without it): training loss fell on fixed negatives, finite weights.
    admission (whether its candidates join the union this week): the last epoch's held-out AUC and recall@100
    above popularity's by more than `margin`. A sound model that does not beat popularity is stored but its source
    sits the week out, so a weak retrieval model costs one candidate source, not the week's recommendations.
    Plus the figures behind both."""
    from hm_recs.models.common import finite

    last = result.history[-1] if result.history else {}
    gate = {"loss_fell": result.loss_fell, "finite": bool(finite(result.model))}
    admission = {
        "auc_beats_popularity": last.get("auc", 0) > popularity.auc + margin,
        "recall_at_100_beats_popularity": last.get("recall_at_100", 0) > popularity.recall_at_k + margin,
    }
    scores = {
        "auc": last.get("auc"),
        "recall_at_100": last.get("recall_at_100"),
        "popularity_auc": popularity.auc,
        "popularity_recall_at_100": popularity.recall_at_k,
        "starting_loss": result.starting_loss,
        "final_loss": result.final_loss,
        "held_out_customers": popularity.customers,
    }
    return gate, admission, scores


def admission_key(model: str, week: dt.date) -> str:
    return f"models/{model}/week={week.isoformat()}/admission.json"


def record_admission(context, store: ArtefactStore, model: str, week: dt.date, admission: dict, scores: dict) -> bool:
    """Store whether the model's candidates join this week's union (read by its candidates asset)."""
    import json

    admitted = bool(all(admission.values()))
    store.location().write_bytes(
        admission_key(model, week),
        json.dumps(
            {"admitted": admitted, **admission, **{k: v for k, v in scores.items() if v is not None}}, sort_keys=True
        ).encode(),
    )
    if not admitted:
        context.log.warning(
            f"{model} for week {week} does not beat popularity ({admission}; {scores}): stored, "
            "but its candidates sit this week out"
        )
    return admitted


def ranker_decision_key(week: dt.date) -> str:
    """Who serves week W+1 as the ranker's gate decided it (`core.serving.ServingDecision`), by `ranker_model`."""
    return f"models/ranker/week={week.isoformat()}/decision.json"


def serving_key(week: dt.date) -> str:
    """What `recommendations` built at W actually published and why (read by the export's manifest)."""
    return f"serving/week={week.isoformat()}/decision.json"


def write_record(store: ArtefactStore, key: str, record: dict) -> None:
    import json

    store.location().write_bytes(key, json.dumps(record, sort_keys=True, allow_nan=True, default=str).encode())


def read_record(store: ArtefactStore, key: str) -> dict | None:
    """The JSON record at `key`, or None when there is none (local or S3)."""
    import json

    from hm_recs.storage.location import is_missing

    try:
        return json.loads(store.location().read_bytes(key))
    except Exception as exc:
        if is_missing(exc):
            return None
        raise


def admitted(store: ArtefactStore, model: str, week: dt.date) -> tuple[bool, dict]:
    import json

    record = json.loads(store.location().read_bytes(admission_key(model, week)))
    return bool(record["admitted"]), record


def artefact_check(
    store: ArtefactStore, model: str, week: dt.date, digest: str, gate: dict, check_name: str | None = None
) -> dg.AssetCheckResult:
    """Re-verify what was stored: it loads (torch: weights_only=True) and its hash is the one recorded."""
    try:
        _, stored_digest = load_artefact(store, model, week)
        loads = True
    except Exception as exc:  # a missing or unreadable artefact fails the check with its reason
        stored_digest, loads = f"unreadable: {exc}", False
    return dg.AssetCheckResult(
        passed=bool(loads and stored_digest == digest and all(gate.values())),
        check_name=check_name,
        metadata={"artefact_hash": stored_digest, **{f"gate/{k}": v for k, v in gate.items()}},
    )


@dg.asset(
    op_tags={**TRAINING_STEP_TAGS, **CONTENT_PRIORITY},
    partitions_def=weekly_partitions,
    group_name="models",
    kinds={"pytorch", "duckdb"},
    metadata=PARTITIONED,
    deps=["transactions", "articles", "customers", "article_images"],
    check_specs=[
        dg.AssetCheckSpec(
            "content_encoder_gate",
            asset="article_content",
            blocking=True,
            description=(
                "loss fell, finite weights, a vector for every catalogue article, artefact reloads with its hash"
            ),
        )
    ],
)
def article_content(
    context: dg.AssetExecutionContext, config: ModelConfig, warehouse: Warehouse, artefact_store: ArtefactStore
):
    """Fashion-DNA content vectors of every catalogue article (sold or not) from its attributes, description words and
    image vector (when the source has them), trained on purchases up to W."""
    import torch

    from hm_recs.models.common import IdIndex, encode_purchases, finite
    from hm_recs.models.content import ContentConfig, train_content_encoder

    use_step_threads()  # one torch thread per step unless told otherwise (deploy.torch_threads)
    week = partition_week(context)
    with measured(context, "article_content") as figures:
        customers, articles, transactions = catalogue_tables(warehouse, week, config.history_weeks)
        purchases = encode_purchases(
            transactions, IdIndex.of(customers["customer_id"]), IdIndex.of(articles["article_id"])
        )
        content_config = ContentConfig(
            epochs=config.content_epochs,
            seed=config.seed,
            max_pairs_per_epoch=config.content_max_pairs_per_epoch,
            max_customers=config.content_max_customers,
        )
        images = partition_rows(warehouse, "article_images", week, "article_id, image")
        images = images if images.height else None
        model = train_content_encoder(articles, purchases, content_config, log=context.log.info, images=images)
        vectors = model.vectors(articles, images)
    gate = {
        "loss_fell": model.history[-1]["loss"] < model.history[0]["loss"],
        "finite": bool(finite(model.encoder)),
        "every_article": vectors.shape[0] == articles.height and bool(torch.isfinite(vectors).all()),
    }
    if not all(gate.values()):
        raise dg.Failure(f"content encoder for week {week} failed its gate {gate}; no artefact written", metadata=gate)
    uri, digest = store_artefact(context, artefact_store, "content", week, model.state())
    table = articles.select("article_id").with_columns(
        pl.Series("vector", vectors.numpy().tolist(), dtype=pl.List(pl.Float32)), pl.lit(week).alias("week")
    )
    yield dg.Output(
        table,
        metadata={
            "rows": table.height,
            "dim": vectors.shape[1],
            "artefact": uri,
            "artefact_hash": digest,
            "description_words": len(model.text.words) if model.text else 0,
            "image_vector_length": model.image_input,
            "articles_with_images": 0 if images is None else images.height,
            "history": dg.MetadataValue.json(model.history),
            "loss_curve": loss_plot(model.history, "content encoder"),
            **figures,
        },
    )
    yield artefact_check(artefact_store, "content", week, digest, gate)


def articles_on_sale(transactions: pl.DataFrame, week: dt.date, weeks: int, index) -> pl.Series:
    """Sorted article_idx (of `index`) of the articles sold in the `weeks` weeks up to W: what retrieval ranks."""
    on_sale = (
        transactions.filter(pl.col("t_dat") >= pl.lit(shift_weeks(week, -(weeks - 1)))).select("article_id").unique()
    )
    return index.encode(on_sale, "article_id", "article_idx")["article_idx"].sort()


def content_matrix(warehouse: Warehouse, week: dt.date, articles: pl.DataFrame):
    """The stored content vectors of week W in the order of `articles` (sorted by article_id)."""
    import numpy as np
    import torch

    stored = partition_rows(warehouse, "article_content", week, "article_id, vector")
    aligned = articles.select("article_id").join(stored, on="article_id", how="left", maintain_order="left")
    return torch.as_tensor(np.asarray(aligned["vector"].to_list(), dtype=np.float32))


def training_data_key(week: dt.date) -> str:
    return f"training_data/two_tower/week={week.isoformat()}/data.pt"


def prune_training_data(store: ArtefactStore, week: dt.date, keep_weeks: int) -> list[str]:
    """Local artefact folders: remove the two-tower training data of weeks more than `keep_weeks` before `week`
    (relative to the week built, so a backfill of older weeks never removes newer ones). On S3 the bucket's
    lifecycle rule expires `training_data/` (infra/terraform/s3.tf). Returns the week folders removed."""
    import shutil
    from pathlib import Path

    from hm_recs.storage.location import is_s3

    if is_s3(store.uri):
        return []
    root, oldest = Path(store.uri) / "training_data" / "two_tower", shift_weeks(week, -keep_weeks)
    removed = []
    for folder in sorted(root.glob("week=*")) if root.is_dir() else []:
        try:
            stale = dt.date.fromisoformat(folder.name.removeprefix("week=")) < oldest
        except ValueError:
            continue  # not ours
        if stale:
            shutil.rmtree(folder)
            removed.append(folder.name)
    return removed


def data_windows(config: ModelConfig) -> dict:
    """The ModelConfig fields that shape the week's `TwoTowerData`: builder and loaders must agree on them."""
    return {"history_weeks": config.history_weeks, "label_weeks": config.label_weeks}


@dg.asset(
    op_tags=TWO_TOWER_PRIORITY,
    partitions_def=weekly_partitions,
    group_name="models",
    kinds={"polars", "pytorch"},
    deps=["transactions", "customers", "articles", "article_content"],
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
    context: dg.AssetExecutionContext, config: ModelConfig, warehouse: Warehouse, artefact_store: ArtefactStore
):
    """The week's two-tower inputs (`models.training_data.TwoTowerData`): customer and article feature snapshots
    of the label weeks with their purchases, week W's held-out purchases and the serving features as of W.
    Built once per week and stored in the artefact store (`training_data/two_tower/`); the global, per-segment
    and retrieval steps load it instead of each rebuilding it (seven builds, about 55 s each at H&M's size)."""
    import torch

    from hm_recs.models.common import to_bytes
    from hm_recs.models.training_data import TwoTowerData

    week = partition_week(context)
    with measured(context, "two_tower_data") as figures:
        customers, articles, transactions = catalogue_tables(warehouse, week, config.history_weeks)
        data = TwoTowerData.build(
            transactions,
            customers,
            articles,
            week,
            content_matrix(warehouse, week, articles),
            label_weeks=config.label_weeks,
        )
        blob, digest = to_bytes({"windows": data_windows(config), "data": data.state()})
        uri = artefact_store.location().write_bytes(training_data_key(week), blob)
        if removed := prune_training_data(artefact_store, week, config.training_data_keep_weeks):
            context.log.info(f"two_tower_data: removed the training data of {', '.join(removed)} (local retention)")
    tensors = {
        f"{side}.{name}": getattr(getattr(data, side), name)
        for side in ("train_inputs", "serving_inputs")
        for name in data.train_inputs.TENSORS
    }
    not_finite = sorted(
        name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())
    )
    context.log.info(
        f"two_tower_data: {data.labels.height:,} training purchases, {data.held_out.height:,} held-out pairs, "
        f"{len(data.customers):,} customers x {len(data.articles):,} articles, {len(blob) / 2**20:.0f} MiB at {uri}"
    )
    yield dg.MaterializeResult(
        metadata={
            "artefact": uri,
            "artefact_hash": digest,
            "size_mib": round(len(blob) / 2**20, 1),
            "training_purchases": data.labels.height,
            "held_out_pairs": data.held_out.height,
            "customers": len(data.customers),
            "articles": len(data.articles),
            "snapshots": data.train_inputs.n_snapshots,
            "windows": dg.MetadataValue.json(data_windows(config)),
            **figures,
        }
    )
    stored = content_digest(artefact_store.location().read_bytes(training_data_key(week)))
    checks = {
        "training_purchases": data.labels.height > 0,
        "finite": not not_finite,
        "reloads_with_hash": stored == digest,
    }
    yield dg.AssetCheckResult(
        passed=all(checks.values()),
        metadata={**checks, "artefact_hash": stored, "not_finite": ", ".join(not_finite) or "none"},
    )


def load_two_tower_data(store: ArtefactStore, week: dt.date, config: ModelConfig):
    """Week W's `TwoTowerData` as `two_tower_data` stored it; a clear failure when it is missing or was built
    with other windows than `config` names (the steps of one week must train and serve on the same data)."""
    from hm_recs.models.common import from_bytes
    from hm_recs.models.training_data import TwoTowerData

    try:
        state = from_bytes(store.location().read_bytes(training_data_key(week)))
    except Exception as exc:  # missing (local or S3, or expired) or unreadable: the same answer for the operator
        raise dg.Failure(
            f"no two-tower training data for week {week} ({type(exc).__name__}: {exc}): "
            "materialize `two_tower_data` for this week first"
        ) from exc
    if state["windows"] != data_windows(config):
        raise dg.Failure(
            f"week {week}'s two_tower_data was built with {state['windows']}, this step is configured with "
            f"{data_windows(config)}: give `two_tower_data` the same ModelConfig windows and rebuild it"
        )
    return TwoTowerData.from_state(state["data"])


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
                "loss fell; held-out AUC and recall@100 beat popularity; finite; artefact reloads with its hash"
            ),
        )
    ],
)
def two_tower_global(context: dg.AssetExecutionContext, config: ModelConfig, artefact_store: ArtefactStore):
    """The global two-tower model, trained on weeks W-L..W-1 and validated on week W's purchases."""
    from hm_recs.models.common import held_out_sample, popularity_retrieval
    from hm_recs.models.two_tower import TwoTowerConfig, train_two_tower

    use_step_threads()  # one torch thread per step unless told otherwise (deploy.torch_threads)
    week = partition_week(context)
    with measured(context, "two_tower_global") as figures:
        data = load_two_tower_data(artefact_store, week, config)
        two_tower_config = TwoTowerConfig(
            epochs=config.epochs,
            seed=config.seed,
            evaluate_every=config.evaluate_every,
            max_pairs_per_epoch=config.two_tower_max_pairs_per_epoch,
        )
        held_out = held_out_sample(data.held_out, config.max_held_out_customers, config.seed)
        result = train_two_tower(
            data.train_inputs,
            data.labels,
            two_tower_config,
            held_out=held_out,
            log=context.log.info,
            name="two-tower global",
        )
        popularity = popularity_retrieval(
            data.labels.filter(pl.col("snapshot") >= config.label_weeks - 2), held_out, len(data.articles)
        )
    gate, admission, scores = retrieval_gate(result, popularity, config.admission_margin)
    scores["training_pairs"] = data.labels.height
    if not all(gate.values()):
        raise dg.Failure(
            f"two-tower global for week {week} failed its gate {gate} ({scores}); no artefact written",
            metadata={**gate, **scores},
        )
    uri, digest = store_artefact(context, artefact_store, "two_tower_global", week, result.state())
    is_admitted = record_admission(context, artefact_store, "two_tower_global", week, admission, scores)
    yield dg.MaterializeResult(
        metadata={
            "artefact": uri,
            "artefact_hash": digest,
            "admitted": is_admitted,
            **admission,
            **scores,
            "config": dg.MetadataValue.json(result.state()["config"]),
            "history": dg.MetadataValue.json(result.history),
            "loss_curve": loss_plot(result.history, "two-tower (global)"),
            **figures,
        }
    )
    yield artefact_check(artefact_store, "two_tower_global", week, digest, gate)


MODELLED_SEGMENTS = (*BEHAVIOUR_SEGMENTS, DEFAULT)
"""Segments with a model of their own (cold-start customers have no history to fine-tune on)."""


def decision_key(segment: str, week: dt.date) -> str:
    return f"models/two_tower_{segment}/week={week.isoformat()}/decision.json"


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
        check_specs=[
            dg.AssetCheckSpec(
                "segment_model_gate",
                asset=name,
                blocking=True,
                description="decision stored; where the segment's own model serves, its artefact reloads with its hash",
            ),
            dg.AssetCheckSpec(
                "segment_model_trained",
                asset=name,
                blocking=False,
                description=(
                    "the fine-tune is finite with falling loss (or the segment "
                    "has no members to learn from); else the global model "
                    "serves the segment"
                ),
            ),
        ],
    )
    def _segment_model(
        context: dg.AssetExecutionContext, config: ModelConfig, warehouse: Warehouse, artefact_store: ArtefactStore
    ):
        import json

        from hm_recs.models.common import finite, held_out_sample, serving_choice
        from hm_recs.models.two_tower import TwoTowerConfig, evaluate, load, train_two_tower

        use_step_threads()  # one torch thread per step unless told otherwise (deploy.torch_threads)
        week = partition_week(context)
        with measured(context, name) as figures:
            members = partition_rows(warehouse, "customer_segments", week, "customer_id, segment").filter(
                pl.col("segment") == segment
            )
            data = load_two_tower_data(artefact_store, week, config)
            member_idx = data.customers.encode(members, "customer_id", "customer_idx")["customer_idx"].implode()
            labels = data.labels.filter(pl.col("customer_idx").is_in(member_idx))
            held_out = held_out_sample(
                data.held_out.filter(pl.col("customer_idx").is_in(member_idx)),
                config.max_held_out_customers,
                config.seed,
            )
            global_model = load(load_artefact(artefact_store, "two_tower_global", week)[0], data.train_inputs)
            decision = {
                "segment": segment,
                "week": str(week),
                "customers": members.height,
                "training_pairs": labels.height,
                "held_out_customers": held_out["customer_idx"].n_unique(),
                "serves": "global",
            }
            result = None
            if labels.height and held_out.height:
                global_figures = evaluate(global_model, held_out)
                fine_tuning = TwoTowerConfig(
                    epochs=config.segment_epochs,
                    seed=config.seed,
                    lr=1e-3,
                    batch_size=256,
                    evaluate_every=config.evaluate_every,
                    max_pairs_per_epoch=config.two_tower_max_pairs_per_epoch,
                )
                # held-out figures once, after training (not inside it too): they decide which model serves
                result = train_two_tower(
                    data.train_inputs, labels, fine_tuning, init_from=global_model, log=context.log.info, name=name
                )
                own = evaluate(result.model, held_out)
                decision.update(
                    {
                        "global_auc": global_figures.auc,
                        "global_recall_at_100": global_figures.recall_at_k,
                        "segment_auc": own.auc,
                        "segment_recall_at_100": own.recall_at_k,
                        "serves": serving_choice(global_figures, own),
                    }
                )
            else:
                decision["reason"] = "no members with purchases in the training window and the held-out week"
        gate = {"finite": result is None or bool(finite(result.model)), "loss_fell": result is None or result.loss_fell}
        if not all(gate.values()):  # nothing is built on it: not stored, the global model serves the segment
            decision.update({"serves": "global", "reason": f"the segment's fine-tune failed its gate {gate}"})
            context.log.warning(
                f"{name} for week {week} failed its gate {gate}: not stored, the global model serves the segment"
            )
            result = None
        context.log.info(f"{name}: serves {decision['serves']} ({decision})")
        digest, uri = None, None
        if result is not None:
            uri, digest = store_artefact(context, artefact_store, name, week, result.state())
        artefact_store.location().write_bytes(decision_key(segment, week), json.dumps(decision).encode())
        metadata = {**{k: v for k, v in decision.items() if v is not None}, "artefact": uri or "", **figures}
        if result is not None:
            metadata["loss_curve"] = loss_plot(result.history, name)
        yield dg.MaterializeResult(metadata=metadata)
        yield (
            artefact_check(artefact_store, name, week, digest, gate, check_name="segment_model_gate")
            if digest
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

    return _segment_model


segment_models = [segment_model_asset(s) for s in MODELLED_SEGMENTS]


@dg.asset(
    op_tags=TWO_TOWER_PRIORITY,
    partitions_def=weekly_partitions,
    group_name="models",
    kinds={"pytorch", "duckdb"},
    metadata=PARTITIONED,
    deps=[
        "two_tower_global",
        "two_tower_data",
        "transactions",
        "customer_segments",
        *[f"two_tower_{s}" for s in MODELLED_SEGMENTS],
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "candidates_per_customer",
            asset="two_tower_candidates",
            blocking=True,
            description="every customer with history has K ranked candidates among articles on sale",
        )
    ],
)
def two_tower_candidates(
    context: dg.AssetExecutionContext, config: ModelConfig, warehouse: Warehouse, artefact_store: ArtefactStore
):
    """Top-K retrieval candidates per customer from the two-tower model serving the customer's segment (its own
    where it validated better, else the global one), among articles sold in the last `on_sale_weeks` weeks.

    Two sets, told apart by `target_week`: W+1 (serving: every customer with history, features as of W) and W
    (labelled: week W's buyers with history before W, features as of W-1, articles on sale as of W-1: what the
    ranker learns from; the model never saw week W's purchases)."""
    import json

    from hm_recs.models.two_tower import load, top_k

    use_step_threads()  # one torch thread per step unless told otherwise (deploy.torch_threads)
    week = partition_week(context)
    if disabled := source_sits_out(context, artefact_store, "two_tower_global", week, "two_tower_candidates"):
        yield from disabled
        return
    with measured(context, "two_tower_candidates") as figures:
        transactions = history(warehouse, week, config.history_weeks)
        data = load_two_tower_data(artefact_store, week, config)
        segments = partition_rows(warehouse, "customer_segments", week, "customer_id, segment")
        serving = {}
        for segment in MODELLED_SEGMENTS:
            decision = json.loads(artefact_store.location().read_bytes(decision_key(segment, week)))
            serving[segment] = f"two_tower_{segment}" if decision["serves"] == "segment" else "two_tower_global"
        buyers, before = labelled_customers(transactions, week)
        sets = {  # target week -> (customers, tower inputs, articles on sale)
            shift_weeks(week, 1): (
                transactions.select("customer_id").unique(),
                data.serving_inputs,
                articles_on_sale(transactions, week, config.on_sale_weeks, data.articles),
            ),
            week: (
                buyers,
                data.train_inputs,
                articles_on_sale(before, shift_weeks(week, -1), config.on_sale_weeks, data.articles),
            ),
        }
        table, counts, models = StagedTable("two_tower_candidates"), {}, {}
        for target, (wanted, inputs, on_sale) in sets.items():
            wanted = (
                data.customers.encode(wanted, "customer_id", "customer_idx")
                .join(segments, on="customer_id", how="left")
                .with_columns(
                    pl.col("segment")
                    .fill_null(DEFAULT)
                    .replace_strict(serving, default="two_tower_global")
                    .alias("model")
                )
            )
            for (model_name,), group in sorted(wanted.group_by("model"), key=lambda g: g[0]):
                if model_name not in models:
                    models[model_name] = load_artefact(artefact_store, model_name, week)[0]
                model = load(models[model_name], inputs)
                counts.setdefault(target, []).extend(
                    stage_retrieval(
                        table,
                        lambda idx: top_k(model, idx, on_sale.to_numpy(), k=config.candidates_per_customer),
                        group["customer_idx"].sort().to_numpy(),
                        data.customers,
                        data.articles,
                        {"model": model_name, "target_week": target, "week": week},
                        config.retrieval_chunk_customers,
                    )
                )
    yield dg.Output(
        table,
        metadata={
            "rows": table.rows,
            "serving": dg.MetadataValue.json(serving),
            "preview": preview(table.scan().head(5).collect()),
            **candidate_set_figures(week, sets),
            **figures,
        },
    )
    yield candidate_set_check(counts, sets, config.candidates_per_customer)


RETRIEVAL_COLUMNS = {
    "customer_id": pl.String,
    "article_id": pl.String,
    "score": pl.Float64,
    "rank": pl.Int16,
    "target_week": pl.Date,
    "week": pl.Date,
}


def source_sits_out(context, store: ArtefactStore, model: str, week: dt.date, asset: str) -> list:
    """When `model` was not admitted this week: the events of an empty candidate set (the union goes on without
    this source) with the reason; else an empty list."""
    is_admitted, record = admitted(store, model, week)
    if is_admitted:
        return []
    columns = {**RETRIEVAL_COLUMNS, **({"model": pl.String} if asset == "two_tower_candidates" else {})}
    empty = pl.DataFrame(schema=columns).select(
        "customer_id", "article_id", "score", "rank", *(["model"] if "model" in columns else []), "target_week", "week"
    )
    reason = f"{model} for week {week} did not beat popularity: this source sits the week out"
    context.log.warning(reason)
    return [
        dg.Output(empty, metadata={"rows": 0, "source_disabled": reason, "admission": dg.MetadataValue.json(record)}),
        dg.AssetCheckResult(passed=True, metadata={"source_disabled": reason}),
    ]


def labelled_customers(transactions: pl.DataFrame, week: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Week W's buyers with purchases before W (customer_id): whom the labelled candidate sets score as of
    W-1; and the transactions before W they are scored from."""
    before = transactions.filter(pl.col("t_dat") < pl.lit(week))
    buyers = (
        transactions.filter(pl.col("t_dat") >= pl.lit(week))
        .select("customer_id")
        .unique()
        .join(before.select("customer_id").unique(), on="customer_id", how="semi")
    )
    return buyers, before


def candidate_set_figures(week: dt.date, sets: dict) -> dict:
    figures = {}
    for target, (wanted, _, on_sale) in sets.items():
        kind = "serving" if target > week else "labelled"
        figures[f"{kind}_customers"] = wanted.height
        figures[f"{kind}_articles_on_sale"] = on_sale.len()
    return figures


def stage_retrieval(
    table: StagedTable,
    rank: Callable[[np.ndarray], pl.DataFrame],
    customer_idx: np.ndarray,
    customer_index,
    article_index,
    columns: dict,
    chunk: int,
) -> list[pl.Series]:
    """Ranks the (sorted) `customer_idx` `chunk` customers at a time with `rank` (customer_idx, article_idx, score,
    rank), decodes the ids, adds the constant `columns` and appends each chunk to `table` (memory: one chunk of
    ranked rows, whatever the number of customers). Returns each chunk's candidates per customer."""
    counts = []
    for start in range(0, len(customer_idx), chunk):
        ranked = rank(customer_idx[start : start + chunk])
        rows = ranked.select(
            customer_index.decode(ranked["customer_idx"]).alias("customer_id"),
            article_index.decode(ranked["article_idx"]).alias("article_id"),
            "score",
            "rank",
            *[pl.lit(value).alias(name) for name, value in columns.items()],
        )
        table.append(rows.sort("customer_id", "rank"))
        counts.append(rows.group_by("customer_id").len()["len"])
    if not counts:  # no customers: an empty part keeps the table's schema
        table.append(
            pl.DataFrame(
                schema={n: RETRIEVAL_COLUMNS[n] for n in ("customer_id", "article_id", "score", "rank")}
            ).with_columns(*[pl.lit(value).alias(name) for name, value in columns.items()])
        )
    return counts


def candidate_set_check(counts: dict[dt.date, list[pl.Series]], sets: dict, k: int) -> dg.AssetCheckResult:
    """Every wanted customer of each target week has min(K, articles on sale) ranked candidates (`counts`: the
    candidates per customer of each target week, chunk by chunk)."""
    passed, metadata = True, {}
    for target, (wanted, _, on_sale) in sets.items():
        expected = min(k, on_sale.len())
        per_customer = pl.concat(counts.get(target) or [pl.Series("len", [], dtype=pl.UInt32)])
        ok = per_customer.len() == wanted.height and bool((per_customer == expected).all())
        passed &= ok
        metadata[f"target {target}"] = (
            f"{int((per_customer == expected).sum())} of {wanted.height} customers with {expected}"
        )
    return dg.AssetCheckResult(passed=bool(passed), metadata=metadata)


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
    deps=["transactions", "article_content"],
    check_specs=[
        dg.AssetCheckSpec(
            "sequence_model_gate",
            asset="sequence_model",
            blocking=True,
            description=(
                "loss fell; held-out AUC and recall@100 beat popularity on the same "
                "customers; finite; artefact reloads with its hash"
            ),
        )
    ],
)
def sequence_model(
    context: dg.AssetExecutionContext, config: ModelConfig, warehouse: Warehouse, artefact_store: ArtefactStore
):
    """The global sequence model (Heinz et al. 2017): every customer's purchase sequence up to W-1's Tuesday as
    content vectors with time stamps through an LSTM (or a transformer), validated on week W's purchases of the
    customers with history. Serving reads the sequences up to W (nothing to retrain: the sequence is the input)."""
    from hm_recs.models.common import held_out_sample, popularity_retrieval
    from hm_recs.models.sequence import SequenceConfig, state, train_sequence_model

    use_step_threads()  # one torch thread per step unless told otherwise (deploy.torch_threads)
    week = partition_week(context)
    cutoff = week - dt.timedelta(days=1)  # W-1's Tuesday
    with measured(context, "sequence_model") as figures:
        _, article_index, _, purchases, content = purchase_sequences(warehouse, week, config.history_weeks)
        training = purchases.filter(pl.col("t_dat") <= pl.lit(cutoff))
        with_history = training.select("customer_idx").unique()
        held_out = (
            purchases.filter(pl.col("t_dat") > pl.lit(cutoff))
            .select("customer_idx", "article_idx")
            .unique()
            .join(with_history, on="customer_idx", how="semi")
        )
        held_out = held_out_sample(held_out, config.max_held_out_customers, config.seed)
        sequence_config = SequenceConfig(
            encoder=config.sequence_encoder,
            epochs=config.sequence_epochs,
            batch_size=config.sequence_batch_size,
            seed=config.seed,
            evaluate_every=config.evaluate_every,
            max_sequences_per_epoch=config.sequence_max_sequences_per_epoch,
        )
        result = train_sequence_model(
            training, content, cutoff, sequence_config, held_out=held_out, log=context.log.info
        )
        # the same bar as the two-tower gate: last two weeks' sales counts, on the same held-out customers
        popularity = popularity_retrieval(
            training.filter(pl.col("t_dat") > pl.lit(cutoff - dt.timedelta(days=14))), held_out, len(article_index)
        )
    gate, admission, scores = retrieval_gate(result, popularity, config.admission_margin)
    scores.update({"customers_with_history": with_history.height, "training_purchases": training.height})
    if not all(gate.values()):
        raise dg.Failure(
            f"sequence model for week {week} failed its gate {gate} ({scores}); no artefact written",
            metadata={**gate, **{k: v for k, v in scores.items() if v is not None}},
        )
    uri, digest = store_artefact(context, artefact_store, "sequence", week, state(result))
    is_admitted = record_admission(context, artefact_store, "sequence", week, admission, scores)
    yield dg.MaterializeResult(
        metadata={
            "artefact": uri,
            "artefact_hash": digest,
            "admitted": is_admitted,
            **admission,
            **scores,
            "config": dg.MetadataValue.json(state(result)["config"]),
            "history": dg.MetadataValue.json(result.history),
            "loss_curve": loss_plot(result.history, f"sequence model ({config.sequence_encoder})"),
            **figures,
        }
    )
    yield artefact_check(artefact_store, "sequence", week, digest, gate)


@dg.asset(
    op_tags=SEQUENCE_PRIORITY,
    partitions_def=weekly_partitions,
    group_name="models",
    kinds={"pytorch", "duckdb"},
    metadata=PARTITIONED,
    deps=["sequence_model", "article_content", "transactions"],
    check_specs=[
        dg.AssetCheckSpec(
            "candidates_per_customer",
            asset="sequence_candidates",
            blocking=True,
            description="every customer with history has K ranked candidates among articles on sale",
        )
    ],
)
def sequence_candidates(
    context: dg.AssetExecutionContext, config: ModelConfig, warehouse: Warehouse, artefact_store: ArtefactStore
):
    """Top-K retrieval candidates per customer with history from the sequence model, among articles sold in the
    last `on_sale_weeks` weeks, scored in chunks of customers (memory: chunk x articles on sale).

    Two sets, told apart by `target_week`: W+1 (serving: every customer with history, sequences up to W's
    Tuesday, style vectors as of W+1's first day) and W (labelled: week W's buyers with history before W,
    sequences up to W-1's Tuesday as in the model's own validation, articles on sale as of W-1)."""
    from hm_recs.core.weeks import week_end
    from hm_recs.models.common import set_seed
    from hm_recs.models.sequence import build_sequences, load, top_k

    use_step_threads()  # one torch thread per step unless told otherwise (deploy.torch_threads)
    week = partition_week(context)
    if disabled := source_sits_out(context, artefact_store, "sequence", week, "sequence_candidates"):
        yield from disabled
        return
    with measured(context, "sequence_candidates") as figures:
        customer_index, article_index, transactions, purchases, content = purchase_sequences(
            warehouse, week, config.history_weeks
        )
        model = load(load_artefact(artefact_store, "sequence", week)[0], content)
        buyers, before = labelled_customers(transactions, week)
        sets = {  # target week -> (customers, last day read, articles on sale)
            shift_weeks(week, 1): (
                transactions.select("customer_id").unique(),
                week_end(week),
                articles_on_sale(transactions, week, config.on_sale_weeks, article_index),
            ),
            week: (
                buyers,
                week - dt.timedelta(days=1),
                articles_on_sale(before, shift_weeks(week, -1), config.on_sale_weeks, article_index),
            ),
        }
        table, counts = StagedTable("sequence_candidates"), {}
        for target, (wanted, last_day, on_sale) in sets.items():
            data = build_sequences(purchases, len(article_index), last_day, model.config.max_len, set_seed(config.seed))
            wanted_idx = customer_index.encode(wanted, "customer_id", "customer_idx")["customer_idx"].sort().to_numpy()
            counts[target] = stage_retrieval(
                table,
                lambda idx: top_k(
                    model,
                    data,
                    idx,
                    on_sale.to_numpy(),
                    last_day + dt.timedelta(days=1),
                    k=config.candidates_per_customer,
                ),
                wanted_idx,
                customer_index,
                article_index,
                {"target_week": target, "week": week},
                config.retrieval_chunk_customers,
            )
    yield dg.Output(
        table,
        metadata={
            "rows": table.rows,
            "preview": preview(table.scan().head(5).collect()),
            **candidate_set_figures(week, sets),
            **figures,
        },
    )
    yield candidate_set_check(counts, sets, config.candidates_per_customer)
