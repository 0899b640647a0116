"""Peer comparison (issue 4): our two-tower and sequence models against implicit's ALS and the trending baseline,
on the same backtest weeks, the same candidate articles and the same metrics.

    python benchmarks/peer_comparison.py [--data real|synthetic|both] [--weeks 4]
                                         [--methods two_tower,sequence,als,trending]
    make bench-peers   # installs the `bench` extra (implicit) and runs both datasets

For each scored week W (the last `--weeks` weeks of the source) every method is built from the validated data up
to the Tuesday of W-1 (partition B = W-1, `history_weeks` weeks of transactions, as the pipeline reads them) and
scored on week W's purchases:
- retrieval recall@100: top-100 per customer among the candidate articles = the articles sold in the 4 weeks up
  to B (`two_tower_candidates`' definition), the same set for every method;
- MAP@12 (Kaggle, `core.metrics.map_at_k`) of the first 12 of those 100, by the method's own score.
Both are over every customer who bought in W; customers without a purchase in the history window get trending's
list from every method (a deployed system's fallback, and what keeps the rows comparable). The figures over the
buyers with history only are reported beside them.

Each method is trained and ranked in its own spawned process, so its peak RSS (the child's ru_maxrss: interpreter,
its libraries, the week's tables, training and ranking) is its own. Seconds (wall and CPU): `core.profiling.StageMeter`
around training (content encoder and feature snapshots included for our models) and around ranking.
Writes benchmarks/results/peer_comparison_<data>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from hm_recs.core import baselines, metrics
from hm_recs.core.profiling import StageMeter, current_rss_bytes
from hm_recs.core.source import (
    SNAPSHOT_FILES,
    history_file,
    read_raw,
    resolve,
    weeks_in_listing,
    weeks_with_transactions,
)
from hm_recs.core.validation import RuleContext, split
from hm_recs.core.weeks import shift_weeks, week_end

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REAL = ROOT.parent / "shared" / "data" / "hm_real_sample"
METHODS = ("two_tower", "sequence", "als", "trending")
FALLBACK = "trending"
"""The method whose list customers without history get, from every method."""


@dataclass(frozen=True)
class AlsConfig:
    factors: int = 64
    iterations: int = 15
    regularization: float = 0.01
    # "confidence": Hu, Koren & Volinsky's 1 + alpha * purchase count (their alpha); "bm25": implicit's bm25_weight
    # on the article x customer matrix (K1, B of the library's examples). Chosen on a week before the scored ones:
    # confidence won clearly and alpha 10..100 hardly mattered (docs/benchmarks.md).
    weighting: str = "confidence"
    alpha: float = 40.0
    bm25_k1: float = 100.0
    bm25_b: float = 0.8
    weeks: int | None = None  # purchases of the last N weeks up to B only (None: the whole history window)


@dataclass(frozen=True)
class PeerConfig:
    history_weeks: int = 26  # the pipeline's ModelConfig.history_weeks
    label_weeks: int = 4  # two-tower training weeks (ModelConfig.label_weeks)
    on_sale_weeks: int = 4  # candidate articles: sold in the last N weeks up to B (ModelConfig.on_sale_weeks)
    retrieval_k: int = 100
    map_k: int = metrics.K
    seed: int = 0
    als: AlsConfig = field(default_factory=AlsConfig)


# -- data: the validated tables, as the pipeline's validation stage stores them ---------------------------------


def source_weeks(source: Path) -> list[dt.date]:
    """Weeks a local source folder has transactions for (weekly files and/or the history file)."""
    names = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
    weeks = set(weeks_in_listing(names))
    history = history_file(names)
    if history:
        weeks |= set(weeks_with_transactions(source / history.name, history))
    return sorted(weeks)


def validated_tables(source: Path, weeks: list[dt.date]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Customers, articles (sorted by article_id) and the transactions of `weeks`: read and split by the same
    core functions as the ingestion and validation assets (quarantined rows dropped), without the warehouse."""
    names = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
    snapshot = {}
    for table in SNAPSHOT_FILES:
        file = resolve(table, names)
        snapshot[table] = split(table, read_raw(source / file.name, file), RuleContext()).clean
    customers, articles = snapshot["customers"], snapshot["articles"].sort("article_id")
    parts = []
    for week in weeks:
        file = resolve("transactions", names, week)
        ctx = RuleContext(
            week=week, known_article_ids=articles["article_id"], known_customer_ids=customers["customer_id"]
        )
        parts.append(split("transactions", read_raw(source / file.name, file, week=week), ctx).clean)
    return customers, articles, pl.concat(parts).sort("t_dat")


