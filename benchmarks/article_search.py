"""The retrieval models' article search at H&M's size (issue 20): faiss's flat and inverted-file (`ivf`) searches
against the brute-force reference, on trained models, with recall, seconds and peak memory.

    python benchmarks/article_search.py [--scale 1.0] [--sample 100000] [--models sequence two_tower]

1. Data: the generator at `scale` x H&M's size (`full_scale.generated_source`, cached), week W = the
   second-to-last week (so week W+1's purchases label the lists), the 26 weeks up to W.
2. Models, trained as the weekly steps train them (default configurations): the content encoder, the sequence
   model (purchases up to W-1's Tuesday) and the global two-tower (`TwoTowerData.build` at W).
3. Search: the serving set (every customer with history, scored as of W's Tuesday, among the articles sold in
   the last 4 weeks), top 100, as `models/<model>.top_k` ranks it with each `SearchConfig.method`:
   - on a seeded sample of `--sample` customers: `exact` (torch matmul + topk: the reference), `flat` and `ivf`
     (tuned per week to `target_recall` on the first 2,000 customers); recall@30 and recall@100 of each list
     against the exact one, and each list's recall of week W+1's purchases at 30 (what the union takes) and
     the pairs only one of exact / ivf found (the most the union's recall can move);
   - `ivf` over every customer with history (the step's real cost); `exact` over all is extrapolated from the
     sample's seconds (labelled so).
Writes benchmarks/results/article_search_<scale>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
K = 100
UNION_DEPTH = 30  # CandidateConfig.two_tower / .sequence


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shop(scale: float):
    """customers, articles (sorted by id), the 26 weeks of transactions up to W, week W+1's, and W."""
    import polars as pl

    from benchmarks.full_scale import generated_source, source_weeks
    from benchmarks.model_parts import typed
    from hm_recs.core.weeks import shift_weeks

    source = generated_source(scale)
    week = source_weeks(source)[-2]
    customers = typed(pl.read_parquet(source / "customers.parquet"), "customers")
    articles = typed(pl.read_parquet(source / "articles.parquet"), "articles").sort("article_id")
    transactions = typed(pl.read_parquet(source / "transactions_train.parquet"), "transactions")
    history = transactions.filter(
        pl.col("t_dat").is_between(shift_weeks(week, -25), shift_weeks(week, 1) - dt.timedelta(days=1))
    )
    following = transactions.filter(pl.col("t_dat") >= shift_weeks(week, 1)).filter(
        pl.col("t_dat") < shift_weeks(week, 2)
    )
    return customers, articles, history, following, week


CACHE = ROOT / ".hm_recs" / "bench"


def cached_state(name: str, scale: float, train):
    """A trained model's state, trained once per scale and kept under .hm_recs/bench (re-runs measure the search
    only); `train()` returns (state, seconds)."""
    import torch

    path = CACHE / f"article_search_{scale:g}_{name}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    state, seconds = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save((state, seconds), path)
    return state, seconds


