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
from hm_recs.configs import config_of, core_config
from hm_recs.core.expectations import outcomes_markdown, run_suite
from hm_recs.core.schema import PROVENANCE_COLUMNS, TABLE_COLUMNS
from hm_recs.core.source import SourceError, images_file, read_images
from hm_recs.core.validation import RuleContext, ValidationLimits, ValidationResult, quarantine_columns, split
from hm_recs.partitions import partition_week, weekly_partitions
from hm_recs.resources import RawSource
from hm_recs.storage.reads import partition_rows
from hm_recs.storage.warehouse import PARTITIONED, Warehouse


class ValidationConfig(config_of(ValidationLimits)):
    """The row rules' bounds and the share of rows a table may lose to quarantine (`core.validation`)."""


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
    yield _quarantine_output(table, week, result, share, examples)
    for rule, lines in examples.items():
        context.log.warning(f"{table}: {result.rule_counts[rule]} row(s) quarantined by {rule}, e.g. {lines[0]}")
    limit = ctx.limits.max_quarantine_share
    if result.clean.height == 0 or share > limit:
        raise _quarantine_failure(table, week, result, share, limit, examples, raw_outcomes)
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
    # built after the clean table's output was handled: it re-reads the stored partition
    yield _suite_check(table, week, result, ctx, warehouse, raw_outcomes)


