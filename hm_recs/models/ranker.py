"""LightGBM ranker: the second stage that orders each customer's candidates (docs/models.md, "Candidate union and
ranker").

Contract. Input frames hold one row per candidate: `customer_id`, `article_id`, the feature columns named by
the caller (numbers; categorical features already integer codes, named again in `categorical`) and, for
labelled weeks, `label` (1 = the customer bought the article that week) and `week`. Several training weeks are
stacked; a query group is one customer in one week. `train_ranker` learns on the training weeks for a fixed
number of rounds and validates on the latest labelled week: the Kaggle MAP@12 (`core.metrics.map_at_k`) of the
ranker's top 12 against that week's real purchases, so buyers whose articles were never candidates count as
misses, as on Kaggle. Nothing is chosen on the validation week by default (rounds and objective are
configuration, settled on backtests), so its figure is an honest estimate for the gate that reads it; early
stopping on that week remains an option (`early_stopping_rounds`) for experiments, at the price of flattering
the figure (by about +0.002 MAP@12 at 50k customers, docs/models.md). The result serialises with `model_to_string`
(plain text and JSON-able values, never pickle). `score` predicts in row chunks, `top_k` picks each customer's
top 12, and `fit_tiers` / `assign_tiers` turn scores into high / medium / low relevance tiers whose purchase
probability and observed hit rate on the validation week are recorded for CRM use.

No Dagster here: the assets call these functions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import lightgbm as lgb
import numpy as np
import polars as pl

from hm_recs.core.metrics import K, average_precision, recall_at_k
from hm_recs.core.tiers import TierBands, assign_tiers, fit_tiers
from hm_recs.models.configs import RankerConfig

SCORE_CHUNK_ROWS = 500_000
"""Rows predicted at once: memory is about chunk_rows x features x 4 bytes (float32) plus LightGBM's output."""


# ----------------------------------------------------------------------------------------------- scoring


def _matrix(frame: pl.DataFrame, features: Sequence[str]) -> np.ndarray:
    """Feature matrix as float32 (nulls become NaN, LightGBM's missing value)."""
    return frame.select(pl.col(list(features)).cast(pl.Float32)).to_numpy()


def score(
    booster: lgb.Booster,
    frame: pl.DataFrame,
    features: Sequence[str],
    chunk_rows: int = SCORE_CHUNK_ROWS,
    num_threads: int | None = None,
) -> pl.DataFrame:
    """`frame` with a Float64 `score` column (higher = more likely bought). Predicts `chunk_rows` rows at a time,
    so memory beyond the frame itself is bounded by one chunk's matrix."""
    params = {} if num_threads is None else {"num_threads": num_threads}
    chunk_rows = max(chunk_rows, 1)
    parts = [
        booster.predict(_matrix(frame.slice(start, chunk_rows), features), **params)
        for start in range(0, frame.height, chunk_rows)
    ]
    values = np.concatenate(parts) if parts else np.empty(0)
    return frame.with_columns(pl.Series("score", values, dtype=pl.Float64))


def top_k(scored: pl.DataFrame, k: int = K) -> pl.DataFrame:
    """Each customer's k best distinct articles by `score` (ties: smaller article_id first), with `rank` 1..k.
    A customer with fewer than k candidates gets fewer rows; the output stage fills them."""
    return (
        scored.sort(["customer_id", "score", "article_id"], descending=[False, True, False])
        .unique(subset=["customer_id", "article_id"], keep="first", maintain_order=True)
        .group_by("customer_id", maintain_order=True)
        .head(k)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("customer_id").alias("rank"))
    )


# Customers whose feature matrix is built and scored at once: the matrix (candidates x features per customer,
# plus the joins' intermediate columns) is the largest frame of scoring; larger chunks cost memory, not speed
# (docs/benchmarks.md).
SCORING_CHUNK_CUSTOMERS = 25_000


