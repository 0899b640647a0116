"""The learned models' settings, one dataclass per model (no torch: the code location reads them at load to
derive each stage's run configuration, `hm_recs.configs`). What each setting does: the model's module."""

from __future__ import annotations

from dataclasses import dataclass

from hm_recs.core.metrics import K

OBJECTIVES = ("lambdarank", "binary")
"""The ranker's LightGBM objectives."""


@dataclass(frozen=True)
class ContentConfig:
    dim: int = 32
    embedding_dim: int = 12
    hidden: int = 64
    epochs: int = 4
    batch_size: int = 2048
    lr: float = 5e-3
    negatives: int = 8
    popularity_negative_share: float = 0.5
    seed: int = 0
    # Bounded cost per week whatever the number of customers. The customer embedding (a training aid: only the
    # article encoder is kept) has a row per customer that Adam updates every step, so it learns from the
    # purchases of at most `max_customers` customers (a fixed seeded sample when there are more), and an epoch
    # from at most `max_pairs_per_epoch` of them (a fresh sample each epoch). Neither samples anything up to
    # about 10 % of H&M's customers (docs/models.md, "Bounded training cost").
    max_customers: int = 150_000
    max_pairs_per_epoch: int = 1_000_000
    # description words: a learned embedding per word of the catalogue's own vocabulary (0 = no text features)
    text_dim: int = 16
    text_vocabulary: int = 2000
    # image vectors, when the week has them: projected to this many dimensions (0 = ignore images)
    image_dim: int = 16

    def __post_init__(self):
        if self.max_customers < 1 or self.max_pairs_per_epoch < 1:
            raise ValueError(
                "max_customers and max_pairs_per_epoch must be >= 1, "
                f"got {self.max_customers} and {self.max_pairs_per_epoch}"
            )


@dataclass(frozen=True)
class TwoTowerConfig:
    dim: int = 64
    hidden: int = 128
    # 0 = no customer id embedding. With one (16) the model memorised the training purchases (4 label weeks: about
    # one per customer at H&M rates): at 50k customers held-out recall@100 peaked after the first epoch and ended
    # near popularity's (docs/models.md).
    id_dim: int = 0
    embedding_dim: int = 8
    epochs: int = 6
    batch_size: int = 1024
    lr: float = 3e-3
    weight_decay: float = 1e-6
    negatives: int = 16
    # Mostly uniform negatives: without the log-q correction, popularity-weighted ones teach the model to discount
    # popularity (a PMI-like objective); with it the share matters little (docs/models.md).
    popularity_negative_share: float = 0.1
    loss: str = "sampled_softmax"  # "sampled_softmax" | "bce"
    seed: int = 0
    trend: bool = True  # + w . trend, started at the popularity prior (module docstring)
    article_bias: bool = True  # + a learned per-article bias
    # Logits minus log q(article), q the exact negative sampling distribution (`common.negative_distribution`), as
    # in the sequence model: popularity-weighted negatives then do not teach the model to discount the popular
    # articles the trend term ranks up (docs/models.md).
    logq_correction: bool = True
    # Bounded cost per week whatever the number of customers: an epoch trains on at most this many purchase pairs, a
    # fresh seeded sample each epoch when there are more (the gate's fixed loss reads a fixed sample of as many);
    # the default samples nothing up to about 10 % of H&M's customers (docs/models.md).
    max_pairs_per_epoch: int = 200_000
    # held-out figures (a pass over every held-out customer x article) after the last epoch only (0), or also
    # every n epochs; the training loss is logged every epoch
    evaluate_every: int = 0
    # an article identity embedding added to the article vector for articles with at least `id_min_sales` training
    # purchases: what tells apart articles that share every attribute. Replaced by zeros with probability
    # `id_dropout` while training (the content side stays usable alone, for new articles) and regularised apart
    # (`id_weight_decay`): the customer id embedding memorised its training purchases (docs/models.md)
    article_identity: bool = True
    id_min_sales: int = 5
    id_dropout: float = 0.5
    id_weight_decay: float = 1e-4
    # repeat-aware (as in the sequence model): a learned term for the articles the customer bought before (how
    # often, how long ago, over the article's usual cycle), taught when a re-buy is due by `history_negatives` of
    # the customer's own earlier articles per purchase; needs the inputs' `history`
    repeat: bool = True
    repeat_hidden: int = 16
    history_negatives: int = 4

    def __post_init__(self):
        if self.max_pairs_per_epoch < 1 or self.evaluate_every < 0:
            raise ValueError(
                f"max_pairs_per_epoch must be >= 1 and evaluate_every >= 0, "
                f"got {self.max_pairs_per_epoch} and {self.evaluate_every}"
            )


