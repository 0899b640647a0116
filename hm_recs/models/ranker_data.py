"""The ranker's week W: which labelled weeks it learns from and is judged on, and their rows.

A labelled week t is week t's buyers' candidates as of t-1, labelled by what they bought in t (the `candidates`
asset stores one per built week). For partition W:
- validation: the latest labelled weeks (W, W-1, ...) until they hold `GateRule.min_validation_buyers` buyers
  (`core.serving.validation_weeks`). One query = one buyer in one week (`query` = "<week>|<customer_id>"), so
  a customer who bought in two of those weeks is judged twice.
- training: the weeks before the validation weeks, at least `min_training_weeks`, then more until the training
  set holds `min_positive_groups` query groups with a bought candidate, at most `max_training_weeks`
  (`core.serving.training_weeks`). Large shops reach the groups in the first weeks, so nothing changes for them.
A week whose labelled set was never stored (a new deployment, the first weeks of a backtest) is built here from
the validated history, cheaply: the heuristic sources only (repurchase, trending, co-purchase, same product,
fallback), the two retrieval models' columns empty as in a week where both sat out. Only when nothing before W
can be labelled (the first weeks of the data) are week W's buyers split into training and validation.
Every labelled week's features are as of its own week before: that week's stored ranking inputs (the
`ranking_inputs` stage's, of the labelled week's customers only) when they were built over the same windows,
else built here (`week_inputs`), one week's inputs at a time. No Dagster here: the asset passes the warehouse
reads in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from hm_recs.core.baselines import BaselineConfig, recommend_all
from hm_recs.core.candidate_labels import label_candidates
from hm_recs.core.candidates import CandidateConfig, build_candidates
from hm_recs.core.metrics import K, average_precision
from hm_recs.core.ranking_features import InputWindows, RankingInputs, ranking_features, week_inputs
from hm_recs.core.serving import GateRule, training_weeks, validation_weeks
from hm_recs.core.weeks import shift_weeks

QUERY = "query"


@dataclass(frozen=True)
class TrainingWeeks:
    min_training_weeks: int = 3
    min_positive_groups: int = 300
    max_training_weeks: int = 12
    max_validation_customers: int = 50_000  # validation queries judged on at most (seeded sample): bounds memory
    validation_share: float = 0.25  # the split of week W's buyers when nothing earlier can be labelled


@dataclass
class WeekSources:
    """What the assembly reads: the buyers per week (distinct customers, every stored week up to W), a stored
    labelled set (None when that week's `candidates` was never built), the catalogue tables with the
    transactions of the `n` weeks up to W (read once, with as many weeks as the chosen labelled weeks need), and
    a week's stored ranking inputs of the given customers (None when not stored over the assembly's windows)."""

    buyers_per_week: dict[dt.date, int]
    stored_positive_groups: Callable[[dt.date], int | None]
    stored_labelled: Callable[[dt.date], pl.DataFrame | None]
    tables: Callable[[int], tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]
    stored_inputs: Callable[[dt.date, pl.Series], RankingInputs | None] = lambda week, customer_ids: None


@dataclass
class RankerWeeks:
    """The assembled rows: `train` (features, label, week), `validation` (features, label; customer_id holds the
    query), the validation queries' purchases and every baseline's AP@12 per query, with where each week came
    from."""

    train: pl.DataFrame
    validation: pl.DataFrame
    validation_purchases: pl.DataFrame
    baseline_ap: dict[str, pl.DataFrame]
    validation_weeks: list[dt.date]
    training_weeks: list[dt.date]
    positive_groups: int
    built_here: list[dt.date] = field(default_factory=list)  # labelled sets built from history, not stored ones
    split_week: bool = False
    inputs_stored: list[dt.date] = field(default_factory=list)  # weeks whose ranking inputs were read, not built
    inputs_built_here: list[dt.date] = field(default_factory=list)

    def refits(self, mode: str) -> bool:
        """Whether the served ranker is trained again on the validation weeks too (`refit`): "always", "pooled"
        (when more than one validation week was pooled) or "never"; never when week W's buyers were split."""
        return not self.split_week and (mode == "always" or (mode == "pooled" and len(self.validation_weeks) > 1))

    def figures(self) -> dict:
        return {
            "training_weeks": [str(t) for t in sorted(self.training_weeks)],
            "validation_weeks": [str(t) for t in sorted(self.validation_weeks)],
            "labelled_weeks_built_here": [str(t) for t in sorted(self.built_here)],
            "ranking_inputs_stored": [str(t) for t in sorted(self.inputs_stored)],
            "ranking_inputs_built_here": [str(t) for t in sorted(self.inputs_built_here)],
            "training_groups_with_a_positive": self.positive_groups,
            "training_rows": self.train.height,
            "validation_queries": int(self.validation["customer_id"].n_unique()),
            "validation_rows": self.validation.height,
            "week_split": self.split_week,
        }


