"""`hm-recs`: demo, synthetic data, one week, backtest. Every command runs the real Dagster asset graph."""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

from hm_recs.core.weeks import parse_week, shift_weeks
from hm_recs.partitions import weekly_partitions
from hm_recs.settings import DEFAULT_ARTEFACTS, DEFAULT_EXPORTS, DEFAULT_WAREHOUSE, HOME
from hm_recs.storage.duckdb_warehouse import DuckDBWarehouse
from hm_recs.storage.location import is_s3

DEMO_SOURCE = f"{HOME}/demo_data"


class UsageError(Exception):
    """A user's mistake (a missing source folder, a week that is no partition): one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own mistakes: one line too, not usage and error
        self.exit(2, f"{self.prog}: error: {message}\n")


def partition_week_arg(value: str):
    """A week the user named, as a date: a Wednesday and one of the weekly partitions (`UsageError` otherwise)."""
    try:
        week = parse_week(value.strip())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    first = parse_week(weekly_partitions.get_first_partition_key())
    last = parse_week(weekly_partitions.get_last_partition_key())
    if not first <= week <= last:
        raise UsageError(
            f"week {week} is not a partition: partitions run from {first} to {last}, the latest week that has ended"
        )
    return week


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cmd_synth(args: argparse.Namespace) -> int:
    from hm_recs.synthetic import generate, profile_config, write

    started = time.perf_counter()
    sizes = {
        "customers": args.customers,
        "weeks": args.weeks,
        "seed": args.seed,
        "image_dim": getattr(args, "image_dim", 0),
    }
    if args.purchase_rate is not None:
        sizes["purchase_rate"] = args.purchase_rate
    data = generate(profile_config(getattr(args, "profile", "fashion"), **sizes))
    paths = write(data, args.out, args.format)
    print(
        f"wrote a {getattr(args, 'profile', 'fashion')} shop: {data.articles.height} articles, {data.customers.height} "
        f"customers, {data.transactions.height} transactions in {time.perf_counter() - started:.1f} s:"
    )
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0


def _pipeline(args: argparse.Namespace):
    from hm_recs.runner import Pipeline

    if not is_s3(args.source) and not Path(args.source).is_dir():
        raise UsageError(
            f"source folder {args.source} does not exist (give a folder or s3://bucket/prefix in the H&M layout)"
        )
    return Pipeline(
        args.source,
        warehouse=args.warehouse,
        artefacts=args.artefacts,
        source_format=args.format,
        log_level="DEBUG" if getattr(args, "verbose", False) else "WARNING",
        exports=getattr(args, "exports", None) or DEFAULT_EXPORTS,
        new_delivery=getattr(args, "new_delivery", False),
        history_weeks=getattr(args, "history_weeks", None),
    )


def _print_rows(pipeline, week) -> None:
    print(f"rows per stage (partition {week}):")
    for name, n in pipeline.stage_rows(week).items():
        print(f"  {name:<26} {n:>10,}")


def cmd_run(args: argparse.Namespace) -> int:
    from hm_recs.runner import PipelineError

    week = partition_week_arg(args.week)
    pipeline = _pipeline(args)
    try:
        build = pipeline.build_week(week)
    except PipelineError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    _print_rows(pipeline, week)
    serving = pipeline.serving(week)
    if build.fallback_run_id:
        print(
            f"WARNING: the model chain failed in run {build.run_id} ({build.failures}); week {shift_weeks(week, 1)} "
            f"was published by the fallback run {build.fallback_run_id}",
            file=sys.stderr,
        )
    print(
        f"recommendations for week {shift_weeks(week, 1)} served by {serving['served_by']} ({serving['reason']}): "
        f"table hm.recommendations in {pipeline.warehouse.describe()}"
    )
    return 0


def backtest(pipeline, weeks, log=print, warmup_weeks: int = 0) -> dict:
    """Build each week from data up to it, score it on the next week; the report `hm-recs backtest` writes.
    First the `warmup_weeks` weeks before the first one are built, unscored, so each scored week sees the
    schedule's steady state (earlier weeks' labelled candidates and validations stored)."""
    from hm_recs.runner import PipelineError

    started = time.perf_counter()
    per_week: dict[str, dict] = {}
    serving: dict[str, dict] = {}
    refused: dict[str, str] = {}
    for week in (shift_weeks(weeks[0], -i) for i in range(warmup_weeks, 0, -1)) if weeks else ():
        log(f"warm-up week {week} (not scored):")
        try:
            pipeline.build_week(week, log)
        except PipelineError as exc:  # later weeks still read its stored tables
            log(f"  warm-up week {week} did not publish: {str(exc).splitlines()[-1].strip()}")
    for week in weeks:
        log(f"backtest week {week}:")
        try:
            pipeline.build_week(week, log)
        except PipelineError as exc:  # nothing could be published for the week (e.g. a failed data gate)
            refused[week.isoformat()] = str(exc).splitlines()[-1].strip()
            log(f"  week {week} did not publish: {refused[week.isoformat()]}")
        serving[week.isoformat()] = pipeline.serving(week)
        log(
            f"  week {shift_weeks(week, 1)} served by {serving[week.isoformat()]['served_by']}: "
            f"{serving[week.isoformat()]['reason']}"
        )
        per_week[week.isoformat()] = pipeline.evaluate_week(week, log)
    recommenders = sorted(
        {r for scores in per_week.values() for r in scores}, key=lambda r: (r != "model", r != "ranker", r)
    )
    mean, spread = {}, {}
    for r in recommenders:
        names = dict.fromkeys(
            m for s in per_week.values() if r in s for m in s[r]
        )  # the metrics, and rank coverage where measured
        values = {m: [s[r][m] for s in per_week.values() if r in s and m in s[r] and s[r][m] == s[r][m]] for m in names}
        mean[r] = {m: (statistics.fmean(v) if v else None) for m, v in values.items()}
        spread[r] = {m: (statistics.stdev(v) if len(v) > 1 else 0.0) for m, v in values.items()}
    return {
        "source": pipeline.resources["raw_source"].uri,
        "weeks_note": "each key W: recommendations built from data up to W, scored on week W+1",
        "warmup_weeks": warmup_weeks,
        "weeks": per_week,
        "mean": mean,
        "spread": spread,
        "serving": serving,  # per week: who served (ranker or a baseline), why, and the ranker's gate figures
        "weeks_not_published": refused,  # `model` is missing from those weeks' scores
        "stages": pipeline.figures.as_dict(),
        "seconds_total": round(time.perf_counter() - started, 1),
        "peak_rss_mb_process": _peak_rss_mb(),
    }


def _print_scores(report: dict) -> None:
    print(
        f"{'recommender':<20} {'MAP@12':>8} {'± sd':>8} {'recall@12':>10} {'coverage':>9} {'novelty':>8} {'price':>7}"
    )
    for r, m in report["mean"].items():
        sd = report["spread"][r]["map_at_12"]
        print(
            f"{r:<20} {m['map_at_12'] or 0:>8.4f} {sd:>8.4f} {m['recall_at_12'] or 0:>10.4f} "
            f"{m['coverage'] or 0:>9.4f} {m['novelty'] or 0:>8.2f} {m['mean_price'] or 0:>7.4f}"
        )


def cmd_backtest(args: argparse.Namespace) -> int:
    from hm_recs.runner import PipelineError

    weeks = [partition_week_arg(w) for w in args.weeks.split(",") if w.strip()]
    if not weeks:
        raise UsageError("--weeks names no week")
    pipeline = _pipeline(args)
    try:
        report = backtest(pipeline, weeks, warmup_weeks=args.warmup_weeks)
    except PipelineError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2, default=str))
    _print_scores(report)
    for week, served in report["serving"].items():
        gate = served.get("ranker_gate") or {}
        figures = (
            f" (gate: ranker {gate['ranker_map_at_12']:.4f} vs {gate['best_baseline']} "
            f"{gate['baseline_map_at_12'][gate['best_baseline']]:.4f} on {gate['validation_buyers']} buyers)"
            if gate.get("ranker_map_at_12") is not None
            else ""
        )
        print(f"week {week}: served by {served['served_by']}{figures}")
    print(f"report: {args.report}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hm_recs.runner import PipelineError

    source = Path(args.source)
    regenerated = _demo_data(args, source)
    # new demo data in the same folder is that folder's new delivery: the weeks stored from the old data go
    pipeline = _pipeline(
        argparse.Namespace(
            source=str(source),
            warehouse=args.warehouse,
            artefacts=args.artefacts,
            format=None,
            verbose=args.verbose,
            exports=args.exports,
            new_delivery=args.new_delivery or regenerated,
            history_weeks=args.history_weeks,
        )
    )
    weeks = pipeline.source_weeks()
    latest, backtest_week = weeks[-1], weeks[-2]
    started = time.perf_counter()
    try:
        print(f"backtest: recommendations built at {backtest_week}, scored on {latest}")
        scores = backtest(pipeline, [backtest_week], warmup_weeks=args.warmup_weeks)
        print(f"publishing: recommendations built at {latest} for week {shift_weeks(latest, 1)}")
        pipeline.build_week(latest)
    except PipelineError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    _print_demo_summary(pipeline, scores, backtest_week, latest, started)
    _print_demo_outputs(pipeline, latest)
    return 0


def _demo_data(args: argparse.Namespace, source: Path) -> bool:
    """(Re)generate the demo shop in ``source`` unless its marker names the same sizes; whether it did."""
    marker = source / "synthetic.json"
    # the profile names the generator's version too: demo data written before the profiles is regenerated
    wanted = {
        "customers": args.customers,
        "weeks": args.weeks,
        "seed": args.seed,
        "purchase_rate": args.purchase_rate,
        "profile": "fashion",
    }
    regenerated = not marker.exists() or json.loads(marker.read_text()) != wanted
    if regenerated:
        print(f"generating demo data ({args.customers} customers x {args.weeks} weeks) in {source}")
        cmd_synth(argparse.Namespace(out=str(source), format="csv", **wanted))
        marker.write_text(json.dumps(wanted))
    return regenerated


def _print_demo_summary(pipeline, scores: dict, backtest_week, latest, started: float) -> None:
    """The weeks ingested and built, the latest week's rows per stage and the backtest's scores."""
    built = sorted(pipeline.stored_weeks())
    print("\n=== hm_recs demo summary ===")
    print(
        f"weeks ingested: {len(built)} ({built[0]} .. {built[-1]}); full graph built for {backtest_week} and {latest} "
        f"in {time.perf_counter() - started:.0f} s"
    )
    _print_rows(pipeline, latest)
    print(
        f"\nMAP@12 on backtest week {latest} (recommendations built from data up to {backtest_week}, served by "
        f"{scores['serving'][backtest_week.isoformat()]['served_by']}):"
    )
    _print_scores(scores)


def _print_demo_outputs(pipeline, latest) -> None:
    """Where the published week's recommendations are: the warehouse table, the CRM files and the UI."""
    exports = pipeline.resources["exports"].location()
    latest_export = exports.read_bytes("LATEST").decode().strip()
    warehouse = pipeline.warehouse
    local = isinstance(warehouse, DuckDBWarehouse)  # a file to open (Parquet on S3 is queried through the resource)
    print(
        f"\nrecommendations for week {shift_weeks(latest, 1)}: table hm.recommendations in "
        f"{Path(warehouse.path).resolve() if local else warehouse.describe()}"
    )
    if local:
        print(
            f"  e.g. .venv/bin/python -c \"import duckdb; print(duckdb.connect('{warehouse.path}', read_only=True)"
            f'.sql(\\"select * from hm.recommendations where week = \'{shift_weeks(latest, 1)}\' limit 12\\"))"'
        )
    print(
        f"files for CRM jobs: {exports.describe(latest_export)}/ (recommendations.parquet, recommendations.csv in the "
        f"Kaggle layout, manifest.json, _SUCCESS; {exports.describe('LATEST')} names the newest complete week)"
    )
    print("open the Dagster UI on it: make ui   (then http://127.0.0.1:3000)")


