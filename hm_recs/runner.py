"""Drives the real `weekly_job` for the CLI: a week with its history, a backtest, stage figures.

Runs go to the Dagster instance in DAGSTER_HOME (default `.hm_recs/dagster_home`), so the UI started
on the same home (`make ui`) shows them with their checks, metadata and logs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import polars as pl

from hm_recs.assets.ingestion import foreign_weeks, one_shop_message, stored_deliveries
from hm_recs.core.publishing import mark_unavailable
from hm_recs.core.source import history_file, resolve, weeks_in_listing, weeks_with_transactions
from hm_recs.core.weeks import shift_weeks
from hm_recs.definitions import DATA_ASSETS, EVERY_ASSET, INGESTION_ASSETS, build_definitions
from hm_recs.fallback import FALLBACK_TAG, RunOutcome, plan
from hm_recs.resources import default_resources
from hm_recs.settings import HOME, TORCH_THREADS_ENV, setting
from hm_recs.storage.warehouse import TARGET_WEEK_PARTITIONED

EVALUATION_ASSETS = INGESTION_ASSETS | dg.AssetSelection.assets("evaluation_report")


class PipelineError(RuntimeError):
    pass


@dataclass(frozen=True)
class WeekBuild:
    """A week that published its lists: in its own run, or (`fallback_run_id`) in the champion's fallback run
    after the model chain failed (`failures`)."""

    week: dt.date
    run_id: str
    fallback_run_id: str | None = None
    failures: str | None = None


def instance() -> dg.DagsterInstance:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(HOME, "dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():  # the machines this runs on have no internet: no telemetry, no banner; the UI shows
        # the freshness of `recommendations` (a preview feature of Dagster's, off unless the instance enables it)
        settings.write_text("telemetry:\n  enabled: false\nfreshness:\n  enabled: true\n")
    return dg.DagsterInstance.get()


@contextlib.contextmanager
def every_core_for_torch():
    """While an in-process run executes (one step at a time), torch steps may use every core
    (`deploy.torch_threads`), unless HM_RECS_TORCH_THREADS says otherwise; the process's environment is left as
    it was, so runs launched from it later (multiprocess, steps side by side) keep one thread per step."""
    if setting(TORCH_THREADS_ENV) is not None:
        yield
        return
    os.environ[TORCH_THREADS_ENV] = str(os.cpu_count() or 1)
    try:
        yield
    finally:
        os.environ.pop(TORCH_THREADS_ENV, None)


@dataclass
class StageFigures:
    """Per asset: rows written, step seconds and the process's peak RSS during the stage (MB)."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    peak_rss_mb: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, result: dg.ExecuteInProcessResult) -> None:
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            name = materialization.asset_key.to_user_string()
            meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            if "dagster/row_count" in meta:
                self.rows[name] = int(meta["dagster/row_count"])
            if "peak_rss_mb" in meta:
                self.peak_rss_mb[name] = max(self.peak_rss_mb[name], float(meta["peak_rss_mb"]))
        for event in result.get_step_success_events():
            self.seconds[event.step_key] += event.event_specific_data.duration_ms / 1000.0

    def as_dict(self) -> dict:
        return {
            "rows": dict(self.rows),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "peak_rss_mb": dict(self.peak_rss_mb),
        }


