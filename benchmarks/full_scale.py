"""The weekly refresh at full H&M scale (or a share of it) on this machine: seconds, peak RSS and rows per stage,
each stage's time as a ratio to a physical reference measured in the same run, and the MAP@12 of the result.

    python benchmarks/full_scale.py [--scale 1.0] [--warm-weeks 1] [--executor multiprocess|in_process]
    make bench-full                (scale 0.1, then 1.0)

1. Data: the project's generator (`hm_recs.synthetic`) at `scale` x H&M's size (1,371,980 customers, 105,542
   articles, ~305k transactions a week, 104 weeks), written once as Parquet and cached under
   .hm_recs/bench/hm_scale_<scale>/.
2. Warm state (cached under .hm_recs/bench/warm_<scale>_w<T>/): the weeks before the refreshed week T ingested
   and validated (52 weeks: the longest input window, the segments'), then `--warm-weeks` whole weekly runs
   before T (the weekly job on the same executor as the refresh, figures kept in warm.json), so the ranker has
   earlier labelled candidate sets to learn from and the models a stored week to warm-start from, as in the
   weekly routine: the first warm-up week trains every torch model from scratch (a full-retrain week), the
   refresh fine-tunes them (a warm-started week, docs/models.md "Warm-started weekly training").
3. Refresh: the warm state copied to a scratch folder, then week T's `weekly_job` as the schedule launches it:
   Dagster's multiprocess executor (one process per step, as many at once as cores), a persistent instance.
   The peak RSS of the whole process tree is sampled every 0.25 s; each step's own peak RSS and seconds come
   from its metadata and events.
4. Result: week T+1 ingested and `evaluation_report` built: MAP@12 of the published recommendations against
   next week's purchases, with the trending baseline's, in the same run.
5. References, measured in this process on the same data after the run (see `docs/benchmarks.md`):
   polars' bare scan of the raw week (ingestion), a polars group-by over the same history (features,
   segments), one epoch of a plain embedding dot-product forward/backward over as many pairs as the stage
   trained on (training), a bare chunked matmul + top-k of customers x articles (retrieval), a polars
   sort + per-customer head over as many rows (candidates), LightGBM's bare predict of a matrix of the
   scored rows x features with the stored ranker (recommendations) and a bare LightGBM training of the same
   shape (ranker). A stage over 3x its reference is flagged.

Writes benchmarks/results/full_scale_<scale>.json. `run_benchmark` is what the test suite's smoke test calls
at a tiny scale (outputs checked, not timings).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from hm_recs.core.profiling import best_of, timed

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".hm_recs" / "bench"
RESULTS = ROOT / "benchmarks" / "results"
HM_CUSTOMERS = 1_371_980
HM_WEEKS = 104
SEGMENT_WEEKS = 52  # the longest input window of a week (segments); features read 26
FLAG_RATIO = 3.0

if __name__ == "__main__":  # children of the multiprocess executor import this module too: no side effects there
    os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="hm_recs_bench_home_"))


def weekly_job():
    """`weekly_job` over the resources named by the HM_RECS_* environment when called (the multiprocess executor
    rebuilds it in every step process from this function; `resources.DEFAULT_*` were fixed at import)."""
    from hm_recs.definitions import build_definitions
    from hm_recs.resources import default_resources

    return build_definitions(
        default_resources(
            source=os.environ["HM_RECS_SOURCE"],
            warehouse=os.environ["HM_RECS_WAREHOUSE"],
            artefacts=os.environ["HM_RECS_ARTEFACTS"],
            exports=os.environ["HM_RECS_EXPORTS"],
        )
    ).resolve_job_def("weekly_job")


# ----------------------------------------------------------------------------------------------- memory


def _tree_rss_bytes(root: int) -> int:
    """Resident memory of `root` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * page
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class TreeMemory:
    """Peak RSS of this process and its children while the block runs."""

    def __enter__(self):
        self.peak = _tree_rss_bytes(os.getpid())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, _tree_rss_bytes(os.getpid()))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


# ----------------------------------------------------------------------------------------------- data


