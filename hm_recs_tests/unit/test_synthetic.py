"""Tests of the synthetic H&M generator: exact file layout, determinism, integrity and every
planted structure being measurably present."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hm_recs.core.schema import ARTICLE_COLUMNS, CUSTOMER_COLUMNS, TRANSACTION_COLUMNS
from hm_recs.synthetic import (
    PRODUCT_TYPES,
    SEGMENTS,
    SyntheticConfig,
    SyntheticData,
    generate,
    write,
)

# A year of data, so that both seasons are present; ~47k rows, generated in well under a second.
YEAR_CONFIG = SyntheticConfig(customers=4000, weeks=52, seed=11, articles=2000)

ARTICLE_SCHEMA = {
    "article_id": pl.String,
    "product_code": pl.Int64,
    "prod_name": pl.String,
    "product_type_no": pl.Int64,
    "product_type_name": pl.String,
    "product_group_name": pl.String,
    "graphical_appearance_no": pl.Int64,
    "graphical_appearance_name": pl.String,
    "colour_group_code": pl.Int64,
    "colour_group_name": pl.String,
    "perceived_colour_value_id": pl.Int64,
    "perceived_colour_value_name": pl.String,
    "perceived_colour_master_id": pl.Int64,
    "perceived_colour_master_name": pl.String,
    "department_no": pl.Int64,
    "department_name": pl.String,
    "index_code": pl.String,
    "index_name": pl.String,
    "index_group_no": pl.Int64,
    "index_group_name": pl.String,
    "section_no": pl.Int64,
    "section_name": pl.String,
    "garment_group_no": pl.Int64,
    "garment_group_name": pl.String,
    "detail_desc": pl.String,
}
CUSTOMER_SCHEMA = {
    "customer_id": pl.String,
    "FN": pl.Float64,
    "Active": pl.Float64,
    "club_member_status": pl.String,
    "fashion_news_frequency": pl.String,
    "age": pl.Float64,
    "postal_code": pl.String,
}
TRANSACTION_SCHEMA = {
    "t_dat": pl.String,
    "customer_id": pl.String,
    "article_id": pl.String,
    "price": pl.Float64,
    "sales_channel_id": pl.Int64,
}
HEX64 = r"^[0-9a-f]{64}$"


@pytest.fixture(scope="module")
def year() -> SyntheticData:
    return generate(YEAR_CONFIG)


@pytest.fixture(scope="module")
def default() -> SyntheticData:
    return generate(SyntheticConfig())


@pytest.fixture(scope="module")
def enriched(year: SyntheticData) -> pl.DataFrame:
    """Transactions with segment, article attributes, age and week number."""
    articles = year.articles.select(
        "article_id", "product_code", "index_name", "product_type_name", "product_group_name"
    )
    first_day = YEAR_CONFIG.first_day
    return (
        year.transactions.join(year.planted_segments, on="customer_id")
        .join(articles, on="article_id")
        .join(year.customers.select("customer_id", "age"), on="customer_id")
        .with_columns(date=pl.col("t_dat").str.to_date())
        .with_columns(
            week=(pl.col("date") - pl.lit(first_day)).dt.total_days() // 7,
            month=pl.col("date").dt.month(),
        )
    )


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"customers": 0}, "customers"),
        ({"weeks": 0}, "weeks"),
        ({"last_day": dt.date(2020, 9, 21)}, "Tuesday"),
        ({"last_day": dt.datetime(2020, 9, 22)}, "Tuesday"),
        ({"customers": 2.5}, "customers"),
        ({"articles": 0}, "articles"),
        ({"purchase_rate": -1.0}, "purchase_rate"),
        ({"promo_share": 1.5}, "promo_share"),
        ({"segment_shares": (1.0, 1.0)}, "segment_shares"),
    ],
)
def test_invalid_config_raises(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**kwargs)


def test_write_rejects_unknown_format(default: SyntheticData, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fmt"):
        write(default, tmp_path, fmt="xlsx")


def test_article_count_scales_with_customers() -> None:
    assert SyntheticConfig().n_articles == 300  # floor
    full = SyntheticConfig(customers=1_371_980, weeks=104).n_articles
    assert 100_000 <= full <= 110_000
    assert SyntheticConfig(articles=1234).n_articles == 1234


# --------------------------------------------------------------------------------------------
# layout
# --------------------------------------------------------------------------------------------


def test_column_order_and_dtypes(default: SyntheticData) -> None:
    assert tuple(default.articles.columns) == ARTICLE_COLUMNS
    assert tuple(default.customers.columns) == CUSTOMER_COLUMNS
    assert tuple(default.transactions.columns) == TRANSACTION_COLUMNS
    assert dict(default.articles.schema) == ARTICLE_SCHEMA
    assert dict(default.customers.schema) == CUSTOMER_SCHEMA
    assert dict(default.transactions.schema) == TRANSACTION_SCHEMA
    assert dict(default.planted_segments.schema) == {
        "customer_id": pl.String,
        "segment": pl.String,
    }
    assert default.articles.height == 300
    assert default.customers.height == 2000


def test_article_ids_and_product_codes(year: SyntheticData) -> None:
    art = year.articles
    assert art["article_id"].str.contains(r"^0\d{9}$").all()
    assert art["article_id"].is_unique().all()
    assert art["article_id"].is_sorted()
    code = art["product_code"].cast(pl.String).str.zfill(7)
    assert (art["article_id"].str.slice(0, 7) == code).all()
    variants = art.group_by("product_code").len()["len"]
    assert variants.max() > 1 and variants.mean() > 1.5  # several colours per product


@pytest.mark.parametrize(
    "code, name",
    [
        ("product_type_no", "product_type_name"),
        ("graphical_appearance_no", "graphical_appearance_name"),
        ("colour_group_code", "colour_group_name"),
        ("perceived_colour_value_id", "perceived_colour_value_name"),
        ("perceived_colour_master_id", "perceived_colour_master_name"),
        ("department_no", "department_name"),
        ("index_code", "index_name"),
        ("index_group_no", "index_group_name"),
        ("section_no", "section_name"),
        ("garment_group_no", "garment_group_name"),
        ("index_code", "index_group_no"),
        ("product_code", "detail_desc"),
    ],
)
def test_names_consistent_with_codes(year: SyntheticData, code: str, name: str) -> None:
    per_code = year.articles.group_by(code).agg(pl.col(name).n_unique())
    assert (per_code[name] == 1).all()


def test_article_vocabularies(year: SyntheticData) -> None:
    art = year.articles
    # colour variants share the product name (some with a "(1)"-style suffix, as in H&M)
    base_name = art.with_columns(pl.col("prod_name").str.replace(r" \(\d\)$", ""))
    names = base_name.group_by("product_code").agg(pl.col("prod_name").n_unique())
    assert (names["prod_name"] == 1).all()
    indexes = dict(art.select("index_code", "index_name").unique().iter_rows())
    assert indexes["A"] == "Ladieswear" and indexes["D"] == "Divided"
    assert indexes["F"] == "Menswear" and indexes["G"] == "Baby Sizes 50-98"
    assert set(art["index_group_name"]) <= {
        "Ladieswear",
        "Divided",
        "Menswear",
        "Baby/Children",
        "Sport",
    }
    assert {"Black", "White", "Dark Blue"} <= set(art["colour_group_name"])
    assert {"Trousers", "Dress", "Sweater", "T-shirt"} <= set(art["product_type_name"])
    assert {"Jersey Basic", "Knitwear", "Trousers", "Shoes", "Accessories"} <= set(art["garment_group_name"])


def test_detail_desc_is_a_sentence_and_rarely_null() -> None:
    art = generate(SyntheticConfig(customers=10, weeks=1, articles=20_000)).articles
    null_share = art["detail_desc"].null_count() / art.height
    assert 0.0005 < null_share < 0.01
    assert art["detail_desc"].drop_nulls().str.contains(r"^[A-Z].* in .* with .*\.$").all()


def test_customer_columns(year: SyntheticData) -> None:
    cust = year.customers
    n = cust.height
    assert cust["customer_id"].str.contains(HEX64).all()
    assert cust["customer_id"].is_unique().all() and cust["customer_id"].is_sorted()
    assert set(cust["FN"].drop_nulls()) == {1.0} and set(cust["Active"].drop_nulls()) == {1.0}
    assert 0.30 < cust["FN"].is_not_null().mean() < 0.40
    status = cust["club_member_status"].value_counts(normalize=True)
    shares = dict(status.iter_rows())
    assert 0.88 < shares["ACTIVE"] < 0.96 and "PRE-CREATE" in shares
    assert set(cust["club_member_status"].drop_nulls()) <= {"ACTIVE", "PRE-CREATE", "LEFT CLUB"}
    assert set(cust["fashion_news_frequency"].drop_nulls()) <= {"NONE", "Regularly", "Monthly"}
    age = cust["age"]
    assert 0.002 < age.null_count() / n < 0.03
    ages = age.drop_nulls()
    assert ages.min() >= 16 and ages.max() <= 99 and (ages == ages.round()).all()
    counts = np.bincount(ages.cast(pl.Int64).to_numpy(), minlength=100)
    # bimodal: a young peak and an older peak with a dip in between
    young_peak, old_peak = counts[20:30].max(), counts[45:56].max()
    assert counts[36:40].mean() < min(young_peak, old_peak)
    assert cust["postal_code"].str.contains(HEX64).all()
    postal = cust["postal_code"].value_counts(sort=True)
    assert postal["count"][0] / n > 0.05  # one very common postal code
    assert postal.height > n / 10  # but many others, shared by some customers
    assert postal["count"][1] > 1


def test_transaction_columns(year: SyntheticData) -> None:
    tx = year.transactions
    assert tx["t_dat"].str.contains(r"^\d{4}-\d{2}-\d{2}$").all()
    assert tx["customer_id"].str.contains(HEX64).all()
    assert tx["article_id"].str.contains(r"^0\d{9}$").all()
    assert set(tx["sales_channel_id"]) == {1, 2}
    price = tx["price"]
    assert price.min() > 0 and price.max() < 0.6
    assert ((price >= 0.005) & (price <= 0.2)).mean() > 0.9
    assert tx["t_dat"].is_sorted()


def test_dates_inside_window(year: SyntheticData) -> None:
    dates = year.transactions["t_dat"].str.to_date()
    assert dates.min() >= YEAR_CONFIG.first_day
    assert dates.max() <= YEAR_CONFIG.last_day
    assert YEAR_CONFIG.first_day.weekday() == 2  # Wednesday
    assert dates.n_unique() == 7 * YEAR_CONFIG.weeks  # every day has sales


def test_referential_integrity(year: SyntheticData) -> None:
    tx = year.transactions
    assert tx["article_id"].is_in(year.articles["article_id"].implode()).all()
    assert tx["customer_id"].is_in(year.customers["customer_id"].implode()).all()
    assert year.planted_segments["customer_id"].equals(year.customers["customer_id"])
    assert set(year.planted_segments["segment"]) == set(SEGMENTS)


def test_duplicate_rows_and_cold_start_customers(year: SyntheticData) -> None:
    tx = year.transactions
    assert 0.02 < tx.is_duplicated().mean() < 0.4
    buyers = tx["customer_id"].n_unique()
    assert 0.05 < 1 - buyers / year.customers.height < 0.5


def test_mean_rows_per_customer_week_matches_purchase_rate(year: SyntheticData, default: SyntheticData) -> None:
    for data, cfg in ((year, YEAR_CONFIG), (default, SyntheticConfig())):
        rate = data.transactions.height / (cfg.customers * cfg.weeks)
        assert rate == pytest.approx(cfg.purchase_rate, rel=0.1)


def test_activity_is_heavy_tailed(year: SyntheticData) -> None:
    per_customer = year.transactions.group_by("customer_id").len()["len"]
    assert per_customer.max() > 8 * per_customer.median()


def test_channel_preference_per_customer(year: SyntheticData) -> None:
    occasions = year.transactions.unique(["customer_id", "t_dat", "sales_channel_id"])

    def extreme_share(frame: pl.DataFrame) -> float:
        online = (
            frame.group_by("customer_id")
            .agg((pl.col("sales_channel_id") == 2).mean().alias("online"), pl.len())
            .filter(pl.col("len") >= 5)["online"]
        )
        return float(((online >= 0.9) | (online <= 0.1)).mean())

    shuffled = occasions.with_columns(pl.col("sales_channel_id").shuffle(seed=0))
    assert (occasions["sales_channel_id"] == 2).mean() > 0.5  # online dominates as in H&M
    assert extreme_share(occasions) > extreme_share(shuffled) + 0.1


# --------------------------------------------------------------------------------------------
# determinism and files
# --------------------------------------------------------------------------------------------


def _assert_same(a: SyntheticData, b: SyntheticData) -> None:
    for field in dataclasses.fields(SyntheticData):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert (x is None and y is None) or x.equals(y), field.name


def test_deterministic(default: SyntheticData) -> None:
    _assert_same(default, generate(SyntheticConfig()))
    other = generate(SyntheticConfig(seed=8))
    assert not other.transactions.equals(default.transactions)
    assert not other.customers.equals(default.customers)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip(default: SyntheticData, tmp_path: Path, fmt: str) -> None:
    paths = write(default, tmp_path / "out", fmt=fmt)
    assert paths == {
        "articles": tmp_path / "out" / f"articles.{fmt}",
        "customers": tmp_path / "out" / f"customers.{fmt}",
        "transactions": tmp_path / "out" / f"transactions_train.{fmt}",
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())
    frames = {
        "articles": (default.articles, ARTICLE_SCHEMA),
        "customers": (default.customers, CUSTOMER_SCHEMA),
        "transactions": (default.transactions, TRANSACTION_SCHEMA),
    }
    for key, (frame, schema) in frames.items():
        if fmt == "csv":
            back = pl.read_csv(paths[key], schema=schema)
        else:
            back = pl.read_parquet(paths[key])
        assert back.equals(frame), key


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_written_files_are_identical_across_runs(tmp_path: Path, fmt: str) -> None:
    config = SyntheticConfig(customers=300, weeks=3)
    first = write(generate(config), tmp_path / "a", fmt=fmt)
    second = write(generate(config), tmp_path / "b", fmt=fmt)
    for key in first:
        assert first[key].read_bytes() == second[key].read_bytes(), key


def test_csv_text_layout(default: SyntheticData, tmp_path: Path) -> None:
    paths = write(default, tmp_path, fmt="csv")
    art_lines = paths["articles"].read_text().splitlines()
    assert art_lines[0] == ",".join(ARTICLE_COLUMNS)
    assert re.match(r"^0\d{9},\d{6,7},", art_lines[1])  # leading zero kept, not quoted
    cust_lines = paths["customers"].read_text().splitlines()
    assert cust_lines[0] == ",".join(CUSTOMER_COLUMNS)
    row = r"^[0-9a-f]{64},(1\.0)?,(1\.0)?,[A-Z -]*,[A-Za-z]*,(\d{2}\.0)?,[0-9a-f]{64}$"
    assert all(re.match(row, line) for line in cust_lines[1:])
    tx_lines = paths["transactions"].read_text().splitlines()
    assert tx_lines[0] == ",".join(TRANSACTION_COLUMNS)
    row = r"^\d{4}-\d{2}-\d{2},[0-9a-f]{64},0\d{9},0\.\d{1,16},[12]$"
    assert all(re.match(row, line) for line in tx_lines[1:])


# --------------------------------------------------------------------------------------------
# planted structure
# --------------------------------------------------------------------------------------------


def test_new_articles_launch_every_week(enriched: pl.DataFrame) -> None:
    first_week = enriched.group_by("article_id").agg(pl.col("week").min())
    new_per_week = first_week.filter(pl.col("week") > 0).group_by("week").len()
    assert new_per_week.height >= 0.9 * (YEAR_CONFIG.weeks - 1)
    # the catalogue keeps growing: many articles first sell in the second half of the year
    assert first_week.filter(pl.col("week") >= YEAR_CONFIG.weeks // 2).height > 200


def test_popularity_is_skewed(year: SyntheticData) -> None:
    counts = year.transactions.group_by("article_id").len()["len"].sort(descending=True)
    top_decile = counts.head(max(1, counts.len() // 10)).sum()
    assert top_decile / counts.sum() > 0.3


def test_trending_beats_all_time_popularity(enriched: pl.DataFrame) -> None:
    weekly = enriched.group_by("week", "article_id").len()
    top_n, covered_trend, covered_all = 12, 0, 0
    for week in range(30, YEAR_CONFIG.weeks):

        def top(frame: pl.DataFrame) -> pl.Series:
            totals = frame.group_by("article_id").agg(pl.col("len").sum())
            ranked = totals.sort(["len", "article_id"], descending=[True, False])
            return ranked.head(top_n)["article_id"]

        trending = top(weekly.filter(pl.col("week") == week - 1))
        all_time = top(weekly.filter(pl.col("week") < week))
        target = weekly.filter(pl.col("week") == week)
        covered_trend += target.filter(pl.col("article_id").is_in(trending.implode()))["len"].sum()
        covered_all += target.filter(pl.col("article_id").is_in(all_time.implode()))["len"].sum()
    assert covered_trend > 1.2 * covered_all


def test_seasonal_articles_sell_in_season(enriched: pl.DataFrame) -> None:
    summer_types = ["Swimwear bottom", "Bikini top", "Swimsuit", "Shorts", "Sandals"]
    winter_types = ["Sweater", "Coat", "Jacket", "Boots", "Hoodie", "Cardigan", "Scarf"]
    summer = enriched.filter(pl.col("month").is_in([6, 7, 8]))["product_type_name"]
    winter = enriched.filter(pl.col("month").is_in([12, 1, 2]))["product_type_name"]
    summer_lift = summer.is_in(summer_types).mean() / winter.is_in(summer_types).mean()
    winter_lift = winter.is_in(winter_types).mean() / summer.is_in(winter_types).mean()
    assert summer_lift > 1.2 and winter_lift > 1.2
    assert summer_lift * winter_lift > 4.0


def test_repeat_purchases(enriched: pl.DataFrame) -> None:
    propensity = pl.DataFrame(
        {
            "product_type_name": [t[1] for t in PRODUCT_TYPES],
            "propensity": [t[5] for t in PRODUCT_TYPES],
        }
    )
    lines = (
        enriched.unique(["customer_id", "article_id", "t_dat"])
        .join(propensity, on="product_type_name")
        .with_columns(repeat=pl.col("date") > pl.col("date").min().over("customer_id", "article_id"))
    )
    assert lines["repeat"].mean() > 0.03
    basics = lines.filter(pl.col("propensity") >= 0.6)["repeat"].mean()
    others = lines.filter(pl.col("propensity") <= 0.2)["repeat"].mean()
    assert basics > 1.3 * others


def test_co_purchase_pairs_recur(year: SyntheticData) -> None:
    baskets = year.transactions.unique(["customer_id", "t_dat", "article_id"]).select(
        "customer_id", "t_dat", "article_id"
    )

    def pairs_per_distinct_pair(frame: pl.DataFrame) -> float:
        pairs = frame.join(frame, on=["customer_id", "t_dat"]).filter(pl.col("article_id") < pl.col("article_id_right"))
        return pairs.height / pairs.select("article_id", "article_id_right").n_unique()

    shuffled = baskets.with_columns(pl.col("article_id").shuffle(seed=1))
    assert pairs_per_distinct_pair(baskets) > 1.5 * pairs_per_distinct_pair(shuffled)
    # and colour variants of one product are bought together
    same_product = (
        year.transactions.with_columns(product=pl.col("article_id").str.slice(0, 7))
        .group_by("customer_id", "t_dat", "product")
        .agg(pl.col("article_id").n_unique())
    )
    assert (same_product["article_id"] > 1).sum() > 100


def _segment_means(frame: pl.DataFrame, column: str) -> dict[str, float]:
    return dict(frame.group_by("segment").agg(pl.col(column).mean()).iter_rows())


def test_index_loyal_customers(enriched: pl.DataFrame) -> None:
    top_share = (
        enriched.group_by("customer_id", "segment", "index_name")
        .len()
        .with_columns(total=pl.col("len").sum().over("customer_id"))
        .filter(pl.col("total") >= 5)
        .group_by("customer_id", "segment")
        .agg((pl.col("len").max() / pl.col("total").first()).alias("top"))
    )
    means = _segment_means(top_share, "top")
    assert means["index_loyal"] >= 0.8
    assert means["index_loyal"] > means["default"] + 0.15


def test_discount_hunters_buy_on_promotion(enriched: pl.DataFrame) -> None:
    usual = enriched.group_by("article_id").agg(pl.col("price").max().alias("usual"))
    rows = enriched.join(usual, on="article_id").with_columns(discounted=pl.col("price") < 0.85 * pl.col("usual"))
    means = _segment_means(rows, "discounted")
    assert means["discount_hunter"] > 2.5 * means["default"]
    assert means["default"] > 0.03  # promotions exist and lift everybody's sales


def test_bestseller_followers_buy_last_weeks_age_band_bestsellers(
    enriched: pl.DataFrame,
) -> None:
    age = pl.col("age").fill_null(0)
    banded = enriched.with_columns(
        band=(age >= 25).cast(pl.Int8) + (age >= 35).cast(pl.Int8) + (age >= 50).cast(pl.Int8)
    )
    last_week_top = (
        banded.group_by("week", "band", "article_id")
        .len()
        .with_columns(
            week=pl.col("week") + 1,  # last week's bestsellers, joined to this week's rows
            rank=pl.col("len").rank("ordinal", descending=True).over("week", "band"),
        )
        .filter(pl.col("rank") <= 10)
        .select("week", "band", "article_id", hit=pl.lit(True))
    )
    marked = banded.join(last_week_top, on=["week", "band", "article_id"], how="left")
    marked = marked.with_columns(pl.col("hit").fill_null(False))
    means = _segment_means(marked.filter(pl.col("week") > 0), "hit")
    assert means["bestseller_follower"] > 1.3 * means["default"]


def test_seasonal_customers_shop_in_one_season(enriched: pl.DataFrame) -> None:
    concentration = (
        enriched.with_columns(summer_half=pl.col("month").is_in([4, 5, 6, 7, 8, 9]))
        .group_by("customer_id", "segment")
        .agg(pl.col("summer_half").mean(), pl.len())
        .filter(pl.col("len") >= 5)
        .with_columns(share=pl.max_horizontal("summer_half", 1 - pl.col("summer_half")))
    )
    means = _segment_means(concentration, "share")
    assert means["seasonal"] > means["default"] + 0.15


def test_age_shifts_preferences(enriched: pl.DataFrame) -> None:
    young = enriched.filter(pl.col("age") < 25)["index_name"]
    older = enriched.filter(pl.col("age") > 45)["index_name"]
    assert (young == "Divided").mean() > 2 * (older == "Divided").mean()
    assert (older == "Ladieswear").mean() > 1.5 * (young == "Ladieswear").mean()
    assert (enriched["index_name"] == "Menswear").mean() > 0.03
    parents_age = enriched.filter(pl.col("age").is_between(30, 45))["index_name"]
    kids = ["Baby Sizes 50-98", "Children Sizes 92-140", "Children Sizes 134-170"]
    assert parents_age.is_in(kids).mean() > young.is_in(kids).mean()


# --------------------------------------------------------------------------------------------
# speed
# --------------------------------------------------------------------------------------------


def test_generation_is_fast() -> None:
    start = time.perf_counter()
    data = generate(SyntheticConfig(customers=20_000, weeks=20))
    elapsed = time.perf_counter() - start
    assert data.transactions.height == pytest.approx(20_000 * 20 * 0.22, rel=0.1)
    assert elapsed < 10.0
