"""Row-level validation rules of the raw tables, shared by the quarantine split and the GX suite.

Each `Rule` is defined once and has two faces:
- `violated`: a polars expression, True on rows that break it (fast, vectorised; decides quarantine);
- `expectations`: the same rule as Great Expectations expectations (reported in the check's metadata).

Rules run on a *prepared* frame: the typed columns under their H&M names plus every raw text value
under `raw__<name>`, so that "does not parse" (raw present, typed null) is expressible in both faces.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import polars as pl

from hm_recs.core.schema import (
    ARTICLE_COLUMNS,
    ARTICLE_INT_COLUMNS,
    ARTICLE_OPTIONAL_COLUMNS,
    SOURCE_COLUMNS,
    TABLE_COLUMNS,
    TABLE_DTYPES,
)
from hm_recs.core.source import INVALID_UTF8_MARK
from hm_recs.core.weeks import week_end

CUSTOMER_ID_PATTERN = r"^[0-9a-f]{64}$"
ARTICLE_ID_PATTERN = r"^[0-9]{10}$"
INTEGER_PATTERN = r"^\s*-?[0-9]+(?:\.0*)?\s*$"
SALES_CHANNELS = (1, 2)
CLUB_MEMBER_STATUSES = ("ACTIVE", "PRE-CREATE", "LEFT CLUB")
NEWS_FREQUENCIES = ("NONE", "None", "Regularly", "Monthly")
RAW = "raw__"


@dataclass(frozen=True)
class ValidationLimits:
    """Bounds of the row rules and of the share of rows a table may lose to quarantine."""

    max_price: float = 1.0  # H&M prices are scaled; the real maximum is ~0.59
    min_age: int = 16
    max_age: int = 100
    max_quarantine_share: float = 0.05


@dataclass(frozen=True)
class RuleContext:
    limits: ValidationLimits = field(default_factory=ValidationLimits)
    week: dt.date | None = None  # transactions: the week being validated
    known_article_ids: pl.Series | None = None
    known_customer_ids: pl.Series | None = None
    image_dim: int | None = None  # article_images: the file's vector length


@dataclass(frozen=True)
class Expectation:
    """A GX expectation by class name and keyword arguments (GX itself is imported only to run them)."""

    type: str
    kwargs: dict


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    violated: Callable[[RuleContext], pl.Expr]
    message: Callable[[RuleContext], pl.Expr]
    expectations: Callable[[RuleContext], list[Expectation]]
    derived: Callable[[RuleContext], dict[str, pl.Expr]] = lambda ctx: {}
    """Extra columns the GX face needs (computed by polars), e.g. a lookup GX cannot do efficiently."""


def raw(column: str) -> pl.Expr:
    return pl.col(f"{RAW}{column}")


def _unparsed(column: str) -> pl.Expr:
    """Raw value present but the typed value missing: it did not parse."""
    return raw(column).is_not_null() & pl.col(column).is_null()


def _show(column: str) -> pl.Expr:
    return pl.format("{}={}", pl.lit(column), raw(column).fill_null("<empty>"))


# ---------------------------------------------------------------------------------------------- typing


def _to_int(column: str, dtype: pl.DataType) -> pl.Expr:
    return (
        raw(column)
        .str.strip_chars()
        .cast(pl.Float64, strict=False)
        .pipe(lambda f: pl.when(f == f.round()).then(f).otherwise(None))
        .cast(dtype, strict=False)
    )


def prepare(table: str, raw_frame: pl.DataFrame) -> pl.DataFrame:
    """Typed columns (H&M names) + `raw__` text columns + source lineage, for the rules to run on."""
    columns = TABLE_COLUMNS[table]
    dtypes = TABLE_DTYPES[table]
    renamed = raw_frame.rename({c: f"{RAW}{c}" for c in columns})
    typed: list[pl.Expr] = []
    for c in columns:
        dtype = dtypes[c]
        if c == "article_id":
            # Normalised once here: ids read as integers upstream lost their leading zero.
            typed.append(
                raw(c)
                .str.strip_chars()
                .pipe(lambda s: pl.when(s.str.contains(r"^[0-9]{1,10}$")).then(s.str.zfill(10)).otherwise(s))
                .alias(c)
            )
        elif c == "image":  # the text of the values joined by commas -> floats (null where one does not parse)
            typed.append(
                raw(c).str.split(",").list.eval(pl.element().str.strip_chars().cast(pl.Float32, strict=False)).alias(c)
            )
        elif c == "t_dat":
            typed.append(raw(c).str.strip_chars().str.to_date("%Y-%m-%d", strict=False).alias(c))
        elif dtype == pl.Float64():
            typed.append(raw(c).str.strip_chars().cast(pl.Float64, strict=False).alias(c))
        elif dtype.is_integer():
            typed.append(_to_int(c, dtype).alias(c))
        else:
            typed.append(raw(c).alias(c))
    return renamed.with_columns(typed).select(list(columns) + [f"{RAW}{c}" for c in columns] + list(SOURCE_COLUMNS))


# ---------------------------------------------------------------------------------------------- rules


def _utf8_rule(text_columns: Sequence[str]) -> Rule:
    return Rule(
        "utf8",
        "every value is valid UTF-8 text",
        lambda ctx: pl.any_horizontal(
            [raw(c).str.contains(INVALID_UTF8_MARK, literal=True).fill_null(False) for c in text_columns]
        ),
        lambda ctx: pl.lit("non-UTF-8 bytes in the row"),
        lambda ctx: [
            Expectation("ExpectColumnValuesToNotMatchRegex", {"column": f"{RAW}{c}", "regex": INVALID_UTF8_MARK})
            for c in text_columns
        ],
    )


def _pattern_rule(name: str, column: str, pattern: str, what: str) -> Rule:
    return Rule(
        name,
        f"{column} is {what}",
        lambda ctx: ~pl.col(column).str.contains(pattern).fill_null(False),
        lambda ctx: pl.format("{} is not {}", _show(column), pl.lit(what)),
        lambda ctx: [
            Expectation("ExpectColumnValuesToNotBeNull", {"column": column}),
            Expectation("ExpectColumnValuesToMatchRegex", {"column": column, "regex": pattern}),
        ],
    )


def _unique_rule(name: str, column: str) -> Rule:
    return Rule(
        name,
        f"{column} is unique (the first row of a duplicated id is kept, later ones quarantined)",
        lambda ctx: pl.col(column).is_duplicated() & ~pl.col(column).is_first_distinct(),
        lambda ctx: pl.format("duplicate {}", _show(column)),
        lambda ctx: [Expectation("ExpectColumnValuesToBeUnique", {"column": column})],
    )


def _known_rule(name: str, column: str, ids: Callable[[RuleContext], pl.Series | None], what: str) -> Rule:
    """Referential integrity. GX sees it as a derived `known__<column>` flag: handing GX the id set itself
    (`ExpectColumnValuesToBeInSet` with 1.4M customers) makes it re-serialise the set on every access."""
    flag = f"known__{column}"

    def is_known(ctx: RuleContext) -> pl.Expr:
        known = ids(ctx)
        return pl.lit(True) if known is None else pl.col(column).is_in(known.implode()).fill_null(False)

    return Rule(
        name,
        f"{column} refers to a known {what}",
        lambda ctx: ~is_known(ctx),
        lambda ctx: pl.format("{} is not in the validated {}s", _show(column), pl.lit(what)),
        lambda ctx: (
            []
            if ids(ctx) is None
            else [Expectation("ExpectColumnValuesToBeInSet", {"column": flag, "value_set": [True]})]
        ),
        lambda ctx: {} if ids(ctx) is None else {flag: is_known(ctx)},
    )


ARTICLE_TEXT_COLUMNS = tuple(c for c in ARTICLE_COLUMNS if c not in ARTICLE_INT_COLUMNS)
ARTICLE_REQUIRED_TEXT = tuple(c for c in ARTICLE_TEXT_COLUMNS if c not in ARTICLE_OPTIONAL_COLUMNS + ("article_id",))

ARTICLE_RULES: tuple[Rule, ...] = (
    _utf8_rule(ARTICLE_TEXT_COLUMNS),
    _pattern_rule("article_id_format", "article_id", ARTICLE_ID_PATTERN, "a 10-digit article id"),
    _unique_rule("article_id_unique", "article_id"),
    Rule(
        "codes_integer",
        "every code column (" + ", ".join(ARTICLE_INT_COLUMNS) + ") holds an integer",
        lambda ctx: pl.any_horizontal([pl.col(c).is_null() for c in ARTICLE_INT_COLUMNS]),
        lambda ctx: pl.concat_str(
            [pl.when(pl.col(c).is_null()).then(_show(c)) for c in ARTICLE_INT_COLUMNS],
            separator=", ",
            ignore_nulls=True,
        ).pipe(lambda s: pl.format("not an integer: {}", s)),
        lambda ctx: [Expectation("ExpectColumnValuesToNotBeNull", {"column": c}) for c in ARTICLE_INT_COLUMNS],
    ),
    Rule(
        "required_text",
        "descriptive columns other than detail_desc are present",
        lambda ctx: pl.any_horizontal([pl.col(c).is_null() for c in ARTICLE_REQUIRED_TEXT]),
        lambda ctx: pl.concat_str(
            [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in ARTICLE_REQUIRED_TEXT],
            separator=", ",
            ignore_nulls=True,
        ).pipe(lambda s: pl.format("missing: {}", s)),
        lambda ctx: [Expectation("ExpectColumnValuesToNotBeNull", {"column": c}) for c in ARTICLE_REQUIRED_TEXT],
    ),
    Rule(
        "article_id_product_code",
        "article_id starts with its 7-digit product_code",
        lambda ctx: (
            pl.col("article_id").str.slice(0, 7) != pl.col("product_code").cast(pl.String).str.zfill(7)
        ).fill_null(False),
        lambda ctx: pl.format("{} does not start with product_code {}", _show("article_id"), raw("product_code")),
        lambda ctx: [],  # cross-column rule: no GX column-map expectation; counted from the quarantine
    ),
)

CUSTOMER_RULES: tuple[Rule, ...] = (
    _utf8_rule(("customer_id", "club_member_status", "fashion_news_frequency", "postal_code")),
    _pattern_rule("customer_id_format", "customer_id", CUSTOMER_ID_PATTERN, "a 64-character hex id"),
    _unique_rule("customer_id_unique", "customer_id"),
    Rule(
        "age_range",
        "age is empty or a whole number of years within the configured range",
        lambda ctx: (
            _unparsed("age") | ~pl.col("age").is_between(ctx.limits.min_age, ctx.limits.max_age).fill_null(True)
        ),
        lambda ctx: pl.format(
            "{} outside [{}, {}]", _show("age"), pl.lit(ctx.limits.min_age), pl.lit(ctx.limits.max_age)
        ),
        lambda ctx: [
            Expectation("ExpectColumnValuesToMatchRegex", {"column": f"{RAW}age", "regex": INTEGER_PATTERN}),
            Expectation(
                "ExpectColumnValuesToBeBetween",
                {"column": "age", "min_value": ctx.limits.min_age, "max_value": ctx.limits.max_age},
            ),
        ],
    ),
    Rule(
        "flags_valid",
        "FN and Active are empty or 1",
        lambda ctx: pl.any_horizontal([_unparsed(c) | (pl.col(c) != 1).fill_null(False) for c in ("FN", "Active")]),
        lambda ctx: pl.format("{}, {}", _show("FN"), _show("Active")),
        lambda ctx: [
            e
            for c in ("FN", "Active")
            for e in (
                Expectation("ExpectColumnValuesToMatchRegex", {"column": f"{RAW}{c}", "regex": INTEGER_PATTERN}),
                Expectation("ExpectColumnValuesToBeInSet", {"column": c, "value_set": [1]}),
            )
        ],
    ),
    Rule(
        "club_member_status_known",
        "club_member_status is empty or one of " + ", ".join(CLUB_MEMBER_STATUSES),
        lambda ctx: ~pl.col("club_member_status").is_in(CLUB_MEMBER_STATUSES).fill_null(True),
        lambda ctx: _show("club_member_status"),
        lambda ctx: [
            Expectation(
                "ExpectColumnValuesToBeInSet", {"column": "club_member_status", "value_set": list(CLUB_MEMBER_STATUSES)}
            )
        ],
    ),
    Rule(
        "fashion_news_frequency_known",
        "fashion_news_frequency is empty or one of " + ", ".join(NEWS_FREQUENCIES),
        lambda ctx: ~pl.col("fashion_news_frequency").is_in(NEWS_FREQUENCIES).fill_null(True),
        lambda ctx: _show("fashion_news_frequency"),
        lambda ctx: [
            Expectation(
                "ExpectColumnValuesToBeInSet", {"column": "fashion_news_frequency", "value_set": list(NEWS_FREQUENCIES)}
            )
        ],
    ),
)


def _in_week(ctx: RuleContext) -> pl.Expr:
    assert ctx.week is not None, "transactions are validated for a week"
    return pl.col("t_dat").is_between(pl.lit(ctx.week), pl.lit(week_end(ctx.week)))


TRANSACTION_RULES: tuple[Rule, ...] = (
    _utf8_rule(("t_dat", "customer_id", "article_id", "price", "sales_channel_id")),
    Rule(
        "t_dat_date",
        "t_dat is a YYYY-MM-DD date",
        lambda ctx: pl.col("t_dat").is_null(),
        lambda ctx: pl.format("{} is not a YYYY-MM-DD date", _show("t_dat")),
        lambda ctx: [Expectation("ExpectColumnValuesToNotBeNull", {"column": "t_dat"})],
    ),
    Rule(
        "t_dat_in_week",
        "t_dat falls inside the week being ingested (Wednesday to Tuesday)",
        lambda ctx: ~_in_week(ctx).fill_null(True),
        lambda ctx: pl.format(
            "{} outside week {}..{}",
            _show("t_dat"),
            pl.lit(str(ctx.week)),
            pl.lit(str(week_end(ctx.week)) if ctx.week else ""),
        ),
        lambda ctx: [
            Expectation(
                "ExpectColumnValuesToBeBetween",
                {
                    "column": "t_dat",
                    "min_value": dt.datetime.combine(ctx.week, dt.time()),
                    "max_value": dt.datetime.combine(week_end(ctx.week), dt.time()),
                },
            )
        ],
    ),
    _pattern_rule("customer_id_format", "customer_id", CUSTOMER_ID_PATTERN, "a 64-character hex id"),
    _pattern_rule("article_id_format", "article_id", ARTICLE_ID_PATTERN, "a 10-digit article id"),
    Rule(
        "price_range",
        "price is a number > 0 and <= the configured maximum",
        lambda ctx: ~(pl.col("price") > 0).fill_null(False) | (pl.col("price") > ctx.limits.max_price).fill_null(False),
        lambda ctx: pl.format("{} not in (0, {}]", _show("price"), pl.lit(ctx.limits.max_price)),
        lambda ctx: [
            Expectation("ExpectColumnValuesToNotBeNull", {"column": "price"}),
            Expectation(
                "ExpectColumnValuesToBeBetween",
                {"column": "price", "min_value": 0, "max_value": ctx.limits.max_price, "strict_min": True},
            ),
        ],
    ),
    Rule(
        "sales_channel_known",
        "sales_channel_id is 1 (store) or 2 (online)",
        lambda ctx: ~pl.col("sales_channel_id").is_in(SALES_CHANNELS).fill_null(False),
        lambda ctx: pl.format("{} not in (1, 2)", _show("sales_channel_id")),
        lambda ctx: [
            Expectation("ExpectColumnValuesToNotBeNull", {"column": "sales_channel_id"}),
            Expectation(
                "ExpectColumnValuesToBeInSet", {"column": "sales_channel_id", "value_set": list(SALES_CHANNELS)}
            ),
        ],
    ),
    _known_rule("customer_known", "customer_id", lambda ctx: ctx.known_customer_ids, "customer"),
    _known_rule("article_known", "article_id", lambda ctx: ctx.known_article_ids, "article"),
)


def _image_length() -> pl.Expr:
    return pl.col("image").list.len()


def _image_finite() -> pl.Expr:
    """Every value parsed and is finite (NaN, inf and empty values are not)."""
    return pl.col("image").list.eval(pl.element().is_not_null() & pl.element().is_finite()).list.all().fill_null(False)


IMAGE_RULES: tuple[Rule, ...] = (
    _utf8_rule(("article_id", "image")),
    _pattern_rule("article_id_format", "article_id", ARTICLE_ID_PATTERN, "a 10-digit article id"),
    _unique_rule("article_id_unique", "article_id"),
    Rule(
        "image_dimension",
        "the vector has the file's length",
        lambda ctx: (_image_length() != ctx.image_dim).fill_null(True),
        lambda ctx: pl.format("{} values, the file's vectors have {}", _image_length(), pl.lit(ctx.image_dim)),
        lambda ctx: [
            Expectation("ExpectColumnValuesToBeInSet", {"column": "length__image", "value_set": [ctx.image_dim]})
        ],
        lambda ctx: {"length__image": _image_length()},
    ),
    Rule(
        "image_finite",
        "every value of the vector is a finite number",
        lambda ctx: ~_image_finite(),
        lambda ctx: pl.lit("a value is empty, not a number, NaN or infinite"),
        lambda ctx: [Expectation("ExpectColumnValuesToBeInSet", {"column": "finite__image", "value_set": [True]})],
        lambda ctx: {"finite__image": _image_finite()},
    ),
    _known_rule("article_known", "article_id", lambda ctx: ctx.known_article_ids, "article"),
)

TABLE_RULES: dict[str, tuple[Rule, ...]] = {
    "articles": ARTICLE_RULES,
    "customers": CUSTOMER_RULES,
    "transactions": TRANSACTION_RULES,
    "article_images": IMAGE_RULES,
}


# ---------------------------------------------------------------------------------------------- split


@dataclass(frozen=True)
class ValidationResult:
    clean: pl.DataFrame  # typed table, H&M column order
    quarantine: pl.DataFrame  # source_file, source_row, rule, reason, raw text columns
    raw_rows: int
    rule_counts: dict[str, int]  # rows breaking each rule (a row may break several)

    @property
    def quarantined_share(self) -> float:
        return self.quarantine.height / self.raw_rows if self.raw_rows else 0.0

    def examples(self, n: int = 3) -> dict[str, list[str]]:
        """Up to `n` 'file row N: reason' lines per broken rule."""
        out: dict[str, list[str]] = {}
        for name in self.rule_counts:
            rows = self.quarantine.filter(pl.col("rule").str.split(", ").list.contains(name)).head(n)
            out[name] = [f"{r['source_file']} row {r['source_row']}: {r['reason']}" for r in rows.iter_rows(named=True)]
        return out


QUARANTINE_LEAD_COLUMNS = ("source_file", "source_row", "rule", "reason")


def quarantine_columns(table: str) -> list[str]:
    return list(QUARANTINE_LEAD_COLUMNS) + list(TABLE_COLUMNS[table])


def split(table: str, raw_frame: pl.DataFrame, ctx: RuleContext) -> ValidationResult:
    """Type `raw_frame`, evaluate every rule, and split it into clean rows and quarantined rows."""
    rules = TABLE_RULES[table]
    prepared = prepare(table, raw_frame)
    flags = [rule.violated(ctx).alias(f"__v_{rule.name}") for rule in rules]
    flagged = prepared.with_columns(flags)
    flag_names = [f"__v_{r.name}" for r in rules]
    bad = pl.any_horizontal([pl.col(f) for f in flag_names])
    rule_counts = {
        r.name: int(n)
        for r, n in zip(rules, flagged.select([pl.col(f).sum() for f in flag_names]).row(0), strict=True)
        if n
    }
    columns = TABLE_COLUMNS[table]
    clean = flagged.filter(~bad).select(list(columns))
    quarantine = flagged.filter(bad).select(
        list(SOURCE_COLUMNS)
        + [
            pl.concat_str(
                [pl.when(pl.col(f"__v_{r.name}")).then(pl.lit(r.name)) for r in rules],
                separator=", ",
                ignore_nulls=True,
            ).alias("rule"),
            pl.concat_str(
                [
                    pl.when(pl.col(f"__v_{r.name}")).then(pl.format("{}: {}", pl.lit(r.name), r.message(ctx)))
                    for r in rules
                ],
                separator="; ",
                ignore_nulls=True,
            ).alias("reason"),
        ]
        + [raw(c).alias(c) for c in columns]
    )
    return ValidationResult(clean=clean, quarantine=quarantine, raw_rows=raw_frame.height, rule_counts=rule_counts)


def derived_columns(table: str, ctx: RuleContext) -> dict[str, pl.Expr]:
    """Columns the GX face of the table's rules reads besides the prepared ones."""
    return {name: expr for rule in TABLE_RULES[table] for name, expr in rule.derived(ctx).items()}


def expectations_for(table: str, ctx: RuleContext) -> list[tuple[str, Expectation]]:
    """The table's GX suite as (rule name, expectation) pairs, derived from the same rules."""
    return [(rule.name, e) for rule in TABLE_RULES[table] for e in rule.expectations(ctx)]