def rank_in_chunks(
    result: RankerResult,
    candidates: pl.DataFrame,
    features: Callable[[pl.DataFrame], pl.DataFrame],
    k: int = K,
    chunk_customers: int = SCORING_CHUNK_CUSTOMERS,
    keep: Sequence[str] = (),
    num_threads: int | None = None,
) -> pl.DataFrame:
    """Each customer's top `k` candidates by the ranker: customer_id, article_id, score, rank, relevance_tier and
    the candidate columns named in `keep`. `features(chunk)` builds the feature matrix (customer_id, article_id,
    the ranker's features, in the chunk's row order) of one chunk of `chunk_customers` customers' candidate rows,
    so memory is bounded by one chunk's matrix whatever the number of customers. `num_threads`: LightGBM's predict
    (default: the training's)."""
    customer_ids = candidates["customer_id"].unique().sort()
    parts = []
    for start in range(0, customer_ids.len(), max(chunk_customers, 1)):
        chunk = candidates.filter(pl.col("customer_id").is_in(customer_ids.slice(start, chunk_customers).implode()))
        scored = result.score(
            features(chunk).select("customer_id", "article_id", *result.features), num_threads=num_threads
        )
        best = top_k(scored.select("customer_id", "article_id", "score"), k)
        parts.append(
            best.join(
                chunk.select("customer_id", "article_id", *keep).unique(["customer_id", "article_id"]),
                on=["customer_id", "article_id"],
                how="left",
                maintain_order="left",
            )
        )
    ranked = (
        pl.concat(parts)
        if parts
        else pl.DataFrame(
            schema={
                "customer_id": pl.String,
                "article_id": pl.String,
                "score": pl.Float64,
                "rank": pl.Int32,
                **{c: candidates.schema[c] for c in keep},
            }
        )
    )
    tiers = (
        assign_tiers(ranked["score"], result.tiers)
        if result.tiers is not None
        else pl.Series("tier", [None] * ranked.height, pl.String)
    )
    return ranked.with_columns(tiers.alias("relevance_tier"))


def split_customers(customer_ids: pl.Series, share: float, seed: int = 0) -> tuple[pl.Series, pl.Series]:
    """Distinct customers split in two, about `share` of them in the second part, by a seeded hash of the id:
    the same customer always lands on the same side for the same seed, whatever else is in the frame."""
    ids = customer_ids.unique().sort()
    draw = ids.hash(seed=seed) % 10_000
    held = draw < int(round(share * 10_000))
    return ids.filter(~held), ids.filter(held)


# ----------------------------------------------------------------------------------------------- training


def _group_keys(frame: pl.DataFrame) -> list[str]:
    return ["week", "customer_id"] if "week" in frame.columns else ["customer_id"]


def downsample(frame: pl.DataFrame, config: RankerConfig) -> pl.DataFrame:
    """Training rows sorted by (week, customer_id, article_id), so query groups are contiguous: every positive,
    at most `negatives_per_positive` x positives random negatives per group (seeded), and no group without a
    positive for lambdarank."""
    keys = _group_keys(frame)
    frame = frame.sort([*keys, "article_id"])
    positives = pl.col("label").sum().over(keys)
    if config.negatives_per_positive is None:
        return frame.filter(positives > 0) if config.objective == "lambdarank" else frame
    draw = np.random.default_rng(config.seed).random(frame.height)
    quota = (positives.cast(pl.Float64) * config.negatives_per_positive).ceil()
    negative_rank = pl.col("__draw").rank("ordinal").over([*keys, "label"])
    return (
        frame.with_columns(pl.Series("__draw", draw))
        .filter((pl.col("label") > 0) | (negative_rank <= quota))
        .drop("__draw")
    )


def _dataset(
    frame: pl.DataFrame, features: Sequence[str], categorical: Sequence[str], reference: lgb.Dataset | None = None
) -> lgb.Dataset:
    """LightGBM dataset of rows already sorted by their query group."""
    groups = frame.group_by(_group_keys(frame), maintain_order=True).len()["len"].to_numpy()
    return lgb.Dataset(
        _matrix(frame, features),
        label=frame["label"].cast(pl.Float64).to_numpy(),
        group=groups,
        feature_name=list(features),
        categorical_feature=list(categorical),
        reference=reference,
        free_raw_data=True,
    )


@dataclass
class RankerResult:
    """A trained ranker and what it was judged by. `validation`: map_at_12 and recall_at_12 (Kaggle, against the
    validation week's purchases), best_iteration, the LightGBM early-stopping metric, rows and seconds."""

    booster: lgb.Booster  # holds exactly the trees up to the best iteration
    config: RankerConfig
    features: list[str]
    categorical: list[str]
    validation: dict
    importances: pl.DataFrame  # feature, gain, split, gain_share; by gain, descending
    history: list[dict] = field(default_factory=list)  # per iteration: iteration, validation metric
    tiers: TierBands | None = None
    validation_ap: pl.DataFrame | None = None  # AP@12 per validation customer (customer_id, ap); not stored

    def score(
        self, frame: pl.DataFrame, chunk_rows: int = SCORE_CHUNK_ROWS, num_threads: int | None = None
    ) -> pl.DataFrame:
        """`frame` scored (`score`) with `num_threads` (default: the training's `RankerConfig.num_threads`)."""
        return score(self.booster, frame, self.features, chunk_rows, num_threads or self.config.num_threads)

    def state(self) -> dict:
        """JSON-able state: the booster as LightGBM's text model, never a pickle."""
        return {
            "model": self.booster.model_to_string(),
            "config": asdict(self.config),
            "features": list(self.features),
            "categorical": list(self.categorical),
            "validation": dict(self.validation),
            "importances": self.importances.to_dicts(),
            "history": list(self.history),
            "tiers": None if self.tiers is None else self.tiers.state(),
        }

    @classmethod
    def load(cls, state: dict) -> RankerResult:
        return cls(
            booster=lgb.Booster(model_str=state["model"]),
            config=RankerConfig(**state["config"]),
            features=list(state["features"]),
            categorical=list(state["categorical"]),
            validation=dict(state["validation"]),
            importances=pl.DataFrame(state["importances"], schema=_IMPORTANCE_SCHEMA),
            history=list(state["history"]),
            tiers=None if state["tiers"] is None else TierBands.load(state["tiers"]),
        )


