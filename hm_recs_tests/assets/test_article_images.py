"""Optional image vectors: read from the raw source (Parquet list column or CSV v0..vN-1), validated, bad rows
quarantined with file, row and rule; an unusable file leaves the week building without images, and says so."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from hm_recs.core.source import SourceError, images_file, read_images
from hm_recs.core.validation import RuleContext, split
from hm_recs_tests.conftest import INGESTION, WEEKS, materialize_week, read_table, resources_for

WEEK = WEEKS[0]


def vectors_for(articles: pl.DataFrame, dim: int = 8, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "article_id": articles["article_id"],
            "embedding": rng.normal(size=(articles.height, dim)).astype(np.float32).tolist(),
        }
    )


def test_parquet_and_csv_files_read_to_the_same_raw_rows(tmp_path, small_data) -> None:
    frame = vectors_for(small_data.articles.head(5), dim=3)
    frame.write_parquet(tmp_path / "article_images.parquet")
    frame.select("article_id", *(pl.col("embedding").list.get(i).alias(f"v{i}") for i in range(3))).write_csv(
        tmp_path / "article_images.csv"
    )
    parquet, dim_p = read_images(tmp_path / "article_images.parquet", images_file({"article_images.parquet"}))
    csv, dim_c = read_images(tmp_path / "article_images.csv", images_file({"article_images.csv"}))
    assert dim_p == dim_c == 3 and parquet["source_row"].to_list() == [1, 2, 3, 4, 5]
    values = lambda f: f["image"].str.split(",").list.eval(pl.element().cast(pl.Float32)).to_list()  # noqa: E731
    assert np.allclose(values(parquet), values(csv))


@pytest.mark.parametrize(
    "frame, rule",
    [
        (pl.DataFrame({"id": ["0108775015"], "v0": [0.1]}), "columns_present"),  # no article_id
        (pl.DataFrame({"article_id": ["0108775015"], "v1": [0.1]}), "columns_present"),  # not v0..vN-1
    ],
)
def test_a_file_without_its_columns_is_a_clear_error(tmp_path, frame, rule) -> None:
    frame.write_csv(tmp_path / "article_images.csv")
    with pytest.raises(SourceError, match="article_images.csv") as error:
        read_images(tmp_path / "article_images.csv", images_file({"article_images.csv"}))
    assert error.value.rule == rule


def test_bad_rows_are_quarantined_with_their_rule(tmp_path, small_data) -> None:
    ids = small_data.articles["article_id"].head(3).to_list()
    pl.DataFrame(
        {
            "article_id": [ids[0], ids[1], "0999999999", ids[0], ids[2]],
            "image": [[0.1, 0.2], [float("nan"), 0.1], [0.1, 0.1], [0.3, 0.3], [1.0, 2.0, 3.0]],
        }
    ).write_parquet(tmp_path / "article_images.parquet")
    raw, dim = read_images(tmp_path / "article_images.parquet", images_file({"article_images.parquet"}))
    result = split(
        "article_images", raw, RuleContext(known_article_ids=small_data.articles["article_id"], image_dim=dim)
    )
    assert dim == 2 and result.clean["article_id"].to_list() == [ids[0]]
    rules = dict(zip(result.quarantine["source_row"], result.quarantine["rule"], strict=True))
    assert rules == {2: "image_finite", 3: "article_known", 4: "article_id_unique", 5: "image_dimension"}
    assert result.quarantine["image"].to_list()[0] == "NaN,0.1"  # the raw values are kept


def images_week(source, tmp_path):
    resources = resources_for(source, tmp_path)
    result = materialize_week(WEEK, resources, selection=INGESTION)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    materialised = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert checks["article_images_stored"].passed, checks[
        "article_images_stored"
    ].metadata  # blocking: what is stored is sound
    return resources, result, checks["article_images_usable"], materialised


def test_valid_images_are_stored_and_bad_rows_quarantined(source_copy, tmp_path, small_data) -> None:
    good = vectors_for(small_data.articles)
    bad = pl.DataFrame({"article_id": [small_data.articles["article_id"][0]], "embedding": [[float("inf")] * 8]})
    pl.concat([good, bad]).write_parquet(source_copy / "article_images.parquet")
    resources, result, check, metadata = images_week(source_copy, tmp_path)
    assert result.success and check.passed
    stored = read_table(resources, f"select * from hm.article_images where week = '{WEEK}'")
    assert stored.height == small_data.articles.height and stored.schema["image"] == pl.List(pl.Float32)
    assert np.allclose(
        np.stack(stored.sort("article_id")["image"].to_numpy()),
        np.stack(good.sort("article_id")["embedding"].to_numpy()),
    )
    quarantine = read_table(resources, f"select * from hm.quarantine_article_images where week = '{WEEK}'")
    assert quarantine.select("source_file", "source_row", "rule").rows() == [
        ("article_images.parquet", good.height + 1, "article_id_unique, image_finite")
    ]
    assert metadata["article_images"]["usable"].value is True and metadata["article_images"]["dimension"].value == 8


def test_an_unusable_file_leaves_the_week_building_without_images(source_copy, tmp_path, small_data) -> None:
    # every vector has NaN: over the quarantine bound, so none is used; the other tables are built as usual
    frame = vectors_for(small_data.articles).with_columns(pl.col("embedding").list.eval(pl.element() * float("nan")))
    frame.write_parquet(source_copy / "article_images.parquet")
    resources, result, check, metadata = images_week(source_copy, tmp_path)
    assert result.success and not check.passed and check.severity.value == "WARN"
    assert "over the bound" in metadata["article_images"]["reason"].value
    assert read_table(resources, f"select count(*) n from hm.article_images where week = '{WEEK}'")["n"][0] == 0
    quarantined = read_table(resources, f"select count(*) n from hm.quarantine_article_images where week = '{WEEK}'")
    assert quarantined["n"][0] == small_data.articles.height  # nothing lost: every row is in quarantine with its rule
    assert read_table(resources, f"select count(*) n from hm.articles where week = '{WEEK}'")["n"][0] > 0


def test_no_images_file_is_no_problem(source_copy, tmp_path) -> None:
    resources, result, check, metadata = images_week(source_copy, tmp_path)
    assert result.success and check.passed and metadata["article_images"]["present"].value is False