def _add_target(p: argparse.ArgumentParser, source_required: bool = True) -> None:
    """The options of the commands that build weeks: where the source, warehouse, registry and exports live."""
    p.add_argument(
        "--source",
        required=source_required,
        default=DEMO_SOURCE,
        help="raw source: a folder or s3://bucket/prefix (H&M layout, CSV or Parquet)",
    )
    p.add_argument("--format", choices=["csv", "parquet"], default=None, help="source format (default: detect)")
    p.add_argument(
        "--warehouse",
        default=DEFAULT_WAREHOUSE,
        help="DuckDB file, or s3://bucket/prefix for Parquet objects on S3",
    )
    p.add_argument(
        "--artefacts",
        default=DEFAULT_ARTEFACTS,
        help="model registry (models, their decisions, training data): folder or s3://bucket/prefix",
    )
    p.add_argument(
        "--exports",
        default=DEFAULT_EXPORTS,
        help="where CRM jobs read the weekly files: folder or s3://bucket/prefix",
    )
    p.add_argument(
        "--history-weeks",
        type=int,
        default=26,
        help="weeks of history every stage of a build reads (and the build ingests first)",
    )
    p.add_argument("--verbose", action="store_true", help="show Dagster's step logs")
    p.add_argument(
        "--new-delivery",
        action="store_true",
        help="the source is the new delivery of the shop whose weeks the warehouse holds: re-ingest them from it",
    )