# -- one method, in its own process ---------------------------------------------------------------------------


@contextlib.contextmanager
def stage(figures: dict, name: str):
    """Wall seconds, CPU seconds (every thread of the process: steadier than wall time on a shared machine) and
    peak RSS sampled during the block, into figures[f"{name}_..."]."""
    cpu = time.process_time()
    with StageMeter() as meter:
        yield
    figures.update(
        {
            f"{name}_seconds": meter.seconds,
            f"{name}_cpu_seconds": time.process_time() - cpu,
            f"{name}_peak_rss_mb": meter.peak_rss_mb,
        }
    )


def _log(method: str):
    return lambda message: print(f"    [{method}] {message}", flush=True)


def _content_vectors(customers, articles, history, config: PeerConfig, log):
    """As `article_content` at partition B: the content encoder trained on the history up to B."""
    from hm_recs.models.common import IdIndex, encode_purchases
    from hm_recs.models.configs import ContentConfig
    from hm_recs.models.content import train_content_encoder

    purchases = encode_purchases(history, IdIndex.of(customers["customer_id"]), IdIndex.of(articles["article_id"]))
    model = train_content_encoder(articles, purchases, ContentConfig(seed=config.seed), log=log)
    return model.vectors(articles)


def _two_tower(
    customers, articles, history, built: dt.date, candidates, scored, config: PeerConfig, figures: dict, log
):
    """As `article_content`, `two_tower_global` and `two_tower_candidates` at partition B (the global model)."""
    from hm_recs.models.common import popularity_retrieval
    from hm_recs.models.configs import TwoTowerConfig
    from hm_recs.models.training_data import TwoTowerData
    from hm_recs.models.two_tower import evaluate, load, top_k, train_two_tower

    with stage(figures, "train"):
        with stage(figures, "content"):
            vectors = _content_vectors(customers, articles, history, config, log)
        data = TwoTowerData.build(history, customers, articles, built, vectors, label_weeks=config.label_weeks)
        result = train_two_tower(data.train_inputs, data.labels, TwoTowerConfig(seed=config.seed), log=log)
    # the pipeline's gate on the held-out week B (outside the timing: the pipeline evaluates it every epoch)
    gate = evaluate(result.model, data.held_out)
    bar = popularity_retrieval(
        data.labels.filter(pl.col("snapshot") >= config.label_weeks - 2), data.held_out, len(data.articles)
    )
    figures["gate"] = {
        "recall_at_100": gate.recall_at_k,
        "popularity_recall_at_100": bar.recall_at_k,
        "auc": gate.auc,
        "popularity_auc": bar.auc,
        "passes": gate.recall_at_k > bar.recall_at_k and gate.auc > bar.auc,
    }
    with stage(figures, "rank"):
        model = load(result.state(), data.serving_inputs)
        customer_idx = data.customers.encode(scored, "customer_id", "customer_idx")["customer_idx"].sort()
        article_idx = data.articles.encode(candidates, "article_id", "article_idx")["article_idx"].sort()
        ranked = top_k(model, customer_idx.to_numpy().copy(), article_idx.to_numpy().copy(), k=config.retrieval_k)
        ranked = ranked.with_columns(
            data.customers.decode(ranked["customer_idx"]).alias("customer_id"),
            data.articles.decode(ranked["article_idx"]).alias("article_id"),
        )
    return ranked


