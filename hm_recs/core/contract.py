"""The CRM contract of a week's lists (README, "The recommendations table"): every customer gets exactly K distinct
catalogue articles ranked 1..K. Pure polars; the baselines' and the published table's blocking checks use it."""

import polars as pl

from hm_recs.core.metrics import K


def recommendations_check(
    recs: pl.DataFrame, customers: pl.DataFrame, articles: pl.DataFrame, by: list[str]
) -> tuple[bool, dict]:
    """Every customer has exactly K distinct catalogue articles ranked 1..K (per `by` group)."""
    per_customer = recs.group_by(by + ["customer_id"]).agg(
        pl.len().alias("n"),
        pl.col("article_id").n_unique().alias("distinct"),
        (pl.col("rank").sort() == pl.int_range(1, pl.len() + 1)).all().alias("ranks_ok"),
    )
    groups = recs.select(by).unique().height if by else 1
    bad_lists = per_customer.filter((pl.col("n") != K) | (pl.col("distinct") != K) | ~pl.col("ranks_ok")).height
    missing = customers.height * groups - per_customer.height
    unknown_articles = recs.join(articles.select("article_id"), on="article_id", how="anti").height
    figures = {
        "customers": customers.height,
        "customers_without_list": missing,
        "lists_not_12_distinct_ranked": bad_lists,
        "rows_with_unknown_article": unknown_articles,
    }
    return bad_lists == 0 and missing == 0 and unknown_articles == 0, figures


def combined_checks(results: list[tuple[bool, dict]]) -> tuple[bool, dict]:
    """`recommendations_check` of customer chunks (disjoint customers) added up."""
    return all(passed for passed, _ in results), {
        key: sum(figures[key] for _, figures in results) for key in results[0][1]
    }
