"""A backfill of consecutive weeks through the real `weekly_job` (issue 20): seconds of each week, with the
warm-started weeks told apart from the full-retrain ones, and what each week published scored.

    python benchmarks/backfill.py [--scale 0.1] [--weeks-built 8] [--executor multiprocess|in_process]

1. Data: the generator at `scale` x H&M's size (`full_scale.generated_source`, cached), and the 52 weeks
   before the first built week ingested and validated (`full_scale.ingested_history`, cached, resumable).
2. The cached history copied to a scratch folder, then each of the last `weeks-built` weeks before the data's
   last week built in order by `weekly_job` as the schedule launches it (Dagster's multiprocess executor, a
   persistent instance): the week ingests its own raw files, and its models warm-start from the week before
   or retrain from scratch as `pipeline_settings.full_retrain_weeks` says (default 4: weeks 1 and 5 of 8 are
   full retrains, the first because nothing is stored before it).
3. Per week: wall seconds, the process tree's peak RSS, each step's seconds, how each torch model trained
   (`warm_started_from` and the reason, from its metadata) and the MAP@12 of the week's published lists on
   the next week's purchases with the trending baseline's (`evaluation_report` of the next week: the next
   built week's own, and for the last week a scoring run that ingests the data's last week).

Writes benchmarks/results/backfill_<scale>.json and prints one table (figures in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
if __name__ == "__main__":
    os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="hm_recs_bench_home_"))
    # the multiprocess executor's step processes rebuild the job from `full_scale.weekly_job`: they import it too
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")]))

from full_scale import (  # noqa: E402
    CACHE,
    HM_WEEKS,
    RESULTS,
    SEGMENT_WEEKS,
    TreeMemory,
    generated_source,
    ingested_history,
    previous_week_score,
    run_week,
    score_result,
    source_weeks,
    warm_folder,
)

FULL_RETRAIN = "none (full retrain)"
NOT_MODELS = ("two_tower_data", "two_tower_candidates")


def torch_steps(steps: dict[str, dict]) -> list[str]:
    """The torch model steps: the content encoder, the sequence model, the global and the segments' two-towers."""
    return [
        s
        for s in steps
        if s in ("article_content", "sequence_model") or (s.startswith("two_tower_") and s not in NOT_MODELS)
    ]


def how_trained(steps: dict[str, dict]) -> dict[str, str]:
    """Per torch step: "warm from <week>" or "full retrain", with the step's reason."""
    out = {}
    for step in torch_steps(steps):
        meta = steps[step].get("metadata") or {}
        started = meta.get(f"{step}.warm_started_from")
        reason = meta.get(f"{step}.warm_start_reason", "")
        if started is not None:
            out[step] = ("full retrain" if started == FULL_RETRAIN else f"warm from {started}") + f": {reason}"
    return out


def week_row(week: dt.date, refresh, trained: dict[str, str]) -> dict:
    steps = refresh.steps
    torch_seconds = sum(steps[s].get("seconds", 0.0) for s in torch_steps(steps))
    warm = [s for s, how in trained.items() if how.startswith("warm")]
    return {
        "week": str(week),
        "success": refresh.success,
        "failures": refresh.failures,
        "wall_seconds": refresh.wall_seconds,
        "peak_tree_rss_mb": refresh.peak_tree_rss_mb,
        "kind": "warm-started" if len(warm) == len(trained) and trained else ("full retrain" if not warm else "mixed"),
        "torch_step_seconds": round(torch_seconds, 1),
        "trained": trained,
        "steps": {s: {"seconds": f.get("seconds"), "peak_rss_mb": f.get("peak_rss_mb")} for s, f in steps.items()},
    }


def map_and_trending(scores: dict) -> tuple[float | None, float | None]:
    return (scores.get("model") or {}).get("map_at_12"), (scores.get("trending") or {}).get("map_at_12")


def run_backfill(
    scale: float,
    weeks_built: int,
    executor: str = "multiprocess",
    weeks: int = HM_WEEKS,
    history_weeks: int = SEGMENT_WEEKS,
    cache: Path = CACHE,
    log=print,
) -> dict:
    from hm_recs.core.weeks import shift_weeks

    source = generated_source(scale, weeks, cache, log)
    last = source_weeks(source)[-2]  # the data's last week scores it
    built = [shift_weeks(last, -i) for i in range(weeks_built - 1, -1, -1)]
    ingested_history(source, built[0], 0, history_weeks, cache, log)
    work = Path(tempfile.mkdtemp(prefix=f"hm_recs_backfill_{scale:g}_"))
    shutil.rmtree(work)
    shutil.copytree(warm_folder(source, built[0], 0, history_weeks, cache), work)
    rows, started = [], time.perf_counter()
    with TreeMemory() as memory:
        for week in built:
            refresh = run_week(source, work, week, executor, log)
            row = week_row(week, refresh, how_trained(refresh.steps))
            if rows and refresh.success:  # this week's evaluation scores the week before's lists
                rows[-1]["map_at_12"], rows[-1]["trending_map_at_12"] = map_and_trending(
                    previous_week_score(source, work, week)
                )
            rows.append(row)
            log(
                f"week {week}: {row['kind']}, {row['wall_seconds']:.0f} s wall, torch steps"
                f" {row['torch_step_seconds']:.0f} s, success {row['success']}"
            )
        if rows[-1]["success"]:
            rows[-1]["map_at_12"], rows[-1]["trending_map_at_12"] = map_and_trending(
                score_result(source, work, built[-1], log)
            )
    shutil.rmtree(work, ignore_errors=True)
    return {
        "scale": scale,
        "weeks_built": weeks_built,
        "executor": executor,
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "peak_tree_rss_mb": memory.peak_mb,
        "weeks": rows,
    }


def table(report: dict) -> str:
    lines = [
        "| week | models | wall s | torch steps s | tree peak MiB | MAP@12 model (× trending) | every check |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["weeks"]:
        model, trending = row.get("map_at_12"), row.get("trending_map_at_12")
        score = "" if model is None else f"{model:.4f}" + (f" ({model / trending:.2f})" if trending else "")
        lines.append(
            f"| {row['week']} | {row['kind']} | {row['wall_seconds']:,.0f} | {row['torch_step_seconds']:,.0f} | "
            f"{row['peak_tree_rss_mb']:,.0f} | {score} | {'yes' if row['success'] and not row['failures'] else 'no'} |"
        )
    for kind in ("full retrain", "warm-started"):
        walls = [r["wall_seconds"] for r in report["weeks"] if r["kind"] == kind and r["success"]]
        if walls:
            lines.append(f"| mean of {len(walls)} {kind} weeks | | {sum(walls) / len(walls):,.0f} | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--weeks-built", type=int, default=8)
    parser.add_argument("--executor", choices=["multiprocess", "in_process"], default="multiprocess")
    parser.add_argument("--weeks", type=int, default=HM_WEEKS, help="weeks of generated data")
    parser.add_argument("--history-weeks", type=int, default=SEGMENT_WEEKS, help="weeks ingested before the first")
    args = parser.parse_args(argv)
    report = run_backfill(
        args.scale, args.weeks_built, args.executor, args.weeks, args.history_weeks, log=lambda m: print(m, flush=True)
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"backfill_{args.scale:g}.json").write_text(json.dumps(report, indent=2, default=str))
    print(table(report))
    for row in report["weeks"]:
        for step, how in row["trained"].items():
            print(f"  {row['week']} {step}: {how}")
        for failure in row["failures"]:
            print(f"  {row['week']} {failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