def _quarantine_output(table: str, week, result: ValidationResult, share: float, examples: dict) -> dg.Output:
    """The week's `quarantine_<table>` rows, with their count, share, per-rule counts and examples."""
    counts = {f"quarantined/{rule}": n for rule, n in result.rule_counts.items()}
    return dg.Output(
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


def _quarantine_failure(
    table: str, week, result: ValidationResult, share: float, limit: float, examples: dict, raw_outcomes: list | None
) -> dg.Failure:
    """The gate's failure when too much of the table broke the rules (or nothing is left): nothing is stored."""
    return dg.Failure(
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


def _suite_check(
    table: str, week, result: ValidationResult, ctx: RuleContext, warehouse: Warehouse, raw_outcomes: list | None
) -> dg.AssetCheckResult:
    """`<table>_suite`: the suite re-run on the stored partition, the rows reconciled (stored + quarantined = raw)
    and the suite's outcome on the raw rows (the stored run's when nothing was quarantined)."""
    share = result.quarantined_share
    limit = ctx.limits.max_quarantine_share
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
    return dg.AssetCheckResult(
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
    yield from validate_and_store(
        context, "articles", raw_articles, RuleContext(limits=core_config(ValidationLimits, config)), warehouse
    )


@dg.multi_asset(
    outs=_outs("customers"), partitions_def=weekly_partitions, group_name="validation", check_specs=_check("customers")
)
def validate_customers(
    context: dg.AssetExecutionContext, config: ValidationConfig, warehouse: Warehouse, raw_customers: pl.DataFrame
):
    yield from validate_and_store(
        context, "customers", raw_customers, RuleContext(limits=core_config(ValidationLimits, config)), warehouse
    )


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
        limits=core_config(ValidationLimits, config),
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
    known = articles["article_id"]
    if chosen is None:
        yield from _no_image_file(warehouse, week, known)
        return
    display = location.describe(chosen.name)
    with measured(context, "article_images") as figures:
        result, dim, checksum, unusable = validated_images(location, chosen, display, known, config)
    quarantine = result.quarantine if result is not None else pl.DataFrame(schema=quarantine_schema("article_images"))
    examples = result.examples() if result is not None else {}
    for rule, lines in examples.items():
        context.log.warning(f"article_images: {result.rule_counts[rule]} row(s) quarantined by {rule}, e.g. {lines[0]}")
    quarantine_meta = {
        "rows": quarantine.height,
        **{f"quarantined/{rule}": n for rule, n in (result.rule_counts if result else {}).items()},
        "examples": dg.MetadataValue.json(examples),
    }
    if unusable:
        context.log.warning(f"article_images unusable, the week builds without images: {unusable}")
        yield from _unusable_image_file(warehouse, week, known, quarantine, quarantine_meta, display, unusable, figures)
        return
    yield from _usable_image_file(
        warehouse, week, articles, quarantine, quarantine_meta, result, dim, checksum, display, figures
    )


def _no_image_file(warehouse: Warehouse, week, known: pl.Series):
    """The events when the source has no image vectors file: nothing stored, and that is no problem."""
    absent = {"present": False}
    yield from image_outputs(
        warehouse,
        week,
        known,
        None,
        {"rows": 0},
        {
            **absent,
            "usable": False,
            "rows": 0,
            "note": "no article_images file in the source: the content encoder uses attributes and text",
        },
        absent,
        dg.AssetCheckResult(
            check_name="article_images_usable", asset_key="article_images", passed=True, metadata=absent
        ),
    )


def _unusable_image_file(
    warehouse: Warehouse,
    week,
    known: pl.Series,
    quarantine: pl.DataFrame,
    quarantine_meta: dict,
    display: str,
    unusable: str,
    figures: dict,
):
    """The events of an unusable image vectors file: its quarantine kept, no vectors stored, a WARN check saying why."""
    present = {"present": True, "usable": False}
    yield from image_outputs(
        warehouse,
        week,
        known,
        quarantine,
        quarantine_meta,
        {**present, "rows": 0, "source_file": display, "reason": unusable, **figures},
        present,
        dg.AssetCheckResult(
            check_name="article_images_usable",
            asset_key="article_images",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"present": True, "reason": unusable},
        ),
    )


def _usable_image_file(
    warehouse: Warehouse,
    week,
    articles: pl.DataFrame,
    quarantine: pl.DataFrame,
    quarantine_meta: dict,
    result: ValidationResult,
    dim: int,
    checksum,
    display: str,
    figures: dict,
):
    """The events of a usable image vectors file: its clean vectors stored, with their share of the catalogue."""
    clean = result.clean.with_columns(pl.lit(week).alias("week"))
    covered = round(clean.height / articles.height if articles.height else 0.0, 4)
    yield from image_outputs(
        warehouse,
        week,
        articles["article_id"],
        quarantine,
        quarantine_meta,
        {
            "present": True,
            "usable": True,
            "rows": clean.height,
            "dimension": dim,
            "catalogue_share": covered,
            "quarantined_rows": quarantine.height,
            "source_file": display,
            "checksum": checksum,
            **figures,
        },
        {
            "present": True,
            "usable": True,
            "raw_rows": result.raw_rows,
            "quarantined_rows": quarantine.height,
            "catalogue_share": covered,
        },
        dg.AssetCheckResult(
            check_name="article_images_usable",
            asset_key="article_images",
            passed=True,
            metadata={"present": True, "dimension": dim},
        ),
        clean=clean,
        dim=dim,
        expected_rows=result.raw_rows - quarantine.height,
    )


def validated_images(location, chosen, display: str, known: pl.Series, config: ValidationConfig):
    """The image file read and split by the rules: (split result or None, its vector length, checksum, why the
    file is unusable or None). Unusable: unreadable, or more of it quarantined than the bound allows."""
    try:
        path, checksum = location.local_path(chosen.name)
        raw_rows, dim = read_images(path, chosen)
    except SourceError as exc:
        return None, 0, None, str(exc)
    limits = core_config(ValidationLimits, config)
    result = split("article_images", raw_rows, RuleContext(limits=limits, known_article_ids=known, image_dim=dim))
    if result.quarantined_share > limits.max_quarantine_share or result.clean.height == 0:
        share, bound = f"{result.quarantined_share:.2%}", f"{limits.max_quarantine_share:.2%}"
        why = f"{display}: {result.quarantine.height} of {result.raw_rows} rows ({share}) broke validation rules"
        return result, dim, checksum, f"{why}, over the bound of {bound}; rules {result.rule_counts}"
    return result, dim, checksum, None


def image_outputs(
    warehouse: Warehouse,
    week,
    known: pl.Series,
    quarantine: pl.DataFrame | None,
    quarantine_meta: dict,
    images_meta: dict,
    stored_meta: dict,
    usable: dg.AssetCheckResult,
    clean: pl.DataFrame | None = None,
    dim: int = 0,
    expected_rows: int = 0,
):
    """The four events of `validate_article_images`: the quarantine, the stored vectors (none when there is no
    usable file), the stored check of what was written and the usable check."""
    if quarantine is None:
        quarantine = pl.DataFrame(schema=quarantine_schema("article_images"))
    yield dg.Output(
        quarantine.with_columns(pl.lit(week).alias("week")),
        output_name="quarantine_article_images",
        metadata=quarantine_meta,
    )
    yield dg.Output(
        clean if clean is not None else _no_images(week), output_name="article_images", metadata=images_meta
    )
    yield stored_check(warehouse, week, expected_rows=expected_rows, dim=dim, known=known, metadata=stored_meta)
    yield usable


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
