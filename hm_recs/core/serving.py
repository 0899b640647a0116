"""Which recommender serves a week: the ranker unless the serving rule, on enough validation buyers, hands the
week to the best baseline (the champion). Fresh lists every week, never last week's.

The comparison is paired: the ranker and every baseline are scored on the same validation buyers (the latest
labelled weeks, pooled until they hold at least `min_validation_buyers` buying customers; a customer buying in
two of those weeks counts twice, once per week), with Kaggle's AP@12 per buyer. The best baseline is the one
with the best pooled MAP@12 (ties: the name that sorts last, as before). The decision rule (`GateRule.rule`), on
the paired difference d = ranker AP - required_ratio x best baseline AP per buyer and its bootstrap interval:
- `not_worse` (the default): the ranker serves unless it loses beyond noise (the interval's upper bound is below
  zero) or its pooled MAP@12 is not positive. A ranker that ties within noise keeps serving: its lists use every
  source, and a switch on noise costs more than it saves (docs/benchmarks.md, the real sample over 12 weeks);
- `mean`: the ranker serves when its pooled MAP@12 is positive and at least `required_ratio` x the best
  baseline's (the point estimate);
- `interval`: the ranker serves only when the interval's lower bound is above zero (it must win beyond noise).
Whatever the rule, the paired difference and its interval are reported. Pure logic, no Dagster.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field

import polars as pl

from hm_recs.core.metrics import paired_bootstrap

RANKER = "ranker"
RULES = ("not_worse", "mean", "interval")


@dataclass(frozen=True)
class GateRule:
    min_validation_buyers: int = 200
    max_validation_weeks: int = 6
    required_ratio: float = 1.0
    rule: str = "not_worse"
    interval_level: float = 0.90
    bootstrap_samples: int = 1000
    seed: int = 0

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, not {self.rule!r}")
        if self.min_validation_buyers < 1 or self.max_validation_weeks < 1:
            raise ValueError("min_validation_buyers and max_validation_weeks must be at least 1")


def validation_weeks(buyers_per_week: Mapping[dt.date, int], week: dt.date, rule: GateRule) -> list[dt.date]:
    """The latest weeks up to `week` (newest first) whose buyers add up to at least `min_validation_buyers`,
    at most `max_validation_weeks` of them; weeks without buyers are passed over."""
    chosen, buyers = [], 0
    for w in sorted((w for w, n in buyers_per_week.items() if w <= week and n > 0), reverse=True):
        if len(chosen) >= rule.max_validation_weeks or buyers >= rule.min_validation_buyers:
            break
        chosen.append(w)
        buyers += buyers_per_week[w]
    return chosen


def training_weeks(
    candidates: Iterable[dt.date],
    positive_groups: Callable[[dt.date], int],
    min_weeks: int,
    min_positive_groups: int,
    max_weeks: int,
) -> tuple[list[dt.date], int]:
    """The ranker's training weeks: from `candidates` (newest first, all before the validation weeks) at least
    `min_weeks` and then more until they hold `min_positive_groups` query groups with a bought candidate, at most
    `max_weeks`. `positive_groups(week)` is asked only for the weeks taken (it may have to build the week's
    labelled set). Returns the weeks (newest first) and their groups with a positive."""
    chosen, groups = [], 0
    for w in candidates:
        if len(chosen) >= max_weeks or (len(chosen) >= min_weeks and groups >= min_positive_groups):
            break
        chosen.append(w)
        groups += positive_groups(w)
    return chosen, groups


@dataclass(frozen=True)
class ServingDecision:
    """What serves a week and why, with the gate's figures (JSON-able through `state`)."""

    served_by: str  # RANKER or a baseline's name
    reason: str
    best_baseline: str | None = None
    ranker_map_at_12: float | None = None
    baseline_map_at_12: dict[str, float] = field(default_factory=dict)
    difference: float | None = None  # pooled ranker MAP@12 - required_ratio x best baseline's
    interval: tuple[float, float] | None = None  # bootstrap interval of that difference
    validation_weeks: tuple[str, ...] = ()
    validation_buyers: int = 0
    rule: dict = field(default_factory=dict)
    ranker_artefact_hash: str | None = None

    @property
    def ranker_serves(self) -> bool:
        return self.served_by == RANKER

    def state(self) -> dict:
        return {
            **asdict(self),
            "interval": list(self.interval) if self.interval else None,
            "validation_weeks": list(self.validation_weeks),
        }

    @classmethod
    def load(cls, state: dict) -> ServingDecision:
        return cls(
            **{
                **state,
                "interval": tuple(state["interval"]) if state.get("interval") else None,
                "validation_weeks": tuple(state.get("validation_weeks") or ()),
            }
        )

    def summary(self) -> str:
        """One line for logs, metadata and the failure report."""
        figures = ""
        if self.best_baseline is not None and self.ranker_map_at_12 is not None:
            figures = (
                f" (validation MAP@12: ranker {self.ranker_map_at_12:.4f}, {self.best_baseline} "
                f"{self.baseline_map_at_12[self.best_baseline]:.4f}"
            )
            if self.interval:
                figures += (
                    f"; paired difference {self.difference:+.4f}, interval [{self.interval[0]:+.4f},"
                    f" {self.interval[1]:+.4f}]"
                )
            figures += f"; {self.validation_buyers:,} buyers of {len(self.validation_weeks)} week(s))"
        return f"served by {self.served_by}: {self.reason}{figures}"