class Pipeline:
    """The weekly job bound to one source and warehouse."""

    def __init__(
        self,
        source: str,
        warehouse: str | None = None,
        artefacts: str | None = None,
        source_format: str | None = None,
        log_level: str = "WARNING",
        exports: str | None = None,
        serving_policy=None,
        new_delivery: bool = False,
        history_weeks: int | None = None,
    ):
        self.run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
        self.resources = default_resources(
            source=source,
            warehouse=warehouse,
            artefacts=artefacts,
            source_format=source_format,
            exports=exports,
            new_delivery=new_delivery,
            history_weeks=history_weeks,
        )
        if serving_policy is not None:  # a resources.ServingPolicy other than the default (benchmarks)
            self.resources["serving_policy"] = serving_policy
        self.definitions = build_definitions(self.resources)
        self.job = self.definitions.resolve_job_def("weekly_job")
        self.asset_graph = self.definitions.resolve_asset_graph()
        self.instance = instance()
        self.figures = StageFigures()

    @property
    def warehouse(self):
        return self.resources["warehouse"]

    def source_weeks(self) -> list[dt.date]:
        """Weeks the source has transactions for."""
        source = self.resources["raw_source"]
        location = source.location()
        names = location.names()
        weeks = set(weeks_in_listing(names))
        history = history_file(names, source.format)
        if history:
            path, _ = location.local_path(history.name)
            weeks |= set(weeks_with_transactions(path, history))
        return sorted(weeks)

    def stored_weeks(self, table: str = "transactions") -> set[dt.date]:
        if not self.warehouse.exists(table):
            return set()
        return set(self.warehouse.query(f"select distinct week from {self.warehouse.table(table)}")["week"].to_list())

    def execute(
        self,
        week: dt.date,
        selection: dg.AssetSelection | None = None,
        run_config: dict | None = None,
        tags: dict | None = None,
        raise_on_failure: bool = True,
    ) -> dg.ExecuteInProcessResult:
        keys = None if selection is None else list(selection.resolve(self.asset_graph))
        with every_core_for_torch():
            result = self.job.execute_in_process(
                run_config=run_config or self.run_config,
                partition_key=week.isoformat(),
                instance=self.instance,
                asset_selection=keys,
                raise_on_error=False,
                tags=tags,
            )
        self.figures.add(result)
        if not result.success and raise_on_failure:
            raise PipelineError(
                f"week {week} failed (run {result.run_id}):\n  " + self.outcome(result).failures().replace("; ", "\n  ")
            )
        return result

    def outcome(self, result: dg.ExecuteInProcessResult) -> RunOutcome:
        return RunOutcome.of(self.instance.get_run_by_id(result.run_id), self.instance, EVERY_ASSET)

    @property
    def history_weeks(self) -> int:
        """Weeks of history every stage reads (`PipelineSettings`), and what `ensure_history` ingests."""
        return self.resources["pipeline_settings"].history_weeks

    def ensure_history(self, week: dt.date, log=print) -> list[dt.date]:
        """Ingest and validate the source's weeks before `week` (within `history_weeks`) that are not stored yet,
        or were stored from another delivery (a weekly file replaced since, or any other source when the source
        is the same shop's new delivery). One warehouse, one shop: when the warehouse holds weeks of another
        source and the source is not declared a new delivery, stop with one line before anything is written."""
        source = self.resources["raw_source"]
        deliveries = stored_deliveries(self.warehouse)
        foreign = foreign_weeks(deliveries, source.identity())
        if foreign.height and not source.new_delivery:
            raise PipelineError(one_shop_message(self.warehouse, foreign, source.identity()))
        first = shift_weeks(week, -(self.history_weeks - 1))
        wanted = [w for w in self.source_weeks() if first <= w < week]
        stored, changed = self.stored_weeks(), self.redelivered_weeks(deliveries, wanted)
        todo = [w for w in wanted if w not in stored or w in changed]
        for w in todo:
            log(f"  ingesting history week {w}" + (" (a new delivery of a stored week)" if w in changed else ""))
            self.execute(w, INGESTION_ASSETS)
        return todo

    def redelivered_weeks(self, deliveries, weeks: list[dt.date]) -> set[dt.date]:
        """Stored weeks among `weeks` whose delivery differs from what the source holds now: another source (a
        declared new delivery), another file, or the same weekly file with other content; a history file's
        checksum changes whenever a week is added, so its weeks count only for a declared new delivery."""
        source = self.resources["raw_source"]
        location, names = source.location(), None
        checksums: dict[str, str] = {}
        changed = set()
        for row in deliveries.filter(pl.col("week").is_in(weeks) & pl.col("source_uri").is_not_null()).iter_rows(
            named=True
        ):
            if row["source_uri"] != source.identity():
                changed.add(row["week"])
                continue
            names = names if names is not None else location.names()
            current = resolve("transactions", names, row["week"], source.format)
            if current.name != row["source_file"]:
                changed.add(row["week"])
            elif not current.history or source.new_delivery:
                if current.name not in checksums:
                    checksums[current.name] = location.local_path(current.name)[1]
                if checksums[current.name] != row["source_sha256"]:
                    changed.add(row["week"])
        return changed

    def build_week(self, week: dt.date, log=print) -> WeekBuild:
        """The whole graph for `week`, as the schedule and the `serving_fallback` sensor would run it: when the
        run fails before publishing and the champion's inputs passed their gates, a fallback run publishes week
        W+1 from the best validated baseline; when nothing can be published, the export marks the week and
        `PipelineError` says why (the last published week stays)."""
        self.ensure_history(week, log)
        log(f"  building week {week} (recommendations for {shift_weeks(week, 1)})")
        result = self.execute(week, raise_on_failure=False)
        if result.success:
            return WeekBuild(week, result.run_id)
        outcome = self.outcome(result)
        fallback = plan(outcome, DATA_ASSETS)
        if fallback is not None and fallback.publish:
            log(
                f"  week {week}: {fallback.reason}; publishing week {shift_weeks(week, 1)} from the best validated"
                " baseline"
            )
            second = self.execute(
                week,
                dg.AssetSelection.assets(*fallback.rerun),
                fallback.run_config(self.run_config),
                {FALLBACK_TAG: result.run_id},
                raise_on_failure=False,
            )
            if second.success:
                return WeekBuild(week, result.run_id, fallback_run_id=second.run_id, failures=outcome.failures())
            outcome = self.outcome(second)
            fallback = plan(outcome, DATA_ASSETS)
        reason = fallback.reason if fallback is not None else outcome.failures()
        if fallback is not None:
            mark_unavailable(self.resources["exports"].location(), shift_weeks(week, 1), outcome.run_id, reason)
        raise PipelineError(
            f"week {week} failed (run {outcome.run_id}), nothing published for week {shift_weeks(week, 1)}:\n  "
            + reason.replace("; ", "\n  ")
        )

    def serving(self, week: dt.date) -> dict:
        """Who served the lists built at `week` and why, with the ranker's gate figures (empty when none)."""
        registry = self.resources["model_registry"]
        served = registry.serving(week) or {}
        gate = registry.ranker_decision(week) or {}
        keys = (
            "ranker_map_at_12",
            "best_baseline",
            "baseline_map_at_12",
            "difference",
            "interval",
            "validation_weeks",
            "validation_buyers",
        )
        return {
            "served_by": served.get("served_by"),
            "reason": served.get("reason"),
            "ranker_gate": {k: gate.get(k) for k in keys} if gate else None,
        }

    def evaluate_week(self, week: dt.date, log=print) -> dict[str, dict[str, float]]:
        """Score the recommendations built at `week` on week+1's purchases (ingesting week+1 if needed)."""
        target = shift_weeks(week, 1)
        log(f"  scoring on week {target}")
        self.execute(target, EVALUATION_ASSETS)
        return self.evaluation(target)

    def evaluation(self, week: dt.date) -> dict[str, dict[str, float]]:
        """The stored `evaluation_report` of `week` (what was built at week-1, scored on week's purchases), per
        recommender: its figures."""
        report = self.warehouse.query(
            f"select * from {self.warehouse.table('evaluation_report')} where week = ?", [week]
        )
        figures = [c for c in report.columns if c not in ("recommender", "week", "buying_customers", "served_by")]
        return {
            row["recommender"]: {k: row[k] for k in figures if row[k] is not None}
            for row in report.iter_rows(named=True)
        }

    def stage_rows(self, week: dt.date) -> dict[str, int]:
        """Rows per stage stored for partition `week`."""
        rows = {}
        for key in sorted(self.asset_graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
            name = key.to_user_string()
            if not self.warehouse.exists(name):
                continue
            target = (
                self.asset_graph.get(key).metadata.get("partition_expr") == TARGET_WEEK_PARTITIONED["partition_expr"]
            )
            w = shift_weeks(week, 1) if target else week
            rows[name] = int(
                self.warehouse.query(f"select count(*) as n from {self.warehouse.table(name)} where week = ?", [w])[
                    "n"
                ][0]
            )
        return rows