def _sequence(customers, articles, history, built: dt.date, candidates, scored, config: PeerConfig, figures: dict, log):
    """The global sequence model trained on every purchase up to B's Tuesday, ranking as of W's Wednesday."""
    import torch

    from hm_recs.models.common import IdIndex, encode_purchases
    from hm_recs.models.configs import SequenceConfig
    from hm_recs.models.sequence import top_k
    from hm_recs.models.sequence_data import build_sequences
    from hm_recs.models.sequence_training import train_sequence_model

    cutoff = week_end(built)
    sequence_config = SequenceConfig(seed=config.seed)
    with stage(figures, "train"):
        with stage(figures, "content"):
            vectors = _content_vectors(customers, articles, history, config, log)
        customer_index, article_index = IdIndex.of(customers["customer_id"]), IdIndex.of(articles["article_id"])
        purchases = encode_purchases(history, customer_index, article_index)
        result = train_sequence_model(purchases, vectors, cutoff, sequence_config, log=log)
    with stage(figures, "rank"):
        data = build_sequences(
            purchases,
            len(article_index),
            cutoff,
            sequence_config.max_len,
            torch.Generator().manual_seed(sequence_config.seed),
        )
        customer_idx = customer_index.encode(scored, "customer_id", "customer_idx")["customer_idx"].sort()
        article_idx = article_index.encode(candidates, "article_id", "article_idx")["article_idx"].sort()
        ranked = top_k(
            result,
            data,
            customer_idx.to_numpy().copy(),
            article_idx.to_numpy().copy(),
            as_of=cutoff + dt.timedelta(days=1),
            k=config.retrieval_k,
        )
        ranked = ranked.with_columns(
            customer_index.decode(ranked["customer_idx"]).alias("customer_id"),
            article_index.decode(ranked["article_idx"]).alias("article_id"),
        )
    return ranked


def _als(customers, articles, history, built: dt.date, candidates, scored, config: PeerConfig, figures: dict, log):
    """implicit's ALS on the customer x article purchase counts of the history window; no filtering of articles
    already bought (re-buying is common in fashion)."""
    import numpy as np
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import bm25_weight
    from threadpoolctl import threadpool_limits

    from hm_recs.models.common import IdIndex, encode_purchases

    cfg = config.als
    with stage(figures, "train"), threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's
        customer_index, article_index = IdIndex.of(customers["customer_id"]), IdIndex.of(articles["article_id"])
        window = (
            history
            if cfg.weeks is None
            else history.filter(pl.col("t_dat") >= pl.lit(shift_weeks(built, -(cfg.weeks - 1))))
        )
        counts = (
            encode_purchases(window, customer_index, article_index)
            .group_by("customer_idx", "article_idx")
            .agg(pl.len().alias("n"))
        )
        user_items = sp.csr_matrix(
            (
                counts["n"].to_numpy().astype(np.float32),
                (counts["customer_idx"].to_numpy(), counts["article_idx"].to_numpy()),
            ),
            shape=(len(customer_index), len(article_index)),
        )
        if cfg.weighting == "bm25":
            weighted = bm25_weight(user_items.T.tocoo(), K1=cfg.bm25_k1, B=cfg.bm25_b).T.tocsr().astype(np.float32)
            alpha = 1.0
        elif cfg.weighting == "confidence":
            weighted, alpha = user_items, cfg.alpha
        else:
            raise ValueError(f"unknown ALS weighting {cfg.weighting!r}")
        model = AlternatingLeastSquares(
            factors=cfg.factors,
            iterations=cfg.iterations,
            regularization=cfg.regularization,
            alpha=alpha,
            random_state=config.seed,
        )
        model.fit(weighted, show_progress=False)
    with stage(figures, "rank"), threadpool_limits(1, "blas"):
        customer_idx = customer_index.encode(scored, "customer_id", "customer_idx")["customer_idx"].sort().to_numpy()
        article_idx = article_index.encode(candidates, "article_id", "article_idx")["article_idx"].sort().to_numpy()
        k = min(config.retrieval_k, len(article_idx))
        ids, scores = model.recommend(
            customer_idx, weighted[customer_idx], N=k, filter_already_liked_items=False, items=article_idx
        )
        ranked = pl.DataFrame(
            {
                "customer_id": customer_index.decode(np.repeat(customer_idx, k)),
                "article_id": article_index.decode(ids.reshape(-1)),
                "score": scores.reshape(-1).astype(np.float64),
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int16), len(customer_idx)),
            }
        )
    return ranked