_IMPORTANCE_SCHEMA = {"feature": pl.String, "gain": pl.Float64, "split": pl.Int64, "gain_share": pl.Float64}


def _importances(booster: lgb.Booster) -> pl.DataFrame:
    gain = booster.feature_importance("gain")
    total = float(gain.sum()) or 1.0
    return pl.DataFrame(
        {
            "feature": booster.feature_name(),
            "gain": gain.astype(np.float64),
            "split": booster.feature_importance("split").astype(np.int64),
            "gain_share": gain / total,
        },
        schema=_IMPORTANCE_SCHEMA,
    ).sort(["gain", "feature"], descending=[True, False])


def _ranker_rows(
    train: pl.DataFrame, validation: pl.DataFrame, config: RankerConfig
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The down-sampled training rows, the validation rows sorted by query group and, of those, the groups with a
    purchase; a clear failure when the training or the validation rows hold no positive."""
    train_rows = downsample(train, config)
    if train_rows.height == 0 or train_rows["label"].sum() == 0:
        raise ValueError("no positive label in the training weeks")
    keys = _group_keys(validation)
    validation = validation.sort([*keys, "article_id"])
    # The learning curve (and early stopping, when asked for) reads only the groups with a purchase (LightGBM
    # counts a query without one as a perfect 1).
    stopping_rows = validation.filter(pl.col("label").sum().over(keys) > 0)
    if stopping_rows.height == 0:
        raise ValueError("no positive label in the validation week")
    return train_rows, validation, stopping_rows


def _boost(
    train_set: lgb.Dataset,
    stopping_set: lgb.Dataset,
    config: RankerConfig,
    name: str,
    started: float,
    log: Callable[[str], None],
) -> tuple[lgb.Booster, int, list[dict]]:
    """LightGBM trained for `n_estimators` rounds (or early-stopped on `stopping_set`): the booster holding
    exactly the trees up to the best iteration, that iteration and the validation metric per iteration."""
    metric = f"map@{config.eval_at}"
    history: list[dict] = []

    def record(env: lgb.callback.CallbackEnv) -> None:
        value = next(v for _, m, v, _ in env.evaluation_result_list if m == metric)
        history.append({"iteration": env.iteration + 1, metric: value})
        if (env.iteration + 1) % config.log_every == 0:
            log(
                f"{name} iteration {env.iteration + 1}: validation {metric} {value:.4f} "
                f"({time.perf_counter() - started:.1f} s)"
            )

    callbacks = [record]
    if config.early_stopping_rounds:
        callbacks.append(lgb.early_stopping(config.early_stopping_rounds, first_metric_only=True, verbose=False))
    trained = lgb.train(
        config.lightgbm_params(),
        train_set,
        num_boost_round=config.n_estimators,
        valid_sets=[stopping_set],
        valid_names=["validation"],
        callbacks=callbacks,
    )
    best_iteration = trained.best_iteration or trained.current_iteration()
    # The served booster holds exactly the best trees, so a reloaded artefact predicts the same.
    booster = lgb.Booster(model_str=trained.model_to_string(num_iteration=best_iteration))
    return booster, best_iteration, history


def _judged(
    booster: lgb.Booster,
    validation: pl.DataFrame,
    purchases: pl.DataFrame,
    features: list[str],
    config: RankerConfig,
    best_iteration: int,
    history: list[dict],
) -> tuple[dict, pl.DataFrame, TierBands]:
    """The booster's top `eval_at` of the validation rows judged against `purchases`: the validation figures
    (Kaggle MAP and recall, LightGBM's own metric at the best iteration, the buyers), the AP per customer and
    the relevance tiers fitted on those recommendations."""
    metric = f"map@{config.eval_at}"
    scored = score(booster, validation, features, num_threads=config.num_threads)
    recommended = top_k(scored, config.eval_at)
    per_customer = average_precision(recommended, purchases, config.eval_at)
    figures = {
        "objective": config.objective,
        f"map_at_{config.eval_at}": float(per_customer["ap"].mean()) if per_customer.height else math.nan,
        f"recall_at_{config.eval_at}": recall_at_k(recommended, purchases, config.eval_at),
        "best_iteration": int(best_iteration),
        f"lightgbm_{metric}": float(history[best_iteration - 1][metric]) if history else math.nan,
        "buying_customers": int(purchases["customer_id"].n_unique()),
    }
    tiers = fit_tiers(
        recommended["score"],
        recommended["label"],
        config.tier_high_share,
        config.tier_medium_share,
        config.calibration_bins,
    )
    return figures, per_customer, tiers


def train_ranker(
    train: pl.DataFrame,
    validation: pl.DataFrame,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    config: RankerConfig = RankerConfig(),
    log: Callable[[str], None] = print,
    validation_purchases: pl.DataFrame | None = None,
) -> RankerResult:
    """Train on the stacked training weeks for `n_estimators` rounds (or early-stop on the validation week when
    `early_stopping_rounds` is set) and judge the result by Kaggle MAP@12 of its top 12 against
    `validation_purchases` (customer_id, article_id; default: the validation candidates labelled 1, which
    ignores purchases the candidates missed). LightGBM's own MAP@12 on the validation week is recorded per
    iteration (the learning curve). Relevance tiers are fitted on the validation week's top 12."""
    features, categorical = list(features), list(categorical)
    if missing := [c for c in categorical if c not in features]:
        raise ValueError(f"categorical features not among features: {missing}")
    name = f"ranker[{config.objective}]"
    started = time.perf_counter()
    train, validation = ((f.with_columns((pl.col("label") > 0).cast(pl.Int8))) for f in (train, validation))
    train_rows, validation, stopping_rows = _ranker_rows(train, validation, config)
    train_set = _dataset(train_rows, features, categorical)
    stopping_set = _dataset(stopping_rows, features, categorical, reference=train_set)
    n_groups = train_rows.select(_group_keys(train_rows)).n_unique()
    log(
        f"{name}: {train_rows.height:,} training rows of {train.height:,} in {n_groups:,} groups "
        f"({int(train_rows['label'].sum()):,} positives), {len(features)} features; "
        + (
            f"early stopping on {stopping_rows.height:,} validation rows"
            if config.early_stopping_rounds
            else f"{config.n_estimators} rounds, learning curve on {stopping_rows.height:,} validation rows"
        )
    )
    booster, best_iteration, history = _boost(train_set, stopping_set, config, name, started, log)
    train_seconds = time.perf_counter() - started
    purchases = validation_purchases if validation_purchases is not None else validation.filter(pl.col("label") > 0)
    figures, per_customer, tiers = _judged(booster, validation, purchases, features, config, best_iteration, history)
    figures.update(
        training_rows=int(train_rows.height),
        training_groups=int(n_groups),
        training_positives=int(train_rows["label"].sum()),
        seconds=round(train_seconds, 3),
    )
    k = config.eval_at
    log(
        f"{name}: {'best iteration' if config.early_stopping_rounds else 'iterations'} {best_iteration}, validation"
        f" MAP@{k} {figures[f'map_at_{k}']:.4f}, recall@{k} {figures[f'recall_at_{k}']:.4f} over"
        f" {figures['buying_customers']:,} buyers ({train_seconds:.1f} s)"
    )
    return RankerResult(
        booster, config, features, categorical, figures, _importances(booster), history, tiers, per_customer
    )


def compare_objectives(
    train: pl.DataFrame,
    validation: pl.DataFrame,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    config: RankerConfig = RankerConfig(),
    log: Callable[[str], None] = print,
    validation_purchases: pl.DataFrame | None = None,
    compared: Sequence[str] = (),
) -> tuple[RankerResult, dict[str, float]]:
    """Train the ranker of `config.objective` (the one served) and one per `compared` objective (same data and
    settings otherwise); return the served one and every objective's validation MAP@12. The served objective is
    not chosen here on the validation week: a choice on the week the gate judges would flatter the gate's figure.
    Which objective serves is configuration, settled on backtests; the comparison is evidence for that choice."""
    objectives = [config.objective, *(o for o in compared if o != config.objective)]
    results = {
        objective: train_ranker(
            train,
            validation,
            features,
            categorical,
            RankerConfig(**{**asdict(config), "objective": objective}),
            log,
            validation_purchases,
        )
        for objective in objectives
    }
    key = f"map_at_{config.eval_at}"
    figures = {objective: result.validation[key] for objective, result in results.items()}
    log(
        "ranker objectives: "
        + ", ".join(f"{o} MAP@{config.eval_at} {v:.4f}" for o, v in figures.items())
        + f"; serving {config.objective}"
    )
    return results[config.objective], figures
