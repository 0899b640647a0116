"""What each part of the learned article representation adds (issue 18): the sequence model trained with its
parts switched on one at a time, on the generator's shop profiles, and what the parts cost.

    python benchmarks/model_parts.py [--profile grocery fashion] [--customers N] [--weeks 32] [--image-dim 32]
                                     [--offset 2]
    python benchmarks/model_parts.py --hm-shaped      (the cost at H&M's size: one epoch, parts off vs on)

Quality (default): a generated shop of the profile, with image vectors carrying its planted visual taste; the week
`--offset` weeks before the last is held out (default 2: the week before the generator's latest planted demand
shift, an ordinary week) and nothing after it is read. The content encoder and the sequence model are trained on the
weeks before, adding one part at a time: catalogue attributes only, + description words, + image vectors, + the
article identity embedding, + the repeat term (everything: today's defaults). Each variant's own top 12 among the
articles sold in the last 4 weeks is scored on the held-out week's buyers (MAP@12, customers without history count
as misses), with the repurchase and trending baselines measured in the same run, and the seconds per epoch.

Cost (`--hm-shaped`): purchases drawn at H&M's shape (1.37M customers, 105,542 articles, 26 weeks of about
305k purchases, a power-law popularity), random content vectors; CPU seconds of one training step of the
sequence model (one thread, the same 30 batches of its default epoch, the fastest of 4 interleaved rounds)
with the repeat term and identity embedding off, then on, and the identity embedding's parameter and
Adam-state memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SIZES = {"grocery": 5_000, "fashion": 20_000}


def typed(frame, table: str):
    """A generated table with the validated warehouse's types (`core.schema.TABLE_DTYPES`)."""
    import polars as pl

    from hm_recs.core.schema import TABLE_DTYPES

    return frame.with_columns(
        (pl.col(c).str.to_date() if t == pl.Date() else pl.col(c).cast(t))
        for c, t in TABLE_DTYPES[table].items()
        if c in frame.columns
    )


def variants(image_dim: int) -> list[tuple[str, dict, dict]]:
    """(name, content encoder overrides, sequence overrides), each adding one part to the one before."""
    plain = {"repeat": False, "article_identity": False}
    return [
        ("attributes", {"text_dim": 0, "image_dim": 0}, plain),
        ("+ description words", {"image_dim": 0}, plain),
        *([("+ image vectors", {}, plain)] if image_dim else []),
        ("+ identity embedding", {}, {"repeat": False}),
        ("+ repeat term (all)", {}, {}),
    ]