def _add_synth_command(sub: argparse._SubParsersAction) -> None:
    """`hm-recs synth`: its sizes, output, seed, shop profile and image vectors."""
    p = sub.add_parser("synth", help="write deterministic synthetic data in the H&M layout")
    p.add_argument("--customers", type=int, required=True)
    p.add_argument("--weeks", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--profile",
        choices=["fashion", "grocery"],
        default="fashion",
        help="shop profile: fashion (H&M-like, the default) or grocery (re-buys about half of the purchases, "
        "5-15 articles per attribute combination, customers who buy most weeks); docs/benchmarks.md",
    )
    p.add_argument(
        "--purchase-rate",
        type=float,
        default=None,
        help="transaction rows per customer-week (default: the profile's; fashion 0.22 as H&M, grocery 2.2)",
    )
    p.add_argument(
        "--image-dim",
        type=int,
        default=0,
        help="also write article_images.<format>: image vectors of this length with planted visual taste",
    )
    p.set_defaults(fn=cmd_synth)


def _add_week_commands(sub: argparse._SubParsersAction) -> None:
    """`hm-recs run`, `backtest` and `demo`: the commands that build weeks of the asset graph."""
    p = sub.add_parser("run", help="build one week (ingesting missing history weeks first)")
    _add_target(p)
    p.add_argument("--week", required=True, help="the week's Wednesday, YYYY-MM-DD")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("backtest", help="build each week from data up to it and score it on the next week")
    _add_target(p)
    p.add_argument("--weeks", required=True, help="comma-separated Wednesdays")
    p.add_argument("--report", required=True, help="JSON report path")
    p.add_argument(
        "--warmup-weeks",
        type=int,
        default=3,
        help="weeks built (not scored) before the first, as a running schedule would have them",
    )
    p.set_defaults(fn=cmd_backtest)

    p = sub.add_parser("demo", help="generate demo data and build + backtest the latest weeks")
    _add_target(p, source_required=False)
    # Livelier than H&M's 0.22 rows per customer-week so that the models have enough purchases to learn
    # from in a demo-sized population (their gates refuse models that do not beat popularity).
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--weeks", type=int, default=12)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--purchase-rate", type=float, default=1.0)
    p.add_argument("--warmup-weeks", type=int, default=1, help="weeks built (not scored) before the backtest week")
    p.set_defaults(fn=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="hm-recs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_synth_command(sub)
    _add_week_commands(sub)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except UsageError as exc:
        print(f"hm-recs {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