def _trending(customers, articles, history, built: dt.date, candidates, scored, config: PeerConfig, figures: dict, log):
    """`baselines.trending` at k = 100: the age group's time-decayed sales of the last 4 weeks, topped up by the
    pipeline's fallback ranking. The lists count every customer's purchases; only `scored` get rows (the body
    of `baselines.trending`, with the output restricted: 100 rows for each of 50k customers is not needed)."""
    cfg = baselines.BaselineConfig(k=config.retrieval_k)
    with stage(figures, "train"):
        lists = baselines.trending_lists(history, customers, built, cfg)
        fallback = baselines.fallback_ranking(history, articles, built, cfg)
    with stage(figures, "rank"):
        groups = baselines._age_groups(customers.join(scored, on="customer_id", how="semi"))
        empty = pl.DataFrame(
            schema={"customer_id": pl.String, "article_id": pl.String, "score": pl.Float64, "source": pl.String}
        )
        ranked = baselines._complete(empty, groups, lists, fallback, cfg.k)
    return ranked


RUNNERS = {"two_tower": _two_tower, "sequence": _sequence, "als": _als, "trending": _trending}


def run_method(method: str, inputs: str, config: PeerConfig) -> dict:
    """Train and rank one method on one week's inputs (run in a fresh spawned process)."""
    folder = Path(inputs)
    tables = {
        name: pl.read_parquet(folder / f"{name}.parquet")
        for name in ("customers", "articles", "history", "candidates", "scored")
    }
    built = dt.date.fromisoformat((folder / "built_week").read_text())
    figures: dict = {"rss_after_load_mb": round(current_rss_bytes() / 2**20, 1)}
    ranked = RUNNERS[method](
        tables["customers"],
        tables["articles"],
        tables["history"],
        built,
        tables["candidates"],
        tables["scored"],
        config,
        figures,
        _log(method),
    )
    figures["process_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["recommendations"] = ranked.select("customer_id", "article_id", pl.col("rank").cast(pl.Int32))
    return figures


def in_child(method: str, inputs: Path, config: PeerConfig) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_method, method, str(inputs), config).result()


# -- the backtest -----------------------------------------------------------------------------------------------


def score(recommendations: pl.DataFrame, purchases: pl.DataFrame, config: PeerConfig) -> dict:
    return {
        f"recall_at_{config.retrieval_k}": metrics.recall_at_k(recommendations, purchases, config.retrieval_k),
        f"map_at_{config.map_k}": metrics.map_at_k(recommendations, purchases, config.map_k),
    }