def quality(profile: str, customers: int, weeks: int, image_dim: int, offset: int) -> dict:
    import polars as pl

    from hm_recs.core.baselines import BaselineConfig, recommend_all
    from hm_recs.core.metrics import K, map_at_k
    from hm_recs.core.weeks import shift_weeks, week_of
    from hm_recs.models.common import IdIndex, encode_purchases, set_seed
    from hm_recs.models.configs import ContentConfig, SequenceConfig
    from hm_recs.models.content import train_content_encoder
    from hm_recs.models.sequence import top_k
    from hm_recs.models.sequence_data import build_sequences
    from hm_recs.models.sequence_training import train_sequence_model
    from hm_recs.synthetic import generate, profile_config

    started = time.perf_counter()
    data = generate(profile_config(profile, customers=customers, weeks=weeks, seed=3, image_dim=image_dim))
    articles = typed(data.articles, "articles").sort("article_id")
    people = typed(data.customers, "customers")
    transactions = typed(data.transactions, "transactions")
    week = shift_weeks(week_of(transactions["t_dat"].max()), -offset)
    transactions = transactions.filter(pl.col("t_dat") < shift_weeks(week, 1))
    cutoff = week - dt.timedelta(days=1)
    past, held = transactions.filter(pl.col("t_dat") < week), transactions.filter(pl.col("t_dat") >= week)
    index_c, index_a = IdIndex.of(people["customer_id"]), IdIndex.of(articles["article_id"])
    purchases = encode_purchases(past, index_c, index_a)
    on_sale = (
        index_a.encode(
            past.filter(pl.col("t_dat") >= shift_weeks(week, -4)).select("article_id").unique(), "article_id"
        )["article_id_idx"]
        .sort()
        .to_numpy()
    )
    print(
        f"[{profile}] {people.height:,} customers, {articles.height:,} articles, {transactions.height:,} rows; held-out"
        f" week {week}: {held['customer_id'].n_unique():,} buyers (generated in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    rows = {}
    baselines = recommend_all(
        people, past, articles, shift_weeks(week, -1), BaselineConfig(K), wanted=held["customer_id"].unique()
    )
    for (name,), lists in baselines.group_by("recommender", maintain_order=True):
        rows[f"baseline: {name}"] = {"map_at_12": map_at_k(lists, held)}
    contents: dict[tuple, object] = {}
    for name, content_overrides, sequence_overrides in variants(image_dim):
        key = tuple(sorted(content_overrides.items()))
        if key not in contents:
            began = time.perf_counter()
            model = train_content_encoder(
                articles,
                purchases,
                replace(ContentConfig(), **content_overrides),
                log=lambda m: None,
                images=data.article_images,
            )
            contents[key] = (model.vectors(articles, data.article_images), time.perf_counter() - began)
        vectors, content_seconds = contents[key]
        began = time.perf_counter()
        result = train_sequence_model(
            purchases, vectors, cutoff, replace(SequenceConfig(), **sequence_overrides), log=lambda m: None
        )
        seconds = time.perf_counter() - began
        sequences = build_sequences(purchases, len(index_a), cutoff, result.config.max_len, set_seed(0))
        wanted = index_c.encode(held.select("customer_id").unique(), "customer_id")["customer_id_idx"].sort().to_numpy()
        best = top_k(result, sequences, wanted, on_sale, week, k=K)
        lists = best.with_columns(
            index_c.decode(best["customer_idx"]).alias("customer_id"),
            index_a.decode(best["article_idx"]).alias("article_id"),
        )
        rows[name] = {
            "map_at_12": map_at_k(lists, held),
            "sequence_seconds_per_epoch": seconds / result.config.epochs,
            "content_seconds": content_seconds,
        }
        print(
            f"  {name:<24} MAP@12 {rows[name]['map_at_12']:.4f}  sequence"
            f" {rows[name]['sequence_seconds_per_epoch']:.1f} s/epoch, content encoder {content_seconds:.1f} s",
            flush=True,
        )
    return rows


def hm_shaped(seed: int = 0, steps: int = 30, rounds: int = 4) -> dict:
    """CPU seconds of one sequence-model training step at H&M's shape, the new parts off and on (module docstring).

    One thread; the same `steps` batches of the default epoch's batching for every variant, the variants
    interleaved for `rounds` rounds and each one's fastest round kept (the machine's noise only ever adds)."""
    import numpy as np
    import polars as pl
    import torch

    from hm_recs.models.common import IdentityOptimiser, set_seed
    from hm_recs.models.configs import SequenceConfig
    from hm_recs.models.sequence import SequenceModel
    from hm_recs.models.sequence_data import build_sequences, trend_table
    from hm_recs.models.sequence_training import batch_loss, epoch_batches, start_from_data

    torch.set_num_threads(1)
    customers, articles, weeks, per_week = 1_371_980, 105_542, 26, 305_000
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, articles + 1) ** 0.9
    popularity /= popularity.sum()
    n = weeks * per_week
    last = dt.date(2020, 9, 22)
    days = rng.integers(0, weeks * 7, n)
    purchases = pl.DataFrame(
        {
            "customer_idx": (rng.pareto(1.2, n) * customers / 20).astype(np.int64) % customers,
            "article_idx": rng.choice(articles, n, p=popularity).astype(np.int64),
            "t_dat": pl.Series([last - dt.timedelta(days=int(d)) for d in range(weeks * 7)]).gather(days),
        }
    )
    content = torch.randn(articles, 48)
    config = SequenceConfig()
    generator = set_seed(seed)
    data = build_sequences(purchases, articles, last, config.max_len, generator)
    valid = torch.arange(data.max_length).unsqueeze(0) < data.lengths.unsqueeze(1)
    sold = torch.bincount(data.articles[valid].long(), minlength=articles)
    trend = trend_table(data, last + dt.timedelta(days=1))
    trainable = torch.nonzero(data.targets.any(1)).squeeze(1)
    _, batches = epoch_batches(data, trainable, config.max_sequences_per_epoch, config.batch_size, generator)
    chosen = batches[:steps]  # the first steps of a default epoch, in its random order
    variants = {"parts off": {"repeat": False, "article_identity": False}, "parts on": {}}
    setups = {}
    for name, overrides in variants.items():
        variant = SequenceConfig(**overrides)
        model = SequenceModel(content, variant)
        start_from_data(model, data, sold)  # as training starts: identities, re-buy cycles, trend or prior
        optimiser = IdentityOptimiser(
            model, model.article_id, variant.lr, variant.weight_decay, variant.id_weight_decay
        )
        setups[name] = (model, optimiser, torch.Generator().manual_seed(seed + 3))
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, (model, optimiser, draws) in setups.items():
            started = time.process_time()
            for batch in chosen:
                loss, _ = batch_loss(model, data, batch, draws, sold, trend)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            best[name] = min(best[name], (time.process_time() - started) / len(chosen))
    out = {name: {"cpu_seconds_per_step": round(seconds, 4)} for name, seconds in best.items()}
    identity = setups["parts on"][0].article_id.weight.numel()
    out["parts on"]["identity_embedding_mb"] = round(identity * 4 / 2**20, 1)
    out["parts on"]["identity_with_adam_state_mb"] = round(3 * identity * 4 / 2**20, 1)
    out["step_ratio_on_over_off"] = round(best["parts on"] / best["parts off"], 3)
    out["steps_per_epoch"] = len(batches)
    for name, figures in out.items():
        if isinstance(figures, dict):
            print(f"  sequence, {name}: {figures['cpu_seconds_per_step']:.4f} CPU s per step", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", nargs="+", default=["grocery", "fashion"], choices=["grocery", "fashion"])
    parser.add_argument("--customers", type=int, default=None, help=f"default per profile: {SIZES}")
    parser.add_argument("--weeks", type=int, default=32)
    parser.add_argument("--image-dim", type=int, default=32)
    parser.add_argument("--offset", type=int, default=2, help="weeks between the held-out week and the last one")
    parser.add_argument("--hm-shaped", action="store_true", help="the cost at H&M's size instead of the quality table")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.hm_shaped:
        report = hm_shaped()
        print(
            f"\nsequence step at H&M's shape, parts on / off: {report['step_ratio_on_over_off']:.2f}x; identity"
            f" embedding {report['parts on'].get('identity_embedding_mb')} MB"
            f" ({report['parts on'].get('identity_with_adam_state_mb')} MB with Adam's two moments)"
        )
        (RESULTS / "model_parts_hm_shaped.json").write_text(json.dumps(report, indent=2))
    else:
        report = {
            p: quality(p, args.customers or SIZES[p], args.weeks, args.image_dim, args.offset) for p in args.profile
        }
        print("\n== sequence model MAP@12 on the held-out week, one part added at a time ==")
        for profile, rows in report.items():
            reference = max(v["map_at_12"] for k, v in rows.items() if k.startswith("baseline"))
            for name, figures in rows.items():
                print(
                    f"  {profile:<8} {name:<24} {figures['map_at_12']:.4f}  ({figures['map_at_12'] / reference:.2f}x"
                    " the best baseline)"
                )
        (RESULTS / "model_parts.json").write_text(json.dumps(report, indent=2))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
