"""Validation: typed `articles`, `customers`, `transactions` and their `quarantine_*` tables.

The gate runs before anything is stored (docs/pipeline.md, "Validation"): rows breaking a rule go to quarantine
with the rule and their source file/row; if the quarantined share passes the bound the step fails after
storing the quarantine (so the operator sees why) and before storing the table. The blocking check then
re-verifies the stored partition with the Great Expectations suite and reports the suite's outcome on the
raw rows: which expectation failed, on how many rows, with examples.
"""

import dagster as dg
import polars as pl

from hm_recs.assets.common import measured, preview
from hm_recs.core.expectations import outcomes_markdown, run_suite
from hm_recs.core.schema import PROVENANCE_COLUMNS, TABLE_COLUMNS
from hm_recs.core.source import SourceError, images_file, read_images
from hm_recs.core.validation import RuleContext, ValidationLimits, quarantine_columns, split
from hm_recs.partitions import partition_week, weekly_partitions
from hm_recs.resources import RawSource
from hm_recs.storage.reads import partition_rows
from hm_recs.storage.warehouse import PARTITIONED, Warehouse


class ValidationConfig(dg.Config):
    max_quarantine_share: float = ValidationLimits.max_quarantine_share
    max_price: float = ValidationLimits.max_price
    min_age: int = ValidationLimits.min_age
    max_age: int = ValidationLimits.max_age

    def limits(self) -> ValidationLimits:
        return ValidationLimits(self.max_price, self.min_age, self.max_age, self.max_quarantine_share)


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """A stored typed partition back in the raw text form the suite runs on."""
    return frame.select([pl.col(c).cast(pl.String) for c in frame.columns])


def validate_and_store(
    context: dg.AssetExecutionContext,
    table: str,
    raw_frame: pl.DataFrame,
    ctx: RuleContext,
    warehouse: Warehouse,
):
    """Split, store quarantine, gate, store the clean table, re-verify it (yields outputs and the check)."""
    week = partition_week(context)
    raw_rows = raw_frame.drop("week", *PROVENANCE_COLUMNS, strict=False)
    with measured(context, table) as figures:
        result = split(table, raw_rows, ctx)
        # With nothing quarantined the raw rows are the stored rows: the check's suite run covers both.
        raw_outcomes = run_suite(table, raw_rows, ctx) if result.quarantine.height else None
    share = result.quarantined_share
    examples = result.examples()
    counts = {f"quarantined/{rule}": n for rule, n in result.rule_counts.items()}
    yield dg.Output(
        result.quarantine.with_columns(pl.lit(week).alias("week")).select(quarantine_columns(table) + ["week"]),
        output_name=f"quarantine_{table}",
        metadata={
            "rows": result.quarantine.height,
            "share": round(share, 6),
            **counts,
            "examples": dg.MetadataValue.json(examples),
            "preview": preview(result.quarantine.select("source_file", "source_row", "rule", "reason")),
        },
    )
    for rule, lines in examples.items():
        context.log.warning(f"{table}: {result.rule_counts[rule]} row(s) quarantined by {rule}, e.g. {lines[0]}")
    limit = ctx.limits.max_quarantine_share
    if result.clean.height == 0 or share > limit:
        raise dg.Failure(
            description=(
                f"{table} week {week}: {result.quarantine.height} of {result.raw_rows} rows "
                f"({share:.2%}) broke validation rules, over the bound of {limit:.2%}; nothing stored. "
                f"Rules: {result.rule_counts}. See quarantine_{table}."
            ),
            metadata={
                "rule_counts": dg.MetadataValue.json(result.rule_counts),
                "examples": dg.MetadataValue.json(examples),
                "expectations": dg.MetadataValue.md(outcomes_markdown(raw_outcomes or [])),
            },
        )
    clean = result.clean.with_columns(pl.lit(week).alias("week"))
    yield dg.Output(
        clean,
        output_name=table,
        metadata={
            "rows": clean.height,
            "quarantined_rows": result.quarantine.height,
            "preview": preview(clean),
            **figures,
        },
    )

    stored = partition_rows(warehouse, table, week).drop("week")
    stored_quarantine = partition_rows(warehouse, f"quarantine_{table}", week, "count(*) as n")["n"][0]
    clean_outcomes = run_suite(
        table,
        _as_text(stored).with_columns(pl.lit(table).alias("source_file"), pl.lit(0, pl.Int64).alias("source_row")),
        ctx,
    )
    failed_on_stored = [f"{o.rule}: {o.expectation}({o.column})" for o in clean_outcomes if not o.success]
    raw_outcomes = raw_outcomes if raw_outcomes is not None else clean_outcomes
    reconciled = stored.height + int(stored_quarantine) == result.raw_rows
    yield dg.AssetCheckResult(
        check_name=f"{table}_suite",
        asset_key=table,
        passed=bool(not failed_on_stored and reconciled and share <= limit),
        metadata={
            "raw_rows": result.raw_rows,
            "stored_rows": stored.height,
            "quarantined_rows": int(stored_quarantine),
            "quarantined_share": round(share, 6),
            "max_quarantine_share": limit,
            "nothing_lost": reconciled,
            "expectations_on_raw_rows": dg.MetadataValue.md(outcomes_markdown(raw_outcomes)),
            "failed_expectations_on_raw_rows": dg.MetadataValue.json(
                [o.as_dict() for o in raw_outcomes if not o.success]
            ),
            "failed_expectations_on_stored_rows": dg.MetadataValue.json(failed_on_stored),
        },
    )


