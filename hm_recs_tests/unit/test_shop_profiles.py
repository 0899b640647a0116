"""The generator's shop profiles, its image vectors and demand shifts, and the shop statistics that
measure them (hm_recs.core.shop_statistics, run on the generated H&M-layout tables)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hm_recs.cli import main as cli
from hm_recs.core.shop_statistics import (
    articles_per_attribute_combination,
    buying_weeks_share,
    demand_shifts,
    rebuy_share_by_week,
    shop_statistics,
)
from hm_recs.models.content import CONTENT_COLUMNS
from hm_recs.synthetic import SyntheticConfig, generate, profile_config, write

SIZES = {"customers": 20_000, "weeks": 30, "seed": 5}


@pytest.fixture(scope="module")
def grocery():
    return generate(profile_config("grocery", **SIZES, image_dim=16))


@pytest.fixture(scope="module")
def fashion():
    return generate(profile_config("fashion", **SIZES, image_dim=16))


def test_grocery_profile_matches_the_real_shops_it_imitates(grocery, fashion) -> None:
    stats = shop_statistics(grocery.articles, grocery.transactions, CONTENT_COLUMNS, last_weeks=8)
    # about half of a week's distinct purchases re-buy the customer's earlier articles, 5-15 articles share
    # each attribute combination, and most customers buy most weeks
    # (the share grows with the history: 0.35-0.40 here after 30 weeks, 0.44-0.51 at the benchmark's 104 weeks,
    # docs/benchmarks.md)
    assert 0.30 <= stats.rebuy_share_min <= stats.rebuy_share_max <= 0.60
    assert 5.0 <= stats.articles_per_attribute_combination <= 15.0
    assert stats.buying_weeks_share_median >= 0.5
    plain = shop_statistics(fashion.articles, fashion.transactions, CONTENT_COLUMNS, last_weeks=8)
    assert plain.rebuy_share_max < 0.30 and plain.articles_per_attribute_combination < 2.0
    assert plain.buying_weeks_share_median < 0.2


def test_fashion_profile_is_the_default_configuration() -> None:
    assert profile_config("fashion", customers=300, weeks=3) == SyntheticConfig(customers=300, weeks=3)
    with pytest.raises(ValueError, match="unknown profile 'shoes'"):
        profile_config("shoes")


def test_grocery_rebuys_follow_each_articles_cycle(grocery) -> None:
    """Re-buys come about one cycle (median 3 weeks) after the last purchase, not right after it."""
    pairs = (
        grocery.transactions.select(pl.col("t_dat").str.to_date(), "customer_id", "article_id")
        .unique()
        .sort("customer_id", "article_id", "t_dat")
    )
    gaps = pairs.with_columns(
        gap=(pl.col("t_dat") - pl.col("t_dat").shift(1)).dt.total_days().over("customer_id", "article_id")
    ).drop_nulls("gap")
    weeks = (gaps["gap"] / 7).round()
    median = float(weeks.median())
    assert 2.0 <= median <= 5.0
    assert (weeks == 0).mean() < 0.1  # rarely the same article again in the same week


def test_planted_demand_shifts_are_what_the_statistics_detect(grocery, fashion) -> None:
    for data in (grocery, fashion):
        planted = data.demand_shifts
        assert (
            planted.height and planted["week"].n_unique() == 4 * 2
        )  # 30 weeks: 2-week shifts from weeks 4, 12, 20, 28
        last_start = dt.date(2020, 9, 22) - dt.timedelta(days=13)  # the second-to-last week's Wednesday
        assert planted["week"].max() == (last_start + dt.timedelta(days=7)).isoformat()
        detected = demand_shifts(data.transactions)
        found = detected.select(pl.col("week").cast(pl.String), "article_id").unique()
        # every planted article sells at least ten times its usual rate in the shift's weeks
        missed = planted.join(found, on=["week", "article_id"], how="anti")
        assert missed.height == 0, missed
        assert (detected["units"] >= 10 * detected["usual"]).all()


def test_image_vectors_carry_the_planted_visual_taste(grocery, fashion, tmp_path: Path) -> None:
    images = grocery.article_images
    assert images.height == grocery.articles.height
    assert images["article_id"].to_list() == grocery.articles["article_id"].to_list()
    vectors = np.stack(images["image"].to_numpy())
    assert vectors.shape[1] == 16 and np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # two articles of different sections that one customer bought look more alike than an article of the second
    # one's section picked at random: the hidden style the customer likes shows in the images (no column names it)
    shown = np.stack(fashion.article_images["image"].to_numpy())
    catalogue = fashion.articles.select("article_id", "section_no").with_row_index("i")
    bought = (
        fashion.transactions.select("customer_id", "article_id")
        .unique()
        .join(catalogue, on="article_id")
        .group_by("customer_id")
        .agg("i", "section_no")
        .filter(pl.col("i").list.len() >= 2)
    )
    rng = np.random.default_rng(0)
    sections = catalogue["section_no"].to_numpy()
    same_customer, same_section = [], []
    for rows, bought_sections in bought.select("i", "section_no").iter_rows():
        a, b = rng.choice(len(rows), 2, replace=False)
        if bought_sections[a] == bought_sections[b]:
            continue  # baskets pair articles of one section whatever their look
        same_customer.append(shown[rows[a]] @ shown[rows[b]])
        same_section.append(shown[rows[a]] @ shown[rng.choice(np.flatnonzero(sections == bought_sections[b]))])
    assert len(same_customer) > 3000
    assert np.mean(same_customer) > np.mean(same_section) + 0.01

    parquet, csv = (write(grocery, tmp_path / fmt, fmt)["images"] for fmt in ("parquet", "csv"))
    assert pl.read_parquet(parquet).schema["image"] == pl.Array(pl.Float32, 16)
    text = pl.read_csv(csv, schema_overrides={"article_id": pl.String})
    assert text.columns == ["article_id", *(f"v{i}" for i in range(16))]
    assert np.allclose(text.drop("article_id").to_numpy(), vectors, atol=1e-6)


def test_no_visual_taste_and_no_shifts_still_generate() -> None:
    data = generate(SyntheticConfig(customers=500, weeks=10, style_taste_sigma=0.0, demand_shift_every_weeks=0))
    assert data.transactions.height > 0 and data.demand_shifts.height == 0 and data.article_images is None


def test_statistics_on_a_hand_made_shop() -> None:
    tx = pl.DataFrame(
        {
            "t_dat": ["2020-09-02", "2020-09-02", "2020-09-09", "2020-09-09", "2020-09-16", "2020-09-16"],
            "customer_id": ["a", "a", "a", "b", "b", "a"],
            "article_id": ["1", "2", "1", "3", "3", "4"],
        }
    )
    shares = rebuy_share_by_week(tx)
    assert shares["rebuys"].to_list() == [0, 1, 1] and shares["pairs"].to_list() == [2, 2, 2]
    # a bought in 3 of 3 weeks, b in 2 of the 2 weeks since its first purchase
    assert buying_weeks_share(tx) == 1.0
    articles = pl.DataFrame({"article_id": ["1", "2", "3", "4"], "colour": ["red", "red", "blue", "red"]})
    assert articles_per_attribute_combination(articles, ["colour"]) == 2.0


def test_cli_synth_writes_a_profile_with_images(tmp_path: Path, capsys) -> None:
    assert (
        cli(
            [
                "synth",
                "--profile",
                "grocery",
                "--customers",
                "400",
                "--weeks",
                "6",
                "--out",
                str(tmp_path),
                "--image-dim",
                "4",
            ]
        )
        == 0
    )
    assert "grocery shop" in capsys.readouterr().out
    assert (tmp_path / "article_images.csv").exists()
    rows = pl.read_csv(tmp_path / "transactions_train.csv").height
    assert rows / (400 * 6) > 1.0  # the profile's purchase rate (2.2 rows per customer-week), not fashion's 0.22