def best_baseline(baseline_map: Mapping[str, float]) -> str:
    return max(baseline_map, key=lambda name: (baseline_map[name], name))


def decide(
    ranker_ap: pl.DataFrame,
    baseline_ap: Mapping[str, pl.DataFrame],
    rule: GateRule,
    *,
    validation_weeks: Iterable[dt.date] = (),
    ranker_artefact_hash: str | None = None,
) -> ServingDecision:
    """The serving decision from per-buyer AP@12 frames (query, ap) of the ranker and of each baseline, all on
    the same validation queries (one query = one buyer in one week)."""
    baseline_map = {name: float(ap["ap"].mean()) for name, ap in baseline_ap.items()}
    best = best_baseline(baseline_map)
    paired = ranker_ap.join(baseline_ap[best], on="query", how="inner", suffix="_baseline")
    differences = paired["ap"] - rule.required_ratio * paired["ap_baseline"]
    difference, low, high = paired_bootstrap(
        differences.to_numpy(), rule.bootstrap_samples, rule.interval_level, rule.seed
    )
    ranker_map = float(ranker_ap["ap"].mean()) if ranker_ap.height else float("nan")
    serves, why = _verdict(rule, best, ranker_map, rule.required_ratio * baseline_map[best], low, high)
    return ServingDecision(
        served_by=RANKER if serves else best,
        reason=why,
        best_baseline=best,
        ranker_map_at_12=ranker_map,
        baseline_map_at_12=baseline_map,
        difference=difference,
        interval=(low, high),
        validation_weeks=tuple(str(w) for w in validation_weeks),
        validation_buyers=int(paired.height),
        rule=asdict(rule),
        ranker_artefact_hash=ranker_artefact_hash,
    )


def _verdict(rule: GateRule, best: str, ranker_map: float, bar: float, low: float, high: float) -> tuple[bool, str]:
    """Whether the ranker serves under `rule.rule`, and why in a phrase; `bar` = required_ratio x the best
    baseline's pooled MAP@12, (low, high) the interval of the paired difference."""
    bar_name = f"{rule.required_ratio:g} x {best}"
    if not math.isfinite(ranker_map):
        return False, "the ranker's validation MAP@12 is not finite"
    if ranker_map <= 0:
        return False, "the ranker's validation MAP@12 is 0 (none of its lists holds a validation purchase)"
    if rule.rule == "not_worse":
        if high >= 0:
            return True, f"the ranker is not worse than {bar_name} beyond noise (interval reaches {high:+.4f})"
        return False, f"the ranker is worse than {bar_name} beyond noise (interval below 0)"
    if rule.rule == "interval":
        if low > 0:
            return True, f"the ranker beats {best} beyond noise (interval above 0)"
        return False, f"the ranker does not beat {best} beyond noise (interval reaches {low:+.4f})"
    if ranker_map >= bar:
        return True, f"the ranker's MAP@12 reaches {bar_name}'s"
    return False, f"the ranker's MAP@12 is below {bar_name}'s"


def champion(
    validation: pl.DataFrame, week: dt.date, rule: GateRule
) -> tuple[str, dict[str, float], list[dt.date], int] | None:
    """The best baseline on the stored validation of the latest weeks up to `week`, pooled as the ranker's gate
    pools them (`validation_weeks`): `validation` holds one row per recommender and validated week
    (recommender, validated_on, map_at_12, buyers). Pooled MAP@12 = the buyer-weighted mean over the weeks.
    Returns (name, pooled MAP@12 per baseline, weeks, buyers), or None when no week has a validated buyer."""
    validation = validation.filter(pl.col("buyers").is_not_null())
    if validation.height == 0:
        return None
    per_week = validation.group_by("validated_on").agg(pl.col("buyers").max())
    weeks = validation_weeks(dict(per_week.iter_rows()), week, rule)
    if not weeks:
        return None
    rows = validation.filter(pl.col("validated_on").is_in(weeks) & pl.col("map_at_12").is_not_nan())
    pooled = rows.group_by("recommender").agg(
        ((pl.col("map_at_12") * pl.col("buyers")).sum() / pl.col("buyers").sum()).alias("map_at_12")
    )
    maps = dict(pooled.sort("recommender").iter_rows())
    if not maps:
        return None
    buyers = int(per_week.filter(pl.col("validated_on").is_in(weeks))["buyers"].sum())
    return best_baseline(maps), maps, weeks, buyers