def generated_source(scale: float, weeks: int = HM_WEEKS, cache: Path = CACHE, log=print) -> Path:
    """The synthetic shop at `scale` x H&M's size, written once as Parquet (cached)."""
    from hm_recs.synthetic import GENERATOR_VERSION, SyntheticConfig, generate, write

    customers = max(round(HM_CUSTOMERS * scale), 500)
    out = cache / f"hm_scale_{scale:g}_{weeks}w_v{GENERATOR_VERSION}"
    if not (out / "transactions_train.parquet").exists():
        log(f"generating {customers:,} customers x {weeks} weeks into {out} ...")
        data, seconds = timed(lambda: generate(SyntheticConfig(customers=customers, weeks=weeks)))
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        write(data, tmp, "parquet")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        log(f"  generated in {seconds:.0f} s")
    return out


def source_weeks(source: Path) -> list[dt.date]:
    import polars as pl

    from hm_recs.core.weeks import week_of

    days = (
        scan_raw(source, "transactions_train")
        .select(pl.col("t_dat").min().alias("first"), pl.col("t_dat").max().alias("last"))
        .collect()
        .row(0)
    )
    first, last = (d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)[:10]) for d in days)
    weeks, week = [], week_of(first)
    while week <= last:
        weeks.append(week)
        week += dt.timedelta(weeks=1)
    return weeks


def _set_environment(source: Path, folder: Path) -> None:
    os.environ.update(
        {
            "HM_RECS_SOURCE": str(source),
            "HM_RECS_WAREHOUSE": str(folder / "warehouse.duckdb"),
            "HM_RECS_ARTEFACTS": str(folder / "artefacts"),
            "HM_RECS_EXPORTS": str(folder / "exports"),
            "HM_RECS_HOME": str(folder / "home"),
        }
    )


def warm_folder(source: Path, week: dt.date, warm_weeks: int, history_weeks: int, cache: Path = CACHE) -> Path:
    return cache / f"warm_{source.name}_{week}_h{history_weeks}_w{warm_weeks}"


def ingested_history(source: Path, week: dt.date, warm_weeks: int, history_weeks: int, cache: Path = CACHE, log=print):
    """The warm folder's Pipeline with the history weeks before the first built week ingested and validated.
    Resumable: weeks already stored are kept (each week is written in one transaction), so an interrupted
    warm-up (hours at full scale) goes on where it stopped."""
    from hm_recs.core.weeks import shift_weeks
    from hm_recs.runner import Pipeline

    folder = warm_folder(source, week, warm_weeks, history_weeks, cache)
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(
        str(source),
        warehouse=str(folder / "warehouse.duckdb"),
        artefacts=str(folder / "artefacts"),
        exports=str(folder / "exports"),
        history_weeks=history_weeks,
    )
    started = time.perf_counter()
    missing = pipeline.ensure_history(shift_weeks(week, -warm_weeks), log=log)
    if missing:
        log(f"  ingested {len(missing)} history weeks in {time.perf_counter() - started:.0f} s")
    return pipeline


