"""Warm-started weekly training: whether week W's model starts from week W-1's stored artefact, and how that
artefact's weights carry over to this week's catalogue. No Dagster.

Every torch model's stored state carries a `lineage` (`Lineage`): the week its chain of warm starts began (its
last full retrain), the artefact it warm-started from, and the content encoder weeks whose vectors it read. W's
model warm-starts from W-1's (`plan`) when that artefact exists and has a lineage, its configuration is this
week's (the number of epochs aside), it read the same content encoder's vectors as this week's model will, and
its chain is younger than `full_retrain_weeks`; otherwise it trains from scratch, and the plan says why.

The content encoder's warm start keeps W-1's weights as they are (`warm_epochs` 0): every model reading its
vectors then reads the same representation, so they can warm-start too; a full retrain of the encoder (every
`full_retrain_weeks`, aligned with theirs) makes them retrain as well. Weights carry over by article id
(`carry_weights`): rows of per-article parameters follow their article into this week's catalogue order, new
articles keep this week's starting values; everything else must have the same shape.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import torch

ARTICLE_ROWS = ("bias", "article_id.weight", "known_article", "cycle_days", "current_trend")
"""The retrieval models' state entries with a row per catalogue article: carried by article id."""

NOT_COMPARED = ("epochs", "evaluate_every", "seed")
"""Configuration fields a warm start may differ in from the artefact it starts from."""


@dataclass(frozen=True)
class Lineage:
    full_retrain_week: str  # ISO date: the week this chain of warm starts began
    warm_started_from: dict | None  # {"week", "artefact_hash"} of the artefact it started from; None = full
    content_week: str | None  # the content encoder's full-retrain week whose vectors it read (None: reads none)

    def state(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, state: dict) -> Lineage | None:
        return cls(**state["lineage"]) if isinstance(state.get("lineage"), dict) else None


@dataclass(frozen=True)
class WarmStart:
    """A model's start this week: `previous` (W-1's state) when warm, and why (not)."""

    lineage: Lineage
    previous: dict | None
    reason: str

    @property
    def warm(self) -> bool:
        return self.previous is not None

    def cold(self, reason: str) -> WarmStart:
        """The same week trained from scratch instead (e.g. the warm start does not fit, or failed its gate)."""
        week = self.lineage.warm_started_from["week"] if self.warm else None
        start = self.lineage.full_retrain_week if not self.warm else _next_week(week)
        return WarmStart(Lineage(start, None, self.lineage.content_week), None, reason)

    def metadata(self) -> dict:
        return {
            "warm_started_from": (
                f"{self.lineage.warm_started_from['week']} ({self.lineage.warm_started_from['artefact_hash'][:12]})"
                if self.warm
                else "none (full retrain)"
            ),
            "warm_start_reason": self.reason,
            "full_retrain_week": self.lineage.full_retrain_week,
        }


def _next_week(iso: str) -> str:
    return (dt.date.fromisoformat(iso) + dt.timedelta(weeks=1)).isoformat()


def plan(
    week: dt.date,
    previous: tuple[dict, str] | None,
    config: dict,
    full_retrain_weeks: int,
    content_week: str | None = None,
) -> WarmStart:
    """Week `week`'s start from `previous` (W-1's state and artefact hash, None when W-1 has none), the model's
    configuration now (`asdict` of its dataclass), the rule and the content encoder week its inputs come from."""
    cold = Lineage(week.isoformat(), None, content_week)
    reason = _refusal(week, previous, config, full_retrain_weeks, content_week)
    if reason is not None:
        return WarmStart(cold, None, reason)
    state, digest = previous
    before = Lineage.of(state)
    last = (week - dt.timedelta(weeks=1)).isoformat()
    lineage = Lineage(before.full_retrain_week, {"week": last, "artefact_hash": digest}, content_week)
    age = (week - dt.date.fromisoformat(before.full_retrain_week)).days // 7
    return WarmStart(lineage, state, f"week {age + 1} of {full_retrain_weeks} since the full retrain")


def _refusal(week, previous, config: dict, full_retrain_weeks: int, content_week: str | None) -> str | None:
    """Why week `week` trains from scratch, or None when it may warm-start."""
    if full_retrain_weeks <= 1:
        return f"warm starts off (full_retrain_weeks={full_retrain_weeks})"
    if previous is None:
        return f"no stored artefact for {week - dt.timedelta(weeks=1)}"
    state, _ = previous
    before = Lineage.of(state)
    if before is None:
        return "last week's artefact was written before warm starts (no lineage)"
    changed = sorted(
        k
        for k in set(config) | set(state["config"])
        if k not in NOT_COMPARED and config.get(k) != state["config"].get(k)
    )
    if changed:
        return f"configuration changed since last week: {', '.join(changed)}"
    if before.content_week != content_week:
        return f"the content encoder changed (last week's model read {before.content_week}'s, now {content_week}'s)"
    age = (week - dt.date.fromisoformat(before.full_retrain_week)).days // 7
    if age >= full_retrain_weeks:
        return f"full retrain due: every {full_retrain_weeks} weeks, this chain began {before.full_retrain_week}"
    return None


def carry_weights(
    model: torch.nn.Module,
    weights: dict[str, torch.Tensor],
    old_articles: list[str],
    new_articles: list[str],
    per_article: tuple[str, ...],
    from_data: tuple[str, ...] = (),
) -> str | None:
    """Loads `weights` (a state dict trained on the catalogue `old_articles`, in row order) into `model` (built for
    `new_articles`): rows of the `per_article` entries move with their article id, new articles keep `model`'s
    values; the `from_data` entries (derived from this week's data) are not copied. Returns why the weights do
    not fit (another shape), or None once loaded."""
    own = model.state_dict()
    position = {article: i for i, article in enumerate(old_articles)}
    new_rows = [i for i, article in enumerate(new_articles) if article in position]
    old_rows = torch.tensor([position[new_articles[i]] for i in new_rows], dtype=torch.long)
    new_rows = torch.tensor(new_rows, dtype=torch.long)
    carried = {}
    for name, value in own.items():
        if name in from_data:
            continue
        if name not in weights:
            return f"last week's model has no {name}"
        old = weights[name]
        if name in per_article:
            if old.shape[0] != len(old_articles) or old.shape[1:] != value.shape[1:]:
                return f"{name} {tuple(old.shape)} does not match its {len(old_articles)} articles"
            value = value.clone()
            value[new_rows] = old[old_rows].to(value.dtype)
            carried[name] = value
        elif old.shape != value.shape:
            return f"{name} is {tuple(old.shape)} last week and {tuple(value.shape)} now"
        else:
            carried[name] = old
    model.load_state_dict(carried, strict=False)
    return None
