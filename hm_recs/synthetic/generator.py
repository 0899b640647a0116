"""`generate` (a configuration -> the three H&M tables and the planted truth) and `write` (CSV or Parquet)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from hm_recs.synthetic.catalogue import build_catalogue, image_vectors
from hm_recs.synthetic.common import Calendar
from hm_recs.synthetic.config import SyntheticConfig
from hm_recs.synthetic.population import build_population, customers_frame
from hm_recs.synthetic.simulation import WeekStart, simulate
from hm_recs.synthetic.tables import articles_frame
from hm_recs.synthetic.vocabulary import SEGMENTS


@dataclass(frozen=True)
class SyntheticData:
    """The three H&M tables plus the planted ground truth (not part of the H&M files)."""

    articles: pl.DataFrame
    customers: pl.DataFrame
    transactions: pl.DataFrame
    planted_segments: pl.DataFrame  # customer_id, segment
    #: article_id, image (fixed-length float32 list); None unless ``image_dim`` > 0
    article_images: pl.DataFrame | None = None
    #: the planted demand shifts: week (its Wednesday, ISO), article_id
    demand_shifts: pl.DataFrame | None = None


def generate(config: SyntheticConfig, observe: Callable[[WeekStart], None] | None = None) -> SyntheticData:
    """Generate the synthetic H&M tables for ``config`` (deterministic in the config); ``observe`` sees the
    simulation's state as each week begins (`simulation.WeekStart`) and changes nothing."""
    config.validate()
    rng = np.random.Generator(np.random.PCG64(config.seed))
    calendar = Calendar.build(config)
    catalogue = build_catalogue(config, rng)
    population = build_population(config, rng)
    tx, shifts = simulate(config, rng, calendar, catalogue, population, observe)
    customers, customer_ids = customers_frame(config, rng, population)
    articles, article_ids = articles_frame(catalogue)
    images = None
    if config.image_dim:
        vectors = image_vectors(config, catalogue)
        images = pl.DataFrame(
            {"article_id": article_ids, "image": pl.Series(vectors, dtype=pl.Array(pl.Float32, config.image_dim))}
        ).sort("article_id")
    demand_shifts = pl.DataFrame(
        {
            "week": pl.Series([calendar.day_strings[7 * w] for w, _ in shifts], dtype=pl.String),
            "article_id": article_ids.gather(np.array([a for _, a in shifts], dtype=np.int64)),
        }
    )
    transactions = pl.DataFrame(
        {
            "t_dat": pl.Series(calendar.day_strings).gather(tx.day),
            "customer_id": customer_ids.gather(tx.customer),
            "article_id": article_ids.gather(tx.article),
            "price": tx.price,
            "sales_channel_id": tx.channel.astype(np.int64),
        }
    )
    planted = pl.DataFrame(
        {
            "customer_id": customer_ids,
            "segment": pl.Series(SEGMENTS).gather(population.segment),
        }
    )
    return SyntheticData(
        articles=articles,
        customers=customers,
        transactions=transactions,
        planted_segments=planted,
        article_images=images,
        demand_shifts=demand_shifts,
    )


def write(data: SyntheticData, out_dir: str | Path, fmt: str = "csv") -> dict[str, Path]:
    """Write articles.<fmt>, customers.<fmt>, transactions_train.<fmt> (fmt csv|parquet) into
    out_dir (created); return {"articles": path, "customers": path, "transactions": path}.

    The CSV layout matches the Kaggle files: header line, ``,`` separator, unquoted article ids with
    their leading zero, empty fields for nulls, floats such as ``23.0``.  planted_segments is not
    written (it is ground truth, not H&M data).  Image vectors, when generated, go to
    ``article_images.<fmt>`` (key "images"): Parquet with a fixed-length list column ``image``, CSV
    with columns ``v0..vN-1``.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = {
        "articles": ("articles", data.articles),
        "customers": ("customers", data.customers),
        "transactions": ("transactions_train", data.transactions),
    }
    paths: dict[str, Path] = {}
    for key, (stem, frame) in frames.items():
        path = out / f"{stem}.{fmt}"
        if fmt == "csv":
            frame.write_csv(path)
        else:
            frame.write_parquet(path)
        paths[key] = path
    if data.article_images is not None:
        path = out / f"article_images.{fmt}"
        if fmt == "csv":
            dim = data.article_images.schema["image"].size
            data.article_images.select(
                "article_id", *(pl.col("image").arr.get(i).alias(f"v{i}") for i in range(dim))
            ).write_csv(path)
        else:
            data.article_images.write_parquet(path)
        paths["images"] = path
    return paths