def as_queries(frame: pl.DataFrame, week: dt.date) -> pl.DataFrame:
    """`customer_id` replaced by the query "<week>|<customer_id>" (one buyer in one week)."""
    return frame.with_columns((pl.lit(f"{week}|") + pl.col("customer_id")).alias("customer_id"))


class _LabelledWeeks:
    """The labelled weeks as the assembly reads them: a stored set where there is one, else one built here from
    the history (heuristic sources only) and kept until `release`; the catalogue tables read once, on first need."""

    def __init__(
        self, sources: WeekSources, candidates: CandidateConfig, most: int, log: Callable[[str], None]
    ) -> None:
        self.sources, self.candidates, self.most, self.log = sources, candidates, most, log
        self._tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame] | None = None
        self.built: dict[dt.date, pl.DataFrame] = {}
        self.built_here: list[dt.date] = []
        self.inputs_stored: list[dt.date] = []
        self.inputs_built_here: list[dt.date] = []

    def tables(self, n: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """The catalogue tables with `n` weeks of transactions, read by the first call (later ones get those)."""
        if self._tables is None:
            self._tables = self.sources.tables(n)
        return self._tables

    def labelled(self, t: dt.date) -> pl.DataFrame:
        """Week t's buyers' candidates as of t-1 with `label` (bought in t): the stored set, else built here."""
        if t in self.built:
            return self.built[t]
        stored = self.sources.stored_labelled(t)
        if stored is not None and stored.height:
            return stored
        customers, articles, transactions = self.tables(self.most)
        seen = transactions.filter(pl.col("t_dat") < pl.lit(t))
        bought = _bought_in(transactions, t)
        rows = build_candidates(
            customers, seen, articles, shift_weeks(t, -1), self.candidates, customer_ids=bought["customer_id"].unique()
        )
        self.built[t] = label_candidates(rows, bought).with_columns(pl.col("label").cast(pl.Int8))
        self.built_here.append(t)
        self.log(
            f"ranker: labelled week {t} built from the history (heuristic sources only): {self.built[t].height:,} rows"
        )
        return self.built[t]

    def inputs(self, as_of: dt.date, customer_ids: pl.Series, windows: InputWindows) -> RankingInputs:
        """The ranking inputs as of `as_of` of these customers: the stored ones, else built from the tables."""
        stored = self.sources.stored_inputs(as_of, customer_ids)
        if stored is not None:
            self.inputs_stored.append(as_of)
            return stored
        customers, articles, transactions = self.tables(self.most)
        self.inputs_built_here.append(as_of)
        return week_inputs(customers, articles, transactions, as_of, windows)

    def positive_groups(self, t: dt.date) -> int:
        """Week t's query groups with a bought candidate (counted where stored, else on its labelled set)."""
        stored = self.sources.stored_positive_groups(t)
        if stored is not None:
            return stored
        rows = self.labelled(t)
        return int(rows.filter(pl.col("label") > 0)["customer_id"].n_unique())

    def release(self, t: dt.date) -> None:
        """Memory: a week built here is released once used, as a stored one is."""
        self.built.pop(t, None)


def _labellable_weeks(week: dt.date, sources: WeekSources, rule: GateRule) -> tuple[list[dt.date], list[dt.date]]:
    """The validation weeks (week W alone when none can be labelled) and the earlier labellable weeks, latest
    first, from which the training weeks are chosen."""
    dated = sorted(w for w in sources.buyers_per_week if w <= week)
    labellable = {w for w in dated if w > dated[0]} | {week}  # a labelled week needs purchases before it
    validation = [w for w in validation_weeks(sources.buyers_per_week, week, rule) if w in labellable] or [week]
    earlier = [w for w in reversed(dated) if w < min(validation) and w in labellable]
    return validation, earlier


def _validation_queries(
    store: _LabelledWeeks,
    transactions: pl.DataFrame,
    week: dt.date,
    validation: list[dt.date],
    split: bool,
    weeks: TrainingWeeks,
    seed: int,
    log: Callable[[str], None],
) -> tuple[pl.Series | None, pl.DataFrame]:
    """The validation queries (week, customer_id): every buyer of the validation weeks, a seeded sample beyond
    `max_validation_customers`. When `split`, week W's buyers are split instead and the training ones returned."""
    from hm_recs.models.ranker import split_customers  # LightGBM: imported only where it is used

    train_ids = None
    if split:  # nothing before W can be labelled: week W's buyers are split
        train_ids, validation_ids = split_customers(store.labelled(week)["customer_id"], weeks.validation_share, seed)
        queries = validation_ids.to_frame("customer_id").with_columns(pl.lit(week).alias("week"))
        log(
            f"ranker: no labelled week before {week}: training on {train_ids.len():,} of its buyers, "
            f"validating on the other {validation_ids.len():,}"
        )
    else:
        queries = pl.concat(
            [
                _bought_in(transactions, t).select("customer_id").unique().with_columns(pl.lit(t).alias("week"))
                for t in validation
            ]
        )
    queries = queries.sort("week", "customer_id")
    if queries.height > weeks.max_validation_customers:
        queries = queries.sample(weeks.max_validation_customers, seed=seed).sort("week", "customer_id")
    return train_ids, queries


def _training_week(
    rows: pl.DataFrame,
    bought: pl.DataFrame,
    inputs: RankingInputs,
    t: dt.date,
    train_ids: pl.Series | None,
    ranker,
    detach: Callable[[pl.DataFrame], pl.DataFrame],
    log: Callable[[str], None],
) -> pl.DataFrame:
    """Week t's training rows: its labelled candidates (the training buyers' only when week W's buyers were
    split), down-sampled, with their features as of t-1 and the week."""
    from hm_recs.models.ranker import downsample  # LightGBM: imported only where it is used

    kept = rows.filter(pl.col("customer_id").is_in(train_ids.implode())) if train_ids is not None else rows
    kept = detach(downsample(kept.with_columns(pl.lit(t).alias("week")), ranker))
    features = ranking_features(inputs, kept, bought).with_columns(pl.lit(t).alias("week"))
    log(f"ranker training week {t}: {kept.height:,} candidate rows kept, {int(kept['label'].sum()):,} bought")
    return features


def _validation_week(
    rows: pl.DataFrame,
    bought: pl.DataFrame,
    inputs: RankingInputs,
    t: dt.date,
    judged: pl.Series,
    tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, pl.DataFrame]]:
    """Week t's validation queries from the `judged` buyers' rows: those rows with features as of t-1, their
    purchases, and every baseline's AP@12 per query as it would have served week t (built as of t-1) on them."""
    customers, articles, transactions = tables
    bought = bought.filter(pl.col("customer_id").is_in(judged.implode()))
    features, purchases = as_queries(ranking_features(inputs, rows, bought), t), as_queries(bought, t)
    lists = recommend_all(
        customers,
        transactions.filter(pl.col("t_dat") < pl.lit(t)),
        articles,
        shift_weeks(t, -1),
        BaselineConfig(K),
        wanted=judged,
    )
    baseline_ap = {
        name: average_precision(as_queries(group, t), as_queries(bought, t)).rename({"customer_id": QUERY})
        for (name,), group in lists.group_by("recommender", maintain_order=True)
    }
    return features, purchases, baseline_ap