def timed(call):
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def compare(rank, customers, on_sale, bought, sample: int, seed: int = 0) -> dict:
    """`rank(customer_idx, on_sale, method) -> ranked rows`: the three methods on a sample, ivf on everyone."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(customers, size=min(sample, len(customers)), replace=False))
    lists, seconds = {}, {}
    for method in ("exact", "flat", "ivf"):
        (lists[method], search), seconds[method] = timed(lambda m=method: rank(chosen, on_sale, m))
        print(f"    {method}: {len(chosen):,} customers in {seconds[method]:.1f} s {search}", flush=True)
    figures = {"sample_customers": len(chosen), "sample_seconds": seconds, "search": search}
    exact = lists["exact"]
    for method in ("flat", "ivf"):
        for depth in (UNION_DEPTH, K):
            shared = (
                lists[method]
                .filter(pl.col("rank") <= depth)
                .join(exact.filter(pl.col("rank") <= depth), on=["customer_idx", "article_idx"], how="semi")
            )
            figures[f"{method}_recall_at_{depth}"] = shared.height / exact.filter(pl.col("rank") <= depth).height
    pairs = bought.filter(pl.col("customer_idx").is_in(pl.Series(chosen).implode())).unique()
    hits = {
        m: lists[m].filter(pl.col("rank") <= UNION_DEPTH).join(pairs, on=["customer_idx", "article_idx"], how="inner")
        for m in ("exact", "ivf")
    }
    figures["bought_pairs"] = pairs.height
    figures["labelled_recall_at_30"] = {m: h.height / max(pairs.height, 1) for m, h in hits.items()}
    figures["hits_only_exact"] = hits["exact"].join(hits["ivf"], on=["customer_idx", "article_idx"], how="anti").height
    figures["hits_only_ivf"] = hits["ivf"].join(hits["exact"], on=["customer_idx", "article_idx"], how="anti").height
    (_, search), figures["ivf_all_seconds"] = timed(lambda: rank(np.sort(customers), on_sale, "ivf"))
    figures["all_customers"] = len(customers)
    figures["exact_all_seconds_extrapolated"] = seconds["exact"] * len(customers) / len(chosen)
    figures["flat_all_seconds_extrapolated"] = seconds["flat"] * len(customers) / len(chosen)
    print(f"    ivf over all {len(customers):,}: {figures['ivf_all_seconds']:.1f} s {search}", flush=True)
    return figures


def sequence_part(purchases, content, week, on_sale, bought, sample: int, scale: float) -> dict:
    import polars as pl

    from hm_recs.models.article_search import ArticleSearch
    from hm_recs.models.configs import SearchConfig, SequenceConfig
    from hm_recs.models.sequence import SequenceRetriever, load, state
    from hm_recs.models.sequence_training import train_sequence_model

    cutoff = week - dt.timedelta(days=1)

    def train():
        result, seconds = timed(
            lambda: train_sequence_model(purchases.filter(pl.col("t_dat") <= cutoff), content, cutoff, SequenceConfig())
        )
        return state(result), seconds

    stored, train_s = cached_state("sequence", scale, train)
    print(f"  sequence model trained in {train_s:.0f} s", flush=True)
    retriever = SequenceRetriever.of(load(stored, content), purchases, week + dt.timedelta(days=6), 0)
    customers = retriever.data.customers.numpy()

    def rank(customer_idx, articles, method):
        retriever.search = ArticleSearch(SearchConfig(method=method))
        return retriever.top_k(customer_idx, articles, K), retriever.search.figures()

    return {"train_seconds": train_s, **compare(rank, customers, on_sale, bought, sample)}


def two_tower_part(history, customers, articles, content, week, on_sale, bought, sample: int, scale: float) -> dict:
    from hm_recs.models.article_search import ArticleSearch
    from hm_recs.models.configs import SearchConfig
    from hm_recs.models.training_data import TwoTowerData
    from hm_recs.models.two_tower import TwoTowerRetriever, load, train_two_tower

    data, build_s = timed(lambda: TwoTowerData.build(history, customers, articles, week, content, label_weeks=4))

    def train():
        result, seconds = timed(lambda: train_two_tower(data.train_inputs, data.labels))
        return result.state(), seconds

    stored, train_s = cached_state("two_tower", scale, train)
    print(f"  two-tower data in {build_s:.0f} s, trained in {train_s:.0f} s", flush=True)
    retriever = TwoTowerRetriever(load(stored, data.serving_inputs))
    with_history = data.customers.encode(history.select("customer_id").unique(), "customer_id", "customer_idx")

    def rank(customer_idx, articles_idx, method):
        retriever.search = ArticleSearch(SearchConfig(method=method))
        return retriever.top_k(customer_idx, articles_idx, K), retriever.search.figures()

    figures = compare(rank, with_history["customer_idx"].to_numpy(), on_sale, bought, sample)
    return {"data_seconds": build_s, "train_seconds": train_s, **figures}


def run(scale: float, sample: int, models: list[str]) -> dict:
    import torch

    from hm_recs.models.common import IdIndex, encode_purchases
    from hm_recs.models.content import ContentModel, train_content_encoder
    from hm_recs.models.retrieval import articles_on_sale

    torch.set_num_threads(2)
    customers, articles, history, following, week = shop(scale)
    print(f"week {week}: {customers.height:,} customers, {articles.height:,} articles, {history.height:,} rows")
    customer_index, article_index = IdIndex.of(customers["customer_id"]), IdIndex.of(articles["article_id"])
    purchases = encode_purchases(history, customer_index, article_index)
    bought = encode_purchases(following, customer_index, article_index).select("customer_idx", "article_idx")
    encoder_state, content_s = cached_state(
        "content",
        scale,
        lambda: (lambda m: (m[0].state(), m[1]))(timed(lambda: train_content_encoder(articles, purchases))),
    )
    content = ContentModel.load(encoder_state).vectors(articles)
    print(f"  content encoder in {content_s:.0f} s", flush=True)
    on_sale = articles_on_sale(history, week, 4, article_index).to_numpy()
    report = {"scale": scale, "week": str(week), "articles_on_sale": len(on_sale), "threads": 2}
    if "sequence" in models:
        report["sequence"] = sequence_part(purchases, content, week, on_sale, bought, sample, scale)
    if "two_tower" in models:
        report["two_tower"] = two_tower_part(
            history, customers, articles, content, week, on_sale, bought, sample, scale
        )
    report["peak_rss_mb"] = peak_rss_mb()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--sample", type=int, default=100_000)
    parser.add_argument("--models", nargs="+", default=["sequence", "two_tower"], choices=["sequence", "two_tower"])
    args = parser.parse_args(argv)
    report = run(args.scale, args.sample, args.models)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"article_search_{args.scale:g}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