def backtest_week(
    customers, articles, transactions, target: dt.date, methods: list[str], config: PeerConfig, work: Path
) -> dict:
    built = shift_weeks(target, -1)
    first = shift_weeks(built, -(config.history_weeks - 1))
    history = transactions.filter(pl.col("t_dat").is_between(pl.lit(first), pl.lit(week_end(built))))
    purchases = transactions.filter(pl.col("t_dat").is_between(pl.lit(target), pl.lit(week_end(target))))
    candidates = (
        history.filter(pl.col("t_dat") >= pl.lit(shift_weeks(built, -(config.on_sale_weeks - 1))))
        .select("article_id")
        .unique()
        .sort("article_id")
    )
    buyers = purchases.select("customer_id").unique()
    with_history = buyers.join(history.select("customer_id").unique(), on="customer_id", how="semi").sort("customer_id")
    cold = buyers.join(with_history, on="customer_id", how="anti")
    folder = work / target.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in {
        "customers": customers,
        "articles": articles,
        "history": history,
        "candidates": candidates,
    }.items():
        frame.write_parquet(folder / f"{name}.parquet")
    (folder / "built_week").write_text(built.isoformat())
    print(
        f"\n  week {target} (built at {built}): {history.height:,} history rows, {candidates.height:,} candidate"
        f" articles, {buyers.height:,} buyers ({with_history.height:,} with history)",
        flush=True,
    )

    runs = {}
    for method in dict.fromkeys([FALLBACK, *methods]):  # the fallback first: its lists fill the cold buyers
        scored = buyers if method == FALLBACK else with_history
        scored.sort("customer_id").write_parquet(folder / "scored.parquet")
        started = time.perf_counter()
        runs[method] = in_child(method, folder, config)
        runs[method]["wall_seconds"] = time.perf_counter() - started
    fallback = runs[FALLBACK]["recommendations"].join(cold, on="customer_id", how="semi")
    # recall@100 of an oracle restricted to the candidates: the most any method here can reach
    ceiling = metrics.recall_at_k(
        purchases.join(candidates, on="article_id", how="semi")
        .select("customer_id", "article_id")
        .unique()
        .with_columns(pl.lit(1).alias("rank")),
        purchases,
        k=candidates.height,
    )
    out = {
        "built_week": built.isoformat(),
        "buyers": buyers.height,
        "buyers_with_history": with_history.height,
        "candidates": candidates.height,
        "candidate_ceiling_recall": ceiling,
        "history_rows": history.height,
        "methods": {},
    }
    print(f"    candidates hold {ceiling:.1%} of the week's purchases (recall ceiling)", flush=True)
    truth_with_history = purchases.join(with_history, on="customer_id", how="semi")
    for method in methods:
        run = runs[method]
        recommendations = run.pop("recommendations")
        own = recommendations.join(with_history, on="customer_id", how="semi")
        served = recommendations if method == FALLBACK else pl.concat([own, fallback])
        out["methods"][method] = {
            **score(served, purchases, config),
            "with_history": score(own, truth_with_history, config),
            **{k: v for k, v in run.items() if k != "recommendations"},
        }
        figures = out["methods"][method]
        print(
            f"    {method:<10} recall@{config.retrieval_k} {figures[f'recall_at_{config.retrieval_k}']:.4f}  "
            f"MAP@{config.map_k} {figures[f'map_at_{config.map_k}']:.4f}  train {figures['train_seconds']:.1f} s "
            f"({figures['train_cpu_seconds']:.1f} s CPU)  "
            f"rank {figures['rank_seconds']:.1f} s  peak RSS {figures['process_peak_rss_mb']:.0f} MB",
            flush=True,
        )
    return out


def summary(weeks: dict, methods: list[str], config: PeerConfig) -> dict:
    recall, map_k = f"recall_at_{config.retrieval_k}", f"map_at_{config.map_k}"

    def spread(values: list[float]) -> dict:
        return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}

    out = {}
    for method in methods:
        rows = [w["methods"][method] for w in weeks.values()]
        out[method] = {
            recall: spread([r[recall] for r in rows]),
            map_k: spread([r[map_k] for r in rows]),
            f"with_history_{map_k}": spread([r["with_history"][map_k] for r in rows]),
            f"with_history_{recall}": spread([r["with_history"][recall] for r in rows]),
            "train_seconds": spread([r["train_seconds"] for r in rows]),
            "train_cpu_seconds": spread([r["train_cpu_seconds"] for r in rows]),
            **(
                {"content_seconds": spread([r["content_seconds"] for r in rows])}
                if "content_seconds" in rows[0]
                else {}
            ),
            "rank_seconds": spread([r["rank_seconds"] for r in rows]),
            "process_peak_rss_mb": max(r["process_peak_rss_mb"] for r in rows),
            "train_peak_rss_mb": max(r["train_peak_rss_mb"] for r in rows),
            "rss_after_load_mb": max(r["rss_after_load_mb"] for r in rows),
        }
        # the ratio of the week means, trending measured in the same run
        if FALLBACK in weeks[next(iter(weeks))]["methods"]:
            base = statistics.fmean(w["methods"][FALLBACK][map_k] for w in weeks.values())
            out[method][f"{map_k}_x_trending"] = out[method][map_k]["mean"] / base if base else float("nan")
    return out


