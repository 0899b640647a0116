"""The `articles` table written from the catalogue, with its text columns."""

from __future__ import annotations

import numpy as np
import polars as pl

from hm_recs.core.schema import ARTICLE_COLUMNS
from hm_recs.synthetic.catalogue import INDEX_POS, Catalogue
from hm_recs.synthetic.vocabulary import (
    COLOURS,
    DENIM_APPEARANCE,
    DEPARTMENTS,
    DESC_FEATURES,
    DESC_FITS,
    DESC_MATERIALS,
    DESC_STYLES,
    GARMENT_GROUPS,
    GRAPHICAL_APPEARANCES,
    INDEXES,
    NAME_STEMS,
    PERCEIVED_COLOUR_MASTERS,
    PERCEIVED_COLOUR_VALUES,
    PRODUCT_TYPES,
    SECTIONS,
)


def _column(values: list, idx: np.ndarray) -> pl.Series:
    """``values[idx]`` as a polars Series: a vocabulary lookup without a loop over rows."""
    return pl.Series(values).gather(idx)


def _coded_names(names: dict[int, str], codes: np.ndarray) -> pl.Series:
    """Names of integer ``codes`` from a code -> name vocabulary."""
    keys = sorted(names)
    return _column([names[k] for k in keys], np.searchsorted(keys, codes))


def _text_columns(cat: Catalogue) -> tuple[pl.Series, pl.Series]:
    """prod_name ("Luna vest top", sometimes "(1)" suffixed) and detail_desc (a short sentence,
    null for a few products)."""
    type_lower = _column([t[1].lower() for t in PRODUCT_TYPES], cat.product_type)
    stem = _column(list(NAME_STEMS), cat.name_stem)
    names = pl.DataFrame({"stem": stem, "type": type_lower, "suffix": cat.name_suffix})
    prod_name = names.select(
        pl.concat_str(
            [
                pl.col("stem"),
                pl.lit(" "),
                pl.col("type"),
                pl.when(pl.col("suffix")).then(pl.lit(" (1)")).otherwise(pl.lit("")),
            ]
        )
    ).to_series()
    parts = pl.DataFrame(
        {
            "fit": _column(list(DESC_FITS), cat.desc_fit),
            "type": type_lower,
            "material": _column(list(DESC_MATERIALS), cat.desc_material),
            "feature": _column(list(DESC_FEATURES), cat.desc_feature),
            "null": cat.desc_null,
            "style": _column(list(DESC_STYLES), cat.style % len(DESC_STYLES)),
            "named": cat.desc_style,
        }
    )
    sentence = pl.format("{} {} in {} with {}.", "fit", "type", "material", "feature")
    sentence = (
        pl.when(pl.col("named"))
        .then(pl.concat_str([sentence, pl.lit(" "), pl.col("style"), pl.lit(".")]))
        .otherwise(sentence)
    )
    desc = parts.select(pl.when(pl.col("null")).then(None).otherwise(sentence)).to_series()
    return prod_name, desc


def article_ids(cat: Catalogue) -> pl.Series:
    """Every article's id (product code and variant, 10 digits with the leading zero) in internal order."""
    return pl.Series(cat.product_code * 1000 + cat.variant_no).cast(pl.String).str.zfill(10)


def articles_frame(cat: Catalogue) -> tuple[pl.DataFrame, pl.Series]:
    """The articles table (sorted by article_id, as in H&M) and the article_id series in internal
    order (for gathering transaction ids)."""
    ids = article_ids(cat)
    dept, sec, ptype, colour = cat.department, cat.section, cat.product_type, cat.colour
    index = np.array([INDEX_POS[s[2]] for s in SECTIONS])[sec]
    colour_value = np.array([c[2] for c in COLOURS])[colour]
    colour_master = np.array([c[3] for c in COLOURS])[colour]
    garment = np.array([d[3] for d in DEPARTMENTS])[dept]
    appearance = np.where(cat.appearance_name_idx < 0, len(GRAPHICAL_APPEARANCES), cat.appearance_name_idx)
    prod_name, desc = _text_columns(cat)
    frame = pl.DataFrame(
        {
            "article_id": ids,
            "product_code": cat.product_code.astype(np.int64),
            "prod_name": prod_name,
            "product_type_no": _column([t[0] for t in PRODUCT_TYPES], ptype),
            "product_type_name": _column([t[1] for t in PRODUCT_TYPES], ptype),
            "product_group_name": _column([t[2] for t in PRODUCT_TYPES], ptype),
            "graphical_appearance_no": cat.appearance_no.astype(np.int64),
            "graphical_appearance_name": _column(
                [g[1] for g in GRAPHICAL_APPEARANCES] + [DENIM_APPEARANCE[1]], appearance
            ),
            "colour_group_code": _column([c[0] for c in COLOURS], colour),
            "colour_group_name": _column([c[1] for c in COLOURS], colour),
            "perceived_colour_value_id": colour_value.astype(np.int64),
            "perceived_colour_value_name": _coded_names(PERCEIVED_COLOUR_VALUES, colour_value),
            "perceived_colour_master_id": colour_master.astype(np.int64),
            "perceived_colour_master_name": _coded_names(PERCEIVED_COLOUR_MASTERS, colour_master),
            "department_no": _column([d[0] for d in DEPARTMENTS], dept),
            "department_name": _column([d[1] for d in DEPARTMENTS], dept),
            "index_code": _column([ix[0] for ix in INDEXES], index),
            "index_name": _column([ix[1] for ix in INDEXES], index),
            "index_group_no": _column([ix[2] for ix in INDEXES], index),
            "index_group_name": _column([ix[3] for ix in INDEXES], index),
            "section_no": _column([s[0] for s in SECTIONS], sec),
            "section_name": _column([s[1] for s in SECTIONS], sec),
            "garment_group_no": garment.astype(np.int64),
            "garment_group_name": _coded_names(GARMENT_GROUPS, garment),
            "detail_desc": desc,
        }
    )
    return frame.select(ARTICLE_COLUMNS).sort("article_id"), ids