def assemble(
    week: dt.date,
    sources: WeekSources,
    weeks: TrainingWeeks,
    rule: GateRule,
    ranker,
    windows: InputWindows,
    candidates: CandidateConfig = CandidateConfig(),
    log: Callable[[str], None] = print,
    detach: Callable[[pl.DataFrame], pl.DataFrame] = lambda frame: frame,
) -> RankerWeeks:
    """Week W's training and validation rows (module docstring). `detach` copies a kept subset out of its
    source's buffers (the asset passes `detached`), so that memory is one labelled week at a time. `ranker`:
    the `models.ranker.RankerConfig` whose down-sampling the training weeks get."""
    validation, earlier = _labellable_weeks(week, sources, rule)
    lookback = max(windows.feature_weeks, windows.segment_weeks) + 1
    store = _LabelledWeeks(sources, candidates, len(validation) + weeks.max_training_weeks + lookback, log)
    chosen, groups = training_weeks(
        earlier, store.positive_groups, weeks.min_training_weeks, weeks.min_positive_groups, weeks.max_training_weeks
    )
    tables = store.tables((week - min([*chosen, *validation])).days // 7 + lookback)
    transactions = tables[2]
    split = not chosen
    train_ids, queries = _validation_queries(store, transactions, week, validation, split, weeks, ranker.seed, log)

    train_parts, validation_parts, purchase_parts = [], [], []
    baseline_parts: dict[str, list[pl.DataFrame]] = {}
    for t in sorted({*chosen, *validation}):
        rows, bought = store.labelled(t), _bought_in(transactions, t)
        inputs = store.inputs(shift_weeks(t, -1), rows["customer_id"], windows)
        if t in chosen or split:
            train_parts.append(_training_week(rows, bought, inputs, t, train_ids, ranker, detach, log))
        if t in validation:
            judged = queries.filter(pl.col("week") == t)["customer_id"]
            rows = rows.filter(pl.col("customer_id").is_in(judged.implode()))  # memory: the rest let go first
            features, purchases, baseline_ap = _validation_week(rows, bought, inputs, t, judged, tables)
            validation_parts.append(features)
            purchase_parts.append(purchases)
            for name, ap in baseline_ap.items():
                baseline_parts.setdefault(name, []).append(ap)
        del rows, inputs
        store.release(t)
    train = pl.concat(train_parts)
    return RankerWeeks(
        train=train,
        validation=pl.concat(validation_parts),
        validation_purchases=pl.concat(purchase_parts),
        baseline_ap={name: pl.concat(parts).sort(QUERY) for name, parts in baseline_parts.items()},
        validation_weeks=validation,
        training_weeks=chosen or [week],
        positive_groups=groups if chosen else int(train.filter(pl.col("label") > 0)["customer_id"].n_unique()),
        built_here=sorted(store.built_here),
        split_week=split,
        inputs_stored=store.inputs_stored,
        inputs_built_here=store.inputs_built_here,
    )


def _bought_in(transactions: pl.DataFrame, week: dt.date) -> pl.DataFrame:
    return transactions.filter(
        pl.col("t_dat").is_between(pl.lit(week), pl.lit(shift_weeks(week, 1)), closed="left")
    ).select("customer_id", "article_id")


def refit(weeks: RankerWeeks, gated, features, categorical, config, log: Callable[[str], None] = print):
    """The ranker that serves when refitting: the gated one's configuration trained again on the training and
    the validation weeks together (the latest weeks' purchases, which the gated ranker never saw because they
    judged it). Its relevance tiers are cut at the same shares of its own scores on the validation rows, and
    keep the gated ranker's out-of-sample hit rates per tier as what to expect."""
    from hm_recs.core.tiers import TierBands
    from hm_recs.models.ranker import RankerResult, downsample, train_ranker

    validation = weeks.validation.with_columns(
        pl.col("customer_id").str.split_exact("|", 1).struct.field("field_0").str.to_date().alias("week")
    )
    kept = downsample(validation, config).select(weeks.train.columns)
    refitted = train_ranker(
        pl.concat([weeks.train, kept]), weeks.validation, features, categorical, config, log, weeks.validation_purchases
    )
    bands = refitted.tiers
    tiers = TierBands(
        bands.high_score,
        bands.medium_score,
        bands.calibration_scores,
        bands.calibration_probabilities,
        gated.tiers.summary,
    )
    return RankerResult(
        refitted.booster,
        config,
        list(features),
        list(categorical),
        {**gated.validation, "refit_training_rows": refitted.validation["training_rows"]},
        refitted.importances,
        gated.history,
        tiers,
        gated.validation_ap,
    )
