"""Candidates against what was bought: the ranker's labels, and how much of a week's purchases the union and each
source cover (recall). Pure polars."""

import polars as pl

from hm_recs.core.candidates import SOURCES, UNION

LABEL = "label"
"""The ranker's target column: 1 where the customer bought the candidate article in the labelled week."""
KEYS = ["customer_id", "article_id"]


def label_candidates(candidates: pl.DataFrame, purchases: pl.DataFrame) -> pl.DataFrame:
    """`candidates` with `label` (Int8): 1 where the customer bought the article in `purchases`, else 0."""
    bought = purchases.select(*KEYS).unique().with_columns(pl.lit(1, dtype=pl.Int8).alias(LABEL))
    return candidates.join(bought, on=KEYS, how="left", maintain_order="left").with_columns(pl.col(LABEL).fill_null(0))


def candidate_recall(candidates: pl.DataFrame, purchases: pl.DataFrame) -> pl.DataFrame:
    """How much of the next week's purchases the candidates cover, for the union and each source.

    purchases: customer_id, article_id of the target week (duplicates and extra columns ignored); a bought pair
    is a distinct (customer, article). One row per `UNION` then each of `SOURCES`:
    ``source, candidates_per_customer`` (mean rows per customer of the candidate set), ``hits`` (bought pairs
    covered), ``bought_pairs`` and ``recall`` (over buyers who are in the candidate set), ``bought_pairs_all``
    and ``recall_all_buyers`` (over every buyer: customers without candidates count as misses). Sums of
    ``hits`` and ``bought_pairs`` over customer chunks give the totals.
    """
    bought = purchases.select("customer_id", "article_id").unique()
    customers = candidates.select("customer_id").unique()
    in_set = bought.join(customers, on="customer_id", how="semi")
    flags = [f"from_{s}" for s in SOURCES]
    hit = in_set.join(
        candidates.select("customer_id", "article_id", *flags), on=["customer_id", "article_id"], how="inner"
    )
    n_customers = max(customers.height, 1)
    rows = [(UNION, candidates.height / n_customers, hit.height)]
    rows += [(s, float(candidates[f"from_{s}"].sum()) / n_customers, int(hit[f"from_{s}"].sum())) for s in SOURCES]
    return _with_recall(
        pl.DataFrame(
            [(s, per, h, in_set.height, bought.height, customers.height) for s, per, h in rows],
            schema={
                "source": pl.String,
                "candidates_per_customer": pl.Float64,
                "hits": pl.Int64,
                "bought_pairs": pl.Int64,
                "bought_pairs_all": pl.Int64,
                "customers": pl.Int64,
            },
            orient="row",
        )
    )


def _with_recall(counts: pl.DataFrame) -> pl.DataFrame:
    def share(hits: str, pairs: str) -> pl.Expr:
        return pl.when(pl.col(pairs) > 0).then(pl.col(hits) / pl.col(pairs)).otherwise(float("nan"))

    return counts.with_columns(
        share("hits", "bought_pairs").alias("recall"), share("hits", "bought_pairs_all").alias("recall_all_buyers")
    ).select(
        "source",
        "candidates_per_customer",
        "hits",
        "bought_pairs",
        "recall",
        "bought_pairs_all",
        "recall_all_buyers",
        "customers",
    )


def combined_recall(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """`candidate_recall` of customer chunks (disjoint customers, each with its own purchases) combined into the
    figures of all of them at once."""
    if not parts:
        return candidate_recall(
            pl.DataFrame(
                schema={"customer_id": pl.String, "article_id": pl.String, **{f"from_{s}": pl.Boolean for s in SOURCES}}
            ),
            pl.DataFrame(schema={"customer_id": pl.String, "article_id": pl.String}),
        )
    return _with_recall(
        pl.concat(parts)
        .group_by("source", maintain_order=True)
        .agg(
            ((pl.col("candidates_per_customer") * pl.col("customers")).sum() / pl.col("customers").sum().clip(1)).alias(
                "candidates_per_customer"
            ),
            pl.col("hits", "bought_pairs", "bought_pairs_all", "customers").sum(),
        )
    )