def _outs(table: str) -> dict[str, dg.AssetOut]:
    return {
        table: dg.AssetOut(
            metadata=PARTITIONED,
            kinds={"duckdb", "polars"},
            description=f"Validated, typed {table} of week W ({', '.join(TABLE_COLUMNS[table][:3])}, ...).",
        ),
        f"quarantine_{table}": dg.AssetOut(
            metadata=PARTITIONED,
            kinds={"duckdb"},
            description=f"Rows of raw_{table} that broke a rule, with rule, reason, file and row.",
        ),
    }


def _check(table: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            f"{table}_suite",
            asset=table,
            blocking=True,
            description=(
                "Great Expectations suite passes on the stored partition; quarantined share "
                "under the bound; stored + quarantined rows = raw rows"
            ),
        )
    ]


@dg.multi_asset(
    outs=_outs("articles"), partitions_def=weekly_partitions, group_name="validation", check_specs=_check("articles")
)
def validate_articles(
    context: dg.AssetExecutionContext, config: ValidationConfig, warehouse: Warehouse, raw_articles: pl.DataFrame
):
    yield from validate_and_store(context, "articles", raw_articles, RuleContext(limits=config.limits()), warehouse)


@dg.multi_asset(
    outs=_outs("customers"), partitions_def=weekly_partitions, group_name="validation", check_specs=_check("customers")
)
def validate_customers(
    context: dg.AssetExecutionContext, config: ValidationConfig, warehouse: Warehouse, raw_customers: pl.DataFrame
):
    yield from validate_and_store(context, "customers", raw_customers, RuleContext(limits=config.limits()), warehouse)


@dg.multi_asset(
    outs=_outs("transactions"),
    partitions_def=weekly_partitions,
    group_name="validation",
    check_specs=_check("transactions"),
)
def validate_transactions(
    context: dg.AssetExecutionContext,
    config: ValidationConfig,
    warehouse: Warehouse,
    raw_transactions: pl.DataFrame,
    articles: pl.DataFrame,
    customers: pl.DataFrame,
):
    ctx = RuleContext(
        limits=config.limits(),
        week=partition_week(context),
        known_article_ids=articles["article_id"],
        known_customer_ids=customers["customer_id"],
    )
    yield from validate_and_store(context, "transactions", raw_transactions, ctx, warehouse)


IMAGE_SCHEMA = {"article_id": pl.String, "image": pl.List(pl.Float32), "week": pl.Date}


def quarantine_schema(table: str) -> dict:
    """An empty quarantine frame's schema (lineage, rule, reason, the raw text columns)."""
    return {
        "source_file": pl.String,
        "source_row": pl.Int64,
        "rule": pl.String,
        "reason": pl.String,
        **{c: pl.String for c in TABLE_COLUMNS[table]},
    }


def _no_images(week) -> pl.DataFrame:
    return pl.DataFrame(schema=IMAGE_SCHEMA).with_columns(pl.lit(week).alias("week"))