def print_table(name: str, report: dict, config: PeerConfig) -> None:
    recall, map_k = f"recall_at_{config.retrieval_k}", f"map_at_{config.map_k}"
    ceiling = statistics.fmean(w["candidate_ceiling_recall"] for w in report["weeks"].values())
    print(
        f"\n== {name}: {len(report['weeks'])} scored weeks {', '.join(report['weeks'])}; "
        f"candidate recall ceiling {ceiling:.3f} =="
    )
    print(
        f"{'method':<10} {'recall@100':>17} {'MAP@12':>17} {'x trending':>10} {'MAP@12 w/ hist':>15} "
        f"{'train s':>8} {'CPU s':>7} {'rank s':>7} {'peak RSS MB':>11}"
    )
    for method, s in report["summary"].items():
        print(
            f"{method:<10} {s[recall]['mean']:>8.4f} ± {s[recall]['sd']:.4f} {s[map_k]['mean']:>8.4f} ±"
            f" {s[map_k]['sd']:.4f} {s.get(f'{map_k}_x_trending', float('nan')):>10.2f}"
            f" {s[f'with_history_{map_k}']['mean']:>15.4f} {s['train_seconds']['mean']:>8.1f}"
            f" {s['train_cpu_seconds']['mean']:>7.1f} {s['rank_seconds']['mean']:>7.1f}"
            f" {s['process_peak_rss_mb']:>11.0f}"
        )


def run(name: str, source: Path, n_weeks: int, offset: int, methods: list[str], config: PeerConfig) -> dict:
    available = source_weeks(source)
    targets = available[len(available) - n_weeks - offset : len(available) - offset]
    first = shift_weeks(targets[0], -config.history_weeks)
    print(f"[{name}] {source}: scoring {targets[0]}..{targets[-1]}; reading weeks {first}..{targets[-1]}", flush=True)
    with StageMeter() as load:
        customers, articles, transactions = validated_tables(
            source, [w for w in available if first <= w <= targets[-1]]
        )
    print(
        f"  validated tables in {load.seconds:.1f} s: {customers.height:,} customers, {articles.height:,} articles, "
        f"{transactions.height:,} transactions",
        flush=True,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"hm_recs_peers_{name}_") as work:
        weeks = {
            t.isoformat(): backtest_week(customers, articles, transactions, t, methods, config, Path(work))
            for t in targets
        }
    report = {
        "data": name,
        "source": str(source),
        "config": asdict(config),
        "methods": methods,
        "weeks": weeks,
        "summary": summary(weeks, methods, config),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "date": f"{dt.datetime.now():%Y-%m-%d %H:%M}",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = (
        ""
        if offset == 0 and config.als == AlsConfig()
        else f"_offset{offset}_{config.als.weighting}{config.als.alpha:g}_{config.als.weeks or config.history_weeks}w"
    )
    (RESULTS / f"peer_comparison_{name}{suffix}.json").write_text(json.dumps(report, indent=2, default=str))
    print_table(name, report, config)
    print(f"wall {report['wall_seconds']} s", flush=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["real", "synthetic", "both"], default="both")
    parser.add_argument("--weeks", type=int, default=4, help="scored weeks: the last N of the source")
    parser.add_argument(
        "--offset", type=int, default=0, help="score the N weeks ending this many weeks before the last"
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--customers", type=int, default=50_000, help="synthetic customers (104 weeks)")
    parser.add_argument("--als-weighting", choices=["bm25", "confidence"], default=AlsConfig.weighting)
    parser.add_argument(
        "--als-alpha", type=float, default=AlsConfig.alpha, help="confidence weighting: 1 + alpha * count"
    )
    parser.add_argument(
        "--als-weeks", type=int, default=None, help="ALS on the last N weeks only (default: the whole window)"
    )
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    if "als" in methods and importlib.util.find_spec("implicit") is None:
        parser.error("ALS needs implicit: pip install -e '.[bench]' (or make bench-peers)")
    config = PeerConfig(als=AlsConfig(weighting=args.als_weighting, alpha=args.als_alpha, weeks=args.als_weeks))
    if args.data in ("real", "both"):
        if REAL.exists():
            run("real_sample", REAL, args.weeks, args.offset, methods, config)
        else:
            print(f"skipping the real sample: {REAL} not found")
    if args.data in ("synthetic", "both"):
        from backtest import synthetic_source  # the cached 50k x 104 generator of the backtest

        run(
            f"synthetic_{args.customers}x104",
            synthetic_source(args.customers, 104),
            args.weeks,
            args.offset,
            methods,
            config,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