def warm_state(
    source: Path,
    week: dt.date,
    warm_weeks: int,
    history_weeks: int,
    cache: Path = CACHE,
    log=print,
    executor: str = "multiprocess",
) -> Path:
    """A folder with the warehouse and artefacts as the weekly routine leaves them before week `week`
    (cached): the `history_weeks` weeks before it ingested, the last `warm_weeks` of them built whole by the
    weekly job as the refresh runs it (the first of them trains every model from scratch: nothing is stored
    before it). Each built week's figures (a `Refresh`) are kept in the folder's warm.json."""
    from hm_recs.core.weeks import shift_weeks

    folder = warm_folder(source, week, warm_weeks, history_weeks, cache)
    marker = folder / "warm.json"
    if marker.exists():
        store_earlier_inputs(source, folder, week, warm_weeks, log)
        return folder
    started = time.perf_counter()
    # the `history_weeks` weeks are ingested (the segments read a year); the builds read the weekly job's windows
    pipeline = ingested_history(source, week, warm_weeks, history_weeks, cache, log)
    outcomes, figures = {}, {}
    for w in [shift_weeks(week, -i) for i in range(warm_weeks, 0, -1)]:
        log(f"warm-up: building week {w}")
        refresh = run_week(source, folder, w, executor, log)
        # a refused gate still leaves the week's labelled candidates
        outcomes[str(w)] = "published" if refresh.success else "; ".join(refresh.failures) or "failed"
        if not refresh.success:
            log(f"  warm-up week {w} did not publish: {outcomes[str(w)]}")
        figures[str(w)] = dataclasses.asdict(refresh)
    pipeline.ensure_history(week, log=log)
    earlier_inputs = store_earlier_inputs(source, folder, week, warm_weeks, log)
    marker.write_text(
        json.dumps(
            {
                "week": str(week),
                "built": outcomes,
                "figures": figures,
                "earlier_inputs": earlier_inputs,
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )
    return folder


def store_earlier_inputs(source: Path, folder: Path, week: dt.date, warm_weeks: int, log=print) -> list[str]:
    """The stored ranking inputs of the weeks before the warm-up that the refresh's ranker reads (as of the week
    before each of its `TrainingWeeks.min_training_weeks` training weeks), as those weeks' own weekly runs leave
    them: without them `ranker_model` built three weeks' inputs itself (171 of its 430 s at H&M's size), a cost
    of the benchmark's short warm-up that a weekly routine never pays. `ranking_inputs` alone for each week, not
    timed; the weeks done are kept in a finished warm state's warm.json, so a cached state builds them once."""
    import dagster as dg

    from hm_recs.core.weeks import shift_weeks
    from hm_recs.models.ranker_data import TrainingWeeks

    marker = folder / "warm.json"
    recorded = json.loads(marker.read_text()) if marker.exists() else {}
    wanted = [shift_weeks(week, -i) for i in range(warm_weeks + 1, TrainingWeeks.min_training_weeks + 2)]
    done = set(recorded.get("earlier_inputs", []))
    missing = [w for w in wanted if str(w) not in done]
    if missing:
        _set_environment(source, folder)
        pipeline = work_pipeline(source, folder)
        for w in missing:
            log(f"warm-up: ranking inputs of week {w} (what its weekly run stores)")
            pipeline.execute(w, dg.AssetSelection.assets("ranking_inputs", "ranking_week_inputs"))
    stored = sorted(done | {str(w) for w in wanted})
    if recorded and missing:
        marker.write_text(json.dumps({**recorded, "earlier_inputs": stored}, indent=2))
    return stored


# ----------------------------------------------------------------------------------------------- refresh


@dataclasses.dataclass
class Refresh:
    run_id: str
    success: bool
    wall_seconds: float
    peak_tree_rss_mb: float
    steps: dict[str, dict]  # step -> seconds, peak_rss_mb (the step's process), rows, metadata numbers
    failures: list[str]


WORDS_KEPT = ("warm_started_from", "warm_start_reason")  # non-numeric metadata the report keeps


def _number(value):
    value = getattr(value, "value", value)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def run_refresh(
    source: Path, warm: Path, week: dt.date, work: Path, executor: str = "multiprocess", log=print
) -> Refresh:
    """Week `week`'s weekly_job on a copy of the warm state in `work`."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(warm, work)
    return run_week(source, work, week, executor, log)


def run_week(source: Path, work: Path, week: dt.date, executor: str = "multiprocess", log=print) -> Refresh:
    """Week `week`'s weekly_job on the warehouse and artefacts in `work`, as the schedule launches it."""
    import dagster as dg

    _set_environment(source, work)
    from hm_recs.runner import instance as dagster_instance

    instance = dagster_instance()
    from hm_recs.deploy import local_execution_config

    # the schedule's run config (one large-memory step at a time), quieter logs
    run_config = {**local_execution_config(), "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if executor == "in_process":
        run_config["execution"] = {"config": {"in_process": {}}}
    log(f"refresh: week {week}, {executor} executor, warehouse {work / 'warehouse.duckdb'}")
    with TreeMemory() as memory:
        started = time.perf_counter()
        result = dg.execute_job(
            dg.reconstructable(weekly_job),
            instance=instance,
            run_config=run_config,
            tags={"dagster/partition": week.isoformat()},
            raise_on_error=False,
        )
        wall = time.perf_counter() - started
    steps: dict[str, dict] = {}
    for event in result.all_events:
        if event.is_step_success:
            steps.setdefault(event.step_key, {})["seconds"] = event.event_specific_data.duration_ms / 1000
        elif event.event_type_value == "ASSET_MATERIALIZATION":
            step = steps.setdefault(event.step_key, {})
            meta = event.event_specific_data.materialization.metadata
            asset = event.event_specific_data.materialization.asset_key.to_user_string()
            if (rows := _number(meta.get("dagster/row_count"))) is not None:
                step.setdefault("rows", {})[asset] = rows
            for key, value in meta.items():
                if (number := _number(value)) is not None and "/" not in key:
                    step.setdefault("metadata", {})[f"{asset}.{key}"] = number
            for key in WORDS_KEPT:  # how a model step trained (warm or from scratch, and why), as it says
                if key in meta:
                    step.setdefault("metadata", {})[f"{asset}.{key}"] = str(getattr(meta[key], "value", meta[key]))
            if (peak := _number(meta.get("peak_rss_mb"))) is not None:
                step["peak_rss_mb"] = max(step.get("peak_rss_mb", 0.0), peak)
    failures = [
        f"{e.step_key}: {e.event_specific_data.error.message.strip().splitlines()[0]}"
        for e in result.all_events
        if e.is_step_failure
    ]
    failures += [
        f"check {e.event_specific_data.asset_key.to_user_string()}.{e.event_specific_data.check_name} failed"
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    return Refresh(result.run_id, result.success, round(wall, 1), memory.peak_mb, steps, failures)


def work_pipeline(source: Path, work: Path):
    """The CLI's Pipeline over the warehouse and artefacts in `work`."""
    from hm_recs.runner import Pipeline

    return Pipeline(
        str(source),
        warehouse=str(work / "warehouse.duckdb"),
        artefacts=str(work / "artefacts"),
        exports=str(work / "exports"),
    )


def score_result(source: Path, work: Path, week: dt.date, log=print) -> dict:
    """MAP@12 of what week `week` published, on week+1's purchases, with the baselines'."""
    from hm_recs.core.weeks import shift_weeks

    report = work_pipeline(source, work).evaluate_week(week, log=log)
    log(
        f"scored on {shift_weeks(week, 1)}: "
        + ", ".join(
            f"{name} {row['map_at_12']:.4f}" for name, row in report.items() if row.get("map_at_12") is not None
        )
    )
    return {name: {k: row[k] for k in ("map_at_12", "recall_at_12") if k in row} for name, row in report.items()}


def previous_week_score(source: Path, work: Path, week: dt.date) -> dict:
    """MAP@12 of what the warm-up's last week published, on week `week`'s purchases: the refresh's own
    `evaluation_report` (partition `week` scores week-1's lists), so one refresh scores two consecutive weeks."""
    report = work_pipeline(source, work).evaluation(week)
    return {name: {k: row[k] for k in ("map_at_12", "recall_at_12") if k in row} for name, row in report.items()}


# ----------------------------------------------------------------------------------------------- references


def scan_raw(source: Path, name: str):
    """polars' bare lazy read of a raw file (Parquet, else CSV as text)."""
    import polars as pl

    parquet = source / f"{name}.parquet"
    return pl.scan_parquet(parquet) if parquet.exists() else pl.scan_csv(source / f"{name}.csv", infer_schema=False)


def _meta(refresh: Refresh, step: str, suffix: str, default=None):
    for key, value in refresh.steps.get(step, {}).get("metadata", {}).items():
        if key.endswith(suffix):
            return value
    return default


def references(source: Path, work: Path, week: dt.date, refresh: Refresh, log=print) -> dict[str, dict]:
    """Bare operations on the same data and volumes as the stages (module docstring); seconds each."""
    import duckdb
    import numpy as np
    import polars as pl
    import torch

    from hm_recs.core.weeks import shift_weeks, week_end

    refs: dict[str, dict] = {}

    def scan_week():
        day = pl.col("t_dat").cast(pl.String).str.to_date()  # the H&M layout stores days as text
        return (
            scan_raw(source, "transactions_train")
            .filter(day.is_between(pl.lit(week), pl.lit(week_end(week))))
            .collect()
        )

    refs["scan_week"] = {
        "seconds": best_of(3, scan_week),
        "what": "polars scan of the raw file, date parse, week filter",
    }
    refs["scan_catalogue"] = {
        "seconds": best_of(
            3, lambda: (scan_raw(source, "customers").collect(), scan_raw(source, "articles").collect())
        ),
        "what": "polars read of customers + articles",
    }
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        first = shift_weeks(week, -25)
        history, read_seconds = timed(
            lambda: con.execute(
                "select t_dat, customer_id, article_id, price from hm.transactions where week between ? and ?",
                [first, week],
            ).pl()
        )

    def group_history():
        return history.group_by("customer_id").agg(
            pl.len(), pl.col("price").mean(), pl.col("t_dat").max(), pl.col("article_id").n_unique()
        )

    refs["history_group_by"] = {
        "seconds": read_seconds + best_of(2, group_history),
        "rows": history.height,
        "what": "DuckDB read of 26 weeks + polars group-by per customer",
    }

    # training: one epoch of a plain two-embedding dot product, in-batch softmax, as many pairs as trained on
    n_customers = history["customer_id"].n_unique()
    n_articles = scan_raw(source, "articles").select(pl.len()).collect().item()
    torch.manual_seed(0)

    def epoch(pairs: int, dim: int = 64, batch: int = 1024) -> float:
        users, items = torch.nn.Embedding(n_customers, dim), torch.nn.Embedding(n_articles, dim)
        optimiser = torch.optim.Adam([*users.parameters(), *items.parameters()], lr=1e-3)
        u = torch.randint(0, n_customers, (pairs,))
        a = torch.randint(0, n_articles, (pairs,))
        started = time.perf_counter()
        for i in range(0, pairs, batch):
            logits = users(u[i : i + batch]) @ items(a[i : i + batch]).T
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(logits.shape[0]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return time.perf_counter() - started

    # as many pairs as one of the stage's epochs trains on: its training examples, within the per-epoch budget
    from hm_recs.assets.training import SequenceModelConfig, TwoTowerModelConfig

    sequences_per_epoch = SequenceModelConfig().max_sequences_per_epoch
    pairs_per_epoch = TwoTowerModelConfig().max_pairs_per_epoch
    two_tower_pairs = int(_meta(refresh, "two_tower_global", "training_pairs", history.height) or history.height)
    purchases = int(_meta(refresh, "sequence_model", "training_purchases", history.height) or history.height)
    with_history = int(_meta(refresh, "sequence_model", "customers_with_history", 0) or 0)
    sequence_share = min(1.0, sequences_per_epoch / with_history) if with_history else 1.0
    for step, pairs in [
        ("two_tower_global", min(two_tower_pairs, pairs_per_epoch)),
        ("sequence_model", round(purchases * sequence_share)),
    ]:
        refs[f"epoch_{step}"] = {
            "seconds": epoch(max(pairs, 1024)),
            "pairs": pairs,
            "what": (
                f"one epoch of plain embedding forward/backward over {pairs:,} pairs (the stage's examples per epoch)"
            ),
        }

    def retrieval(k: int = 100, chunk: int = 16_384):
        customers = torch.randn(n_customers, 64)
        articles = torch.randn(n_articles, 64)
        for i in range(0, n_customers, chunk):
            torch.topk(customers[i : i + chunk] @ articles.T, k, dim=1)

    refs["retrieval_top100"] = {
        "seconds": best_of(1, retrieval),
        "what": f"{n_customers:,} x {n_articles:,} matmul + top-100, chunked",
    }

    candidate_rows = int(sum((refresh.steps.get("candidates", {}).get("rows") or {}).values()) or n_customers * 100)
    frame = pl.DataFrame(
        {
            "customer_id": np.random.default_rng(0).integers(0, n_customers, candidate_rows),
            "article_id": np.random.default_rng(1).integers(0, n_articles, candidate_rows),
            "score": np.random.default_rng(2).random(candidate_rows),
        }
    )
    refs["candidate_sort_head"] = {
        "seconds": best_of(1, lambda: frame.sort("customer_id", "score").group_by("customer_id").head(100)),
        "rows": candidate_rows,
        "what": "polars sort + per-customer head(100) of as many rows",
    }

    import lightgbm as lgb

    from hm_recs.core.ranking_features import FEATURE_COLUMNS

    scored_rows = int(_meta(refresh, "recommendations", "scored_rows", 0) or candidate_rows // 2)
    matrix = np.random.default_rng(3).random((min(scored_rows, 2_000_000), len(FEATURE_COLUMNS)), dtype=np.float32)
    training_rows = int(_meta(refresh, "ranker_model", "training_rows", 100_000) or 100_000)
    train_matrix = np.random.default_rng(4).random((training_rows, len(FEATURE_COLUMNS)), dtype=np.float32)
    labels = (np.random.default_rng(5).random(training_rows) < 0.1).astype(np.int32)
    params = {
        "objective": "binary",
        "num_leaves": 31,
        "learning_rate": 0.05,
        "num_threads": 1,
        "verbosity": -1,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.8,
        "force_row_wise": True,
    }
    booster, train_seconds = timed(lambda: lgb.train(params, lgb.Dataset(train_matrix, labels), num_boost_round=100))
    refs["lightgbm_train"] = {
        "seconds": train_seconds,
        "rows": training_rows,
        "what": "LightGBM, 100 rounds, same rows x features",
    }
    predict_seconds = best_of(1, lambda: booster.predict(matrix, num_threads=1))
    refs["lightgbm_predict"] = {
        "seconds": predict_seconds * scored_rows / max(matrix.shape[0], 1),
        "rows": scored_rows,
        "what": "LightGBM bare predict, same rows x features (100 trees)",
    }
    log("references: " + ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in refs.items()))
    return refs


STAGE_REFERENCES = {
    "raw_transactions": "scan_week",
    "validate_transactions": "scan_week",
    "raw_customers": "scan_catalogue",
    "raw_articles": "scan_catalogue",
    "validate_customers": "scan_catalogue",
    "validate_articles": "scan_catalogue",
    "customer_features": "history_group_by",
    "article_features": "history_group_by",
    "customer_segments": "history_group_by",
    "two_tower_data": "history_group_by",
    "article_content": "epoch_two_tower_global",
    "two_tower_global": "epoch_two_tower_global",
    "sequence_model": "epoch_sequence_model",
    "two_tower_candidates": "retrieval_top100",
    "sequence_candidates": "retrieval_top100",
    "candidates": "candidate_sort_head",
    "ranker_model": "lightgbm_train",
    "recommendations": "lightgbm_predict",
    "baseline_recommendations": "history_group_by",
    "evaluation_report": "history_group_by",
    "ranking_inputs": "history_group_by",  # new in issue 20: the 52-week aggregates the scorers each built before
}


def stage_reference(step: str) -> str | None:
    if step.startswith("two_tower_") and step not in STAGE_REFERENCES:
        return "epoch_two_tower_global"  # the per-segment two-towers
    return STAGE_REFERENCES.get(step)


# ----------------------------------------------------------------------------------------------- driver


def run_benchmark(
    scale: float,
    weeks: int = HM_WEEKS,
    warm_weeks: int = 1,
    history_weeks: int = SEGMENT_WEEKS,
    executor: str = "multiprocess",
    cache: Path = CACHE,
    with_references: bool = True,
    log=print,
    until: str = "result",
) -> dict:
    """Generate (cached), warm (cached), refresh week T = the second-to-last week, score it on the last week.
    `until="history"` stops once the warm-up's history is ingested (the long, code-independent part)."""
    from hm_recs.core.weeks import shift_weeks

    source = generated_source(scale, weeks, cache, log)
    available = source_weeks(source)
    week = available[-2]
    if until == "history":
        ingested_history(source, week, warm_weeks, history_weeks, cache, log)
        return {}
    warm = warm_state(source, week, warm_weeks, history_weeks, cache, log, executor)
    work = Path(tempfile.mkdtemp(prefix=f"hm_recs_full_scale_{scale:g}_"))
    refresh = run_refresh(source, warm, week, work, executor, log)
    report = {
        "scale": scale,
        "customers": max(round(HM_CUSTOMERS * scale), 500),
        "weeks": weeks,
        "week": str(week),
        "scored_week": str(shift_weeks(week, 1)),
        "executor": executor,
        "cpus": os.cpu_count(),
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "refresh": dataclasses.asdict(refresh),
        "warm": json.loads((warm / "warm.json").read_text()),
    }
    if refresh.success:
        report["map_at_12_previous_week"] = previous_week_score(source, work, week)
        report["map_at_12"] = score_result(source, work, week, log)
    if with_references:
        report["references"] = references(source, work, week, refresh, log)
        report["ratios"] = {
            step: round(figures["seconds"] / report["references"][ref]["seconds"], 2)
            for step, figures in refresh.steps.items()
            if "seconds" in figures and (ref := stage_reference(step)) and report["references"][ref]["seconds"] > 0
        }
    shutil.rmtree(work, ignore_errors=True)
    return report


def summarise(report: dict) -> None:
    refresh = report["refresh"]
    print(
        f"\n== weekly refresh at scale {report['scale']:g} ({report['customers']:,} customers), week {report['week']}, "
        f"{report['executor']} executor on {report['cpus']} cores =="
    )
    print(f"{'step':<28} {'seconds':>9} {'peak RSS MB':>12} {'rows':>12} {'reference':>24} {'x ref':>7}")
    for step, figures in sorted(refresh["steps"].items(), key=lambda kv: -kv[1].get("seconds", 0)):
        ref = stage_reference(step)
        ratio = report.get("ratios", {}).get(step)
        flag = " !" if ratio is not None and ratio > FLAG_RATIO else ""
        rows = sum((figures.get("rows") or {}).values()) if figures.get("rows") else ""
        print(
            f"{step:<28} {figures.get('seconds', 0):>9.1f} {figures.get('peak_rss_mb', ''):>12} {rows:>12} "
            f"{ref or '':>24} {'' if ratio is None else f'{ratio:.1f}':>7}{flag}"
        )
    print(
        f"whole refresh: {refresh['wall_seconds']:.0f} s wall ({refresh['wall_seconds'] / 60:.1f} min); peak RSS of the"
        f" process tree {refresh['peak_tree_rss_mb']:.0f} MB; success {refresh['success']}"
    )
    for built, figures in (report.get("warm", {}).get("figures") or {}).items():
        if "wall_seconds" in figures:  # a cached warm state of an older layout may lack the tree peak and steps
            peak, steps = figures.get("peak_tree_rss_mb", float("nan")), figures.get("steps") or {}
            print(
                f"warm-up week {built}: {figures['wall_seconds']:.0f} s wall, tree peak {peak:.0f} MB,"
                f" success {figures.get('success')}; its steps: "
                + ", ".join(f"{s} {f['seconds']:.0f} s" for s, f in steps.items() if f.get("seconds", 0) > 30)
            )
    for failure in refresh["failures"]:
        print(f"  {failure}")
    for key, scored_week in (("map_at_12_previous_week", report["week"]), ("map_at_12", report["scored_week"])):
        if key not in report:
            continue
        scores = {name: row.get("map_at_12") for name, row in report[key].items()}
        trending = scores.get("trending") or float("nan")
        print(
            "MAP@12 on "
            + scored_week
            + ": "
            + ", ".join(
                f"{name} {value:.4f} ({value / trending:.2f}x trending)"
                for name, value in scores.items()
                if value is not None and not name.startswith("source/")
            )
        )
    for step, figures in sorted(refresh["steps"].items()):
        words = {k.split(".", 1)[1]: v for k, v in (figures.get("metadata") or {}).items() if isinstance(v, str)}
        if words:
            print(f"  {step}: " + "; ".join(f"{k} {v}" for k, v in words.items()))
    if "references" in report:
        print(
            "references: "
            + "; ".join(f"{k} {v['seconds']:.2f} s ({v['what']})" for k, v in report["references"].items())
        )


def comparison_table(small: dict, large: dict) -> str:
    """Markdown: per step, seconds and peak RSS (the step process's) at both scales, the growth of the seconds,
    and the large run's ratio to its reference; then the whole refresh."""
    growth_of_customers = large["customers"] / small["customers"]
    lines = [
        (
            f"| step | s at {small['scale']:g} | s at {large['scale']:g} | growth (customers ×"
            f" {growth_of_customers:.0f}) | peak RSS MB at {large['scale']:g} | rows at {large['scale']:g} | reference"
            " | × reference |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    steps = large["refresh"]["steps"]
    for step, figures in sorted(steps.items(), key=lambda kv: -kv[1].get("seconds", 0)):
        before = small["refresh"]["steps"].get(step, {}).get("seconds")
        seconds = figures.get("seconds", 0)
        ratio = large.get("ratios", {}).get(step)
        rows = sum((figures.get("rows") or {}).values()) if figures.get("rows") else ""
        lines.append(
            f"| {step} | {'' if before is None else f'{before:,.1f}'} | {seconds:,.1f} | "
            f"{'' if not before else f'{seconds / before:.1f}'} | {figures.get('peak_rss_mb', ''):,} | "
            f"{rows if rows == '' else f'{rows:,}'} | {stage_reference(step) or ''} | "
            f"{'' if ratio is None else f'{ratio:.1f}'}{' !' if ratio is not None and ratio > FLAG_RATIO else ''} |"
        )
    a, b = small["refresh"], large["refresh"]
    lines.append(
        f"| **whole refresh (wall)** | {a['wall_seconds']:,.0f} | {b['wall_seconds']:,.0f} | "
        f"{b['wall_seconds'] / a['wall_seconds']:.1f} | tree peak {a['peak_tree_rss_mb']:,.0f} → "
        f"{b['peak_tree_rss_mb']:,.0f} | | | |"
    )
    return "\n".join(lines)


def smoke(source: Path, warm: Path, week: dt.date, work: Path, out: Path) -> int:
    """The benchmark's code path on a given source and warm state (`hm_recs_tests/e2e/test_full_scale_smoke.py` runs
    it at test size): the refresh in process, its score and the references, as JSON in `out`."""
    lines: list[str] = []
    refresh = run_refresh(source, warm, week, work, executor="in_process", log=lines.append)
    report = {"refresh": dataclasses.asdict(refresh)}
    if refresh.success:
        report["previous_week_scores"] = previous_week_score(source, work, week)
        report["scores"] = score_result(source, work, week, log=lines.append)
        report["references"] = references(source, work, week, refresh, log=lines.append)
        report["unreferenced"] = [step for step in refresh.steps if stage_reference(step) is None]
    out.write_text(json.dumps(report, default=str))
    return 0 if refresh.success else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, nargs="+", default=[1.0], help="shares of H&M's size, e.g. 0.1 1.0")
    parser.add_argument("--weeks", type=int, default=HM_WEEKS)
    parser.add_argument("--warm-weeks", type=int, default=1, help="whole weeks built before the refreshed one")
    parser.add_argument("--history-weeks", type=int, default=SEGMENT_WEEKS)
    parser.add_argument("--executor", choices=["multiprocess", "in_process"], default="multiprocess")
    parser.add_argument(
        "--until",
        choices=["history", "result"],
        default="result",
        help="history: only generate the data and ingest the warm-up's history weeks (resumable)",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("SMALL", "LARGE"),
        type=float,
        help="print the markdown table of two stored results (benchmarks/results) and exit",
    )
    parser.add_argument(
        "--smoke",
        nargs=5,
        metavar=("SOURCE", "WARM", "WEEK", "WORK", "JSON"),
        help="run the code path on a given source and warm state, write what it measured as JSON and exit",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        source, warm, week, work, out = args.smoke
        return smoke(Path(source), Path(warm), dt.date.fromisoformat(week), Path(work), Path(out))
    if args.compare:
        small, large = (json.loads((RESULTS / f"full_scale_{scale:g}.json").read_text()) for scale in args.compare)
        print(comparison_table(small, large))
        return 0
    for scale in args.scale:
        report = run_benchmark(
            scale,
            args.weeks,
            args.warm_weeks,
            args.history_weeks,
            args.executor,
            log=lambda m: print(m, flush=True),
            until=args.until,
        )
        if args.until != "result":
            continue
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"full_scale_{scale:g}.json").write_text(json.dumps(report, indent=2, default=str))
        summarise(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