@dataclass(frozen=True)
class SequenceConfig:
    dim: int = 64
    hidden: int = 128
    encoder: str = "lstm"  # "lstm" | "transformer"
    max_len: int = 50
    negatives: int = 20
    loss: str = "bce"  # "bce" | "sigmoid_rank"
    epochs: int = 5
    batch_size: int = 256  # sequences (customers) per batch
    lr: float = 2e-3
    weight_decay: float = 1e-6
    popularity_negative_share: float = 0.5
    seed: int = 0
    # options beyond the paper's core (defaults measured on synthetic data, see the module docstring)
    article_bias: bool = True  # learned per-article bias
    day_of_year: bool = True  # annual phase (sin, cos) of the target date as a time feature
    logq_correction: bool = True
    trend: bool = True  # learned weight on the articles' sales shares of the 2 weeks before the target date
    transformer_layers: int = 2
    transformer_heads: int = 4
    # repeat-aware scoring (module docstring): a learned term for the customer's own earlier articles
    repeat: bool = True
    repeat_hidden: int = 16
    history_negatives: int = 4
    # article identity embedding (added to the article vector) for articles with enough sales
    article_identity: bool = True
    id_min_sales: int = 5
    id_dropout: float = 0.5
    id_weight_decay: float = 1e-4
    # Bounded cost per week whatever the number of customers: an epoch trains on at most this many customers'
    # sequences, a fresh seeded sample each epoch when there are more (the gate's fixed loss reads a fixed sample
    # of as many); the default samples nothing up to about 10 % of H&M's customers (docs/models.md).
    max_sequences_per_epoch: int = 150_000
    # held-out figures (a pass over every held-out customer x article) after the last epoch only (0), or also
    # every n epochs; the training loss is logged every epoch
    evaluate_every: int = 0

    def __post_init__(self):
        if self.max_sequences_per_epoch < 1 or self.evaluate_every < 0:
            raise ValueError(
                "max_sequences_per_epoch must be >= 1 and evaluate_every >= 0, "
                f"got {self.max_sequences_per_epoch} and {self.evaluate_every}"
            )


@dataclass(frozen=True)
class RankerConfig:
    """Every tunable number of the ranker. Defaults suit about 100 candidates per customer and week."""

    objective: str = "lambdarank"  # "lambdarank" | "binary" (the compared alternative)
    # Negatives kept per positive within each query group (customer x week); every positive is kept. Groups
    # without a positive carry no ranking signal and drop out. None keeps every row (binary keeps empty groups).
    # The default is the best of the values compared in docs/models.md.
    negatives_per_positive: float | None = 10.0
    seed: int = 0
    num_leaves: int = 31
    learning_rate: float = 0.05
    n_estimators: int = (
        100  # boosting rounds, fixed (at this learning rate, where early stopping stopped: docs/models.md)
    )
    early_stopping_rounds: int | None = None  # set: stop on the validation week (which then flatters its own figure)
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_bin: int = 255
    lambdarank_truncation_level: int = 24  # pairs are formed within the top 2 x 12 of each query
    # One thread by default: Dagster runs steps side by side on few cores, and LightGBM's OpenMP threads slow
    # down several-fold when cores are oversubscribed (docs/benchmarks.md). Raise it where the ranker has the
    # machine to itself.
    num_threads: int = 1
    eval_at: int = K
    log_every: int = 25  # iterations between log lines
    tier_high_share: float = 0.10  # share of the validation week's recommendations in the "high" tier
    tier_medium_share: float = 0.30
    calibration_bins: int = 100

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, not {self.objective!r}")

    def lightgbm_params(self) -> dict:
        params = {
            "objective": self.objective,
            "metric": "map",
            "eval_at": [self.eval_at],
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "max_bin": self.max_bin,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        if self.objective == "lambdarank":
            params["lambdarank_truncation_level"] = self.lambdarank_truncation_level
        return params


SEARCH_METHODS = ("auto", "exact", "flat", "ivf")
"""How the retrieval models find each customer's best articles (`models.article_search`)."""


@dataclass(frozen=True)
class SearchConfig:
    method: str = "auto"
    ann_min_articles: int = 20_000  # `auto` below this: flat (a flat search of 20k articles is already cheap)
    target_recall: float = 0.97  # ivf: recall@k on the tuning sample against the exact lists
    tuning_customers: int = 2_000
    sparse_margin: int = 30  # extra articles searched when a sparse term is merged in
    # where `exact` scores: "auto" = the GPU when torch sees one (then `auto` searches exactly there), "cpu", "cuda"
    device: str = "auto"

    def __post_init__(self):
        if self.method not in SEARCH_METHODS:
            raise ValueError(f"search method must be one of {SEARCH_METHODS}, got {self.method!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"search device must be auto, cpu or cuda, got {self.device!r}")
        if not 0 < self.target_recall <= 1:
            raise ValueError(f"target_recall must be in (0, 1], got {self.target_recall}")

    def resolved(self, n_articles: int, on_gpu: bool = False) -> str:
        if self.method != "auto":
            return self.method
        if on_gpu:
            return "exact"
        return "ivf" if n_articles >= self.ann_min_articles else "flat"


EXACT_SEARCH = SearchConfig(method="exact")
"""The brute-force reference search."""