@dg.multi_asset(
    outs={
        "article_images": dg.AssetOut(
            metadata=PARTITIONED,
            kinds={"duckdb", "polars"},
            description=(
                "Validated image vectors of the catalogue's articles (optional: the source's article_images file, "
                "from any vision model); empty when the source has none or the file is unusable."
            ),
        ),
        "quarantine_article_images": dg.AssetOut(
            metadata=PARTITIONED,
            kinds={"duckdb"},
            description="Rows of the image vectors file that broke a rule, with rule, reason, file and row.",
        ),
    },
    partitions_def=weekly_partitions,
    group_name="validation",
    check_specs=[
        dg.AssetCheckSpec(
            "article_images_stored",
            asset="article_images",
            blocking=True,
            description=(
                "The stored vectors are what validation kept: one per known article, all of the "
                "file's length, finite; stored + quarantined = the file's rows (none stored when "
                "there is no usable file)"
            ),
        ),
        dg.AssetCheckSpec(
            "article_images_usable",
            asset="article_images",
            blocking=False,
            description=(
                "When the source has image vectors: the file is readable, has its article_id and "
                "vector columns and its quarantined share is under the bound (a WARN: the week "
                "builds without images otherwise)"
            ),
        ),
    ],
)
def validate_article_images(
    context: dg.AssetExecutionContext,
    config: ValidationConfig,
    warehouse: Warehouse,
    raw_source: RawSource,
    articles: pl.DataFrame,
):
    """The optional image vectors: read from the raw source like the other files, validated (known article, the file's
    dimension, finite values, one row per article), bad rows quarantined; used by the content encoder when present."""
    week = partition_week(context)
    location = raw_source.location()
    chosen = images_file(location.names())
    if chosen is None:
        yield dg.Output(
            pl.DataFrame(schema=quarantine_schema("article_images")).with_columns(pl.lit(week).alias("week")),
            output_name="quarantine_article_images",
            metadata={"rows": 0},
        )
        yield dg.Output(
            _no_images(week),
            output_name="article_images",
            metadata={
                "present": False,
                "usable": False,
                "rows": 0,
                "note": "no article_images file in the source: the content encoder uses attributes and text",
            },
        )
        yield stored_check(
            warehouse, week, expected_rows=0, dim=0, known=articles["article_id"], metadata={"present": False}
        )
        yield dg.AssetCheckResult(
            check_name="article_images_usable", asset_key="article_images", passed=True, metadata={"present": False}
        )
        return
    display = location.describe(chosen.name)
    with measured(context, "article_images") as figures:
        try:
            path, checksum = location.local_path(chosen.name)
            raw_rows, dim = read_images(path, chosen)
        except SourceError as exc:
            raw_rows, dim, unusable, checksum = None, 0, str(exc), None
        else:
            unusable = None
        result = None
        if raw_rows is not None:
            ctx = RuleContext(limits=config.limits(), known_article_ids=articles["article_id"], image_dim=dim)
            result = split("article_images", raw_rows, ctx)
            if result.quarantined_share > ctx.limits.max_quarantine_share or result.clean.height == 0:
                unusable = (
                    f"{display}: {result.quarantine.height} of {result.raw_rows} rows "
                    f"({result.quarantined_share:.2%}) broke validation rules, over the bound of "
                    f"{ctx.limits.max_quarantine_share:.2%}; rules {result.rule_counts}"
                )
    quarantine = result.quarantine if result is not None else pl.DataFrame(schema=quarantine_schema("article_images"))
    examples = result.examples() if result is not None else {}
    for rule, lines in examples.items():
        context.log.warning(f"article_images: {result.rule_counts[rule]} row(s) quarantined by {rule}, e.g. {lines[0]}")
    yield dg.Output(
        quarantine.with_columns(pl.lit(week).alias("week")),
        output_name="quarantine_article_images",
        metadata={
            "rows": quarantine.height,
            **{f"quarantined/{rule}": n for rule, n in (result.rule_counts if result else {}).items()},
            "examples": dg.MetadataValue.json(examples),
        },
    )
    if unusable:
        context.log.warning(f"article_images unusable, the week builds without images: {unusable}")
        yield dg.Output(
            _no_images(week),
            output_name="article_images",
            metadata={
                "present": True,
                "usable": False,
                "rows": 0,
                "source_file": display,
                "reason": unusable,
                **figures,
            },
        )
        yield stored_check(
            warehouse,
            week,
            expected_rows=0,
            dim=0,
            known=articles["article_id"],
            metadata={"present": True, "usable": False},
        )
        yield dg.AssetCheckResult(
            check_name="article_images_usable",
            asset_key="article_images",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"present": True, "reason": unusable},
        )
        return
    clean = result.clean.with_columns(pl.lit(week).alias("week"))
    covered = clean.height / articles.height if articles.height else 0.0
    yield dg.Output(
        clean,
        output_name="article_images",
        metadata={
            "present": True,
            "usable": True,
            "rows": clean.height,
            "dimension": dim,
            "catalogue_share": round(covered, 4),
            "quarantined_rows": quarantine.height,
            "source_file": display,
            "checksum": checksum,
            **figures,
        },
    )
    yield stored_check(
        warehouse,
        week,
        expected_rows=result.raw_rows - quarantine.height,
        dim=dim,
        known=articles["article_id"],
        metadata={
            "present": True,
            "usable": True,
            "raw_rows": result.raw_rows,
            "quarantined_rows": quarantine.height,
            "catalogue_share": round(covered, 4),
        },
    )
    yield dg.AssetCheckResult(
        check_name="article_images_usable",
        asset_key="article_images",
        passed=True,
        metadata={"present": True, "dimension": dim},
    )


def stored_check(
    warehouse: Warehouse, week, expected_rows: int, dim: int, known: pl.Series, metadata: dict
) -> dg.AssetCheckResult:
    """`article_images_stored`: the stored partition re-read holds `expected_rows` vectors, of one length `dim`, finite,
    one per known article."""
    stored = partition_rows(warehouse, "article_images", week, "article_id, image")
    if stored.height:
        lengths = stored["image"].list.len()
        finite = bool(stored.select(pl.col("image").list.eval(pl.element().is_finite()).list.all().all()).item())
        facts = {
            "one_length": bool((lengths == dim).all()),
            "finite": finite,
            "one_per_article": stored["article_id"].n_unique() == stored.height,
            "known_articles": bool(stored["article_id"].is_in(known.implode()).all()),
        }
    else:
        facts = {}
    facts["rows_as_validated"] = stored.height == expected_rows
    return dg.AssetCheckResult(
        check_name="article_images_stored",
        asset_key="article_images",
        passed=all(facts.values()),
        metadata={**metadata, "stored_rows": stored.height, "expected_rows": expected_rows, **facts},
    )
