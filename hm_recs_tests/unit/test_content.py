"""The content encoder's description words and image vectors: what tells apart articles that share every attribute."""

import numpy as np
import polars as pl
import pytest
import torch

from hm_recs.models.common import IdIndex, encode_purchases
from hm_recs.models.configs import ContentConfig
from hm_recs.models.content import CONTENT_COLUMNS, ContentModel, TextVocabulary, train_content_encoder
from hm_recs.storage.encoding import from_bytes, to_bytes
from hm_recs.synthetic import generate, profile_config


@pytest.fixture(scope="module")
def grocery():
    """A shop whose articles share their attributes 5-15 at a time, with image vectors."""
    data = generate(profile_config("grocery", customers=1500, weeks=8, seed=2, image_dim=8))
    articles = data.articles.sort("article_id")
    transactions = data.transactions.with_columns(pl.col("t_dat").str.to_date())
    purchases = encode_purchases(
        transactions, IdIndex.of(data.customers["customer_id"].sort()), IdIndex.of(articles["article_id"])
    )
    return articles, purchases, data.article_images


def twins(articles: pl.DataFrame) -> pl.DataFrame:
    """Groups of articles that share every attribute and their description (a product's colour variants)."""
    return (
        articles.group_by(list(CONTENT_COLUMNS) + ["detail_desc"])
        .agg("article_id")
        .filter(pl.col("article_id").list.len() > 1)
    )


def test_text_vocabulary_is_the_catalogues_own_words() -> None:
    articles = pl.DataFrame(
        {
            "prod_name": ["Luna top", "Luna dress", "Mia top", "Rex sock"],
            "detail_desc": ["Soft top.", None, "Soft top. A boho mood.", "Soft sock."],
        }
    )
    vocabulary = TextVocabulary.fit(articles, size=10, max_share=0.75)
    # "soft" is in 3 of 4 articles (kept at a 0.75 bound), words of a single article are dropped; ties by name
    assert vocabulary.words == ["soft", "luna", "top"]
    tokens = vocabulary.tokens(articles)
    assert tokens.shape == (4, 32) and tokens[1].tolist()[:2] == [2, 0]  # "luna"; "dress" is unknown


def test_words_and_images_tell_apart_articles_that_share_every_attribute(grocery) -> None:
    articles, purchases, images = grocery
    plain = train_content_encoder(
        articles, purchases, ContentConfig(epochs=2, text_dim=0, image_dim=0), log=lambda m: None
    )
    words = train_content_encoder(articles, purchases, ContentConfig(epochs=2, image_dim=0), log=lambda m: None)
    full = train_content_encoder(articles, purchases, ContentConfig(epochs=2), log=lambda m: None, images=images)
    assert plain.text is None and words.text is not None and full.image_input == 8
    # an article and its copy with another description: only the words tell them apart
    copy = articles.head(1).with_columns(
        pl.lit("9999999001").alias("article_id"), pl.lit("Ribbed cotton with a boho mood.").alias("detail_desc")
    )
    both = pl.concat([articles.head(1), copy])
    assert torch.equal(plain.vectors(both)[0], plain.vectors(both)[1])
    assert not torch.equal(words.vectors(both)[0], words.vectors(both)[1])
    # colour variants that share attributes and description: only their image vectors tell them apart
    groups = twins(articles)
    assert groups.height > 10
    position = {a: i for i, a in enumerate(articles["article_id"].to_list())}
    first, second = ([position[ids[k]] for ids in groups["article_id"]] for k in (0, 1))
    by_words, everything = words.vectors(articles), full.vectors(articles, images)
    assert torch.equal(by_words[first], by_words[second])
    assert (everything[first] - everything[second]).abs().sum(1).min() > 0
    restored = ContentModel.load(from_bytes(to_bytes(full.state())[0]))
    assert torch.equal(restored.vectors(articles, images), everything)


def test_articles_without_an_image_vector_still_get_one(grocery) -> None:
    articles, purchases, images = grocery
    model = train_content_encoder(
        articles, purchases, ContentConfig(epochs=1), log=lambda m: None, images=images.head(50)
    )
    without = model.vectors(articles, None)
    assert without.shape == (articles.height, model.config.dim) and torch.isfinite(without).all()
    with_some = model.vectors(articles, images.head(50))
    changed = (with_some - without).abs().sum(1).numpy() > 0
    assert changed[:50].all() and not changed[50:].any()  # only the articles that have a vector move
    assert np.isfinite(with_some.numpy()).all()
